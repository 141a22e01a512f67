#include "elle/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

extern "C" char** environ;

namespace dbfs::elle {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// /proc/mounts escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMount(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Polls until `pred` holds or `timeout` passes; returns the last value of pred.
template <typename Pred>
bool WaitFor(Pred pred, milliseconds timeout, milliseconds step = milliseconds(10)) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(step);
  }
  return true;
}

// Reaps `pid` if it exits within `timeout`; *status gets its wait status.
bool WaitPid(pid_t pid, milliseconds timeout, int* status) {
  int st = 0;
  const bool done = WaitFor(
      [&] {
        const pid_t r = ::waitpid(pid, &st, WNOHANG);
        return r == pid || (r < 0 && errno == ECHILD);
      },
      timeout, milliseconds(5));
  if (done && status != nullptr) *status = st;
  return done;
}

std::string DescribeStatus(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "wait status " + std::to_string(st);
}

// Runs a helper (fusermount3, umount) with its output appended to `log`,
// bounded by `timeout` (then SIGKILLed). Returns its exit code, -1 if it
// could not run or was killed.
int RunTool(const std::vector<std::string>& args, const std::string& log, milliseconds timeout) {
  const std::string exe = FindExecutable(args[0]);
  if (exe.empty()) return -1;
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  const std::string out = log.empty() ? std::string("/dev/null") : log;
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int st = 0;
  if (!WaitPid(pid, timeout, &st)) {
    ::kill(pid, SIGKILL);
    (void)WaitPid(pid, milliseconds(10000), nullptr);
    return -1;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

std::string MountSource(const std::string& path) {
  std::ifstream in("/proc/mounts");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string src, mp;
    if (!(f >> src >> mp)) continue;
    if (UnescapeMount(mp) == path) found = UnescapeMount(src);  // the last mount wins
  }
  return found;
}

std::string FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

Daemon::Daemon(DaemonOptions options) : o_(std::move(options)) {}

Daemon::~Daemon() {
  if (!running()) return;
  if (Status s = Stop(); !s.ok()) Log("[elle run] stopping the daemon: " + s.ToString());
  if (running()) {
    if (Status s = Kill(); !s.ok()) Log("[elle run] killing the daemon: " + s.ToString());
  }
}

void Daemon::Log(const std::string& line) const {
  if (o_.log.empty()) return;
  std::ofstream out(o_.log, std::ios::app);
  out << line << "\n";
}

Status Daemon::Start() {
  if (running()) return Status::Invalid("the daemon is already running");
  if (IsMountPoint(o_.mount)) return Status::Busy(o_.mount + " is already a mount point");
  // Everything the child needs is prepared before fork: between fork and
  // exec it may only make async-signal-safe calls (other threads exist).
  std::vector<std::string> args = {o_.mount_bin, o_.volume, o_.mount, "-f"};
  if (!o_.options.empty()) {
    args.push_back("-o");
    args.push_back(o_.options);
  }
  std::string cmdline = "$";
  for (const auto& a : args) cmdline += " " + a;
  Log("[elle run] " + cmdline);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log = o_.log.empty() ? std::string("/dev/null") : o_.log;
  const int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) return Status::FromErrno(errno, "open " + log);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(logfd);
    return Status::FromErrno(err, "fork");
  }
  if (pid == 0) {
    // If the runner dies, SIGTERM makes the daemon unmount and exit.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(126);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, STDIN_FILENO);
    ::dup2(logfd, STDOUT_FILENO);
    ::dup2(logfd, STDERR_FILENO);
    ::close_range(3, ~0U, 0);  // the history file, client sockets, ...
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(logfd);
  pid_ = pid;
  int st = 0;
  bool exited = false;
  const bool up = WaitFor(
      [&] {
        if (IsMountPoint(o_.mount)) return true;
        exited = ::waitpid(pid_, &st, WNOHANG) == pid_;
        return exited;
      },
      o_.start_timeout);
  if (exited) {
    pid_ = -1;
    (void)ClearStaleMount();
    return Status::IOError(o_.mount_bin + " exited before the mount was live (" +
                           DescribeStatus(st) + "); see " + log);
  }
  if (!up) {
    ::kill(pid_, SIGKILL);
    (void)WaitPid(pid_, milliseconds(30000), nullptr);
    pid_ = -1;
    (void)ClearStaleMount();
    return Status::IOError("the mount did not appear within " +
                           std::to_string(o_.start_timeout.count()) + " ms; see " + log);
  }
  Log("[elle run] dbfs-mount pid " + std::to_string(pid_) + " serves " + o_.mount);
  return Status::Ok();
}

Status Daemon::Kill() {
  if (!running()) return Status::Invalid("the daemon is not running");
  Log("[elle run] SIGKILL dbfs-mount pid " + std::to_string(pid_));
  ::kill(pid_, SIGKILL);
  if (!WaitPid(pid_, milliseconds(30000), nullptr)) {
    return Status::IOError("dbfs-mount pid " + std::to_string(pid_) +
                           " did not die within 30 s of SIGKILL");
  }
  pid_ = -1;
  return ClearStaleMount();
}

Status Daemon::ClearStaleMount() {
  if (!IsMountPoint(o_.mount)) return Status::Ok();
  // The dead daemon's connection is aborted; the mount stays until removed.
  int rc = RunTool({"fusermount3", "-u", o_.mount}, o_.log, milliseconds(10000));
  Log("[elle run] fusermount3 -u " + o_.mount + " -> " + std::to_string(rc));
  if (IsMountPoint(o_.mount)) {
    // Only after a killed daemon: something still holds the dead mount busy.
    rc = RunTool({"umount", "-l", o_.mount}, o_.log, milliseconds(10000));
    Log("[elle run] umount -l " + o_.mount + " -> " + std::to_string(rc));
  }
  if (!WaitFor([&] { return !IsMountPoint(o_.mount); }, milliseconds(10000))) {
    return Status::IOError("could not clear the stale mount at " + o_.mount);
  }
  return Status::Ok();
}

Status Daemon::Stop() {
  if (!running()) return Status::Invalid("the daemon is not running");
  // EBUSY can be transient (a just-closed file being released): retry, bounded.
  int rc = -1;
  WaitFor(
      [&] {
        rc = RunTool({"fusermount3", "-u", o_.mount}, o_.log, milliseconds(30000));
        return rc == 0 || !IsMountPoint(o_.mount);
      },
      milliseconds(10000), milliseconds(100));
  Log("[elle run] fusermount3 -u " + o_.mount + " -> " + std::to_string(rc));
  if (IsMountPoint(o_.mount)) return Status::Busy("fusermount3 -u " + o_.mount + " failed");
  int st = 0;
  if (!WaitPid(pid_, o_.stop_timeout, &st)) {
    ::kill(pid_, SIGKILL);
    (void)WaitPid(pid_, milliseconds(30000), nullptr);
    pid_ = -1;
    return Status::IOError("dbfs-mount did not exit within " +
                           std::to_string(o_.stop_timeout.count()) + " ms of the unmount");
  }
  pid_ = -1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    return Status::IOError("dbfs-mount did not exit cleanly after the unmount (" +
                           DescribeStatus(st) + ")");
  }
  return Status::Ok();
}

}  // namespace dbfs::elle
