// LockTable: the advisory file locks of a mount — POSIX record locks
// (fcntl F_GETLK/F_SETLK/F_SETLKW, owned by a kernel lock owner) and BSD
// flock locks (whole file, owned by an open file description) — kept per
// inode in memory, like the kernel keeps them for a local filesystem.
//
// The kernel forwards these requests to us (FUSE_CAP_POSIX_LOCKS,
// FUSE_CAP_FLOCK_LOCKS) and releases a lock owner's POSIX locks with FLUSH on
// close and its flock locks with RELEASE; the adapter calls ReleasePosix /
// ReleaseFlock there. The two kinds never conflict with each other (as on
// Linux).
//
// Self-contained on purpose: a later lock manager with deadlock detection
// (txn/) replaces it. There is no deadlock detection here: two owners that
// wait for each other with F_SETLKW wait until one of them is interrupted.
//
// Thread-safe: every method may be called from any thread. Blocking calls
// (SetLk with wait, Flock without LOCK_NB) wait on a condition variable and
// can be cancelled through a LockWaitCancel (the FUSE interrupt of the request:
// EINTR) or all at once by Shutdown() (ENOLCK).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::fuse {

class LockTable;

// One POSIX record lock: bytes [start, end] (inclusive) of an inode.
struct PosixLock {
  // `end` of a lock that extends to the end of the file, however far it grows
  // (l_len == 0 in struct flock).
  static constexpr uint64_t kToEof = UINT64_MAX;

  int type = 0;  // F_RDLCK, F_WRLCK (F_UNLCK only in requests / "no conflict")
  uint64_t start = 0;
  uint64_t end = kToEof;
  uint64_t owner = 0;  // kernel lock owner (fuse_file_info::lock_owner)
  int32_t pid = 0;     // reported to F_GETLK callers

  bool operator==(const PosixLock&) const = default;
};

// Cancels one blocking wait. The FUSE adapter registers Cancel() as the
// request's interrupt callback; the waiting call then returns EINTR. Lives on
// the waiting thread's stack; Cancel() may be called from any thread, before
// or during the wait (a cancel before the wait makes the wait return at once).
class LockWaitCancel {
 public:
  explicit LockWaitCancel(LockTable* table) : table_(table) {}
  LockWaitCancel(const LockWaitCancel&) = delete;
  LockWaitCancel& operator=(const LockWaitCancel&) = delete;
  void Cancel();

 private:
  friend class LockTable;
  LockTable* table_;
  bool cancelled_ = false;  // guarded by table_->mu_
};

class LockTable {
 public:
  LockTable() = default;
  LockTable(const LockTable&) = delete;
  LockTable& operator=(const LockTable&) = delete;

  // ---- POSIX record locks ----
  // F_GETLK: the first lock of another owner that conflicts with `probe`
  // (overlapping, and at least one of them F_WRLCK), or nullopt.
  // `probe.type` must be F_RDLCK or F_WRLCK.
  std::optional<PosixLock> GetLk(uint64_t ino, const PosixLock& probe) const;

  // F_SETLK / F_SETLKW: sets `lock.type` (F_RDLCK, F_WRLCK or F_UNLCK) on
  // [lock.start, lock.end] for `lock.owner`, replacing, splitting and merging
  // that owner's locks like fcntl(2). On conflict: EAGAIN if !wait, otherwise
  // waits until the conflict is gone (EINTR when cancelled, ENOLCK when shut
  // down).
  // An owner never conflicts with itself.
  Status SetLk(uint64_t ino, const PosixLock& lock, bool wait, LockWaitCancel* cancel = nullptr);

  // Drops every POSIX lock of `owner` on `ino` (FLUSH: close(2) releases all
  // of a process's locks on the file).
  void ReleasePosix(uint64_t ino, uint64_t owner);

  // ---- flock(2) ----
  // `op`: LOCK_SH, LOCK_EX or LOCK_UN, optionally | LOCK_NB. Converting an
  // owner's lock first drops the old one, as Linux does (so two holders of
  // LOCK_SH upgrading at once cannot deadlock); a failed LOCK_NB conversion
  // therefore leaves the owner without a lock. Conflict: EWOULDBLOCK with
  // LOCK_NB, otherwise waits (EINTR when cancelled, ENOLCK when shut down).
  Status Flock(uint64_t ino, uint64_t owner, int op, LockWaitCancel* cancel = nullptr);

  // Drops the flock lock of `owner` on `ino` (RELEASE with flock_release).
  void ReleaseFlock(uint64_t ino, uint64_t owner);

  // Fails every current and future wait with ENOLCK (unmount / signal), so
  // no request thread stays blocked. Non-blocking requests keep working.
  void Shutdown();

  // ---- tests ----
  // The locks of `ino`, sorted by (owner, start).
  std::vector<PosixLock> TEST_PosixLocks(uint64_t ino) const;
  // The flock type (LOCK_SH/LOCK_EX) held by `owner` on `ino`, or 0.
  int TEST_FlockOf(uint64_t ino, uint64_t owner) const;
  // Waits until at least `n` calls are blocked in a wait, up to `timeout`.
  bool TEST_WaitForWaiters(size_t n, std::chrono::milliseconds timeout) const;

 private:
  friend class LockWaitCancel;

  struct FlockHolder {
    uint64_t owner = 0;
    int type = 0;  // LOCK_SH or LOCK_EX
  };
  struct InodeLocks {
    std::vector<PosixLock> posix;  // an owner's locks never overlap each other
    std::vector<FlockHolder> flock;
    bool empty() const { return posix.empty() && flock.empty(); }
  };

  // REQUIRES: mu_ held.
  const PosixLock* FindPosixConflict(uint64_t ino, const PosixLock& probe) const;
  bool FlockConflicts(uint64_t ino, uint64_t owner, int type) const;
  void ApplyPosix(uint64_t ino, const PosixLock& lock);
  void EraseIfEmpty(uint64_t ino);
  // Waits once on cv_; an error if the wait must end (cancel / shutdown).
  Status WaitOnce(std::unique_lock<std::mutex>& lk, LockWaitCancel* cancel);

  // mu_ guards everything below and every LockWaitCancel::cancelled_. It is a
  // leaf lock: nothing else is acquired while it is held.
  mutable std::mutex mu_;
  // Notified whenever a lock is dropped or downgraded or a wait is cancelled.
  mutable std::condition_variable cv_;
  // Notified when a call starts waiting (only TEST_WaitForWaiters listens).
  mutable std::condition_variable waiters_cv_;
  std::unordered_map<uint64_t, InodeLocks> inodes_;
  size_t waiters_ = 0;
  bool shutdown_ = false;
};

}  // namespace dbfs::fuse
