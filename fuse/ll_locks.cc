#include "fuse/ll_locks.h"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <cerrno>

namespace dbfs::fuse {

namespace {

bool Overlaps(const PosixLock& a, const PosixLock& b) {
  return a.start <= b.end && b.start <= a.end;
}

// Whether a and b overlap or touch (a.end + 1 == b.start), without overflow.
bool OverlapsOrAdjacent(const PosixLock& a, const PosixLock& b) {
  if (Overlaps(a, b)) return true;
  if (a.end != PosixLock::kToEof && a.end + 1 == b.start) return true;
  if (b.end != PosixLock::kToEof && b.end + 1 == a.start) return true;
  return false;
}

Status Interrupted() { return Status(Code::kErrno, "lock wait interrupted", EINTR); }

// Not EINTR: the kernel turns EINTR from a lock request into ERESTARTSYS,
// which leaks to the caller as errno 512 when no signal is pending.
Status ShutDown() { return Status(Code::kErrno, "lock table shut down", ENOLCK); }

}  // namespace

void LockWaitCancel::Cancel() {
  std::lock_guard<std::mutex> g(table_->mu_);
  cancelled_ = true;
  table_->cv_.notify_all();
}

const PosixLock* LockTable::FindPosixConflict(uint64_t ino, const PosixLock& probe) const {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return nullptr;
  for (const PosixLock& l : it->second.posix) {
    if (l.owner == probe.owner || !Overlaps(l, probe)) continue;
    if (l.type == F_WRLCK || probe.type == F_WRLCK) return &l;
  }
  return nullptr;
}

std::optional<PosixLock> LockTable::GetLk(uint64_t ino, const PosixLock& probe) const {
  std::lock_guard<std::mutex> g(mu_);
  const PosixLock* c = FindPosixConflict(ino, probe);
  if (c == nullptr) return std::nullopt;
  return *c;
}

void LockTable::ApplyPosix(uint64_t ino, const PosixLock& lock) {
  std::vector<PosixLock>& locks = inodes_[ino].posix;
  PosixLock merged = lock;
  std::vector<PosixLock> kept;
  kept.reserve(locks.size() + 2);
  for (const PosixLock& l : locks) {
    if (l.owner != lock.owner) {
      kept.push_back(l);
      continue;
    }
    if (lock.type != F_UNLCK && l.type == lock.type && OverlapsOrAdjacent(l, lock)) {
      // Same type, touching: absorbed into the new lock. The owner's locks
      // are disjoint, so the grown range covers no other lock of the owner.
      merged.start = std::min(merged.start, l.start);
      merged.end = std::max(merged.end, l.end);
      continue;
    }
    if (!Overlaps(l, lock)) {
      kept.push_back(l);
      continue;
    }
    // Overlapped by a different type (or unlocked): keep what lies outside.
    if (l.start < lock.start) {
      PosixLock left = l;
      left.end = lock.start - 1;
      kept.push_back(left);
    }
    if (lock.end != PosixLock::kToEof && l.end > lock.end) {
      PosixLock right = l;
      right.start = lock.end + 1;
      kept.push_back(right);
    }
  }
  if (lock.type != F_UNLCK) kept.push_back(merged);
  locks.swap(kept);
  EraseIfEmpty(ino);
}

void LockTable::EraseIfEmpty(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it != inodes_.end() && it->second.empty()) inodes_.erase(it);
}

Status LockTable::WaitOnce(std::unique_lock<std::mutex>& lk, LockWaitCancel* cancel) {
  auto check = [&] {
    if (shutdown_) return ShutDown();
    if (cancel != nullptr && cancel->cancelled_) return Interrupted();
    return Status::Ok();
  };
  DBFS_RETURN_IF_ERROR(check());
  ++waiters_;
  waiters_cv_.notify_all();
  cv_.wait(lk);
  --waiters_;
  return check();
}

