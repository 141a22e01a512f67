// fsstress: many processes doing random namespace and data operations in one
// shared tree (in the style of xfstests' ltp/fsstress.c): create, mkdir,
// rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE), link, symlink, unlink,
// rmdir, write, truncate, fallocate, read, readdir, setxattr, fsync. Names
// come from a small set, so operations collide constantly. Expected errors
// (ENOENT, EEXIST, ENOTEMPTY, ...) are part of the game; any other error —
// EIO above all — fails the run. Afterwards the tree is walked and every
// file read back whole.
//
//   fsstress [-p procs] [-n ops per process] [-S seed] DIR
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

bool Expected(int err) {
  switch (err) {
    case ENOENT: case EEXIST: case ENOTEMPTY: case ENOTDIR: case EISDIR: case EINVAL:
    case EXDEV: case ELOOP: case EMLINK: case EBUSY: case ENODATA: case ETXTBSY:
      return true;
    default:
      return false;
  }
}

class Worker {
 public:
  Worker(std::string root, uint64_t seed, int id) : root_(std::move(root)), rng_(seed), id_(id) {}

  int Run(uint64_t ops) {
    for (uint64_t i = 0; i < ops; ++i) {
      if (!One()) {
        std::fprintf(stderr, "fsstress: process %d, op %" PRIu64 ": %s\n", id_, i, failure_.c_str());
        return 1;
      }
    }
    return 0;
  }

 private:
  uint64_t Rand(uint64_t n) { return rng_() % n; }
  // A path of depth 1-3 over a small alphabet of names, so that processes collide.
  std::string Path() {
    static const char* const kNames[] = {"a", "b", "c", "d", "e", "f"};
    std::string p = root_;
    // Shallow paths mostly (1: 1/2, 2: 1/3, 3: 1/6), so parents usually exist.
    const uint64_t r = Rand(6);
    const int depth = r < 3 ? 1 : r < 5 ? 2 : 3;
    for (int i = 0; i < depth; ++i) p += std::string("/") + kNames[Rand(6)];
    return p;
  }
  bool Check(int rc, const char* what, const std::string& path) {
    if (rc >= 0 || Expected(errno)) return true;
    failure_ = std::string(what) + " " + path + ": " + strerror(errno);
    return false;
  }

  bool One() {
    const std::string p = Path(), q = Path();
    char buf[65536];
    switch (Rand(16)) {
      case 0: {
        const int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
        return Check(fd, "create", p);
      }
      case 1: return Check(mkdir(p.c_str(), 0755), "mkdir", p);
      case 2: {
        static const unsigned kFlags[] = {0, RENAME_NOREPLACE, RENAME_EXCHANGE};
        return Check(renameat2(AT_FDCWD, p.c_str(), AT_FDCWD, q.c_str(), kFlags[Rand(3)]),
                     "rename", p + " -> " + q);
      }
      case 3: return Check(link(p.c_str(), q.c_str()), "link", p + " -> " + q) || errno == EPERM;
      case 4: return Check(symlink("target", p.c_str()), "symlink", p);
      case 5: return Check(unlink(p.c_str()), "unlink", p);
      case 6: return Check(rmdir(p.c_str()), "rmdir", p);
      case 7:
      case 8: {
        const int fd = open(p.c_str(), O_WRONLY | O_NOFOLLOW);
        if (fd < 0) return Check(fd, "open for write", p) || errno == ELOOP;
        const size_t len = 1 + Rand(sizeof buf);
        std::memset(buf, 'a' + id_ % 26, len);
        const ssize_t n = pwrite(fd, buf, len, static_cast<off_t>(Rand(1 << 20)));
        const bool ok = Check(static_cast<int>(n), "write", p);
        close(fd);
        return ok;
      }
      case 9: return Check(truncate(p.c_str(), static_cast<off_t>(Rand(1 << 20))), "truncate", p);
      case 10: {
        const int fd = open(p.c_str(), O_WRONLY | O_NOFOLLOW);
        if (fd < 0) return Check(fd, "open for fallocate", p) || errno == ELOOP;
        static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE,
                                     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                     FALLOC_FL_ZERO_RANGE};
        const int rc = fallocate(fd, kModes[Rand(4)], static_cast<off_t>(Rand(1 << 20)),
                                 static_cast<off_t>(1 + Rand(1 << 16)));
        const bool ok = Check(rc, "fallocate", p) || errno == EOPNOTSUPP;
        close(fd);
        return ok;
      }
      case 11: {
        const int fd = open(p.c_str(), O_RDONLY);
        if (fd < 0) return Check(fd, "open for read", p);
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
        }
        const bool ok = Check(static_cast<int>(n), "read", p);
        close(fd);
        return ok;
      }
      case 12: {
        DIR* d = opendir(p.c_str());
        if (d == nullptr) return Check(-1, "opendir", p);
        errno = 0;
        while (readdir(d) != nullptr) {
        }
        const bool ok = Check(errno ? -1 : 0, "readdir", p);
        closedir(d);
        return ok;
      }
      case 13: return Check(setxattr(p.c_str(), "user.k", "v", 1, 0), "setxattr", p) ||
                       errno == EPERM || errno == EOPNOTSUPP;
      case 14: {
        const int fd = open(p.c_str(), O_RDONLY);
        if (fd < 0) return Check(fd, "open for fsync", p);
        const bool ok = Check(fsync(fd), "fsync", p);
        close(fd);
        return ok;
      }
      default: {
        struct stat st {};
        return Check(lstat(p.c_str(), &st), "lstat", p);
      }
    }
  }

  std::string root_;
  std::mt19937_64 rng_;
  int id_;
  std::string failure_;
};

