// Large generated histories: executions of an in-memory database with 200
// concurrent clients (tests/elle/sim.h) must check valid when serializable,
// and the same histories with one injected anomaly — or executions under
// weaker isolation — must not. The checker's cost is bounded by the work it
// does (graph edges per transaction: linear, where a blow-up would be
// quadratic), never by seconds; bench/elle_check.sh reports the times.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "elle/history.h"
#include "elle/list_append.h"
#include "tests/elle/sim.h"

namespace dbfs::elle {
namespace {

using sim::Isolation;
using sim::SimOptions;
using sim::Simulate;

// Work bounds, generous: 5,000-transaction histories of 200 clients give
// about 1.1 ww, wr and rw edges each and up to 13 realtime edges (after the
// checker's transitive reduction) per transaction; all-pairs realtime edges
// would be about 2,500 per transaction.
constexpr int64_t kMaxDependencyEdgesPerTxn = 6;
constexpr int64_t kMaxRealtimeEdgesPerTxn = 40;

void ExpectBoundedWork(const CheckResult& r, int64_t txns) {
  const CheckStats& s = r.stats;
  EXPECT_LE(s.ww_edges + s.wr_edges + s.rw_edges, kMaxDependencyEdgesPerTxn * txns)
      << s.ww_edges << " ww, " << s.wr_edges << " wr, " << s.rw_edges << " rw edges for " << txns
      << " transactions";
  EXPECT_LE(s.realtime_edges, kMaxRealtimeEdgesPerTxn * txns)
      << s.realtime_edges << " realtime edges for " << txns << " transactions";
  EXPECT_FALSE(s.search_truncated) << "a cycle search ran out of its budget";
}

struct Timed {
  CheckResult result;
  double seconds;
};

Timed CheckTimed(const History& h, bool realtime) {
  CheckOptions options;
  options.realtime = realtime;
  auto start = std::chrono::steady_clock::now();
  auto r = CheckListAppend(h, options);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {CheckResult{}, s};
  return {std::move(r).value(), s};
}

std::string Explain(const CheckResult& r) {
  std::string s;
  for (const auto& type : r.anomaly_types) {
    s += type + " (" + std::to_string(r.counts.at(type)) +
         "): " + r.anomalies.at(type).front().explanation + "\n";
  }
  return s;
}

// Where each element was appended, and which ops completed which invocations.
struct Index {
  std::map<std::pair<int64_t, int64_t>, size_t> writer;  // (key, element) -> completion pos
  std::map<size_t, size_t> invoke_of;                    // completion pos -> invoke pos
  std::set<std::pair<int64_t, int64_t>> observed;        // elements some :ok read saw
};

Index BuildIndex(const History& h) {
  Index ix;
  std::map<int64_t, size_t> open;
  for (size_t i = 0; i < h.size(); ++i) {
    const Op& op = h[i];
    if (op.type == Op::kInvoke) {
      open[op.process] = i;
      continue;
    }
    ix.invoke_of[i] = open.at(op.process);
    open.erase(op.process);
    for (const Mop& m : op.value) {
      if (m.f == Mop::kAppend) ix.writer[{m.key, m.value}] = i;
      if (op.type == Op::kOk && m.f == Mop::kRead && m.list) {
        for (int64_t x : *m.list) ix.observed.insert({m.key, x});
      }
    }
  }
  return ix;
}

int MopsOnKey(const Op& op, int64_t key) {
  int n = 0;
  for (const Mop& m : op.value) n += m.key == key;
  return n;
}

SimOptions Serializable(int txns, uint64_t seed) {
  SimOptions o;
  o.processes = 200;
  o.txns = txns;
  o.keys = 20;
  o.seed = seed;
  return o;
}

TEST(GeneratedHistory, Serializable200ClientsX5000TxnsIsValid) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    History h = Simulate(Serializable(5000, seed));
    ASSERT_EQ(h.size(), 10000u);
    // Through EDN, as `dbfs elle check` sees it.
    std::ostringstream edn;
    WriteHistory(h, edn);
    auto parsed = ParseHistory(edn.str());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ASSERT_EQ(*parsed, h);
    for (bool realtime : {false, true}) {
      Timed t = CheckTimed(*parsed, realtime);
      EXPECT_TRUE(t.result.valid) << Explain(t.result);
      EXPECT_GT(t.result.stats.ok, 4000);
      EXPECT_GT(t.result.stats.fail, 0);
      EXPECT_GT(t.result.stats.info, 0);
      EXPECT_GT(t.result.stats.rw_edges, 0);
      ExpectBoundedWork(t.result, 5000);
      std::printf(
          "seed %llu realtime=%d: 5000 txns checked in %.3f s (%lld ww, %lld wr, %lld rw, %lld rt "
          "edges)\n",
          static_cast<unsigned long long>(seed), realtime, t.seconds,
          static_cast<long long>(t.result.stats.ww_edges),
          static_cast<long long>(t.result.stats.wr_edges),
          static_cast<long long>(t.result.stats.rw_edges),
          static_cast<long long>(t.result.stats.realtime_edges));
    }
  }
}

