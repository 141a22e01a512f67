// Tests of plfs itself (tests/powerloss/plfs.cc): what it keeps and what a
// cut loses must match the model in docs/powerloss.md, or the power-cut test
// proves nothing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/powerloss/harness.h"

namespace dbfs::powerloss {
namespace {

using dbfs::testing::ReadFile;
using dbfs::testing::RemoveTree;
using dbfs::testing::RunCommand;
using dbfs::testing::ToolPath;
using std::chrono::milliseconds;

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

// Writes all of data at off through fd.
void PWrite(int fd, const std::string& data, off_t off) {
  ASSERT_EQ(static_cast<ssize_t>(data.size()), pwrite(fd, data.data(), data.size(), off))
      << strerror(errno);
}

int Open(const std::string& p, int flags, mode_t mode = 0644) {
  int fd = open(p.c_str(), flags | O_CLOEXEC, mode);
  EXPECT_GE(fd, 0) << p << ": " << strerror(errno);
  return fd;
}

void FsyncPath(const std::string& p, bool dir) {
  int fd = open(p.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  ASSERT_GE(fd, 0) << p << ": " << strerror(errno);
  EXPECT_EQ(0, fsync(fd)) << p << ": " << strerror(errno);
  close(fd);
}

long StatValue(const std::string& stats, const std::string& key) {
  auto p = stats.find("\n" + key + " ");
  if (p == std::string::npos) p = stats.rfind(key + " ", 0) == 0 ? 0 : std::string::npos;
  if (p == std::string::npos) return -1;
  p = stats.find(' ', p + 1);
  return strtol(stats.c_str() + p + 1, nullptr, 10);
}

class PlfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PlfsBinary().empty());
    ASSERT_EQ(0, access(PlfsBinary().c_str(), X_OK)) << PlfsBinary() << " not built";
    char tmpl[] = "/tmp/plfs-test-XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    backing_ = dir_ + "/backing";
    mnt_ = dir_ + "/mnt";
    log_ = dir_ + "/plfs.log";
    ASSERT_EQ(0, mkdir(backing_.c_str(), 0755));
    ASSERT_EQ(0, mkdir(mnt_.c_str(), 0755));
    ASSERT_NO_FATAL_FAILURE(StartPlfs());
  }

  void StartPlfs() {
    std::string err;
    std::vector<std::string> argv = {PlfsBinary(), backing_, mnt_, "-f"};
    if (multithreaded_) argv.push_back("--mt");
    plfs_ = Daemon::Start("plfs", argv, mnt_, log_, &err);
    ASSERT_TRUE(plfs_ != nullptr) << err << "\n" << Tail(log_, 4000);
  }

  void TearDown() override {
    if (plfs_) {
      std::string err;
      EXPECT_TRUE(plfs_->Unmount(&err)) << err;
      plfs_.reset();
    }
    if (HasFailure()) std::cout << "---- plfs log ----\n" << Tail(log_, 8000) << "\n";
    if (!dir_.empty() && !dbfs::testing::IsMounted(mnt_)) RemoveTree(dir_);
  }

  std::string M(const std::string& rel) const { return mnt_ + "/" + rel; }
  std::string B(const std::string& rel) const { return backing_ + "/" + rel; }

  std::string Ctl(const std::string& cmd) {
    std::string reply;
    EXPECT_TRUE(PlfsCtl(mnt_, cmd, &reply)) << cmd << ": " << reply;
    return reply;
  }

  void Cut(uint64_t seed, const std::string& mode) {
    std::string reply = Ctl("cut " + std::to_string(seed) + " " + mode);
    EXPECT_EQ(0u, reply.rfind("cut seed", 0)) << reply;
  }

  // Unmount after a cut (plfs must exit cleanly).
  void Stop() {
    std::string err;
    EXPECT_TRUE(plfs_->Unmount(&err)) << err;
    plfs_.reset();
  }

  // A file `rel` whose content `data` and directory entry are durable.
  void DurableFile(const std::string& rel, const std::string& data) {
    int fd = Open(M(rel), O_RDWR | O_CREAT | O_TRUNC);
    PWrite(fd, data, 0);
    ASSERT_EQ(0, fsync(fd));
    close(fd);
    FsyncPath(M(rel).substr(0, M(rel).rfind('/')), true);
  }

  std::string dir_, backing_, mnt_, log_;
  bool multithreaded_ = false;  // plfs --mt
  std::unique_ptr<Daemon> plfs_;
};