Status LockTable::SetLk(uint64_t ino, const PosixLock& lock, bool wait, LockWaitCancel* cancel) {
  if (lock.type != F_RDLCK && lock.type != F_WRLCK && lock.type != F_UNLCK) {
    return Status::Invalid("bad lock type");
  }
  if (lock.start > lock.end) return Status::Invalid("bad lock range");
  std::unique_lock<std::mutex> lk(mu_);
  if (lock.type != F_UNLCK) {
    while (FindPosixConflict(ino, lock) != nullptr) {
      if (!wait) return Status(Code::kAgain, "conflicting lock held", EAGAIN);
      DBFS_RETURN_IF_ERROR(WaitOnce(lk, cancel));
    }
  }
  ApplyPosix(ino, lock);
  // Unlocking, or changing a write lock into a read lock, may unblock others.
  cv_.notify_all();
  return Status::Ok();
}

void LockTable::ReleasePosix(uint64_t ino, uint64_t owner) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  auto& v = it->second.posix;
  size_t before = v.size();
  std::erase_if(v, [owner](const PosixLock& l) { return l.owner == owner; });
  if (v.size() != before) cv_.notify_all();
  EraseIfEmpty(ino);
}

bool LockTable::FlockConflicts(uint64_t ino, uint64_t owner, int type) const {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return false;
  for (const FlockHolder& h : it->second.flock) {
    if (h.owner == owner) continue;
    if (h.type == LOCK_EX || type == LOCK_EX) return true;
  }
  return false;
}

Status LockTable::Flock(uint64_t ino, uint64_t owner, int op, LockWaitCancel* cancel) {
  const bool nonblocking = (op & LOCK_NB) != 0;
  const int type = op & ~LOCK_NB;
  if (type != LOCK_SH && type != LOCK_EX && type != LOCK_UN) {
    return Status::Invalid("bad flock operation");
  }
  std::unique_lock<std::mutex> lk(mu_);
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) {
    auto& holders = it->second.flock;
    auto h = std::find_if(holders.begin(), holders.end(),
                          [owner](const FlockHolder& x) { return x.owner == owner; });
    if (h != holders.end()) {
      if (h->type == type) return Status::Ok();
      // Unlock or conversion: the old lock goes first (see the header).
      holders.erase(h);
      cv_.notify_all();
      EraseIfEmpty(ino);
    }
  }
  if (type == LOCK_UN) return Status::Ok();
  while (FlockConflicts(ino, owner, type)) {
    if (nonblocking) return Status(Code::kAgain, "conflicting flock held", EWOULDBLOCK);
    DBFS_RETURN_IF_ERROR(WaitOnce(lk, cancel));
  }
  inodes_[ino].flock.push_back(FlockHolder{owner, type});
  return Status::Ok();
}

void LockTable::ReleaseFlock(uint64_t ino, uint64_t owner) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  auto& v = it->second.flock;
  size_t before = v.size();
  std::erase_if(v, [owner](const FlockHolder& h) { return h.owner == owner; });
  if (v.size() != before) cv_.notify_all();
  EraseIfEmpty(ino);
}

void LockTable::Shutdown() {
  std::lock_guard<std::mutex> g(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

std::vector<PosixLock> LockTable::TEST_PosixLocks(uint64_t ino) const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<PosixLock> out;
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) out = it->second.posix;
  std::sort(out.begin(), out.end(), [](const PosixLock& a, const PosixLock& b) {
    return a.owner != b.owner ? a.owner < b.owner : a.start < b.start;
  });
  return out;
}

int LockTable::TEST_FlockOf(uint64_t ino, uint64_t owner) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return 0;
  for (const FlockHolder& h : it->second.flock) {
    if (h.owner == owner) return h.type;
  }
  return 0;
}

bool LockTable::TEST_WaitForWaiters(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  return waiters_cv_.wait_for(lk, timeout, [&] { return waiters_ >= n; });
}

}  // namespace dbfs::fuse
