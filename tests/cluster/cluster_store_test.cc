// ClusterStore (mvcc/cluster/cluster_store.h) against a real 3-member etcd
// cluster and 3 memstore OSDs on 127.0.0.1: the whole versioned-store
// contract (tests/mvcc/store_contract.h), then what only a shared volume
// has — several stores (mounts) on one volume: commits of one are seen by
// the others, conflicts across them, unique inode numbers and data objects,
// the server-limit check, and the volume URLs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mvcc/cluster/cluster_store.h"
#include "tests/cluster/cluster_fixture.h"
#include "tests/mvcc/store_contract.h"

namespace dbfs::mvcc {
namespace {

using cluster::ClusterStore;
using cluster::ClusterStoreOptions;
using dbfs::testing::SharedCeph;
using dbfs::testing::SharedEtcd;

[[maybe_unused]] ::testing::Environment* const kEtcd =
    ::testing::AddGlobalTestEnvironment(new SharedEtcd(3, /*dbfs_limits=*/true));
[[maybe_unused]] ::testing::Environment* const kCeph =
    ::testing::AddGlobalTestEnvironment(new SharedCeph(3));

ClusterStoreOptions OptionsFor(const std::string& name) {
  ClusterStoreOptions o;
  if (SharedEtcd::cluster()) o.volume.endpoints = SharedEtcd::cluster()->endpoints();
  if (SharedCeph::cluster()) {
    o.volume.pool = SharedCeph::cluster()->pool();
    o.volume.ceph_conf = SharedCeph::cluster()->conf_path();
  }
  o.volume.name = name;
  o.timeout = std::chrono::milliseconds(5000);
  o.lease_ttl_s = 5;
  o.maintenance_interval = std::chrono::milliseconds(100);  // runs while the tests do
  o.compact_every = 1;  // compaction runs too
  return o;
}

std::string FreshName() {
  static std::atomic<int> n{0};
  return "t" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

// A fresh cluster volume per test.
class ClusterStoreFactory {
 public:
  static constexpr const char* kName = "ClusterStore";

  ClusterStoreFactory() : opts_(OptionsFor(FreshName())) {
    if (!SharedEtcd::cluster() || !SharedCeph::cluster()) {
      ADD_FAILURE() << "no etcd or Ceph cluster";
      return;
    }
    Status st = ClusterStore::Create(opts_, /*force=*/false);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }

  Result<std::unique_ptr<Store>> Open() {
    DBFS_ASSIGN_OR_RETURN(auto s, ClusterStore::Open(opts_));
    return std::unique_ptr<Store>(std::move(s));
  }

  const ClusterStoreOptions& options() const { return opts_; }

 private:
  ClusterStoreOptions opts_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(Cluster, StoreContract, ClusterStoreFactory, FactoryNames);

// ---- several stores on one volume ----

class SharedVolume : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(SharedEtcd::cluster(), nullptr);
    ASSERT_NE(SharedCeph::cluster(), nullptr);
    for (int i = 0; i < 3; ++i) {
      auto s = ClusterStore::Open(factory_.options());
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      mounts_.push_back(std::move(s).value());
    }
  }

  Result<CommitResult> Put(ClusterStore& s, Table t, const std::string& key,
                           const std::string& value) {
    CommitRequest req;
    req.writes.push_back(Write{t, key, value});
    return s.Commit(std::move(req));
  }

  // Waits (bounded) until `s` has seen CSN `csn`.
  static bool Sees(ClusterStore& s, Csn csn) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (s.visible_csn() < csn) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  ClusterStoreFactory factory_;
  std::vector<std::unique_ptr<ClusterStore>> mounts_;
};

TEST_F(SharedVolume, ACommitOnOneMountIsSeenByTheOthersThroughTheWatch) {
  auto r = Put(*mounts_[0], Table::kInodes, InoKey(5), "from A");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(Sees(*mounts_[i], r->csn)) << "mount " << i;
    Snapshot snap = mounts_[i]->AcquireSnapshot();
    EXPECT_GE(snap.csn(), r->csn);
    auto v = mounts_[i]->Get(snap.csn(), Table::kInodes, InoKey(5));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, "from A");
  }
}