TEST_F(PlfsTest, ReadsSeePendingWritesThatTheBackingFileDoesNotHaveYet) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", "0123456789"));
  int fd = Open(M("f"), O_RDWR);
  PWrite(fd, "abc", 2);
  PWrite(fd, "XYZ", 12);  // past the end: a hole of 2 bytes
  EXPECT_EQ(std::string("01abc56789\0\0XYZ", 15), ReadFile(M("f")));
  struct stat st;
  ASSERT_EQ(0, fstat(fd, &st));
  EXPECT_EQ(15, st.st_size);
  EXPECT_EQ("0123456789", ReadFile(B("f")));
  ASSERT_EQ(0, ftruncate(fd, 4));
  EXPECT_EQ("01ab", ReadFile(M("f")));
  ASSERT_EQ(0, ftruncate(fd, 6));  // extension reads zeros, not the old bytes
  EXPECT_EQ(std::string("01ab\0\0", 6), ReadFile(M("f")));
  EXPECT_EQ("0123456789", ReadFile(B("f")));
  std::string stats = Ctl("stats");
  EXPECT_EQ(1, StatValue(stats, "pending_files")) << stats;
  EXPECT_EQ(4, StatValue(stats, "pending_ops")) << stats;
  ASSERT_EQ(0, fdatasync(fd));
  EXPECT_EQ(std::string("01ab\0\0", 6), ReadFile(B("f")));
  close(fd);
  EXPECT_EQ(0, StatValue(Ctl("stats"), "pending_files"));
}

TEST_F(PlfsTest, MmapReadsSeePendingWritesAfterThePageCacheIsDropped) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", std::string(3 * 4096, 'o')));
  int fd = Open(M("f"), O_RDWR);
  std::string data(5000, 'n');
  PWrite(fd, data, 1000);
  // Drop the kernel's copy so that the mapping has to fault the pages in
  // through plfs's read.
  ASSERT_EQ(0, posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
  long reads_before = StatValue(Ctl("stats"), "reads");
  void* p = mmap(nullptr, 3 * 4096, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(MAP_FAILED, p) << strerror(errno);
  std::string seen(static_cast<const char*>(p), 3 * 4096);
  munmap(p, 3 * 4096);
  std::string want(3 * 4096, 'o');
  want.replace(1000, 5000, data);
  EXPECT_EQ(want, seen);
  EXPECT_GT(StatValue(Ctl("stats"), "reads"), reads_before)
      << "the mapping did not read through plfs";
  EXPECT_EQ(std::string(3 * 4096, 'o'), ReadFile(B("f")));
  close(fd);
}

TEST_F(PlfsTest, MmapStoresArePendingUntilMsync) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", std::string(2 * 4096, 'a')));
  int fd = Open(M("f"), O_RDWR);
  char* p = static_cast<char*>(mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(MAP_FAILED, p) << strerror(errno);
  memset(p, 'b', 100);
  ASSERT_EQ(0, msync(p, 2 * 4096, MS_SYNC));  // reaches plfs as write + fsync
  EXPECT_EQ(std::string(100, 'b'), ReadFile(B("f")).substr(0, 100));
  memset(p + 4096, 'c', 100);  // written back at the latest at close; never synced
  munmap(p, 2 * 4096);
  close(fd);
  std::string want(2 * 4096, 'a');
  want.replace(0, 100, std::string(100, 'b'));
  std::string with_c = want;
  with_c.replace(4096, 100, std::string(100, 'c'));
  EXPECT_EQ(with_c, ReadFile(M("f")));
  Cut(1, "drop");
  EXPECT_EQ(want, ReadFile(B("f")));
  Stop();
}

TEST_F(PlfsTest, CutDropKeepsExactlyWhatWasSynced) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("a", "version 1"));
  int fd = Open(M("a"), O_RDWR);
  PWrite(fd, "VERSION 2", 0);
  ASSERT_EQ(0, ftruncate(fd, 3));
  close(fd);
  // d: a durable directory holding a durable file x.
  ASSERT_EQ(0, mkdir(M("d").c_str(), 0755));
  ASSERT_NO_FATAL_FAILURE(DurableFile("d/x", "x"));  // fsyncs d
  // b: entry durable, data not.
  fd = Open(M("b"), O_RDWR | O_CREAT);
  FsyncPath(mnt_, true);
  PWrite(fd, "unsynced", 0);
  close(fd);
  // From here on no directory is fsynced: y's and c's entries are not durable
  // (fsync of the file itself does not make its entry durable).
  fd = Open(M("d/y"), O_RDWR | O_CREAT);
  ASSERT_EQ(0, fsync(fd));
  close(fd);
  fd = Open(M("c"), O_RDWR | O_CREAT);
  PWrite(fd, "synced data", 0);
  ASSERT_EQ(0, fsync(fd));
  close(fd);
  EXPECT_EQ("VER", ReadFile(M("a")));
  Cut(7, "drop");
  EXPECT_EQ("version 1", ReadFile(B("a")));
  EXPECT_TRUE(Exists(B("b")));
  EXPECT_EQ("", ReadFile(B("b")));
  EXPECT_FALSE(Exists(B("c")));
  EXPECT_EQ("x", ReadFile(B("d/x")));
  EXPECT_FALSE(Exists(B("d/y")));
  EXPECT_FALSE(Exists(B(".plfs_stash")));
  Stop();
}

