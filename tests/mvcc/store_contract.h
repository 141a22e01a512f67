// The versioned-store contract (mvcc/store.h), run against every
// implementation: snapshot isolation, first committer wins, read-set and
// range validation (phantoms), benign changes, merges, tombstones, data
// references, reopen and recovery (every store persists), history.
//
// A type-parameterized suite: an implementation
// joins with a factory class (kName, Open() -> Result<unique_ptr<Store>>,
// each instance a fresh empty volume) and
//   INSTANTIATE_TYPED_TEST_SUITE_P(Name, StoreContract, FactoryType, FactoryNames);
// tests/mvcc/store_contract_test.cc (LocalStore) and
// tests/cluster/cluster_store_test.cc (ClusterStore on etcd + RADOS) do.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mvcc/store.h"

namespace dbfs::mvcc {

template <typename Factory>
class StoreContract : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    auto s = factory_.Open();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  // As if the process was killed: nothing flushed, nothing closed.
  void CrashAndReopen() {
    store_->TEST_Abandon();
    Reopen();
  }

  Store& s() { return *store_; }

  CommitResult Put(Table t, std::string key, std::string value, bool durable = false) {
    CommitRequest req;
    req.writes.push_back(Write{t, std::move(key), std::move(value)});
    req.durable = durable;
    auto r = s().Commit(std::move(req));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : CommitResult{};
  }
  void Delete(Table t, std::string key) {
    CommitRequest req;
    req.writes.push_back(Write{t, std::move(key), std::nullopt});
    ASSERT_TRUE(s().Commit(std::move(req)).ok());
  }
  std::optional<std::string> Get(Csn snap, Table t, const std::string& key) {
    auto r = s().Get(snap, t, key);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::nullopt;
  }
  std::vector<std::string> Keys(Csn snap, Table t, const std::string& begin,
                                const std::string& end) {
    std::vector<std::string> out;
    EXPECT_TRUE(s().Scan(snap, t, begin, end,
                         [&](std::string_view k, std::string_view) {
                           out.emplace_back(k);
                           return true;
                         })
                    .ok());
    return out;
  }
  // An optimistic commit of `writes` validated from `snap`.
  Result<CommitResult> CommitFrom(Csn snap, std::vector<Write> writes, ValidationSet v,
                                  Conflict* conflict) {
    v.snapshot = snap;
    for (const Write& w : writes) v.write_keys.push_back(KeyRef{w.table, w.key});
    CommitRequest req;
    req.writes = std::move(writes);
    req.validation = std::move(v);
    return s().Commit(std::move(req), conflict);
  }

  Factory factory_;
  std::unique_ptr<Store> store_;
};

TYPED_TEST_SUITE_P(StoreContract);

class FactoryNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

TYPED_TEST_P(StoreContract, ASnapshotSeesExactlyWhatWasCommittedBeforeIt) {
  this->Put(Table::kInodes, InoKey(7), "v1");
  Snapshot old = this->s().AcquireSnapshot();
  this->Put(Table::kInodes, InoKey(7), "v2");
  this->Put(Table::kInodes, InoKey(8), "new");
  Snapshot now = this->s().AcquireSnapshot();
  EXPECT_GT(now.csn(), old.csn());
  EXPECT_EQ(this->Get(old.csn(), Table::kInodes, InoKey(7)), "v1");
  EXPECT_EQ(this->Get(old.csn(), Table::kInodes, InoKey(8)), std::nullopt);
  EXPECT_EQ(this->Get(now.csn(), Table::kInodes, InoKey(7)), "v2");
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(8)), "new");
  EXPECT_EQ(this->Keys(old.csn(), Table::kInodes, "", ""), std::vector<std::string>{InoKey(7)});
  EXPECT_EQ(this->Keys(now.csn(), Table::kInodes, "", ""),
            (std::vector<std::string>{InoKey(7), InoKey(8)}));
  // Registered snapshots hold back GC: still true after the store flushed.
  ASSERT_TRUE(this->s().Flush().ok());
  EXPECT_LE(this->s().MinActiveSnapshot(), old.csn());
  EXPECT_EQ(this->Get(old.csn(), Table::kInodes, InoKey(7)), "v1");
}

