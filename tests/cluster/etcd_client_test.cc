// EtcdClient against one real 3-member etcd cluster on 127.0.0.1, shared by
// every test here (each keeps to its own key prefix; revisions are global,
// so tests compare revisions they produced themselves).
#include "mvcc/cluster/etcd_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/cluster/cluster_fixture.h"
#include "tests/cluster/etcd_test_util.h"
#include "tests/integration/mount_fixture.h"

namespace dbfs::mvcc::cluster {
namespace {

using dbfs::testing::ConnectEtcd;
using dbfs::testing::SharedEtcd;
using dbfs::testing::WatchCollector;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

[[maybe_unused]] ::testing::Environment* const kEtcd = ::testing::AddGlobalTestEnvironment(new SharedEtcd(3));

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(SharedEtcd::cluster(), nullptr) << "no etcd cluster";
    client_ = ConnectEtcd(SharedEtcd::cluster()->endpoints());
    ASSERT_NE(client_, nullptr);
    prefix_ = "/dbfs-test/" + dbfs::testing::TestPrefix();
  }
  void TearDown() override {
    if (HasFailure() && SharedEtcd::cluster()) {
      std::cerr << SharedEtcd::cluster()->Logs();
    }
  }
  std::string Key(const std::string& name) const { return prefix_ + name; }

  int64_t MustPut(const std::string& key, const std::string& value) {
    auto r = client_->Put(key, value);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : -1;
  }

  // A client of one member that is not the leader (null, with a failure
  // recorded, if there is none).
  std::unique_ptr<EtcdClient> FollowerClient() {
    for (int i = 1; i <= 3; ++i) {
      auto st = client_->StatusOf(SharedEtcd::cluster()->endpoint(i));
      if (st.ok() && st->leader != 0 && st->leader != st->member_id) {
        return ConnectEtcd(SharedEtcd::cluster()->endpoint(i));
      }
    }
    ADD_FAILURE() << "no follower found";
    return nullptr;
  }

  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
};

TEST(EtcdClientStaticTest, PrefixEnd) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd("ab\xff"), "ac");
  EXPECT_EQ(PrefixEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
}

TEST(EtcdClientStaticTest, MalformedEndpointsAreRejected) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:12x",
                          "127.0.0.1:2379,,127.0.0.1:2380", "[::1:2379"}) {
    EtcdOptions o;
    o.endpoints = bad;
    auto r = EtcdClient::Connect(o);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' accepted";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalid) << r.status().ToString();
    }
  }
  EtcdOptions tls;
  tls.endpoints = "https://127.0.0.1:2379";
  auto r = EtcdClient::Connect(tls);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotSupported);
  EtcdOptions mixed;
  mixed.endpoints = "127.0.0.1:2379,[::1]:2379";
  r = EtcdClient::Connect(mixed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
}

TEST_F(EtcdClientTest, PutAndRangeAtRevision) {
  const std::string k = Key("k");
  const int64_t r1 = MustPut(k, "v1");
  const int64_t r2 = MustPut(k, "v2");
  ASSERT_GT(r2, r1);

  auto now = client_->Range(k);
  ASSERT_TRUE(now.ok()) << now.status().ToString();
  ASSERT_EQ(now->kvs.size(), 1u);
  EXPECT_EQ(now->kvs[0].key, k);
  EXPECT_EQ(now->kvs[0].value, "v2");
  EXPECT_EQ(now->kvs[0].create_revision, r1);
  EXPECT_EQ(now->kvs[0].mod_revision, r2);
  EXPECT_EQ(now->kvs[0].version, 2);
  EXPECT_GE(now->revision, r2);

  RangeOptions at_r1;
  at_r1.revision = r1;
  auto old = client_->Range(k, at_r1);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  ASSERT_EQ(old->kvs.size(), 1u);
  EXPECT_EQ(old->kvs[0].value, "v1");
  EXPECT_EQ(old->kvs[0].mod_revision, r1);

  // Serializable reads are served by any member; after the put it has
  // applied, the value is there at the same revision.
  RangeOptions ser;
  ser.serializable = true;
  ser.revision = r2;
  auto s = client_->Range(k, ser);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->kvs.size(), 1u);
  EXPECT_EQ(s->kvs[0].value, "v2");

  auto missing = client_->Range(Key("missing"));
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->kvs.empty());
  EXPECT_EQ(missing->count, 0);

  // A delete is a new revision; the old one still reads.
  auto del = client_->DeleteRange(k);
  ASSERT_TRUE(del.ok()) << del.status().ToString();
  EXPECT_EQ(del->deleted, 1);
  EXPECT_GT(del->revision, r2);
  EXPECT_TRUE(client_->Range(k)->kvs.empty());
  RangeOptions at_r2;
  at_r2.revision = r2;
  EXPECT_EQ(client_->Range(k, at_r2)->kvs.at(0).value, "v2");
}

