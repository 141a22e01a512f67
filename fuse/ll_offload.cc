#include "fuse/ll_offload.h"

#include <fcntl.h>
#include <fuse_kernel.h>
#include <pthread.h>

#include <cstring>

#include "fuse/tx_binding.h"

namespace dbfs::fuse {

namespace {
// Workers beyond this many wait in the queue (the classic loop's limit is 64
// workers in all; blocked lock waits each hold one).
constexpr size_t kMaxWorkers = 256;
}  // namespace

UringOffload::~UringOffload() {
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (std::thread& t : workers) t.join();
}

void UringOffload::Install(fuse_session* se) { fuse_session_set_uring_dispatch(se, &Dispatch, this); }

bool UringOffload::MayBlock(const struct fuse_in_header& in, const void* op_in) const {
  // Blocking POSIX locks and flock(2) without LOCK_NB both arrive as SETLKW.
  if (in.opcode == FUSE_SETLKW) return true;
  // Durability waits: the WAL sync is shared by every commit waiting for it
  // (group commit), so waiters must not queue behind one another; and a
  // WAL sync that does not come back (a failing disk) must not stop reads.
  if (sync_mount_ || in.opcode == FUSE_FSYNC || in.opcode == FUSE_FSYNCDIR) return true;
  if (in.opcode == FUSE_WRITE) {
    // An O_DIRECT write drops the cached pages it overlaps before its reply
    // (ops::Write). The kernel writes dirty ones back first, with WRITE
    // requests sent from this very thread's CPU, so to this ring: served
    // here, that would wait for itself.
    fuse_write_in w;
    std::memcpy(&w, op_in, sizeof w);
    if ((w.write_flags & FUSE_WRITE_LOCKOWNER) != 0 && (w.write_flags & FUSE_WRITE_CACHE) == 0 &&
        (w.flags & O_DIRECT) != 0) {
      return true;
    }
    if ((w.flags & (O_SYNC | O_DSYNC)) != 0) return true;  // waits for the WAL sync
  }
  // Any request of a process in an explicit transaction may wait for a
  // --lock transaction's inode lock, and commits wait for the kernel's entry
  // invalidations; requests of other processes may be what ends that wait.
  // Cheap: one atomic load while no transaction is bound.
  return bindings_->AnyBound();
}

bool UringOffload::Dispatch(void* self, const struct fuse_in_header* in, const void* op_in,
                            void (*run)(void*), void* arg) {
  auto* o = static_cast<UringOffload*>(self);
  if (in == nullptr) {
    o->Drain();
    return true;
  }
  if (!o->MayBlock(*in, op_in)) return false;
  o->Post(run, arg);
  return true;
}

void UringOffload::Post(void (*run)(void*), void* arg) {
  {
    std::lock_guard<std::mutex> g(mu_);
    queue_.emplace_back(run, arg);
    ++offloaded_;
    if (idle_ == 0 && workers_.size() < kMaxWorkers) {
      workers_.emplace_back([this] { Work(); });
      return;
    }
  }
  cv_.notify_one();
}

void UringOffload::Work() {
  pthread_setname_np(pthread_self(), "fuse-offload");
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stop_
    auto [run, arg] = queue_.front();
    queue_.pop_front();
    ++running_;
    l.unlock();
    run(arg);
    l.lock();
    --running_;
    if (running_ == 0 && queue_.empty()) drained_cv_.notify_all();
  }
}

void UringOffload::Drain() {
  if (before_drain_) before_drain_();
  std::unique_lock<std::mutex> l(mu_);
  drained_cv_.wait(l, [this] { return running_ == 0 && queue_.empty(); });
}

uint64_t UringOffload::offloaded() const {
  std::lock_guard<std::mutex> g(mu_);
  return offloaded_;
}

}  // namespace dbfs::fuse
