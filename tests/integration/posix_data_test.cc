// Data integrity: random overwrites against an in-memory model, a 1 GiB
// sequential write + hash, sparse reads, truncate down/up, and persistence of
// a whole tree across unmount/mount.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class PosixData : public MountTest {};

uint64_t SeedFromEnv() {
  if (const char* s = getenv("DBFS_TEST_SEED")) return strtoull(s, nullptr, 10);
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

// FNV-1a 64, good enough to compare two byte streams.
struct Hash64 {
  uint64_t h = 1469598103934665603ull;
  void Add(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(p[i]);
      h *= 1099511628211ull;
    }
  }
};

// Compares file content against the model, reporting the first difference.
::testing::AssertionResult SameAsModel(int fd, const std::string& model) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ::testing::AssertionFailure() << "fstat: " << ErrName(errno);
  if (static_cast<size_t>(st.st_size) != model.size()) {
    return ::testing::AssertionFailure() << "size " << st.st_size << ", model " << model.size();
  }
  std::string got = PRead(fd, model.size() + 10, 0);
  if (got.size() != model.size()) {
    return ::testing::AssertionFailure()
           << "read " << got.size() << " bytes, model " << model.size();
  }
  if (got != model) {
    size_t i = 0;
    while (got[i] == model[i]) ++i;
    size_t j = model.size();
    while (got[j - 1] == model[j - 1]) --j;
    return ::testing::AssertionFailure()
           << "content differs in [" << i << ", " << j << ") of " << model.size();
  }
  return ::testing::AssertionSuccess();
}

TEST_F(PosixData, RandomOverwritesMatchModel) {
  const uint64_t seed = SeedFromEnv();
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (rerun with DBFS_TEST_SEED=" + std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  constexpr size_t kSize = 8 << 20;
  constexpr size_t kMaxWrite = 300 * 1024;
  std::string f = path("random");
  std::string model = Pattern(kSize, 77);
  ASSERT_TRUE(WriteFile(f, model));
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  int ops = 1200;
  for (int op = 0; op < ops; ++op) {
    size_t len = 1 + rng() % kMaxWrite;
    if (rng() % 4 == 0) len = 1 + rng() % 64;  // many small writes too
    // Writes may extend the file a little past 8 MiB.
    size_t off = rng() % (kSize + 64 * 1024);
    if (off > model.size()) off = model.size();  // no holes in this test
    std::string data(len, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    if (rng() % 8 == 0) {
      // Reopen occasionally so writes go through fresh handles too.
      fd.reset();
      fd = Fd(open(f.c_str(), O_RDWR));
      ASSERT_SYS(fd.get());
    }
    ASSERT_TRUE(PWriteAll(fd, data, off))
        << "op " << op << " pwrite(" << off << ", " << len << "): " << ErrName(errno);
    if (off + len > model.size()) model.resize(off + len);
    model.replace(off, len, data);
    if (rng() % 10 == 0) {
      size_t roff = rng() % model.size();
      size_t rlen = std::min<size_t>(1 + rng() % kMaxWrite, model.size() - roff);
      ASSERT_EQ(model.substr(roff, rlen), PRead(fd, rlen, roff))
          << "op " << op << " read(" << roff << ", " << rlen << ")";
    }
    if (op % 100 == 99) {
      ASSERT_TRUE(SameAsModel(fd, model)) << "after op " << op;
    }
  }
  ASSERT_TRUE(SameAsModel(fd, model)) << "at the end";
  ASSERT_SYS(fsync(fd));
  fd.reset();
  ASSERT_TRUE(vol_->Remount());
  Fd again(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(again.get());
  EXPECT_TRUE(SameAsModel(again, model)) << "after remount";
}

TEST_F(PosixData, OneGiBSequentialWriteAndHash) {
  constexpr size_t kChunk = 1 << 20;
  constexpr size_t kChunks = 1024;
  std::string f = path("big");
  auto start = std::chrono::steady_clock::now();
  Hash64 written;
  {
    Fd fd(open(f.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644));
    ASSERT_SYS(fd.get());
    std::vector<uint64_t> buf(kChunk / 8);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t c = 0; c < kChunks; ++c) {
      for (auto& w : buf) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w = x;
      }
      const char* p = reinterpret_cast<const char*>(buf.data());
      written.Add(p, kChunk);
      size_t done = 0;
      while (done < kChunk) {
        ssize_t n = write(fd, p + done, kChunk - done);
        ASSERT_GT(n, 0) << "write chunk " << c << ": " << ErrName(errno);
        done += n;
      }
    }
    ASSERT_SYS(fsync(fd));
  }
  auto written_at = std::chrono::steady_clock::now();
  EXPECT_EQ(static_cast<off_t>(kChunk * kChunks), StatOf(f).st_size);
  auto read_hash = [&](Hash64* h) {
    Fd fd(open(f.c_str(), O_RDONLY));
    ASSERT_SYS(fd.get());
    std::vector<char> buf(kChunk);
    size_t total = 0;
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      ASSERT_GE(n, 0) << ErrName(errno);
      if (n == 0) break;
      h->Add(buf.data(), n);
      total += n;
    }
    EXPECT_EQ(kChunk * kChunks, total);
  };
  Hash64 first;
  read_hash(&first);
  EXPECT_EQ(written.h, first.h) << "read-back hash differs";
  // And once more from a fresh mount (nothing served from the page cache).
  ASSERT_TRUE(vol_->Remount());
  Hash64 second;
  read_hash(&second);
  EXPECT_EQ(written.h, second.h) << "read-back hash after remount differs";
  auto end = std::chrono::steady_clock::now();
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  std::cout << "1 GiB: write+fsync " << duration_cast<milliseconds>(written_at - start).count()
            << " ms, 2x read + remount " << duration_cast<milliseconds>(end - written_at).count()
            << " ms\n";
}

