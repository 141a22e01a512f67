// Hand-written histories, one per anomaly type, each checked for exactly the
// anomalies it contains — and valid histories that must stay valid. A checker
// that has never failed is not trusted.
#include "elle/list_append.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "elle/history.h"
#include "tests/elle/check_util.h"

namespace dbfs::elle {
namespace {

using Types = std::vector<std::string>;

// --- Valid histories ---------------------------------------------------------

TEST(ListAppendValid, EmptyHistory) {
  CheckResult r = Check("");
  EXPECT_TRUE(r.valid);
  EXPECT_TRUE(r.anomaly_types.empty());
}

TEST(ListAppendValid, SerialHistory) {
  CheckResult r = Check(R"(
{:type :invoke, :f :txn, :value [[:append 1 1] [:r 2 nil]], :process 0, :time 1, :index 0}
{:type :ok,     :f :txn, :value [[:append 1 1] [:r 2 nil]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:append 1 2] [:append 2 1]], :process 1, :time 3, :index 2}
{:type :ok,     :f :txn, :value [[:r 1 [1]] [:append 1 2] [:append 2 1]], :process 1, :time 4, :index 3}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:append 1 3] [:r 1 nil] [:r 2 nil]], :process 0, :time 5, :index 4}
{:type :ok,     :f :txn, :value [[:r 1 [1 2]] [:append 1 3] [:r 1 [1 2 3]] [:r 2 [1]]], :process 0, :time 6, :index 5}
)",
                        /*realtime=*/true);
  EXPECT_TRUE(r.valid) << Explain(r);
  EXPECT_EQ(r.stats.ok, 3);
  EXPECT_EQ(r.stats.ww_edges, 2);  // 1 -> 2 -> 3 on key 1
  EXPECT_GE(r.stats.wr_edges, 2);
}

// Two overlapping transactions where the reader must be ordered before the
// writer: serializable (and strict serializable, since they overlap).
TEST(ListAppendValid, ConcurrentButSerializable) {
  const char* h = R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:append 2 1]], :process 1, :time 2, :index 1}
{:type :ok,     :f :txn, :value [[:append 1 1]], :process 0, :time 3, :index 2}
{:type :ok,     :f :txn, :value [[:r 1 []] [:append 2 1]], :process 1, :time 4, :index 3}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]], :process 0, :time 5, :index 4}
{:type :ok,     :f :txn, :value [[:r 1 [1]] [:r 2 [1]]], :process 0, :time 6, :index 5}
)";
  EXPECT_TRUE(Check(h).valid) << Explain(Check(h));
  EXPECT_TRUE(Check(h, /*realtime=*/true).valid) << Explain(Check(h, true));
}

TEST(ListAppendValid, FailedAppendNeverReadIsFine) {
  CheckResult r = Check(R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :index 0}
{:type :fail,   :f :txn, :value [[:append 1 1]], :process 0, :index 1, :error [:conflict "lost"]}
{:type :invoke, :f :txn, :value [[:append 1 2]], :process 0, :index 2}
{:type :ok,     :f :txn, :value [[:append 1 2]], :process 0, :index 3}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1, :index 4}
{:type :ok,     :f :txn, :value [[:r 1 [2]]], :process 1, :index 5}
)");
  EXPECT_TRUE(r.valid) << Explain(r);
  EXPECT_EQ(r.stats.fail, 1);
}

TEST(ListAppendValid, InfoTransactionsSeenOrNot) {
  // Process 0's first txn is indeterminate but took effect (2 is read);
  // process 1's never completes and never takes effect. Both are fine.
  CheckResult r = Check(R"(
{:type :invoke, :f :txn, :value [[:append 1 1] [:r 2 nil]], :process 0, :index 0}
{:type :info,   :f :txn, :value [[:append 1 1] [:r 2 nil]], :process 0, :index 1}
{:type :invoke, :f :txn, :value [[:append 1 9]], :process 1, :index 2}
{:type :invoke, :f :txn, :value [[:r 1 nil] [:append 1 2]], :process 5, :index 3}
{:type :ok,     :f :txn, :value [[:r 1 [1]] [:append 1 2]], :process 5, :index 4}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 5, :index 5}
{:type :ok,     :f :txn, :value [[:r 1 [1 2]]], :process 5, :index 6}
)",
                        /*realtime=*/true);
  EXPECT_TRUE(r.valid) << Explain(r);
  EXPECT_EQ(r.stats.info, 2);
}

TEST(ListAppendValid, NilReadInOkIsTheEmptyList) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 nil]]}
{:type :ok, :value [[:append 1 1]]}
{:type :ok, :value [[:r 1 [1]]]}
)");
  EXPECT_TRUE(r.valid) << Explain(r);
}

// --- Cycles ------------------------------------------------------------------

