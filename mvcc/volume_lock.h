// VolumeLock: at most one process at a time owns a volume (dbfs-mount while
// mounted, mkfs.dbfs while formatting, fsck.dbfs while checking).
//
// The lock is flock(2) LOCK_EX on VOLUME/lock, so the kernel drops it when the
// owner dies, however it dies: a stale lock after kill -9 is impossible, and
// the file's content ("pid holder\n") is only a hint for error messages.
//
// flock locks belong to the open file description, not to the process:
//  - The fd is O_CLOEXEC, so programs the owner execs do not inherit the lock.
//  - A child forked *after* Acquire shares the lock: it stays held until both
//    have closed the fd, and the pid in the file names the parent. Daemons
//    must therefore fork before Acquire (dbfs-mount daemonizes first, then
//    opens the volume), so the recorded pid is the daemon's.
//  - A second Acquire in the same process, through a new open(), conflicts
//    like any other process would: it returns Busy naming our own pid.
//
// Move-only RAII: the lock is released when the object is destroyed (or by
// Release()). Not thread-safe; one owner thread at a time.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "kvstore/status.h"

namespace dbfs {

inline constexpr char kVolumeLockFileName[] = "lock";

class VolumeLock {
 public:
  // Takes the exclusive lock on VOLUME/lock without waiting, creating the file
  // if missing, and records "<our pid> <holder>\n" in it. `holder` names the
  // program ("dbfs-mount", "mkfs.dbfs", "fsck.dbfs"); it must not contain a
  // newline. If another open file description holds the lock, returns
  // Busy "volume X is in use by pid N (holder); unmount it first".
  // On a read-only volume the lock is taken through a read-only fd and
  // nothing is recorded.
  // `read_only`: a read-only mount's lock — the file is opened read-only and
  // nothing is recorded or cleared, so the volume is not written at all.
  static Result<VolumeLock> Acquire(const std::string& volume_dir, std::string_view holder,
                                    bool read_only = false);

  // Who holds the volume, without taking it: "pid N (holder)" (or "another
  // process" if the holder recorded nothing readable), or nullopt if the
  // volume is free. Probes with a momentary LOCK_SH; an Acquire racing with
  // that instant retries briefly instead of failing.
  // Like Acquire, but when the holder is a daemon whose mount is already gone
  // from /proc/mounts (fusermount3 -u returned while it still flushes), waits
  // up to `timeout` for it to finish instead of failing at once.
  static Result<VolumeLock> AcquireWhenUnmounted(const std::string& volume_dir,
                                                 std::string_view holder,
                                                 std::chrono::milliseconds timeout =
                                                     std::chrono::seconds(15),
                                                 bool read_only = false);
  // True when /proc/mounts lists a DBFS mount ("dbfs:VOLUME") of the volume.
  static bool IsMounted(const std::string& volume_dir);

  static Result<std::optional<std::string>> Holder(const std::string& volume_dir);

  VolumeLock() = default;  // holds nothing
  VolumeLock(VolumeLock&& other) noexcept;
  VolumeLock& operator=(VolumeLock&& other) noexcept;
  VolumeLock(const VolumeLock&) = delete;
  VolumeLock& operator=(const VolumeLock&) = delete;
  ~VolumeLock();

  // Releases the lock now (idempotent). Clears the recorded holder first.
  void Release();

  bool held() const { return fd_ >= 0; }
  const std::string& volume_dir() const { return volume_dir_; }

 private:
  VolumeLock(int fd, std::string volume_dir) : fd_(fd), volume_dir_(std::move(volume_dir)) {}

  int fd_ = -1;  // open on VOLUME/lock with LOCK_EX held; -1 once released
  bool recorded_ = true;  // we wrote the holder line (and so clear it at Release)
  std::string volume_dir_;
};

}  // namespace dbfs
