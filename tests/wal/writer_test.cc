// Writer: group commit, sticky errors, payload reads, checkpoint removal,
// concurrency and simulated power cuts.
#include "wal/writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/coding.h"
#include "tests/wal/wal_test_util.h"
#include "wal/reader.h"

namespace dbfs::wal::testing {
namespace {

using OpKind = FaultInjectionFileSystem::OpKind;

class WriterTest : public WalTest {};

// 16 threads each Append + SyncTo 200 times. The sync hook holds every leader
// inside fdatasync until each running thread has appended a record that is
// not yet durable (and so is waiting in, or entering, SyncTo). Then the next
// round covers all of them, a thread's request is served within two rounds,
// and the bound below holds for every interleaving: no sleeps.
TEST_P(WriterTest, GroupCommitSharesOneSyncAmongWaiters) {
  FaultInjectionFileSystem ffs(fs());
  auto w = OpenWriter(&ffs, Options(), 0);
  ASSERT_TRUE(w);
  constexpr int kThreads = 16, kIters = 200;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Lsn> pending(kThreads, 0);      // end LSN of each thread's latest record
  std::vector<bool> running(kThreads, true);  // has iterations left
  ffs.SetSyncHook([&] {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] {
      const Lsn synced = w->synced_lsn();  // constant while this leader syncs
      for (int t = 0; t < kThreads; ++t) {
        if (running[t] && pending[t] <= synced) return false;
      }
      return true;
    });
  });
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string payload(100, static_cast<char>('a' + t));
      for (int i = 0; i < kIters; ++i) {
        auto r = w->Append(RecordType::kCommit, payload);
        if (!r.ok()) {
          ++failures;
          break;
        }
        {
          std::lock_guard<std::mutex> l(mu);
          pending[t] = r->end_lsn;
        }
        cv.notify_all();
        const Status s = w->SyncTo(r->end_lsn);
        if (!s.ok() || w->synced_lsn() < r->end_lsn) ++failures;
      }
      {
        std::lock_guard<std::mutex> l(mu);
        running[t] = false;
      }
      cv.notify_all();
    });
  }
  for (auto& t : threads) t.join();
  ffs.SetSyncHook(nullptr);
  EXPECT_EQ(failures.load(), 0);
  const WriterStats st = w->stats();
  EXPECT_EQ(st.appends, uint64_t{kThreads} * kIters);
  EXPECT_EQ(st.sync_requests, uint64_t{kThreads} * kIters);
  // At most two rounds per iteration (plus the sync in Writer::Open), not one
  // per request.
  EXPECT_LE(st.syncs, st.sync_requests / 2) << "syncs " << st.syncs;
  EXPECT_LE(st.syncs, uint64_t{2} * kIters + 1) << "syncs " << st.syncs;
  EXPECT_EQ(w->synced_lsn(), w->written_lsn());
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  EXPECT_EQ(s.records.size(), uint64_t{kThreads} * kIters);
}

// A failed fdatasync: every waiter of that round gets kIOError, everything
// after gets kReadOnly, and the writer neither writes nor syncs again.
TEST_P(WriterTest, SyncErrorIsStickyForAllWaiters) {
  FaultInjectionFileSystem ffs(fs());
  auto w = OpenWriter(&ffs, Options(), 0);
  ASSERT_TRUE(w);
  constexpr int kThreads = 8;
  // Hold the leader until every thread is inside SyncTo (stats() takes the
  // writer's mutex, which a waiter releases only by waiting), then fail.
  Writer* writer = w.get();
  ffs.SetSyncHook([&] {
    while (writer->stats().sync_requests < kThreads) std::this_thread::yield();
  });
  ffs.FailAfter(OpKind::kSync, 1);
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = writer->Append(RecordType::kCommit, "record " + std::to_string(t));
      if (!r.ok()) {
        results[t] = r.TakeStatus();
        return;
      }
      results[t] = writer->SyncTo(r->end_lsn);
    });
  }
  for (auto& t : threads) t.join();
  ffs.SetSyncHook(nullptr);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(results[t].code(), Code::kIOError) << t << ": " << results[t].ToString();
  }
  EXPECT_EQ(ffs.injected(), 1u);
  EXPECT_LT(w->synced_lsn(), w->written_lsn());

  const uint64_t syncs = ffs.count(OpKind::kSync);
  const uint64_t writes = ffs.count(OpKind::kWrite);
  for (int i = 0; i < 3; ++i) {
    const Status s = w->SyncAll();
    EXPECT_EQ(s.code(), Code::kReadOnly);
    EXPECT_NE(s.message().find("WAL failed earlier"), std::string::npos) << s.ToString();
    EXPECT_EQ(w->Append(RecordType::kCommit, "more").status().code(), Code::kReadOnly);
    EXPECT_EQ(w->SyncTo(0).code(), Code::kReadOnly);
  }
  EXPECT_EQ(ffs.count(OpKind::kSync), syncs) << "an fsync was retried after a failure";
  EXPECT_EQ(ffs.count(OpKind::kWrite), writes) << "the writer wrote after a failure";
  // Reads keep working.
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ASSERT_EQ(s.records.size(), size_t{kThreads});
  char buf[6];
  ASSERT_OK(w->ReadPayload(s.records[0].segment, s.records[0].payload_offset, 0, 6, buf));
  EXPECT_EQ(std::string(buf, 6), "record");
}

