// plfs: a pass-through FUSE file system that simulates a volatile disk cache,
// for power-loss tests (docs/powerloss.md).
//
//   plfs BACKING_DIR MOUNTPOINT [-f] [-d] [-o fuse_options]
//
// Everything a program writes through the mount is kept in memory until the
// program makes it durable the way POSIX says it must:
//
// * File data (write, truncate, fallocate, and mmap stores, which reach us as
//   writes) is a per-inode list of pending operations, applied to the backing
//   file only by fsync/fdatasync of that file (msync and O_SYNC/O_DSYNC writes
//   reach us as fsync too). Reads return the backing bytes with the pending
//   operations applied, so the program sees its own writes, also through mmap.
// * Namespace operations (create, mkdir, mknod, symlink, link, unlink, rmdir,
//   rename) are applied to the backing directory at once, so lookups are plain
//   pass-through, but each is also appended to an ordered journal with what
//   it takes to undo it (an unlinked or replaced entry is parked in
//   BACKING/.plfs_stash until the operation is durable). fsync of directory D
//   makes durable every journaled operation that touched D and every
//   operation before it (a journaling file system commits its metadata in
//   order). fsync of a file does not make its directory entry durable.
// * Attribute changes (chmod, chown, utimens, xattrs) are applied at once and
//   treated as durable: nothing we test depends on them.
//
// Control: the virtual file /.plfs_ctl in the mount root. Write one command
// line to it, then read the reply from the same open file:
//
//   cut SEED MODE  simulate a power cut now. MODE says what survives of the
//                  pending state: `drop` nothing; `prefix` a random prefix of
//                  each file's pending operations and of the namespace
//                  journal; `random` a random subset of each pending write's
//                  4 KiB pages (and of pending truncates), applied in order,
//                  and a random prefix of the namespace journal. The survivor
//                  state is written to the backing directory; from then on
//                  every operation fails with EIO. Unmount next.
//   sync           make everything durable (what sync(1)/syncfs(2) would do:
//                  the kernel does not forward those to a FUSE file system).
//   failsync K MATCH [hold]
//                  the next K file syncs (fsync, fdatasync, O_SYNC/O_DSYNC
//                  writes) of files whose path (as opened) contains MATCH
//                  fail with EIO, the way Linux reports a failed writeback:
//                  the operations that were pending when the sync began are
//                  lost (never written, and a cut does not keep them) but
//                  stay readable, as clean pages of the page cache do after
//                  the error. With `hold` (needs --mt) the failing sync
//                  waits for `release` (at most 60 s) before it fails, so
//                  the program can pile up behind it. K = 0 disarms.
//   release        ends every held sync (they fail now).
//   stats          pending files/ops/bytes, namespace ops, sync counts,
//                  held and failed syncs.
//
// A clean unmount without a cut makes everything durable (a clean shutdown).
// Handlers run under one mutex, and the FUSE loop is single-threaded (-s)
// unless --mt is given (then a held sync waits without the mutex, and other
// requests are served meanwhile).
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <fcntl.h>
#include <fuse.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace plfs {
namespace {

constexpr uint64_t kPage = 4096;
constexpr const char* kCtlName = ".plfs_ctl";
constexpr const char* kStashName = ".plfs_stash";

// ---- pending file data ----

struct PendingOp {
  enum Kind { kWrite, kTruncate } kind = kWrite;
  uint64_t off = 0;  // write offset, or the new size for kTruncate
  std::string data;  // kWrite only
};

using InodeKey = std::pair<dev_t, ino_t>;

// The un-synced state of one backing inode.
struct FileState {
  uint64_t seq = 0;    // creation order: deterministic use of the cut's RNG
  int fd = -1;         // O_RDWR on the backing inode; pins it (no inode reuse)
  uint64_t size = 0;   // size with every pending op applied
  uint64_t floor = 0;  // bytes at or past floor that are not in `shadow` read as zeros
  std::map<uint64_t, std::string> shadow;  // page index -> its current 4 KiB
  std::vector<PendingOp> ops;
  uint64_t pending_bytes = 0;
};

// ---- the namespace journal ----

struct NsOp {
  enum Kind {
    kCreated,   // a (file, symlink, node, hard link) was created: undo unlinks it
    kMkdir,     // undo removes the directory
    kRemoved,   // a was moved to stash (unlink/rmdir): undo moves it back
    kRenamed,   // a -> b, b did not exist: undo renames back
    kReplaced,  // a -> b, the old b was moved to stash first
    kExchanged  // RENAME_EXCHANGE a <-> b
  } kind = kCreated;
  std::string a, b, stash;
  bool dir = false;  // stash holds a directory
  // The directories whose entries the op changed (parents of a and b),
  // identified by inode: a directory may be renamed after the op.
  std::vector<std::pair<dev_t, ino_t>> dirs;
};

NsOp Ns(NsOp::Kind kind, std::string a, std::string b, std::string stash, bool dir) {
  NsOp op;
  op.kind = kind;
  op.a = std::move(a);
  op.b = std::move(b);
  op.stash = std::move(stash);
  op.dir = dir;
  return op;
}

// "a/b" -> "a"; "a" -> ".".
std::string Parent(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? "." : rel.substr(0, p);
}

// An open file or directory.
struct Handle {
  int fd = -1;
  InodeKey key{};
  std::string rel;    // path at open, relative to the root (failsync matches it)
  bool sync = false;  // O_SYNC/O_DSYNC: every write is durable when it returns
  bool ctl = false;
  std::string ctl_in, ctl_out;  // control file: pending command, last reply
  size_t ctl_read = 0;          // how much of ctl_out was read
  DIR* dir = nullptr;
  bool root = false;  // the mount root (directory handles)
};

Handle* H(fuse_file_info* fi) { return fi ? reinterpret_cast<Handle*>(fi->fh) : nullptr; }

// "/a/b" -> "a/b"; "/" -> ".".
std::string Rel(const char* path) {
  while (*path == '/') ++path;
  return *path ? std::string(path) : std::string(".");
}
bool IsCtl(const char* path) { return path && Rel(path) == kCtlName; }
bool IsHidden(const char* path) {
  if (!path) return false;
  std::string r = Rel(path);
  return r == kStashName || r.rfind(std::string(kStashName) + "/", 0) == 0;
}

ssize_t PReadFull(int fd, char* buf, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += r;
  }
  return static_cast<ssize_t>(done);
}

bool PWriteFull(int fd, const char* buf, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pwrite(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += r;
  }
  return true;
}

