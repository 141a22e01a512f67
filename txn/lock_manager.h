// LockManager: shared/exclusive locks on inodes, POSIX byte-range locks and
// flock(2) locks, with deadlock detection. It serves three clients:
//   1. the FUSE adapter's getlk/setlk/setlkw/flock (advisory file locks),
//   2. pessimistic transactions (`dbfs tx run --lock`: exclusive inode locks
//      held to commit),
//   3. short internal critical sections that must not be global.
//
// Three independent lock spaces live on every inode: whole-inode locks
// (LockInode), POSIX record locks (SetRange) and flock locks (Flock). A lock
// only ever conflicts with locks of the same space held by another owner
// (POSIX and flock locks never conflict with each other, as on Linux, and
// advisory locks never block a transaction's inode locks). Owners are opaque
// 64-bit ids shared by all three spaces — a transaction id, a kernel
// lock_owner, an internal id — and callers keep their id spaces disjoint. The
// wait-for graph spans all three spaces, so a cycle that mixes a range lock,
// an inode lock and a flock lock is detected like any other.
//
// Acquisition: try once; on conflict (and if the caller may wait) back off a
// few times with exponential, jittered sleeps; then register wait-for edges
// (requester -> every owner currently blocking it), search the wait-for graph
// for a cycle through the requester, and either fail the requester with
// kDeadlock (EDEADLK: it is the one that would close the cycle) or block on
// the inode's shard condition variable until the conflict is gone. See
// docs/lock_manager.md.
//
// No global mutex: lock state is sharded by inode (kShards shards, each a
// mutex + condition variable + map ino -> state). Lock order (documented again
// at the members): at most one shard mutex at a time, then graph_mu_ or one
// owner-index mutex (leaves, never held together). The test sync-point hook
// runs with no LockManager mutex held.
//
// Thread-safe: every public method may be called from any thread. One owner
// should issue its requests from one thread at a time (a POSIX lock owner
// shared by several threads works, but its deadlock reports are as approximate
// as the kernel's).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::txn {

enum class LockMode : uint8_t { kShared, kExclusive };

// Contention counters, monotonically increasing (relaxed snapshots).
struct LockStats {
  uint64_t acquired = 0;     // grants of any kind, re-entrant ones included
  uint64_t immediate = 0;    // grants on the first try (no backoff, no wait)
  uint64_t backoffs = 0;     // backoff sleeps taken before a blocking wait
  uint64_t waits = 0;        // requests that blocked on a condition variable
  uint64_t deadlocks = 0;    // requests failed with kDeadlock (victims)
  uint64_t cancelled = 0;    // waits ended by a cancel flag (EINTR) or Shutdown (ENOLCK)
  uint64_t timeouts = 0;     // waits ended by Options::wait_timeout (kBusy)
  uint64_t would_block = 0;  // non-blocking requests refused with kAgain
};

class LockManager;

// A whole-inode lock held for a scope (internal critical sections). Move-only;
// the destructor drops one level of the owner's re-entrant hold.
class InodeLockGuard {
 public:
  InodeLockGuard() = default;
  InodeLockGuard(InodeLockGuard&& o) noexcept;
  InodeLockGuard& operator=(InodeLockGuard&& o) noexcept;
  InodeLockGuard(const InodeLockGuard&) = delete;
  InodeLockGuard& operator=(const InodeLockGuard&) = delete;
  ~InodeLockGuard() { Release(); }

  bool held() const { return mgr_ != nullptr; }
  void Release();

 private:
  friend class LockManager;
  InodeLockGuard(LockManager* mgr, uint64_t owner, uint64_t ino)
      : mgr_(mgr), owner_(owner), ino_(ino) {}
  LockManager* mgr_ = nullptr;
  uint64_t owner_ = 0;
  uint64_t ino_ = 0;
};

class LockManager {
 public:
  static constexpr size_t kShards = 64;

  // `end` of a range that extends to the end of the file (l_len == 0).
  static constexpr uint64_t kToEof = UINT64_MAX;

  struct Options {
    uint64_t seed = 0;  // seeds the backoff jitter
    int backoff_attempts = 3;
    std::chrono::microseconds backoff_initial{20};
    std::chrono::microseconds backoff_max{1000};
    // A blocking wait longer than this fails with kBusy (0: wait forever).
    std::chrono::milliseconds wait_timeout{0};
    // Waiters re-check their cancel flag at least this often, so a flag set
    // without Interrupt() still ends the wait.
    std::chrono::milliseconds cancel_poll{100};
  };

  explicit LockManager(uint64_t seed = 0);
  explicit LockManager(const Options& options);
  LockManager(const LockManager&) = delete;
  LockManager& operator=(const LockManager&) = delete;
  // REQUIRES: no thread is inside a LockManager call.
  ~LockManager();

