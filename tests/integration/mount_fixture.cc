#include "tests/integration/mount_fixture.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <thread>

#ifndef DBFS_BIN_DIR
#define DBFS_BIN_DIR ""
#endif

namespace dbfs::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kMountTimeout{10000};
constexpr milliseconds kUnmountTimeout{60000};
constexpr milliseconds kToolTimeout{120000};

const char* Env(const char* name) {
  const char* v = getenv(name);
  return (v && *v) ? v : nullptr;
}

// Closes every fd >= 3 in a freshly forked child (async-signal-safe).
void CloseExtraFds() {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  for (int fd = 3; fd < 1024; ++fd) close(fd);
}

std::string Errno(const char* what) { return std::string(what) + ": " + strerror(errno); }

// DBFS_IO_URING=on (the integration_uring.* variants, tests/integration/
// CMakeLists.txt): every dbfs-mount serves over io_uring. The fuse module
// must allow it: the parameter is turned on here (root); else every test of
// the binary is skipped, saying why.
std::string ReadWord(const std::string& path) {
  std::ifstream in(path);
  std::string w;
  in >> w;
  return w;
}

class UringVariant : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* mode = Env("DBFS_IO_URING");
    if (mode == nullptr || std::string(mode) != "on") return;
    const char* override_path = Env("DBFS_FUSE_URING_PARAM");
    const std::string p =
        override_path ? override_path : "/sys/module/fuse/parameters/enable_uring";
    if (access(p.c_str(), F_OK) != 0) {
      GTEST_SKIP() << "io_uring variant: " << p
                   << " is missing (kernel without FUSE-over-io_uring)";
    }
    if (ReadWord(p) != "Y") {
      std::ofstream(p) << "Y\n";
    }
    const std::string v = ReadWord(p);
    if (v != "Y") {
      GTEST_SKIP() << "io_uring variant: " << p << " is " << v << " and cannot be set to Y here";
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kUringVariant =
    ::testing::AddGlobalTestEnvironment(new UringVariant);

}  // namespace

bool PlainDirMode() {
  const char* v = Env("DBFS_TEST_PLAIN_DIR");
  return v && std::string(v) == "1";
}

std::string BinDir() {
  if (const char* v = Env("DBFS_BIN_DIR")) return v;
  return DBFS_BIN_DIR;
}

std::string ToolPath(const std::string& name) {
  std::string p = BinDir() + "/" + name;
  if (access(p.c_str(), X_OK) == 0) return p;
  return "";
}

bool WaitFor(const std::function<bool()>& pred, milliseconds timeout, milliseconds step) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(step);
  }
}

bool WaitPid(pid_t pid, milliseconds timeout, int* status) {
  int st = 0;
  bool done = WaitFor(
      [&] {
        pid_t r = waitpid(pid, &st, WNOHANG);
        return r == pid || (r < 0 && errno == ECHILD);
      },
      timeout, milliseconds(2));
  if (done && status) *status = st;
  return done;
}

int RunCommand(const std::vector<std::string>& argv, milliseconds timeout, std::string* output) {
  if (argv.empty()) return -1;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    CloseExtraFds();
    if (strchr(args[0], '/')) {
      execv(args[0], args.data());
    } else {
      execvp(args[0], args.data());
    }
    _exit(127);
  }
  close(pipefd[1]);
  auto deadline = Clock::now() + timeout;
  std::string out;
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {pipefd[0], POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(std::min<long>(left, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, n);
  }
  close(pipefd[0]);
  int status = 0;
  if (timed_out || !WaitPid(pid,
                            std::max<milliseconds>(
                                milliseconds(100),
                                std::chrono::duration_cast<milliseconds>(deadline - Clock::now())),
                            &status)) {
    kill(pid, SIGKILL);
    WaitPid(pid, milliseconds(10000), &status);
    out += "\n[RunCommand: timed out, killed]\n";
    if (output) *output = out;
    return -1;
  }
  if (output) *output = out;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool IsMounted(const std::string& dir) {
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string dev, mp;
    ls >> dev >> mp;
    if (mp == dir) return true;
  }
  return false;
}

void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        remove(p);  // best effort; errors show up as leftovers, not failures
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

// ---- MountedVolume ----

std::string MountedVolume::DefaultOptions() {
  if (const char* v = Env("DBFS_TEST_MOUNT_OPTS")) return v;
  return "allow_other";
}