class Plfs {
 public:
  std::mutex mu;  // guards everything; every handler holds it

  bool Init(const std::string& backing, std::string* err) {
    root_ = open(backing.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_ < 0) {
      *err = "open " + backing + ": " + strerror(errno);
      return false;
    }
    ClearStash();  // a leftover (plfs killed) holds nothing anybody can reach
    if (mkdirat(root_, kStashName, 0700) != 0) {
      *err = std::string("mkdir ") + kStashName + ": " + strerror(errno);
      return false;
    }
    return true;
  }

  int root() const { return root_; }
  bool cut() const { return cut_; }
  void set_multithreaded(bool mt) { mt_ = mt; }

  // ---- file data ----

  FileState* Find(const InodeKey& k) {
    auto it = files_.find(k);
    return it == files_.end() ? nullptr : &it->second;
  }

  // The pending state of inode k, created on first use; any_fd is any open fd
  // of the inode. Null (errno set) if the inode cannot be reopened.
  FileState* Ensure(const InodeKey& k, int any_fd) {
    if (FileState* f = Find(k)) return f;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", any_fd);
    int fd = open(proc, O_RDWR | O_CLOEXEC);
    if (fd < 0) return nullptr;
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      errno = e;
      return nullptr;
    }
    FileState& f = files_[k];
    f.seq = ++seq_;
    f.fd = fd;
    f.size = f.floor = static_cast<uint64_t>(st.st_size);
    return &f;
  }

  uint64_t SizeOf(const InodeKey& k, uint64_t backing_size) {
    FileState* f = Find(k);
    return f ? f->size : backing_size;
  }

  // Reads n bytes at off of the merged view into buf; returns bytes read.
  ssize_t Read(const Handle& h, char* buf, size_t n, uint64_t off) {
    ++reads_;
    FileState* f = Find(h.key);
    if (!f) {
      ssize_t r = PReadFull(h.fd, buf, n, off);
      return r < 0 ? -errno : r;
    }
    if (off >= f->size) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, f->size - off));
    size_t done = 0;
    while (done < n) {
      uint64_t pos = off + done;
      uint64_t page = pos / kPage, in = pos % kPage;
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(kPage - in, n - done));
      auto it = f->shadow.find(page);
      if (it != f->shadow.end()) {
        memcpy(buf + done, it->second.data() + in, chunk);
      } else if (int e = ReadUnder(*f, buf + done, chunk, pos); e != 0) {
        return -e;
      }
      done += chunk;
    }
    return static_cast<ssize_t>(n);
  }

  // `lock` (holding mu) lets a failing O_SYNC write be held; may be null.
  int Write(const Handle& h, const char* buf, size_t n, uint64_t off,
            std::unique_lock<std::mutex>* lock = nullptr) {
    FileState* f = Ensure(h.key, h.fd);
    if (!f) return -errno;
    PendingOp op;
    op.kind = PendingOp::kWrite;
    op.off = off;
    op.data.assign(buf, n);
    if (int e = Apply(f, op); e != 0) return -e;
    f->pending_bytes += n;
    f->ops.push_back(std::move(op));
    ++writes_;
    if (h.sync) {
      if (int e = SyncFile(h, lock); e != 0) return -e;
    }
    return static_cast<int>(n);
  }

  int Truncate(const InodeKey& k, int any_fd, uint64_t size) {
    FileState* f = Ensure(k, any_fd);
    if (!f) return -errno;
    PendingOp op;
    op.kind = PendingOp::kTruncate;
    op.off = size;
    if (int e = Apply(f, op); e != 0) return -e;
    f->ops.push_back(std::move(op));
    return 0;
  }

  // Zeroes [off, off + len) (as a pending write of zeros), extending the
  // file if `extend`.
  int ZeroRange(const InodeKey& k, int any_fd, uint64_t off, uint64_t len, bool extend) {
    FileState* f = Ensure(k, any_fd);
    if (!f) return -errno;
    uint64_t end = extend ? off + len : std::min(off + len, f->size);
    if (end <= off) return 0;
    if (end - off > (uint64_t{1} << 30)) return -EOPNOTSUPP;  // keep memory bounded
    Handle h;
    h.fd = f->fd;
    h.key = k;
    std::string zeros(static_cast<size_t>(end - off), '\0');
    int r = Write(h, zeros.data(), zeros.size(), off);
    return r < 0 ? r : 0;
  }

  // fsync/fdatasync of the file open as h: applies the pending ops of its
  // inode to the backing file, unless an injected failure (failsync) is
  // armed for it. `lock` holds mu; it is what a held sync waits with (null:
  // no hold possible).
  int SyncFile(const Handle& h, std::unique_lock<std::mutex>* lock) {
    ++file_syncs_;
    if (lock) {
      // The writeback of one inode is not reentrant: a sync of an inode
      // whose failing sync is being held waits for it to end.
      cv_.wait(*lock, [&] { return cut_ || held_keys_.count(h.key) == 0; });
      if (cut_) return EIO;
    }
    if (fail_left_ > 0 && h.rel.find(fail_match_) != std::string::npos) {
      --fail_left_;
      return FailSync(h, lock);
    }
    return ApplyPending(h.key);
  }

  // The pending ops of inode k reach its backing file.
  int ApplyPending(const InodeKey& k) {
    auto it = files_.find(k);
    if (it == files_.end()) return 0;
    FileState& f = it->second;
    for (const PendingOp& op : f.ops) {
      if (int e = ApplyToBacking(f.fd, op, 0, op.data.size()); e != 0) return e;
      synced_bytes_ += op.data.size();
    }
    close(f.fd);
    files_.erase(it);
    return 0;
  }

  // ---- namespace ----

  // Appends op, which changed entries of the parents of op.a and op.b.
  void Journal(NsOp op) {
    ++ns_total_;
    for (const std::string* p : {&op.a, &op.b}) {
      if (p->empty()) continue;
      struct stat st;
      if (fstatat(root_, Parent(*p).c_str(), &st, 0) == 0)
        op.dirs.emplace_back(st.st_dev, st.st_ino);
    }
    ns_.push_back(std::move(op));
  }
  std::string NewStash() { return std::string(kStashName) + "/" + std::to_string(++stash_seq_); }

  // fsync of directory `dir`: makes durable every journaled op up to the
  // last one that changed an entry of `dir`.
  void SyncDir(const InodeKey& dir) {
    ++dir_syncs_;
    size_t last = 0;
    for (size_t i = 0; i < ns_.size(); ++i) {
      const NsOp& o = ns_[i];
      if (std::find(o.dirs.begin(), o.dirs.end(), dir) != o.dirs.end()) last = i + 1;
    }
    for (size_t i = 0; i < last; ++i) {
      Commit(ns_.front());
      ns_.pop_front();
    }
  }

  void SyncAll() {
    while (!files_.empty()) {
      if (int e = ApplyPending(files_.begin()->first); e != 0) {
        fprintf(stderr, "plfs: sync failed: %s\n", strerror(e));
        close(files_.begin()->second.fd);
        files_.erase(files_.begin());
      }
    }
    while (!ns_.empty()) {
      Commit(ns_.front());
      ns_.pop_front();
    }
  }

  // Unmount: a clean shutdown makes everything durable (after a cut there is
  // nothing left to do).
  void Shutdown() {
    if (!cut_) SyncAll();
    for (auto& [k, f] : files_) close(f.fd);
    files_.clear();
    ClearStash();
  }

  // ---- control ----

  std::string Command(const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "stats") return Stats();
    if (cmd == "sync") {
      if (cut_) return "error: power is off\n";
      SyncAll();
      return "ok\n";
    }
    if (cmd == "failsync") {
      uint64_t k = 0;
      std::string match, hold;
      if (!(in >> k >> match) || ((in >> hold) && hold != "hold")) {
        return "error: usage: failsync K MATCH [hold]\n";
      }
      if (hold == "hold" && !mt_) return "error: failsync ... hold needs plfs --mt\n";
      fail_left_ = k;
      fail_match_ = match;
      fail_hold_ = hold == "hold";
      return "ok\n";
    }
    if (cmd == "release") {
      ++release_gen_;
      cv_.notify_all();
      return "ok released " + std::to_string(held_) + "\n";
    }
    if (cmd == "cut") {
      uint64_t seed = 0;
      std::string mode;
      if (!(in >> seed >> mode) || (mode != "drop" && mode != "prefix" && mode != "random")) {
        return "error: usage: cut SEED drop|prefix|random\n";
      }
      if (cut_) return "error: already cut\n";
      return Cut(seed, mode);
    }
    return "error: unknown command '" + cmd +
           "' (cut SEED MODE | sync | failsync K MATCH [hold] | release | stats)\n";
  }

 private:
  // An injected sync failure of the file open as h (see failsync above).
  int FailSync(const Handle& h, std::unique_lock<std::mutex>* lock) {
    FileState* f = Find(h.key);
    // What the failed writeback loses: the ops pending when it began. Ops
    // written while it is held stay pending (their pages are dirty again).
    const size_t lost = f ? f->ops.size() : 0;
    const uint64_t seq = f ? f->seq : 0;
    if (fail_hold_ && lock) {
      held_keys_.insert(h.key);
      ++held_;
      const uint64_t gen = release_gen_;
      fprintf(stderr, "plfs: holding a failing sync of %s\n", h.rel.c_str());
      // Bounded: a test that dies without `release` must not hang us forever.
      if (!cv_.wait_for(*lock, std::chrono::seconds(60),
                        [&] { return cut_ || release_gen_ != gen; })) {
        fprintf(stderr, "plfs: held sync of %s not released within 60 s\n", h.rel.c_str());
      }
      --held_;
      held_keys_.erase(h.key);
      cv_.notify_all();
    }
    ++failed_syncs_;
    fprintf(stderr, "plfs: sync of %s fails with EIO (%zu pending ops lost)\n", h.rel.c_str(),
            lost);
    f = cut_ ? nullptr : Find(h.key);
    if (f && f->seq == seq) {
      // Never written and no longer pending; the shadow pages keep the bytes
      // readable (the page cache still holds them, marked clean).
      f->ops.erase(f->ops.begin(), f->ops.begin() + static_cast<std::ptrdiff_t>(lost));
      f->pending_bytes = 0;
      for (const PendingOp& op : f->ops) f->pending_bytes += op.data.size();
    }
    return EIO;
  }

  // Reads [pos, pos+n) of the part of the file below the shadow pages.
  int ReadUnder(const FileState& f, char* buf, size_t n, uint64_t pos) {
    memset(buf, 0, n);
    if (pos >= f.floor) return 0;
    size_t want = static_cast<size_t>(std::min<uint64_t>(n, f.floor - pos));
    if (PReadFull(f.fd, buf, want, pos) < 0) return errno;
    return 0;  // short read: past the backing EOF, zeros
  }

  std::string* ShadowPage(FileState* f, uint64_t page, int* err) {
    auto it = f->shadow.find(page);
    if (it != f->shadow.end()) return &it->second;
    std::string p(kPage, '\0');
    uint64_t start = page * kPage;
    if (start < f->size) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kPage, f->size - start));
      if (int e = ReadUnder(*f, p.data(), n, start); e != 0) {
        *err = e;
        return nullptr;
      }
    }
    return &(f->shadow[page] = std::move(p));
  }

  // Applies op to the in-memory view (shadow pages and size).
  int Apply(FileState* f, const PendingOp& op) {
    if (op.kind == PendingOp::kWrite) {
      size_t done = 0;
      while (done < op.data.size()) {
        uint64_t pos = op.off + done;
        uint64_t page = pos / kPage, in = pos % kPage;
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(kPage - in, op.data.size() - done));
        int err = 0;
        std::string* p = ShadowPage(f, page, &err);
        if (!p) return err;
        memcpy(p->data() + in, op.data.data() + done, chunk);
        done += chunk;
      }
      f->size = std::max<uint64_t>(f->size, op.off + op.data.size());
      return 0;
    }
    uint64_t size = op.off;
    if (size < f->size) {
      // Drop whole pages past the end; zero the tail of the last one, so that
      // a later extension reads zeros there.
      uint64_t first_gone = (size + kPage - 1) / kPage;
      f->shadow.erase(f->shadow.lower_bound(first_gone), f->shadow.end());
      if (size % kPage != 0) {
        auto it = f->shadow.find(size / kPage);
        if (it != f->shadow.end()) {
          size_t in = static_cast<size_t>(size % kPage);
          memset(it->second.data() + in, 0, kPage - in);
        }
      }
    }
    f->floor = std::min(f->floor, std::min(size, f->size));
    f->size = size;
    return 0;
  }

  // Writes op's bytes [from, to) (or the truncate) to the backing file.
  static int ApplyToBacking(int fd, const PendingOp& op, size_t from, size_t to) {
    if (op.kind == PendingOp::kTruncate) {
      return ftruncate(fd, static_cast<off_t>(op.off)) == 0 ? 0 : errno;
    }
    if (to <= from) return 0;
    return PWriteFull(fd, op.data.data() + from, to - from, op.off + from) ? 0
                                                                           : (errno ? errno : EIO);
  }

  // The op is durable: drop what was parked for its undo.
  void Commit(const NsOp& op) {
    ++ns_committed_;
    if (op.stash.empty()) return;
    if (unlinkat(root_, op.stash.c_str(), op.dir ? AT_REMOVEDIR : 0) != 0) {
      fprintf(stderr, "plfs: removing %s: %s\n", op.stash.c_str(), strerror(errno));
    }
  }

  // Undoes op; the namespace is exactly as right after it (later ops were
  // undone first).
  bool Undo(const NsOp& op, std::string* err) {
    auto fail = [&](const char* what, const std::string& p) {
      *err += std::string("undo ") + what + " " + p + ": " + strerror(errno) + "\n";
      return false;
    };
    switch (op.kind) {
      case NsOp::kCreated:
        if (unlinkat(root_, op.a.c_str(), 0) != 0) return fail("create", op.a);
        return true;
      case NsOp::kMkdir:
        if (unlinkat(root_, op.a.c_str(), AT_REMOVEDIR) != 0) return fail("mkdir", op.a);
        return true;
      case NsOp::kRemoved:
        if (renameat(root_, op.stash.c_str(), root_, op.a.c_str()) != 0)
          return fail("remove", op.a);
        return true;
      case NsOp::kRenamed:
        if (renameat(root_, op.b.c_str(), root_, op.a.c_str()) != 0) return fail("rename", op.a);
        return true;
      case NsOp::kReplaced:
        if (renameat(root_, op.b.c_str(), root_, op.a.c_str()) != 0) return fail("rename", op.a);
        if (renameat(root_, op.stash.c_str(), root_, op.b.c_str()) != 0) {
          return fail("rename (replaced)", op.b);
        }
        return true;
      case NsOp::kExchanged:
        if (renameat2(root_, op.a.c_str(), root_, op.b.c_str(), RENAME_EXCHANGE) != 0) {
          return fail("exchange", op.a);
        }
        return true;
    }
    return false;
  }

  void ClearStash() {
    int fd = openat(root_, kStashName, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    RemoveContents(fd);
    close(fd);
    unlinkat(root_, kStashName, AT_REMOVEDIR);
  }

  static void RemoveContents(int dirfd) {
    DIR* d = fdopendir(dup(dirfd));
    if (!d) return;
    std::vector<std::pair<std::string, bool>> names;
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      names.emplace_back(n, e->d_type == DT_DIR);
    }
    closedir(d);
    for (auto& [n, isdir] : names) {
      if (isdir) {
        int sub = openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
          RemoveContents(sub);
          close(sub);
        }
      }
      unlinkat(dirfd, n.c_str(), isdir ? AT_REMOVEDIR : 0);
    }
  }

  std::string Cut(uint64_t seed, const std::string& mode) {
    cut_ = true;
    cv_.notify_all();  // held syncs fail now
    std::mt19937_64 rng(seed);
    std::ostringstream out;
    std::string err;
    // Namespace: a prefix of the journal survives (metadata is committed in
    // order); `drop` keeps none of it.
    size_t n = ns_.size();
    size_t keep = mode == "drop" ? 0 : static_cast<size_t>(rng() % (n + 1));
    for (size_t i = n; i-- > keep;) Undo(ns_[i], &err);
    for (size_t i = 0; i < keep; ++i) Commit(ns_[i]);
    ns_.clear();
    out << "cut seed " << seed << " mode " << mode << ": namespace ops kept " << keep << "/" << n;
    // File data, in the order the files first got pending state.
    std::vector<FileState*> order;
    for (auto& [k, f] : files_) order.push_back(&f);
    std::sort(order.begin(), order.end(),
              [](const FileState* a, const FileState* b) { return a->seq < b->seq; });
    uint64_t ops_total = 0, ops_kept = 0, bytes_total = 0, bytes_kept = 0;
    for (FileState* f : order) {
      std::mt19937_64 frng(rng());
      ops_total += f->ops.size();
      for (const PendingOp& op : f->ops) bytes_total += op.data.size();
      if (mode == "prefix") {
        size_t k = static_cast<size_t>(frng() % (f->ops.size() + 1));
        for (size_t i = 0; i < k; ++i) {
          if (int e = ApplyToBacking(f->fd, f->ops[i], 0, f->ops[i].data.size()); e != 0) {
            err += std::string("apply: ") + strerror(e) + "\n";
          }
          bytes_kept += f->ops[i].data.size();
        }
        ops_kept += k;
      } else if (mode == "random") {
        // Each 4 KiB page (of the file's address space) that a write covers
        // reaches the disk or not; p varies per file so that both nearly
        // everything and nearly nothing happen.
        std::uniform_real_distribution<double> u(0.0, 1.0);
        double p = u(frng);
        for (const PendingOp& op : f->ops) {
          if (op.kind == PendingOp::kTruncate) {
            if (u(frng) < p) {
              ++ops_kept;
              if (int e = ApplyToBacking(f->fd, op, 0, 0); e != 0) {
                err += std::string("apply: ") + strerror(e) + "\n";
              }
            }
            continue;
          }
          bool any = false;
          size_t from = 0;
          while (from < op.data.size()) {
            uint64_t pos = op.off + from;
            size_t to = static_cast<size_t>(
                std::min<uint64_t>(op.data.size(), (pos / kPage + 1) * kPage - op.off));
            if (u(frng) < p) {
              any = true;
              bytes_kept += to - from;
              if (int e = ApplyToBacking(f->fd, op, from, to); e != 0) {
                err += std::string("apply: ") + strerror(e) + "\n";
              }
            }
            from = to;
          }
          ops_kept += any;
        }
      }
      close(f->fd);
    }
    out << "; files " << order.size() << ", ops kept " << ops_kept << "/" << ops_total
        << ", bytes kept " << bytes_kept << "/" << bytes_total << "\n";
    files_.clear();
    ClearStash();
    fprintf(stderr, "plfs: %s", out.str().c_str());
    if (!err.empty()) {
      fprintf(stderr, "plfs: cut errors:\n%s", err.c_str());
      return "error: " + err + out.str();
    }
    return out.str();
  }

  std::string Stats() {
    uint64_t ops = 0, bytes = 0;
    for (auto& [k, f] : files_) {
      ops += f.ops.size();
      bytes += f.pending_bytes;
    }
    std::ostringstream out;
    out << "cut " << (cut_ ? 1 : 0) << "\npending_files " << files_.size() << "\npending_ops "
        << ops << "\npending_bytes " << bytes << "\npending_ns_ops " << ns_.size() << "\nreads "
        << reads_ << "\nwrites " << writes_ << "\nfile_syncs " << file_syncs_ << "\ndir_syncs "
        << dir_syncs_ << "\nsynced_bytes " << synced_bytes_ << "\nns_ops " << ns_total_
        << "\nns_committed " << ns_committed_ << "\nheld " << held_ << "\nfailed_syncs "
        << failed_syncs_ << "\nfailsync_armed " << fail_left_ << "\n";
    return out.str();
  }

  int root_ = -1;
  bool cut_ = false;
  bool mt_ = false;  // --mt: the FUSE loop is multi-threaded
  // Injected sync failures (failsync/release); cv_ waits with mu.
  std::condition_variable cv_;
  uint64_t fail_left_ = 0;
  std::string fail_match_;
  bool fail_hold_ = false;
  uint64_t release_gen_ = 0;
  uint64_t held_ = 0, failed_syncs_ = 0;
  std::set<InodeKey> held_keys_;
  uint64_t seq_ = 0;
  uint64_t stash_seq_ = 0;
  std::map<InodeKey, FileState> files_;
  std::deque<NsOp> ns_;
  uint64_t reads_ = 0, writes_ = 0, file_syncs_ = 0, dir_syncs_ = 0, synced_bytes_ = 0,
           ns_total_ = 0, ns_committed_ = 0;
};