TYPED_TEST_P(StoreContract, EveryCommitGetsTheNextCsnAndEmptyCommitsToo) {
  const Csn before = this->s().visible_csn();
  const CommitResult a = this->Put(Table::kInodes, InoKey(1), "a");
  auto empty = this->s().Commit(CommitRequest{});
  ASSERT_TRUE(empty.ok());
  const CommitResult b = this->Put(Table::kInodes, InoKey(1), "b");
  EXPECT_GT(a.csn, before);
  EXPECT_GT(empty->csn, a.csn);
  EXPECT_GT(b.csn, empty->csn);
  EXPECT_EQ(this->s().visible_csn(), b.csn);
  auto newest = this->s().NewestCsn(Table::kInodes, InoKey(1));
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(*newest, b.csn);
  EXPECT_EQ(*this->s().NewestCsn(Table::kInodes, InoKey(99)), 0u);
}

TYPED_TEST_P(StoreContract, TombstonesHideAKeyFromLaterSnapshotsOnly) {
  this->Put(Table::kXattrs, NameKey(4, "user.a"), "1");
  this->Put(Table::kXattrs, NameKey(4, "user.b"), "2");
  Snapshot before = this->s().AcquireSnapshot();
  this->Delete(Table::kXattrs, NameKey(4, "user.a"));
  EXPECT_EQ(this->Get(kMaxCsn, Table::kXattrs, NameKey(4, "user.a")), std::nullopt);
  EXPECT_EQ(this->Get(before.csn(), Table::kXattrs, NameKey(4, "user.a")), "1");
  EXPECT_EQ(this->Keys(kMaxCsn, Table::kXattrs, InoKey(4), InoKey(5)),
            std::vector<std::string>{NameKey(4, "user.b")});
  EXPECT_EQ(this->Keys(before.csn(), Table::kXattrs, InoKey(4), InoKey(5)).size(), 2u);
  // A deleted key can come back.
  this->Put(Table::kXattrs, NameKey(4, "user.a"), "again");
  EXPECT_EQ(this->Get(kMaxCsn, Table::kXattrs, NameKey(4, "user.a")), "again");
}

TYPED_TEST_P(StoreContract, FirstCommitterWinsOnAWrittenKey) {
  this->Put(Table::kInodes, InoKey(5), "0");
  Snapshot a = this->s().AcquireSnapshot();
  Snapshot b = this->s().AcquireSnapshot();
  Conflict c;
  auto first = this->CommitFrom(a.csn(), {Write{Table::kInodes, InoKey(5), "a"}}, {}, &c);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = this->CommitFrom(b.csn(), {Write{Table::kInodes, InoKey(5), "b"}}, {}, &c);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kConflict);
  EXPECT_EQ(c.kind, Conflict::Kind::kWrite);
  EXPECT_EQ(c.key.table, Table::kInodes);
  EXPECT_EQ(c.key.key, InoKey(5));
  // Nothing of the loser is visible; a transaction from a fresh snapshot wins.
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(5)), "a");
  Snapshot fresh = this->s().AcquireSnapshot();
  EXPECT_TRUE(this->CommitFrom(fresh.csn(), {Write{Table::kInodes, InoKey(5), "c"}}, {}, &c).ok());
}

