// rename(2) and renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

namespace dbfs::testing {
namespace {

int Renameat2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

class PosixRename : public MountTest {};

TEST_F(PosixRename, SimpleFileRename) {
  ASSERT_TRUE(WriteFile(path("a"), "A"));
  ino_t ino = StatOf(path("a")).st_ino;
  ASSERT_SYS(rename(path("a").c_str(), path("b").c_str()));
  EXPECT_FALSE(Exists(path("a")));
  EXPECT_EQ("A", ReadFile(path("b")));
  EXPECT_EQ(ino, StatOf(path("b")).st_ino) << "rename keeps the inode";
  EXPECT_EQ(std::vector<std::string>{"b"}, ListDir(path()));
}

TEST_F(PosixRename, OverExistingFile) {
  ASSERT_TRUE(WriteFile(path("a"), "new content"));
  ASSERT_TRUE(WriteFile(path("b"), "old content"));
  ino_t ino_a = StatOf(path("a")).st_ino;
  Fd old(open(path("b").c_str(), O_RDONLY));
  ASSERT_SYS(old.get());
  ASSERT_SYS(rename(path("a").c_str(), path("b").c_str()));
  EXPECT_FALSE(Exists(path("a")));
  EXPECT_EQ("new content", ReadFile(path("b")));
  EXPECT_EQ(ino_a, StatOf(path("b")).st_ino);
  EXPECT_EQ(std::vector<std::string>{"b"}, ListDir(path()));
  // The replaced inode lives on while open, with no links.
  EXPECT_EQ(0u, FStatOf(old).st_nlink);
  EXPECT_EQ("old content", PRead(old, 100, 0));
}

TEST_F(PosixRename, OverExistingHardLinkedFileKeepsOtherLink) {
  ASSERT_TRUE(WriteFile(path("a"), "A"));
  ASSERT_TRUE(WriteFile(path("b"), "B"));
  ASSERT_SYS(link(path("b").c_str(), path("b2").c_str()));
  ASSERT_SYS(rename(path("a").c_str(), path("b").c_str()));
  EXPECT_EQ("A", ReadFile(path("b")));
  EXPECT_EQ("B", ReadFile(path("b2")));
  EXPECT_EQ(1u, StatOf(path("b2")).st_nlink);
}

TEST_F(PosixRename, SameInodeIsNoop) {
  ASSERT_TRUE(WriteFile(path("a"), "A"));
  ASSERT_SYS(link(path("a").c_str(), path("b").c_str()));
  ASSERT_SYS(rename(path("a").c_str(), path("b").c_str()));
  EXPECT_TRUE(Exists(path("a"))) << "POSIX: renaming a link onto the same inode does nothing";
  EXPECT_TRUE(Exists(path("b")));
  EXPECT_EQ(2u, StatOf(path("a")).st_nlink);
  ASSERT_SYS(rename(path("a").c_str(), path("a").c_str()));
  EXPECT_EQ("A", ReadFile(path("a")));
}

TEST_F(PosixRename, DirOverEmptyDir) {
  ASSERT_SYS(mkdir(path("d1").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("d1/f"), "F"));
  ASSERT_SYS(mkdir(path("d2").c_str(), 0755));
  nlink_t root = StatOf(path()).st_nlink;
  ASSERT_SYS(rename(path("d1").c_str(), path("d2").c_str()));
  EXPECT_FALSE(Exists(path("d1")));
  EXPECT_EQ("F", ReadFile(path("d2/f")));
  EXPECT_EQ(root - 1, StatOf(path()).st_nlink) << "the replaced empty dir's '..' link is gone";
}

TEST_F(PosixRename, DirOverNonEmptyDir) {
  ASSERT_SYS(mkdir(path("d1").c_str(), 0755));
  ASSERT_SYS(mkdir(path("d2").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("d2/keep"), "K"));
  EXPECT_ERRNO(ENOTEMPTY, rename(path("d1").c_str(), path("d2").c_str()));
  EXPECT_TRUE(Exists(path("d1")));
  EXPECT_EQ("K", ReadFile(path("d2/keep")));
}

TEST_F(PosixRename, DirIntoItsOwnSubdir) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_SYS(mkdir(path("d/sub").c_str(), 0755));
  EXPECT_ERRNO(EINVAL, rename(path("d").c_str(), path("d/sub/x").c_str()));
  EXPECT_ERRNO(EINVAL, rename(path("d").c_str(), path("d/x").c_str()));
  EXPECT_ERRNO(EINVAL, Renameat2(path("d").c_str(), path("d/sub/y").c_str(), RENAME_NOREPLACE));
  EXPECT_TRUE(Exists(path("d/sub")));
}

TEST_F(PosixRename, TypeMismatch) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("f"), "F"));
  EXPECT_ERRNO(EISDIR, rename(path("f").c_str(), path("d").c_str()));
  EXPECT_ERRNO(ENOTDIR, rename(path("d").c_str(), path("f").c_str()));
  EXPECT_ERRNO(ENOENT, rename(path("missing").c_str(), path("x").c_str()));
  EXPECT_ERRNO(ENOENT, rename(path("f").c_str(), path("nodir/x").c_str()));
  EXPECT_ERRNO(ENOTDIR, rename(path("f").c_str(), path("f/x").c_str()));
  EXPECT_EQ("F", ReadFile(path("f")));
}

