// Explicit transactions at the Filesystem level: requests from this
// process's pid run inside the transaction bound to it; requests with pid 0
// come from "outside".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "fuse/filesystem.h"
#include "tools/lib/fsck.h"
#include "tools/lib/mkfs.h"

namespace dbfs {
namespace {

class TxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dbfs-tx-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/vol";
    MkfsOptions mo;
    mo.quiet = true;
    ASSERT_TRUE(Mkfs(dir_, mo).ok());
    auto f = Filesystem::Open(dir_, {});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    fs_ = std::move(f).value();
    in_.pid = getpid();
  }
  void TearDown() override {
    fs_.reset();
    std::filesystem::remove_all(root_);
  }
  std::string Ctl(const std::string& cmd) {
    auto r = fs_->GetXattr(out_, kRootIno, cmd);
    EXPECT_TRUE(r.ok()) << cmd << ": " << r.status().ToString();
    return r.ok() ? *r : "";
  }
  std::string Begin(const std::string& iso = "serializable") {
    return Ctl("dbfs.tx.begin:" + std::to_string(getpid()) + ":" + iso);
  }
  uint64_t Write(const Caller& c, const std::string& name, const std::string& data) {
    auto l = fs_->Lookup(c, kRootIno, name);
    uint64_t ino, fh;
    if (l.ok()) {
      ino = l->ino;
      auto o = fs_->Open(c, ino, O_RDWR | O_TRUNC);
      EXPECT_TRUE(o.ok());
      fh = *o;
    } else {
      auto cr = fs_->Create(c, kRootIno, name, 0644, O_RDWR);
      EXPECT_TRUE(cr.ok()) << cr.status().ToString();
      ino = cr->attr.ino;
      fh = cr->fh;
    }
    EXPECT_TRUE(fs_->Write(c, ino, fh, 0, data.data(), data.size()).ok());
    EXPECT_TRUE(fs_->Release(ino, fh).ok());
    return ino;
  }
  std::optional<std::string> Read(const Caller& c, const std::string& name) {
    auto l = fs_->Lookup(c, kRootIno, name);
    if (!l.ok()) return std::nullopt;
    auto o = fs_->Open(c, l->ino, O_RDONLY);
    EXPECT_TRUE(o.ok());
    std::string buf(4096, '\0');
    auto n = fs_->Read(c, l->ino, *o, 0, buf.size(), buf.data());
    EXPECT_TRUE(fs_->Release(l->ino, *o).ok());
    buf.resize(n.ok() ? *n : 0);
    return buf;
  }

  std::string root_, dir_;
  std::unique_ptr<Filesystem> fs_;
  Caller in_, out_;
};

TEST_F(TxTest, ChangesAreInvisibleOutsideUntilCommit) {
  Write(out_, "f", "old");
  const std::string id = Begin();
  Write(in_, "f", "new");
  Write(in_, "g", "created");
  ASSERT_TRUE(fs_->Unlink(in_, kRootIno, "f").ok() || true);
  // Inside: own writes (f was unlinked, g exists).
  EXPECT_EQ(Read(in_, "f"), std::nullopt);
  EXPECT_EQ(Read(in_, "g"), "created");
  // Outside: the committed state only.
  EXPECT_EQ(Read(out_, "f"), "old");
  EXPECT_EQ(Read(out_, "g"), std::nullopt);
  EXPECT_TRUE(fs_->Uncached(in_, kRootIno));
  EXPECT_TRUE(fs_->Uncached(out_, kRootIno));  // touched by an open transaction
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + id).substr(0, 3), "ok ");
  EXPECT_EQ(Read(out_, "f"), std::nullopt);
  EXPECT_EQ(Read(out_, "g"), "created");
  EXPECT_FALSE(fs_->Uncached(out_, kRootIno));
}

TEST_F(TxTest, AbortDiscardsEverything) {
  Write(out_, "keep", "1");
  const std::string id = Begin();
  Write(in_, "keep", "2");
  ASSERT_TRUE(fs_->Mkdir(in_, kRootIno, "d", 0755).ok());
  EXPECT_EQ(Ctl("dbfs.tx.abort:" + id), "ok");
  EXPECT_EQ(Read(out_, "keep"), "1");
  EXPECT_EQ(fs_->Lookup(out_, kRootIno, "d").status().code(), Code::kNotFound);
  // The process is no longer in a transaction: its writes autocommit.
  Write(in_, "keep", "3");
  EXPECT_EQ(Read(out_, "keep"), "3");
}

TEST_F(TxTest, AutocommitWinsAndTheTransactionFailsNamingThePath) {
  Write(out_, "counter", "0");
  const std::string id = Begin();
  EXPECT_EQ(Read(in_, "counter"), "0");
  Write(in_, "counter", "1");
  Write(out_, "counter", "9");  // an outside write always succeeds
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + id), "conflict /counter");
  EXPECT_EQ(Read(out_, "counter"), "9");
}