std::unique_ptr<MountedVolume> MountedVolume::Prepare(const std::string& opts, std::string* error) {
  std::unique_ptr<MountedVolume> v(new MountedVolume());
  v->plain_ = PlainDirMode();
  v->opts_ = opts;
  char tmpl[] = "/tmp/dbfs-it-XXXXXX";
  if (!mkdtemp(tmpl)) {
    *error = Errno("mkdtemp");
    return nullptr;
  }
  v->dir_ = tmpl;
  chmod(v->dir_.c_str(), 0755);  // non-root test users must reach mnt/
  v->volume_ = v->dir_ + "/volume";
  v->mnt_ = v->dir_ + "/mnt";
  v->log_ = v->dir_ + "/daemon.log";
  if (mkdir(v->mnt_.c_str(), 0755) != 0) {
    *error = Errno("mkdir mnt");
    return nullptr;
  }
  if (v->plain_) {
    v->mounted_ = true;
    return v;
  }
  if (ToolPath("mkfs.dbfs").empty() || ToolPath("dbfs-mount").empty()) {
    *error = "mkfs.dbfs or dbfs-mount not found in " + BinDir() +
             " (build them, or set DBFS_TEST_PLAIN_DIR=1 to test against a plain dir)";
    return nullptr;
  }
  return v;
}

std::unique_ptr<MountedVolume> MountedVolume::Create(const std::string& opts, std::string* error) {
  auto v = Prepare(opts, error);
  if (!v || v->plain_) return v;
  std::vector<std::string> argv = {ToolPath("mkfs.dbfs"), "-q", v->volume_};
  const char* meta = Env("DBFS_TEST_CLUSTER_META");
  const char* data = Env("DBFS_TEST_CLUSTER_DATA");
  if (meta && data) {
    // A cluster volume of its own on the given etcd and Ceph clusters.
    static int n = 0;
    v->volume_ = std::string(meta) + "/it-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    argv = {ToolPath("mkfs.dbfs"), "-q", "--meta", v->volume_, "--data", data};
  }
  std::string out, cmdline = "$";
  for (size_t i = 1; i < argv.size(); ++i) cmdline += " " + argv[i];
  int rc = RunCommand(argv, kToolTimeout, &out);
  v->AppendLog(cmdline + "\n" + out);
  if (rc != 0) {
    *error = "mkfs.dbfs exited " + std::to_string(rc) + ":\n" + out;
    return nullptr;
  }
  return v->MountOrFail(error) ? std::move(v) : nullptr;
}

std::unique_ptr<MountedVolume> MountedVolume::Attach(const std::string& volume,
                                                     const std::string& opts, std::string* error) {
  auto v = Prepare(opts, error);
  if (!v || v->plain_) return v;
  v->volume_ = volume;
  return v->MountOrFail(error) ? std::move(v) : nullptr;
}

bool MountedVolume::MountOrFail(std::string* error) {
  auto r = Mount();
  if (!r) {
    *error = std::string(r.message()) + "\n--- daemon log ---\n" + Log();
    return false;
  }
  return true;
}

MountedVolume::~MountedVolume() {
  if (mounted_) {
    auto r = Unmount();
    if (!r) {
      std::cerr << "MountedVolume: " << r.message() << "\n";
      if (mounted_ || pid_ > 0) (void)Kill9();  // best effort on the error path
    }
  }
  if (!dir_.empty()) {
    if (IsMounted(mnt_)) {
      std::cerr << "MountedVolume: " << mnt_ << " is still mounted; leaving " << dir_ << "\n";
    } else if (Env("DBFS_TEST_KEEP")) {
      std::cerr << "MountedVolume: kept " << dir_ << "\n";
    } else {
      RemoveTree(dir_);
    }
  }
}

std::string MountedVolume::path(const std::string& rel) const {
  if (rel.empty()) return mnt_;
  return mnt_ + "/" + rel;
}

void MountedVolume::AppendLog(const std::string& text) const {
  int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = write(fd, text.data(), text.size());
  (void)ignored;
  close(fd);
}

std::string MountedVolume::Log(size_t max_bytes) const {
  std::string s = ReadFile(log_);
  if (s.size() > max_bytes) s = "...\n" + s.substr(s.size() - max_bytes);
  return s;
}

