// Differential test: the same seeded random sequence of namespace and data
// operations runs on the mount and on a reference directory of the host
// filesystem (ext4/tmpfs). Every result (return value and errno) must agree,
// and so must the trees (types, modes, sizes, link counts, contents, symlink
// targets, xattrs), also after a remount of the volume.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

// Parameter: extra mount options (the kernel caches off, -o sync, debug
// logging of every request all change which code paths the daemon runs).
class PosixDifferential : public MountTest, public ::testing::WithParamInterface<std::string> {
 protected:
  std::string MountOptions() const override {
    std::string extra = GetParam();
    return MountedVolume::DefaultOptions() + (extra.empty() ? "" : "," + extra);
  }
  void SetUp() override {
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    ref_ = vol_->dir() + "/reference";
    ASSERT_SYS(mkdir(ref_.c_str(), 0755));
  }
  std::string ref_;
};

std::string Hex(uint64_t v) {
  std::ostringstream o;
  o << std::hex << v;
  return o.str();
}

// Everything but inode numbers and times.
std::map<std::string, std::string> Shape(const std::string& root) {
  std::map<std::string, std::string> m;
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string full = rel.empty() ? root : root + "/" + rel;
    struct stat st;
    if (lstat(full.c_str(), &st) != 0) {
      m[rel] = "lstat failed";
      continue;
    }
    std::ostringstream o;
    o << std::oct << st.st_mode << std::dec << " nlink=" << st.st_nlink;
    if (!S_ISDIR(st.st_mode)) o << " size=" << st.st_size;
    if (S_ISREG(st.st_mode)) {
      std::string c = ReadFile(full);
      uint64_t h = 1469598103934665603ull;
      for (char ch : c) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
      o << " hash=" << Hex(h);
    }
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = readlink(full.c_str(), buf, sizeof buf);
      o << " ->" << (n >= 0 ? std::string(buf, n) : "?");
    } else {
      char names[8192];
      ssize_t n = llistxattr(full.c_str(), names, sizeof names);
      std::map<std::string, std::string> xs;
      for (ssize_t i = 0; i < n;) {
        std::string name(names + i);
        i += name.size() + 1;
        if (name.rfind("user.", 0) != 0) continue;
        char v[1024];
        ssize_t vn = lgetxattr(full.c_str(), name.c_str(), v, sizeof v);
        xs[name] = vn >= 0 ? std::string(v, vn) : "?";
      }
      for (auto& [k, v] : xs) o << " " << k << "=" << v;
    }
    m[rel] = o.str();
    if (S_ISDIR(st.st_mode)) {
      for (const std::string& n : ListDir(full)) stack.push_back(rel.empty() ? n : rel + "/" + n);
    }
  }
  return m;
}

std::string ShapeDiff(const std::map<std::string, std::string>& want,
                      const std::map<std::string, std::string>& got) {
  std::ostringstream o;
  for (auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      o << "  missing /" << k << " (" << v << ")\n";
    } else if (it->second != v) {
      o << "  /" << k << ": reference " << v << ", dbfs " << it->second << "\n";
    }
  }
  for (auto& [k, v] : got) {
    if (!want.count(k)) o << "  extra /" << k << " (" << v << ")\n";
  }
  return o.str();
}

// One random operation, applied to both roots.
struct Step {
  std::string desc;
  std::function<std::string(const std::string& root)> run;  // returns an outcome
};

