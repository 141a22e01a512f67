#include "elle/graph.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

namespace dbfs::elle {

std::string_view RelName(Rel r) {
  switch (r) {
    case Rel::kWW:
      return "ww";
    case Rel::kWR:
      return "wr";
    case Rel::kRW:
      return "rw";
    case Rel::kRealtime:
      return "realtime";
  }
  return "?";
}

void DepGraph::Finalize() {
  for (auto& edges : adj_) {
    std::stable_sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) {
      return std::pair(a.to, a.rel) < std::pair(b.to, b.rel);
    });
    auto last = std::unique(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) {
      return a.to == b.to && a.rel == b.rel;
    });
    edges.erase(last, edges.end());
    edges.shrink_to_fit();
    for (const Edge& e : edges) ++counts_[static_cast<int>(e.rel)];
  }
}

Components StronglyConnected(const DepGraph& g, uint8_t mask) {
  // Iterative Tarjan: histories have chains of tens of thousands of
  // transactions, too deep for recursion.
  const int32_t n = g.size();
  Components c;
  c.id.assign(static_cast<size_t>(n), -1);
  std::vector<int32_t> index(static_cast<size_t>(n), -1);
  std::vector<int32_t> low(static_cast<size_t>(n), 0);
  std::vector<char> on_stack(static_cast<size_t>(n), 0);
  std::vector<int32_t> stack;
  std::vector<std::pair<int32_t, size_t>> frames;  // node, next edge position
  int32_t next_index = 0;

  for (int32_t root = 0; root < n; ++root) {
    if (index[static_cast<size_t>(root)] != -1) continue;
    frames.emplace_back(root, 0);
    index[static_cast<size_t>(root)] = low[static_cast<size_t>(root)] = next_index++;
    stack.push_back(root);
    on_stack[static_cast<size_t>(root)] = 1;
    while (!frames.empty()) {
      auto& [v, pos] = frames.back();
      const auto& edges = g.out(v);
      bool descended = false;
      while (pos < edges.size()) {
        const Edge& e = edges[pos++];
        if ((RelBit(e.rel) & mask) == 0) continue;
        const int32_t w = e.to;
        if (index[static_cast<size_t>(w)] == -1) {
          index[static_cast<size_t>(w)] = low[static_cast<size_t>(w)] = next_index++;
          stack.push_back(w);
          on_stack[static_cast<size_t>(w)] = 1;
          frames.emplace_back(w, 0);
          descended = true;
          break;
        }
        if (on_stack[static_cast<size_t>(w)]) {
          low[static_cast<size_t>(v)] =
              std::min(low[static_cast<size_t>(v)], index[static_cast<size_t>(w)]);
        }
      }
      if (descended) continue;
      const int32_t done = v;
      frames.pop_back();
      if (!frames.empty()) {
        const int32_t parent = frames.back().first;
        low[static_cast<size_t>(parent)] =
            std::min(low[static_cast<size_t>(parent)], low[static_cast<size_t>(done)]);
      }
      if (low[static_cast<size_t>(done)] == index[static_cast<size_t>(done)]) {
        const int32_t id = static_cast<int32_t>(c.size.size());
        int32_t members = 0;
        int32_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[static_cast<size_t>(w)] = 0;
          c.id[static_cast<size_t>(w)] = id;
          ++members;
        } while (w != done);
        c.size.push_back(members);
      }
    }
  }
  return c;
}