pid_t MountedVolume::SpawnDaemon(std::string* error) {
  std::string bin = ToolPath("dbfs-mount");
  if (bin.empty()) {
    *error = "dbfs-mount not found in " + BinDir();
    return -1;
  }
  std::vector<std::string> argv = {bin, volume_, mnt_, "-f"};
  if (!opts_.empty()) {
    argv.push_back("-o");
    argv.push_back(opts_);
  }
  std::string cmdline = "$";
  for (auto& a : argv) cmdline += " " + a;
  AppendLog(cmdline + "\n");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  // The environment, with the crash point armed if one is set (built before
  // the fork: the child only execs).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).rfind("DBFS_TEST_CRASH_POINT=", 0) != 0) env_strings.push_back(*e);
  }
  if (!crash_point_.empty()) {
    env_strings.push_back("DBFS_TEST_CRASH_POINT=" + crash_point_);
    AppendLog("[test] armed crash point " + crash_point_ + "\n");
  }
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int logfd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) {
    *error = Errno("open log");
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(logfd);
    *error = Errno("fork");
    return -1;
  }
  if (pid == 0) {
    // If the test binary dies (e.g. ctest timeout), SIGTERM lets the daemon
    // unmount instead of leaving an orphan serving a stale mount.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    CloseExtraFds();
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(logfd);
  return pid;
}

::testing::AssertionResult MountedVolume::AwaitCrashPoint(const std::string& point,
                                                          milliseconds timeout) {
  if (plain_) return ::testing::AssertionFailure() << "no daemon in plain-dir mode";
  if (pid_ <= 0) return ::testing::AssertionFailure() << "no daemon to wait for";
  int status = 0;
  if (!WaitPid(pid_, timeout, &status)) {
    return ::testing::AssertionFailure()
           << "the daemon did not reach crash point " << point << " (still running)";
  }
  pid_ = -1;
  mounted_ = false;
  auto cleared = ClearDeadMount();
  if (!cleared) return cleared;
  return CheckCrashed(point, status);
}

