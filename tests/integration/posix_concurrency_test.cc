// Many threads at once on one mount: namespace operations in one directory,
// cross-directory renames in opposite directions (a deadlock would hang),
// disjoint writers on one file. A watchdog turns a hang into a failure.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class PosixConcurrency : public MountTest {
 protected:
  // Runs fn(0..n-1) on n threads. If they are not done within `limit`, the
  // daemon is SIGKILLed (which fails every blocked syscall) and the test fails.
  void RunThreads(int n, const std::function<void(int)>& fn,
                  std::chrono::seconds limit = std::chrono::seconds(120)) {
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    std::vector<std::thread> ts;
    for (int i = 0; i < n; ++i) {
      ts.emplace_back([&, i] {
        fn(i);
        std::lock_guard<std::mutex> l(mu);
        ++done;
        cv.notify_all();
      });
    }
    bool finished;
    {
      std::unique_lock<std::mutex> l(mu);
      finished = cv.wait_for(l, limit, [&] { return done == n; });
    }
    if (!finished) {
      ADD_FAILURE() << "threads did not finish within " << limit.count()
                    << " s: the filesystem hangs (deadlock?); killing the daemon";
      EXPECT_TRUE(vol_->Kill9());
    }
    for (auto& t : ts) t.join();
  }
};

TEST_F(PosixConcurrency, NamespaceOpsInOneDirectory) {
  constexpr int kThreads = 6, kPerThread = 150;
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  std::string d = path("d");
  std::atomic<int> errors{0};
  std::mutex emu;
  std::string first_error;
  auto fail = [&](const std::string& what) {
    ++errors;
    std::lock_guard<std::mutex> l(emu);
    if (first_error.empty()) first_error = what + ": " + ErrName(errno);
  };
  RunThreads(kThreads, [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string base = d + "/t" + std::to_string(t) + "-" + std::to_string(i);
      std::string content = base + " content";
      if (!WriteFile(base + ".tmp", content)) fail("create " + base);
      if (rename((base + ".tmp").c_str(), (base + ".f").c_str()) != 0) fail("rename " + base);
      if (i % 5 == 0 && link((base + ".f").c_str(), (base + ".l").c_str()) != 0)
        fail("link " + base);
      if (i % 3 == 0 && unlink((base + ".f").c_str()) != 0) fail("unlink " + base);
      if (i % 7 == 0 && mkdir((base + ".d").c_str(), 0755) != 0) fail("mkdir " + base);
      if (i % 14 == 0 && rmdir((base + ".d").c_str()) != 0) fail("rmdir " + base);
    }
  });
  ASSERT_EQ(0, errors.load()) << first_error;
  // Compute what must be there.
  std::set<std::string> want;
  int subdirs = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string base = "t" + std::to_string(t) + "-" + std::to_string(i);
      if (i % 3 != 0) want.insert(base + ".f");
      if (i % 5 == 0) want.insert(base + ".l");
      if (i % 7 == 0 && i % 14 != 0) {
        want.insert(base + ".d");
        ++subdirs;
      }
    }
  }
  auto names = ListDir(d);
  std::set<std::string> got(names.begin(), names.end());
  EXPECT_EQ(names.size(), got.size()) << "duplicate entries";
  EXPECT_EQ(want, got);
  EXPECT_EQ(static_cast<nlink_t>(2 + subdirs), StatOf(d).st_nlink);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; i += 5) {
      std::string base = d + "/t" + std::to_string(t) + "-" + std::to_string(i);
      struct stat st = StatOf(base + ".l");
      EXPECT_EQ(i % 3 == 0 ? 1u : 2u, st.st_nlink) << base;
      EXPECT_EQ(base + " content", ReadFile(base + ".l"));
    }
  }
}

TEST_F(PosixConcurrency, CrossDirectoryRenamesBothWays) {
  // Thread pairs move entries between a and b in opposite directions, and
  // swap directories between two parents: a lock-order bug deadlocks here.
  constexpr int kFiles = 40, kRounds = 60;
  for (const char* p : {"a", "b"}) ASSERT_SYS(mkdir(path(p).c_str(), 0755));
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_TRUE(WriteFile(path("a/x" + std::to_string(i)), "x" + std::to_string(i)));
    ASSERT_TRUE(WriteFile(path("b/y" + std::to_string(i)), "y" + std::to_string(i)));
  }
  ASSERT_SYS(mkdir(path("a/sub").c_str(), 0755));
  ASSERT_SYS(mkdir(path("b/sub").c_str(), 0755));
  std::atomic<int> errors{0};
  std::atomic<int> last_errno{0};
  RunThreads(4, [&](int t) {
    for (int r = 0; r < kRounds; ++r) {
      for (int i = t % 2; i < kFiles; i += 2) {
        // Thread 0/1 move x* a->b then back; 2/3 move y* b->a then back.
        std::string n = (t < 2 ? "x" : "y") + std::to_string(i);
        std::string from = path((t < 2 ? "a/" : "b/") + n), to = path((t < 2 ? "b/" : "a/") + n);
        if (r % 2) std::swap(from, to);
        if (rename(from.c_str(), to.c_str()) != 0) {
          ++errors;
          last_errno = errno;
        }
      }
      if (t == 0) {
        // Exchange the two subdirectories across parents.
        if (syscall(SYS_renameat2, AT_FDCWD, path("a/sub").c_str(), AT_FDCWD, path("b/sub").c_str(),
                    2 /* RENAME_EXCHANGE */) != 0) {
          ++errors;
          last_errno = errno;
        }
      }
    }
  });
  EXPECT_EQ(0, errors.load()) << "last error " << ErrName(last_errno.load());
  // kRounds is even: everything is back where it started.
  for (int i = 0; i < kFiles; ++i) {
    EXPECT_EQ("x" + std::to_string(i), ReadFile(path("a/x" + std::to_string(i))));
    EXPECT_EQ("y" + std::to_string(i), ReadFile(path("b/y" + std::to_string(i))));
  }
  EXPECT_EQ(static_cast<size_t>(kFiles + 1), ListDir(path("a")).size());
  EXPECT_EQ(static_cast<size_t>(kFiles + 1), ListDir(path("b")).size());
  EXPECT_EQ(3u, StatOf(path("a")).st_nlink);
  EXPECT_EQ(3u, StatOf(path("b")).st_nlink);
}