Plfs* g_fs = nullptr;

// Every handler starts with this: the lock, and EIO once the power is off.
#define PLFS_ENTER()                           \
  std::lock_guard<std::mutex> guard(g_fs->mu); \
  if (g_fs->cut()) return -EIO
#define PLFS_CHECK_PATH(path) \
  if (IsHidden(path)) return -ENOENT

int Root() { return g_fs->root(); }

void SetOwner(const std::string& rel) {
  fuse_context* c = fuse_get_context();
  if (c && fchownat(Root(), rel.c_str(), c->uid, c->gid, AT_SYMLINK_NOFOLLOW) != 0) {
    // Best effort: ownership does not matter to what we test.
  }
}

// ---- attributes ----

void CtlStat(struct stat* st) {
  memset(st, 0, sizeof *st);
  st->st_mode = S_IFREG | 0600;
  st->st_nlink = 1;
}

// fd of an open file or directory handle, or -1.
int HandleFd(Handle* h) {
  if (!h || h->ctl) return -1;
  if (h->dir) return dirfd(h->dir);
  return h->fd;
}

int OpGetattr(const char* path, struct stat* st, fuse_file_info* fi) {
  std::lock_guard<std::mutex> guard(g_fs->mu);
  Handle* h = H(fi);
  if (IsCtl(path) || (h && h->ctl)) {
    CtlStat(st);
    return 0;
  }
  bool root = path && Rel(path) == ".";
  if (g_fs->cut() && !root) return -EIO;
  PLFS_CHECK_PATH(path);
  int fd = HandleFd(h);
  int r;
  if (fd >= 0) {
    r = fstat(fd, st);
  } else if (path) {
    r = fstatat(Root(), Rel(path).c_str(), st, AT_SYMLINK_NOFOLLOW);
  } else {
    return -ENOENT;
  }
  if (r != 0) return -errno;
  if (S_ISREG(st->st_mode)) {
    uint64_t size = g_fs->SizeOf({st->st_dev, st->st_ino}, static_cast<uint64_t>(st->st_size));
    st->st_size = static_cast<off_t>(size);
    st->st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
  }
  return 0;
}