TEST_F(PosixRename, DirAcrossParents) {
  ASSERT_SYS(mkdir(path("p1").c_str(), 0755));
  ASSERT_SYS(mkdir(path("p2").c_str(), 0755));
  ASSERT_SYS(mkdir(path("p1/d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("p1/d/f"), "F"));
  EXPECT_EQ(3u, StatOf(path("p1")).st_nlink);
  ASSERT_SYS(rename(path("p1/d").c_str(), path("p2/e").c_str()));
  EXPECT_EQ(2u, StatOf(path("p1")).st_nlink);
  EXPECT_EQ(3u, StatOf(path("p2")).st_nlink);
  EXPECT_EQ(StatOf(path("p2")).st_ino, StatOf(path("p2/e/..")).st_ino) << "'..' follows the move";
  EXPECT_EQ("F", ReadFile(path("p2/e/f")));
  EXPECT_EQ(std::vector<std::string>{}, ListDir(path("p1")));
}

TEST_F(PosixRename, TimesOfParentsAndInode) {
  ASSERT_SYS(mkdir(path("p1").c_str(), 0755));
  ASSERT_SYS(mkdir(path("p2").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("p1/f"), "F"));
  SetOldTimes(path("p1"));
  SetOldTimes(path("p2"));
  SetOldTimes(path("p1/f"));
  struct stat p1 = StatOf(path("p1")), p2 = StatOf(path("p2")), f = StatOf(path("p1/f"));
  struct timespec latest = p1.st_ctim;
  for (auto* t : {&p2.st_ctim, &f.st_ctim}) {
    if (TsLess(latest, *t)) latest = *t;
  }
  WaitClockPast(latest);
  ASSERT_SYS(rename(path("p1/f").c_str(), path("p2/g").c_str()));
  struct stat p1a = StatOf(path("p1")), p2a = StatOf(path("p2")), fa = StatOf(path("p2/g"));
  EXPECT_TRUE(TsLess(p1.st_mtim, p1a.st_mtim)) << "source parent mtime";
  EXPECT_TRUE(TsLess(p1.st_ctim, p1a.st_ctim)) << "source parent ctime";
  EXPECT_TRUE(TsLess(p2.st_mtim, p2a.st_mtim)) << "target parent mtime";
  EXPECT_TRUE(TsLess(p2.st_ctim, p2a.st_ctim)) << "target parent ctime";
  EXPECT_TRUE(TsLess(f.st_ctim, fa.st_ctim)) << "moved inode ctime";
  EXPECT_TRUE(TsEq(f.st_mtim, fa.st_mtim)) << "moved inode mtime must not change";
}

TEST_F(PosixRename, NoReplace) {
  ASSERT_TRUE(WriteFile(path("a"), "A"));
  ASSERT_TRUE(WriteFile(path("b"), "B"));
  EXPECT_ERRNO(EEXIST, Renameat2(path("a"), path("b"), RENAME_NOREPLACE));
  EXPECT_EQ("A", ReadFile(path("a")));
  EXPECT_EQ("B", ReadFile(path("b")));
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  EXPECT_ERRNO(EEXIST, Renameat2(path("a"), path("d"), RENAME_NOREPLACE));
  ASSERT_SYS(Renameat2(path("a"), path("c"), RENAME_NOREPLACE));
  EXPECT_FALSE(Exists(path("a")));
  EXPECT_EQ("A", ReadFile(path("c")));
  EXPECT_ERRNO(EINVAL, Renameat2(path("b"), path("c"), RENAME_NOREPLACE | RENAME_EXCHANGE));
}

TEST_F(PosixRename, ExchangeFiles) {
  ASSERT_TRUE(WriteFile(path("a"), "AAAA"));
  ASSERT_TRUE(WriteFile(path("b"), "BB"));
  ino_t ia = StatOf(path("a")).st_ino, ib = StatOf(path("b")).st_ino;
  ASSERT_SYS(Renameat2(path("a"), path("b"), RENAME_EXCHANGE));
  EXPECT_EQ("BB", ReadFile(path("a")));
  EXPECT_EQ("AAAA", ReadFile(path("b")));
  EXPECT_EQ(ib, StatOf(path("a")).st_ino);
  EXPECT_EQ(ia, StatOf(path("b")).st_ino);
  EXPECT_ERRNO(ENOENT, Renameat2(path("a"), path("missing"), RENAME_EXCHANGE));
  EXPECT_ERRNO(ENOENT, Renameat2(path("missing"), path("a"), RENAME_EXCHANGE));
  EXPECT_EQ("BB", ReadFile(path("a")));
}

TEST_F(PosixRename, ExchangeFileAndDirAcrossParents) {
  ASSERT_SYS(mkdir(path("p1").c_str(), 0755));
  ASSERT_SYS(mkdir(path("p2").c_str(), 0755));
  ASSERT_SYS(mkdir(path("p1/d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("p1/d/child"), "child"));
  ASSERT_TRUE(WriteFile(path("p2/f"), "file"));
  EXPECT_EQ(3u, StatOf(path("p1")).st_nlink);
  EXPECT_EQ(2u, StatOf(path("p2")).st_nlink);
  ASSERT_SYS(Renameat2(path("p1/d"), path("p2/f"), RENAME_EXCHANGE));
  EXPECT_TRUE(S_ISREG(LStatOf(path("p1/d")).st_mode));
  EXPECT_TRUE(S_ISDIR(LStatOf(path("p2/f")).st_mode));
  EXPECT_EQ("file", ReadFile(path("p1/d")));
  EXPECT_EQ("child", ReadFile(path("p2/f/child")));
  EXPECT_EQ(2u, StatOf(path("p1")).st_nlink) << "p1 lost a subdirectory";
  EXPECT_EQ(3u, StatOf(path("p2")).st_nlink) << "p2 gained a subdirectory";
  EXPECT_EQ(StatOf(path("p2")).st_ino, StatOf(path("p2/f/..")).st_ino);
  // Exchange back within one directory works too.
  ASSERT_SYS(mkdir(path("p1/e").c_str(), 0755));
  ASSERT_SYS(Renameat2(path("p1/d"), path("p1/e"), RENAME_EXCHANGE));
  EXPECT_TRUE(S_ISDIR(LStatOf(path("p1/d")).st_mode));
  EXPECT_EQ("file", ReadFile(path("p1/e")));
}

TEST_F(PosixRename, ExchangeDirIntoOwnSubtreeFails) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_SYS(mkdir(path("d/sub").c_str(), 0755));
  EXPECT_ERRNO(EINVAL, Renameat2(path("d"), path("d/sub"), RENAME_EXCHANGE));
  EXPECT_TRUE(Exists(path("d/sub")));
}

TEST_F(PosixRename, ManyRenamesKeepOneEntry) {
  ASSERT_SYS(mkdir(path("a").c_str(), 0755));
  ASSERT_SYS(mkdir(path("b").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("a/f0"), "payload"));
  std::string cur = "a/f0";
  for (int i = 1; i <= 200; ++i) {
    std::string next = std::string(i % 2 ? "b" : "a") + "/f" + std::to_string(i);
    ASSERT_SYS(rename(path(cur).c_str(), path(next).c_str())) << cur << " -> " << next;
    cur = next;
  }
  EXPECT_EQ("payload", ReadFile(path(cur)));
  EXPECT_EQ(1u, ListDir(path("a")).size() + ListDir(path("b")).size());
}

}  // namespace
}  // namespace dbfs::testing