TEST_F(PosixData, SparseReadsReturnZeros) {
  std::string f = path("sparse");
  Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(fd.get());
  std::string a = Pattern(5000, 1), b = Pattern(7000, 2);
  ASSERT_TRUE(PWriteAll(fd, a, 0));
  ASSERT_TRUE(PWriteAll(fd, b, (10 << 20) + 123));
  EXPECT_EQ((10 << 20) + 123 + 7000, FStatOf(fd).st_size);
  std::string gap = PRead(fd, (10 << 20) + 123 - 5000, 5000);
  EXPECT_EQ(static_cast<size_t>((10 << 20) + 123 - 5000), gap.size());
  EXPECT_TRUE(AllZero(gap)) << "hole must read as zeros";
  EXPECT_EQ(a, PRead(fd, 5000, 0));
  EXPECT_EQ(b, PRead(fd, 7000, (10 << 20) + 123));
  // A read spanning data and hole.
  std::string span = PRead(fd, 10000, 0);
  EXPECT_EQ(a + std::string(5000, '\0'), span);
  // Reads at and past EOF.
  EXPECT_EQ("", PRead(fd, 100, (10 << 20) + 123 + 7000));
  EXPECT_EQ(b.substr(6990), PRead(fd, 100, (10 << 20) + 123 + 6990));
  // Hole-only file grown by ftruncate.
  Fd g(open(path("holes").c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(ftruncate(g, 3 << 20));
  EXPECT_TRUE(AllZero(PRead(g, 3 << 20, 0)));
  fd.reset();
  g.reset();
  ASSERT_TRUE(vol_->Remount());
  std::string all = ReadFile(f);
  ASSERT_EQ(static_cast<size_t>((10 << 20) + 123 + 7000), all.size());
  EXPECT_EQ(a, all.substr(0, 5000));
  EXPECT_TRUE(AllZero(all.substr(5000, (10 << 20) + 123 - 5000)));
  EXPECT_EQ(b, all.substr((10 << 20) + 123));
}

TEST_F(PosixData, TruncateDownThenUpReadsZeros) {
  std::string f = path("t");
  std::string data = Pattern(4 << 20, 31);
  ASSERT_TRUE(WriteFile(f, data));
  // Unaligned cut inside a chunk, across many chunks.
  const size_t cut = (1 << 20) + 123;
  ASSERT_SYS(truncate(f.c_str(), cut));
  ASSERT_SYS(truncate(f.c_str(), 4 << 20));
  std::string got = ReadFile(f);
  ASSERT_EQ(data.size(), got.size());
  EXPECT_EQ(data.substr(0, cut), got.substr(0, cut));
  EXPECT_TRUE(AllZero(got.substr(cut))) << "old bytes came back after truncate down+up";
  // Writing past a truncated tail leaves zeros in between.
  ASSERT_SYS(truncate(f.c_str(), 10));
  Fd fd(open(f.c_str(), O_WRONLY));
  ASSERT_TRUE(PWriteAll(fd, "tail", 3 << 20));
  fd.reset();
  got = ReadFile(f);
  ASSERT_EQ(static_cast<size_t>((3 << 20) + 4), got.size());
  EXPECT_EQ(data.substr(0, 10), got.substr(0, 10));
  EXPECT_TRUE(AllZero(got.substr(10, (3 << 20) - 10)));
  EXPECT_EQ("tail", got.substr(3 << 20));
  ASSERT_TRUE(vol_->Remount());
  EXPECT_EQ(got, ReadFile(f)) << "after remount";
}

// Write-only descriptors use direct I/O (write(2) atomicity); descriptors
// that read keep the page cache. A cached reader and a shared read mapping
// must still see every write at once, never stale pages.
TEST_F(PosixData, CachedReaderAndMappingSeeDirectWrites) {
  std::string f = path("c");
  std::string data = Pattern(64 << 10, 7);
  ASSERT_TRUE(WriteFile(f, data));
  Fd r(open(f.c_str(), O_RDONLY));
  ASSERT_GE(r.get(), 0);
  std::string got(data.size(), '\0');
  ASSERT_EQ(static_cast<ssize_t>(got.size()), pread(r.get(), got.data(), got.size(), 0));
  ASSERT_EQ(data, got);  // every page is now cached
  void* map = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, r.get(), 0);
  ASSERT_NE(MAP_FAILED, map);
  const char* m = static_cast<const char*>(map);
  ASSERT_EQ(0, memcmp(m, data.data(), data.size()));
  Fd w(open(f.c_str(), O_WRONLY));
  ASSERT_GE(w.get(), 0);
  // Unaligned, across page boundaries.
  const std::string patch = Pattern(9000, 8);
  ASSERT_TRUE(PWriteAll(w.get(), patch, 4095));
  data.replace(4095, patch.size(), patch);
  ASSERT_EQ(static_cast<ssize_t>(got.size()), pread(r.get(), got.data(), got.size(), 0));
  EXPECT_EQ(data, got) << "a cached reader saw stale pages after a write-only descriptor wrote";
  EXPECT_EQ(0, memcmp(m, data.data(), data.size())) << "a shared mapping saw stale pages";
  munmap(map, data.size());
}

// A full description of a tree, for before/after comparisons.
// Files in `no_read` are not read (their atime must stay untouched).
std::map<std::string, std::string> Manifest(const std::string& root,
                                            const std::set<std::string>& no_read = {}) {
  std::map<std::string, std::string> m;
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string full = rel.empty() ? root : root + "/" + rel;
    struct stat st;
    if (lstat(full.c_str(), &st) != 0) {
      m[rel] = std::string("lstat failed: ") + ErrName(errno);
      continue;
    }
    std::ostringstream o;
    o << "ino=" << st.st_ino << " mode=" << std::oct << st.st_mode << std::dec
      << " uid=" << st.st_uid << " gid=" << st.st_gid << " nlink=" << st.st_nlink
      << " mtime=" << TsStr(st.st_mtim) << " ctime=" << TsStr(st.st_ctim);
    if (!S_ISDIR(st.st_mode)) o << " size=" << st.st_size;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      o << " rdev=" << major(st.st_rdev) << ":" << minor(st.st_rdev);
    }
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = readlink(full.c_str(), buf, sizeof buf);
      o << " target=" << (n >= 0 ? std::string(buf, n) : "?");
    }
    if (S_ISREG(st.st_mode) && !no_read.count(rel)) {
      Hash64 h;
      std::string content = ReadFile(full);
      h.Add(content.data(), content.size());
      o << " hash=" << std::hex << h.h << std::dec;
    }
    if (!S_ISLNK(st.st_mode)) {
      char names[65536];
      ssize_t n = listxattr(full.c_str(), names, sizeof names);
      std::map<std::string, std::string> xs;
      for (ssize_t i = 0; i < n;) {
        std::string name(names + i);
        i += name.size() + 1;
        if (name.rfind("user.", 0) != 0) continue;
        char val[65536];
        ssize_t vn = getxattr(full.c_str(), name.c_str(), val, sizeof val);
        xs[name] = vn >= 0 ? std::string(val, vn) : "?";
      }
      for (auto& [k, v] : xs) o << " x:" << k << "=" << v;
    }
    m[rel] = o.str();
    if (S_ISDIR(st.st_mode)) {
      DIR* d = opendir(full.c_str());
      if (!d) continue;
      while (struct dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        stack.push_back(rel.empty() ? n : rel + "/" + n);
      }
      closedir(d);
    }
  }
  return m;
}