int OpAccess(const char* path, int mask) {
  PLFS_ENTER();
  if (IsCtl(path)) return 0;
  PLFS_CHECK_PATH(path);
  return faccessat(Root(), Rel(path).c_str(), mask, 0) == 0 ? 0 : -errno;
}

int OpReadlink(const char* path, char* buf, size_t size) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  ssize_t n = readlinkat(Root(), Rel(path).c_str(), buf, size - 1);
  if (n < 0) return -errno;
  buf[n] = '\0';
  return 0;
}

int OpChmod(const char* path, mode_t mode, fuse_file_info* fi) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EPERM;
  int fd = HandleFd(H(fi));
  if (fd < 0 && !path) return -ENOENT;
  int r = fd >= 0 ? fchmod(fd, mode) : fchmodat(Root(), Rel(path).c_str(), mode, 0);
  return r == 0 ? 0 : -errno;
}

int OpChown(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EPERM;
  int fd = HandleFd(H(fi));
  if (fd < 0 && !path) return -ENOENT;
  int r = fd >= 0 ? fchown(fd, uid, gid)
                  : fchownat(Root(), Rel(path).c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
  return r == 0 ? 0 : -errno;
}

int OpUtimens(const char* path, const struct timespec tv[2], fuse_file_info* fi) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return 0;
  int fd = HandleFd(H(fi));
  if (fd < 0 && !path) return -ENOENT;
  int r =
      fd >= 0 ? futimens(fd, tv) : utimensat(Root(), Rel(path).c_str(), tv, AT_SYMLINK_NOFOLLOW);
  return r == 0 ? 0 : -errno;
}

