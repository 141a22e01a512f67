// readdir: completeness, telldir/seekdir, and stability while the directory
// changes underneath a listing.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class PosixDir : public MountTest {};

struct Entry {
  std::string name;
  ino_t ino;
  unsigned char type;
};

// Lists with raw getdents64 and a small buffer, so one listing takes many
// calls (each resuming from the kernel's/filesystem's offset).
std::vector<Entry> GetDents(int fd, size_t bufsize) {
  std::vector<Entry> out;
  std::vector<char> buf(bufsize);
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf.data(), buf.size());
    if (n < 0) {
      ADD_FAILURE() << "getdents64: " << ErrName(errno);
      break;
    }
    if (n == 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf.data() + off);
      out.push_back({d->d_name, d->d_ino, d->d_type});
      off += d->d_reclen;
    }
  }
  return out;
}

TEST_F(PosixDir, ThousandEntriesEachExactlyOnce) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  std::map<std::string, ino_t> made;
  for (int i = 0; i < 1000; ++i) {
    std::string n = "file-" + std::to_string(i);
    ASSERT_TRUE(WriteFile(path("d/" + n), "")) << n;
    made[n] = StatOf(path("d/" + n)).st_ino;
  }
  for (size_t bufsize : {size_t{32768}, size_t{300}}) {
    Fd fd(open(path("d").c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_SYS(fd.get());
    std::map<std::string, int> seen;
    for (const Entry& e : GetDents(fd, bufsize)) {
      ++seen[e.name];
      if (e.name == "." || e.name == "..") {
        EXPECT_TRUE(e.type == DT_DIR || e.type == DT_UNKNOWN);
        continue;
      }
      EXPECT_TRUE(made.count(e.name)) << "unexpected entry " << e.name;
      EXPECT_EQ(made[e.name], e.ino) << e.name;
      EXPECT_TRUE(e.type == DT_REG || e.type == DT_UNKNOWN) << e.name;
    }
    EXPECT_EQ(1, seen["."]);
    EXPECT_EQ(1, seen[".."]);
    for (auto& [n, ino] : made) EXPECT_EQ(1, seen[n]) << n << " (bufsize " << bufsize << ")";
    EXPECT_EQ(1002u, seen.size());
  }
  // After deleting half, the rest is listed exactly once.
  for (int i = 0; i < 1000; i += 2) ASSERT_SYS(unlink(path("d/file-" + std::to_string(i)).c_str()));
  auto names = ListDir(path("d"));
  std::set<std::string> uniq(names.begin(), names.end());
  EXPECT_EQ(500u, names.size());
  EXPECT_EQ(500u, uniq.size());
  EXPECT_TRUE(uniq.count("file-1"));
  EXPECT_FALSE(uniq.count("file-0"));
}

TEST_F(PosixDir, EntryTypes) {
  ASSERT_SYS(mkdir(path("dir").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("reg"), "x"));
  ASSERT_SYS(symlink("reg", path("lnk").c_str()));
  ASSERT_SYS(mkfifo(path("fifo").c_str(), 0644));
  Fd fd(open(path().c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_SYS(fd.get());
  std::map<std::string, unsigned char> t;
  for (const Entry& e : GetDents(fd, 4096)) t[e.name] = e.type;
  auto ok = [](unsigned char got, unsigned char want) { return got == want || got == DT_UNKNOWN; };
  EXPECT_TRUE(ok(t["dir"], DT_DIR));
  EXPECT_TRUE(ok(t["reg"], DT_REG));
  EXPECT_TRUE(ok(t["lnk"], DT_LNK));
  EXPECT_TRUE(ok(t["fifo"], DT_FIFO));
  EXPECT_EQ(6u, t.size());
}

TEST_F(PosixDir, EmptyDirectory) {
  ASSERT_SYS(mkdir(path("e").c_str(), 0755));
  Fd fd(open(path("e").c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_SYS(fd.get());
  auto entries = GetDents(fd, 4096);
  std::set<std::string> names;
  for (auto& e : entries) names.insert(e.name);
  EXPECT_EQ((std::set<std::string>{".", ".."}), names);
  EXPECT_EQ(2u, entries.size());
}

TEST_F(PosixDir, TelldirSeekdirResumes) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(WriteFile(path("d/f" + std::to_string(i)), ""));
  DIR* d = opendir(path("d").c_str());
  ASSERT_NE(nullptr, d);
  for (int i = 0; i < 100; ++i) ASSERT_NE(nullptr, readdir(d));
  long pos = telldir(d);
  std::vector<std::string> first, second;
  while (struct dirent* e = readdir(d)) first.push_back(e->d_name);
  seekdir(d, pos);
  while (struct dirent* e = readdir(d)) second.push_back(e->d_name);
  rewinddir(d);
  size_t all = 0;
  while (readdir(d)) ++all;
  closedir(d);
  EXPECT_EQ(202u, first.size());
  EXPECT_EQ(first, second) << "seekdir(telldir()) must resume at the same place";
  EXPECT_EQ(302u, all);
}

TEST_F(PosixDir, StableWhileOtherEntriesChange) {
  // Entries present throughout a listing are returned exactly once, and no
  // entry is returned twice, while another thread creates and deletes others.
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  std::set<std::string> stable;
  for (int i = 0; i < 1000; ++i) {
    std::string n = "stable-" + std::to_string(i);
    ASSERT_TRUE(WriteFile(path("d/" + n), ""));
    stable.insert(n);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> churn_errors{0};
  std::atomic<long> churn_ops{0};
  std::string dir = path("d");
  std::thread churn([&] {
    long i = 0;
    while (!stop.load()) {
      std::string n = dir + "/tmp-" + std::to_string(i % 400);
      if ((i / 400) % 2 == 0) {
        int fd = open(n.c_str(), O_CREAT | O_WRONLY, 0644);
        if (fd < 0) {
          ++churn_errors;
        } else {
          close(fd);
        }
      } else if (unlink(n.c_str()) != 0) {
        ++churn_errors;
      }
      ++i;
      ++churn_ops;
    }
  });
  int listings = 0;
  long ops_before = churn_ops.load();
  for (; listings < 30; ++listings) {
    Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_SYS(fd.get());
    std::map<std::string, int> seen;
    for (const Entry& e : GetDents(fd, 512)) ++seen[e.name];
    for (auto& [n, c] : seen) EXPECT_EQ(1, c) << "entry listed " << c << " times: " << n;
    for (auto& n : stable) EXPECT_EQ(1, seen.count(n)) << "stable entry missed: " << n;
    if (HasFailure()) break;
  }
  stop = true;
  churn.join();
  EXPECT_EQ(0, churn_errors.load());
  EXPECT_GT(churn_ops.load(), ops_before) << "the churn thread made no progress";
}

}  // namespace
}  // namespace dbfs::testing
