// Histories of runs with the kill nemesis (`dbfs elle run --nemesis kill`):
// nemesis ops are skipped, transactions whose commit got no answer are :info
// and may or may not have taken effect, and an acknowledged append the
// daemon lost in a kill is an anomaly — without --realtime when a read saw it
// before the kill, with --realtime in every case.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "elle/history.h"
#include "elle/list_append.h"
#include "tests/elle/check_util.h"

namespace dbfs::elle {
namespace {

using Types = std::vector<std::string>;

// The nemesis ops exactly as the runner writes them.
constexpr std::string_view kKill = R"(
{:type :invoke, :f :kill, :value nil, :process :nemesis, :time 50, :index 50}
{:type :info, :f :kill, :value {:pid 7829, :signal :SIGKILL}, :process :nemesis, :time 51, :index 51}
{:type :invoke, :f :start, :value nil, :process :nemesis, :time 52, :index 52}
{:type :info, :f :start, :value {:pid 7880, :mount-ms 21, :down-ms 32}, :process :nemesis, :time 53, :index 53}
)";

std::string WithKill(std::string_view before, std::string_view after) {
  return std::string(before) + std::string(kKill) + std::string(after);
}

TEST(NemesisHistory, NemesisOpsAreSkipped) {
  ParseStats stats;
  auto h = ParseHistory(kKill, &stats);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->empty());
  EXPECT_EQ(stats.skipped, 4);
}

// Two transactions in flight at the kill: the commit of process 1 took
// effect (a later read shows 2), that of process 2 did not (nobody ever sees
// 3). Both are :info, both outcomes are legal; the acknowledged append 1
// survived. Valid, also in real-time order.
TEST(NemesisHistory, InDoubtCommitsMayGoEitherWay) {
  const std::string h = WithKill(R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :ok, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:append 1 2]], :process 1, :time 3, :index 2}
{:type :invoke, :f :txn, :value [[:append 1 3] [:r 1 nil]], :process 2, :time 4, :index 3}
{:type :info, :f :txn, :value [[:append 1 2]], :process 1, :time 5, :index 4}
{:type :info, :f :txn, :value [[:append 1 3] [:r 1 nil]], :process 2, :time 6, :index 5}
)",
                                 R"(
{:type :invoke, :f :txn, :value [[:r 1 nil] [:append 1 4]], :process 21, :time 60, :index 60}
{:type :ok, :f :txn, :value [[:r 1 [1 2]] [:append 1 4]], :process 21, :time 61, :index 61}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 0, :time 62, :index 62}
{:type :ok, :f :txn, :value [[:r 1 [1 2 4]]], :process 0, :time 63, :index 63}
)");
  for (bool realtime : {false, true}) {
    CheckResult r = Check(h, realtime);
    EXPECT_TRUE(r.valid) << "realtime " << realtime << "\n" << Explain(r);
    EXPECT_EQ(r.stats.info, 2);
    EXPECT_EQ(r.stats.ok, 3);
  }
}

// A transaction that lost its connection before COMMIT_TX is :fail — it
// certainly did not commit. Had the daemon applied it anyway, a read showing
// its append is an aborted read (G1a).
TEST(NemesisHistory, AFailedTransactionThatTookEffectIsCaught) {
  const std::string h = WithKill(R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :fail, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
)",
                                 R"(
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 0, :time 60, :index 60}
{:type :ok, :f :txn, :value [[:r 1 [1]]], :process 0, :time 61, :index 61}
)");
  CheckResult r = Check(h, /*realtime=*/false);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.anomaly_types, (Types{"G1a"})) << Explain(r);
}

// An acknowledged append (2) that a read saw before the kill and that is gone
// after it: the reads [1 2] and [1 3] are not prefixes of one another. Caught
// even without realtime order.
TEST(NemesisHistory, LostAppendSeenBeforeTheKillIsIncompatibleOrder) {
  const std::string h = WithKill(R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :ok, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:append 1 2]], :process 1, :time 3, :index 2}
{:type :ok, :f :txn, :value [[:append 1 2]], :process 1, :time 4, :index 3}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 2, :time 5, :index 4}
{:type :ok, :f :txn, :value [[:r 1 [1 2]]], :process 2, :time 6, :index 5}
)",
                                 R"(
{:type :invoke, :f :txn, :value [[:append 1 3]], :process 0, :time 60, :index 60}
{:type :ok, :f :txn, :value [[:append 1 3]], :process 0, :time 61, :index 61}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1, :time 62, :index 62}
{:type :ok, :f :txn, :value [[:r 1 [1 3]]], :process 1, :time 63, :index 63}
)");
  for (bool realtime : {false, true}) {
    CheckResult r = Check(h, realtime);
    EXPECT_FALSE(r.valid) << "realtime " << realtime;
    EXPECT_TRUE(r.counts.count("incompatible-order")) << "realtime " << realtime << "\n"
                                                      << Explain(r);
  }
}

// An acknowledged append (2) nobody read before the kill, lost in it, while
// later appends (3) survive: serializable (order its writer last), but it
// completed before the reads after the kill began — with --realtime (which
// `dbfs elle run --nemesis kill --durable` implies) a contradiction.
TEST(NemesisHistory, LostAppendNeverReadIsARealtimeAnomaly) {
  const std::string h = WithKill(R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :ok, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:append 1 2]], :process 1, :time 3, :index 2}
{:type :ok, :f :txn, :value [[:append 1 2]], :process 1, :time 4, :index 3}
)",
                                 R"(
{:type :invoke, :f :txn, :value [[:append 1 3]], :process 0, :time 60, :index 60}
{:type :ok, :f :txn, :value [[:append 1 3]], :process 0, :time 61, :index 61}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1, :time 62, :index 62}
{:type :ok, :f :txn, :value [[:r 1 [1 3]]], :process 1, :time 63, :index 63}
)");
  CheckResult serializable = Check(h, /*realtime=*/false);
  EXPECT_TRUE(serializable.valid) << Explain(serializable);
  CheckResult r = Check(h, /*realtime=*/true);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.anomaly_types, (Types{"G0-realtime", "G-single-realtime"})) << Explain(r);
}

// The last acknowledged append of a key lost, nothing appended after: the
// final read shows [1] although the append of 2 completed before it began.
TEST(NemesisHistory, LostLastAppendIsARealtimeAnomaly) {
  const std::string h = WithKill(R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :ok, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:append 1 2]], :process 1, :time 3, :index 2}
{:type :ok, :f :txn, :value [[:append 1 2]], :process 1, :time 4, :index 3}
)",
                                 R"(
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1099511627776, :time 60, :index 60}
{:type :ok, :f :txn, :value [[:r 1 [1]]], :process 1099511627776, :time 61, :index 61}
)");
  EXPECT_TRUE(Check(h, /*realtime=*/false).valid);
  CheckResult r = Check(h, /*realtime=*/true);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.anomaly_types, (Types{"G-single-realtime"})) << Explain(r);
}

}  // namespace
}  // namespace dbfs::elle