int OpTruncate(const char* path, off_t size, fuse_file_info* fi) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (size < 0) return -EINVAL;
  Handle* h = H(fi);
  if (IsCtl(path) || (h && h->ctl)) return 0;
  if (h && h->fd >= 0) return g_fs->Truncate(h->key, h->fd, static_cast<uint64_t>(size));
  if (!path) return -ENOENT;
  int fd = openat(Root(), Rel(path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int r;
  if (fstat(fd, &st) != 0) {
    r = -errno;
  } else if (S_ISDIR(st.st_mode)) {
    r = -EISDIR;
  } else {
    r = g_fs->Truncate({st.st_dev, st.st_ino}, fd, static_cast<uint64_t>(size));
  }
  close(fd);
  return r;
}

int OpStatfs(const char*, struct statvfs* st) {
  PLFS_ENTER();
  return fstatvfs(Root(), st) == 0 ? 0 : -errno;
}

// ---- xattrs: pass-through, treated as durable at once ----

std::string ProcPath(const char* path) {
  char buf[64];
  snprintf(buf, sizeof buf, "/proc/self/fd/%d/", Root());
  return std::string(buf) + Rel(path);
}

int OpSetxattr(const char* path, const char* name, const char* value, size_t size, int flags) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  return lsetxattr(ProcPath(path).c_str(), name, value, size, flags) == 0 ? 0 : -errno;
}
int OpGetxattr(const char* path, const char* name, char* value, size_t size) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -ENODATA;
  ssize_t r = lgetxattr(ProcPath(path).c_str(), name, value, size);
  return r < 0 ? -errno : static_cast<int>(r);
}
int OpListxattr(const char* path, char* list, size_t size) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return 0;
  ssize_t r = llistxattr(ProcPath(path).c_str(), list, size);
  return r < 0 ? -errno : static_cast<int>(r);
}
int OpRemovexattr(const char* path, const char* name) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  return lremovexattr(ProcPath(path).c_str(), name) == 0 ? 0 : -errno;
}

