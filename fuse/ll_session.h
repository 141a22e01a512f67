// Serving a mounted DBFS volume through the kernel: the FUSE session
// lifecycle (create, mount, serve, unmount), libfuse's logging, and the
// shutdown signals that end it. What runs beside it — the volume, the Elle
// server, the checkpointer — is wired by the daemon (tools/lib/daemon.h).
#pragma once

#include <signal.h>

#include <functional>
#include <string>

#include "fuse/ll_context.h"
#include "fuse/ll_transport.h"
#include "kvstore/status.h"

namespace dbfs::fuse {

// Requests in flight per CPU ring unless -o io_uring_q_depth= says otherwise
// (libfuse's own default is 8; see FuseArgs in ll_session.cc).
inline constexpr unsigned kDefaultUringQueueDepth = 64;

struct SessionOptions {
  std::string source;      // shown in /proc/mounts as "dbfs:SOURCE" (the volume)
  std::string mountpoint;  // absolute
  bool debug = false;      // libfuse request tracing
  bool allow_other = false;
  bool default_permissions = true;  // the kernel checks modes
  bool noatime = false;
  // Kernel mount flags (device nodes, set-user-ID, exec).
  bool dev = false;
  bool suid = false;
  bool noexec = false;
  bool read_only = false;  // -o ro: the kernel refuses every change (EROFS)
  bool sync = false;       // -o sync: every change waits for its WAL sync
  // -o io_uring=auto|on|off (fuse/ll_transport.h) and io_uring_q_depth=N
  // (0: kDefaultUringQueueDepth).
  UringMode io_uring = UringMode::kOff;
  unsigned io_uring_q_depth = 0;
};

// Called once when the mount is live (ok) or has failed before going live.
using ReadyCallback = std::function<void(const Status&)>;

// Blocks (or, with SIG_UNBLOCK, unblocks) the shutdown signals (SIGTERM,
// SIGINT, SIGHUP) in the calling thread for its lifetime. Threads started
// meanwhile inherit the block: the daemon blocks them before any thread
// exists, and only the thread running the session loop takes them.
class ScopedShutdownSignalMask {
 public:
  explicit ScopedShutdownSignalMask(int how);
  ~ScopedShutdownSignalMask();
  ScopedShutdownSignalMask(const ScopedShutdownSignalMask&) = delete;
  ScopedShutdownSignalMask& operator=(const ScopedShutdownSignalMask&) = delete;

 private:
  sigset_t old_;
};

// Sends libfuse's log messages (mount errors, -d request tracing) to spdlog.
void RouteFuseLogging();

// Creates the session, mounts, calls `ready`, serves requests until the
// mount goes away (fusermount3 -u) or a shutdown signal arrives, then
// unmounts. The Adapter is the session's userdata; the engine's kernel-cache
// invalidations go through it while the session lives.
// REQUIRES: the shutdown signals are blocked in this thread.
Status ServeSession(const SessionOptions& o, Adapter* adapter, const ReadyCallback& ready);

}  // namespace dbfs::fuse
