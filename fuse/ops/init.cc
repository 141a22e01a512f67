// init / destroy: capability negotiation.
#include <spdlog/spdlog.h>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {
constexpr unsigned kMiB = 1u << 20;
}  // namespace

void Init(void* userdata, fuse_conn_info* conn) {
  Adapter& adapter = *static_cast<Adapter*>(userdata);
  // libfuse 3.18 turns on what a modern filesystem wants by default (async
  // reads, auto_inval_data, async direct I/O, atomic O_TRUNC, readdirplus,
  // the lock requests since we implement getlk/setlk/flock, io_uring when
  // asked for) and negotiates max_pages from max_write itself. Set here what
  // we rely on, and clear what we must not have.
  auto want = [conn](uint64_t cap) { fuse_set_feature_flag(conn, cap); };
  // Locks are served by the LockTable (fuse/ll_locks.h), not by the kernel.
  want(FUSE_CAP_POSIX_LOCKS);
  want(FUSE_CAP_FLOCK_LOCKS);
  // O_TRUNC is applied by Open in the same transaction as the open.
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_READDIRPLUS);
  // File handles (name_to_handle_at / open_by_handle_at, NFS export): the
  // kernel resolves a handle whose inode it does not cache with LOOKUP of
  // "." in the handle's node id, and a directory's parent with "..";
  // Filesystem::Lookup answers both. Inode numbers are never reused and the
  // generation is in the handle, so a handle names one file for the
  // volume's life and gives ESTALE only once that file is gone.
  want(FUSE_CAP_EXPORT_SUPPORT);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  // Shared mappings of files opened with direct I/O (protocol 7.39, Linux
  // 6.6): read-write descriptors of new files use direct I/O only with it
  // (SetCacheMode in ops/file.cc).
  const bool mmap_ok = fuse_set_feature_flag(conn, FUSE_CAP_DIRECT_IO_ALLOW_MMAP);
  adapter.transport().set_direct_io_mmap(mmap_ok);
  if (!mmap_ok) {
    spdlog::info(
        "fuse: the kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP; read-write descriptors keep "
        "the page cache");
  }
  // No writeback cache: each write(2) must reach the engine as one WRITE, one
  // atomic transaction, and be visible to the next reader at once.
  fuse_unset_feature_flag(conn, FUSE_CAP_WRITEBACK_CACHE);
  // The kernel clears setuid/setgid itself (an explicit SETATTR) rather than
  // relying on the engine to do it inside write/truncate.
  fuse_unset_feature_flag(conn, FUSE_CAP_HANDLE_KILLPRIV);
  fuse_unset_feature_flag(conn, FUSE_CAP_HANDLE_KILLPRIV_V2);
  // Large requests: one write(2) of up to 1 MiB is one transaction.
  conn->max_write = kMiB;
  conn->max_readahead = kMiB;  // the kernel caps it at its own limit
  const bool ring_offered = (conn->capable_ext & FUSE_CAP_OVER_IO_URING) != 0;
  if (!adapter.transport().OnInit(ring_offered)) {
    // -o io_uring=on without a ring: the session ends (ServeSession reports it).
    fuse_unset_feature_flag(conn, FUSE_CAP_OVER_IO_URING);
    fuse_session_exit(adapter.transport().session());
  }
  spdlog::info(
      "fuse: protocol {}.{}, capable {:#x}, want {:#x}, max_write {}, max_readahead {}, "
      "io_uring offered: {}",
      conn->proto_major, conn->proto_minor, conn->capable_ext, conn->want_ext, conn->max_write,
      conn->max_readahead, ring_offered ? "yes" : "no");
}

void Destroy(void* userdata) {
  // The session is over: no request will wait for a lock any more.
  static_cast<Adapter*>(userdata)->locks().Shutdown();
  spdlog::debug("fuse: session destroyed");
}

}  // namespace dbfs::fuse::ops