TEST_F(TxTest, PhantomCreationInAListedDirectoryFailsSerializableOnly) {
  for (std::string iso : {"serializable", "snapshot"}) {
    const std::string id = Begin(iso);
    auto dh = fs_->OpenDir(in_, kRootIno);  // the transaction lists /
    ASSERT_TRUE(dh.ok());
    ASSERT_TRUE(fs_->ReleaseDir(kRootIno, *dh).ok());
    Write(in_, "summary-" + iso, "n");
    Write(out_, "phantom-" + iso, "x");  // someone adds an entry to /
    const std::string r = Ctl("dbfs.tx.commit:" + id);
    if (iso == "serializable") {
      EXPECT_EQ(r, "conflict /phantom-serializable");
    } else {
      EXPECT_EQ(r.substr(0, 3), "ok ");
    }
  }
}

TEST_F(TxTest, UnlinkedInsideAndCommittedIsReclaimed) {
  uint64_t ino = Write(out_, "victim", "data");
  fs_->Forget(ino, 2);  // drop the kernel references Write's lookups counted
  const std::string id = Begin();
  ASSERT_TRUE(fs_->Unlink(in_, kRootIno, "victim").ok());
  EXPECT_TRUE(fs_->GetAttr(out_, ino).ok());
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + id).substr(0, 3), "ok ");
  EXPECT_EQ(fs_->GetAttr(out_, ino).status().code(), Code::kNotFound);
  fs_.reset();
  FsckReport r = Fsck(dir_, {});
  for (const auto& e : r.errors) ADD_FAILURE() << e;
}

TEST_F(TxTest, StatusListsOpenTransactionsAndBadCommandsFail) {
  const std::string id = Begin();
  const std::string st = Ctl("dbfs.tx.status");
  EXPECT_NE(st.find("tx " + id + " pid " + std::to_string(getpid())), std::string::npos) << st;
  EXPECT_FALSE(fs_->GetXattr(out_, kRootIno, "dbfs.tx.commit:999").ok());
  EXPECT_FALSE(fs_->GetXattr(out_, kRootIno, "dbfs.tx.begin:notapid").ok());
  // One transaction per process tree.
  EXPECT_EQ(fs_->GetXattr(out_, kRootIno, "dbfs.tx.begin:" + std::to_string(getpid())).status().code(),
            Code::kBusy);
  EXPECT_EQ(Ctl("dbfs.tx.abort:" + id), "ok");
  EXPECT_EQ(Ctl("dbfs.tx.status"), "");
}

}  // namespace
}  // namespace dbfs

namespace dbfs {
namespace {

TEST_F(TxTest, IdleTransactionPastTimeoutIsAbortedByTheReaper) {
  fs_.reset();
  FsOptions o;
  o.tx_timeout_s = 1;
  auto f = Filesystem::Open(dir_, o);
  ASSERT_TRUE(f.ok());
  fs_ = std::move(f).value();
  const std::string id = Begin();
  Write(in_, "never", "x");
  // Bounded wait for the reaper (it runs every second).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Ctl("dbfs.tx.status") != "" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Ctl("dbfs.tx.status"), "");
  EXPECT_FALSE(fs_->GetXattr(out_, kRootIno, "dbfs.tx.commit:" + id).ok());
  EXPECT_EQ(Read(out_, "never"), std::nullopt);
}

TEST_F(TxTest, TransactionsCreatingDifferentNamesInOneDirectoryBothCommit) {
  // Two "processes": this one, and a forked child that only sleeps so that
  // its pid can be bound to a second transaction.
  pid_t other = fork();
  if (other == 0) {
    pause();
    _exit(0);
  }
  Caller in2;
  in2.pid = other;
  const std::string a = Begin();
  const std::string b = Ctl("dbfs.tx.begin:" + std::to_string(other));
  ASSERT_TRUE(fs_->Mkdir(in_, kRootIno, "from-a", 0755).ok());
  ASSERT_TRUE(fs_->Mkdir(in2, kRootIno, "from-b", 0755).ok());
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a).substr(0, 3), "ok ");
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + b).substr(0, 3), "ok ");
  kill(other, SIGKILL);
  waitpid(other, nullptr, 0);
  EXPECT_EQ(fs_->GetAttr(out_, kRootIno)->nlink, 4u);  // ., .., from-a/.., from-b/..
  fs_.reset();
  FsckReport r = Fsck(dir_, {});
  for (const auto& e : r.errors) ADD_FAILURE() << e;
}

}  // namespace
}  // namespace dbfs
