// Advisory locks: getlk, setlk (F_SETLK / F_SETLKW), flock. Served by the
// adapter's LockTable; a blocking wait ends early when the kernel interrupts
// the request (signal to the caller), so a killed process cannot leave a
// thread waiting for a lock it would be granted after its death.
#include <fcntl.h>
#include <sys/file.h>

#include <limits>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {

// libfuse hands us struct flock with l_whence == SEEK_SET and l_len == 0
// meaning "to end of file".
Result<PosixLock> Decode(const struct flock* l, uint64_t owner) {
  if (l->l_start < 0 || l->l_len < 0) return Status::Invalid("bad lock range");
  PosixLock p;
  p.type = l->l_type;
  p.start = static_cast<uint64_t>(l->l_start);
  if (l->l_len == 0) {
    p.end = PosixLock::kToEof;
  } else {
    if (l->l_len - 1 > std::numeric_limits<off_t>::max() - l->l_start) {
      return Status(Code::kErrno, "lock range overflows", EOVERFLOW);
    }
    p.end = p.start + static_cast<uint64_t>(l->l_len) - 1;
  }
  p.owner = owner;
  p.pid = l->l_pid;
  return p;
}

void Encode(const PosixLock& p, struct flock* l) {
  l->l_type = static_cast<short>(p.type);
  l->l_whence = SEEK_SET;
  l->l_start = static_cast<off_t>(p.start);
  l->l_len = p.end == PosixLock::kToEof ? 0 : static_cast<off_t>(p.end - p.start + 1);
  l->l_pid = p.pid;
}

// While alive, a FUSE_INTERRUPT of `req` cancels the wait. Must be destroyed
// before the request is answered (the reply frees the request); after the
// destructor no callback can run any more (libfuse serializes both under the
// request's lock).
class InterruptScope {
 public:
  InterruptScope(fuse_req_t req, LockWaitCancel* cancel) : req_(req) {
    fuse_req_interrupt_func(req_, &OnInterrupt, cancel);
  }
  ~InterruptScope() { fuse_req_interrupt_func(req_, nullptr, nullptr); }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  static void OnInterrupt(fuse_req_t, void* data) { static_cast<LockWaitCancel*>(data)->Cancel(); }
  fuse_req_t req_;
};

}  // namespace

void GetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock) {
  Result<PosixLock> probe = Decode(lock, fi->lock_owner);
  if (!probe.ok()) return ReplyErr(req, probe.status());
  if (probe->type != F_RDLCK && probe->type != F_WRLCK) {
    return ReplyErr(req, Status::Invalid("bad lock type"));
  }
  std::optional<PosixLock> conflict = AdapterOf(req).locks().GetLk(ino, *probe);
  if (conflict) {
    Encode(*conflict, lock);
  } else {
    lock->l_type = F_UNLCK;
  }
  fuse_reply_lock(req, lock);
}

void SetLk(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, struct flock* lock, int sleep) {
  Result<PosixLock> l = Decode(lock, fi->lock_owner);
  if (!l.ok()) return ReplyErr(req, l.status());
  LockTable& locks = AdapterOf(req).locks();
  Status s;
  if (sleep && l->type != F_UNLCK) {
    LockWaitCancel cancel(&locks);
    InterruptScope scope(req, &cancel);
    s = locks.SetLk(ino, *l, /*wait=*/true, &cancel);
  } else {
    s = locks.SetLk(ino, *l, /*wait=*/false);
  }
  ReplyErr(req, s);
}

void Flock(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, int op) {
  LockTable& locks = AdapterOf(req).locks();
  Status s;
  if ((op & LOCK_NB) == 0 && (op & ~LOCK_NB) != LOCK_UN) {
    LockWaitCancel cancel(&locks);
    InterruptScope scope(req, &cancel);
    s = locks.Flock(ino, fi->lock_owner, op, &cancel);
  } else {
    s = locks.Flock(ino, fi->lock_owner, op);
  }
  ReplyErr(req, s);
}

}  // namespace dbfs::fuse::ops