TEST_F(PlfsTest, CutDropUndoesUnsyncedNamespaceOperations) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("old", "old content"));
  ASSERT_NO_FATAL_FAILURE(DurableFile("target", "target content"));
  ASSERT_NO_FATAL_FAILURE(DurableFile("gone", "gone content"));
  ASSERT_EQ(0, mkdir(M("emptydir").c_str(), 0755));
  FsyncPath(mnt_, true);
  struct stat target_st;
  ASSERT_EQ(0, stat(B("target").c_str(), &target_st));
  // All of these are lost: nothing fsyncs the root afterwards.
  ASSERT_EQ(0, rename(M("old").c_str(), M("target").c_str()));
  ASSERT_EQ(0, unlink(M("gone").c_str()));
  ASSERT_EQ(0, rmdir(M("emptydir").c_str()));
  ASSERT_EQ(0, mkdir(M("newdir").c_str(), 0755));
  ASSERT_EQ(0, symlink("x", M("link").c_str()));
  ASSERT_EQ(0, link(M("target").c_str(), M("hard").c_str()));
  EXPECT_EQ("old content", ReadFile(M("target")));
  EXPECT_FALSE(Exists(M("old")));
  Cut(3, "drop");
  EXPECT_EQ("old content", ReadFile(B("old")));
  EXPECT_EQ("target content", ReadFile(B("target")));
  struct stat st;
  ASSERT_EQ(0, stat(B("target").c_str(), &st));
  EXPECT_EQ(target_st.st_ino, st.st_ino);
  EXPECT_EQ("gone content", ReadFile(B("gone")));
  EXPECT_TRUE(Exists(B("emptydir")));
  EXPECT_FALSE(Exists(B("newdir")));
  EXPECT_FALSE(Exists(B("link")));
  EXPECT_FALSE(Exists(B("hard")));
  Stop();
}

TEST_F(PlfsTest, DirectoryFsyncCommitsTheJournalUpToItsLastChange) {
  ASSERT_EQ(0, mkdir(M("d1").c_str(), 0755));
  ASSERT_EQ(0, mkdir(M("d2").c_str(), 0755));
  FsyncPath(mnt_, true);
  ASSERT_NO_FATAL_FAILURE(DurableFile("d1/a", "a"));  // journal: create d1/a
  int fd = Open(M("d2/b"), O_RDWR | O_CREAT);         // create d2/b
  close(fd);
  fd = Open(M("d1/c"), O_RDWR | O_CREAT);  // create d1/c
  close(fd);
  fd = Open(M("d2/e"), O_RDWR | O_CREAT);  // create d2/e: after d1's last change
  close(fd);
  // Renaming d1 afterwards does not matter: directories are tracked by inode.
  ASSERT_EQ(0, rename(M("d1").c_str(), M("d3").c_str()));
  FsyncPath(M("d3"), true);  // commits through "create d1/c", which includes d2/b
  Cut(11, "drop");
  EXPECT_TRUE(Exists(B("d1/a")));
  EXPECT_TRUE(Exists(B("d2/b")));
  EXPECT_TRUE(Exists(B("d1/c")));
  EXPECT_FALSE(Exists(B("d2/e")));
  EXPECT_FALSE(Exists(B("d3")));  // the rename of d1 was not made durable
  Stop();
}

