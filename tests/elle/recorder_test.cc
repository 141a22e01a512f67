#include "elle/recorder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "elle/list_append.h"

namespace dbfs::elle {
namespace {

TEST(HistoryRecorder, AssignsIndicesAndTimesAndPairs) {
  int64_t clock = 100;
  HistoryRecorder rec(HistoryRecorder::Options{[&] { return clock; }, nullptr, true});
  auto i0 = rec.Invoke(7, {Mop::Append(1, 1), Mop::Read(2, {9})});
  ASSERT_TRUE(i0.ok());
  EXPECT_EQ(*i0, 0);
  clock = 50;  // a clock going backwards is clamped: :time never decreases
  auto i1 = rec.Complete(7, Op::kOk, std::vector<Mop>{Mop::Append(1, 1), Mop::Read(2, {})});
  ASSERT_TRUE(i1.ok());
  EXPECT_EQ(*i1, 1);
  clock = 300;
  ASSERT_TRUE(rec.Invoke(7, {Mop::Append(1, 2)}).ok());
  ASSERT_TRUE(rec.Complete(7, Op::kFail).ok());  // repeats the invocation's value

  History h = rec.Snapshot();
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].value[1], Mop::Read(2));  // invocations read nil
  EXPECT_EQ(h[0].time, 100);
  EXPECT_EQ(h[1].time, 100);
  EXPECT_EQ(h[3].time, 300);
  EXPECT_EQ(h[3].type, Op::kFail);
  EXPECT_EQ(h[3].value, (std::vector<Mop>{Mop::Append(1, 2)}));
  for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(h[i].index, static_cast<int64_t>(i));
  EXPECT_EQ(rec.size(), 4);
  EXPECT_TRUE(rec.OpenProcesses().empty());
}

TEST(HistoryRecorder, RejectsMisuse) {
  HistoryRecorder rec;
  EXPECT_FALSE(rec.Complete(1, Op::kOk).ok());  // never invoked
  ASSERT_TRUE(rec.Invoke(1, {}).ok());
  EXPECT_FALSE(rec.Invoke(1, {}).ok());  // still open
  EXPECT_FALSE(rec.Complete(1, Op::kInvoke).ok());
  EXPECT_EQ(rec.OpenProcesses(), (std::vector<int64_t>{1}));
  EXPECT_EQ(rec.size(), 1);
}

TEST(HistoryRecorder, SinkFailureIsSticky) {
  std::ostringstream sink;
  HistoryRecorder rec(HistoryRecorder::Options{nullptr, &sink, false});
  ASSERT_TRUE(rec.Invoke(1, {Mop::Append(1, 1)}).ok());
  sink.setstate(std::ios::badbit);
  EXPECT_EQ(rec.Complete(1, Op::kOk).status().code(), Code::kIOError);
  sink.clear();
  EXPECT_EQ(rec.Invoke(2, {}).status().code(), Code::kIOError);
  EXPECT_FALSE(rec.sink_status().ok());
  EXPECT_TRUE(rec.Snapshot().empty());  // keep_in_memory = false
}

// Many client threads at once: the history is well formed (indices dense,
// times monotonic, each process alternating), the streamed copy parses back
// to the same history, and it checks valid.
TEST(HistoryRecorder, ConcurrentClientsProduceAWellFormedHistory) {
  constexpr int kThreads = 8;
  constexpr int kTxnsPerThread = 500;
  std::ostringstream sink;
  HistoryRecorder rec(HistoryRecorder::Options{nullptr, &sink, true});
  std::atomic<int64_t> next_element{1};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTxnsPerThread; ++i) {
        // Each thread appends to its own key and reads it back: trivially
        // serializable whatever the interleaving.
        const int64_t e = next_element++;
        std::vector<Mop> txn = {Mop::Append(t, e)};
        ASSERT_TRUE(rec.Invoke(t, txn).ok());
        ASSERT_TRUE(rec.Complete(t, i % 10 == 0 ? Op::kFail : Op::kOk).ok());
      }
    });
  }
  for (auto& th : threads) th.join();

  History h = rec.Snapshot();
  ASSERT_EQ(h.size(), static_cast<size_t>(2 * kThreads * kTxnsPerThread));
  std::map<int64_t, bool> open;
  for (size_t i = 0; i < h.size(); ++i) {
    EXPECT_EQ(h[i].index, static_cast<int64_t>(i));
    if (i) {
      EXPECT_GE(h[i].time, h[i - 1].time);
    }
    bool& o = open[h[i].process];
    EXPECT_EQ(o, h[i].type != Op::kInvoke) << "process " << h[i].process << " at " << i;
    o = h[i].type == Op::kInvoke;
  }
  auto parsed = ParseHistory(sink.str());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, h);
  auto result = CheckListAppend(h);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->valid);
  EXPECT_EQ(result->stats.fail, kThreads * kTxnsPerThread / 10);
}

}  // namespace
}  // namespace dbfs::elle