// Reads every file of the tree whole: a damaged extent or a dangling entry
// shows up as an error here.
bool Walk(const std::string& dir, std::set<ino_t>* seen_dirs) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    std::fprintf(stderr, "fsstress: opendir %s: %s\n", dir.c_str(), strerror(errno));
    return false;
  }
  bool ok = true;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string p = dir + "/" + name;
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) {
      std::fprintf(stderr, "fsstress: listed %s but lstat fails: %s\n", p.c_str(), strerror(errno));
      ok = false;
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      // A directory met twice is a cycle (or a second name) in the tree.
      if (!seen_dirs->insert(st.st_ino).second) {
        std::fprintf(stderr, "fsstress: directory %s (inode %ju) seen twice\n", p.c_str(),
                     static_cast<uintmax_t>(st.st_ino));
        ok = false;
        continue;
      }
      ok = Walk(p, seen_dirs) && ok;
    } else if (S_ISREG(st.st_mode)) {
      const int fd = open(p.c_str(), O_RDONLY);
      static char buf[65536];  // not on the stack: renames nest the tree deep
      ssize_t n = 0;
      off_t total = 0;
      while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) total += n;
      if (fd < 0 || n < 0 || total != st.st_size) {
        std::fprintf(stderr, "fsstress: reading %s: %s (%jd of %jd bytes)\n", p.c_str(),
                     strerror(errno), static_cast<intmax_t>(total),
                     static_cast<intmax_t>(st.st_size));
        ok = false;
      }
      if (fd >= 0) close(fd);
    }
  }
  closedir(d);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  int procs = 8;
  uint64_t ops = 10000;
  uint64_t seed = static_cast<uint64_t>(time(nullptr));
  int c;
  while ((c = getopt(argc, argv, "p:n:S:")) != -1) {
    switch (c) {
      case 'p': procs = atoi(optarg); break;
      case 'n': ops = strtoull(optarg, nullptr, 0); break;
      case 'S': seed = strtoull(optarg, nullptr, 0); break;
      default:
        std::fprintf(stderr, "usage: fsstress [-p procs] [-n ops] [-S seed] DIR\n");
        return 2;
    }
  }
  if (optind + 1 != argc) {
    std::fprintf(stderr, "usage: fsstress [-p procs] [-n ops] [-S seed] DIR\n");
    return 2;
  }
  const std::string root = argv[optind];
  std::printf("fsstress: seed %" PRIu64 ", %d processes x %" PRIu64 " ops in %s\n", seed, procs,
              ops, root.c_str());
  std::fflush(stdout);
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i) {
    const pid_t pid = fork();
    if (pid == 0) _exit(Worker(root, seed * 1000003 + static_cast<uint64_t>(i), i).Run(ops));
    if (pid < 0) {
      perror("fork");
      return 2;
    }
    kids.push_back(pid);
  }
  int failed = 0;
  for (pid_t k : kids) {
    int st = 0;
    while (waitpid(k, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failed;
  }
  std::set<ino_t> seen_dirs;
  if (!Walk(root, &seen_dirs)) ++failed;
  std::printf("fsstress: %s (%d of %d processes failed)\n", failed ? "FAILED" : "passed", failed,
              procs);
  return failed ? 1 : 0;
}
