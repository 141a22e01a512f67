// Invalidator: makes the kernel drop what it caches about an inode
// (attributes and page cache) with fuse_lowlevel_notify_inval_inode. The
// engine calls it when an explicit transaction first touches an inode
// (sync=false: queued, because the kernel may hold locks for the very request
// being served) and when the transaction ends (sync=true: done on return, so
// no outside reader is served stale data after commit/abort).
//
// Thread-safe. Lifecycle: Attach(session) once the session exists, Detach()
// after the session loop and the unmount, before fuse_session_destroy; calls
// outside that window do nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <string_view>
#include <shared_mutex>
#include <thread>

#include "fuse/ll_fuse.h"

namespace dbfs::fuse {

class Invalidator {
 public:
  Invalidator() = default;
  ~Invalidator() { Detach(); }
  Invalidator(const Invalidator&) = delete;
  Invalidator& operator=(const Invalidator&) = delete;

  // Starts the worker for queued invalidations.
  void Attach(fuse_session* se);
  // Drops what is still queued, waits for a notification in progress and
  // stops the worker. Idempotent.
  void Detach();

  // Invalidates the attributes and all cached pages of `ino`: at once if
  // `sync`, else soon (repeated requests for a queued inode are merged).
  void Invalidate(uint64_t ino, bool sync);
  // Invalidates the attributes of `ino` and its cached pages overlapping
  // [off, off + len), at once. REQUIRES: the caller's request holds no page
  // lock of `ino` in the kernel (the kernel locks each cached page), e.g. a
  // direct-I/O WRITE (ops::Write).
  void InvalidateRange(uint64_t ino, uint64_t off, uint64_t len);
  // Drops the kernel's cached entries (parent, name) on the worker — never
  // inline: the kernel takes each directory's lock, which requests waiting
  // for a worker thread may hold — and waits until the worker has done them,
  // for at most `wait` (so a session with every worker busy slows down
  // instead of stalling). Returns false if the wait timed out.
  bool InvalidateEntries(const std::set<std::pair<uint64_t, std::string>>& entries,
                         std::chrono::milliseconds wait);

 private:
  // fuse_lowlevel_notify_inval_inode(ino, off, len): off 0 and len 0 is all.
  void Notify(uint64_t ino, int64_t off = 0, int64_t len = 0);
  void Work();

  // Lock order: session_mu_ before mu_ is never needed; each is taken alone.
  std::shared_mutex session_mu_;  // shared while notifying; exclusive to detach
  fuse_session* se_ = nullptr;    // guarded by session_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint64_t> queued_;  // guarded by mu_
  std::deque<std::pair<uint64_t, std::string>> queued_entries_;  // guarded by mu_
  uint64_t entries_queued_ = 0;  // ever queued, guarded by mu_
  uint64_t entries_done_ = 0;    // ever notified (or dropped), guarded by mu_
  std::condition_variable done_cv_;
  void NotifyEntry(uint64_t parent, const std::string& name);
  bool stop_ = false;          // guarded by mu_
  std::thread worker_;
};

}  // namespace dbfs::fuse
