#include "mvcc/volume_lock.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace dbfs {
namespace {

class VolumeLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dbfs-lock-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string LockContent() {
    std::ifstream f(dir_ + "/lock", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

  // Runs `body` in a forked child; returns what it wrote to `out` and its exit
  // status. The child must leave with _exit() so that no destructor of a
  // parent object (e.g. a copied VolumeLock) runs in it.
  template <typename F>
  std::pair<std::string, int> RunInChild(F body) {
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      std::string out;
      int code = body(&out);
      ssize_t ignored = ::write(p[1], out.data(), out.size());
      (void)ignored;
      ::_exit(code);
    }
    ::close(p[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    return {out, status};
  }

  std::string dir_;
};

TEST_F(VolumeLockTest, AcquireCreatesLockFileAndRecordsHolder) {
  Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "dbfs-mount");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  EXPECT_TRUE(lock->held());
  EXPECT_EQ(lock->volume_dir(), dir_);
  EXPECT_EQ(LockContent(), std::to_string(::getpid()) + " dbfs-mount\n");
}

TEST_F(VolumeLockTest, SecondAcquireInForkedChildIsBusyNamingThePid) {
  Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "dbfs-mount");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  auto [msg, status] = RunInChild([&](std::string* out) {
    Result<VolumeLock> again = VolumeLock::Acquire(dir_, "fsck.dbfs");
    if (again.ok()) return 2;
    *out = again.status().message();
    return again.status().code() == Code::kBusy ? 0 : 3;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << msg;
  EXPECT_EQ(msg, "volume " + dir_ + " is in use by pid " + std::to_string(::getpid()) +
                     " (dbfs-mount); unmount it first");
  // The failed attempt did not disturb the holder's record.
  EXPECT_EQ(LockContent(), std::to_string(::getpid()) + " dbfs-mount\n");
}

TEST_F(VolumeLockTest, ReleasedAfterDestruction) {
  {
    Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "dbfs-mount");
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  }
  EXPECT_EQ(LockContent(), "");  // the hint is cleared on release
  auto [msg, status] = RunInChild([&](std::string* out) {
    Result<VolumeLock> again = VolumeLock::Acquire(dir_, "fsck.dbfs");
    if (!again.ok()) *out = again.status().message();
    return again.ok() ? 0 : 1;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << msg;
}

TEST_F(VolumeLockTest, SameProcessSecondAcquireIsBusyToo) {
  Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "mkfs.dbfs");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  Result<VolumeLock> again = VolumeLock::Acquire(dir_, "fsck.dbfs");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kBusy);
  EXPECT_NE(again.status().message().find("pid " + std::to_string(::getpid()) + " (mkfs.dbfs)"),
            std::string::npos)
      << again.status().message();
}

TEST_F(VolumeLockTest, ReleaseIsIdempotentAndMoveTransfersOwnership) {
  Result<VolumeLock> r = VolumeLock::Acquire(dir_, "dbfs-mount");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  VolumeLock a = std::move(r).value();
  VolumeLock b = std::move(a);
  EXPECT_FALSE(a.held());  // NOLINT(bugprone-use-after-move): testing the moved-from state
  EXPECT_TRUE(b.held());
  EXPECT_FALSE(VolumeLock::Acquire(dir_, "x").ok());
  b.Release();
  b.Release();
  EXPECT_FALSE(b.held());
  Result<VolumeLock> c = VolumeLock::Acquire(dir_, "x");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // Move-assigning over a held lock releases the old one first.
  *c = VolumeLock(std::move(b));
  EXPECT_FALSE(c->held());
  EXPECT_TRUE(VolumeLock::Acquire(dir_, "y").ok());
}

TEST_F(VolumeLockTest, HolderReportsWhoHoldsItWithoutTakingIt) {
  Result<std::optional<std::string>> none = VolumeLock::Holder(dir_);  // no lock file yet
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());

  // A child takes the lock and waits for our go to exit.
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    ::close(go[1]);
    Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "dbfs-mount");
    char c = lock.ok() ? 'y' : 'n';
    ssize_t ignored = ::write(ready[1], &c, 1);
    ignored = ::read(go[0], &c, 1);
    (void)ignored;
    ::_exit(0);  // the kernel drops the lock; no destructor needed
  }
  ::close(ready[1]);
  ::close(go[0]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');

  const std::string who = "pid " + std::to_string(child) + " (dbfs-mount)";
  for (int i = 0; i < 3; ++i) {  // asking does not take it
    Result<std::optional<std::string>> h = VolumeLock::Holder(dir_);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_TRUE(h->has_value());
    EXPECT_EQ(**h, who);
  }
  Result<VolumeLock> busy = VolumeLock::Acquire(dir_, "fsck.dbfs");
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().message(),
            "volume " + dir_ + " is in use by " + who + "; unmount it first");

  ASSERT_EQ(::write(go[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::close(ready[0]);
  ::close(go[1]);

  Result<std::optional<std::string>> after = VolumeLock::Holder(dir_);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->has_value());
  EXPECT_TRUE(VolumeLock::Acquire(dir_, "fsck.dbfs").ok());
}

TEST_F(VolumeLockTest, KilledHolderLeavesNoStaleLock) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "dbfs-mount");
    char c = lock.ok() ? 'y' : 'n';
    ssize_t ignored = ::write(ready[1], &c, 1);
    (void)ignored;
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(c, 'y');
  EXPECT_FALSE(VolumeLock::Acquire(dir_, "fsck.dbfs").ok());
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  // The dead holder's pid is still in the file, but the lock is gone.
  EXPECT_EQ(LockContent(), std::to_string(child) + " dbfs-mount\n");
  Result<std::optional<std::string>> h = VolumeLock::Holder(dir_);
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  Result<VolumeLock> lock = VolumeLock::Acquire(dir_, "fsck.dbfs");
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  EXPECT_EQ(LockContent(), std::to_string(::getpid()) + " fsck.dbfs\n");
}

TEST_F(VolumeLockTest, MissingVolumeDirectoryIsAnError) {
  Result<VolumeLock> lock = VolumeLock::Acquire(dir_ + "/nope", "dbfs-mount");
  ASSERT_FALSE(lock.ok());
  EXPECT_EQ(lock.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace dbfs