TEST(ListAppendCycles, G0WriteCycle) {
  // Key 1 orders T1 before T2, key 2 orders T2 before T1.
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1] [:append 2 2]]}
{:type :ok, :value [[:append 1 2] [:append 2 1]]}
{:type :ok, :value [[:r 1 [1 2]] [:r 2 [1 2]]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G0"})) << Explain(r);
  const Anomaly& a = r.anomalies.at("G0").front();
  ASSERT_EQ(a.steps.size(), 2u);
  for (const CycleStepInfo& s : a.steps) EXPECT_EQ(s.rel, Rel::kWW);
  EXPECT_NE(a.edn.find(":steps [{:type :ww"), std::string::npos) << a.edn;
}

TEST(ListAppendCycles, G1cCyclicInformationFlow) {
  // Elle's README example: T2 read T1's append to :y, yet T1's append to :x
  // came after T2's.
  CheckResult r = Check(R"(
[{:type :ok, :value [[:append 1 1] [:r 2 [1]]]}
 {:type :ok, :value [[:append 1 2] [:append 2 1]]}
 {:type :ok, :value [[:r 1 [1 2]]]}]
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G1c"})) << Explain(r);
  const Anomaly& a = r.anomalies.at("G1c").front();
  ASSERT_EQ(a.steps.size(), 2u);
  EXPECT_NE(a.explanation.find("a contradiction!"), std::string::npos);
}

TEST(ListAppendCycles, GSingleReadSkew) {
  // T2 sees T1's append to key 2 but not its append to key 1.
  CheckResult r = Check(R"(
{:type :invoke, :value [[:append 1 1] [:append 2 1]], :process 0, :index 0}
{:type :ok,     :value [[:append 1 1] [:append 2 1]], :process 0, :index 1}
{:type :invoke, :value [[:r 1 nil] [:r 2 nil]], :process 1, :index 2}
{:type :ok,     :value [[:r 1 []] [:r 2 [1]]], :process 1, :index 3}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G-single"})) << Explain(r);
  const Anomaly& a = r.anomalies.at("G-single").front();
  ASSERT_EQ(a.steps.size(), 2u);
  int rw = 0;
  for (const CycleStepInfo& s : a.steps) rw += s.rel == Rel::kRW;
  EXPECT_EQ(rw, 1);
  EXPECT_NE(a.explanation.find("observed the initial (nil) state of 1"), std::string::npos)
      << a.explanation;
  EXPECT_NE(a.edn.find(":summary \"T1 -"), std::string::npos) << a.edn;
}

TEST(ListAppendCycles, G2ItemWriteSkew) {
  CheckResult r = Check(R"(
{:type :invoke, :value [[:r 1 nil] [:r 2 nil] [:append 1 1]], :process 0, :index 0}
{:type :invoke, :value [[:r 1 nil] [:r 2 nil] [:append 2 1]], :process 1, :index 1}
{:type :ok,     :value [[:r 1 []] [:r 2 []] [:append 1 1]], :process 0, :index 2}
{:type :ok,     :value [[:r 1 []] [:r 2 []] [:append 2 1]], :process 1, :index 3}
{:type :invoke, :value [[:r 1 nil] [:r 2 nil]], :process 0, :index 4}
{:type :ok,     :value [[:r 1 [1]] [:r 2 [1]]], :process 0, :index 5}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G2-item"})) << Explain(r);
  const Anomaly& a = r.anomalies.at("G2-item").front();
  ASSERT_EQ(a.steps.size(), 2u);
  EXPECT_EQ(a.steps[0].rel, Rel::kRW);
  EXPECT_EQ(a.steps[1].rel, Rel::kRW);
}

TEST(ListAppendCycles, GNonadjacent) {
  // T1 -rw(1)-> T2 -wr(2)-> T3 -rw(3)-> T4 -wr(4)-> T1: two rw edges, never
  // adjacent (Elle's G-nonadjacent, a G2 variant that SI also forbids).
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 []] [:r 4 [1]]]}
{:type :ok, :value [[:append 1 1] [:append 2 1]]}
{:type :ok, :value [[:r 2 [1]] [:r 3 []]]}
{:type :ok, :value [[:append 3 1] [:append 4 1]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G-nonadjacent"})) << Explain(r);
  EXPECT_EQ(r.anomalies.at("G-nonadjacent").front().steps.size(), 4u);
}

// A read strictly after an append completed that misses it: serializable
// (order the reader first), but not strict serializable.
TEST(ListAppendCycles, StaleReadIsOnlyARealtimeAnomaly) {
  const char* h = R"(
{:type :invoke, :value [[:append 1 1]], :process 0, :index 0}
{:type :ok,     :value [[:append 1 1]], :process 0, :index 1}
{:type :invoke, :value [[:r 1 nil]], :process 1, :index 2}
{:type :ok,     :value [[:r 1 []]], :process 1, :index 3}
)";
  EXPECT_TRUE(Check(h).valid);
  CheckResult r = Check(h, /*realtime=*/true);
  EXPECT_EQ(r.anomaly_types, (Types{"G-single-realtime"})) << Explain(r);
  EXPECT_GT(r.stats.realtime_edges, 0);
}

// An :ok append that later reads never show — a lost (e.g. not durable)
// commit. Serializable, with T1 ordered last; with realtime order, T1
// completed before T2 and T3 began: a contradiction.
TEST(ListAppendCycles, LostAppendIsARealtimeAnomaly) {
  const char* h = R"(
{:type :invoke, :value [[:append 1 1]], :process 0, :index 0}
{:type :ok,     :value [[:append 1 1]], :process 0, :index 1}
{:type :invoke, :value [[:append 1 2]], :process 1, :index 2}
{:type :ok,     :value [[:append 1 2]], :process 1, :index 3}
{:type :invoke, :value [[:r 1 nil]], :process 2, :index 4}
{:type :ok,     :value [[:r 1 [2]]], :process 2, :index 5}
)";
  EXPECT_TRUE(Check(h).valid) << Explain(Check(h));
  CheckResult r = Check(h, /*realtime=*/true);
  EXPECT_EQ(r.anomaly_types, (Types{"G0-realtime", "G-single-realtime"})) << Explain(r);
}

// Like Elle, a component known to contain G-single is not searched for the
// G2-item it implies, although T1 -rw-> T3 -rw-> T1 is also there.
TEST(ListAppendCycles, ImpliedAnomaliesAreNotReportedAgain) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 []] [:r 2 [1]] [:r 3 []] [:append 4 1]]}
{:type :ok, :value [[:append 1 1] [:append 2 1]]}
{:type :ok, :value [[:append 3 1] [:r 4 []]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G-single"})) << Explain(r);
  EXPECT_EQ(r.stats.nontrivial_sccs, 1);
}

TEST(ListAppendCycles, ReportsEveryIndependentCycle) {
  // Two disjoint write skews.
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 []] [:append 2 1]]}
{:type :ok, :value [[:r 2 []] [:append 1 1]]}
{:type :ok, :value [[:r 3 []] [:append 4 1]]}
{:type :ok, :value [[:r 4 []] [:append 3 1]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G2-item"})) << Explain(r);
  EXPECT_EQ(r.counts.at("G2-item"), 2);
  EXPECT_EQ(r.stats.nontrivial_sccs, 2);
}

// --- Anomalies without cycles ---------------------------------------------

TEST(ListAppendReads, G1aAbortedRead) {
  CheckResult r = Check(R"(
{:type :invoke, :value [[:append 1 1]], :process 0, :index 0}
{:type :fail,   :value [[:append 1 1]], :process 0, :index 1}
{:type :invoke, :value [[:r 1 nil]], :process 1, :index 2}
{:type :ok,     :value [[:r 1 [1]]], :process 1, :index 3}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G1a"})) << Explain(r);
  const Anomaly& a = r.anomalies.at("G1a").front();
  EXPECT_EQ(a.ops, (std::vector<int64_t>{3, 1}));
  EXPECT_NE(a.edn.find(":element 1"), std::string::npos);
}

TEST(ListAppendReads, G1bIntermediateRead) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1] [:append 1 2]], :process 0, :index 0}
{:type :ok, :value [[:r 1 [1]]], :process 1, :index 1}
)");
  // As in Elle, the same observation is also a G-single: the reader saw the
  // writer's append of 1 (wr) but not its append of 2 (rw).
  EXPECT_EQ(r.anomaly_types, (Types{"G1b", "G-single"})) << Explain(r);
  EXPECT_EQ(r.anomalies.at("G1b").front().ops, (std::vector<int64_t>{1, 0}));
}

