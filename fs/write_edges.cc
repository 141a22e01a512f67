#include "fs/write_edges.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace dbfs {

std::vector<std::pair<uint64_t, uint64_t>> WriteEdges::EdgeRanges(uint64_t off, uint64_t size) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (size == 0) return out;
  const uint64_t end = off + size;
  if (off % kPage != 0) out.emplace_back(off, std::min(end, (off / kPage + 1) * kPage));
  if (end % kPage != 0) {
    const uint64_t start = std::max(off, end / kPage * kPage);
    // Both edges in one page: the first range already covers it.
    if (out.empty() || start >= out.back().second) out.emplace_back(start, end);
  }
  return out;
}

size_t WriteEdges::Record(uint64_t ino, uint64_t off, std::string old) {
  if (old.empty()) return 0;
  std::lock_guard g(mu_);
  Inode_& in = inodes_[ino];
  auto& v = in.records;
  bytes_ += old.size();
  const uint64_t id = in.next_id++;
  v.push_back(Record_{off, std::move(old), kUncommitted, id});
  size_t drop = v.size() > kMaxPerInode ? v.size() - kMaxPerInode : 0;
  while (bytes_ > kMaxBytes && drop + 1 < v.size()) ++drop;
  if (drop > 0) {
    if (!warned_) {
      warned_ = true;
      spdlog::warn(
          "inode {}: more than {} write edges kept for open mappings; the oldest are "
          "dropped (a stale mapped page written back could then undo them)",
          ino, v.size());
    }
    for (size_t i = 0; i < drop; ++i) bytes_ -= v[i].old.size();
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  return static_cast<size_t>(id);
}

void WriteEdges::Committed(uint64_t ino, size_t handle, uint64_t csn) {
  if (handle == 0) return;
  std::lock_guard g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  for (auto r = it->second.records.rbegin(); r != it->second.records.rend(); ++r) {
    if (r->id == handle) {
      r->csn = csn;
      return;
    }
  }
}

void WriteEdges::NoteFill(uint64_t ino, uint64_t first_page, uint64_t end_page, uint64_t csn) {
  if (first_page >= end_page) return;
  std::lock_guard g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  auto& fills = it->second.fills;
  for (uint64_t p = first_page; p < end_page; ++p) {
    uint64_t& f = fills[p];
    f = std::max(f, csn);
  }
  if (fills.size() > kMaxFillsPerInode) fills.clear();  // unknown fills count as oldest: safe
}

std::vector<std::pair<uint64_t, uint64_t>> WriteEdges::RunsToApply(uint64_t ino, uint64_t off,
                                                                   std::string_view data) const {
  const uint64_t end = off + data.size();
  std::vector<bool> stale;
  {
    std::lock_guard g(mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) {
      const Inode_& in = it->second;
      // Per byte: the value before the earliest write committed after its
      // page was read — what a page the mapping did not change still holds.
      std::vector<const Record_*> first(data.size(), nullptr);
      for (const Record_& r : in.records) {
        const uint64_t a = std::max(off, r.off), b = std::min(end, r.off + r.old.size());
        if (a >= b) continue;
        auto fill = in.fills.find(a / kPage);
        const uint64_t filled = fill == in.fills.end() ? 0 : fill->second;
        if (r.csn != kUncommitted && r.csn <= filled) continue;  // the page has this write
        for (uint64_t p = a; p < b; ++p) {
          const Record_*& f = first[p - off];
          if (f == nullptr || r.csn < f->csn) f = &r;
        }
      }
      for (size_t i = 0; i < data.size(); ++i) {
        const Record_* r = first[i];
        if (r == nullptr || data[i] != r->old[off + i - r->off]) continue;
        if (stale.empty()) stale.assign(data.size(), false);
        stale[i] = true;
      }
    }
  }
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  if (stale.empty()) {
    runs.emplace_back(off, end);
    return runs;
  }
  for (uint64_t p = 0; p < data.size();) {
    while (p < data.size() && stale[p]) ++p;
    const uint64_t start = p;
    while (p < data.size() && !stale[p]) ++p;
    if (p > start) runs.emplace_back(off + start, off + p);
  }
  return runs;
}

void WriteEdges::Forget(uint64_t ino) {
  std::lock_guard g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  for (const Record_& r : it->second.records) bytes_ -= r.old.size();
  inodes_.erase(it);
}

uint64_t WriteEdges::bytes() const {
  std::lock_guard g(mu_);
  return bytes_;
}

}  // namespace dbfs