// Builds a tree with every kind of entry and attribute under r.
constexpr struct timespec kNeverRead[2] = {{1500000000, 5}, {1400000000, 6}};
void BuildTree(const std::string& r) {
  ASSERT_SYS(mkdir((r + "/a").c_str(), 0755));
  ASSERT_SYS(mkdir((r + "/a/b").c_str(), 0700));
  ASSERT_SYS(mkdir((r + "/a/b/c").c_str(), 0755));
  ASSERT_SYS(mkdir((r + "/tmp").c_str(), 0777));
  ASSERT_SYS(chmod((r + "/tmp").c_str(), 01777));
  size_t sizes[] = {0, 1, 4095, 4096, 4097, 65536, (1 << 20) + 7, 3 << 20};
  int i = 0;
  for (size_t s : sizes) {
    std::string f = r + "/a/f" + std::to_string(i);
    ASSERT_TRUE(WriteFile(f, Pattern(s, 100 + i)));
    ++i;
  }
  ASSERT_TRUE(WriteFile(r + "/a/b/c/deep", "deep file"));
  ASSERT_TRUE(WriteFile(r + "/suid", "s"));
  ASSERT_SYS(chmod((r + "/suid").c_str(), 04755));
  ASSERT_TRUE(WriteFile(r + "/owned", "o"));
  ASSERT_SYS(chown((r + "/owned").c_str(), kNobody, kOtherUser));
  ASSERT_SYS(chmod((r + "/owned").c_str(), 0640));
  ASSERT_SYS(link((r + "/a/f1").c_str(), (r + "/a/b/hardlink").c_str()));
  ASSERT_SYS(symlink("a/b/c/deep", (r + "/sym").c_str()));
  ASSERT_SYS(symlink("/nonexistent/target", (r + "/a/dangling").c_str()));
  ASSERT_SYS(mkfifo((r + "/fifo").c_str(), 0600));
  ASSERT_SYS(mknod((r + "/chr").c_str(), S_IFCHR | 0644, makedev(1, 5)));
  ASSERT_SYS(setxattr((r + "/a/f2").c_str(), "user.k1", "v1", 2, 0));
  ASSERT_SYS(setxattr((r + "/a/f2").c_str(), "user.k2", "", 0, 0));
  ASSERT_SYS(setxattr((r + "/a/b").c_str(), "user.dir", "dirval", 6, 0));
  // Sparse file.
  {
    Fd fd(open((r + "/sparse").c_str(), O_CREAT | O_WRONLY, 0644));
    ASSERT_TRUE(PWriteAll(fd, "end", 100 << 20));
  }
  // A file that was renamed, one overwritten by rename, one removed.
  ASSERT_TRUE(WriteFile(r + "/old", "old"));
  ASSERT_SYS(rename((r + "/old").c_str(), (r + "/a/renamed").c_str()));
  ASSERT_TRUE(WriteFile(r + "/victim", "victim"));
  ASSERT_TRUE(WriteFile(r + "/winner", "winner"));
  ASSERT_SYS(rename((r + "/winner").c_str(), (r + "/victim").c_str()));
  ASSERT_TRUE(WriteFile(r + "/gone", "gone"));
  ASSERT_SYS(unlink((r + "/gone").c_str()));
  // Explicit times last (other steps would bump them), including nanoseconds.
  struct timespec ts[2] = {{1234567890, 111}, {1234567891, 999999999}};
  ASSERT_SYS(utimensat(AT_FDCWD, (r + "/a/f3").c_str(), ts, 0));
  ASSERT_SYS(utimensat(AT_FDCWD, (r + "/sym").c_str(), ts, AT_SYMLINK_NOFOLLOW));
  ASSERT_SYS(utimensat(AT_FDCWD, (r + "/a/f7").c_str(), kNeverRead, 0));
}