TEST_F(SharedVolume, WriteWriteConflictAcrossMountsHasExactlyOneWinner) {
  ASSERT_TRUE(Put(*mounts_[0], Table::kInodes, InoKey(9), "0").ok());
  const Csn base = mounts_[0]->visible_csn();
  for (auto& m : mounts_) ASSERT_TRUE(Sees(*m, base));
  std::vector<Snapshot> snaps;
  for (auto& m : mounts_) snaps.push_back(m->AcquireSnapshot());
  std::vector<Status> results(3);
  std::vector<Conflict> conflicts(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      CommitRequest req;
      req.writes.push_back(Write{Table::kInodes, InoKey(9), "mount " + std::to_string(i)});
      req.validation.emplace().snapshot = snaps[i].csn();
      req.validation->write_keys.push_back(KeyRef{Table::kInodes, InoKey(9)});
      results[i] = mounts_[i]->Commit(std::move(req), &conflicts[i]).status();
    });
  }
  for (auto& t : threads) t.join();
  int wins = 0, winner = -1;
  for (int i = 0; i < 3; ++i) {
    if (results[i].ok()) {
      ++wins;
      winner = i;
    } else {
      EXPECT_EQ(results[i].code(), Code::kConflict) << results[i].ToString();
      EXPECT_EQ(conflicts[i].kind, Conflict::Kind::kWrite);
      EXPECT_EQ(conflicts[i].key.key, InoKey(9));
    }
  }
  ASSERT_EQ(wins, 1);
  auto v = mounts_[2]->Get(kMaxCsn, Table::kInodes, InoKey(9));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "mount " + std::to_string(winner));
}

// Write skew: each mount reads both keys and writes one; with the read keys
// validated, at most one of the two commits.
TEST_F(SharedVolume, WriteSkewAcrossMountsAbortsOne) {
  ASSERT_TRUE(Put(*mounts_[0], Table::kInodes, InoKey(20), "1").ok());
  auto r = Put(*mounts_[0], Table::kInodes, InoKey(21), "1");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(Sees(*mounts_[1], r->csn));
  Snapshot a = mounts_[0]->AcquireSnapshot();
  Snapshot b = mounts_[1]->AcquireSnapshot();
  auto tx = [&](ClusterStore& s, Csn snap, uint64_t write) {
    CommitRequest req;
    req.writes.push_back(Write{Table::kInodes, InoKey(write), "0"});
    req.validation.emplace().snapshot = snap;
    req.validation->write_keys.push_back(KeyRef{Table::kInodes, InoKey(write)});
    req.validation->read_keys.push_back(KeyRef{Table::kInodes, InoKey(20)});
    req.validation->read_keys.push_back(KeyRef{Table::kInodes, InoKey(21)});
    return s.Commit(std::move(req)).status();
  };
  Status first = tx(*mounts_[0], a.csn(), 20);
  Status second = tx(*mounts_[1], b.csn(), 21);
  EXPECT_TRUE(first.ok()) << first.ToString();
  EXPECT_EQ(second.code(), Code::kConflict) << second.ToString();
}

TEST_F(SharedVolume, InodeNumbersAndDataAreUniqueAcrossMounts) {
  std::vector<std::vector<uint64_t>> inos(3);
  std::vector<std::vector<DataRef>> refs(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 300; ++k) inos[i].push_back(mounts_[i]->AllocateIno());
      for (int k = 0; k < 20; ++k) {
        auto ref = mounts_[i]->AppendData("mount " + std::to_string(i) + " piece " +
                                          std::to_string(k));
        ASSERT_TRUE(ref.ok()) << ref.status().ToString();
        refs[i].push_back(*ref);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint64_t> all;
  for (auto& v : inos) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 900u);
  EXPECT_EQ(all.count(0), 0u);
  EXPECT_EQ(all.count(1), 0u);  // the root's
  // Every piece reads back from every mount.
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 20; ++k) {
      const std::string want = "mount " + std::to_string(i) + " piece " + std::to_string(k);
      std::string got(want.size(), '\0');
      const DataRef& ref = refs[i][k];
      ASSERT_TRUE(mounts_[(i + 1) % 3]->ReadData(ref, 0, got.size(), got.data()).ok());
      EXPECT_EQ(got, want);
    }
  }
}