TEST_F(PlfsTest, SyncWritesAreDurableWhenTheyReturn) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", "aaaa"));
  int fd = Open(M("f"), O_RDWR | O_DSYNC);
  PWrite(fd, "bb", 0);
  close(fd);
  fd = Open(M("f"), O_RDWR);
  PWrite(fd, "c", 3);
  close(fd);
  Cut(5, "drop");
  EXPECT_EQ("bbaa", ReadFile(B("f")));
  Stop();
}

TEST_F(PlfsTest, EverythingFailsWithEioAfterACut) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", "data"));
  int fd = Open(M("f"), O_RDWR);
  Cut(1, "drop");
  char c;
  EXPECT_EQ(-1, pread(fd, &c, 1, 0));
  EXPECT_EQ(EIO, errno);
  EXPECT_EQ(-1, pwrite(fd, "x", 1, 0));
  EXPECT_EQ(EIO, errno);
  EXPECT_EQ(-1, fsync(fd));
  EXPECT_EQ(EIO, errno);
  close(fd);
  EXPECT_EQ(-1, open(M("g").c_str(), O_CREAT | O_RDWR, 0644));
  EXPECT_EQ(EIO, errno);
  std::string reply;
  EXPECT_FALSE(PlfsCtl(mnt_, "cut 2 drop", &reply));
  EXPECT_NE(std::string::npos, reply.find("already cut")) << reply;
  EXPECT_EQ(1, StatValue(Ctl("stats"), "cut"));
  Stop();
}

// failsync: the sync fails with EIO like a failed writeback on Linux. What
// was pending when it began is lost (never written, not kept by a cut), but
// reads still return it (clean pages in the page cache); a later sync does
// not write it, and writes after the failure are pending as usual.
TEST_F(PlfsTest, FailedSyncLosesWhatWasPendingButKeepsItReadable) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", "0123"));
  ASSERT_NO_FATAL_FAILURE(DurableFile("g", "gggg"));
  EXPECT_EQ("ok\n", Ctl("failsync 1 f"));
  int fd = Open(M("f"), O_RDWR);
  PWrite(fd, "abcd", 4);
  int gd = Open(M("g"), O_RDWR);
  PWrite(gd, "G", 0);
  EXPECT_EQ(0, fsync(gd)) << "a file the failure does not match syncs";
  close(gd);
  EXPECT_EQ(-1, fsync(fd));
  EXPECT_EQ(EIO, errno);
  EXPECT_EQ("0123abcd", ReadFile(M("f")));
  EXPECT_EQ("0123", ReadFile(B("f")));
  std::string stats = Ctl("stats");
  EXPECT_EQ(1, StatValue(stats, "failed_syncs"));
  EXPECT_EQ(0, StatValue(stats, "failsync_armed"));
  PWrite(fd, "XY", 8);
  EXPECT_EQ(0, fsync(fd)) << "only one sync was armed to fail";
  close(fd);
  // The lost bytes never reach the file; the hole they leave reads as zeros.
  EXPECT_EQ(std::string("0123\0\0\0\0XY", 10), ReadFile(B("f")));
  Cut(3, "drop");
  EXPECT_EQ(std::string("0123\0\0\0\0XY", 10), ReadFile(B("f")));
  EXPECT_EQ("Gggg", ReadFile(B("g")));
  Stop();
}

TEST_F(PlfsTest, FailedOSyncWriteReportsEio) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", "0123"));
  EXPECT_EQ("ok\n", Ctl("failsync 1 f"));
  int fd = Open(M("f"), O_RDWR | O_DSYNC);
  EXPECT_EQ(-1, pwrite(fd, "ab", 2, 0));
  EXPECT_EQ(EIO, errno);
  close(fd);
  EXPECT_EQ("0123", ReadFile(B("f")));
  std::string reply;
  EXPECT_FALSE(PlfsCtl(mnt_, "failsync 1 f hold", &reply)) << "hold needs --mt";
  EXPECT_FALSE(PlfsCtl(mnt_, "failsync x", &reply));
  Stop();
}

class PlfsMtTest : public PlfsTest {
 protected:
  PlfsMtTest() { multithreaded_ = true; }
};

