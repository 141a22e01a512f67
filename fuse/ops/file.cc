// Files: open, create, read, write, flush, release, fsync, fallocate, lseek,
// copy_file_range.
#include <fcntl.h>
#include <unistd.h>

#include "fuse/ll_context.h"
#include "kvstore/metrics.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {

bool BadOffset(off_t off) { return off < 0; }

// A WRITE the kernel sent from its direct-I/O path (fuse_direct_io: a
// direct-I/O handle, or O_DIRECT; synchronous or asynchronous). That path
// always sends the writer's lock owner (FUSE_WRITE_LOCKOWNER); a write
// through the page cache (write-through, whose last page may be locked
// while the request is out) and the writeback of mapped pages
// (FUSE_WRITE_CACHE) never do. So a nonzero lock owner without writepage
// means no page of the file is locked on this request's behalf, and its
// cached pages can be invalidated before the reply.
bool IsDirectWrite(const fuse_file_info* fi) { return fi->writepage == 0 && fi->lock_owner != 0; }

// Page-cache policy of a new handle; returns whether it bypasses the caches.
// Normally the kernel keeps the file's pages across opens: every change comes
// through this mount and updates or invalidates them (docs/ARCHITECTURE.md
// section 7). A file seen from inside an explicit transaction, or touched by
// one, uses direct I/O: uncommitted data must never enter the shared cache.
//
// Write-only descriptors use direct I/O too, for write(2) atomicity: through
// the page cache the kernel ends a write request at the first page boundary
// when that first page is partial and not cached, so one unaligned write(2)
// would arrive as two requests — two commits, and a power cut between them
// tears the write. Direct I/O sends it whole (up to max_write) and skips the
// copy into the page cache. The kernel invalidates the cached pages a direct
// write overlaps, so readers with cached descriptors stay coherent.
//
// A read-write descriptor reads through it as well, and for those reads the
// page cache is worth far more (a database re-reading its pages: SQLite scans
// ran 6-9x slower without it). So it uses direct I/O only for a file that is
// empty when opened (a new file, or O_TRUNC), which it can only be writing
// first; an existing file keeps the page cache. Mapping a direct-I/O file
// shared needs FUSE_DIRECT_IO_ALLOW_MMAP (negotiated in ops/init.cc); without it
// read-write descriptors always keep the page cache.
//
// `-o direct_io` makes every descriptor use direct I/O. Not a cache bypass
// for the entry and attribute caches: those still follow `uncached` only.
bool SetCacheMode(fuse_req_t req, const Caller& c, uint64_t ino, uint64_t size,
                  fuse_file_info* fi) {
  if (Filesystem::IsHistoryIno(ino)) {
    // History views never change: through the page cache, kept across opens.
    fi->direct_io = AdapterOf(req).cache().direct_io;
    fi->keep_cache = 1;
    return false;
  }
  const bool uncached = Uncached(req, c, ino);
  const int mode = fi->flags & O_ACCMODE;
  const bool writes =
      mode == O_WRONLY ||
      (mode == O_RDWR && size == 0 && AdapterOf(req).transport().direct_io_mmap());
  fi->direct_io = uncached || writes || AdapterOf(req).cache().direct_io;
  // Keep other descriptors' cached pages: opening to write changes nothing yet.
  fi->keep_cache = !uncached;
  return uncached;
}

// A descriptor opened before its process entered a transaction still goes
// through the page cache, which then holds the transaction's private data
// (read or written through it): have the kernel drop those pages right after
// the reply (queued: the kernel holds the pages locked until it has our
// reply). Decide before replying; the reply frees `req`.
class ForgetCachedPagesAfterReply {
 public:
  ForgetCachedPagesAfterReply(fuse_req_t req, const Caller& c, uint64_t ino)
      : invalidator_(Uncached(req, c, ino) ? &AdapterOf(req).invalidator() : nullptr), ino_(ino) {}
  ~ForgetCachedPagesAfterReply() {
    if (invalidator_ != nullptr) invalidator_->Invalidate(ino_, /*sync=*/false);
  }
  ForgetCachedPagesAfterReply(const ForgetCachedPagesAfterReply&) = delete;
  ForgetCachedPagesAfterReply& operator=(const ForgetCachedPagesAfterReply&) = delete;

 private:
  Invalidator* invalidator_;
  uint64_t ino_;
};

}  // namespace

void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem& fs = AdapterOf(req).fs();  // `req` is freed by the reply
  const Caller c = CallerOf(req);
  uint64_t size = 0;
  Result<uint64_t> fh = fs.Open(c, ino, fi->flags, &size);
  if (!fh.ok()) return ReplyErr(req, fh.status());
  fi->fh = *fh;
  SetCacheMode(req, c, ino, size, fi);
  if (fuse_reply_open(req, fi) != 0) {
    // The kernel never got the handle, so it will never release it.
    fs.Release(ino, *fh).IgnoreError();
  }
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Filesystem& fs = AdapterOf(req).fs();  // `req` is freed by the reply
  const Caller c = CallerOf(req);
  Result<Filesystem::Created> r = fs.Create(c, parent, name, mode, fi->flags);
  if (!r.ok()) return ReplyErr(req, r.status());
  fi->fh = r->fh;
  const bool uncached =
      SetCacheMode(req, c, r->attr.ino, r->attr.size, fi) || Uncached(req, c, parent);
  fuse_entry_param e = EntryOf(req, r->attr, uncached);
  if (fuse_reply_create(req, &e, fi) != 0) {
    // Undelivered: the kernel holds neither the handle nor the reference.
    fs.Release(r->attr.ino, r->fh).IgnoreError();
    fs.Forget(r->attr.ino, 1);
  }
}

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  if (BadOffset(off)) return ReplyErr(req, Status::Invalid("negative offset"));
  char* buf = ThreadBuffer(size);
  const Caller c = CallerOf(req);
  Result<size_t> n =
      AdapterOf(req).fs().Read(c, ino, fi->fh, static_cast<uint64_t>(off), size, buf);
  if (!n.ok()) return ReplyErr(req, n.status());
  static metrics::Counter& bytes = metrics::Counter::Named("fuse_read_bytes");
  bytes.Add(*n);
  ForgetCachedPagesAfterReply forget(req, c, ino);
  fuse_reply_buf(req, buf, *n);
}