TYPED_TEST_P(StoreContract, AChangedReadKeyFailsValidationUnlessTheChangeIsBenign) {
  this->Put(Table::kInodes, InoKey(1), "x1");
  this->Put(Table::kInodes, InoKey(2), "y1");
  Snapshot snap = this->s().AcquireSnapshot();
  this->Put(Table::kInodes, InoKey(1), "x2");  // someone changes what we read
  ValidationSet v;
  v.read_keys.push_back(KeyRef{Table::kInodes, InoKey(1)});
  Conflict c;
  auto r = this->CommitFrom(snap.csn(), {Write{Table::kInodes, InoKey(2), "y2"}}, v, &c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(c.kind, Conflict::Kind::kRead);
  EXPECT_EQ(c.key.key, InoKey(1));
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(2)), "y1");
  // The same change declared benign (before -> after is harmless) commits.
  int asked = 0;
  v.benign = [&](Table t, std::string_view before, std::string_view after) {
    ++asked;
    return t == Table::kInodes && before == "x1" && after == "x2";
  };
  EXPECT_TRUE(this->CommitFrom(snap.csn(), {Write{Table::kInodes, InoKey(2), "y2"}}, v, &c).ok());
  EXPECT_GT(asked, 0);
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(2)), "y2");
}

TYPED_TEST_P(StoreContract, AKeyAppearingOrVanishingInAReadRangeIsAPhantom) {
  this->Put(Table::kDirents, NameKey(10, "a"), "1");
  this->Put(Table::kDirents, NameKey(10, "b"), "1");
  ValidationSet listing;
  listing.read_ranges.push_back(RangeRef{Table::kDirents, InoKey(10), InoKey(11)});
  Conflict c;
  {
    Snapshot snap = this->s().AcquireSnapshot();
    this->Put(Table::kDirents, NameKey(11, "elsewhere"), "1");  // outside the range
    EXPECT_TRUE(
        this->CommitFrom(snap.csn(), {Write{Table::kInodes, InoKey(10), "r1"}}, listing, &c).ok());
  }
  {
    Snapshot snap = this->s().AcquireSnapshot();
    this->Put(Table::kDirents, NameKey(10, "ab"), "1");  // appears inside
    auto r = this->CommitFrom(snap.csn(), {Write{Table::kInodes, InoKey(10), "r2"}}, listing, &c);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(c.kind, Conflict::Kind::kPhantom);
    EXPECT_EQ(c.key.key, NameKey(10, "ab"));
  }
  {
    Snapshot snap = this->s().AcquireSnapshot();
    this->Delete(Table::kDirents, NameKey(10, "b"));  // vanishes
    auto r = this->CommitFrom(snap.csn(), {Write{Table::kInodes, InoKey(10), "r3"}}, listing, &c);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(c.kind, Conflict::Kind::kPhantom);
    EXPECT_EQ(c.key.key, NameKey(10, "b"));
  }
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(10)), "r1");
}

TYPED_TEST_P(StoreContract, MergesCombineWithTheLatestCommittedValue) {
  this->Put(Table::kInodes, InoKey(3), "10");
  Snapshot snap = this->s().AcquireSnapshot();
  this->Put(Table::kInodes, InoKey(3), "15");  // a concurrent change of the merged key
  std::optional<std::string> seen;
  CommitRequest req;
  req.writes.push_back(Write{Table::kDirents, NameKey(3, "x"), "child"});
  req.validation.emplace().snapshot = snap.csn();
  req.validation->write_keys.push_back(KeyRef{Table::kDirents, NameKey(3, "x")});
  req.merges.push_back(
      Merge{Table::kInodes, InoKey(3),
            [&](const std::optional<std::string>& latest) -> Result<std::optional<std::string>> {
              seen = latest;
              return std::optional<std::string>(std::to_string(std::stoi(*latest) + 1));
            }});
  auto r = this->s().Commit(std::move(req));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(seen, "15");
  EXPECT_EQ(this->Get(r->csn, Table::kInodes, InoKey(3)), "16");
  EXPECT_EQ(this->Get(r->csn, Table::kDirents, NameKey(3, "x")), "child");
  // A merge may refuse: nothing of the batch commits, the key is named.
  CommitRequest refused;
  refused.writes.push_back(Write{Table::kDirents, NameKey(3, "y"), "child"});
  refused.merges.push_back(
      Merge{Table::kInodes, InoKey(4),
            [](const std::optional<std::string>& latest) -> Result<std::optional<std::string>> {
              if (!latest) return Status::Conflict("gone");
              return latest;
            }});
  Conflict c;
  auto no = this->s().Commit(std::move(refused), &c);
  ASSERT_FALSE(no.ok());
  EXPECT_EQ(no.status().code(), Code::kConflict);
  EXPECT_EQ(c.kind, Conflict::Kind::kMerge);
  EXPECT_EQ(c.key.key, InoKey(4));
  EXPECT_EQ(this->Get(kMaxCsn, Table::kDirents, NameKey(3, "y")), std::nullopt);
}