// ---- namespace ----

// --no-sockets: mknod of a socket fails with ENOSYS, like file systems that
// cannot hold sockets (tests that DBFS needs none in its volume).
bool g_no_sockets = false;

int OpMknod(const char* path, mode_t mode, dev_t rdev) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EEXIST;
  if (g_no_sockets && S_ISSOCK(mode)) return -ENOSYS;
  std::string rel = Rel(path);
  if (mknodat(Root(), rel.c_str(), mode, rdev) != 0) return -errno;
  SetOwner(rel);
  g_fs->Journal(Ns(NsOp::kCreated, rel, "", "", false));
  return 0;
}

int OpMkdir(const char* path, mode_t mode) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EEXIST;
  std::string rel = Rel(path);
  if (mkdirat(Root(), rel.c_str(), mode) != 0) return -errno;
  SetOwner(rel);
  g_fs->Journal(Ns(NsOp::kMkdir, rel, "", "", true));
  return 0;
}

int OpSymlink(const char* target, const char* path) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EEXIST;
  std::string rel = Rel(path);
  if (symlinkat(target, Root(), rel.c_str()) != 0) return -errno;
  SetOwner(rel);
  g_fs->Journal(Ns(NsOp::kCreated, rel, "", "", false));
  return 0;
}

int OpLink(const char* from, const char* to) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(from);
  PLFS_CHECK_PATH(to);
  if (IsCtl(from) || IsCtl(to)) return -EPERM;
  std::string rel = Rel(to);
  if (linkat(Root(), Rel(from).c_str(), Root(), rel.c_str(), 0) != 0) return -errno;
  g_fs->Journal(Ns(NsOp::kCreated, rel, "", "", false));
  return 0;
}

