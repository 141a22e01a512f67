// Requests that may block, taken off the io_uring ring threads.
//
// Over io_uring each CPU's requests are served one after the other by that
// CPU's ring thread (fuse/ll_transport.h). A handler that waits — F_SETLKW
// or a blocking flock, an fsync waiting for the WAL sync (group commit: the
// fsyncs of many callers share one sync only if they reach the engine
// together), a `dbfs tx run --lock` transaction waiting for
// another's inode lock, a transaction commit waiting for the kernel to drop
// directory entries — would stall every request queued behind it on that
// CPU, among them the one that ends the wait. Such requests therefore run on
// a pool of threads made on demand (the classic transport's workers are too),
// through the dispatch hook of our libfuse (third_party/libfuse/README.dbfs.md).
// Everything else runs on the ring thread, without a thread switch.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "fuse/ll_fuse.h"

namespace dbfs::fuse {

class TxBindings;

class UringOffload {
 public:
  // `bindings` must outlive this object: while any transaction is bound,
  // every ring request is offloaded (any of them may wait for a lock).
  // `before_drain` runs when the session loop ends, before waiting for the
  // offloaded requests: it must end their waits (AdapterLocks::Shutdown).
  // `sync_mount`: -o sync, every change waits for its WAL sync.
  UringOffload(TxBindings* bindings, bool sync_mount, std::function<void()> before_drain)
      : bindings_(bindings), sync_mount_(sync_mount), before_drain_(std::move(before_drain)) {}
  ~UringOffload();  // joins the workers
  UringOffload(const UringOffload&) = delete;
  UringOffload& operator=(const UringOffload&) = delete;

  // Installs the hook on `se`.
  void Install(fuse_session* se);
  // Whether a request may block (and so must leave the ring): `op_in` is
  // its opcode's fixed argument.
  bool MayBlock(const struct fuse_in_header& in, const void* op_in) const;

  uint64_t offloaded() const;

 private:
  static bool Dispatch(void* self, const struct fuse_in_header* in, const void* op_in,
                       void (*run)(void*), void* arg);
  void Post(void (*run)(void*), void* arg);
  void Work();
  // The rings are about to go: every offloaded request finishes first.
  void Drain();

  TxBindings* bindings_;
  const bool sync_mount_;
  std::function<void()> before_drain_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<void (*)(void*), void*>> queue_;  // guarded by mu_
  std::vector<std::thread> workers_;                     // guarded by mu_
  size_t idle_ = 0;                                      // guarded by mu_
  size_t running_ = 0;                                   // guarded by mu_
  std::condition_variable drained_cv_;
  uint64_t offloaded_ = 0;                               // guarded by mu_
  bool stop_ = false;                                    // guarded by mu_
};

}  // namespace dbfs::fuse
