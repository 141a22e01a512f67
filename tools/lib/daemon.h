// The mount daemon: the composition root of DBFS — the one place that knows
// every part and wires them together: it opens the volume (recovery), starts
// the checkpointer and the Elle protocol server, serves the FUSE session, and
// shuts down in order (session, then Elle server, then the volume: flushed
// and closed). Signals: SIGTERM/SIGINT/SIGHUP unmount cleanly.
//
// tools/dbfs_mount_main.cc is a thin CLI over this.
#pragma once

#include "fuse/ll_session.h"
#include "kvstore/status.h"
#include "tools/lib/mount_options.h"

namespace dbfs {

// Sets up logging (-o log=; else stderr when o.foreground, else
// VOLUME/dbfs.log), opens the
// volume (recovery), mounts it and serves requests until it is unmounted
// (fusermount3 -u) or SIGTERM/SIGINT/SIGHUP arrives; then unmounts and closes
// the volume (everything flushed). `ready` runs exactly once: ok right after
// the kernel mount exists, or the error if one comes first. Returns the first
// error, ok after a clean shutdown.
// REQUIRES: no other thread of the process is running (signal masks are
// inherited by the engine's threads).
Status RunMount(const MountOptions& o, const fuse::ReadyCallback& ready);

// The default way to mount: forks a daemon (setsid) that runs RunMount; the
// caller returns once the mount is live (ok) or with the daemon's error. The
// daemon's stdin/stdout/stderr go to /dev/null once it is live. Never returns
// in the daemon, which exits 0 after a clean unmount.
// REQUIRES: called before any thread exists (fork).
Status RunMountInBackground(const MountOptions& o);

}  // namespace dbfs