TEST_F(EtcdClientTest, RangeOverPrefixWithLimitKeysOnlyAndCount) {
  for (int i = 0; i < 5; ++i) MustPut(Key("d/" + std::to_string(i)), "value" + std::to_string(i));
  MustPut(Key("e"), "outside");
  const std::string dir = Key("d/");

  RangeOptions all;
  all.range_end = PrefixEnd(dir);
  auto r = client_->Range(dir, all);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->kvs.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r->kvs[i].key, Key("d/" + std::to_string(i)));
  EXPECT_FALSE(r->more);

  RangeOptions limited = all;
  limited.limit = 2;
  r = client_->Range(dir, limited);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kvs.size(), 2u);
  EXPECT_TRUE(r->more);
  EXPECT_EQ(r->count, 5);

  RangeOptions keys = all;
  keys.keys_only = true;
  r = client_->Range(dir, keys);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->kvs.size(), 5u);
  EXPECT_TRUE(r->kvs[0].value.empty());
  EXPECT_GT(r->kvs[0].mod_revision, 0);

  RangeOptions count = all;
  count.count_only = true;
  r = client_->Range(dir, count);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->kvs.empty());
  EXPECT_EQ(r->count, 5);

  auto del = client_->DeleteRange(dir, PrefixEnd(dir));
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->deleted, 5);
  EXPECT_EQ(client_->Range(Key("e"))->kvs.size(), 1u);
}

TEST_F(EtcdClientTest, TxnModRevisionCompareFailsWhenStaleAndSucceedsWhenCurrent) {
  const std::string k = Key("k");
  const int64_t stale = MustPut(k, "a");
  const int64_t current = MustPut(k, "b");

  TxnRequest t;
  t.compares.push_back(Compare::ModRevision(k, Compare::Op::kEqual, stale));
  t.success.push_back(TxnOp::Put(k, "from-stale"));
  t.failure.push_back(TxnOp::Range(k));
  auto r = client_->Txn(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->succeeded);
  ASSERT_EQ(r->responses.size(), 1u);
  ASSERT_EQ(r->responses[0].type, TxnOp::Type::kRange);
  ASSERT_EQ(r->responses[0].range.kvs.size(), 1u);
  EXPECT_EQ(r->responses[0].range.kvs[0].value, "b");
  EXPECT_EQ(client_->Range(k)->kvs.at(0).value, "b");
  EXPECT_EQ(client_->Range(k)->kvs.at(0).mod_revision, current);

  t.compares[0] = Compare::ModRevision(k, Compare::Op::kEqual, current);
  r = client_->Txn(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->succeeded);
  EXPECT_GT(r->revision, current);
  auto now = client_->Range(k);
  EXPECT_EQ(now->kvs.at(0).value, "from-stale");
  EXPECT_EQ(now->kvs.at(0).mod_revision, r->revision);
}

