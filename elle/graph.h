// The transaction dependency graph of the list-append checker, its strongly
// connected components, and a constrained shortest-cycle search.
//
// Nodes are transactions (dense ids 0..n-1). Edges carry their relationship —
// ww (write-write), wr (write-read), rw (read-write anti-dependency) or
// realtime — and the key and elements that justify them, so a cycle can be
// explained to a human.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace dbfs::elle {

enum class Rel : uint8_t { kWW = 0, kWR = 1, kRW = 2, kRealtime = 3 };
inline constexpr uint8_t RelBit(Rel r) { return static_cast<uint8_t>(1u << static_cast<int>(r)); }
inline constexpr uint8_t kWWBit = RelBit(Rel::kWW);
inline constexpr uint8_t kWRBit = RelBit(Rel::kWR);
inline constexpr uint8_t kRWBit = RelBit(Rel::kRW);
inline constexpr uint8_t kRealtimeBit = RelBit(Rel::kRealtime);
std::string_view RelName(Rel r);  // "ww", "wr", "rw", "realtime"

struct Edge {
  int32_t to = 0;
  Rel rel = Rel::kWW;
  // rw only: the reader observed the initial (empty) state of `key`.
  bool from_init = false;
  int64_t key = 0;
  // ww, rw: `value` is the element just before `value2` in the version order.
  // wr: `value` is the last element the reader observed.
  int64_t value = 0;
  int64_t value2 = 0;
};

class DepGraph {
 public:
  explicit DepGraph(int32_t nodes) : adj_(static_cast<size_t>(nodes)) {}
  DepGraph(const DepGraph&) = delete;
  DepGraph& operator=(const DepGraph&) = delete;

  // REQUIRES: from != e.to (the checker never relates a txn to itself).
  void Add(int32_t from, const Edge& e) { adj_[static_cast<size_t>(from)].push_back(e); }
  // Drops parallel edges of the same relationship (keeping the first one's
  // explanation) and orders each node's edges. Call once, after the last Add;
  // edges are immutable afterwards (pointers to them stay valid).
  void Finalize();

  int32_t size() const { return static_cast<int32_t>(adj_.size()); }
  const std::vector<Edge>& out(int32_t v) const { return adj_[static_cast<size_t>(v)]; }
  int64_t edge_count(Rel rel) const { return counts_[static_cast<int>(rel)]; }

 private:
  std::vector<std::vector<Edge>> adj_;
  int64_t counts_[4] = {0, 0, 0, 0};
};

// Strongly connected components of the subgraph made of the edges whose
// relationship is in `mask`. Ids are Tarjan's completion order, which is a
// reverse topological order of the condensation: an edge u->v between two
// components always has id[u] > id[v].
struct Components {
  std::vector<int32_t> id;    // per node
  std::vector<int32_t> size;  // per component
  bool nontrivial(int32_t c) const { return size[static_cast<size_t>(c)] > 1; }
};
Components StronglyConnected(const DepGraph& g, uint8_t mask);

// What a searched cycle may and must contain.
struct CycleSpec {
  uint8_t mask = 0;  // relationships the cycle may use
  int min_rw = 0;    // number of rw edges, counted up to 2 ("2" = two or more)
  int max_rw = 2;
  bool need_wr = false;  // at least one wr edge
  bool need_rt = false;  // at least one realtime edge
  // Optional pruning for searches whose edges after the first all lie in a
  // subgraph: that subgraph's Components::id. A node whose id is below the
  // start node's cannot lead back to it, so it is not explored.
  const std::vector<int32_t>* reach_ids = nullptr;
};

struct CycleStep {
  int32_t from;
  const Edge* edge;  // from -> edge->to
};

// Breadth-first search for the shortest cycle that starts with a given edge
// and satisfies a CycleSpec, staying inside one component. Reuses its scratch
// space across calls. Not thread-safe.
class CycleSearcher {
 public:
  explicit CycleSearcher(const DepGraph& g) : g_(g) {}

  // A cycle whose first step is (from -> first.to), all of whose nodes have
  // comp[node] == comp[from], or nullopt. `*budget` is decremented per edge
  // examined; the search gives up (nullopt) when it reaches zero.
  std::optional<std::vector<CycleStep>> Find(int32_t from, const Edge& first, const CycleSpec& spec,
                                             const std::vector<int32_t>& comp, int64_t* budget);

 private:
  // Search state: node x (rw count 0..2) x (saw wr) x (saw realtime).
  static constexpr int kStatesPerNode = 12;

  const DepGraph& g_;
  uint32_t generation_ = 0;
  std::vector<uint32_t> seen_;    // generation that reached the state
  std::vector<int64_t> parent_;   // previous state
  std::vector<const Edge*> via_;  // edge into the state
  std::vector<int64_t> queue_;
};

}  // namespace dbfs::elle