TEST(GeneratedHistory, FiftyThousandOpsCheckWithBoundedWork) {
  SimOptions o = Serializable(25000, 7);
  o.max_writes_per_key = 256;  // keys rotate, as in Jepsen's list-append
  History h = Simulate(o);
  ASSERT_EQ(h.size(), 50000u);
  for (bool realtime : {false, true}) {
    Timed t = CheckTimed(h, realtime);
    EXPECT_TRUE(t.result.valid) << Explain(t.result);
    ExpectBoundedWork(t.result, 25000);
    std::printf("50,000 ops (realtime=%d) checked in %.3f s (%lld ww, %lld wr, %lld rw, %lld rt "
                "edges)\n",
                realtime, t.seconds, static_cast<long long>(t.result.stats.ww_edges),
                static_cast<long long>(t.result.stats.wr_edges),
                static_cast<long long>(t.result.stats.rw_edges),
                static_cast<long long>(t.result.stats.realtime_edges));
  }
}

// A transaction that read a key and then appended to it reads a stale state
// instead (missing the latest append): T -rw-> W -ww-> ... -ww-> T.
TEST(GeneratedHistory, InjectedStaleReadIsGSingle) {
  History h = Simulate(Serializable(5000, 11));
  Index ix = BuildIndex(h);
  bool injected = false;
  for (size_t i = 0; i < h.size() && !injected; ++i) {
    Op& t = h[i];
    if (t.type != Op::kOk) continue;
    for (size_t r = 0; r < t.value.size() && !injected; ++r) {
      Mop& read = t.value[r];
      if (read.f != Mop::kRead || read.list->empty() || MopsOnKey(t, read.key) != 2) continue;
      if (r + 1 >= t.value.size()) continue;
      const Mop* append = nullptr;
      for (size_t a = r + 1; a < t.value.size(); ++a) {
        if (t.value[a].key == read.key) append = &t.value[a];
      }
      if (append == nullptr || append->f != Mop::kAppend) continue;
      if (ix.observed.count({read.key, append->value}) == 0) continue;
      auto w = ix.writer.find({read.key, read.list->back()});
      if (w == ix.writer.end() || w->second == i || h[w->second].type != Op::kOk) continue;
      read.list->pop_back();
      injected = true;
    }
  }
  ASSERT_TRUE(injected);
  Timed t = CheckTimed(h, false);
  EXPECT_FALSE(t.result.valid);
  EXPECT_TRUE(t.result.Has("G-single")) << Explain(t.result);
  for (const char* never : {"G0", "G1a", "G1b", "G1c", "internal", "incompatible-order"}) {
    EXPECT_FALSE(t.result.Has(never)) << never << "\n" << Explain(t.result);
  }
}

// Two reads of a key swap results: the earlier one now observes an append
// whose transaction began only after it completed — information flowing
// backwards in time.
TEST(GeneratedHistory, InjectedSwappedReadsAreARealtimeCycle) {
  History h = Simulate(Serializable(5000, 12));
  Index ix = BuildIndex(h);
  bool injected = false;
  for (size_t j = 0; j < h.size() && !injected; ++j) {
    Op& t2 = h[j];
    if (t2.type != Op::kOk) continue;
    for (Mop& r2 : t2.value) {
      if (r2.f != Mop::kRead || r2.list->empty() || MopsOnKey(t2, r2.key) != 1) continue;
      auto w = ix.writer.find({r2.key, r2.list->back()});
      if (w == ix.writer.end() || h[w->second].type != Op::kOk) continue;
      const size_t writer_invoked = ix.invoke_of.at(w->second);
      // An earlier reader of the same key that completed before the writer
      // was even invoked.
      for (size_t i = 0; i < writer_invoked && !injected; ++i) {
        Op& t1 = h[i];
        if (t1.type != Op::kOk || MopsOnKey(t1, r2.key) != 1) continue;
        for (Mop& r1 : t1.value) {
          if (r1.f != Mop::kRead || r1.key != r2.key) continue;
          std::swap(r1.list, r2.list);
          injected = true;
          break;
        }
      }
      if (injected) break;
    }
  }
  ASSERT_TRUE(injected);
  Timed t = CheckTimed(h, /*realtime=*/true);
  EXPECT_FALSE(t.result.valid);
  // The writer -wr-> the early reader -realtime-> the writer: G1c-realtime,
  // unless the swap also closed a plain G1c (which, as in Elle, implies it).
  EXPECT_TRUE(t.result.Has("G1c-realtime") || t.result.Has("G1c")) << Explain(t.result);
}

