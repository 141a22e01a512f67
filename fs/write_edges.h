// WriteEdges: what a write(2) overwrote in the pages it shares with the rest
// of the file, so that a stale page written back from a shared mapping cannot
// put those old bytes back (issue 12 item 1; docs/ARCHITECTURE.md §7).
//
// The race: a write with direct I/O (a new file's read-write descriptor, or
// O_DIRECT) that starts or ends inside a page. The kernel drops the cached
// pages of the range before it sends the WRITE; a store through a shared
// mapping into the *other* part of such an edge page faults it back in —
// reading the bytes from before the WRITE commits — and dirties it; its
// writeback later carries the whole page, the write's edge bytes as they
// were before. The kernel cannot tell which bytes of a page a mapping
// changed; the daemon can: for the edge bytes of every write it keeps their
// previous values and the write's CSN, and for every page it serves whole
// (a page-cache fill) the CSN it was read at. A writeback WRITE of a page
// does not apply a byte that a write committed after the page was read
// replaced, and that still holds the value from before that write (so the
// mapping did not store there); every other byte is applied. A page whose
// fill the daemon did not see counts as read before every write. Records live until
// the inode's last open handle is released (a mapping holds its file open,
// so no stale page can outlive them).
//
// Thread-safe. Callers serialize a write's Record with the writebacks of the
// same inode (the inode lock of the operation).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dbfs {

class WriteEdges {
 public:
  static constexpr uint64_t kPage = 4096;

  // The parts of [off, off + size) that are not whole pages: at most two
  // ranges, each inside one page.
  static std::vector<std::pair<uint64_t, uint64_t>> EdgeRanges(uint64_t off, uint64_t size);

  // Remembers that a write replaced `old` (the file's bytes at `off`, inside
  // one page) with new ones. Returns a handle for Committed.
  size_t Record(uint64_t ino, uint64_t off, std::string old);
  // The write of Record's `handle` committed at `csn` (until then it counts
  // as committed after every page fill).
  void Committed(uint64_t ino, size_t handle, uint64_t csn);
  // Whole pages [first_page, end_page) of `ino` were served at snapshot
  // `csn` (tracked only for inodes with records: earlier fills count as
  // "before every write" anyway).
  void NoteFill(uint64_t ino, uint64_t first_page, uint64_t end_page, uint64_t csn);

  // For a writeback of `data` at `off`: the ranges [begin, end) (file
  // offsets) that must be applied; bytes left out hold values an earlier
  // write replaced. One range (all of it) when nothing is recorded there.
  std::vector<std::pair<uint64_t, uint64_t>> RunsToApply(uint64_t ino, uint64_t off,
                                                         std::string_view data) const;

  // The inode's last handle is gone: no stale page of it can exist.
  void Forget(uint64_t ino);

  uint64_t bytes() const;

 private:
  static constexpr uint64_t kUncommitted = ~uint64_t{0};
  struct Record_ {
    uint64_t off;
    std::string old;
    uint64_t csn = kUncommitted;
    uint64_t id = 0;
  };
  struct Inode_ {
    std::vector<Record_> records;
    std::unordered_map<uint64_t, uint64_t> fills;  // page -> CSN it was read at
    uint64_t next_id = 1;
  };
  // Bounds on memory: per inode and in all. Beyond them the oldest records of
  // the inode are dropped (logged once).
  static constexpr size_t kMaxPerInode = 4096;
  static constexpr size_t kMaxFillsPerInode = 1 << 16;
  static constexpr uint64_t kMaxBytes = 64ull << 20;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Inode_> inodes_;  // guarded by mu_
  uint64_t bytes_ = 0;                           // guarded by mu_
  bool warned_ = false;                          // guarded by mu_
};

}  // namespace dbfs
