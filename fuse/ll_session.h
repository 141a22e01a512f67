// Mounting a DBFS volume through the kernel: mount options, checks before
// mounting, the FUSE session lifecycle and the daemon that serves it.
//
// tools/dbfs_mount_main.cc is a thin CLI over this; integration tests can call
// RunMount in a thread-free child the same way.
#pragma once

#include <spdlog/common.h>

#include <functional>
#include <string>
#include <string_view>

#include "fuse/filesystem.h"
#include "fuse/ll_context.h"
#include "kvstore/status.h"

namespace dbfs::fuse {

struct MountOptions {
  std::string volume;       // volume directory (made absolute by CheckMountTarget)
  std::string mountpoint;   // mount point directory (made absolute by CheckMountTarget)
  bool foreground = false;  // -f: stay attached, log to stderr
  bool debug = false;       // -d: libfuse request tracing; implies foreground
  FsOptions fs;             // -o sync, noatime, log_level=, tx_timeout=, tx_max_bytes=
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool allow_other = false;         // -o allow_other
  bool default_permissions = true;  // kernel mode checks (-o no_default_permissions: off)
  CachePolicy cache;                // -o entry_timeout=, -o attr_timeout=
  int elle_port = 0;                // -o elle_port=: Elle protocol on 127.0.0.1:PORT (elle/server.h)
  bool elle_weaken = false;         // -o elle_weaken: test-only broken isolation (negative control)
};

// Applies one -o argument ("opt,opt=value,...") to `out`. Ours: sync, noatime,
// log_level=trace|debug|info|warn|error, allow_other, default_permissions,
// no_default_permissions, entry_timeout=SECONDS, attr_timeout=SECONDS,
// tx_timeout=SECONDS, tx_max_bytes=BYTES (suffix k, m, g or t allowed).
// Ignored (mount(8) passes them): rw, dev, nodev, suid, nosuid, exec, noexec,
// auto, noauto, user, nouser, _netdev, defaults, nofail, x-*. Anything else
// is an Invalid status naming the option.
Status ParseMountOptions(std::string_view list, MountOptions* out);

// Before mounting: the volume and the mount point exist and are directories
// (both are made absolute, as the daemon changes to /), and nothing is
// mounted on the mount point yet (/proc/self/mountinfo).
Status CheckMountTarget(MountOptions* o);

// Called once when the mount is live (ok) or has failed before going live.
using ReadyCallback = std::function<void(const Status&)>;

// Sets up logging (stderr when o.foreground, else VOLUME/dbfs.log), opens the
// volume (recovery), mounts it and serves requests until it is unmounted
// (fusermount3 -u) or SIGTERM/SIGINT/SIGHUP arrives; then unmounts and closes
// the volume (everything flushed). `ready` runs exactly once: ok right after
// the kernel mount exists, or the error if one comes first. Returns the first
// error, ok after a clean shutdown.
// REQUIRES: no other thread of the process is running (signal masks are
// inherited by the engine's threads).
Status RunMount(const MountOptions& o, const ReadyCallback& ready);

// The default way to mount: forks a daemon (setsid) that runs RunMount; the
// caller returns once the mount is live (ok) or with the daemon's error. The
// daemon's stdin/stdout/stderr go to /dev/null once it is live. Never returns
// in the daemon, which exits 0 after a clean unmount.
// REQUIRES: called before any thread exists (fork).
Status RunMountInBackground(const MountOptions& o);

}  // namespace dbfs::fuse