TEST_F(EtcdClientTest, TxnComparesEveryTargetAndOperator) {
  const std::string k = Key("k");
  const int64_t created = MustPut(k, "m");
  const int64_t modified = MustPut(k, "m2");
  const std::string absent = Key("absent");

  struct Case {
    Compare c;
    bool want;
  };
  using Op = Compare::Op;
  const std::vector<Case> cases = {
      {Compare::Value(k, Op::kEqual, "m2"), true},
      {Compare::Value(k, Op::kEqual, "m"), false},
      {Compare::Value(k, Op::kNotEqual, "m"), true},
      {Compare::Value(k, Op::kGreater, "m1"), true},
      {Compare::Value(k, Op::kLess, "m1"), false},
      {Compare::Version(k, Op::kEqual, 2), true},
      {Compare::Version(k, Op::kGreater, 2), false},
      {Compare::Version(absent, Op::kEqual, 0), true},  // "does not exist"
      {Compare::CreateRevision(k, Op::kEqual, created), true},
      {Compare::CreateRevision(k, Op::kLess, created), false},
      {Compare::ModRevision(k, Op::kGreater, created), true},
      {Compare::ModRevision(k, Op::kLess, modified + 1), true},
      {Compare::ModRevision(k, Op::kNotEqual, modified), false},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    TxnRequest t;
    t.compares.push_back(cases[i].c);
    auto r = client_->Txn(t);
    ASSERT_TRUE(r.ok()) << "case " << i << ": " << r.status().ToString();
    EXPECT_EQ(r->succeeded, cases[i].want) << "case " << i;
  }
  // All compares must hold; one false one fails the txn and its success
  // branch writes nothing.
  TxnRequest both;
  both.compares = {cases[0].c, cases[1].c};
  both.success = {TxnOp::Put(Key("written"), "x")};
  auto r = client_->Txn(both);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->succeeded);
  EXPECT_TRUE(client_->Range(Key("written"))->kvs.empty());
}

// etcd 3.4 serves a txn without operations from the member's local state
// (isTxnSerializable is vacuously true), which may lag the leader: a
// compare-only txn could miss a write that was already acknowledged. The
// client makes such a txn linearizable. Compare-only txns on a follower
// right after each write: one stale answer fails the test.
TEST_F(EtcdClientTest, CompareOnlyTxnOnAFollowerSeesTheLatestWrite) {
  auto follower = FollowerClient();
  ASSERT_NE(follower, nullptr);
  const std::string k = Key("k");
  for (int i = 0; i < 300; ++i) {
    const int64_t rev = MustPut(k, std::to_string(i));
    TxnRequest t;
    t.compares.push_back(Compare::ModRevision(k, Compare::Op::kEqual, rev));
    auto r = follower->Txn(t);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->succeeded) << "iteration " << i << ": the follower answered from before revision " << rev;
    EXPECT_TRUE(r->responses.empty());
  }
}

// A snapshot read at a known revision may be served by any member without a
// quorum round trip (serializable): history at a revision never changes. A
// member that has not applied the revision yet answers "future revision";
// the client retries until one has.
TEST_F(EtcdClientTest, SerializableRangeAtARevisionOnAFollowerWaitsForIt) {
  auto follower = FollowerClient();
  ASSERT_NE(follower, nullptr);
  // The leader is not among this client's endpoints: its writes go through
  // the follower, which forwards them.
  ASSERT_TRUE(follower->Put(Key("via-follower"), "x").ok());
  EXPECT_EQ(client_->Range(Key("via-follower"))->kvs.at(0).value, "x");
  const std::string k = Key("k");
  for (int i = 0; i < 300; ++i) {
    RangeOptions at;
    at.revision = MustPut(k, std::to_string(i));
    at.serializable = true;
    auto r = follower->Range(k, at);
    ASSERT_TRUE(r.ok()) << "iteration " << i << ": " << r.status().ToString();
    ASSERT_EQ(r->kvs.size(), 1u);
    EXPECT_EQ(r->kvs[0].value, std::to_string(i));
  }
}