TEST(ListAppendReads, OwnIntermediateStateIsNotG1b) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1] [:r 1 [1]] [:append 1 2] [:r 1 [1 2]]]}
{:type :ok, :value [[:r 1 [1 2]]]}
)");
  EXPECT_TRUE(r.valid) << Explain(r);
}

TEST(ListAppendReads, InternalInconsistency) {
  // T2 appended 2 and then read key 1 without its own append.
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1]]}
{:type :ok, :value [[:append 1 2] [:r 1 [1]]]}
{:type :ok, :value [[:r 1 [1 2]]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"internal"})) << Explain(r);
  EXPECT_NE(r.anomalies.at("internal").front().edn.find(":expected [... 2]"), std::string::npos)
      << r.anomalies.at("internal").front().edn;
}

TEST(ListAppendReads, InternalNonRepeatableRead) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 []] [:r 1 [1]]]}
{:type :ok, :value [[:append 1 1]]}
)");
  EXPECT_TRUE(r.Has("internal")) << Explain(r);
  EXPECT_NE(r.anomalies.at("internal").front().edn.find(":expected []"), std::string::npos);
}

TEST(ListAppendReads, FutureRead) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 [7]] [:append 1 7]]}
)");
  EXPECT_TRUE(r.Has("future-read")) << Explain(r);
  EXPECT_FALSE(r.valid);
}

