// ResizeGate: the lock that keeps LMDB map resizes away from open readers.
//
// Internal to kvstore/. mdb_env_set_mapsize() remaps data.mdb, so it may only
// run while no transaction of this process is open: every ReadTxn holds the
// gate shared for its whole life, and a resize holds it exclusive.
//
// Why not std::shared_mutex: a ReadTxn (MDB_NOTLS) may be begun on one thread
// and ended on another (FUSE opendir/releasedir run on different threads), and
// one thread may hold several ReadTxns at once. std::shared_mutex makes both
// undefined behaviour; this gate allows both. It has the same lock_shared /
// unlock_shared / lock / unlock / try_lock names so std::shared_lock and
// std::unique_lock work with it.
//
// Policy: readers are preferred while any reader is in, so a thread that
// already holds a ReadTxn can always begin another one (no self-deadlock even
// while a resize is waiting). When the reader count drops to zero while a
// resize is waiting, the gate is handed to the resize before any new reader
// gets in, so a thread that ends and begins ReadTxns in a loop cannot starve
// it. Readers that overlap continuously can delay a resize; ReadTxns must be
// short-lived.
//
// Thread-safe. Lock order: callers take Env's write mutex before the gate
// exclusive; the gate's internal mutex is a leaf.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace dbfs::kv::internal {

class ResizeGate {
 public:
  ResizeGate() = default;
  ResizeGate(const ResizeGate&) = delete;
  ResizeGate& operator=(const ResizeGate&) = delete;

  void lock_shared();
  // May be called from any thread, not only the one that called lock_shared.
  void unlock_shared();
  // Blocks until every shared holder has left.
  void lock();
  // Takes the gate exclusive only if nobody holds or waits for it.
  bool try_lock();
  void unlock();

  // True while some thread is blocked in lock(). For tests.
  bool TEST_exclusive_waiting() const;
  int64_t TEST_readers() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t readers_ = 0;        // guarded by mu_
  bool exclusive_ = false;     // guarded by mu_: a resize holds the gate
  int exclusive_waiting_ = 0;  // guarded by mu_: threads blocked in lock()
};

}  // namespace dbfs::kv::internal