TEST_F(EtcdClientTest, TxnOfManyComparesUpToTheServerLimit) {
  TxnRequest t;
  for (int i = 0; i < 128; ++i) {
    const std::string k = Key("c" + std::to_string(i));
    const int64_t rev = MustPut(k, "v");
    t.compares.push_back(Compare::ModRevision(k, Compare::Op::kEqual, rev));
  }
  t.success.push_back(TxnOp::Put(Key("result"), "ok"));
  t.success.push_back(TxnOp::Delete(Key("c0")));
  auto r = client_->Txn(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->succeeded);
  ASSERT_EQ(r->responses.size(), 2u);
  EXPECT_EQ(r->responses[1].type, TxnOp::Type::kDelete);
  EXPECT_EQ(r->responses[1].deleted, 1);

  t.compares.push_back(Compare::Version(Key("c128"), Compare::Op::kEqual, 0));
  r = client_->Txn(t);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("--max-txn-ops"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("129 compares"), std::string::npos) << r.status().ToString();
}

TEST_F(EtcdClientTest, RequestOverTheSizeLimitIsInvalidNamingTheLimit) {
  // Above --max-request-bytes (1.5 MiB) but below gRPC's own limit.
  auto r = client_->Put(Key("big"), std::string(1600 * 1024, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("--max-request-bytes"), std::string::npos)
      << r.status().ToString();
  // Far above both.
  r = client_->Put(Key("huge"), std::string(4 * 1024 * 1024, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("--max-request-bytes"), std::string::npos)
      << r.status().ToString();
  EXPECT_TRUE(client_->Range(Key("big"))->kvs.empty());
}

TEST_F(EtcdClientTest, RangeAtCompactedRevisionGivesCompactedCode) {
  const std::string k = Key("k");
  const int64_t r1 = MustPut(k, "1");
  const int64_t r2 = MustPut(k, "2");
  MustPut(k, "3");
  ASSERT_TRUE(client_->Compact(r2).ok());

  RangeOptions at;
  at.revision = r1;
  auto r = client_->Range(k, at);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCompacted) << r.status().ToString();
  EXPECT_NE(r.status().message().find(std::to_string(r1)), std::string::npos);

  at.revision = r2;  // the compaction revision itself stays readable
  r = client_->Range(k, at);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kvs.at(0).value, "2");

  // Compacting again below the compaction point says so too.
  EXPECT_EQ(client_->Compact(r1).code(), Code::kCompacted);

  at.revision = r->revision + 1000000;
  r = client_->Range(k, at);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_NE(r.status().message().find("future"), std::string::npos) << r.status().ToString();
}

TEST_F(EtcdClientTest, WatchDeliversEventsInRevisionOrderAndResumesFromARevision) {
  const std::string dir = Key("w/");
  WatchCollector first;
  WatchOptions wo;
  wo.range_end = PrefixEnd(dir);
  auto w = client_->StartWatch(dir, wo, first.Callback());
  ASSERT_TRUE(w.ok()) << w.status().ToString();

  // Another client writes; the watch (started before) sees every change.
  auto writer = ConnectEtcd(SharedEtcd::cluster()->endpoints());
  ASSERT_NE(writer, nullptr);
  std::vector<int64_t> revs;
  for (int i = 0; i < 10; ++i) revs.push_back(*writer->Put(dir + std::to_string(i % 3), std::to_string(i)));
  auto del = writer->DeleteRange(dir + "0");
  ASSERT_TRUE(del.ok());
  revs.push_back(del->revision);
  writer->Put(Key("outside"), "not watched").status().IgnoreError();

  ASSERT_TRUE(first.WaitEvents(11)) << first.events().size() << " events";
  auto ev = first.events();
  ASSERT_EQ(ev.size(), 11u);
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].kv.mod_revision, revs[i]) << "event " << i;
    EXPECT_EQ(ev[i].is_delete, i == 10) << "event " << i;
    if (i < 10) {
      EXPECT_EQ(ev[i].kv.key, dir + std::to_string(i % 3));
      EXPECT_EQ(ev[i].kv.value, std::to_string(i));
    }
  }
  EXPECT_EQ((*w)->next_revision(), revs.back() + 1);
  const int64_t resume = (*w)->next_revision();
  (*w)->Stop();

  // Changes while nobody watches; a new watch from `resume` gets exactly
  // those, none of the ones already delivered.
  std::vector<int64_t> later;
  for (int i = 0; i < 4; ++i) later.push_back(*writer->Put(dir + "late" + std::to_string(i), "x"));
  WatchCollector second;
  wo.start_revision = resume;
  auto w2 = client_->StartWatch(dir, wo, second.Callback());
  ASSERT_TRUE(w2.ok()) << w2.status().ToString();
  ASSERT_TRUE(second.WaitEvents(4));
  const int64_t after = *writer->Put(dir + "after", "y");
  ASSERT_TRUE(second.WaitEvents(5));
  auto ev2 = second.events();
  ASSERT_EQ(ev2.size(), 5u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(ev2[i].kv.mod_revision, later[i]);
  EXPECT_EQ(ev2[4].kv.mod_revision, after);
  for (size_t i = 1; i < ev2.size(); ++i) EXPECT_LT(ev2[i - 1].kv.mod_revision, ev2[i].kv.mod_revision);
}

