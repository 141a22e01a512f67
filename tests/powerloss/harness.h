// Process and mount helpers for the power-loss tests (docs/powerloss.md):
// FUSE daemons in the foreground (plfs, dbfs-mount) owned by pid, and the
// plfs control file.
//
// Every wait is bounded; every daemon is stopped by its pid and its mount
// cleared on every path (the destructor is the last resort).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace dbfs::powerloss {

// Path of the plfs binary: $PLFS_BIN, else the one built next to this test.
std::string PlfsBinary();

// Appends text to a log file (best effort).
void AppendFile(const std::string& path, const std::string& text);
// The last max_bytes of a file.
std::string Tail(const std::string& path, size_t max_bytes);

// A FUSE daemon running in the foreground and serving one mount point.
class Daemon {
 public:
  // Runs argv (stdout and stderr appended to `log`) and waits (bounded) until
  // `mnt` shows up in /proc/mounts. Null and *error on failure (nothing left
  // running). The child gets SIGTERM if this process dies.
  static std::unique_ptr<Daemon> Start(const std::string& name,
                                       const std::vector<std::string>& argv, const std::string& mnt,
                                       const std::string& log, std::string* error);
  // Like Start, but returns as soon as the daemon runs (its mount may not be
  // live yet).
  static std::unique_ptr<Daemon> StartNoWait(const std::string& name,
                                             const std::vector<std::string>& argv,
                                             const std::string& mnt, const std::string& log,
                                             std::string* error);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Clean stop: fusermount3 -u (retried, bounded), then waits for the daemon
  // to exit. True if it exited with status 0. On failure the daemon is killed.
  bool Unmount(std::string* error);
  // SIGKILL, wait, then clear the dead mount (fusermount3 -u, umount -l as
  // the last resort). *status gets how the daemon ended (it may have died by
  // itself before). False if the mount could not be cleared.
  bool Kill(int* status, std::string* error);
  // True if the daemon already exited on its own (reaped; *status set).
  bool Exited(int* status);

  pid_t pid() const { return pid_; }
  const std::string& mountpoint() const { return mnt_; }

 private:
  Daemon() = default;
  static std::unique_ptr<Daemon> Spawn(const std::string& name,
                                       const std::vector<std::string>& argv, const std::string& mnt,
                                       const std::string& log, bool wait_mounted,
                                       std::string* error);
  bool ClearMount(std::string* error);

  std::string name_, mnt_, log_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Sends `command` to the plfs mounted at mnt (via mnt/.plfs_ctl) and returns
// its reply. False (and *reply holds why) if that failed.
bool PlfsCtl(const std::string& mnt, const std::string& command, std::string* reply);

// Describes a wait() status: "exit 0", "signal 9 (SIGKILL)".
std::string StatusString(int status);

}  // namespace dbfs::powerloss
