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

#include <condition_variable>
#include <cstdint>
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
  // Drops the kernel's cached entry `name` in directory `parent`, soon (on
  // the worker: the directory's lock may be held by requests that wait for
  // a worker thread, so doing it inline can starve the session).
  void InvalidateEntry(uint64_t parent, std::string_view name);

 private:
  void Notify(uint64_t ino);
  void Work();

  // Lock order: session_mu_ before mu_ is never needed; each is taken alone.
  std::shared_mutex session_mu_;  // shared while notifying; exclusive to detach
  fuse_session* se_ = nullptr;    // guarded by session_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint64_t> queued_;  // guarded by mu_
  std::set<std::pair<uint64_t, std::string>> queued_entries_;  // guarded by mu_
  void NotifyEntry(uint64_t parent, const std::string& name);
  bool stop_ = false;          // guarded by mu_
  std::thread worker_;
};

}  // namespace dbfs::fuse
