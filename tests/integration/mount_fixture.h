// Test fixtures for integration tests that run real syscalls against a DBFS
// volume mounted through the kernel.
//
// MountedVolume owns one fresh temp dir (/tmp/dbfs-it-XXXXXX) holding
// volume/ (made by mkfs.dbfs) and mnt/ (where dbfs-mount -f serves it), plus
// daemon.log with everything the tools printed. It unmounts and removes the
// temp dir on every path.
//
// With DBFS_TEST_PLAIN_DIR=1 nothing is mounted: mnt/ is a plain directory of
// the host filesystem. That mode checks the tests themselves against the
// kernel's own filesystems.
//
// Environment: DBFS_BIN_DIR overrides the compiled-in tool directory;
// DBFS_TEST_KEEP=1 keeps the temp dir; DBFS_TEST_MOUNT_OPTS replaces the
// default -o options.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dbfs::testing {

// True when DBFS_TEST_PLAIN_DIR=1.
bool PlainDirMode();
// Directory holding mkfs.dbfs, dbfs-mount and fsck.dbfs.
std::string BinDir();
// Full path of a tool in BinDir(), or "" when it does not exist.
std::string ToolPath(const std::string& name);

// Runs argv (argv[0] looked up in PATH unless it contains a '/'), stdout and
// stderr captured into *output when non-null. Returns the exit status (0-255),
// 128+signal when killed, or -1 if it could not run or exceeded `timeout`
// (it is then SIGKILLed).
int RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
               std::string* output = nullptr);

// True if `dir` is a mount point listed in /proc/mounts.
bool IsMounted(const std::string& dir);

// Waits until `pred` holds or `timeout` passes, polling every `step`.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             std::chrono::milliseconds step = std::chrono::milliseconds(5));

// Waits (bounded) for pid to exit. Returns true and sets *status if it did.
bool WaitPid(pid_t pid, std::chrono::milliseconds timeout, int* status);

// Removes a directory tree (like rm -rf), not crossing mount points.
void RemoveTree(const std::string& path);

class MountedVolume {
 public:
  // Creates the temp dir, runs mkfs.dbfs -q and mounts with `opts` (passed as
  // dbfs-mount -o opts; empty means none). Returns null and sets *error on
  // failure (the temp dir is removed).
  // With DBFS_TEST_CLUSTER_META=etcd://H:P,... and
  // DBFS_TEST_CLUSTER_DATA=rados://POOL?conf=... the volume is a fresh
  // cluster volume there instead (docs/cluster.md).
  static std::unique_ptr<MountedVolume> Create(const std::string& opts, std::string* error);
  // Mounts an existing volume (e.g. one cluster volume mounted several
  // times) on a mnt/ of its own temp dir.
  static std::unique_ptr<MountedVolume> Attach(const std::string& volume, const std::string& opts,
                                               std::string* error);
  // The default options: allow_other, so that tests can run syscalls as
  // non-root users (otherwise the kernel refuses them before DBFS sees them).
  static std::string DefaultOptions();

  ~MountedVolume();
  MountedVolume(const MountedVolume&) = delete;
  MountedVolume& operator=(const MountedVolume&) = delete;

  // Starts dbfs-mount -f and waits (bounded) until the mount is live.
  ::testing::AssertionResult Mount();
  // fusermount3 -u, then waits (bounded) for the daemon to exit 0.
  ::testing::AssertionResult Unmount();
  ::testing::AssertionResult Remount();
  // SIGKILLs the daemon and clears the dead mount (fusermount3 -u, then
  // umount -l as the last resort).
  ::testing::AssertionResult Kill9();
  // Starts dbfs-mount and SIGKILLs it `delay` later, whether or not the mount
  // is live by then (a crash during recovery or start-up), then clears any
  // mount. Leaves the volume unmounted. No-op in plain-dir mode.
  ::testing::AssertionResult KillDuringMount(std::chrono::milliseconds delay);