TEST_F(EtcdClientTest, WatchFromACompactedRevisionReportsCompaction) {
  const std::string k = Key("k");
  const int64_t r1 = MustPut(k, "1");
  MustPut(k, "2");
  const int64_t r3 = MustPut(k, "3");
  ASSERT_TRUE(client_->Compact(r3).ok());

  WatchCollector c;
  WatchOptions wo;
  wo.start_revision = r1;
  auto w = client_->StartWatch(k, wo, c.Callback());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE(c.WaitKind(WatchBatch::Kind::kCompacted));
  auto b = c.batches();
  EXPECT_EQ(b.back().kind, WatchBatch::Kind::kCompacted);
  EXPECT_EQ(b.back().compact_revision, r3);
  EXPECT_EQ(b.back().status.code(), Code::kCompacted);
  EXPECT_TRUE(c.events().empty());
  EXPECT_TRUE((*w)->finished());
}

TEST_F(EtcdClientTest, WatchProgressNotificationsCarryTheRevision) {
  WatchCollector c;
  WatchOptions wo;
  wo.progress_notify = true;
  // etcd sends progress notifications every 10 minutes by default; nothing
  // to wait for here, but the flag must be accepted and the watch live.
  auto w = client_->StartWatch(Key("p"), wo, c.Callback());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const int64_t rev = MustPut(Key("p"), "x");
  ASSERT_TRUE(c.WaitEvents(1));
  EXPECT_EQ(c.events()[0].kv.mod_revision, rev);
  EXPECT_EQ((*w)->next_revision(), rev + 1);
}

TEST_F(EtcdClientTest, LeaseKeysStayWhileKeptAliveAndVanishOnceKeepaliveStops) {
  auto grant = client_->GrantLease(2);
  ASSERT_TRUE(grant.ok()) << grant.status().ToString();
  EXPECT_EQ(grant->ttl_seconds, 2);
  const std::string k = Key("owned");
  ASSERT_TRUE(client_->Put(k, "mine", grant->id).ok());
  EXPECT_EQ(client_->Range(k)->kvs.at(0).lease, grant->id);

  std::atomic<int> lost{0};
  auto keeper = client_->KeepAlive(grant->id, grant->ttl_seconds, [&](const Status&) { ++lost; });
  // Four renewals at TTL/3 apart span more than the TTL: without them the
  // key would be gone by now.
  const auto t0 = Clock::now();
  ASSERT_TRUE(dbfs::testing::WaitFor([&] { return keeper->renewals() >= 4; }, seconds(10)));
  EXPECT_GT(Clock::now() - t0, seconds(2));
  EXPECT_EQ(client_->Range(k)->kvs.size(), 1u);
  EXPECT_FALSE(keeper->lost());

  keeper->Stop();
  const auto stopped = Clock::now();
  ASSERT_TRUE(dbfs::testing::WaitFor([&] { return client_->Range(k)->kvs.empty(); }, seconds(10)))
      << "key still there 10 s after the keepalive stopped";
  // Not before the TTL (minus the last renewal's age) ran out.
  EXPECT_GT(Clock::now() - stopped, milliseconds(500));
  auto once = client_->KeepAliveOnce(grant->id);
  ASSERT_FALSE(once.ok());
  EXPECT_EQ(once.status().code(), Code::kNotFound);
  EXPECT_EQ(lost.load(), 0) << "a stopped keeper reported a loss";
}

