#include "mvcc/volume_lock.h"

#include <cstdio>

#include <filesystem>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

namespace dbfs {
namespace {

// A holder that has just taken the lock writes its pid a moment later, and a
// Holder() probe holds LOCK_SH for a moment; retry for up to ~20 ms before
// reporting Busy, so neither window produces a wrong or spurious answer.
constexpr int kBusyRetries = 20;
constexpr auto kBusyRetryDelay = std::chrono::milliseconds(1);

std::string LockPath(const std::string& volume_dir) {
  std::string p = volume_dir;
  if (p.empty() || p.back() != '/') p += '/';
  return p + kVolumeLockFileName;
}

// Reads the whole (small) lock file from offset 0.
std::string ReadContent(int fd) {
  char buf[256];
  ssize_t n;
  do {
    n = ::pread(fd, buf, sizeof(buf), 0);
  } while (n < 0 && errno == EINTR);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// "1234 dbfs-mount\n" -> "pid 1234 (dbfs-mount)"; nullopt if not of that form
// (empty: the holder has not written it yet).
std::optional<std::string> Describe(std::string_view content) {
  const size_t nl = content.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;  // not completely written yet
  content = content.substr(0, nl);
  const size_t sp = content.find(' ');
  const std::string_view pid = content.substr(0, sp);
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  std::string d = "pid " + std::string(pid);
  if (sp != std::string_view::npos && sp + 1 < content.size()) {
    d += " (" + std::string(content.substr(sp + 1)) + ")";
  }
  return d;
}

int OpenNoIntr(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int FlockNoIntr(int fd, int op) {
  int r;
  do {
    r = ::flock(fd, op);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

Result<VolumeLock> VolumeLock::Acquire(const std::string& volume_dir, std::string_view holder,
                                       bool read_only) {
  const std::string path = LockPath(volume_dir);
  bool writable = !read_only;
  int fd = read_only ? OpenNoIntr(path.c_str(), O_RDONLY | O_CLOEXEC)
                     : OpenNoIntr(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == EROFS || errno == EACCES)) {
    // Read-only volume (fsck -n on a read-only mount): flock works on any fd.
    const int open_err = errno;
    writable = false;
    fd = OpenNoIntr(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(open_err, "open " + path);
  }
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  VolumeLock lock(fd, volume_dir);  // closes fd on every return below
  lock.recorded_ = writable;

  std::optional<std::string> who;
  for (int attempt = 0;; ++attempt) {
    if (FlockNoIntr(fd, LOCK_EX | LOCK_NB) == 0) break;
    if (errno != EWOULDBLOCK) return Status::FromErrno(errno, "flock " + path);
    who = Describe(ReadContent(fd));
    if (who.has_value() || attempt + 1 >= kBusyRetries) {
      // Busy is final once we know who holds it (or have waited long enough).
      // Do not let the destructor truncate a file whose lock we do not hold.
      ::close(lock.fd_);
      lock.fd_ = -1;
      return Status::Busy("volume " + volume_dir + " is in use by " +
                          who.value_or("another process") + "; unmount it first");
    }
    std::this_thread::sleep_for(kBusyRetryDelay);
  }

  if (writable) {
    // Not synced: the content is only a hint, and after a crash the kernel has
    // dropped the lock anyway, so a stale pid in the file means nothing.
    const std::string content = std::to_string(::getpid()) + " " + std::string(holder) + "\n";
    if (::ftruncate(fd, 0) != 0) return Status::FromErrno(errno, "truncate " + path);
    ssize_t n;
    do {
      n = ::pwrite(fd, content.data(), content.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Status::FromErrno(errno, "write " + path);
    if (static_cast<size_t>(n) != content.size()) {
      return Status::IOError("short write to " + path);
    }
  }
  return lock;
}

Result<std::optional<std::string>> VolumeLock::Holder(const std::string& volume_dir) {
  const std::string path = LockPath(volume_dir);
  int fd = OpenNoIntr(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Nobody ever locked it (Acquire creates the file), so nobody holds it.
    if (errno == ENOENT) return std::optional<std::string>();
    return Status::FromErrno(errno, "open " + path);
  }
  Status s;
  std::optional<std::string> who;
  if (FlockNoIntr(fd, LOCK_SH | LOCK_NB) == 0) {
    // Free: our momentary shared lock is dropped by close() below.
  } else if (errno == EWOULDBLOCK) {
    who = Describe(ReadContent(fd)).value_or("another process");
  } else {
    s = Status::FromErrno(errno, "flock " + path);
  }
  ::close(fd);
  if (!s.ok()) return s;
  return who;
}

VolumeLock::VolumeLock(VolumeLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      recorded_(other.recorded_),
      volume_dir_(std::move(other.volume_dir_)) {}

VolumeLock& VolumeLock::operator=(VolumeLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = std::exchange(other.fd_, -1);
    recorded_ = other.recorded_;
    volume_dir_ = std::move(other.volume_dir_);
  }
  return *this;
}

VolumeLock::~VolumeLock() { Release(); }

void VolumeLock::Release() {
  if (fd_ < 0) return;
  // Best effort: clear the hint while we still hold the lock, so nobody reads
  // our pid after we are gone. Failure is harmless (read-only fd, EIO).
  if (recorded_ && ::ftruncate(fd_, 0) != 0) {
    // Ignored on purpose: the lock itself is released by close() regardless.
  }
  ::close(fd_);  // drops the flock (unless a forked child shares the description)
  fd_ = -1;
}

namespace {
// The lock file starts with "PID holder" (see Acquire).
bool HeldByThisProcess(const std::string& volume_dir) {
  FILE* f = fopen((volume_dir + "/lock").c_str(), "re");
  if (!f) return false;
  long pid = 0;
  const bool parsed = fscanf(f, "%ld", &pid) == 1;
  fclose(f);
  return parsed && pid == static_cast<long>(getpid());
}
}  // namespace

bool VolumeLock::IsMounted(const std::string& volume_dir) {
  std::error_code ec;
  const std::string canon = "dbfs:" + std::filesystem::weakly_canonical(volume_dir, ec).string();
  const std::string plain = "dbfs:" + volume_dir;
  FILE* f = fopen("/proc/mounts", "re");
  if (!f) return false;
  char line[4096];
  bool found = false;
  while (!found && fgets(line, sizeof(line), f)) {
    std::string_view l(line);
    std::string_view fsname = l.substr(0, l.find(' '));
    found = fsname == canon || fsname == plain;
  }
  fclose(f);
  return found;
}

Result<VolumeLock> VolumeLock::AcquireWhenUnmounted(const std::string& volume_dir,
                                                    std::string_view holder,
                                                    std::chrono::milliseconds timeout,
                                                    bool read_only) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto lock = Acquire(volume_dir, holder, read_only);
    if (lock.ok() || lock.status().code() != Code::kBusy || IsMounted(volume_dir) ||
        HeldByThisProcess(volume_dir) || std::chrono::steady_clock::now() > deadline) {
      return lock;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace dbfs