  // Test crash points (kvstore/crash_point.h): daemons started from now on
  // run with DBFS_TEST_CRASH_POINT=point ("NAME" or "NAME:N"); "" disarms.
  void set_crash_point(const std::string& point) { crash_point_ = point; }
  // Waits (bounded) for the running daemon to SIGKILL itself at `point` (its
  // log must say so) and clears the dead mount.
  ::testing::AssertionResult AwaitCrashPoint(const std::string& point,
                                             std::chrono::milliseconds timeout);
  // Starts dbfs-mount with `point` armed and expects it to crash there
  // before or during start-up (e.g. "recovery.replay:2": in the middle of
  // replaying the WAL), proven by its log line. Leaves the volume unmounted.
  ::testing::AssertionResult CrashDuringMount(const std::string& point);

  // fsck.dbfs -n -f on the volume (which must not be mounted) exits 0 and
  // prints no warning. Succeeds trivially in plain-dir mode; fails when
  // fsck.dbfs is not built.
  ::testing::AssertionResult FsckClean(const std::string& when);

  bool mounted() const { return mounted_; }
  bool plain() const { return plain_; }
  pid_t daemon_pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  const std::string& volume() const { return volume_; }
  const std::string& mountpoint() const { return mnt_; }
  const std::string& log_path() const { return log_; }
  // mountpoint + "/" + rel (rel may be empty).
  std::string path(const std::string& rel = "") const;
  // The tools' output so far (last `max_bytes`).
  std::string Log(size_t max_bytes = 64 * 1024) const;
  void AppendLog(const std::string& text) const;

 private:
  MountedVolume() = default;
  // The temp dir and mnt/ (and the tool check): everything but the volume.
  static std::unique_ptr<MountedVolume> Prepare(const std::string& opts, std::string* error);
  bool MountOrFail(std::string* error);
  ::testing::AssertionResult ClearDeadMount();
  ::testing::AssertionResult CheckCrashed(const std::string& point, int status);
  // Forks and execs dbfs-mount -f; returns its pid or -1.
  pid_t SpawnDaemon(std::string* error);

  bool plain_ = false;
  bool mounted_ = false;
  pid_t pid_ = -1;
  std::string opts_;
  std::string crash_point_;
  std::string dir_, volume_, mnt_, log_;
};

// gtest fixture: a fresh MountedVolume per test; prints the daemon log when
// the test failed; checks that the final unmount is clean and that fsck -n
// finds nothing wrong afterwards (DBFS_TEST_NO_FSCK=1 skips that).
class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Options for this fixture's mount; override to change.
  virtual std::string MountOptions() const { return MountedVolume::DefaultOptions(); }
  std::string path(const std::string& rel = "") const { return vol_->path(rel); }

  std::unique_ptr<MountedVolume> vol_;
};

// Runs fn in a forked child with uid/gid (and no supplementary groups).
// fn returns a small int (0..255), typically 0 or an errno. Returns that, or
// -1 if the child crashed or hung (bounded wait, then SIGKILL).
// Do not use gtest assertions inside fn.
inline constexpr uid_t kNobody = 65534;
inline constexpr uid_t kOtherUser = 65533;
int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& fn);
// Runs fn in a forked child (same credentials); same contract as RunAsUser.
int RunInChild(const std::function<int()>& fn);

// The daemon's counters: the `dbfs.stats` virtual xattr of the mount root
// (what `dbfs stats` prints), "name value" per line. Empty with *error set
// when the query fails.
std::map<std::string, uint64_t> DaemonStats(const std::string& mnt, std::string* error);

// Helpers for tests.
std::string ReadFile(const std::string& path);  // whole file; "" on error
bool WriteFile(const std::string& path, const std::string& data, int flags = 0, mode_t mode = 0644);
// Waits (bounded) until CLOCK_REALTIME is past `t`, so that a following
// timestamp update is distinguishable from `t`.
void WaitClockPast(const struct timespec& t);
struct timespec Now();
bool TsEq(const struct timespec& a, const struct timespec& b);
bool TsLess(const struct timespec& a, const struct timespec& b);
std::string TsStr(const struct timespec& t);

}  // namespace dbfs::testing