std::string Outcome(long r, const std::string& extra = "") {
  if (r < 0) return std::string("-1 ") + ErrName(errno);
  return std::to_string(r) + extra;
}

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  std::string Path() {
    static const char* kNames[] = {"a", "b", "c", "d"};
    uint64_t d = rng_() % 20;
    int depth = d < 10 ? 1 : d < 17 ? 2 : 3;
    std::string p;
    for (int i = 0; i < depth; ++i) p += std::string(i ? "/" : "") + kNames[rng_() % 4];
    return p;
  }

  Step Next() {
    std::string p = Path(), q = Path();
    uint64_t r = rng_() % 100;
    if (r < 16) {
      int flags = O_WRONLY | O_CREAT | O_NONBLOCK;
      if (rng_() % 4 == 0) flags |= O_EXCL;
      if (rng_() % 4 == 0) flags |= O_TRUNC;
      if (rng_() % 5 == 0) flags |= O_APPEND;
      off_t off = rng_() % 3 == 0 ? rng_() % 200000 : rng_() % 5000;
      std::string data = Pattern(1 + rng_() % 20000, static_cast<uint32_t>(rng_()));
      return {"write " + p + " flags " + std::to_string(flags) + " off " + std::to_string(off) +
                  " len " + std::to_string(data.size()),
              [=](const std::string& root) {
                int fd = open((root + "/" + p).c_str(), flags, 0644);
                if (fd < 0) return Outcome(-1);
                ssize_t w = pwrite(fd, data.data(), data.size(), off);
                std::string o = "open ok, pwrite " + Outcome(w);
                close(fd);
                return o;
              }};
    }
    if (r < 26)
      return {"mkdir " + p, [=](const std::string& root) {
                return Outcome(mkdir((root + "/" + p).c_str(), 0755));
              }};
    if (r < 32)
      return {"rmdir " + p,
              [=](const std::string& root) { return Outcome(rmdir((root + "/" + p).c_str())); }};
    if (r < 40)
      return {"unlink " + p,
              [=](const std::string& root) { return Outcome(unlink((root + "/" + p).c_str())); }};
    if (r < 56) {
      unsigned flags = 0;
      uint64_t f = rng_() % 6;
      if (f == 0) flags = 1;  // RENAME_NOREPLACE
      if (f == 1) flags = 2;  // RENAME_EXCHANGE
      return {"rename " + p + " " + q + " flags " + std::to_string(flags),
              [=](const std::string& root) {
                return Outcome(syscall(SYS_renameat2, AT_FDCWD, (root + "/" + p).c_str(), AT_FDCWD,
                                       (root + "/" + q).c_str(), flags));
              }};
    }
    if (r < 63)
      return {"link " + p + " " + q, [=](const std::string& root) {
                return Outcome(link((root + "/" + p).c_str(), (root + "/" + q).c_str()));
              }};
    if (r < 68) {
      // Relative targets inside the tree (possibly dangling or looping).
      std::string target = rng_() % 2 ? Path() : "../" + Path();
      return {"symlink " + target + " " + p, [=](const std::string& root) {
                return Outcome(symlink(target.c_str(), (root + "/" + p).c_str()));
              }};
    }
    if (r < 71)
      return {"mkfifo " + p, [=](const std::string& root) {
                return Outcome(mkfifo((root + "/" + p).c_str(), 0644));
              }};
    if (r < 77) {
      off_t len = rng_() % 3 == 0 ? rng_() % 300000 : rng_() % 6000;
      return {"truncate " + p + " " + std::to_string(len), [=](const std::string& root) {
                return Outcome(truncate((root + "/" + p).c_str(), len));
              }};
    }
    if (r < 81) {
      static const mode_t kModes[] = {0644, 0600, 0755, 0700, 0444, 04755, 01777};
      mode_t m = kModes[rng_() % 7];
      return {"chmod " + p,
              [=](const std::string& root) { return Outcome(chmod((root + "/" + p).c_str(), m)); }};
    }
    if (r < 86) {
      std::string name = "user.k" + std::to_string(rng_() % 3);
      std::string value = std::to_string(rng_());
      int flags = static_cast<int>(rng_() % 3);  // 0, XATTR_CREATE, XATTR_REPLACE
      return {"setxattr " + p + " " + name, [=](const std::string& root) {
                return Outcome(lsetxattr((root + "/" + p).c_str(), name.c_str(), value.data(),
                                         value.size(), flags));
              }};
    }
    if (r < 88) {
      std::string name = "user.k" + std::to_string(rng_() % 3);
      return {"removexattr " + p + " " + name, [=](const std::string& root) {
                return Outcome(lremovexattr((root + "/" + p).c_str(), name.c_str()));
              }};
    }
    if (r < 94) {
      off_t off = rng_() % 10000;
      size_t len = 1 + rng_() % 30000;
      return {"read " + p, [=](const std::string& root) {
                int fd = open((root + "/" + p).c_str(), O_RDONLY | O_NONBLOCK);
                if (fd < 0) return Outcome(-1);
                std::string buf(len, '\0');
                ssize_t n = pread(fd, buf.data(), len, off);
                std::string o = "read " + Outcome(n);
                if (n > 0) {
                  uint64_t h = 1469598103934665603ull;
                  for (ssize_t i = 0; i < n; ++i) {
                    h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ull;
                  }
                  o += " " + Hex(h);
                }
                close(fd);
                return o;
              }};
    }
    return {"stat " + p, [=](const std::string& root) {
              struct stat st;
              if (stat((root + "/" + p).c_str(), &st) != 0) return Outcome(-1);
              std::ostringstream o;
              o << std::oct << st.st_mode << std::dec << " nlink " << st.st_nlink;
              if (!S_ISDIR(st.st_mode)) o << " size " << st.st_size;
              return o.str();
            }};
  }

 private:
  std::mt19937_64 rng_;
};