::testing::AssertionResult MountedVolume::CheckCrashed(const std::string& point, int status) {
  const std::string name = point.substr(0, point.find(':'));
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
    return ::testing::AssertionFailure() << "the daemon ended with status " << status
                                         << ", not by crash point " << point;
  }
  if (ReadFile(log_).find("dbfs: crash point " + name + " reached") == std::string::npos) {
    return ::testing::AssertionFailure() << "the daemon was SIGKILLed, but its log does not say "
                                         << "crash point " << name << " was reached";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult MountedVolume::CrashDuringMount(const std::string& point) {
  if (plain_) return ::testing::AssertionSuccess();
  if (mounted_) return ::testing::AssertionFailure() << "already mounted";
  const std::string saved = crash_point_;
  crash_point_ = point;
  std::string err;
  pid_t pid = SpawnDaemon(&err);
  crash_point_ = saved;
  if (pid < 0) return ::testing::AssertionFailure() << err;
  // Until the daemon dies, or the mount appears: then it got through its
  // start-up (recovery included) without reaching the point.
  int status = 0;
  bool exited = false;
  const bool ended = WaitFor(
      [&] {
        exited = waitpid(pid, &status, WNOHANG) == pid;
        return exited || IsMounted(mnt_);
      },
      milliseconds(60000));
  if (!exited) {
    kill(pid, SIGKILL);
    WaitPid(pid, milliseconds(30000), &status);
    ClearDeadMount();
    return ::testing::AssertionFailure()
           << "dbfs-mount " << (ended ? "mounted" : "kept starting for 60 s")
           << " without reaching crash point " << point;
  }
  auto cleared = ClearDeadMount();
  if (!cleared) return cleared;
  return CheckCrashed(point, status);
}

::testing::AssertionResult MountedVolume::KillDuringMount(milliseconds delay) {
  if (plain_) return ::testing::AssertionSuccess();
  if (mounted_) return ::testing::AssertionFailure() << "already mounted";
  std::string err;
  pid_t pid = SpawnDaemon(&err);
  if (pid < 0) return ::testing::AssertionFailure() << err;
  int status = 0;
  // The delay is the randomized crash point, not a wait for a condition.
  bool exited = WaitPid(pid, delay, &status);
  if (!exited) {
    AppendLog("[test] SIGKILL dbfs-mount pid " + std::to_string(pid) + " during start-up\n");
    kill(pid, SIGKILL);
    if (!WaitPid(pid, milliseconds(30000), &status)) {
      return ::testing::AssertionFailure() << "daemon " << pid << " did not die after SIGKILL";
    }
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure()
           << "dbfs-mount failed during start-up (status " << status << ")";
  }
  return ClearDeadMount();
}

::testing::AssertionResult MountedVolume::Mount() {
  if (mounted_) return ::testing::AssertionFailure() << "already mounted";
  if (plain_) {
    mounted_ = true;
    return ::testing::AssertionSuccess();
  }
  std::string err;
  pid_t pid = SpawnDaemon(&err);
  if (pid < 0) return ::testing::AssertionFailure() << err;
  pid_ = pid;
  int status = 0;
  bool exited = false;
  bool up = WaitFor(
      [&] {
        if (IsMounted(mnt_)) return true;
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) exited = true;
        return exited;
      },
      kMountTimeout);
  if (exited) {
    pid_ = -1;
    return ::testing::AssertionFailure()
           << "dbfs-mount exited before the mount was live (status " << status << ")";
  }
  if (!up) {
    kill(pid_, SIGKILL);
    WaitPid(pid_, milliseconds(10000), nullptr);
    pid_ = -1;
    (void)ClearDeadMount();
    return ::testing::AssertionFailure()
           << "mount did not appear in /proc/mounts within " << kMountTimeout.count() << " ms";
  }
  mounted_ = true;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult MountedVolume::Unmount() {
  if (!mounted_) return ::testing::AssertionFailure() << "not mounted";
  if (plain_) {
    mounted_ = false;
    return ::testing::AssertionSuccess();
  }
  std::string out;
  int rc = -1;
  // EBUSY can be transient (a just-closed fd being released); retry bounded.
  WaitFor(
      [&] {
        rc = RunCommand({"fusermount3", "-u", mnt_}, milliseconds(30000), &out);
        return rc == 0 || !IsMounted(mnt_);
      },
      milliseconds(5000), milliseconds(50));
  AppendLog("$ fusermount3 -u " + mnt_ + " -> " + std::to_string(rc) + "\n" + out);
  if (IsMounted(mnt_)) {
    return ::testing::AssertionFailure() << "fusermount3 -u failed (" << rc << "): " << out;
  }
  mounted_ = false;
  int status = 0;
  pid_t pid = pid_;
  if (!WaitPid(pid, kUnmountTimeout, &status)) {
    kill(pid, SIGKILL);
    WaitPid(pid, milliseconds(10000), nullptr);
    pid_ = -1;
    return ::testing::AssertionFailure()
           << "dbfs-mount did not exit within " << kUnmountTimeout.count() << " ms after unmount";
  }
  pid_ = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure()
           << "dbfs-mount did not exit cleanly after unmount: "
           << (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                 : "signal " + std::to_string(WTERMSIG(status)));
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult MountedVolume::Remount() {
  auto r = Unmount();
  if (!r) return r;
  return Mount();
}

::testing::AssertionResult MountedVolume::ClearDeadMount() {
  if (!IsMounted(mnt_)) return ::testing::AssertionSuccess();
  std::string out;
  int rc = RunCommand({"fusermount3", "-u", mnt_}, milliseconds(10000), &out);
  AppendLog("$ fusermount3 -u " + mnt_ + " -> " + std::to_string(rc) + "\n" + out);
  if (IsMounted(mnt_)) {
    rc = RunCommand({"umount", "-l", mnt_}, milliseconds(10000), &out);
    AppendLog("$ umount -l " + mnt_ + " -> " + std::to_string(rc) + "\n" + out);
  }
  if (IsMounted(mnt_)) return ::testing::AssertionFailure() << "could not clear mount " << mnt_;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult MountedVolume::Kill9() {
  if (plain_) {
    mounted_ = false;
    return ::testing::AssertionSuccess();
  }
  if (pid_ > 0) {
    AppendLog("[test] SIGKILL dbfs-mount pid " + std::to_string(pid_) + "\n");
    kill(pid_, SIGKILL);
    if (!WaitPid(pid_, milliseconds(30000), nullptr)) {
      return ::testing::AssertionFailure() << "daemon " << pid_ << " did not die after SIGKILL";
    }
    pid_ = -1;
  }
  mounted_ = false;
  return ClearDeadMount();
}

::testing::AssertionResult MountedVolume::FsckClean(const std::string& when) {
  if (plain_) return ::testing::AssertionSuccess();
  // A missing tool is a failure, not a pass: the check would silently not run.
  std::string fsck = ToolPath("fsck.dbfs");
  if (fsck.empty()) {
    return ::testing::AssertionFailure() << "fsck.dbfs not found in " << BinDir()
                                         << " (build it): the volume cannot be checked " << when;
  }
  // Strict: the full check (-f: every WAL record's checksum, the CSN order of
  // the COMMITs), and a clean volume prints no warning either.
  std::string out;
  int rc = RunCommand({fsck, "-n", "-f", volume_}, kToolTimeout, &out);
  AppendLog("$ fsck.dbfs -n -f " + volume_ + " (" + when + ") -> " + std::to_string(rc) + "\n" +
            out);
  if (rc != 0) {
    return ::testing::AssertionFailure() << "fsck.dbfs -n -f " << when << " exited " << rc
                                         << ":\n"
                                         << out;
  }
  if (out.find(": warning: ") != std::string::npos) {
    return ::testing::AssertionFailure() << "fsck.dbfs -n -f " << when
                                         << " found the volume clean but warned:\n"
                                         << out;
  }
  return ::testing::AssertionSuccess();
}

// ---- MountTest ----

void MountTest::SetUp() {
  // Mounting with allow_other, mknod of devices and switching users need root.
  if (geteuid() != 0) GTEST_SKIP() << "integration tests run as root";
  umask(022);
  std::string err;
  vol_ = MountedVolume::Create(MountOptions(), &err);
  ASSERT_TRUE(vol_ != nullptr) << err;
}

void MountTest::TearDown() {
  if (!vol_) return;
  if (vol_->mounted()) {
    EXPECT_TRUE(vol_->Unmount());
  }
  const char* no_fsck = getenv("DBFS_TEST_NO_FSCK");
  if (!vol_->mounted() && !(no_fsck && std::string(no_fsck) == "1")) {
    EXPECT_TRUE(vol_->FsckClean("after the test's final unmount"));
  }
  if (HasFailure() && !vol_->plain()) {
    std::cout << "---- " << vol_->log_path() << " (tail) ----\n"
              << vol_->Log(16 * 1024) << "\n---- end of log ----\n";
  }
  vol_.reset();
}

// ---- daemon counters ----

std::map<std::string, uint64_t> DaemonStats(const std::string& mnt, std::string* error) {
  std::string buf(1 << 20, '\0');
  // One getxattr with a large buffer (a size probe would run the command twice).
  ssize_t n = getxattr(mnt.c_str(), "dbfs.stats", buf.data(), buf.size());
  std::map<std::string, uint64_t> out;
  if (n < 0) {
    *error = std::string("getxattr dbfs.stats: ") + strerror(errno);
    return out;
  }
  buf.resize(static_cast<size_t>(n));
  std::istringstream in(buf);
  std::string key;
  uint64_t value;
  while (in >> key >> value) out[key] = value;
  return out;
}

// ---- credentials ----

int RunInChild(const std::function<int()>& fn) { return RunAsUser(getuid(), getgid(), fn); }

int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  bool same = uid == getuid() && gid == getgid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (!same) {
      if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
          setresuid(uid, uid, uid) != 0) {
        _exit(254);
      }
    }
    int r = fn();
    _exit(r & 0xff);
  }
  int status = 0;
  if (!WaitPid(pid, milliseconds(60000), &status)) {
    kill(pid, SIGKILL);
    WaitPid(pid, milliseconds(10000), nullptr);
    return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -1;
}

// ---- small helpers ----

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string s;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, n);
  }
  close(fd);
  return s;
}

bool WriteFile(const std::string& path, const std::string& data, int flags, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | flags, mode);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return false;
    }
    done += n;
  }
  return close(fd) == 0;
}

struct timespec Now() {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

bool TsEq(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool TsLess(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

std::string TsStr(const struct timespec& t) {
  char buf[64];
  snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}

void WaitClockPast(const struct timespec& t) {
  // Kernel timestamps come from the coarse clock (tick granularity); wait
  // until both clocks are past t so the next update differs from t.
  WaitFor(
      [&] {
        struct timespec fine, coarse;
        clock_gettime(CLOCK_REALTIME, &fine);
        clock_gettime(CLOCK_REALTIME_COARSE, &coarse);
        return TsLess(t, fine) && TsLess(t, coarse);
      },
      milliseconds(5000), milliseconds(1));
}

}  // namespace dbfs::testing
