// Small helpers shared by the POSIX integration tests.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"

// Asserts that a syscall-like expression did not return -1.
#define ASSERT_SYS(expr)                                                          \
  ASSERT_NE(-1, (expr)) << #expr << " failed: " << strerrorname_np(errno) << " (" \
                        << strerror(errno) << ")"
#define EXPECT_SYS(expr)                                                          \
  EXPECT_NE(-1, (expr)) << #expr << " failed: " << strerrorname_np(errno) << " (" \
                        << strerror(errno) << ")"

// Expects expr to fail with -1 and errno == err.
#define EXPECT_ERRNO(err, expr)                                                               \
  do {                                                                                        \
    errno = 0;                                                                                \
    long dbfs_r_ = static_cast<long>(expr);                                                   \
    int dbfs_e_ = errno;                                                                      \
    EXPECT_EQ(-1L, dbfs_r_) << #expr << ": expected failure with " << strerrorname_np(err);   \
    if (dbfs_r_ == -1) {                                                                      \
      EXPECT_EQ(err, dbfs_e_) << #expr << ": expected " << strerrorname_np(err) << ", got "   \
                              << (strerrorname_np(dbfs_e_) ? strerrorname_np(dbfs_e_) : "?"); \
    }                                                                                         \
  } while (0)

namespace dbfs::testing {

inline const char* ErrName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "?";
}

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  operator int() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

inline struct stat StatOf(const std::string& p) {
  struct stat st {};
  if (stat(p.c_str(), &st) != 0) {
    ADD_FAILURE() << "stat(" << p << "): " << ErrName(errno);
  }
  return st;
}

inline struct stat LStatOf(const std::string& p) {
  struct stat st {};
  if (lstat(p.c_str(), &st) != 0) {
    ADD_FAILURE() << "lstat(" << p << "): " << ErrName(errno);
  }
  return st;
}

inline struct stat FStatOf(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) ADD_FAILURE() << "fstat: " << ErrName(errno);
  return st;
}

inline bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

// Names in a directory (without "." and ".."), in readdir order; duplicates kept.
inline std::vector<std::string> ListDir(const std::string& p) {
  std::vector<std::string> names;
  DIR* d = opendir(p.c_str());
  if (!d) {
    ADD_FAILURE() << "opendir(" << p << "): " << ErrName(errno);
    return names;
  }
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}

inline std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

inline std::string PRead(int fd, size_t n, off_t off) {
  std::string s(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, s.data() + got, n - got, off + got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      ADD_FAILURE() << "pread: " << ErrName(errno);
      break;
    }
    if (r == 0) break;
    got += r;
  }
  s.resize(got);
  return s;
}

inline bool PWriteAll(int fd, const std::string& data, off_t off) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = pwrite(fd, data.data() + done, data.size() - done, off + done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += r;
  }
  return true;
}

inline bool AllZero(const std::string& s) { return s.find_first_not_of('\0') == std::string::npos; }

// Sets atime/mtime of p to fixed old values (so later updates are visible).
inline void SetOldTimes(const std::string& p, time_t atime = 1000000000,
                        time_t mtime = 1000000000) {
  struct timespec ts[2] = {{atime, 0}, {mtime, 0}};
  if (utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    ADD_FAILURE() << "utimensat(" << p << "): " << ErrName(errno);
  }
}

// True if |t - now| is within slack_s seconds.
inline bool NearNow(const struct timespec& t, int slack_s = 10) {
  struct timespec n = Now();
  long long d = static_cast<long long>(n.tv_sec) - t.tv_sec;
  return d >= -slack_s && d <= slack_s;
}

}  // namespace dbfs::testing
