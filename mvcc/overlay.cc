#include "mvcc/overlay.h"

#include <mutex>

namespace dbfs::mvcc {

namespace {
uint64_t VersionBytes(const std::string& key, const Version& v) {
  return key.size() + (v.value ? v.value->size() : 0) + 48;
}
}  // namespace

void Overlay::Publish(std::vector<Write>* writes, Csn csn) {
  for (auto& w : *writes) {
    Part& p = parts_[static_cast<int>(w.table)];
    std::unique_lock lock(p.mu);
    auto it = p.map.find(w.key);
    if (it == p.map.end()) it = p.map.emplace(w.key, Chain{}).first;
    Version v{csn, std::move(w.value)};
    bytes_.fetch_add(VersionBytes(it->first, v), std::memory_order_relaxed);
    versions_.fetch_add(1, std::memory_order_relaxed);
    // A transaction writes each key at most once, and csns grow, so the new
    // version is the newest; replace a same-csn duplicate (replay) instead.
    if (!it->second.empty() && it->second.back().csn == csn) {
      it->second.back() = std::move(v);
    } else {
      it->second.push_back(std::move(v));
    }
  }
}

Overlay::Lookup Overlay::Get(Table t, std::string_view key, Csn snap, std::string* value) const {
  const Part& p = parts_[static_cast<int>(t)];
  std::shared_lock lock(p.mu);
  auto it = p.map.find(key);
  if (it == p.map.end()) return Lookup::kAbsent;
  const Chain& c = it->second;
  for (auto v = c.rbegin(); v != c.rend(); ++v) {
    if (v->csn <= snap) {
      if (!v->value) return Lookup::kTombstone;
      if (value) *value = *v->value;
      return Lookup::kLive;
    }
  }
  return Lookup::kAbsent;
}

Csn Overlay::NewestCsn(Table t, std::string_view key) const {
  const Part& p = parts_[static_cast<int>(t)];
  std::shared_lock lock(p.mu);
  auto it = p.map.find(key);
  if (it == p.map.end() || it->second.empty()) return 0;
  return it->second.back().csn;
}

std::optional<std::string> Overlay::FirstNewerThan(Table t, std::string_view begin,
                                                   std::string_view end, Csn snap) const {
  const Part& p = parts_[static_cast<int>(t)];
  std::shared_lock lock(p.mu);
  for (auto it = p.map.lower_bound(begin); it != p.map.end(); ++it) {
    if (!end.empty() && std::string_view(it->first) >= end) break;
    if (!it->second.empty() && it->second.back().csn > snap) return it->first;
  }
  return std::nullopt;
}

void Overlay::Range(Table t, std::string_view begin, std::string_view end, Csn snap,
                    std::map<std::string, std::optional<std::string>>* out) const {
  const Part& p = parts_[static_cast<int>(t)];
  std::shared_lock lock(p.mu);
  for (auto it = p.map.lower_bound(begin); it != p.map.end(); ++it) {
    if (!end.empty() && std::string_view(it->first) >= end) break;
    const Chain& c = it->second;
    for (auto v = c.rbegin(); v != c.rend(); ++v) {
      if (v->csn <= snap) {
        (*out)[it->first] = v->value;
        break;
      }
    }
  }
}

void Overlay::CollectUpTo(Table t, Csn upto,
                          std::vector<std::pair<std::string, Chain>>* out) const {
  const Part& p = parts_[static_cast<int>(t)];
  std::shared_lock lock(p.mu);
  for (const auto& [key, chain] : p.map) {
    Chain sel;
    for (const auto& v : chain) {
      if (v.csn <= upto) sel.push_back(v);
    }
    if (!sel.empty()) out->emplace_back(key, std::move(sel));
  }
}

void Overlay::TrimUpTo(Table t, const std::vector<std::pair<std::string, Chain>>& keys, Csn upto) {
  Part& p = parts_[static_cast<int>(t)];
  std::unique_lock lock(p.mu);
  for (const auto& kv : keys) {
    auto it = p.map.find(kv.first);
    if (it == p.map.end()) continue;
    Chain& c = it->second;
    size_t n = 0;
    while (n < c.size() && c[n].csn <= upto) {
      bytes_.fetch_sub(VersionBytes(it->first, c[n]), std::memory_order_relaxed);
      versions_.fetch_sub(1, std::memory_order_relaxed);
      ++n;
    }
    c.erase(c.begin(), c.begin() + static_cast<long>(n));
    if (c.empty()) p.map.erase(it);
  }
}

}  // namespace dbfs::mvcc
