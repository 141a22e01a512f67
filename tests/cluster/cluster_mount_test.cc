// One cluster volume mounted three times through the kernel — three
// dbfs-mount daemons standing for three machines — on a real 3-member etcd
// cluster and 3 memstore OSDs on 127.0.0.1 (issue 13): what one mount does
// is seen by the others, and transactions are isolated and serializable
// across mounts. Every daemon is stopped by pid on every path (the
// MountedVolume fixture), and the clusters by their fixtures.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mvcc/cluster/cluster_store.h"
#include "tests/cluster/cluster_fixture.h"
#include "tests/integration/mount_fixture.h"

namespace dbfs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

[[maybe_unused]] ::testing::Environment* const kEtcd =
    ::testing::AddGlobalTestEnvironment(new SharedEtcd(3, /*dbfs_limits=*/true));
[[maybe_unused]] ::testing::Environment* const kCeph =
    ::testing::AddGlobalTestEnvironment(new SharedCeph(3));

constexpr milliseconds kSeen{10000};  // bound on a change reaching another mount
constexpr milliseconds kTool{60000};

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

std::string Xattr(const std::string& p, const char* name) {
  char buf[256];
  ssize_t n = getxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, n);
}

mode_t Mode(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

class ThreeMounts : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "mounting needs root";
    ASSERT_NE(SharedEtcd::cluster(), nullptr);
    ASSERT_NE(SharedCeph::cluster(), nullptr);
    static int n = 0;
    url_ = "etcd://" + SharedEtcd::cluster()->endpoints() + "/mnt-" + std::to_string(getpid()) +
           "-" + std::to_string(n++);
    const std::string data = "rados://" + SharedCeph::cluster()->pool() +
                             "?conf=" + SharedCeph::cluster()->conf_path();
    std::string out;
    const int rc = RunCommand({ToolPath("mkfs.dbfs"), "--meta", url_, "--data", data}, kTool, &out);
    ASSERT_EQ(rc, 0) << out;
    for (int i = 0; i < 3; ++i) {
      std::string error;
      auto m = MountedVolume::Attach(url_, MountOptions(), &error);
      ASSERT_NE(m, nullptr) << error;
      m_.push_back(std::move(m));
    }
  }

  // Short kernel cache timeouts: another mount's change shows within them
  // even without the watch-driven invalidation.
  virtual std::string MountOptions() const {
    return "allow_other,entry_timeout=0.2,attr_timeout=0.2";
  }

  void TearDown() override {
    // fsck -n checks one snapshot revision, also while the mounts are live.
    if (!m_.empty()) {
      EXPECT_EQ(Fsck(), 0);
    }
    for (auto& m : m_) {
      if (HasFailure()) std::cout << "---- " << m->log_path() << " ----\n" << m->Log(8192) << "\n";
      if (m->mounted()) {
        EXPECT_TRUE(m->Unmount());
      }
    }
    m_.clear();
    if (!url_.empty()) {
      EXPECT_EQ(Fsck(), 0);
    }
  }

  int Fsck() {
    std::string out;
    const int rc = RunCommand({ToolPath("fsck.dbfs"), "-n", url_}, kTool, &out);
    if (rc != 0) std::cout << "fsck.dbfs -n " << url_ << ":\n" << out;
    return rc;
  }

  std::string A(const std::string& rel) const { return m_[0]->path(rel); }
  std::string B(const std::string& rel) const { return m_[1]->path(rel); }
  std::string C(const std::string& rel) const { return m_[2]->path(rel); }

  // dbfs tx run on mount i; returns the exit status.
  int Tx(int i, const std::string& script, std::string* out = nullptr,
         const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {ToolPath("dbfs"), "tx", "run", "-m", m_[i]->path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {"--", "sh", "-c", script});
    return RunCommand(argv, kTool, out);
  }

  std::string url_;
  std::vector<std::unique_ptr<MountedVolume>> m_;
};

