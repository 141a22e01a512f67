// Adapter: what every FUSE handler needs — the Filesystem, the advisory lock
// manager, the process -> transaction bindings, the control channel and the
// cache policy — plus the few helpers that turn engine results into FUSE
// replies. The daemon (tools/lib/daemon.cc) owns the Adapter and hands it to libfuse as the
// session's userdata; handlers reach it with AdapterOf(req).
//
// Reply helpers send exactly one fuse_reply_*; ReplyErr is where a Status
// becomes an errno (Status::ToErrno) on its way to the kernel.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <set>
#include <mutex>
#include <thread>

#include "fs/filesystem.h"
#include "fuse/control.h"
#include "fuse/ll_fuse.h"
#include "fuse/ll_invalidator.h"
#include "fuse/ll_transport.h"
#include "fuse/tx_binding.h"
#include "kvstore/status.h"
#include "txn/lock_manager.h"

namespace dbfs::fuse {

// Kernel cache policy. Changes only reach the volume through this mount, so
// the kernel may cache entries and attributes for a while (see
// docs/ARCHITECTURE.md section 7). Replies that Filesystem::Uncached marks
// (explicit transactions) get zero timeouts and direct I/O instead.
struct CachePolicy {
  double entry_timeout = 1.0;  // seconds the kernel trusts a name -> inode
  double attr_timeout = 1.0;   // seconds the kernel trusts attributes
  // `-o direct_io`: no page cache for file data at all, read-only
  // descriptors included (streaming reads skip filling the page cache;
  // re-reads always come to the daemon).
  bool direct_io = false;
};

// The advisory file locks of the mount (POSIX record locks and flock), served
// by a txn::LockManager with deadlock detection (docs/lock_manager.md). Owners
// are kernel lock owners (fuse_file_info::lock_owner): the files_struct of a
// process for POSIX locks, the open file description for flock, so the two id
// spaces never collide. The kernel releases a lock owner's POSIX locks with
// FLUSH on close and its flock lock with RELEASE (flock_release).
// The exclusive inode locks of `dbfs tx run --lock` transactions live in the
// Filesystem's own LockManager (owners: transaction ids), which never meets
// these owners; Shutdown ends the waits of both.
class AdapterLocks {
 public:
  explicit AdapterLocks(Filesystem* fs) : fs_(fs) {}
  txn::LockManager& manager() { return mgr_; }

  // FLUSH of handle `fh`: close(2) drops every POSIX lock of `owner` on
  // `ino`; `owner` is the closing process's, so it is not an OFD owner.
  void ReleasePosix(uint64_t ino, uint64_t fh, uint64_t owner);
  // A range lock of `owner` was granted through handle `fh`.
  void NoteRangeLock(uint64_t fh, uint64_t owner);
  // RELEASE of `fh` (the last close of its open file description): drops
  // the open-file-description (OFD) locks set through it.
  //
  // The kernel never tells a FUSE daemon when an OFD lock ends: it releases
  // them itself only from its own lock list, which is empty when the daemon
  // serves locks. An OFD lock's owner is the open file description, so it
  // uses exactly one handle, and it never appears in a FLUSH (whose owner
  // is the closing process's). A POSIX owner that locked through `fh`
  // FLUSHes `fh` when it closes its descriptor, before the RELEASE. So the
  // owners that locked through `fh` and did not FLUSH it since are its OFD
  // owners.
  void ReleaseOfd(uint64_t ino, uint64_t fh);
  // RELEASE with flock_release: drops the flock lock of `owner` on `ino`.
  void ReleaseFlock(uint64_t ino, uint64_t owner);
  // Unmount / shutdown signal: every current and future blocking wait ends
  // with ENOLCK (advisory locks and --lock transactions' locks), so no
  // request thread stays blocked.
  void Shutdown() {
    mgr_.Shutdown();
    if (fs_ != nullptr) fs_->ShutdownTxLockWaits();
  }

  txn::LockStats stats() const { return mgr_.stats(); }

 private:
  Filesystem* fs_;
  txn::LockManager mgr_;
  std::mutex ofd_mu_;
  // Per handle: owners that locked through it and have not FLUSHed it since.
  std::map<uint64_t, std::set<uint64_t>> ofd_owners_;  // guarded by ofd_mu_
};

class Adapter {
 public:
  // `fs` must outlive the Adapter.
  Adapter(Filesystem* fs, CachePolicy cache);
  Adapter(const Adapter&) = delete;
  Adapter& operator=(const Adapter&) = delete;

  Filesystem& fs() { return *fs_; }
  AdapterLocks& locks() { return locks_; }
  TxBindings& bindings() { return bindings_; }
  ControlChannel& control() { return control_; }
  Invalidator& invalidator() { return invalidator_; }
  Transport& transport() { return transport_; }
  const CachePolicy& cache() const { return cache_; }

 private:
  Filesystem* fs_;
  AdapterLocks locks_;
  TxBindings bindings_;
  ControlChannel control_;
  Invalidator invalidator_;
  Transport transport_;
  CachePolicy cache_;
};

// The adapter of the session `req` came from. Also notes the request's
// transport (the first one after INIT logs which transport runs).
Adapter& AdapterOf(fuse_req_t req);

// Entry and attribute timeout of history views' immutable inodes (seconds).
inline constexpr double kImmutableTimeout = 3600.0;

// The requesting process, from fuse_req_ctx, and the transaction it runs in.
Caller CallerOf(fuse_req_t req);

// fuse_reply_err with status.ToErrno() (0 for an ok status). Failures of the
// engine's own machinery (EIO and the like) are also logged.
void ReplyErr(fuse_req_t req, const Status& status);

// Whether what the kernel learns from this reply about `ino` must not be
// cached (the caller is in an explicit transaction, or one touched `ino`).
bool Uncached(fuse_req_t req, const Caller& c, uint64_t ino);

// fuse_entry_param for `attr`: the adapter's timeouts, or zero if `uncached`.
fuse_entry_param EntryOf(fuse_req_t req, const Attr& attr, bool uncached);
// For results that counted a kernel lookup reference (Lookup, Mknod, ...) of
// a name in `parent`: the reference is dropped again if the reply cannot be
// delivered.
void ReplyEntry(fuse_req_t req, const Caller& c, uint64_t parent, const Result<Attr>& attr);
void ReplyAttr(fuse_req_t req, const Caller& c, const Result<Attr>& attr);

// A per-thread scratch buffer of at least `size` bytes, reused across requests
// of the thread (read data, directory listings): no heap churn per request.
char* ThreadBuffer(size_t size);

}  // namespace dbfs::fuse
