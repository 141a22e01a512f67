// Advisory locks: getlk, setlk (F_SETLK / F_SETLKW), flock. Served by the
// adapter's txn::LockManager (docs/lock_manager.md): the owner is the kernel
// lock owner (fi->lock_owner), the pid the one the kernel sent with the lock
// (or the requesting process). A blocking wait that would close a cycle of
// waiting owners fails with EDEADLK (the requester is the victim); it ends
// early with EINTR when the kernel interrupts the request (signal to the
// caller), so a killed process cannot leave a thread waiting for a lock it
// would be granted after its death; and with ENOLCK on unmount.
#include <fcntl.h>
#include <sys/file.h>

#include <atomic>
#include <limits>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {

using txn::LockManager;

struct Range {
  int type = 0;
  uint64_t start = 0;
  uint64_t end = LockManager::kToEof;  // inclusive
};

// libfuse hands us struct flock with l_whence == SEEK_SET and l_len == 0
// meaning "to end of file".
Result<Range> Decode(const struct flock* l) {
  if (l->l_start < 0 || l->l_len < 0) return Status::Invalid("bad lock range");
  Range r;
  r.type = l->l_type;
  r.start = static_cast<uint64_t>(l->l_start);
  if (l->l_len == 0) {
    r.end = LockManager::kToEof;
  } else {
    if (l->l_len - 1 > std::numeric_limits<off_t>::max() - l->l_start) {
      return Status(Code::kErrno, "lock range overflows", EOVERFLOW);
    }
    r.end = r.start + static_cast<uint64_t>(l->l_len) - 1;
  }
  return r;
}

void Encode(const LockManager::Conflict& c, struct flock* l) {
  l->l_type = static_cast<short>(c.type);
  l->l_whence = SEEK_SET;
  l->l_start = static_cast<off_t>(c.start);
  l->l_len = c.end == LockManager::kToEof ? 0 : static_cast<off_t>(c.end - c.start + 1);
  l->l_pid = c.pid;
}

// The pid stored with a lock (reported by F_GETLK): the one the kernel sent
// with the lock, else the requesting process.
int32_t PidOf(fuse_req_t req, const struct flock* l) {
  if (l != nullptr && l->l_pid > 0) return static_cast<int32_t>(l->l_pid);
  return static_cast<int32_t>(fuse_req_ctx(req)->pid);
}

// A cancel flag for one blocking wait. While an InterruptScope is alive, a
// FUSE_INTERRUPT of the request sets the flag and wakes the waiters of the
// inode's shard, so the wait ends with EINTR.
struct WaitCancel {
  LockManager* mgr;
  uint64_t ino;
  std::atomic<bool> flag{false};
};

// Must be destroyed before the request is answered (the reply frees the
// request); after the destructor no callback can run any more (libfuse
// serializes both under the request's lock). If the request was interrupted
// already, libfuse runs the callback at once, before the wait starts: the
// flag is then set and the wait returns EINTR immediately.
class InterruptScope {
 public:
  InterruptScope(fuse_req_t req, WaitCancel* cancel) : req_(req) {
    fuse_req_interrupt_func(req_, &OnInterrupt, cancel);
  }
  ~InterruptScope() { fuse_req_interrupt_func(req_, nullptr, nullptr); }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  static void OnInterrupt(fuse_req_t, void* data) {
    auto* c = static_cast<WaitCancel*>(data);
    c->flag.store(true, std::memory_order_release);
    c->mgr->Interrupt(c->ino);
  }
  fuse_req_t req_;
};

}  // namespace

void GetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  Result<Range> probe = Decode(lock);
  if (!probe.ok()) return ReplyErr(req, probe.status());
  if (probe->type != F_RDLCK && probe->type != F_WRLCK) {
    return ReplyErr(req, Status::Invalid("bad lock type"));
  }
  std::optional<LockManager::Conflict> conflict = AdapterOf(req).locks().manager().TestRange(
      fi->lock_owner, ino, probe->type, probe->start, probe->end);
  if (conflict) {
    Encode(*conflict, lock);
  } else {
    lock->l_type = F_UNLCK;
  }
  fuse_reply_lock(req, lock);
}

void SetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep) {
  Result<Range> r = Decode(lock);
  if (!r.ok()) return ReplyErr(req, r.status());
  LockManager& mgr = AdapterOf(req).locks().manager();
  const int32_t pid = PidOf(req, lock);
  Status s;
  if (sleep && r->type != F_UNLCK) {
    WaitCancel cancel{&mgr, ino};
    {
      InterruptScope scope(req, &cancel);
      s = mgr.SetRange(fi->lock_owner, pid, ino, r->type, r->start, r->end, /*wait=*/true,
                       &cancel.flag);
    }
  } else {
    s = mgr.SetRange(fi->lock_owner, pid, ino, r->type, r->start, r->end, /*wait=*/false);
  }
  if (s.ok() && r->type != F_UNLCK) AdapterOf(req).locks().NoteRangeLock(fi->fh, fi->lock_owner);
  ReplyErr(req, s);
}

void Flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  LockManager& mgr = AdapterOf(req).locks().manager();
  const int32_t pid = PidOf(req, nullptr);
  const bool nonblock = (op & LOCK_NB) != 0;
  op &= ~LOCK_NB;
  Status s;
  if (!nonblock && op != LOCK_UN) {
    WaitCancel cancel{&mgr, ino};
    {
      InterruptScope scope(req, &cancel);
      s = mgr.Flock(fi->lock_owner, pid, ino, op, /*nonblock=*/false, &cancel.flag);
    }
  } else {
    s = mgr.Flock(fi->lock_owner, pid, ino, op, /*nonblock=*/true);
  }
  ReplyErr(req, s);
}

}  // namespace dbfs::fuse::ops