// fsyncs every file and directory under r (symlinks and special files are
// covered by their directory's fsync).
void SyncTree(const std::string& r) {
  std::vector<std::string> stack = {r};
  while (!stack.empty()) {
    std::string d = stack.back();
    stack.pop_back();
    for (const std::string& n : ListDir(d)) {
      std::string p = d + "/" + n;
      struct stat st = LStatOf(p);
      if (S_ISDIR(st.st_mode)) {
        stack.push_back(p);
      } else if (S_ISREG(st.st_mode)) {
        Fd fd(open(p.c_str(), O_RDONLY | O_NOATIME));
        if (!fd.ok()) fd = Fd(open(p.c_str(), O_RDONLY));
        ASSERT_SYS(fd.get()) << p;
        ASSERT_SYS(fsync(fd)) << p;
      }
    }
    Fd fd(open(d.c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_SYS(fd.get()) << d;
    ASSERT_SYS(fsync(fd)) << d;
  }
}

void ExpectSameManifest(const std::map<std::string, std::string>& before,
                        const std::map<std::string, std::string>& after, const std::string& when) {
  EXPECT_EQ(before.size(), after.size()) << when;
  for (auto& [k, v] : before) {
    auto it = after.find(k);
    if (it == after.end()) {
      ADD_FAILURE() << "missing " << when << ": " << k;
    } else {
      EXPECT_EQ(v, it->second) << k << " " << when;
    }
  }
  for (auto& [k, v] : after) {
    if (!before.count(k)) ADD_FAILURE() << "new " << when << ": " << k;
  }
}

// Pages of `fd`'s file (first `len` bytes) in the page cache, by mincore on
// a mapping that is never touched (no faults).
size_t ResidentPages(int fd, size_t len) {
  void* map = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    ADD_FAILURE() << "mmap: " << ErrName(errno);
    return 0;
  }
  std::vector<unsigned char> vec((len + 4095) / 4096);
  size_t n = 0;
  if (mincore(map, len, vec.data()) != 0) {
    ADD_FAILURE() << "mincore: " << ErrName(errno);
  } else {
    for (unsigned char v : vec) n += v & 1;
  }
  munmap(map, len);
  return n;
}

// The cache mode of read-write descriptors (docs/ARCHITECTURE.md §7): an
// existing file keeps the page cache, so a database re-reading its pages
// through O_RDWR is served by the kernel; a file empty at open uses direct
// I/O (write(2) atomicity), so its reads do not fill the page cache.
TEST_F(PosixData, ReadWriteDescriptorsCacheExistingFilesOnly) {
  if (PlainDirMode()) GTEST_SKIP() << "DBFS cache policy";
  const size_t kLen = 64 << 10;
  const std::string data = Pattern(kLen, 11);
  const std::string existing = path("existing"), fresh = path("fresh");
  ASSERT_TRUE(WriteFile(existing, data));
  {
    Fd fd(open(existing.c_str(), O_RDWR));
    ASSERT_SYS(fd.get());
    ASSERT_EQ(0, posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED));
    ASSERT_EQ(0u, ResidentPages(fd.get(), kLen)) << "the pages were not dropped";
    std::string got(kLen, '\0');
    ASSERT_EQ(static_cast<ssize_t>(kLen), pread(fd.get(), got.data(), kLen, 0));
    ASSERT_EQ(data, got);
    EXPECT_EQ(kLen / 4096, ResidentPages(fd.get(), kLen))
        << "reads through O_RDWR of an existing file bypassed the page cache";
  }
  {
    Fd fd(open(fresh.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644));
    ASSERT_SYS(fd.get());
    ASSERT_TRUE(PWriteAll(fd.get(), data, 0));
    std::string got(kLen, '\0');
    ASSERT_EQ(static_cast<ssize_t>(kLen), pread(fd.get(), got.data(), kLen, 0));
    ASSERT_EQ(data, got);
    EXPECT_EQ(0u, ResidentPages(fd.get(), kLen))
        << "a read-write descriptor of a new file went through the page cache";
  }
}