  // ---- whole-inode locks ----
  // Re-entrant per owner: every successful call must be matched by one
  // UnlockInode (or a ReleaseAll). Requesting kExclusive while holding
  // kShared upgrades (the wait is deadlock-checked: two shared holders that
  // both upgrade deadlock, and the second one fails). The hold keeps its
  // strongest mode until the last UnlockInode.
  // wait=false: kAgain if not grantable now. wait=true: blocks; kDeadlock if
  // waiting would close a cycle (the owner keeps what it already holds —
  // callers normally ReleaseAll and retry); kErrno/EINTR when `cancel` is set
  // (then call Interrupt() to end the wait at once); kBusy on wait timeout;
  // kErrno/ENOLCK after Shutdown().
  Status LockInode(uint64_t owner, int32_t pid, uint64_t ino, LockMode mode, bool wait,
                   const std::atomic<bool>* cancel = nullptr);
  // RAII form of LockInode for internal critical sections.
  Result<InodeLockGuard> LockInodeScoped(uint64_t owner, int32_t pid, uint64_t ino, LockMode mode,
                                         bool wait, const std::atomic<bool>* cancel = nullptr);
  // Drops one level of the owner's hold (no-op if it holds none).
  void UnlockInode(uint64_t owner, uint64_t ino);

  // Drops every lock (inode, range, flock) the owner holds on every inode and
  // wakes the waiters that can now proceed. Does not touch the owner's own
  // pending waits.
  void ReleaseAll(uint64_t owner);

  // ---- POSIX record locks (fcntl) ----
  // `type` F_RDLCK, F_WRLCK or F_UNLCK on bytes [start, end] (inclusive,
  // end = kToEof for "to EOF"). Replaces, splits and merges the owner's own
  // locks like the kernel does; conflicts only with other owners' locks that
  // overlap with at least one of the two a write lock. wait=false (F_SETLK):
  // kAgain. wait=true (F_SETLKW): blocks, with the errors of LockInode.
  // kInvalid for a bad type or start > end. F_UNLCK never waits.
  Status SetRange(uint64_t owner, int32_t pid, uint64_t ino, int type, uint64_t start, uint64_t end,
                  bool wait, const std::atomic<bool>* cancel = nullptr);

  // One range lock: a conflict reported to F_GETLK, or a TEST_Ranges entry.
  struct Conflict {
    int type;  // F_RDLCK or F_WRLCK
    uint64_t start, end;
    int32_t pid;
    uint64_t owner;
    bool operator==(const Conflict&) const = default;
  };
  // F_GETLK: the first lock of another owner that conflicts with `type` on
  // [start, end], or nullopt.
  std::optional<Conflict> TestRange(uint64_t owner, uint64_t ino, int type, uint64_t start,
                                    uint64_t end);
  // close(2): drops every POSIX lock of `owner` on `ino`.
  void ReleaseRanges(uint64_t owner, uint64_t ino);

  // ---- flock(2) ----
  // `op` LOCK_SH, LOCK_EX or LOCK_UN (LOCK_NB in `op` is the same as
  // nonblock=true). Converting a held lock first drops it, as Linux does, so a
  // failed non-blocking conversion leaves the owner without a lock, and two
  // LOCK_SH holders converting at once do not deadlock. Conflict: kAgain
  // (EWOULDBLOCK) when nonblocking, otherwise waits like LockInode.
  Status Flock(uint64_t owner, int32_t pid, uint64_t ino, int op, bool nonblock,
               const std::atomic<bool>* cancel = nullptr);

  // ---- waits ----
  // Wakes every waiter so it re-checks its cancel flag.
  void Interrupt();
  // Wakes the waiters of `ino`'s shard only.
  void Interrupt(uint64_t ino);
  // Fails every current and future blocking wait with ENOLCK (unmount), so no
  // thread stays blocked. Non-blocking requests and releases keep working.
  void Shutdown();

  LockStats stats() const;

  // ---- tests ----
  // Called with no LockManager mutex held at the named points:
  //   "lock grant"             (owner, ino) after any grant,
  //   "before wait"            (owner, ino) each time a request is about to
  //                            block (its wait-for edges are registered, so a
  //                            conflicting request from now on sees them),
  //   "deadlock victim chosen" (victim owner, ino) before kDeadlock returns.
  // Pass an empty function to remove the hook.
  using SyncPoint = std::function<void(std::string_view point, uint64_t owner, uint64_t ino)>;
  void TEST_SetSyncPoint(SyncPoint f);
  // The range locks of `ino`, sorted by (owner, start).
  std::vector<Conflict> TEST_Ranges(uint64_t ino) const;
  // The flock type (LOCK_SH / LOCK_EX) `owner` holds on `ino`, or 0.
  int TEST_FlockOf(uint64_t owner, uint64_t ino) const;
  // The owner's inode hold on `ino`: mode and re-entrancy count.
  std::optional<std::pair<LockMode, uint32_t>> TEST_InodeHold(uint64_t owner, uint64_t ino) const;
  // Number of requests registered as waiting in the wait-for graph.
  size_t TEST_Waiters() const;
  // Number of inodes that have any lock state (empty states are freed).
  size_t TEST_LiveInodes() const;

