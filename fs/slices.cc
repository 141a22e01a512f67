#include "fs/slices.h"

#include <algorithm>
#include <array>

namespace dbfs {

uint64_t InsertSlice(SliceList* l, const Slice& n) {
  // The first slice that ends after n starts, and the first that starts at or
  // after n ends: [first, last) is what n overlaps.
  auto first =
      std::partition_point(l->begin(), l->end(), [&](const Slice& s) { return s.end() <= n.off; });
  auto last = first;
  uint64_t overlap = 0;
  std::array<Slice, 3> repl;
  size_t k = 0;
  for (; last != l->end() && last->off < n.end(); ++last) {
    overlap += std::min(last->end(), n.end()) - std::max(last->off, n.off);
    if (last->off < n.off)
      repl[k++] = Slice{last->off, n.off - last->off, last->segment, last->data};
  }
  repl[k++] = n;
  if (last != first) {
    const Slice& s = *(last - 1);
    if (s.end() > n.end()) {
      repl[k++] = Slice{n.end(), s.end() - n.end(), s.segment, s.data + (n.end() - s.off)};
    }
  }
  const auto at = static_cast<size_t>(first - l->begin());
  const auto removed = static_cast<size_t>(last - first);
  if (k > removed) {
    l->insert(l->begin() + static_cast<std::ptrdiff_t>(at + removed), k - removed, Slice{});
  } else if (k < removed) {
    l->erase(l->begin() + static_cast<std::ptrdiff_t>(at + k),
             l->begin() + static_cast<std::ptrdiff_t>(at + removed));
  }
  std::copy(repl.begin(), repl.begin() + static_cast<std::ptrdiff_t>(k),
            l->begin() + static_cast<std::ptrdiff_t>(at));
  return n.len - overlap;
}

uint64_t RemoveRange(SliceList* l, uint32_t off, uint32_t end) {
  SliceList out;
  uint64_t removed = 0;
  for (const Slice& s : *l) {
    if (s.end() <= off || s.off >= end) {
      out.push_back(s);
      continue;
    }
    removed += std::min(s.end(), end) - std::max(s.off, off);
    if (s.off < off) out.push_back(Slice{s.off, off - s.off, s.segment, s.data});
    if (s.end() > end) out.push_back(Slice{end, s.end() - end, s.segment, s.data + (end - s.off)});
  }
  *l = std::move(out);
  return removed;
}

}  // namespace dbfs