TEST_F(EtcdClientTest, LeaseKeeperReportsLossWhenTheLeaseIsRevoked) {
  auto grant = client_->GrantLease(3);
  ASSERT_TRUE(grant.ok()) << grant.status().ToString();
  ASSERT_TRUE(client_->Put(Key("k"), "v", grant->id).ok());
  std::mutex mu;
  std::vector<Status> losses;
  auto keeper = client_->KeepAlive(grant->id, grant->ttl_seconds, [&](const Status& s) {
    std::lock_guard<std::mutex> l(mu);
    losses.push_back(s);
  });
  ASSERT_TRUE(client_->RevokeLease(grant->id).ok());
  EXPECT_TRUE(client_->Range(Key("k"))->kvs.empty());  // revoke deletes the lease's keys
  ASSERT_TRUE(dbfs::testing::WaitFor([&] { return keeper->lost(); }, seconds(10)));
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(losses.size(), 1u);
  EXPECT_EQ(losses[0].code(), Code::kNotFound) << losses[0].ToString();
  EXPECT_EQ(client_->RevokeLease(grant->id).code(), Code::kNotFound);
}

TEST_F(EtcdClientTest, MemberListAndStatusAgreeOnTheLeader) {
  auto members = client_->MemberList();
  ASSERT_TRUE(members.ok()) << members.status().ToString();
  ASSERT_EQ(members->size(), 3u);
  uint64_t leader = 0;
  for (int i = 1; i <= 3; ++i) {
    auto st = client_->StatusOf(SharedEtcd::cluster()->endpoint(i));
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    EXPECT_NE(st->leader, 0u);
    if (leader == 0) leader = st->leader;
    EXPECT_EQ(st->leader, leader) << "member " << i;
    EXPECT_FALSE(st->version.empty());
    EXPECT_GT(st->revision, 0);
    bool known = false;
    for (const auto& m : *members) known = known || m.id == st->member_id;
    EXPECT_TRUE(known) << "member " << i << " answered with an unknown id";
  }
}

TEST_F(EtcdClientTest, ConcurrentCallsFromManyThreads) {
  constexpr int kThreads = 8, kOps = 25;
  std::mutex mu;
  std::vector<std::string> failures;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> l(mu);
    failures.push_back(std::move(what));
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        const std::string k = Key("t" + std::to_string(t));
        auto put = client_->Put(k, std::to_string(i));
        if (!put.ok()) {
          fail("put: " + put.status().ToString());
          continue;
        }
        auto r = client_->Range(k);
        if (!r.ok()) {
          fail("range: " + r.status().ToString());
        } else if (r->kvs.size() != 1 || r->kvs[0].value != std::to_string(i)) {
          fail("range of " + k + " after put " + std::to_string(i) + " at revision " +
               std::to_string(*put) + " read " + (r->kvs.empty() ? "nothing" : r->kvs[0].value));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, the first: " << failures[0];
}

TEST(EtcdClientUnreachableTest, NoMemberListeningFailsWithinTheDeadlineNamingTheEndpoint) {
  // A port that was free a moment ago: nothing listens there.
  std::string out;
  ASSERT_EQ(dbfs::testing::RunCommand(
                {"/usr/bin/python3", "-c",
                 "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); "
                 "print(s.getsockname()[1])"},
                seconds(10), &out),
            0);
  const std::string ep = "127.0.0.1:" + out.substr(0, out.find('\n'));
  auto client = ConnectEtcd(ep, milliseconds(500));
  ASSERT_NE(client, nullptr);
  const auto t0 = Clock::now();
  auto r = client->Range("/k");
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIOError);
  EXPECT_EQ(r.status().ToErrno(), EIO);
  EXPECT_NE(r.status().message().find(ep), std::string::npos) << r.status().ToString();
  EXPECT_LT(took, milliseconds(1500));
  auto w = client->StartWatch("/k", {}, [](const WatchBatch&) {});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kIOError);
}

}  // namespace
}  // namespace dbfs::mvcc::cluster