// A full disk is not sticky (issue 12 item 12): the failed append leaves
// nothing behind, and appends work again once space is back.
TEST_P(WriterTest, NoSpaceIsNotSticky) {
  FaultInjectionFileSystem ffs(fs());
  auto w = OpenWriter(&ffs, Options(), 0);
  ASSERT_TRUE(w);
  auto first = w->Append(RecordType::kData, "kept");
  ASSERT_TRUE(first.ok());
  ffs.FailAfter(OpKind::kWrite, 1, ENOSPC);
  EXPECT_EQ(w->Append(RecordType::kData, "refused").status().code(), Code::kNoSpace);
  auto after = w->Append(RecordType::kData, "after");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->lsn, first->end_lsn) << "the refused record left bytes behind";
  ASSERT_OK(w->SyncTo(after->end_lsn));
  w.reset();
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ASSERT_EQ(s.records.size(), 2u);
  EXPECT_EQ(s.records[0].payload, "kept");
  EXPECT_EQ(s.records[1].payload, "after");
}

TEST_P(WriterTest, WriteErrorIsSticky) {
  FaultInjectionFileSystem ffs(fs());
  auto w = OpenWriter(&ffs, Options(), 0);
  ASSERT_TRUE(w);
  auto first = w->Append(RecordType::kData, "kept");
  ASSERT_TRUE(first.ok());
  ffs.FailAfter(OpKind::kWrite, 1, EIO);
  EXPECT_EQ(w->Append(RecordType::kData, "lost").status().code(), Code::kIOError);
  const uint64_t writes = ffs.count(OpKind::kWrite);
  const uint64_t syncs = ffs.count(OpKind::kSync);
  auto again = w->Append(RecordType::kData, "lost too");
  EXPECT_EQ(again.status().code(), Code::kReadOnly);
  EXPECT_NE(again.status().message().find("Input/output error"), std::string::npos)
      << again.status().ToString();
  EXPECT_EQ(w->SyncTo(first->end_lsn).code(), Code::kReadOnly);
  EXPECT_EQ(ffs.count(OpKind::kWrite), writes);
  EXPECT_EQ(ffs.count(OpKind::kSync), syncs);
  w.reset();
  // The log up to the failure is intact and can be continued.
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ASSERT_EQ(s.records.size(), 1u);
  EXPECT_EQ(s.records[0].payload, "kept");
  auto w2 = OpenWriter(fs(), Options(), s.end.end);
  ASSERT_TRUE(w2);
  ASSERT_TRUE(w2->Append(RecordType::kData, "after").ok());
  ASSERT_OK(w2->SyncAll());
}

// A roll syncs the completed segment first; when that fails, the writer is
// poisoned and no successor segment exists.
TEST_P(WriterTest, RollSyncErrorIsSticky) {
  FaultInjectionFileSystem ffs(fs());
  auto w = OpenWriter(&ffs, Options(4 << 10), 0);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Append(RecordType::kData, std::string(3000, 'x')).ok());
  ffs.FailAfter(OpKind::kSync, 1);
  EXPECT_EQ(w->Append(RecordType::kData, std::string(3000, 'y')).status().code(), Code::kIOError);
  EXPECT_FALSE(fs()->Exists(SegPath(2)));
  EXPECT_EQ(w->Append(RecordType::kData, "z").status().code(), Code::kReadOnly);
  EXPECT_EQ(w->SyncAll().code(), Code::kReadOnly);
}

