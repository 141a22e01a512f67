// Our implementation of Elle's list-append analysis (Kingsbury & Alvaro,
// "Elle: Inferring Isolation Anomalies from Experimental Observations";
// jepsen-io/elle, elle.list-append). docs/elle.md explains every rule.
//
// In short: because each append adds a unique element, every read of a list
// reveals the order of all appends before it. The longest read of a key is a
// witness of its version order (every other read must be a prefix of it).
// From that order the checker derives ww, wr and rw dependencies between
// transactions (and, optionally, realtime order), finds strongly connected
// components, searches each for a short cycle and names it after Adya:
// G0, G1c, G-single, G-nonadjacent, G2-item (with a -realtime suffix when the
// cycle needs a realtime edge). Anomalies visible without a cycle are reported
// too: G1a, G1b, internal, future-read, dirty-update, lost-update,
// duplicate-elements, incompatible-order, garbage-read.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "elle/graph.h"
#include "elle/history.h"
#include "kvstore/status.h"

namespace dbfs::elle {

struct CheckOptions {
  // Add realtime edges (T1 completed before T2 was invoked): checks strict
  // serializability instead of serializability.
  bool realtime = false;
  // Examples kept per anomaly type (all are counted).
  size_t max_examples = 8;
  // Edge visits allowed per cycle type and strongly connected component
  // before the search for that type there gives up, like Elle's
  // :cycle-search-timeout (every non-trivial component still gets one cycle
  // reported, whatever the budget).
  int64_t search_budget = 20'000'000;
};

// One step T_a -> T_b of a reported cycle.
struct CycleStepInfo {
  Rel rel;
  int64_t from_index;  // :index of the ops standing for T_a and T_b
  int64_t to_index;
  int64_t key = 0;
  bool from_init = false;
  int64_t value = 0;
  int64_t value2 = 0;
};

struct Anomaly {
  std::string type;                  // "G-single", "G1a", "incompatible-order", ...
  std::vector<int64_t> ops;          // :index of the ops involved (a cycle's T1..Tn)
  std::vector<CycleStepInfo> steps;  // cycles only
  std::string edn;                   // Elle-style EDN map of this anomaly
  std::string explanation;           // readable, possibly multi-line
};

struct CheckStats {
  int64_t ops = 0;
  int64_t ok = 0, fail = 0, info = 0;  // transactions by outcome
  int64_t keys = 0;
  int64_t ww_edges = 0, wr_edges = 0, rw_edges = 0, realtime_edges = 0;
  int64_t nontrivial_sccs = 0;
  int64_t largest_scc = 0;
  bool search_truncated = false;  // some cycle search ran out of budget
};

struct CheckResult {
  bool valid = true;
  std::vector<std::string> anomaly_types;                 // most severe first
  std::map<std::string, std::vector<Anomaly>> anomalies;  // examples per type
  std::map<std::string, int64_t> counts;                  // all found, per type
  CheckStats stats;

  bool Has(std::string_view type) const { return anomalies.count(std::string(type)) != 0; }
};

// Checks a list-append history. Returns Invalid when the history cannot be
// analysed at all: ops not alternating invoke/complete per process, or an
// element appended twice to a key (appends must be unique).
Result<CheckResult> CheckListAppend(const History& history, const CheckOptions& options = {});

}  // namespace dbfs::elle