TEST_F(PosixConcurrency, DisjointWritersOnOneFile) {
  constexpr int kThreads = 4;
  constexpr size_t kBlock = 64 * 1024, kBlocksPerThread = 40;
  std::string f = path("shared");
  ASSERT_TRUE(WriteFile(f, ""));
  std::atomic<int> errors{0};
  RunThreads(kThreads, [&](int t) {
    int fd = open(f.c_str(), O_WRONLY);
    if (fd < 0) {
      ++errors;
      return;
    }
    for (size_t b = 0; b < kBlocksPerThread; ++b) {
      size_t block = b * kThreads + t;  // interleaved
      std::string data = Pattern(kBlock, static_cast<uint32_t>(block + 1));
      if (!PWriteAll(fd, data, block * kBlock)) ++errors;
    }
    close(fd);
  });
  ASSERT_EQ(0, errors.load());
  std::string got = ReadFile(f);
  ASSERT_EQ(kThreads * kBlocksPerThread * kBlock, got.size());
  for (size_t block = 0; block < kThreads * kBlocksPerThread; ++block) {
    EXPECT_TRUE(
        got.compare(block * kBlock, kBlock, Pattern(kBlock, static_cast<uint32_t>(block + 1))) == 0)
        << "block " << block;
  }
}

TEST_F(PosixConcurrency, AppendersInSeveralProcesses) {
  // O_APPEND writes from several processes never overwrite each other.
  constexpr int kProcs = 4, kLines = 400;
  std::string f = path("log");
  ASSERT_TRUE(WriteFile(f, ""));
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int fd = open(f.c_str(), O_WRONLY | O_APPEND);
      if (fd < 0) _exit(1);
      for (int i = 0; i < kLines; ++i) {
        char line[64];
        int len = snprintf(line, sizeof line, "proc %d line %05d %s\n", p, i, "xxxxxxxxxxxxxxxx");
        if (write(fd, line, len) != len) _exit(2);
      }
      _exit(close(fd) == 0 ? 0 : 3);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int st = 0;
    ASSERT_TRUE(WaitPid(pid, std::chrono::milliseconds(120000), &st)) << "appender hangs";
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "appender status " << st;
  }
  std::string all = ReadFile(f);
  std::map<int, int> next;  // per process: lines appear in order, each once
  size_t pos = 0, lines = 0;
  while (pos < all.size()) {
    size_t nl = all.find('\n', pos);
    ASSERT_NE(std::string::npos, nl) << "torn last line";
    std::string line = all.substr(pos, nl - pos);
    int p = -1, i = -1;
    ASSERT_EQ(2, sscanf(line.c_str(), "proc %d line %d", &p, &i)) << "garbled line: " << line;
    EXPECT_EQ(next[p], i) << "process " << p << " out of order";
    next[p] = i + 1;
    ++lines;
    pos = nl + 1;
  }
  EXPECT_EQ(static_cast<size_t>(kProcs * kLines), lines);
}

TEST_F(PosixConcurrency, RacingCreatorsOfTheSameNames) {
  // Every name is created with O_EXCL by several threads: exactly one wins.
  constexpr int kThreads = 4, kNames = 200;
  std::vector<std::atomic<int>> wins(kNames);
  std::atomic<int> odd_errors{0};
  RunThreads(kThreads, [&](int) {
    for (int i = 0; i < kNames; ++i) {
      std::string n = path("n" + std::to_string(i));
      int fd = open(n.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd >= 0) {
        ++wins[i];
        close(fd);
      } else if (errno != EEXIST) {
        ++odd_errors;
      }
      // And racing mkdir of one directory name.
      std::string dn = path("dir" + std::to_string(i % 10));
      if (mkdir(dn.c_str(), 0755) != 0 && errno != EEXIST) ++odd_errors;
    }
  });
  EXPECT_EQ(0, odd_errors.load());
  for (int i = 0; i < kNames; ++i) EXPECT_EQ(1, wins[i].load()) << "n" << i;
  EXPECT_EQ(static_cast<size_t>(kNames + 10), ListDir(path()).size());
  EXPECT_EQ(12u, StatOf(path()).st_nlink);
}

}  // namespace
}  // namespace dbfs::testing