// failsync ... hold: the failing sync waits for `release`, and plfs (--mt)
// serves everything else meanwhile.
TEST_F(PlfsMtTest, HeldSyncFailsOnReleaseWhileOtherRequestsAreServed) {
  ASSERT_NO_FATAL_FAILURE(DurableFile("f", "0123"));
  EXPECT_EQ("ok\n", Ctl("failsync 1 f hold"));
  int fd = Open(M("f"), O_RDWR);
  PWrite(fd, "abcd", 4);
  std::atomic<int> result{1}, err{0};
  std::thread syncer([&] {
    int r = fsync(fd);
    err.store(errno);
    result.store(r);
  });
  EXPECT_TRUE(dbfs::testing::WaitFor([&] { return StatValue(Ctl("stats"), "held") == 1; },
                                     milliseconds(10000)));
  // Other files are served while it is held (plain plfs would be stuck).
  ASSERT_NO_FATAL_FAILURE(DurableFile("g", "gggg"));
  EXPECT_EQ("gggg", ReadFile(B("g")));
  EXPECT_EQ(1, result.load()) << "the held fsync returned before release";
  EXPECT_EQ("ok released 1\n", Ctl("release"));
  syncer.join();
  EXPECT_EQ(-1, result.load());
  EXPECT_EQ(EIO, err.load());
  close(fd);
  EXPECT_EQ(0, StatValue(Ctl("stats"), "held"));
  EXPECT_EQ("0123", ReadFile(B("f")));
  Stop();
}

TEST_F(PlfsTest, SyncCommandAndCleanUnmountMakeEverythingDurable) {
  int fd = Open(M("f"), O_RDWR | O_CREAT);
  PWrite(fd, "one", 0);
  close(fd);
  Ctl("sync");
  EXPECT_EQ("one", ReadFile(B("f")));
  EXPECT_EQ(0, StatValue(Ctl("stats"), "pending_ns_ops"));
  fd = Open(M("g"), O_RDWR | O_CREAT);
  PWrite(fd, "two", 0);
  close(fd);
  ASSERT_EQ(0, unlink(M("f").c_str()));
  Stop();  // a clean unmount is a clean shutdown
  EXPECT_EQ("two", ReadFile(B("g")));
  EXPECT_FALSE(Exists(B("f")));
  EXPECT_FALSE(Exists(B(".plfs_stash")));
  ASSERT_NO_FATAL_FAILURE(StartPlfs());  // for TearDown
}

// ---- prefix and random: what survives is made of pending writes only ----

constexpr size_t kBase = 20000;
constexpr int kWrites = 24;

struct W {
  size_t off, len;
  char byte;
};
std::vector<W> Writes() {
  std::vector<W> w;
  for (int g = 1; g <= kWrites; ++g) {
    w.push_back({static_cast<size_t>(g * 1237) % 16000, 2000 + static_cast<size_t>(g) * 150,
                 static_cast<char>(g)});
  }
  return w;
}
std::string After(int k) {  // the file after the first k writes
  std::string s(kBase, 'B');
  auto w = Writes();
  for (int i = 0; i < k; ++i) {
    if (s.size() < w[i].off + w[i].len) s.resize(w[i].off + w[i].len, '\0');
    std::fill(s.begin() + w[i].off, s.begin() + w[i].off + w[i].len, w[i].byte);
  }
  return s;
}

class PlfsCutModeTest : public PlfsTest {
 protected:
  // Makes the file durable, issues the pending writes, cuts with `seed`, and
  // returns what the backing file holds; plfs is restarted for the next round.
  std::string CutAfterWrites(const std::string& mode, uint64_t seed) {
    std::string out;
    [&] {
      ASSERT_NO_FATAL_FAILURE(DurableFile("f", std::string(kBase, 'B')));
      int fd = Open(M("f"), O_RDWR);
      for (const W& w : Writes()) PWrite(fd, std::string(w.len, w.byte), w.off);
      close(fd);
      EXPECT_EQ(After(kWrites), ReadFile(M("f")));
      Cut(seed, mode);
      out = ReadFile(B("f"));
      Stop();
      ASSERT_EQ(0, unlink(B("f").c_str()));
      ASSERT_NO_FATAL_FAILURE(StartPlfs());
    }();
    return out;
  }
};

TEST_F(PlfsCutModeTest, PrefixKeepsAPrefixOfThePendingWrites) {
  std::set<int> prefixes;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    std::string got = CutAfterWrites("prefix", seed);
    int match = -1;
    for (int k = 0; k <= kWrites; ++k) {
      if (got == After(k)) match = k;
    }
    EXPECT_GE(match, 0) << "seed " << seed << ": not the state after any prefix of the writes";
    prefixes.insert(match);
    if (HasFatalFailure()) return;
  }
  // The seeds must produce different, partial prefixes.
  EXPECT_GE(prefixes.size(), 4u);
}