TEST_F(ThreeMounts, ChangesOnOneMountAreSeenOnTheOthers) {
  // create + write + close on A: B and C read the data (close-to-open).
  ASSERT_TRUE(WriteFile(A("f"), "hello from A"));
  ASSERT_EQ(mkdir(A("d").c_str(), 0755), 0);
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_TRUE(WriteFile(A("d/big"), big));
  for (auto* m : {&m_[1], &m_[2]}) {
    const std::string p = (*m)->path("f");
    EXPECT_TRUE(WaitFor([&] { return ReadFile(p) == "hello from A"; }, kSeen)) << p;
    EXPECT_TRUE(WaitFor([&] { return ReadFile((*m)->path("d/big")) == big; }, kSeen));
  }
  // Overwritten on B (same size): A and C see the new bytes on their next open.
  ASSERT_TRUE(WriteFile(B("f"), "HELLO FROM B", O_TRUNC));
  EXPECT_TRUE(WaitFor([&] { return ReadFile(A("f")) == "HELLO FROM B"; }, kSeen));
  EXPECT_TRUE(WaitFor([&] { return ReadFile(C("f")) == "HELLO FROM B"; }, kSeen));
  // rename on A.
  ASSERT_EQ(rename(A("f").c_str(), A("d/g").c_str()), 0);
  for (const std::string& p : {B(""), C("")}) {
    EXPECT_TRUE(WaitFor([&] { return !Exists(p + "/f") && ReadFile(p + "/d/g") == "HELLO FROM B"; },
                        kSeen))
        << p;
  }
  // chmod on B, xattr on C.
  ASSERT_EQ(chmod(B("d/g").c_str(), 0600), 0);
  ASSERT_EQ(setxattr(C("d/g").c_str(), "user.who", "C", 1, 0), 0);
  EXPECT_TRUE(WaitFor([&] { return Mode(A("d/g")) == 0600 && Mode(C("d/g")) == 0600; }, kSeen));
  EXPECT_TRUE(WaitFor([&] { return Xattr(A("d/g"), "user.who") == "C"; }, kSeen));
  EXPECT_TRUE(WaitFor([&] { return Xattr(B("d/g"), "user.who") == "C"; }, kSeen));
  // unlink on A.
  ASSERT_EQ(unlink(A("d/g").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return !Exists(B("d/g")) && !Exists(C("d/g")); }, kSeen));
  // Inode numbers are unique across mounts: files made on each differ.
  ASSERT_TRUE(WriteFile(A("x"), "a"));
  ASSERT_TRUE(WriteFile(B("y"), "b"));
  ASSERT_TRUE(WriteFile(C("z"), "c"));
  struct stat sx, sy, sz;
  ASSERT_TRUE(WaitFor([&] {
    return stat(A("x").c_str(), &sx) == 0 && stat(A("y").c_str(), &sy) == 0 &&
           stat(A("z").c_str(), &sz) == 0;
  }, kSeen));
  EXPECT_NE(sx.st_ino, sy.st_ino);
  EXPECT_NE(sy.st_ino, sz.st_ino);
  EXPECT_NE(sx.st_ino, sz.st_ino);
}

// A multi-file transaction on A is invisible on B until it commits; then all
// of it shows at once.
TEST_F(ThreeMounts, ATransactionOnOneMountIsInvisibleElsewhereUntilItCommits) {
  char tmpl[] = "/tmp/dbfs-go-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string go = std::string(tmpl) + "/go", ready = std::string(tmpl) + "/ready";
  std::string out;
  int rc = -1;
  std::thread tx([&] {
    rc = Tx(0,
            "echo 1 > '" + A("t1") + "' && echo 2 > '" + A("t2") + "' && touch '" + ready +
                "' && while [ ! -e '" + go + "' ]; do sleep 0.01; done");
  });
  const bool started = WaitFor([&] { return Exists(ready); }, kTool);
  EXPECT_TRUE(started);
  // Written inside the transaction; outside it, on B and C, nothing yet.
  EXPECT_FALSE(Exists(B("t1")));
  EXPECT_FALSE(Exists(B("t2")));
  EXPECT_FALSE(Exists(C("t1")));
  ASSERT_TRUE(WriteFile(go, ""));
  tx.join();
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(WaitFor([&] { return ReadFile(B("t1")) == "1\n" && ReadFile(B("t2")) == "2\n"; },
                      kSeen));
  RemoveTree(tmpl);
}

// Two transactions on two mounts write the same file: the first to commit
// wins, the other exits 75 and leaves nothing.
TEST_F(ThreeMounts, AWriteWriteConflictAcrossMountsFailsTheLaterCommitWith75) {
  ASSERT_TRUE(WriteFile(A("counter"), "0"));
  ASSERT_TRUE(WaitFor([&] { return ReadFile(B("counter")) == "0"; }, kSeen));
  char tmpl[] = "/tmp/dbfs-go-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string go = std::string(tmpl) + "/go", ready = std::string(tmpl) + "/ready";
  std::string out_a;
  int rc_a = -1;
  std::thread slow([&] {
    rc_a = Tx(0,
              "v=$(cat '" + A("counter") + "'); echo $((v+1)) > '" + A("counter") + "'; echo a > '" +
                  A("from-a") + "'; touch '" + ready + "'; while [ ! -e '" + go +
                  "' ]; do sleep 0.01; done",
              &out_a);
  });
  ASSERT_TRUE(WaitFor([&] { return Exists(ready); }, kTool));
  std::string out_b;
  const int rc_b = Tx(1, "v=$(cat '" + B("counter") + "'); echo $((v+10)) > '" + B("counter") + "'",
                      &out_b);
  EXPECT_EQ(rc_b, 0) << out_b;
  ASSERT_TRUE(WriteFile(go, ""));
  slow.join();
  EXPECT_EQ(rc_a, 75) << out_a;
  EXPECT_NE(out_a.find("conflict"), std::string::npos) << out_a;
  EXPECT_TRUE(WaitFor([&] { return ReadFile(C("counter")) == "10\n"; }, kSeen));
  EXPECT_FALSE(Exists(C("from-a")));
  RemoveTree(tmpl);
}

