#include "wal/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace dbfs::wal {

Status File::PWriteV(uint64_t off, const std::string_view* pieces, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    DBFS_RETURN_IF_ERROR(PWrite(off, pieces[i].data(), pieces[i].size()));
    off += pieces[i].size();
  }
  return Status::Ok();
}

std::string ParentDir(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

namespace {

// Owns a file descriptor.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    // close() errors are ignored on purpose: durability is established by
    // fdatasync/fsync before this point, never by close.
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  Status PWrite(uint64_t off, const void* data, size_t n) override {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_.get(), p, n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pwrite " + path_);
      }
      if (w == 0) return Status::IOError("pwrite " + path_ + ": wrote nothing");
      p += w;
      off += static_cast<uint64_t>(w);
      n -= static_cast<size_t>(w);
    }
    return Status::Ok();
  }

  Status PWriteV(uint64_t off, const std::string_view* pieces, size_t count) override {
    constexpr size_t kStackIov = 16;
    iovec stack_iov[kStackIov];
    std::vector<iovec> heap_iov;
    iovec* iov = stack_iov;
    if (count > kStackIov) {
      heap_iov.resize(count);
      iov = heap_iov.data();
    }
    size_t cnt = 0;
    for (size_t i = 0; i < count; ++i) {
      if (pieces[i].empty()) continue;
      iov[cnt].iov_base = const_cast<char*>(pieces[i].data());
      iov[cnt].iov_len = pieces[i].size();
      ++cnt;
    }
    size_t idx = 0;
    while (idx < cnt) {
      const int batch = static_cast<int>(std::min<size_t>(cnt - idx, IOV_MAX));
      const ssize_t w = ::pwritev(fd_.get(), iov + idx, batch, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pwritev " + path_);
      }
      if (w == 0) return Status::IOError("pwritev " + path_ + ": wrote nothing");
      off += static_cast<uint64_t>(w);
      // Skip what was written; a short write leaves a partial iovec.
      size_t left = static_cast<size_t>(w);
      while (idx < cnt && left >= iov[idx].iov_len) {
        left -= iov[idx].iov_len;
        ++idx;
      }
      if (left > 0) {
        iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + left;
        iov[idx].iov_len -= left;
      }
    }
    return Status::Ok();
  }

  Status PRead(uint64_t off, void* buf, size_t n, size_t* got) override {
    char* p = static_cast<char*>(buf);
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_.get(), p + done, n - done, static_cast<off_t>(off + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        *got = done;
        return Status::FromErrno(errno, "pread " + path_);
      }
      if (r == 0) break;  // end of file
      done += static_cast<size_t>(r);
    }
    *got = done;
    return Status::Ok();
  }

  Status Sync() override {
    // EINTR means the call was interrupted before it did its work; any other
    // error is returned and never retried (the kernel may have dropped the
    // dirty pages, so a retry could falsely succeed).
    int rc;
    do {
      rc = ::fdatasync(fd_.get());
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return Status::FromErrno(errno, "fdatasync " + path_);
    return Status::Ok();
  }

  Status Truncate(uint64_t size) override {
    int rc;
    do {
      rc = ::ftruncate(fd_.get(), static_cast<off_t>(size));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return Status::FromErrno(errno, "ftruncate " + path_);
    return Status::Ok();
  }

  Result<uint64_t> Size() override {
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0) return Status::FromErrno(errno, "fstat " + path_);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  ScopedFd fd_;
  const std::string path_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> Open(const std::string& path, int flags) override {
    int oflags = O_CLOEXEC | ((flags & kReadOnly) ? O_RDONLY : O_RDWR);
    if (flags & kCreate) oflags |= O_CREAT;
    int fd;
    do {
      fd = ::open(path.c_str(), oflags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return Status::FromErrno(errno, "open " + path);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
    if (!d) return Status::FromErrno(errno, "opendir " + dir);
    std::vector<std::string> names;
    while (true) {
      errno = 0;
      const dirent* e = ::readdir(d.get());
      if (e == nullptr) {
        if (errno != 0) return Status::FromErrno(errno, "readdir " + dir);
        break;
      }
      const std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    return names;
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Status::FromErrno(errno, "unlink " + path);
    return Status::Ok();
  }

  Status SyncDir(const std::string& dir) override {
    int fd;
    do {
      fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return Status::FromErrno(errno, "open directory " + dir);
    ScopedFd guard(fd);
    int rc;
    do {
      rc = ::fsync(fd);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return Status::FromErrno(errno, "fsync directory " + dir);
    return Status::Ok();
  }

  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) == 0) return Status::Ok();
    const int err = errno;
    if (err == EEXIST) {
      struct stat st;
      if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
      return Status::FromErrno(ENOTDIR, "mkdir " + dir);
    }
    return Status::FromErrno(err, "mkdir " + dir);
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
};

}  // namespace

FileSystem* DefaultFileSystem() {
  // Never destroyed: files may be used from static destructors of other layers.
  static FileSystem* const fs = new PosixFileSystem();
  return fs;
}

}  // namespace dbfs::wal
