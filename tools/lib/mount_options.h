// dbfs-mount's options: the -o list (and mount(8)'s generic options), and
// the checks made before mounting. They configure every part the daemon
// wires together (tools/lib/daemon.h): the engine, the FUSE session, the
// kernel cache policy, the Elle server, logging.
#pragma once

#include <spdlog/common.h>

#include <optional>
#include <string>
#include <string_view>

#include "fs/filesystem.h"
#include "fuse/ll_context.h"
#include "fuse/ll_transport.h"
#include "kvstore/status.h"

namespace dbfs {

struct MountOptions {
  std::string volume;       // volume directory (made absolute by CheckMountTarget)
  std::string mountpoint;   // mount point directory (made absolute by CheckMountTarget)
  bool foreground = false;  // -f: stay attached, log to stderr
  bool debug = false;       // -d: libfuse request tracing; implies foreground
  FsOptions fs;             // -o sync, noatime, log_level=, tx_timeout=, tx_max_bytes=, ...
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool allow_other = false;         // -o allow_other
  bool default_permissions = true;  // kernel mode checks (-o no_default_permissions: off)
  fuse::CachePolicy cache;          // -o entry_timeout=, -o attr_timeout=, -o direct_io
  // Kernel mount flags. dev/suid default to mount(8)'s defaults for root
  // (on) and to what fusermount3 forces on other users (off); -o dev,
  // nodev, suid, nosuid, exec, noexec set them explicitly.
  std::optional<bool> dev;
  std::optional<bool> suid;
  bool noexec = false;
  // -o runtime_dir=: where the Elle socket and token go (fs/runtime_dir.h);
  // empty: DefaultRuntimeDir(volume).
  std::string runtime_dir;
  // -o remount (mount(8) runs the helper so for `mount -o remount,...`):
  // RemountKernel instead of a new mount.
  bool remount = false;
  // -o log=: where the daemon logs. Empty: stderr with -f, VOLUME/dbfs.log
  // in the background (the runtime directory for -o ro). "syslog": the
  // system log (ident dbfs-mount, facility daemon); "stderr"; or
  // "file:PATH" (an absolute path, appended to).
  std::string log;
  int metrics_port = 0;      // -o metrics_port=: Prometheus text on 127.0.0.1:PORT/metrics
  int elle_port = 0;         // -o elle_port=: Elle protocol on 127.0.0.1:PORT (elle/server.h)
  bool elle_weaken = false;  // -o elle_weaken: test-only broken isolation (negative control)
  // -o io_uring=auto|on|off: the FUSE transport (fuse/ll_transport.h);
  // off by default until a ring thread's busy loop that left a request
  // unanswered (seen once under three cluster mounts) is understood.
  // -o io_uring_q_depth=N: requests in flight per CPU ring.
  fuse::UringMode io_uring = fuse::UringMode::kOff;
  unsigned io_uring_q_depth = 0;
};

// The -o options dbfs-mount accepts (besides mount(8)'s ignored generic
// ones), as "name" or "name=": the list the unknown-option error, the man
// page test and the shell completion use.
extern const std::string_view kMountOptionNames[];
extern const size_t kMountOptionCount;

// Applies one -o argument ("opt,opt=value,...") to `out`. Ours: sync, noatime,
// log_level=trace|debug|info|warn|error, allow_other, default_permissions,
// no_default_permissions, entry_timeout=SECONDS, attr_timeout=SECONDS,
// tx_timeout=SECONDS, tx_max_bytes=BYTES (suffix k, m, g or t allowed),
// history=DURATION and tx_keep_timeout=DURATION (s, m, h, d, w; e.g. 1h, 7d),
// log=syslog|stderr|file:PATH, metrics_port=PORT,
// io_uring=auto|on|off, io_uring_q_depth=N.
// Kernel mount flags: dev, nodev, suid, nosuid, exec, noexec; ro (also the
// engine: FsOptions::read_only), rw; remount (see RemountKernel).
// Ignored (mount(8) passes them): rw, auto, noauto, user, nouser, _netdev,
// defaults, nofail, x-*. Anything else
// is an Invalid status naming the option.
Status ParseMountOptions(std::string_view list, MountOptions* out);

// -o remount: applies ro/rw, nodev, nosuid, noexec and noatime to the live
// mount with mount(2) MS_REMOUNT — the kernel alone enforces them (FUSE tells
// the daemon nothing). After remount,ro every change fails with EROFS in the
// kernel; the daemon itself still runs read-write (a volume the daemon must
// not write at all is mounted with -o ro).
Status RemountKernel(const MountOptions& o);

// Before mounting: the volume and the mount point exist and are directories
// (both are made absolute, as the daemon changes to /), and nothing is
// mounted on the mount point yet (/proc/self/mountinfo).
Status CheckMountTarget(MountOptions* o);

}  // namespace dbfs
