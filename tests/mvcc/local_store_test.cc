// LocalStore: version visibility, overlay + flush + recovery, GC — no mount.
#include "mvcc/local_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "mvcc/superblock.h"

namespace dbfs::mvcc {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dbfs-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(mkdir((dir_ + "/meta").c_str(), 0700), 0);
    ASSERT_EQ(mkdir((dir_ + "/wal").c_str(), 0700), 0);
    ASSERT_TRUE(WriteSuperblock(dir_, NewSuperblock()).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<LocalStore> OpenStore(StoreOptions o = {}) {
    o.flush_interval_ms = 1000000;  // flush only when a test asks
    auto s = LocalStore::Open(dir_, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static void Put(LocalStore* s, Table t, const std::string& k, const std::string& v) {
    std::vector<Write> w{{t, k, v}};
    ASSERT_TRUE(s->Commit(std::move(w), false).ok());
  }
  static void Del(LocalStore* s, Table t, const std::string& k) {
    std::vector<Write> w{{t, k, std::nullopt}};
    ASSERT_TRUE(s->Commit(std::move(w), false).ok());
  }
  static std::optional<std::string> Get(LocalStore* s, Csn snap, Table t, const std::string& k) {
    auto r = s->Get(snap, t, k);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }
  static std::vector<std::pair<std::string, std::string>> ScanAll(LocalStore* s, Csn snap, Table t) {
    std::vector<std::pair<std::string, std::string>> out;
    EXPECT_TRUE(s->Scan(snap, t, "", "", [&](std::string_view k, std::string_view v) {
                   out.emplace_back(k, v);
                   return true;
                 }).ok());
    return out;
  }

  std::string dir_;
};

TEST_F(StoreTest, SnapshotsSeeTheirVersionBeforeAndAfterFlush) {
  auto s = OpenStore();
  Put(s.get(), Table::kInodes, InoKey(7), "v1");
  Snapshot old = s->AcquireSnapshot();
  Put(s.get(), Table::kInodes, InoKey(7), "v2");
  Csn now = s->visible_csn();
  EXPECT_EQ(Get(s.get(), old.csn(), Table::kInodes, InoKey(7)), "v1");
  EXPECT_EQ(Get(s.get(), now, Table::kInodes, InoKey(7)), "v2");
  ASSERT_TRUE(s->Flush().ok());
  // Old snapshot still registered: both versions must survive the flush.
  EXPECT_EQ(Get(s.get(), old.csn(), Table::kInodes, InoKey(7)), "v1");
  EXPECT_EQ(Get(s.get(), now, Table::kInodes, InoKey(7)), "v2");
  EXPECT_EQ(*s->TEST_LmdbVersions(Table::kInodes, InoKey(7)), 2);
  // Before the first write the key did not exist.
  EXPECT_EQ(Get(s.get(), 0, Table::kInodes, InoKey(7)), std::nullopt);
}

TEST_F(StoreTest, GcDropsVersionsNoSnapshotCanSee) {
  auto s = OpenStore();
  {
    Snapshot pin = s->AcquireSnapshot();
    for (int i = 0; i < 5; ++i) {
      Put(s.get(), Table::kInodes, InoKey(3), "v" + std::to_string(i));
      ASSERT_TRUE(s->Flush().ok());
    }
    EXPECT_GE(*s->TEST_LmdbVersions(Table::kInodes, InoKey(3)), 2);
  }
  Put(s.get(), Table::kInodes, InoKey(3), "last");
  ASSERT_TRUE(s->Flush().ok());
  EXPECT_EQ(*s->TEST_LmdbVersions(Table::kInodes, InoKey(3)), 1);
  EXPECT_EQ(Get(s.get(), s->visible_csn(), Table::kInodes, InoKey(3)), "last");
  // A deletion with no snapshot needing the old value leaves nothing behind.
  Del(s.get(), Table::kInodes, InoKey(3));
  ASSERT_TRUE(s->Flush().ok());
  EXPECT_EQ(*s->TEST_LmdbVersions(Table::kInodes, InoKey(3)), 0);
  EXPECT_GT(s->Stats().gc_versions_dropped, 0u);
}

TEST_F(StoreTest, ScanMergesOverlayAndLmdbAndHidesTombstones) {
  auto s = OpenStore();
  for (int i = 0; i < 10; ++i) Put(s.get(), Table::kDirents, NameKey(1, "f" + std::to_string(i)), "x");
  ASSERT_TRUE(s->Flush().ok());
  Del(s.get(), Table::kDirents, NameKey(1, "f3"));                 // overlay tombstone over LMDB
  Put(s.get(), Table::kDirents, NameKey(1, "f5"), "new");          // overlay version over LMDB
  Put(s.get(), Table::kDirents, NameKey(1, "f55"), "y");           // overlay only
  Put(s.get(), Table::kDirents, NameKey(2, "other"), "z");         // outside the range
  auto check = [&] {
    std::vector<std::pair<std::string, std::string>> got;
    ASSERT_TRUE(s->Scan(s->visible_csn(), Table::kDirents, InoKey(1), InoKey(2),
                        [&](std::string_view k, std::string_view v) {
                          got.emplace_back(std::string(k.substr(8, k.size() - 9)), v);
                          return true;
                        }).ok());
    std::vector<std::pair<std::string, std::string>> want = {
        {"f0", "x"}, {"f1", "x"}, {"f2", "x"}, {"f4", "x"}, {"f5", "new"},
        {"f55", "y"}, {"f6", "x"}, {"f7", "x"}, {"f8", "x"}, {"f9", "x"}};
    EXPECT_EQ(got, want);
  };
  check();
  ASSERT_TRUE(s->Flush().ok());
  check();
}

TEST_F(StoreTest, ScanAtOldSnapshotIgnoresNewerVersions) {
  auto s = OpenStore();
  Put(s.get(), Table::kXattrs, NameKey(4, "user.a"), "1");
  Snapshot snap = s->AcquireSnapshot();
  Put(s.get(), Table::kXattrs, NameKey(4, "user.b"), "2");
  Del(s.get(), Table::kXattrs, NameKey(4, "user.a"));
  ASSERT_TRUE(s->Flush().ok());
  auto old = ScanAll(s.get(), snap.csn(), Table::kXattrs);
  ASSERT_EQ(old.size(), 1u);
  EXPECT_EQ(old[0].second, "1");
  auto now = ScanAll(s.get(), s->visible_csn(), Table::kXattrs);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].second, "2");
}

TEST_F(StoreTest, RecoveryReplaysCommitsThatWereNeverFlushed) {
  std::string data = "hello, durable world";
  DataRef ref;
  {
    auto s = OpenStore();
    Put(s.get(), Table::kInodes, InoKey(1), "root");
    ASSERT_TRUE(s->Flush().ok());
    auto r = s->AppendData(data);
    ASSERT_TRUE(r.ok());
    ref = *r;
    std::vector<Write> w{{Table::kInodes, InoKey(9), "nine"},
                         {Table::kExtents, ChunkKey(9, 0), "slices"},
                         {Table::kInodes, InoKey(1), "root2"}};
    ASSERT_TRUE(s->Commit(std::move(w), /*durable=*/true).ok());
    s->TEST_Abandon();  // as if killed: nothing flushed to LMDB
  }
  auto s = OpenStore();
  EXPECT_EQ(s->recovery().commits_replayed, 1u);
  Csn now = s->visible_csn();
  EXPECT_EQ(Get(s.get(), now, Table::kInodes, InoKey(9)), "nine");
  EXPECT_EQ(Get(s.get(), now, Table::kInodes, InoKey(1)), "root2");
  EXPECT_EQ(Get(s.get(), now, Table::kExtents, ChunkKey(9, 0)), "slices");
  std::string back(data.size(), '\0');
  ASSERT_TRUE(s->ReadData(ref, 0, data.size(), back.data()).ok());
  EXPECT_EQ(back, data);
  // Replay was flushed: a second reopen replays nothing.
  ASSERT_TRUE(s->Close().ok());
  s.reset();
  auto s2 = OpenStore();
  EXPECT_EQ(s2->recovery().commits_replayed, 0u);
  EXPECT_EQ(Get(s2.get(), s2->visible_csn(), Table::kInodes, InoKey(9)), "nine");
}

TEST_F(StoreTest, CsnsAndInodeNumbersNeverGoBackwardsAcrossRecovery) {
  Csn before;
  uint64_t ino;
  {
    auto s = OpenStore();
    ino = s->AllocateIno();
    ino = s->AllocateIno();
    Put(s.get(), Table::kInodes, InoKey(ino), "x");
    before = s->visible_csn();
    s->TEST_Abandon();
  }
  auto s = OpenStore();
  EXPECT_EQ(s->visible_csn(), before);
  EXPECT_GT(s->AllocateIno(), ino);
}

TEST_F(StoreTest, RandomizedModelCheckAcrossFlushesAndReopen) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937 rng(seed);
  std::map<std::string, std::string> model;
  auto s = OpenStore();
  for (int i = 0; i < 3000; ++i) {
    std::string k = NameKey(rng() % 4, "k" + std::to_string(rng() % 50));
    if (rng() % 4 == 0) {
      Del(s.get(), Table::kDirents, k);
      model.erase(k);
    } else {
      std::string v = std::to_string(rng());
      Put(s.get(), Table::kDirents, k, v);
      model[k] = v;
    }
    if (rng() % 200 == 0) {
      ASSERT_TRUE(s->Flush().ok());
    }
    if (rng() % 1000 == 0) {
      s->TEST_Abandon();
      s.reset();
      s = OpenStore();
    }
  }
  auto got = ScanAll(s.get(), s->visible_csn(), Table::kDirents);
  std::vector<std::pair<std::string, std::string>> want(model.begin(), model.end());
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace dbfs::mvcc

namespace dbfs::mvcc {
namespace {

// A volume made before format 2: superblock version 1, COMMIT records
// without metadata. It opens, reads, is upgraded to format 2 by the
// read-write open, and its old commits are in the commit log.
TEST(LocalStoreFormat, FormatOneVolumeWithOldCommitRecordsOpensAndIsUpgraded) {
  char tmpl[] = "/tmp/dbfs-format1-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(mkdir((dir + "/meta").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir + "/wal").c_str(), 0700), 0);
  Superblock sb = NewSuperblock();
  sb.format_version = 1;
  ASSERT_TRUE(WriteSuperblock(dir, sb).ok());
  {
    wal::WriterOptions wo;
    wo.uuid = sb.uuid;
    auto w = wal::Writer::Open(wal::DefaultFileSystem(), dir + "/wal", wo, 0);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->Append(wal::RecordType::kCommit,
                             EncodeRedoV1(1, 1, {Write{Table::kInodes, InoKey(1), "old"}}))
                    .ok());
    ASSERT_TRUE((*w)->Append(wal::RecordType::kCommit,
                             EncodeRedoV1(2, 1, {Write{Table::kInodes, InoKey(2), "older"}}))
                    .ok());
    ASSERT_TRUE((*w)->SyncAll().ok());
  }
  EXPECT_EQ(ReadSuperblock(dir)->format_version, 1u);
  {
    auto s = LocalStore::Open(dir, StoreOptions{});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->Get(kMaxCsn, Table::kInodes, InoKey(2))->value_or(""), "older");
    CommitRequest req;
    req.writes.push_back(Write{Table::kInodes, InoKey(3), "new"});
    req.meta.comm = "test";
    ASSERT_TRUE((*s)->Commit(std::move(req)).ok());
    ASSERT_TRUE((*s)->Close().ok());
  }
  EXPECT_EQ(ReadSuperblock(dir)->format_version, kFormatVersion);
  auto s = LocalStore::Open(dir, StoreOptions{});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->Get(kMaxCsn, Table::kInodes, InoKey(3))->value_or(""), "new");
  ASSERT_TRUE((*s)->Close().ok());
  s->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dbfs::mvcc