TEST(ListAppendReads, DuplicateElements) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1]]}
{:type :ok, :value [[:r 1 [1 1]]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"duplicate-elements"})) << Explain(r);
  EXPECT_NE(r.anomalies.at("duplicate-elements").front().edn.find(":duplicates {1 2}"),
            std::string::npos);
}

TEST(ListAppendReads, IncompatibleOrder) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1]]}
{:type :ok, :value [[:append 1 2]]}
{:type :ok, :value [[:append 1 3]]}
{:type :ok, :value [[:r 1 [1 2 3]]]}
{:type :ok, :value [[:r 1 [2 1]]]}
)");
  EXPECT_TRUE(r.Has("incompatible-order")) << Explain(r);
  EXPECT_NE(r.anomalies.at("incompatible-order").front().edn.find(":values [[2 1] [1 2 3]]"),
            std::string::npos)
      << r.anomalies.at("incompatible-order").front().edn;
}

TEST(ListAppendReads, DirtyUpdate) {
  // A committed append built on a failed one (which a read then exposed).
  CheckResult r = Check(R"(
{:type :fail, :value [[:append 1 1]], :process 0}
{:type :ok,   :value [[:append 1 2]], :process 1}
{:type :ok,   :value [[:r 1 [1 2]]], :process 2}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G1a", "dirty-update"})) << Explain(r);
}

// Aborted state, extended by indeterminate and aborted appends, then built on
// by a committed one: one dirty update covering the whole aborted run.
TEST(ListAppendReads, DirtyUpdateThroughIndeterminateAppends) {
  CheckResult r = Check(R"(
{:type :ok,   :value [[:append 7 10]], :process 0}
{:type :fail, :value [[:append 7 11]], :process 0}
{:type :info, :value [[:append 7 12]], :process 1}
{:type :fail, :value [[:append 7 13]], :process 2}
{:type :ok,   :value [[:append 7 14]], :process 3}
{:type :info, :value [[:append 7 15]], :process 4}
{:type :ok,   :value [[:r 7 [10 11 12 13 14 15]]], :process 5}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G1a", "dirty-update"})) << Explain(r);
  EXPECT_EQ(r.counts.at("G1a"), 2);  // elements 11 and 13
  ASSERT_EQ(r.counts.at("dirty-update"), 1);
  EXPECT_NE(r.anomalies.at("dirty-update").front().edn.find(":key 7, :values [11 12 13 14]"),
            std::string::npos)
      << r.anomalies.at("dirty-update").front().edn;
}

TEST(ListAppendReads, LostUpdate) {
  // Both read [] and appended; the later read proves both committed.
  CheckResult r = Check(R"(
{:type :ok, :value [[:r 1 []] [:append 1 1]]}
{:type :ok, :value [[:r 1 []] [:append 1 2]]}
{:type :ok, :value [[:r 1 [1 2]]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"G-single", "lost-update"})) << Explain(r);
  EXPECT_NE(r.anomalies.at("lost-update").front().edn.find(":key 1, :value []"), std::string::npos);
}

TEST(ListAppendReads, GarbageRead) {
  CheckResult r = Check(R"(
{:type :ok, :value [[:append 1 1]]}
{:type :ok, :value [[:r 1 [1 99]]]}
)");
  EXPECT_EQ(r.anomaly_types, (Types{"garbage-read"})) << Explain(r);
}

// --- Unanalysable histories ------------------------------------------------

TEST(ListAppendErrors, DuplicateAppendIsRejected) {
  auto h = ParseHistory(R"(
{:type :ok, :value [[:append 1 5]]}
{:type :ok, :value [[:append 1 5]]}
)");
  ASSERT_TRUE(h.ok());
  auto r = CheckListAppend(*h);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("appended to key 1 twice"), std::string::npos)
      << r.status().message();
}

TEST(ListAppendErrors, DoubleInvokeIsRejected) {
  auto h = ParseHistory(R"(
{:type :invoke, :value [[:append 1 1]], :process 3, :index 0}
{:type :invoke, :value [[:append 1 2]], :process 3, :index 1}
)");
  ASSERT_TRUE(h.ok());
  auto r = CheckListAppend(*h);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("process 3"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace dbfs::elle