TEST_P(WriterTest, SegmentDirSyncErrorIsSticky) {
  FaultInjectionFileSystem ffs(fs());
  auto w = OpenWriter(&ffs, Options(4 << 10), 0);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->Append(RecordType::kData, std::string(3000, 'x')).ok());
  ffs.FailAfter(OpKind::kSync, 2);  // the roll's fdatasync passes, its SyncDir fails
  EXPECT_EQ(w->Append(RecordType::kData, std::string(3000, 'y')).status().code(), Code::kIOError);
  EXPECT_EQ(w->Append(RecordType::kData, "z").status().code(), Code::kReadOnly);
}

TEST_P(WriterTest, RejectsBadArguments) {
  WriterOptions o = Options();
  o.uuid = "short";
  EXPECT_EQ(Writer::Open(fs(), dir(), o, 0).status().code(), Code::kInvalid);
  o = Options(10);
  EXPECT_EQ(Writer::Open(fs(), dir(), o, 0).status().code(), Code::kInvalid);
  EXPECT_EQ(Writer::Open(fs(), dir(), Options(), MakeLsn(1, 5)).status().code(), Code::kInvalid);
  auto w = OpenWriter(fs(), Options(), 0);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->Append(RecordType::kSegmentHeader, "x").status().code(), Code::kInvalid);
  w.reset();
  // Resuming past the end of the segment is corruption, in a missing one too.
  EXPECT_EQ(Writer::Open(fs(), dir(), Options(), MakeLsn(1, 1000)).status().code(),
            Code::kCorruption);
  EXPECT_EQ(Writer::Open(fs(), dir(), Options(), MakeLsn(2, 100)).status().code(),
            Code::kCorruption);
}

TEST_P(WriterTest, SyncToIsMonotonicAndClamped) {
  auto w = OpenWriter(fs(), Options(), 0);
  ASSERT_TRUE(w);
  auto r = w->Append(RecordType::kCommit, "abc");
  ASSERT_TRUE(r.ok());
  EXPECT_LT(w->synced_lsn(), r->end_lsn);
  ASSERT_OK(w->SyncTo(r->lsn + 1));
  EXPECT_GE(w->synced_lsn(), r->lsn + 1);
  ASSERT_OK(w->SyncTo(~uint64_t{0}));  // clamped to written_lsn()
  EXPECT_EQ(w->synced_lsn(), w->written_lsn());
  const uint64_t syncs = w->stats().syncs;
  ASSERT_OK(w->SyncTo(r->end_lsn));  // already durable: no fdatasync
  EXPECT_EQ(w->stats().syncs, syncs);
  EXPECT_EQ(w->stats().sync_requests, 3u);
}

TEST_P(WriterTest, ReadPayloadReturnsTheAppendedBytes) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  struct Item {
    AppendResult r;
    std::string payload;
  };
  std::vector<Item> items;
  {
    auto w = OpenWriter(fs(), Options(64 << 10), 0);
    ASSERT_TRUE(w);
    for (int i = 0; i < 50; ++i) {
      std::string p = RandomBytes(&rng, rng() % 20000);
      auto r = w->Append(RecordType::kData, p);
      ASSERT_TRUE(r.ok());
      items.push_back({*r, std::move(p)});
    }
    ASSERT_GE(w->stats().segments_created, 5u);
    // Concurrent readers while another thread appends.
    std::atomic<int> bad{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 4; ++t) {
      readers.emplace_back([&, t] {
        std::mt19937_64 r(seed + t);
        std::string buf;
        for (int i = 0; i < 300; ++i) {
          const Item& it = items[r() % items.size()];
          if (it.payload.empty()) continue;
          const size_t off = r() % it.payload.size();
          const size_t n = r() % (it.payload.size() - off + 1);
          buf.resize(n);
          if (!w->ReadPayload(it.r.segment, it.r.payload_offset, off, n, buf.data()).ok() ||
              buf != it.payload.substr(off, n)) {
            ++bad;
          }
        }
      });
    }
    std::thread appender([&] {
      for (int i = 0; i < 100; ++i) {
        if (!w->Append(RecordType::kData, std::string(1000, 'q')).ok()) ++bad;
      }
    });
    for (auto& t : readers) t.join();
    appender.join();
    EXPECT_EQ(bad.load(), 0);
    // Past the end of the segment file.
    const Item& last = items.back();
    std::string big(1 << 20, '\0');
    EXPECT_EQ(
        w->ReadPayload(last.r.segment, last.r.payload_offset, 0, big.size(), big.data()).code(),
        Code::kCorruption);
  }
  // A reopened writer reads the old payloads.
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  auto w = OpenWriter(fs(), Options(64 << 10), s.end.end);
  ASSERT_TRUE(w);
  for (const Item& it : items) {
    std::string buf(it.payload.size(), '\0');
    ASSERT_OK(w->ReadPayload(it.r.segment, it.r.payload_offset, 0, buf.size(), buf.data()));
    ASSERT_EQ(buf, it.payload);
  }
}