void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
           fuse_file_info* fi) {
  if (BadOffset(off)) return ReplyErr(req, Status::Invalid("negative offset"));
  const Caller c = CallerOf(req);
  Result<size_t> n =
      AdapterOf(req).fs().Write(c, ino, fi->fh, static_cast<uint64_t>(off), buf, size,
                                fi->writepage != 0 ? WriteOrigin::kWriteback
                                : IsDirectWrite(fi) ? WriteOrigin::kDirect
                                                    : WriteOrigin::kPageCache);
  if (!n.ok()) return ReplyErr(req, n.status());
  static metrics::Counter& bytes = metrics::Counter::Named("fuse_write_bytes");
  bytes.Add(*n);
  if (IsDirectWrite(fi) && (fi->flags & O_DIRECT)) {
    // The kernel drops the cached pages a direct write overlaps before it
    // sends the WRITE, not after: a cached reader or a mapping that faults a
    // page in meanwhile caches the old bytes, and nothing drops them later
    // (for an asynchronous write — io_submit — not even the attributes, so
    // auto_inval_data cannot notice either). Drop them now, before the
    // reply completes the write: no read that starts after the write
    // returned can see older bytes (docs/ARCHITECTURE.md section 7).
    // Only O_DIRECT writes: they alone can complete asynchronously, and a
    // synchronous write through a direct-I/O handle already invalidates the
    // attributes when it returns (auto_inval_data then drops the pages) —
    // and invalidating inline there too made the abort of a transaction
    // with dirty mapped pages flaky (TxMmap.DirtyMappedPagesOf...).

    AdapterOf(req).invalidator().InvalidateRange(ino, static_cast<uint64_t>(off), *n);
  }
  ForgetCachedPagesAfterReply forget(req, c, ino);
  fuse_reply_write(req, *n);
}

void Flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = AdapterOf(req);
  // close(2) by any descriptor of a process drops all its POSIX locks on the
  // file; the kernel tells us with FLUSH and the closing lock owner.
  a.locks().ReleasePosix(ino, fi->fh, fi->lock_owner);
  ReplyErr(req, a.fs().Flush(ino, fi->fh));
}

void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Adapter& a = AdapterOf(req);
  // The last close of an open file description drops its flock lock.
  if (fi->flock_release) a.locks().ReleaseFlock(ino, fi->lock_owner);
  // ... and its OFD locks (fcntl F_OFD_SETLK), which nobody else releases.
  a.locks().ReleaseOfd(ino, fi->fh);
  ReplyErr(req, a.fs().Release(ino, fi->fh));
}

void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  ReplyErr(req, AdapterOf(req).fs().Fsync(CallerOf(req), ino, fi->fh, datasync != 0));
}

void Fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
               fuse_file_info* fi) {
  if (BadOffset(offset) || length <= 0) return ReplyErr(req, Status::Invalid("bad range"));
  ReplyErr(req, AdapterOf(req).fs().Fallocate(CallerOf(req), ino, fi->fh, mode,
                                              static_cast<uint64_t>(offset),
                                              static_cast<uint64_t>(length)));
}

void Lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
  // The kernel handles SEEK_SET/CUR/END itself and only asks for these two.
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return ReplyErr(req, Status::Invalid("bad lseek"));
  // Like ext4 and xfs: a negative offset is "past the data", not invalid.
  if (BadOffset(off)) return ReplyErr(req, Status(Code::kErrno, "negative offset", ENXIO));
  Result<uint64_t> r =
      AdapterOf(req).fs().Lseek(CallerOf(req), ino, fi->fh, static_cast<uint64_t>(off), whence);
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_lseek(req, static_cast<off_t>(*r));
}

void CopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in,
                   fuse_ino_t ino_out, off_t off_out, fuse_file_info* fi_out, size_t len,
                   int flags) {
  if (flags != 0) return ReplyErr(req, Status::Invalid("copy_file_range flags"));
  if (BadOffset(off_in) || BadOffset(off_out)) {
    return ReplyErr(req, Status::Invalid("negative offset"));
  }
  Result<size_t> n = AdapterOf(req).fs().CopyFileRange(
      CallerOf(req), ino_in, fi_in->fh, static_cast<uint64_t>(off_in), ino_out, fi_out->fh,
      static_cast<uint64_t>(off_out), len);
  if (!n.ok()) return ReplyErr(req, n.status());
  fuse_reply_write(req, *n);
}

}  // namespace dbfs::fuse::ops