TYPED_TEST_P(StoreContract, DataIsReadBackByReferenceInAnyPiece) {
  std::string bytes;
  for (int i = 0; i < 100000; ++i) bytes.push_back(static_cast<char>('a' + i % 26));
  auto ref = this->s().AppendData(bytes);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->length, bytes.size());
  auto small = this->s().AppendData("tiny");
  ASSERT_TRUE(small.ok());
  this->Put(Table::kExtents, ChunkKey(1, 0), "refers to the data", /*durable=*/true);
  std::string all(bytes.size(), '\0');
  ASSERT_TRUE(this->s().ReadData(*ref, 0, bytes.size(), all.data()).ok());
  EXPECT_EQ(all, bytes);
  std::string piece(1000, '\0');
  ASSERT_TRUE(this->s().ReadData(*ref, 50000, 1000, piece.data()).ok());
  EXPECT_EQ(piece, bytes.substr(50000, 1000));
  std::string t(4, '\0');
  ASSERT_TRUE(this->s().ReadData(*small, 0, 4, t.data()).ok());
  EXPECT_EQ(t, "tiny");
  // Past the end of what the reference names: an error, not other bytes.
  EXPECT_FALSE(this->s().ReadData(*small, 2, 4, t.data()).ok());
}

// Rounds in which every thread reads the counter at a snapshot taken after
// all have synchronized, then all try to commit an increment: exactly one
// commit per round may succeed, and the counter ends at the number of
// successes — no lost update, whatever the interleaving.
TYPED_TEST_P(StoreContract, ConcurrentIncrementsFromOneSnapshotCommitExactlyOnce) {
  this->Put(Table::kInodes, InoKey(42), "0");
  constexpr int kThreads = 4, kRounds = 25;
  std::barrier read_done(kThreads), commit_done(kThreads);
  std::atomic<int> wins{0};
  std::vector<int> wins_per_round(kRounds, 0);
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        Snapshot snap = this->s().AcquireSnapshot();
        auto v = this->s().Get(snap.csn(), Table::kInodes, InoKey(42));
        read_done.arrive_and_wait();  // everyone read the same value
        CommitRequest req;
        if (v.ok() && *v) {
          req.writes.push_back(
              Write{Table::kInodes, InoKey(42), std::to_string(std::stoi(**v) + 1)});
        }
        req.validation.emplace().snapshot = snap.csn();
        req.validation->write_keys.push_back(KeyRef{Table::kInodes, InoKey(42)});
        auto r = this->s().Commit(std::move(req));
        if (r.ok()) {
          ++wins;
          std::lock_guard g(mu);
          ++wins_per_round[round];
        } else {
          EXPECT_EQ(r.status().code(), Code::kConflict) << r.status().ToString();
        }
        commit_done.arrive_and_wait();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int round = 0; round < kRounds; ++round) EXPECT_EQ(wins_per_round[round], 1) << round;
  EXPECT_EQ(wins.load(), kRounds);
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(42)), std::to_string(kRounds));
}

TYPED_TEST_P(StoreContract, InodeNumbersAreUniqueAndIncreasing) {
  std::vector<uint64_t> seen;
  for (int i = 0; i < 100; ++i) seen.push_back(this->s().AllocateIno());
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i], seen[i - 1]);
  EXPECT_GT(this->s().next_ino(), seen.back());
}