// Many mounts merging into one key (a directory's link count) never lose an
// increment.
TEST_F(SharedVolume, MergesFromManyMountsAllApply) {
  ASSERT_TRUE(Put(*mounts_[0], Table::kInodes, InoKey(30), "0").ok());
  constexpr int kEach = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kEach; ++k) {
        CommitRequest req;
        req.writes.push_back(Write{Table::kDirents, NameKey(30, std::to_string(i * 100 + k)), "x"});
        req.merges.push_back(Merge{
            Table::kInodes, InoKey(30),
            [](const std::optional<std::string>& latest) -> Result<std::optional<std::string>> {
              return std::optional<std::string>(std::to_string(std::stoi(latest.value_or("0")) + 1));
            }});
        if (!mounts_[i]->Commit(std::move(req)).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto v = mounts_[1]->Get(kMaxCsn, Table::kInodes, InoKey(30));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::to_string(3 * kEach));
}

TEST_F(SharedVolume, ASecondCreateOfTheSameNameIsRefusedUnlessForced) {
  Status again = ClusterStore::Create(factory_.options(), /*force=*/false);
  EXPECT_EQ(again.code(), Code::kExists) << again.ToString();
}

TEST(ClusterVolumeUrl, ParsesAndRejectsClearly) {
  auto v = cluster::ParseMetaUrl("etcd://127.0.0.1:2379,h2:2380/vol-1");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->endpoints, "127.0.0.1:2379,h2:2380");
  EXPECT_EQ(v->name, "vol-1");
  ASSERT_TRUE(cluster::ParseDataUrl("rados://dbfs?conf=/etc/ceph/x.conf&id=dbfs", &*v).ok());
  EXPECT_EQ(v->pool, "dbfs");
  EXPECT_EQ(v->ceph_conf, "/etc/ceph/x.conf");
  EXPECT_EQ(v->ceph_user, "dbfs");
  for (const char* bad : {"etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/", "etcd:///v",
                          "etcd://host/v", "etcd://h:p/v", "etcd://h:1/a/b", "http://h:1/v"}) {
    auto r = cluster::ParseMetaUrl(bad);
    EXPECT_EQ(r.status().code(), Code::kInvalid) << bad;
  }
  cluster::ClusterVolume d;
  EXPECT_EQ(cluster::ParseDataUrl("rados://", &d).code(), Code::kInvalid);
  EXPECT_EQ(cluster::ParseDataUrl("rados://p?what=1", &d).code(), Code::kInvalid);
  EXPECT_EQ(cluster::ParseDataUrl("s3://p", &d).code(), Code::kInvalid);
}

TEST(ClusterStoreOpen, AMissingVolumeIsNamed) {
  ASSERT_NE(SharedEtcd::cluster(), nullptr);
  auto s = ClusterStore::Open(OptionsFor("no-such-volume"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_NE(s.status().message().find("no-such-volume"), std::string::npos)
      << s.status().ToString();
}

// etcd with its default limits (128 operations per txn) cannot hold a DBFS
// volume: refused at create with the flags named.
TEST(ClusterStoreOpen, AnEtcdWithDefaultLimitsIsRefusedNamingTheFlags) {
  std::string error;
  auto small = dbfs::testing::EtcdCluster::Start(1, &error);
  ASSERT_NE(small, nullptr) << error;
  ClusterStoreOptions o = OptionsFor(FreshName());
  o.volume.endpoints = small->endpoints();
  Status st = ClusterStore::Create(o, false);
  EXPECT_EQ(st.code(), Code::kInvalid) << st.ToString();
  EXPECT_NE(st.message().find("--max-txn-ops=16384"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace dbfs::mvcc