// unlink and rmdir park the entry in the stash until the op is durable.
int Remove(const char* path, bool dir) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EPERM;
  std::string rel = Rel(path);
  struct stat st;
  if (fstatat(Root(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  if (dir && !S_ISDIR(st.st_mode)) return -ENOTDIR;
  if (!dir && S_ISDIR(st.st_mode)) return -EISDIR;
  if (dir) {
    // Let the kernel's own checks decide (ENOTEMPTY, busy): remove it into
    // the stash via rename only once we know rmdir would work.
    int fd = openat(Root(), rel.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR* d = fdopendir(fd);
    if (!d) {
      close(fd);
      return -errno;
    }
    bool empty = true;
    while (struct dirent* e = readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = false;
    }
    closedir(d);
    if (!empty) return -ENOTEMPTY;
  }
  std::string stash = g_fs->NewStash();
  if (renameat(Root(), rel.c_str(), Root(), stash.c_str()) != 0) return -errno;
  g_fs->Journal(Ns(NsOp::kRemoved, rel, "", stash, dir));
  return 0;
}

int OpUnlink(const char* path) { return Remove(path, false); }
int OpRmdir(const char* path) { return Remove(path, true); }

int OpRename(const char* from, const char* to, unsigned int flags) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(from);
  PLFS_CHECK_PATH(to);
  if (IsCtl(from) || IsCtl(to)) return -EPERM;
  std::string a = Rel(from), b = Rel(to);
  if (flags & RENAME_EXCHANGE) {
    if (renameat2(Root(), a.c_str(), Root(), b.c_str(), RENAME_EXCHANGE) != 0) return -errno;
    g_fs->Journal(Ns(NsOp::kExchanged, a, b, "", false));
    return 0;
  }
  if (flags & ~RENAME_NOREPLACE) return -EINVAL;
  struct stat sa, sb;
  if (fstatat(Root(), a.c_str(), &sa, AT_SYMLINK_NOFOLLOW) != 0) return -errno;
  if (fstatat(Root(), b.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) return -errno;
    if (renameat2(Root(), a.c_str(), Root(), b.c_str(), flags) != 0) return -errno;
    g_fs->Journal(Ns(NsOp::kRenamed, a, b, "", false));
    return 0;
  }
  if (flags & RENAME_NOREPLACE) return -EEXIST;
  if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino) return 0;  // same inode: a no-op
  if (S_ISDIR(sa.st_mode) && !S_ISDIR(sb.st_mode)) return -ENOTDIR;
  if (!S_ISDIR(sa.st_mode) && S_ISDIR(sb.st_mode)) return -EISDIR;
  // Park the replaced entry, then rename; put it back if the rename fails
  // (a non-empty directory, a into its own subtree, ...).
  bool dir = S_ISDIR(sb.st_mode);
  std::string stash = g_fs->NewStash();
  if (dir) {
    // rename(2) onto a non-empty directory fails; check before parking it.
    if (renameat2(Root(), b.c_str(), Root(), stash.c_str(), 0) != 0) return -errno;
    int fd = openat(Root(), stash.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* d = fd >= 0 ? fdopendir(fd) : nullptr;
    bool empty = true;
    while (d) {
      struct dirent* e = readdir(d);
      if (!e) break;
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = false;
    }
    if (d) closedir(d);
    if (!empty) {
      renameat(Root(), stash.c_str(), Root(), b.c_str());
      return -ENOTEMPTY;
    }
  } else if (renameat(Root(), b.c_str(), Root(), stash.c_str()) != 0) {
    return -errno;
  }
  if (renameat(Root(), a.c_str(), Root(), b.c_str()) != 0) {
    int e = errno;
    renameat(Root(), stash.c_str(), Root(), b.c_str());
    return -e;
  }
  g_fs->Journal(Ns(NsOp::kReplaced, a, b, stash, dir));
  return 0;
}

// ---- files ----

int OpenBacking(const std::string& rel, int flags, mode_t mode, bool create, Handle** out,
                bool* created) {
  // O_APPEND is not passed down: the kernel sends the offset (the end of the
  // merged file), and pwrite on an O_APPEND fd would ignore it. O_TRUNC is
  // done as a pending truncate; sync flags are ours to honor.
  int bflags = (flags & (O_ACCMODE | O_NOFOLLOW)) | O_CLOEXEC;
  if ((bflags & O_ACCMODE) == O_WRONLY) bflags = (bflags & ~O_ACCMODE) | O_RDWR;
  int fd = -1;
  *created = false;
  if (create) {
    fd = openat(Root(), rel.c_str(), bflags | O_CREAT | O_EXCL, mode);
    if (fd >= 0) {
      *created = true;
    } else if (errno == EEXIST && !(flags & O_EXCL)) {
      fd = openat(Root(), rel.c_str(), bflags);
    }
  } else {
    fd = openat(Root(), rel.c_str(), bflags);
  }
  if (fd < 0) return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  Handle* h = new Handle;
  h->fd = fd;
  h->key = {st.st_dev, st.st_ino};
  h->rel = rel;
  h->sync = (flags & (O_SYNC | O_DSYNC)) != 0;
  *out = h;
  return 0;
}

void SetupFi(fuse_file_info* fi, Handle* h) {
  fi->fh = reinterpret_cast<uint64_t>(h);
  fi->keep_cache = 1;  // every change comes through this mount
}

int OpOpen(const char* path, fuse_file_info* fi) {
  std::lock_guard<std::mutex> guard(g_fs->mu);
  if (IsCtl(path)) {
    Handle* h = new Handle;
    h->ctl = true;
    fi->fh = reinterpret_cast<uint64_t>(h);
    fi->direct_io = 1;  // replies are not file data: no page cache, no size
    fi->nonseekable = 1;
    return 0;
  }
  if (g_fs->cut()) return -EIO;
  PLFS_CHECK_PATH(path);
  Handle* h = nullptr;
  bool created;
  if (int r = OpenBacking(Rel(path), fi->flags, 0, false, &h, &created); r != 0) return r;
  if (fi->flags & O_TRUNC) {
    if (int r = g_fs->Truncate(h->key, h->fd, 0); r != 0) {
      close(h->fd);
      delete h;
      return r;
    }
  }
  SetupFi(fi, h);
  return 0;
}

int OpCreate(const char* path, mode_t mode, fuse_file_info* fi) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  if (IsCtl(path)) return -EEXIST;
  std::string rel = Rel(path);
  Handle* h = nullptr;
  bool created;
  if (int r = OpenBacking(rel, fi->flags, mode, true, &h, &created); r != 0) return r;
  if (created) {
    SetOwner(rel);
    g_fs->Journal(Ns(NsOp::kCreated, rel, "", "", false));
  } else if (fi->flags & O_TRUNC) {
    if (int r = g_fs->Truncate(h->key, h->fd, 0); r != 0) {
      close(h->fd);
      delete h;
      return r;
    }
  }
  SetupFi(fi, h);
  return 0;
}

int OpRead(const char* path, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  (void)path;
  std::lock_guard<std::mutex> guard(g_fs->mu);
  Handle* h = H(fi);
  if (h->ctl) {
    // Our own cursor: the kernel's offset has moved past the command we wrote.
    size_t n = std::min(size, h->ctl_out.size() - h->ctl_read);
    memcpy(buf, h->ctl_out.data() + h->ctl_read, n);
    h->ctl_read += n;
    return static_cast<int>(n);
  }
  if (g_fs->cut()) return -EIO;
  ssize_t r = g_fs->Read(*h, buf, size, static_cast<uint64_t>(off));
  return static_cast<int>(r);
}

int OpWrite(const char* path, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  (void)path;
  std::unique_lock<std::mutex> lock(g_fs->mu);
  Handle* h = H(fi);
  if (h->ctl) {
    // Commands are lines; a reply replaces the previous one.
    h->ctl_in.append(buf, size);
    size_t nl;
    while ((nl = h->ctl_in.find('\n')) != std::string::npos) {
      std::string line = h->ctl_in.substr(0, nl);
      h->ctl_in.erase(0, nl + 1);
      if (line != "stats") fprintf(stderr, "plfs: ctl: %s\n", line.c_str());  // tests poll stats
      h->ctl_out = g_fs->Command(line);
      h->ctl_read = 0;
    }
    return static_cast<int>(size);
  }
  if (g_fs->cut()) return -EIO;
  return g_fs->Write(*h, buf, size, static_cast<uint64_t>(off), &lock);
}

int OpFlush(const char*, fuse_file_info* fi) {
  std::lock_guard<std::mutex> guard(g_fs->mu);
  Handle* h = H(fi);
  if (h->ctl) {
    // A command without its newline runs at close.
    if (!h->ctl_in.empty()) {
      h->ctl_out = g_fs->Command(h->ctl_in);
      h->ctl_read = 0;
      h->ctl_in.clear();
    }
    return 0;
  }
  return g_fs->cut() ? -EIO : 0;
}

int OpRelease(const char*, fuse_file_info* fi) {
  std::lock_guard<std::mutex> guard(g_fs->mu);
  Handle* h = H(fi);
  if (h->fd >= 0) close(h->fd);
  delete h;
  return 0;
}

int OpFsync(const char*, int, fuse_file_info* fi) {
  std::unique_lock<std::mutex> lock(g_fs->mu);  // a held failing sync waits with it
  if (g_fs->cut()) return -EIO;
  Handle* h = H(fi);
  if (h->ctl) return 0;
  int e = g_fs->SyncFile(*h, &lock);
  return e == 0 ? 0 : -e;
}

int OpFallocate(const char*, int mode, off_t off, off_t len, fuse_file_info* fi) {
  PLFS_ENTER();
  Handle* h = H(fi);
  if (h->ctl) return -EOPNOTSUPP;
  if (off < 0 || len <= 0) return -EINVAL;
  uint64_t o = static_cast<uint64_t>(off), l = static_cast<uint64_t>(len);
  bool keep = mode & FALLOC_FL_KEEP_SIZE;
  if (mode & FALLOC_FL_PUNCH_HOLE) {
    if (!keep) return -EOPNOTSUPP;
    return g_fs->ZeroRange(h->key, h->fd, o, l, false);
  }
  if (mode & FALLOC_FL_ZERO_RANGE) return g_fs->ZeroRange(h->key, h->fd, o, l, !keep);
  if (mode & ~FALLOC_FL_KEEP_SIZE) return -EOPNOTSUPP;
  if (keep) return 0;
  struct stat st;
  if (fstat(h->fd, &st) != 0) return -errno;
  uint64_t size = g_fs->SizeOf(h->key, static_cast<uint64_t>(st.st_size));
  if (o + l <= size) return 0;
  // Allocation reads as zeros: a pending extension.
  return g_fs->Truncate(h->key, h->fd, o + l);
}

// ---- directories ----

int OpOpendir(const char* path, fuse_file_info* fi) {
  PLFS_ENTER();
  PLFS_CHECK_PATH(path);
  int fd = openat(Root(), Rel(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  DIR* d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return -e;
  }
  Handle* h = new Handle;
  h->dir = d;
  h->fd = -1;
  h->root = Rel(path) == ".";
  fi->fh = reinterpret_cast<uint64_t>(h);
  return 0;
}

int OpReaddir(const char*, void* buf, fuse_fill_dir_t filler, off_t, fuse_file_info* fi,
              fuse_readdir_flags) {
  PLFS_ENTER();
  Handle* h = H(fi);
  bool root = h->root;
  rewinddir(h->dir);
  // Offsets of 0: libfuse collects the whole listing from this one call.
  while (struct dirent* e = readdir(h->dir)) {
    if (root && (strcmp(e->d_name, kStashName) == 0 || strcmp(e->d_name, kCtlName) == 0)) continue;
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = e->d_ino;
    st.st_mode = static_cast<mode_t>(DTTOIF(e->d_type));
    if (filler(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0))) break;
  }
  return 0;
}

int OpReleasedir(const char*, fuse_file_info* fi) {
  std::lock_guard<std::mutex> guard(g_fs->mu);
  Handle* h = H(fi);
  if (h->dir) closedir(h->dir);
  delete h;
  return 0;
}

int OpFsyncdir(const char*, int, fuse_file_info* fi) {
  PLFS_ENTER();
  struct stat st;
  if (fstat(dirfd(H(fi)->dir), &st) != 0) return -errno;
  g_fs->SyncDir({st.st_dev, st.st_ino});
  return 0;
}

// ---- lifecycle ----

void* OpInit(fuse_conn_info* conn, fuse_config* cfg) {
  // The kernel is the only writer and its page cache stays coherent with
  // what we answer; invalidating it on attribute changes would only cost.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  // O_TRUNC arrives as a truncate (setattr), like everything else that changes size.
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  // Writes must reach us when write(2) is called, not when the kernel
  // writes back (simpler ordering to reason about).
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  cfg->use_ino = 1;
  cfg->hard_remove = 1;  // unlink of an open file is our unlink (no .fuse_hidden)
  cfg->nullpath_ok = 1;
  cfg->kernel_cache = 1;
  cfg->entry_timeout = 1.0;
  cfg->attr_timeout = 1.0;
  cfg->negative_timeout = 0;
  return g_fs;
}

void OpDestroy(void*) {
  std::lock_guard<std::mutex> guard(g_fs->mu);
  g_fs->Shutdown();
}

fuse_operations MakeOps() {
  fuse_operations o;
  memset(&o, 0, sizeof o);
  o.getattr = OpGetattr;
  o.readlink = OpReadlink;
  o.mknod = OpMknod;
  o.mkdir = OpMkdir;
  o.unlink = OpUnlink;
  o.rmdir = OpRmdir;
  o.symlink = OpSymlink;
  o.rename = OpRename;
  o.link = OpLink;
  o.chmod = OpChmod;
  o.chown = OpChown;
  o.truncate = OpTruncate;
  o.open = OpOpen;
  o.read = OpRead;
  o.write = OpWrite;
  o.statfs = OpStatfs;
  o.flush = OpFlush;
  o.release = OpRelease;
  o.fsync = OpFsync;
  o.setxattr = OpSetxattr;
  o.getxattr = OpGetxattr;
  o.listxattr = OpListxattr;
  o.removexattr = OpRemovexattr;
  o.opendir = OpOpendir;
  o.readdir = OpReaddir;
  o.releasedir = OpReleasedir;
  o.fsyncdir = OpFsyncdir;
  o.init = OpInit;
  o.destroy = OpDestroy;
  o.access = OpAccess;
  o.create = OpCreate;
  o.utimens = OpUtimens;
  o.fallocate = OpFallocate;
  return o;
}

}  // namespace
}  // namespace plfs