// Write skew across mounts: each transaction reads both files and changes
// one; serializable transactions cannot both commit.
TEST_F(ThreeMounts, WriteSkewAcrossMountsAbortsOne) {
  ASSERT_TRUE(WriteFile(A("x"), "1"));
  ASSERT_TRUE(WriteFile(A("y"), "1"));
  ASSERT_TRUE(WaitFor([&] { return ReadFile(B("y")) == "1"; }, kSeen));
  char tmpl[] = "/tmp/dbfs-go-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto script = [&](const std::string& mnt, const std::string& me, const std::string& write) {
    return "cat '" + mnt + "/x' '" + mnt + "/y' > /dev/null; touch '" + dir + "/ready-" + me +
           "'; while [ ! -e '" + dir + "/go' ]; do sleep 0.01; done; echo 0 > '" + mnt + "/" +
           write + "'";
  };
  std::string out_a, out_b;
  int rc_a = -1, rc_b = -1;
  std::thread ta([&] { rc_a = Tx(0, script(A(""), "a", "x"), &out_a); });
  std::thread tb([&] { rc_b = Tx(1, script(B(""), "b", "y"), &out_b); });
  EXPECT_TRUE(WaitFor([&] { return Exists(dir + "/ready-a") && Exists(dir + "/ready-b"); }, kTool));
  ASSERT_TRUE(WriteFile(dir + "/go", ""));
  ta.join();
  tb.join();
  EXPECT_EQ((rc_a == 0) + (rc_b == 0), 1) << "A: " << rc_a << " " << out_a << "\nB: " << rc_b << " "
                                         << out_b;
  EXPECT_TRUE(rc_a == 75 || rc_b == 75);
  RemoveTree(tmpl);
}