 private:
  enum class Kind : uint8_t { kInode, kRange, kFlock };
  struct Request {
    Kind kind;
    uint64_t owner;
    int32_t pid;
    uint64_t ino;
    LockMode mode = LockMode::kShared;  // kInode
    int type = 0;                       // kRange: F_RDLCK/F_WRLCK; kFlock: LOCK_SH/LOCK_EX
    uint64_t start = 0, end = 0;        // kRange
  };
  // A blocked request. Lives on the waiting thread's stack; registered in its
  // inode's `waiters` (under the shard mutex) and in graph_ (under graph_mu_).
  struct Waiter {
    Request req;
    std::vector<uint64_t> blockers;  // wait-for edges; guarded by graph_mu_
  };
  struct InodeHolder {
    uint64_t owner;
    int32_t pid;
    LockMode mode;
    uint32_t count;
  };
  struct FlockHolder {
    uint64_t owner;
    int32_t pid;
    int type;
  };
  struct InodeState {
    std::vector<InodeHolder> holders;
    std::vector<Conflict> ranges;  // an owner's ranges never overlap each other
    std::vector<FlockHolder> flocks;
    std::vector<Waiter*> waiters;  // blocked requests on this inode
    bool empty() const {
      return holders.empty() && ranges.empty() && flocks.empty() && waiters.empty();
    }
    bool HeldBy(uint64_t owner) const;
  };
  struct Shard {
    // Guards `inodes` and everything reachable from it except
    // Waiter::blockers. Taken before graph_mu_ and the owner-index mutexes;
    // never two shard mutexes at once.
    mutable std::mutex mu;
    // Notified when a waiter of this shard may have become grantable, on
    // Interrupt() and on Shutdown().
    std::condition_variable cv;
    std::unordered_map<uint64_t, InodeState> inodes;
  };
  // Which inodes an owner holds something on, so ReleaseAll need not scan
  // every shard. Sharded by owner; each mutex is a leaf.
  struct OwnerShard {
    std::mutex mu;
    std::unordered_map<uint64_t, std::unordered_set<uint64_t>> inos;
  };

  Shard& ShardFor(uint64_t ino) { return shards_[ShardIndex(ino)]; }
  const Shard& ShardFor(uint64_t ino) const { return shards_[ShardIndex(ino)]; }
  static size_t ShardIndex(uint64_t key);

  // The common acquisition path: try, back off, wait.
  Status Acquire(const Request& req, bool wait, const std::atomic<bool>* cancel);
  // REQUIRES: the shard mutex of the inode. Distinct owners blocking `req`.
  static void Blockers(const InodeState& st, const Request& req, std::vector<uint64_t>* out);
  // REQUIRES: the shard mutex; `req` is grantable. Applies it.
  void GrantLocked(Shard& sh, InodeState& st, const Request& req);
  // REQUIRES: the shard mutex. After any change of `st`'s holders: recomputes
  // the wait-for edges of its waiters and wakes the shard if one of them can
  // now be granted.
  void RefreshLocked(Shard& sh, InodeState& st);
  // REQUIRES: the shard mutex. Index bookkeeping and freeing of empty state.
  void AfterReleaseLocked(Shard& sh, uint64_t owner, uint64_t ino);
  static void ApplyRange(std::vector<Conflict>& ranges, const Conflict& lock);
  // REQUIRES: graph_mu_. Whether following wait-for edges from `start` leads
  // back to it; fills `cycle` with the owners on the way.
  bool FindCycleLocked(uint64_t start, std::vector<uint64_t>* cycle) const;
  std::string DescribeCycleLocked(const std::vector<uint64_t>& cycle) const;
  void UnregisterLocked(Waiter* w);  // REQUIRES: graph_mu_

  void IndexAdd(uint64_t owner, uint64_t ino);
  void IndexRemove(uint64_t owner, uint64_t ino);

  std::chrono::microseconds BackoffDelay(int attempt);
  void Sync(std::string_view point, uint64_t owner, uint64_t ino);
  bool Cancelled(const std::atomic<bool>* cancel) const;
  Status CancelStatus() const;

  const Options opts_;
  std::array<Shard, kShards> shards_;
  std::array<OwnerShard, kShards> owners_;

  // Lock order: taken after (inside) at most one shard mutex; a leaf.
  mutable std::mutex graph_mu_;
  // owner -> its blocked requests (normally one). Only blocked requests are
  // graph nodes with outgoing edges.
  std::unordered_map<uint64_t, std::vector<Waiter*>> graph_;

  std::atomic<uint64_t> rng_counter_;
  std::atomic<bool> shutdown_{false};

  std::mutex hook_mu_;  // a leaf; guards hook_
  std::atomic<bool> has_hook_{false};
  std::shared_ptr<const SyncPoint> hook_;

  std::atomic<uint64_t> acquired_{0}, immediate_{0}, backoffs_{0}, waits_{0}, deadlocks_{0},
      cancelled_{0}, timeouts_{0}, would_block_{0};
};

}  // namespace dbfs::txn
