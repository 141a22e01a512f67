// EtcdClient when etcd members die: each test owns a fresh 3-member cluster
// (it kills members), brought up in ~1 s.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "mvcc/cluster/etcd_client.h"
#include "tests/cluster/cluster_fixture.h"
#include "tests/cluster/etcd_test_util.h"
#include "tests/integration/mount_fixture.h"

namespace dbfs::mvcc::cluster {
namespace {

using dbfs::testing::ConnectEtcd;
using dbfs::testing::EtcdCluster;
using dbfs::testing::WaitFor;
using dbfs::testing::WatchCollector;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class EtcdFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = EtcdCluster::Start(3, &error);
    ASSERT_NE(cluster_, nullptr) << error;
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }

  // 1-based index of the member that leads, or 0.
  int LeaderIndex(const EtcdClient& client) {
    for (int i = 1; i <= cluster_->members(); ++i) {
      auto st = client.StatusOf(cluster_->endpoint(i));
      if (st.ok() && st->leader != 0 && st->leader == st->member_id) return i;
    }
    return 0;
  }

  // Retries `op` (bounded) until it succeeds; returns how long that took.
  template <typename Op>
  ::testing::AssertionResult EventuallyOk(Op op, milliseconds limit, milliseconds* took) {
    const auto t0 = Clock::now();
    Status last;
    std::string seen;
    while (Clock::now() - t0 < limit) {
      last = op();
      if (last.ok()) {
        *took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
        return ::testing::AssertionSuccess();
      }
      if (last.ToString() != seen) std::cerr << "  (retrying after: " << last.ToString() << ")\n";
      seen = last.ToString();
    }
    return ::testing::AssertionFailure() << "not ok within " << limit.count()
                                         << " ms; last: " << last.ToString();
  }

  std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdFaultTest, KillingTheLeaderLeavesTheClusterUsable) {
  auto client = ConnectEtcd(cluster_->endpoints(), seconds(5));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Put("/k", "before").ok());
  auto grant = client->GrantLease(3);
  ASSERT_TRUE(grant.ok()) << grant.status().ToString();
  std::atomic<int> lost{0};
  auto keeper = client->KeepAlive(grant->id, grant->ttl_seconds, [&](const Status&) { ++lost; });
  WatchCollector watched;
  WatchOptions wo;
  wo.range_end = PrefixEnd("/w/");
  auto watch = client->StartWatch("/w/", wo, watched.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();

  int leader = 0;
  ASSERT_TRUE(WaitFor([&] { return (leader = LeaderIndex(*client)) != 0; }, seconds(10)));
  ASSERT_TRUE(cluster_->KillMember(leader));

  // The next write goes through once a new leader is elected (~0.3 s with
  // the test cluster's election timeout). A write in flight on the dead
  // member may come back "outcome unknown"; a fresh one must succeed.
  milliseconds took{0};
  ASSERT_TRUE(EventuallyOk([&] { return client->Put("/k", "after").status(); }, seconds(10), &took));
  std::cerr << "first write after killing the leader: " << took.count() << " ms\n";
  ASSERT_TRUE(EventuallyOk([&] { return client->Range("/k").status(); }, seconds(10), &took));
  std::cerr << "first read after that: " << took.count() << " ms\n";
  EXPECT_EQ(client->Range("/k")->kvs.at(0).value, "after");
  int new_leader = 0;
  ASSERT_TRUE(WaitFor([&] { return (new_leader = LeaderIndex(*client)) != 0; }, seconds(10)));
  EXPECT_NE(new_leader, leader);

  // The watch still delivers (resuming on another member if it was on the
  // dead one), and the lease stays alive across the election.
  std::vector<int64_t> revs;
  for (int i = 0; i < 3; ++i) revs.push_back(*client->Put("/w/" + std::to_string(i), "x"));
  ASSERT_TRUE(watched.WaitEvents(3));
  auto ev = watched.events();
  ASSERT_EQ(ev.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(ev[i].kv.mod_revision, revs[i]);
  const uint64_t renewed = keeper->renewals();
  ASSERT_TRUE(WaitFor([&] { return keeper->renewals() >= renewed + 2; }, seconds(10)));
  EXPECT_FALSE(keeper->lost());
  EXPECT_EQ(lost.load(), 0);

  ASSERT_TRUE(cluster_->StartMember(leader));
  ASSERT_TRUE(EventuallyOk(
      [&] {
        auto st = client->StatusOf(cluster_->endpoint(leader));
        if (!st.ok()) return st.status();
        return st->leader != 0 ? Status::Ok() : Status::IOError("no leader yet");
      },
      seconds(10), &took));
}

TEST_F(EtcdFaultTest, AllMembersDownFailsWithinTheDeadlineAndRecoversAfterRestart) {
  const milliseconds deadline{1000};
  auto client = ConnectEtcd(cluster_->endpoints(), deadline);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Put("/w/a", "1").ok());
  WatchCollector watched;
  WatchOptions wo;
  wo.range_end = PrefixEnd("/w/");
  auto watch = client->StartWatch("/w/", wo, watched.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status().ToString();
  const int64_t before = *client->Put("/w/b", "2");
  ASSERT_TRUE(watched.WaitEvents(1));

  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(cluster_->KillMember(i));

  for (const char* what : {"put", "range", "txn"}) {
    const auto t0 = Clock::now();
    Status s;
    if (std::string(what) == "put") {
      s = client->Put("/w/c", "3").status();
    } else if (std::string(what) == "range") {
      s = client->Range("/w/a").status();
    } else {
      TxnRequest t;
      t.compares.push_back(Compare::ModRevision("/w/a", Compare::Op::kLess, before + 1));
      t.success.push_back(TxnOp::Put("/w/d", "4"));
      s = client->Txn(t).status();
    }
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
    ASSERT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.code(), Code::kIOError) << what << ": " << s.ToString();
    EXPECT_EQ(s.ToErrno(), EIO) << what;
    EXPECT_NE(s.message().find(cluster_->endpoints()), std::string::npos) << s.ToString();
    // Loose bound: the deadline plus scheduling noise, never a hang.
    EXPECT_LE(took, 3 * deadline) << what << " took " << took.count() << " ms";
    std::cerr << what << " with every member down failed after " << took.count() << " ms: "
              << s.ToString() << "\n";
  }
  EXPECT_TRUE(watched.WaitKind(WatchBatch::Kind::kDisconnected));

  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(cluster_->StartMember(i));
  milliseconds took{0};
  int64_t after = 0;
  ASSERT_TRUE(EventuallyOk(
      [&] {
        auto r = client->Put("/w/e", "5");
        if (r.ok()) after = *r;
        return r.status();
      },
      seconds(20), &took));
  std::cerr << "first write after restarting every member: " << took.count() << " ms\n";
  ASSERT_TRUE(client->Range("/w/a").ok());

  // The watch reconnected by itself and resumed after the last revision it
  // had delivered: the old event once, then the new one.
  ASSERT_TRUE(watched.WaitEvents(2));
  auto ev = watched.events();
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev[0].kv.mod_revision, before);
  EXPECT_EQ(ev.back().kv.mod_revision, after);
  for (size_t i = 1; i < ev.size(); ++i) EXPECT_LT(ev[i - 1].kv.mod_revision, ev[i].kv.mod_revision);
  EXPECT_FALSE((*watch)->finished());
}

}  // namespace
}  // namespace dbfs::mvcc::cluster