TEST_P(WriterTest, RemoveSegmentsBefore) {
  auto w = OpenWriter(fs(), Options(4 << 10), 0);
  ASSERT_TRUE(w);
  std::vector<AppendResult> results;
  for (int i = 0; i < 40; ++i) {
    auto r = w->Append(RecordType::kCommit, std::string(1000, static_cast<char>('a' + i % 26)));
    ASSERT_TRUE(r.ok());
    results.push_back(*r);
  }
  const uint32_t current = results.back().segment;
  ASSERT_GE(current, 5u);
  char c;
  ASSERT_OK(w->ReadPayload(1, results[0].payload_offset, 0, 1, &c));  // cached handle
  EXPECT_EQ(w->RemoveSegmentsBefore(current + 1).code(), Code::kInvalid);
  ASSERT_OK(w->RemoveSegmentsBefore(3));
  EXPECT_FALSE(fs()->Exists(SegPath(1)));
  EXPECT_FALSE(fs()->Exists(SegPath(2)));
  EXPECT_TRUE(fs()->Exists(SegPath(3)));
  EXPECT_EQ(w->ReadPayload(1, results[0].payload_offset, 0, 1, &c).code(), Code::kNotFound);
  ASSERT_OK(w->RemoveSegmentsBefore(3));  // nothing left to remove
  // The log now starts at segment 3.
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ASSERT_FALSE(s.records.empty());
  EXPECT_EQ(s.records.front().segment, 3u);
  EXPECT_EQ(s.records.back().lsn, results.back().lsn);
  ASSERT_OK(w->RemoveSegmentsBefore(current));
  auto segs = ListSegments(fs(), dir());
  ASSERT_TRUE(segs.ok());
  EXPECT_EQ(*segs, std::vector<uint32_t>{current});
  ASSERT_TRUE(w->Append(RecordType::kCommit, "still writing").ok());
  ASSERT_OK(w->SyncAll());
  EXPECT_EQ(ScanLog(fs(), dir()).records.size(),
            static_cast<size_t>(
                std::count_if(results.begin(), results.end(),
                              [&](const AppendResult& r) { return r.segment == current; })) +
                1);
}

// Concurrent appenders: log order == call order per thread, nothing lost.
TEST_P(WriterTest, ConcurrentAppendsKeepPerThreadOrder) {
  auto w = OpenWriter(fs(), Options(32 << 10), 0);
  ASSERT_TRUE(w);
  constexpr int kThreads = 8, kIters = 300;
  std::vector<std::vector<AppendResult>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        std::string p;
        PutLE32(&p, static_cast<uint32_t>(t));
        PutLE32(&p, static_cast<uint32_t>(i));
        p.append(static_cast<size_t>(i % 97), 'p');
        auto r = (i % 3 == 0) ? w->AppendV(RecordType::kData, {std::string_view(p).substr(0, 4),
                                                               std::string_view(p).substr(4)})
                              : w->Append(RecordType::kCommit, p);
        if (!r.ok()) return;
        results[t].push_back(*r);
        if (i % 10 == 0 && !w->SyncTo(r->end_lsn).ok()) return;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) ASSERT_EQ(results[t].size(), size_t{kIters});
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ASSERT_EQ(s.records.size(), size_t{kThreads} * kIters);
  std::vector<int> next(kThreads, 0);
  for (const Record& r : s.records) {
    ASSERT_GE(r.payload.size(), 8u);
    const uint32_t t = DecodeLE32(r.payload.data());
    const uint32_t i = DecodeLE32(r.payload.data() + 4);
    ASSERT_LT(t, static_cast<uint32_t>(kThreads));
    ASSERT_EQ(i, static_cast<uint32_t>(next[t])) << "thread " << t;
    ASSERT_EQ(r.lsn, results[t][i].lsn);
    ++next[t];
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, WriterTest, ::testing::Values(Backend::kMem, Backend::kPosix),
                         BackendName);