TEST_F(PlfsCutModeTest, RandomKeepsPagesOfPendingWritesAndNeverInventsData) {
  auto writes = Writes();
  int partial = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    std::string got = CutAfterWrites("random", seed);
    ASSERT_GE(got.size(), kBase) << "seed " << seed;
    for (size_t p = 0; p < got.size(); ++p) {
      std::set<char> allowed = {p < kBase ? 'B' : '\0'};
      for (const W& w : writes) {
        if (p >= w.off && p < w.off + w.len) allowed.insert(w.byte);
      }
      if (!allowed.count(got[p])) {
        ADD_FAILURE() << "seed " << seed << ": byte " << p << " = " << int(got[p])
                      << " was never written there";
        break;
      }
    }
    // Each 4 KiB page (of the file) that a write covers is all or nothing:
    // of its bytes that no later write covers, all or none hold that write.
    for (size_t i = 0; i < writes.size(); ++i) {
      const W& w = writes[i];
      for (size_t page = w.off / 4096; page * 4096 < w.off + w.len; ++page) {
        int mine = 0, other = 0;
        for (size_t p = std::max(w.off, page * 4096);
             p < std::min(w.off + w.len, (page + 1) * 4096); ++p) {
          bool later = false;
          for (size_t j = i + 1; j < writes.size(); ++j) {
            later |= p >= writes[j].off && p < writes[j].off + writes[j].len;
          }
          if (later || p >= got.size()) continue;
          (got[p] == w.byte ? mine : other)++;
        }
        EXPECT_TRUE(mine == 0 || other == 0)
            << "seed " << seed << ": page " << page << " of write " << i + 1 << " is torn";
      }
    }
    bool is_prefix = false;
    for (int k = 0; k <= kWrites; ++k) is_prefix |= got == After(k);
    partial += !is_prefix;
  }
  EXPECT_GE(partial, 4) << "random mode should produce states that are no prefix";
}

// ---- DBFS runs on plfs (LMDB maps its data file and a MAP_SHARED lock file) ----

TEST_F(PlfsTest, DbfsRunsOnPlfsAndACleanUnmountIsDurable) {
  std::string mkfs = ToolPath("mkfs.dbfs"), mount = ToolPath("dbfs-mount"),
              fsck = ToolPath("fsck.dbfs");
  ASSERT_TRUE(!mkfs.empty() && !mount.empty() && !fsck.empty()) << "DBFS tools not built";
  std::string out;
  ASSERT_EQ(0, RunCommand({mkfs, "-q", M("vol")}, milliseconds(60000), &out)) << out;
  std::string dmnt = dir_ + "/dbfs";
  ASSERT_EQ(0, mkdir(dmnt.c_str(), 0755));
  std::string err;
  auto dbfs =
      Daemon::Start("dbfs-mount", {mount, M("vol"), dmnt, "-f"}, dmnt, dir_ + "/dbfs.log", &err);
  ASSERT_TRUE(dbfs != nullptr) << err << Tail(dir_ + "/dbfs.log", 4000);
  std::map<std::string, std::string> files;
  for (int i = 0; i < 50; ++i) {
    std::string name = "f" + std::to_string(i);
    files[name] = std::string(100 + i * 997, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(dbfs::testing::WriteFile(dmnt + "/" + name, files[name]));
  }
  EXPECT_EQ(files["f7"], ReadFile(dmnt + "/f7"));
  ASSERT_TRUE(dbfs->Unmount(&err)) << err << Tail(dir_ + "/dbfs.log", 4000);
  dbfs.reset();
  // Whatever DBFS did not sync before its clean unmount returned is lost now.
  Cut(42, "drop");
  Stop();
  EXPECT_EQ(0, RunCommand({fsck, "-n", B("vol")}, milliseconds(60000), &out)) << out;
  dbfs = Daemon::Start("dbfs-mount", {mount, B("vol"), dmnt, "-f"}, dmnt, dir_ + "/dbfs.log", &err);
  ASSERT_TRUE(dbfs != nullptr) << err << Tail(dir_ + "/dbfs.log", 4000);
  for (auto& [name, data] : files) EXPECT_EQ(data, ReadFile(dmnt + "/" + name)) << name;
  ASSERT_TRUE(dbfs->Unmount(&err)) << err;
  ASSERT_NO_FATAL_FAILURE(StartPlfs());  // for TearDown
}

}  // namespace
}  // namespace dbfs::powerloss