// 3 x 16 concurrent read-modify-write transactions spread over the mounts,
// retried on conflict: the count is exact.
TEST_F(ThreeMounts, ConcurrentIncrementsOverThreeMountsWithRetriesAreExact) {
  ASSERT_TRUE(WriteFile(A("n"), "0"));
  ASSERT_TRUE(WaitFor([&] { return ReadFile(C("n")) == "0"; }, kSeen));
  constexpr int kPerMount = 16;
  std::vector<std::thread> threads;
  std::vector<int> rcs(3 * kPerMount, -1);
  std::vector<std::string> outs(3 * kPerMount);
  for (int i = 0; i < 3 * kPerMount; ++i) {
    threads.emplace_back([&, i] {
      const std::string f = m_[i % 3]->path("n");
      rcs[i] = Tx(i % 3, "v=$(cat '" + f + "'); echo $((v+1)) > '" + f + "'", &outs[i],
                  {"--retries", "200"});
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3 * kPerMount; ++i) EXPECT_EQ(rcs[i], 0) << outs[i];
  EXPECT_TRUE(WaitFor(
      [&] {
        return ReadFile(A("n")) == std::to_string(3 * kPerMount) + "\n" &&
               ReadFile(B("n")) == std::to_string(3 * kPerMount) + "\n";
      },
      kSeen))
      << ReadFile(A("n"));
}

// Autocommit operations of different mounts on one inode: each rewrites the
// inode record from what it read (setxattr: ctime; chmod: mode). Inode locks
// do not reach across mounts, so the store validates what they write and a
// loser runs again: no change is lost (a chmod overwritten by a setxattr that
// read the old mode would leave the mode wrong for good).
TEST_F(ThreeMounts, ConcurrentOperationsOnOneInodeFromThreeMountsLoseNothing) {
  ASSERT_TRUE(WriteFile(A("f"), "x"));
  ASSERT_TRUE(WaitFor([&] { return Exists(B("f")) && Exists(C("f")); }, kSeen));
  for (int round = 0; round < 6; ++round) {
    const mode_t mode = round % 2 ? 0640 : 0600;
    std::vector<std::thread> hammer;
    std::atomic<int> failed{0};
    for (int m = 1; m <= 2; ++m) {
      hammer.emplace_back([&, m] {
        for (int i = 0; i < 15; ++i) {
          const std::string name = "user.m" + std::to_string(m) + "r" + std::to_string(round) +
                                   "i" + std::to_string(i);
          if (setxattr(m_[m]->path("f").c_str(), name.c_str(), "v", 1, 0) != 0) ++failed;
        }
      });
    }
    EXPECT_EQ(chmod(A("f").c_str(), mode), 0);
    for (auto& t : hammer) t.join();
    EXPECT_EQ(failed.load(), 0) << "round " << round;
    for (int m = 0; m < 3; ++m) {
      EXPECT_TRUE(WaitFor([&] { return Mode(m_[m]->path("f")) == mode; }, kSeen))
          << "round " << round << " mount " << m << ": mode " << std::oct << Mode(m_[m]->path("f"));
    }
  }
  char names[65536];
  const ssize_t n = listxattr(A("f").c_str(), names, sizeof names);
  int count = 0;
  for (ssize_t i = 0; i < n; i += strlen(names + i) + 1) ++count;
  EXPECT_EQ(count, 6 * 2 * 15);
}

// With kernel caches that would keep stale entries, attributes and negative
// entries for a minute, another mount's changes still show at once: the
// store's watch reports them and the mount invalidates the kernel's caches.
class ThreeMountsLongCaches : public ThreeMounts {
 protected:
  std::string MountOptions() const override {
    return "allow_other,entry_timeout=60,attr_timeout=60";
  }
};

TEST_F(ThreeMountsLongCaches, RemoteChangesInvalidateTheKernelCachesThroughTheWatch) {
  using Clock = std::chrono::steady_clock;
  ASSERT_TRUE(WriteFile(A("f"), "one"));
  ASSERT_EQ(mkdir(A("d").c_str(), 0755), 0);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(B("f")) == "one"; }, kSeen));
  EXPECT_FALSE(Exists(B("new")));  // a negative entry, cached for a minute
  EXPECT_EQ(Mode(B("f")), 0644u);
  auto seen_within = [&](const char* what, const std::function<bool()>& pred) {
    const auto t0 = Clock::now();
    const bool ok = WaitFor(pred, kSeen, milliseconds(1));
    const auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
    std::cout << what << ": seen on B after " << ms << " ms\n";
    return ok;
  };
  ASSERT_TRUE(WriteFile(A("f"), "two!!", O_TRUNC));  // size and data change
  EXPECT_TRUE(seen_within("overwrite", [&] { return ReadFile(B("f")) == "two!!"; }));
  ASSERT_TRUE(WriteFile(A("new"), "x"));
  EXPECT_TRUE(seen_within("create", [&] { return Exists(B("new")); }));
  ASSERT_EQ(chmod(A("f").c_str(), 0600), 0);
  EXPECT_TRUE(seen_within("chmod", [&] { return Mode(B("f")) == 0600; }));
  ASSERT_EQ(rename(A("f").c_str(), A("d/f2").c_str()), 0);
  EXPECT_TRUE(seen_within("rename", [&] { return !Exists(B("f")) && Exists(B("d/f2")); }));
  ASSERT_EQ(unlink(A("new").c_str()), 0);
  EXPECT_TRUE(seen_within("unlink", [&] { return !Exists(B("new")) && !Exists(C("new")); }));
}

// fsck.dbfs -n reads one snapshot of a live cluster volume and names what
// is wrong in it.
TEST_F(ThreeMounts, FsckOfALiveClusterVolumeFindsDamage) {
  ASSERT_TRUE(WriteFile(A("ok"), "fine"));
  auto v = mvcc::cluster::ParseMetaUrl(url_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  mvcc::cluster::ClusterStoreOptions o;
  o.volume = *v;
  auto store = mvcc::cluster::ClusterStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto put = [&](std::optional<std::string> value) {
    mvcc::CommitRequest req;
    req.writes.push_back(mvcc::Write{mvcc::Table::kInodes, mvcc::InoKey(999999), std::move(value)});
    return (*store)->Commit(std::move(req)).status();
  };
  ASSERT_TRUE(put("not an inode").ok());
  std::string out;
  EXPECT_EQ(RunCommand({ToolPath("fsck.dbfs"), "-n", url_}, kTool, &out), 4) << out;
  EXPECT_NE(out.find("inode 999999"), std::string::npos) << out;
  EXPECT_NE(out.find("malformed inode record"), std::string::npos) << out;
  // Repair is not offered yet: refused without touching anything.
  EXPECT_EQ(RunCommand({ToolPath("fsck.dbfs"), "-y", url_}, kTool, &out), 8) << out;
  ASSERT_TRUE(put(std::nullopt).ok());  // TearDown's fsck runs clean again
  EXPECT_EQ(ReadFile(B("ok")), "fine");
}

}  // namespace
}  // namespace dbfs::testing