TEST_F(PosixData, TreePersistsAcrossRemount) {
  std::string r = path();
  BuildTree(r);
  if (HasFatalFailure()) return;

  auto before = Manifest(r, {"a/f7"});
  ASSERT_TRUE(vol_->Remount());
  // atime of a file nobody read since it was set survives too.
  struct stat st = StatOf(r + "/a/f7");
  EXPECT_TRUE(TsEq(kNeverRead[0], st.st_atim)) << TsStr(st.st_atim);
  ExpectSameManifest(before, Manifest(r, {"a/f7"}), "after remount");
  // And a second remount after reading everything (reads must not change
  // anything the manifest covers; it has no atimes).
  ASSERT_TRUE(vol_->Remount());
  ExpectSameManifest(before, Manifest(r, {"a/f7"}), "after a second remount");
}

TEST_F(PosixData, SyncedTreeSurvivesDaemonKill) {
  std::string r = path();
  BuildTree(r);
  if (HasFatalFailure()) return;
  SyncTree(r);
  if (HasFatalFailure()) return;
  auto before = Manifest(r, {"a/f7"});
  ASSERT_TRUE(vol_->Kill9());
  ASSERT_TRUE(vol_->FsckClean("after SIGKILL of the daemon"));
  ASSERT_TRUE(vol_->Mount());
  EXPECT_TRUE(TsEq(kNeverRead[0], StatOf(r + "/a/f7").st_atim));
  ExpectSameManifest(before, Manifest(r, {"a/f7"}), "after SIGKILL + recovery");
}