TEST(GeneratedHistory, InjectedReorderedReadIsIncompatibleOrder) {
  History h = Simulate(Serializable(2000, 13));
  // The longest read of each key; reorder a shorter read of the same key.
  std::map<int64_t, size_t> longest;
  for (const Op& op : h) {
    if (op.type != Op::kOk) continue;
    for (const Mop& m : op.value) {
      if (m.f == Mop::kRead) longest[m.key] = std::max(longest[m.key], m.list->size());
    }
  }
  bool injected = false;
  for (Op& op : h) {
    if (op.type != Op::kOk || injected) continue;
    for (Mop& m : op.value) {
      if (m.f != Mop::kRead || m.list->size() < 2 || m.list->size() >= longest[m.key] ||
          MopsOnKey(op, m.key) != 1) {
        continue;
      }
      std::swap((*m.list)[m.list->size() - 1], (*m.list)[m.list->size() - 2]);
      injected = true;
      break;
    }
  }
  ASSERT_TRUE(injected);
  Timed t = CheckTimed(h, false);
  EXPECT_TRUE(t.result.Has("incompatible-order")) << Explain(t.result);
}

TEST(GeneratedHistory, InjectedAbortOfAnObservedWriterIsG1a) {
  History h = Simulate(Serializable(2000, 14));
  Index ix = BuildIndex(h);
  bool injected = false;
  for (Op& op : h) {
    if (op.type != Op::kOk) continue;
    for (const Mop& m : op.value) {
      if (m.f == Mop::kAppend && ix.observed.count({m.key, m.value})) injected = true;
    }
    if (injected) {
      op.type = Op::kFail;
      break;
    }
  }
  ASSERT_TRUE(injected);
  Timed t = CheckTimed(h, false);
  EXPECT_TRUE(t.result.Has("G1a")) << Explain(t.result);
}

// Snapshot isolation permits write skew and nothing worse: the checker must
// find G2 cycles, and must not invent G0, G1 or G-single.
TEST(GeneratedHistory, SnapshotIsolationShowsOnlyG2) {
  SimOptions o = Serializable(5000, 21);
  o.isolation = Isolation::kSnapshot;
  o.keys = 5;
  History h = Simulate(o);
  Timed t = CheckTimed(h, false);
  EXPECT_FALSE(t.result.valid);
  EXPECT_TRUE(t.result.Has("G2-item")) << Explain(t.result);
  for (const std::string& type : t.result.anomaly_types) {
    EXPECT_TRUE(type == "G2-item" || type == "G-nonadjacent") << Explain(t.result);
  }
  ExpectBoundedWork(t.result, 5000);
}

// Read committed permits read skew and lost updates (G-single) and
// non-repeatable reads (internal), never G0 or G1.
TEST(GeneratedHistory, ReadCommittedShowsGSingle) {
  SimOptions o = Serializable(5000, 22);
  o.isolation = Isolation::kReadCommitted;
  History h = Simulate(o);
  Timed t = CheckTimed(h, false);
  EXPECT_FALSE(t.result.valid);
  EXPECT_TRUE(t.result.Has("G-single")) << Explain(t.result);
  EXPECT_TRUE(t.result.Has("lost-update")) << Explain(t.result);
  for (const char* never : {"G0", "G1a", "G1b", "G1c", "duplicate-elements", "incompatible-order",
                            "garbage-read", "dirty-update"}) {
    EXPECT_FALSE(t.result.Has(never)) << never << "\n" << Explain(t.result);
  }
  ExpectBoundedWork(t.result, 5000);
}

}  // namespace
}  // namespace dbfs::elle