TYPED_TEST_P(StoreContract, DurableCommitsSurviveACrashAndNothingGoesBackwards) {
  auto data = this->s().AppendData("file bytes");
  ASSERT_TRUE(data.ok());
  uint64_t ino = 0;
  for (int i = 0; i < 3; ++i) ino = this->s().AllocateIno();
  this->Put(Table::kInodes, InoKey(ino), "inode", /*durable=*/true);
  this->Delete(Table::kInodes, InoKey(1));
  const CommitResult last =
      this->Put(Table::kExtents, ChunkKey(ino, 0), "extent", /*durable=*/true);
  this->CrashAndReopen();
  EXPECT_EQ(this->s().visible_csn(), last.csn);
  EXPECT_EQ(this->Get(kMaxCsn, Table::kInodes, InoKey(ino)), "inode");
  EXPECT_EQ(this->Get(kMaxCsn, Table::kExtents, ChunkKey(ino, 0)), "extent");
  std::string back(10, '\0');
  ASSERT_TRUE(this->s().ReadData(*data, 0, 10, back.data()).ok());
  EXPECT_EQ(back, "file bytes");
  EXPECT_GT(this->s().AllocateIno(), ino);
  // A clean close and reopen keeps everything too.
  ASSERT_TRUE(this->s().Close().ok());
  this->Reopen();
  EXPECT_EQ(this->s().visible_csn(), last.csn);
  EXPECT_EQ(this->Get(kMaxCsn, Table::kExtents, ChunkKey(ino, 0)), "extent");
}

// ---- history (mvcc/store.h "History") ----

// Waits (bounded) until a flush has run (the store flushes in the background
// every 50 ms here): GC has had its chance.
template <typename S>
void FlushNow(S& s) {
  ASSERT_TRUE(s.Flush().ok());
}

TYPED_TEST_P(StoreContract, ANamedSnapshotKeepsItsStateThroughGcAndReopen) {
  this->Put(Table::kInodes, InoKey(7), "v1");
  CommitMeta who;
  who.uid = 5;
  auto snap = this->s().CreateSnapshot("s1", who);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(this->s().CreateSnapshot("s1", who).status().code(), Code::kExists);
  for (int i = 2; i < 6; ++i) this->Put(Table::kInodes, InoKey(7), "v" + std::to_string(i));
  this->Delete(Table::kInodes, InoKey(7));
  FlushNow(this->s());
  {
    auto old = this->s().AcquireSnapshotAt(snap->csn);
    ASSERT_TRUE(old.ok()) << old.status().ToString();
    EXPECT_EQ(this->Get(old->csn(), Table::kInodes, InoKey(7)), "v1");
  }
  // A state neither the snapshot nor a window keeps is refused.
  EXPECT_EQ(this->s().AcquireSnapshotAt(snap->csn + 2).status().code(), Code::kNotFound);
  this->Reopen();
  auto list = this->s().ListSnapshots();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "s1");
  EXPECT_EQ((*list)[0].csn, snap->csn);
  EXPECT_EQ((*list)[0].uid, 5u);
  {
    auto old = this->s().AcquireSnapshotAt(snap->csn);
    ASSERT_TRUE(old.ok());
    EXPECT_EQ(this->Get(old->csn(), Table::kInodes, InoKey(7)), "v1");
  }
  // Deleted: its versions go, its state is no longer readable.
  ASSERT_TRUE(this->s().DeleteSnapshot("s1").ok());
  EXPECT_EQ(this->s().DeleteSnapshot("s1").code(), Code::kNotFound);
  FlushNow(this->s());
  EXPECT_EQ(this->s().AcquireSnapshotAt(snap->csn).status().code(), Code::kNotFound);
}

