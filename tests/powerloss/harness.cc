#include "tests/powerloss/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/integration/mount_fixture.h"

#ifndef PLFS_BIN
#define PLFS_BIN ""
#endif

namespace dbfs::powerloss {

using dbfs::testing::IsMounted;
using dbfs::testing::RunCommand;
using dbfs::testing::WaitFor;
using dbfs::testing::WaitPid;
using std::chrono::milliseconds;

namespace {
constexpr milliseconds kMountTimeout{10000};
constexpr milliseconds kExitTimeout{30000};
}  // namespace

std::string PlfsBinary() {
  const char* v = getenv("PLFS_BIN");
  return (v && *v) ? v : PLFS_BIN;
}

void AppendFile(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = write(fd, text.data(), text.size());  // best effort: a log
  (void)ignored;
  close(fd);
}

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

std::string StatusString(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* n = sigabbrev_np(WTERMSIG(status));
    return "signal " + std::to_string(WTERMSIG(status)) + " (SIG" + (n ? n : "?") + ")";
  }
  return "status " + std::to_string(status);
}

std::unique_ptr<Daemon> Daemon::Start(const std::string& name, const std::vector<std::string>& argv,
                                      const std::string& mnt, const std::string& log,
                                      std::string* error) {
  return Spawn(name, argv, mnt, log, true, error);
}

std::unique_ptr<Daemon> Daemon::StartNoWait(const std::string& name,
                                            const std::vector<std::string>& argv,
                                            const std::string& mnt, const std::string& log,
                                            std::string* error) {
  return Spawn(name, argv, mnt, log, false, error);
}

std::unique_ptr<Daemon> Daemon::Spawn(const std::string& name, const std::vector<std::string>& argv,
                                      const std::string& mnt, const std::string& log,
                                      bool wait_mounted, std::string* error) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->name_ = name;
  d->mnt_ = mnt;
  d->log_ = log;
  std::string line = "$";
  for (const auto& a : argv) line += " " + a;
  AppendFile(log, line + "\n");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int logfd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) {
    *error = "open " + log + ": " + strerror(errno);
    return nullptr;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    close(logfd);
    return nullptr;
  }
  if (pid == 0) {
    // If the test dies (ctest timeout), the daemon unmounts and exits.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execv(args[0], args.data());
    _exit(127);
  }
  close(logfd);
  d->pid_ = pid;
  if (!wait_mounted) return d;
  bool exited = false;
  bool up = WaitFor(
      [&] {
        if (IsMounted(mnt)) return true;
        pid_t r = waitpid(pid, &d->status_, WNOHANG);
        if (r == pid) exited = true;
        return exited;
      },
      kMountTimeout);
  if (exited) {
    d->reaped_ = true;
    *error = name + " exited before the mount was live (" + StatusString(d->status_) + ")";
    (void)d->ClearMount(error);
    return nullptr;
  }
  if (!up) {
    *error =
        name + ": mount did not appear within " + std::to_string(kMountTimeout.count()) + " ms";
    int st;
    std::string e2;
    (void)d->Kill(&st, &e2);
    return nullptr;
  }
  return d;
}

Daemon::~Daemon() {
  if (pid_ > 0 && !reaped_) {
    std::string err;
    if (!Unmount(&err)) std::cerr << name_ << ": " << err << "\n";
  } else if (IsMounted(mnt_)) {
    std::string err;
    (void)ClearMount(&err);
  }
}

bool Daemon::Exited(int* status) {
  if (reaped_) {
    if (status) *status = status_;
    return true;
  }
  pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    if (status) *status = status_;
    return true;
  }
  return false;
}

bool Daemon::ClearMount(std::string* error) {
  if (!IsMounted(mnt_)) return true;
  std::string out;
  int rc = RunCommand({"fusermount3", "-u", mnt_}, milliseconds(10000), &out);
  AppendFile(log_, "$ fusermount3 -u " + mnt_ + " -> " + std::to_string(rc) + "\n" + out);
  if (IsMounted(mnt_)) {
    rc = RunCommand({"umount", "-l", mnt_}, milliseconds(10000), &out);
    AppendFile(log_, "$ umount -l " + mnt_ + " -> " + std::to_string(rc) + "\n" + out);
  }
  if (IsMounted(mnt_)) {
    *error += "could not clear the mount " + mnt_ + "\n";
    return false;
  }
  return true;
}

bool Daemon::Kill(int* status, std::string* error) {
  if (!reaped_ && pid_ > 0) {
    AppendFile(log_, "[harness] SIGKILL " + name_ + " pid " + std::to_string(pid_) + "\n");
    kill(pid_, SIGKILL);
    if (!WaitPid(pid_, kExitTimeout, &status_)) {
      *error += name_ + " pid " + std::to_string(pid_) + " did not die after SIGKILL\n";
      return false;
    }
    reaped_ = true;
  }
  if (status) *status = status_;
  return ClearMount(error);
}

bool Daemon::Unmount(std::string* error) {
  if (reaped_) {
    bool ok = ClearMount(error);
    return ok && WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
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
  AppendFile(log_, "$ fusermount3 -u " + mnt_ + " -> " + std::to_string(rc) + "\n" + out);
  if (IsMounted(mnt_)) {
    *error += name_ + ": fusermount3 -u failed (" + std::to_string(rc) + "): " + out;
    int st;
    (void)Kill(&st, error);
    return false;
  }
  if (!WaitPid(pid_, kExitTimeout, &status_)) {
    *error += name_ + " did not exit within " + std::to_string(kExitTimeout.count()) +
              " ms after unmount\n";
    int st;
    (void)Kill(&st, error);
    return false;
  }
  reaped_ = true;
  if (!WIFEXITED(status_) || WEXITSTATUS(status_) != 0) {
    *error += name_ + " did not exit cleanly after unmount: " + StatusString(status_) + "\n";
    return false;
  }
  return true;
}

bool PlfsCtl(const std::string& mnt, const std::string& command, std::string* reply) {
  std::string path = mnt + "/.plfs_ctl";
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *reply = "open " + path + ": " + strerror(errno);
    return false;
  }
  std::string line = command + "\n";
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    *reply = "write " + path + ": " + strerror(errno);
    close(fd);
    return false;
  }
  reply->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply->append(buf, n);
  }
  close(fd);
  return reply->rfind("error", 0) != 0;
}

}  // namespace dbfs::powerloss