TEST_F(PosixData, UnlinkedOpenFileAcrossCrashAndCleanUnmount) {
  // An unlinked-but-open file is an orphan: after a crash, recovery (and
  // fsck) must cope with it; after a clean unmount it is gone.
  std::string f = path("orphan"), g = path("keep");
  ASSERT_TRUE(WriteFile(g, "keep"));
  {
    Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
    ASSERT_SYS(fd.get());
    ASSERT_TRUE(PWriteAll(fd, Pattern(4 << 20, 3), 0));
    ASSERT_SYS(fsync(fd));
    ASSERT_SYS(unlink(f.c_str()));
    ASSERT_TRUE(PWriteAll(fd, "more", 4 << 20));
    ASSERT_SYS(fsync(fd));
    // Kill the daemon while the orphan is still open.
    ASSERT_TRUE(vol_->Kill9());
  }
  ASSERT_TRUE(vol_->FsckClean("after SIGKILL with an open orphan"));
  ASSERT_TRUE(vol_->Mount());
  EXPECT_FALSE(Exists(f));
  EXPECT_EQ("keep", ReadFile(g));
  EXPECT_EQ(std::vector<std::string>{"keep"}, ListDir(path()));
  // Clean path: orphan closed before unmount.
  {
    Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
    ASSERT_SYS(fd.get());
    ASSERT_TRUE(PWriteAll(fd, Pattern(1 << 20, 4), 0));
    ASSERT_SYS(unlink(f.c_str()));
  }
  ASSERT_TRUE(vol_->Unmount());
  ASSERT_TRUE(vol_->FsckClean("after a clean unmount following an orphan"));
  ASSERT_TRUE(vol_->Mount());
  EXPECT_EQ(std::vector<std::string>{"keep"}, ListDir(path()));
}

TEST_F(PosixData, MetadataBeyondTheInitialStoreSize) {
  // ~300 MiB of xattrs: more metadata than the initial LMDB map (256 MiB)
  // holds. Users must never see MDB_MAP_FULL; the store grows.
  if (vol_->plain()) GTEST_SKIP() << "ext4 limits xattrs to one block per inode";
  constexpr int kFiles = 200, kPerFile = 360;  // 72k values of one 4 KiB page each
  std::string value = Pattern(4000, 8);
  for (int f = 0; f < kFiles; ++f) {
    std::string p = path("x" + std::to_string(f));
    ASSERT_TRUE(WriteFile(p, ""));
    for (int i = 0; i < kPerFile; ++i) {
      std::string name = "user.a" + std::to_string(i);
      value[0] = static_cast<char>(f);
      value[1] = static_cast<char>(i);
      ASSERT_SYS(setxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0))
          << p << " " << name;
    }
  }
  ASSERT_TRUE(vol_->Remount());
  struct stat meta;
  if (stat((vol_->volume() + "/meta/data.mdb").c_str(), &meta) == 0) {
    std::cout << "meta/data.mdb: " << (meta.st_size >> 20) << " MiB\n";
  }
  for (int f = 0; f < kFiles; f += 17) {
    std::string p = path("x" + std::to_string(f));
    for (int i = 0; i < kPerFile; i += 13) {
      std::string name = "user.a" + std::to_string(i);
      char buf[4096];
      ssize_t n = getxattr(p.c_str(), name.c_str(), buf, sizeof buf);
      ASSERT_EQ(4000, n) << p << " " << name << ": " << ErrName(errno);
      EXPECT_EQ(static_cast<char>(f), buf[0]);
      EXPECT_EQ(static_cast<char>(i), buf[1]);
      EXPECT_EQ(0, memcmp(buf + 2, value.data() + 2, 3998));
    }
  }
  // Deleting it all works too.
  for (int f = 0; f < kFiles; ++f) ASSERT_SYS(unlink(path("x" + std::to_string(f)).c_str()));
}

}  // namespace
}  // namespace dbfs::testing