int main(int argc, char** argv) {
  if (argc < 3 || argv[1][0] == '-') {
    fprintf(stderr,
            "usage: %s BACKING_DIR MOUNTPOINT [--mt] [--no-sockets] [-f] [-d] [-o options]\n"
            "Control: write 'cut SEED drop|prefix|random', 'sync', 'failsync K MATCH [hold]',\n"
            "'release' or 'stats' to MOUNTPOINT/.plfs_ctl and read the reply from the same\n"
            "open file. --mt: multi-threaded FUSE loop (needed by failsync ... hold).\n"
            "--no-sockets: creating a socket fails with ENOSYS.\n",
            argv[0]);
    return 2;
  }
  static plfs::Plfs fs;
  std::string err;
  if (!fs.Init(argv[1], &err)) {
    fprintf(stderr, "plfs: %s\n", err.c_str());
    return 1;
  }
  plfs::g_fs = &fs;
  // argv without the backing dir and --mt, plus -s (single-threaded, unless
  // --mt) and a name.
  std::vector<char*> args;
  args.push_back(argv[0]);
  bool mt = false;
  for (int i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "--mt") == 0) {
      mt = true;
    } else if (strcmp(argv[i], "--no-sockets") == 0) {
      plfs::g_no_sockets = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  fs.set_multithreaded(mt);
  static char s_opt[] = "-s", o_opt[] = "-o", name[] = "fsname=plfs,subtype=plfs";
  // --mt: libfuse 3.14's fuse_main prints "Ignoring invalid max threads
  // value" and runs with its defaults, which is what we want.
  if (!mt) args.push_back(s_opt);
  args.push_back(o_opt);
  args.push_back(name);
  args.push_back(nullptr);
  fuse_operations ops = plfs::MakeOps();
  return fuse_main(static_cast<int>(args.size()) - 1, args.data(), &ops, &fs);
}
