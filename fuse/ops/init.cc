// init / destroy: capability negotiation.
#include <spdlog/spdlog.h>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {
constexpr unsigned kMiB = 1u << 20;
}  // namespace

void Init(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
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
  // No writeback cache: each write(2) must reach the engine as one WRITE, one
  // atomic transaction, and be visible to the next reader at once.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // The kernel clears setuid/setgid itself (an explicit SETATTR) rather than
  // relying on the engine to do it inside write/truncate.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  // Large requests: one write(2) of up to 1 MiB is one transaction.
  conn->max_write = kMiB;
  conn->max_readahead = kMiB;  // the kernel caps it at its own limit
  spdlog::info("fuse: protocol {}.{}, capable {:#x}, want {:#x}, max_write {}, max_readahead {}",
               conn->proto_major, conn->proto_minor, conn->capable, conn->want, conn->max_write,
               conn->max_readahead);
}

void Destroy(void* userdata) {
  // The session is over: no request will wait for a lock any more.
  static_cast<Adapter*>(userdata)->locks().Shutdown();
  spdlog::debug("fuse: session destroyed");
}

}  // namespace dbfs::fuse::ops