TYPED_TEST_P(StoreContract, TheRetentionWindowKeepsEveryStateAndTheLogSaysWhoChangedWhat) {
  this->s().SetHistoryWindow(3600ull * 1000000000ull);
  std::vector<Csn> csns;
  for (int i = 0; i < 5; ++i) {
    CommitRequest req;
    req.writes.push_back(Write{Table::kInodes, InoKey(9), "w" + std::to_string(i)});
    req.meta.uid = 1000 + i;
    req.meta.pid = 42;
    req.meta.comm = "writer";
    auto r = this->s().Commit(std::move(req));
    ASSERT_TRUE(r.ok());
    csns.push_back(r->csn);
  }
  FlushNow(this->s());
  FlushNow(this->s());
  for (int i = 0; i < 5; ++i) {
    auto old = this->s().AcquireSnapshotAt(csns[i]);
    ASSERT_TRUE(old.ok()) << old.status().ToString();
    EXPECT_EQ(this->Get(old->csn(), Table::kInodes, InoKey(9)), "w" + std::to_string(i));
  }
  std::vector<CommitRecord> log;
  ASSERT_TRUE(this->s()
                  .ScanCommits(csns[0] - 1, kMaxCsn, /*newest_first=*/true,
                               [&](const CommitRecord& r) {
                                 log.push_back(r);
                                 return true;
                               })
                  .ok());
  ASSERT_EQ(log.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    const CommitRecord& r = log[4 - i];
    EXPECT_EQ(r.csn, csns[i]);
    EXPECT_EQ(r.meta.uid, 1000u + i);
    EXPECT_EQ(r.meta.comm, "writer");
    ASSERT_EQ(r.keys.size(), 1u);
    EXPECT_EQ(r.keys[0].key, InoKey(9));
    if (i > 0) {
      EXPECT_GT(r.time_ns, log[5 - i].time_ns);
    }
    // The state at a commit's time is that commit's.
    auto at = this->s().CsnAt(r.time_ns);
    ASSERT_TRUE(at.ok());
    EXPECT_EQ(*at, r.csn);
  }
  // Times survive a crash (they are in the WAL) and a reopen.
  this->CrashAndReopen();
  this->s().SetHistoryWindow(3600ull * 1000000000ull);
  auto at = this->s().CsnAt(log[2].time_ns);
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_EQ(*at, log[2].csn);
}

TYPED_TEST_P(StoreContract, WithoutHistoryOldStatesGo) {
  this->Put(Table::kInodes, InoKey(3), "a");
  const Csn first = this->s().visible_csn();
  this->Put(Table::kInodes, InoKey(3), "b");
  FlushNow(this->s());
  FlushNow(this->s());
  EXPECT_EQ(this->s().AcquireSnapshotAt(first).status().code(), Code::kNotFound);
  EXPECT_EQ(this->s().retention().horizon, this->s().visible_csn());
}

REGISTER_TYPED_TEST_SUITE_P(StoreContract,
                            ASnapshotSeesExactlyWhatWasCommittedBeforeIt,
                            EveryCommitGetsTheNextCsnAndEmptyCommitsToo,
                            TombstonesHideAKeyFromLaterSnapshotsOnly,
                            FirstCommitterWinsOnAWrittenKey,
                            AChangedReadKeyFailsValidationUnlessTheChangeIsBenign,
                            AKeyAppearingOrVanishingInAReadRangeIsAPhantom,
                            MergesCombineWithTheLatestCommittedValue,
                            DataIsReadBackByReferenceInAnyPiece,
                            ConcurrentIncrementsFromOneSnapshotCommitExactlyOnce,
                            InodeNumbersAreUniqueAndIncreasing,
                            DurableCommitsSurviveACrashAndNothingGoesBackwards,
                            ANamedSnapshotKeepsItsStateThroughGcAndReopen,
                            TheRetentionWindowKeepsEveryStateAndTheLogSaysWhoChangedWhat,
                            WithoutHistoryOldStatesGo);

}  // namespace dbfs::mvcc