// Simulated power cuts at random points of a workload, with every crash mode
// of MemFileSystem: recovery never reports corruption, returns a prefix of
// what was appended, and loses no record whose SyncTo succeeded. Several
// crash/recover/continue cycles per seed.
TEST(WriterPowerCutTest, RecoversAPrefixWithEverySyncedRecord) {
  const uint64_t base_seed = std::random_device{}();
  SCOPED_TRACE("base seed " + std::to_string(base_seed));
  const MemFileSystem::CrashMode modes[] = {MemFileSystem::CrashMode::kDropAll,
                                            MemFileSystem::CrashMode::kKeepRandomPrefix,
                                            MemFileSystem::CrashMode::kKeepRandomPages};
  uint64_t torn_tails = 0, records_lost = 0, records_kept_unsynced = 0;
  for (uint64_t iter = 0; iter < 60; ++iter) {
    const uint64_t seed = base_seed + iter;
    const MemFileSystem::CrashMode mode = modes[iter % 3];
    SCOPED_TRACE("seed " + std::to_string(seed) + " mode " + std::to_string(iter % 3));
    std::mt19937_64 rng(seed);
    MemFileSystem fs;
    const std::string dir = "/wal";
    WriterOptions o;
    o.uuid = kUuid;
    o.segment_size = 8 << 10;
    struct Item {
      Lsn lsn, end;
      std::string payload;
    };
    std::vector<Item> model;  // what recovery may return, in order
    Lsn end = 0;
    for (int cycle = 0; cycle < 4; ++cycle) {
      // Every record ending at or before `durable` must survive; Writer::Open
      // syncs what recovery found.
      Lsn durable = end;
      {
        auto w = Writer::Open(&fs, dir, o, end);
        ASSERT_TRUE(w.ok()) << w.status().ToString();
        const int ops = 1 + static_cast<int>(rng() % 60);
        for (int i = 0; i < ops; ++i) {
          const size_t size = (rng() % 8 == 0) ? rng() % 12000 : rng() % 600;
          std::string p = RandomBytes(&rng, size);
          auto r = (*w)->Append(RecordType::kCommit, p);
          ASSERT_TRUE(r.ok()) << r.status().ToString();
          model.push_back({r->lsn, r->end_lsn, std::move(p)});
          if (rng() % 5 == 0) {
            const Lsn upto =
                model[model.size() - 1 - rng() % std::min<size_t>(model.size(), 3)].end;
            ASSERT_OK((*w)->SyncTo(upto));
            durable = std::max(durable, upto);
          }
        }
      }  // the process dies: nothing more is synced
      fs.DropUnsynced(mode, seed * 31 + static_cast<uint64_t>(cycle));

      Scan s = ScanLog(&fs, dir);
      ASSERT_OK(s.status);
      ASSERT_LE(s.records.size(), model.size());
      for (size_t i = 0; i < s.records.size(); ++i) {
        ASSERT_EQ(s.records[i].lsn, model[i].lsn) << i;
        ASSERT_EQ(s.records[i].payload, model[i].payload) << i;
      }
      for (size_t i = s.records.size(); i < model.size(); ++i) {
        ASSERT_GT(model[i].end, durable) << "synced record " << i << " lost";
      }
      for (const Record& r : s.records) records_kept_unsynced += r.end_lsn > durable;
      torn_tails += s.end.torn_tail;
      records_lost += model.size() - s.records.size();
      model.resize(s.records.size());
      end = s.end.end;
    }
  }
  // The workload really exercised crashes: torn tails, lost unsynced records,
  // and unsynced records that happened to survive.
  EXPECT_GT(torn_tails, 0u);
  EXPECT_GT(records_lost, 0u);
  EXPECT_GT(records_kept_unsynced, 0u);
}

}  // namespace
}  // namespace dbfs::wal::testing