TEST_P(PosixDifferential, RandomOpsAgreeWithHostFilesystem) {
  uint64_t seed =
      getenv("DBFS_TEST_SEED")
          ? strtoull(getenv("DBFS_TEST_SEED"), nullptr, 10)
          : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (rerun with DBFS_TEST_SEED=" + std::to_string(seed) + ")");
  RecordProperty("seed", std::to_string(seed));
  Generator gen(seed);
  constexpr int kOps = 10000;
  std::vector<std::string> history;
  int mismatches = 0, succeeded = 0;
  for (int i = 0; i < kOps && mismatches < 5; ++i) {
    Step s = gen.Next();
    std::string want = s.run(ref_);
    if (want.rfind("-1 ", 0) != 0) ++succeeded;
    std::string got = s.run(path());
    history.push_back("#" + std::to_string(i) + " " + s.desc + " -> " + want);
    if (want != got) {
      ++mismatches;
      std::string recent;
      for (size_t h = history.size() > 12 ? history.size() - 12 : 0; h < history.size(); ++h) {
        recent += "  " + history[h] + "\n";
      }
      ADD_FAILURE() << "op #" << i << " " << s.desc << ": reference " << want << ", dbfs " << got
                    << "\nrecent ops:\n"
                    << recent;
    }
    if (i % 500 == 499 || i == kOps - 1) {
      auto want_shape = Shape(ref_), got_shape = Shape(path());
      std::string d = ShapeDiff(want_shape, got_shape);
      ASSERT_TRUE(d.empty()) << "trees differ after op #" << i << ":\n" << d;
    }
    if (i == kOps / 2) {
      ASSERT_TRUE(vol_->Remount());
      std::string d = ShapeDiff(Shape(ref_), Shape(path()));
      ASSERT_TRUE(d.empty()) << "trees differ after a remount at op #" << i << ":\n" << d;
    }
  }
  std::cout << succeeded << " of " << kOps << " operations succeeded on the reference; "
            << Shape(ref_).size() << " entries at the end\n";
  ASSERT_TRUE(vol_->Remount());
  std::string d = ShapeDiff(Shape(ref_), Shape(path()));
  EXPECT_TRUE(d.empty()) << "trees differ after the final remount:\n" << d;
}

std::string OptionsName(const ::testing::TestParamInfo<std::string>& info) {
  if (info.param.empty()) return "Default";
  if (info.param == "sync") return "Sync";
  if (info.param == "log_level=trace") return "TraceLog";
  if (info.param == "direct_io") return "DirectIo";
  return "NoKernelCache";
}

INSTANTIATE_TEST_SUITE_P(MountOptions, PosixDifferential,
                         ::testing::Values("", "entry_timeout=0,attr_timeout=0", "sync",
                                           "log_level=trace", "direct_io"),
                         OptionsName);

}  // namespace
}  // namespace dbfs::testing