namespace {

bool Satisfies(const std::vector<CycleStep>& cycle, const CycleSpec& spec) {
  int rw = 0;
  bool wr = false, rt = false;
  for (const CycleStep& step : cycle) {
    if ((RelBit(step.edge->rel) & spec.mask) == 0) return false;
    rw += step.edge->rel == Rel::kRW ? 1 : 0;
    wr = wr || step.edge->rel == Rel::kWR;
    rt = rt || step.edge->rel == Rel::kRealtime;
  }
  rw = std::min(rw, 2);
  return rw >= spec.min_rw && rw <= spec.max_rw && (wr || !spec.need_wr) && (rt || !spec.need_rt);
}

// The BFS runs over (node, counters) states, so a node may appear twice in
// the closed walk it finds. Splits such a walk into its simple cycles and
// returns the first that still satisfies `spec`, or nullopt if none does.
std::optional<std::vector<CycleStep>> SimpleCycle(std::vector<CycleStep> walk,
                                                  const CycleSpec& spec) {
  std::unordered_map<int32_t, size_t> position;  // node -> index in `path`
  std::vector<CycleStep> path;
  for (const CycleStep& step : walk) {
    auto it = position.find(step.from);
    if (it != position.end()) {
      std::vector<CycleStep> sub(path.begin() + static_cast<std::ptrdiff_t>(it->second),
                                 path.end());
      for (const CycleStep& s : sub) position.erase(s.from);
      path.resize(path.size() - sub.size());
      if (Satisfies(sub, spec)) return sub;
    }
    position[step.from] = path.size();
    path.push_back(step);
  }
  if (Satisfies(path, spec)) return path;
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<CycleStep>> CycleSearcher::Find(int32_t from, const Edge& first,
                                                          const CycleSpec& spec,
                                                          const std::vector<int32_t>& comp,
                                                          int64_t* budget) {
  const size_t states = static_cast<size_t>(g_.size()) * kStatesPerNode;
  if (seen_.size() != states) {
    seen_.assign(states, 0);
    parent_.assign(states, -1);
    via_.assign(states, nullptr);
    generation_ = 0;
  }
  if (++generation_ == 0) {  // wrapped: forget every stamp
    std::fill(seen_.begin(), seen_.end(), 0);
    generation_ = 1;
  }
  const int32_t comp_id = comp[static_cast<size_t>(from)];
  if (comp[static_cast<size_t>(first.to)] != comp_id) return std::nullopt;
  if ((RelBit(first.rel) & spec.mask) == 0) return std::nullopt;
  if (spec.reach_ids != nullptr && (*spec.reach_ids)[static_cast<size_t>(first.to)] <
                                       (*spec.reach_ids)[static_cast<size_t>(from)]) {
    return std::nullopt;
  }

  auto encode = [](int32_t node, int rw, bool wr, bool rt) -> int64_t {
    return static_cast<int64_t>(node) * kStatesPerNode + rw * 4 + (wr ? 2 : 0) + (rt ? 1 : 0);
  };
  auto advance = [](int rw, bool wr, bool rt, Rel rel, int* rw2, bool* wr2, bool* rt2) {
    *rw2 = std::min(2, rw + (rel == Rel::kRW ? 1 : 0));
    *wr2 = wr || rel == Rel::kWR;
    *rt2 = rt || rel == Rel::kRealtime;
  };
  auto satisfied = [&spec](int rw, bool wr, bool rt) {
    return rw >= spec.min_rw && rw <= spec.max_rw && (wr || !spec.need_wr) && (rt || !spec.need_rt);
  };

  int rw0;
  bool wr0, rt0;
  advance(0, false, false, first.rel, &rw0, &wr0, &rt0);
  if (rw0 > spec.max_rw) return std::nullopt;
  const int64_t start = encode(first.to, rw0, wr0, rt0);
  seen_[static_cast<size_t>(start)] = generation_;
  parent_[static_cast<size_t>(start)] = -1;
  via_[static_cast<size_t>(start)] = &first;

  // The cycle through state `end` (at node u) closed by edge `closing`
  // (u -> from): the given first edge, then each state's incoming edge.
  auto build = [&](int64_t end, const Edge* closing) {
    std::vector<int64_t> chain;  // end .. start
    for (int64_t s = end; s >= 0; s = parent_[static_cast<size_t>(s)]) chain.push_back(s);
    std::reverse(chain.begin(), chain.end());
    std::vector<CycleStep> cycle;
    cycle.reserve(chain.size() + 1);
    cycle.push_back(CycleStep{from, &first});
    for (size_t i = 0; i + 1 < chain.size(); ++i) {
      cycle.push_back(CycleStep{static_cast<int32_t>(chain[i] / kStatesPerNode),
                                via_[static_cast<size_t>(chain[i + 1])]});
    }
    cycle.push_back(CycleStep{static_cast<int32_t>(end / kStatesPerNode), closing});
    return cycle;
  };

  queue_.clear();
  queue_.push_back(start);
  for (size_t head = 0; head < queue_.size(); ++head) {
    const int64_t s = queue_[head];
    const int32_t u = static_cast<int32_t>(s / kStatesPerNode);
    const int rw = static_cast<int>((s % kStatesPerNode) / 4);
    const bool wr = (s & 2) != 0;
    const bool rt = (s & 1) != 0;
    for (const Edge& e : g_.out(u)) {
      if (--*budget <= 0) return std::nullopt;
      if ((RelBit(e.rel) & spec.mask) == 0) continue;
      if (comp[static_cast<size_t>(e.to)] != comp_id) continue;
      if (spec.reach_ids != nullptr && (*spec.reach_ids)[static_cast<size_t>(e.to)] <
                                           (*spec.reach_ids)[static_cast<size_t>(from)]) {
        continue;
      }
      int rw2;
      bool wr2, rt2;
      advance(rw, wr, rt, e.rel, &rw2, &wr2, &rt2);
      if (rw2 > spec.max_rw) continue;
      if (e.to == from) {
        // Close the cycle here or not at all: walking on through `from` would
        // only find closed walks made of smaller cycles.
        if (!satisfied(rw2, wr2, rt2)) continue;
        auto cycle = SimpleCycle(build(s, &e), spec);
        if (cycle) return cycle;
        continue;
      }
      const int64_t s2 = encode(e.to, rw2, wr2, rt2);
      if (seen_[static_cast<size_t>(s2)] == generation_) continue;
      seen_[static_cast<size_t>(s2)] = generation_;
      parent_[static_cast<size_t>(s2)] = s;
      via_[static_cast<size_t>(s2)] = &e;
      queue_.push_back(s2);
    }
  }
  return std::nullopt;
}

}  // namespace dbfs::elle
