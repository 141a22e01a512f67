// Daemon: a dbfs-mount process owned by `dbfs elle run` (elle/runner.h), for
// runs that mount the volume themselves and for the kill nemesis: start it in
// the foreground, SIGKILL it and clear the stale FUSE mount it leaves behind,
// stop it cleanly. Every wait is bounded; the only processes signalled are the
// ones this class started, by pid.
//
// Not thread-safe: one thread (the runner's main thread) drives it. That
// thread must outlive the daemon: the child is started with
// PR_SET_PDEATHSIG=SIGTERM, which the kernel sends when the *thread* that
// forked it exits — so if the runner dies, the daemon unmounts instead of
// lingering.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "kvstore/status.h"

namespace dbfs::elle {

// The source field ("dbfs:VOLUME") of the last mount at `path` in
// /proc/mounts (escapes decoded), or "" when `path` is not a mount point.
std::string MountSource(const std::string& path);
inline bool IsMountPoint(const std::string& path) { return !MountSource(path).empty(); }

// `name` if it contains a '/', else its first executable match in $PATH, else "".
std::string FindExecutable(const std::string& name);

struct DaemonOptions {
  std::string mount_bin;  // the dbfs-mount executable (a path)
  std::string volume;
  std::string mount;    // absolute mount point
  std::string options;  // the -o list ("" = none)
  std::string log;      // the daemon's stdout and stderr, appended ("" = /dev/null)
  std::chrono::milliseconds start_timeout{60000};  // until the mount is live (recovery included)
  std::chrono::milliseconds stop_timeout{60000};   // from the unmount to the daemon's exit
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  // Stops a running daemon (Stop, else Kill); errors are only logged to the
  // daemon log, so callers that care call Stop themselves.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs `mount_bin VOLUME MOUNT -f [-o OPTIONS]` and waits until the mount
  // appears in /proc/mounts. An error if it exits or times out first (then
  // nothing is left running or mounted).
  // REQUIRES: !running() and MOUNT is not a mount point.
  Status Start();

  // SIGKILLs the daemon, reaps it, then clears the stale mount it leaves:
  // `fusermount3 -u`, falling back to `umount -l`, and waits until the mount
  // point is gone from /proc/mounts.
  // REQUIRES: running().
  Status Kill();

  // Unmounts with `fusermount3 -u` (retried while busy) and waits for the
  // daemon to exit; an error unless it exits with status 0.
  // REQUIRES: running().
  Status Stop();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const DaemonOptions& options() const { return o_; }

 private:
  Status ClearStaleMount();
  void Log(const std::string& line) const;

  const DaemonOptions o_;
  pid_t pid_ = -1;
};

}  // namespace dbfs::elle
