// Files, directories, links and the basic error codes, through the kernel.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class PosixBasic : public MountTest {};

TEST_F(PosixBasic, CreateWriteReadClose) {
  std::string f = path("hello.txt");
  Fd fd(open(f.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644));
  ASSERT_SYS(fd.get());
  const std::string msg = "hello, world\n";
  ASSERT_EQ(static_cast<ssize_t>(msg.size()), write(fd, msg.data(), msg.size()));
  ASSERT_SYS(close(fd.release()));

  Fd rd(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(rd.get());
  char buf[100] = {};
  ASSERT_EQ(static_cast<ssize_t>(msg.size()), read(rd, buf, sizeof buf));
  EXPECT_EQ(msg, std::string(buf, msg.size()));
  EXPECT_EQ(0, read(rd, buf, sizeof buf)) << "read at EOF must return 0";
  EXPECT_EQ("world", PRead(rd, 5, 7));
  EXPECT_EQ("", PRead(rd, 5, 100)) << "pread past EOF returns 0 bytes";

  struct stat st = StatOf(f);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(0644u, st.st_mode & 07777);
  EXPECT_EQ(msg.size(), static_cast<size_t>(st.st_size));
  EXPECT_EQ(1u, st.st_nlink);
  EXPECT_EQ(getuid(), st.st_uid);
  EXPECT_EQ(getgid(), st.st_gid);

  // Overwrite in the middle, extend at the end.
  Fd rw(open(f.c_str(), O_RDWR));
  ASSERT_SYS(rw.get());
  ASSERT_EQ(5, pwrite(rw, "WORLD", 5, 7));
  ASSERT_EQ(3, pwrite(rw, "END", 3, msg.size()));
  EXPECT_EQ("hello, WORLD\nEND", ReadFile(f));

  // Read/write on fds opened without the access mode.
  EXPECT_ERRNO(EBADF, write(rd, "x", 1));
  Fd wo(open(f.c_str(), O_WRONLY));
  ASSERT_SYS(wo.get());
  EXPECT_ERRNO(EBADF, read(wo, buf, 1));
}

TEST_F(PosixBasic, OpenCreatWithoutExclKeepsContent) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "content"));
  Fd fd(open(f.c_str(), O_CREAT | O_WRONLY, 0600));
  ASSERT_SYS(fd.get());
  fd.reset();
  EXPECT_EQ("content", ReadFile(f));
  EXPECT_EQ(0644u, StatOf(f).st_mode & 07777) << "O_CREAT on an existing file must not change mode";
}

TEST_F(PosixBasic, OpenExcl) {
  std::string f = path("x");
  Fd fd(open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  ASSERT_SYS(fd.get());
  EXPECT_ERRNO(EEXIST, open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  // O_EXCL does not follow symlinks, even dangling ones.
  ASSERT_SYS(symlink("nowhere", path("dangling").c_str()));
  EXPECT_ERRNO(EEXIST, open(path("dangling").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
  EXPECT_FALSE(Exists(path("nowhere")));
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  EXPECT_ERRNO(EEXIST, open(path("d").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644));
}

TEST_F(PosixBasic, OpenTrunc) {
  std::string f = path("t");
  ASSERT_TRUE(WriteFile(f, std::string(100000, 'a')));
  SetOldTimes(f);
  struct stat before = StatOf(f);
  WaitClockPast(before.st_ctim);
  Fd fd(open(f.c_str(), O_WRONLY | O_TRUNC));
  ASSERT_SYS(fd.get());
  struct stat after = FStatOf(fd);
  EXPECT_EQ(0, after.st_size);
  EXPECT_TRUE(TsLess(before.st_mtim, after.st_mtim)) << "O_TRUNC must update mtime";
  EXPECT_TRUE(TsLess(before.st_ctim, after.st_ctim)) << "O_TRUNC must update ctime";
  ASSERT_EQ(3, write(fd, "new", 3));
  fd.reset();
  EXPECT_EQ("new", ReadFile(f));
}

TEST_F(PosixBasic, OpenAppend) {
  std::string f = path("log");
  ASSERT_TRUE(WriteFile(f, "start:"));
  Fd a(open(f.c_str(), O_WRONLY | O_APPEND));
  Fd b(open(f.c_str(), O_WRONLY | O_APPEND));
  ASSERT_SYS(a.get());
  ASSERT_SYS(b.get());
  std::string expect = "start:";
  for (int i = 0; i < 50; ++i) {
    std::string sa = "A" + std::to_string(i) + ";";
    std::string sb = "B" + std::to_string(i) + ";";
    ASSERT_EQ(static_cast<ssize_t>(sa.size()), write(a, sa.data(), sa.size()));
    ASSERT_EQ(static_cast<ssize_t>(sb.size()), write(b, sb.data(), sb.size()));
    expect += sa + sb;
  }
  // Seeking does not defeat O_APPEND.
  ASSERT_SYS(lseek(a, 0, SEEK_SET));
  ASSERT_EQ(4, write(a, "TAIL", 4));
  expect += "TAIL";
  EXPECT_EQ(static_cast<off_t>(expect.size()), lseek(a, 0, SEEK_CUR));
  a.reset();
  b.reset();
  EXPECT_EQ(expect, ReadFile(f));
}

TEST_F(PosixBasic, StatFields) {
  struct timespec t0 = Now();
  std::string f = path("f"), g = path("g"), d = path("d");
  ASSERT_TRUE(WriteFile(f, Pattern(8192, 1)));
  ASSERT_TRUE(WriteFile(g, ""));
  ASSERT_SYS(mkdir(d.c_str(), 0750));
  struct stat sf = StatOf(f), sg = StatOf(g), sd = StatOf(d), sroot = StatOf(path());
  EXPECT_NE(0u, sf.st_ino);
  EXPECT_NE(sf.st_ino, sg.st_ino);
  EXPECT_NE(sf.st_ino, sd.st_ino);
  EXPECT_EQ(sf.st_dev, sd.st_dev);
  EXPECT_EQ(sroot.st_dev, sf.st_dev);
  EXPECT_EQ(8192, sf.st_size);
  EXPECT_EQ(0, sg.st_size);
  EXPECT_GT(sf.st_blksize, 0);
  EXPECT_GT(sf.st_blocks, 0) << "a file with 8 KiB of data occupies blocks";
  EXPECT_TRUE(S_ISDIR(sd.st_mode));
  EXPECT_EQ(0750u, sd.st_mode & 07777);
  EXPECT_EQ(2u, sd.st_nlink) << "a new directory has 2 links (its entry and '.')";
  EXPECT_TRUE(S_ISDIR(sroot.st_mode));
  for (const struct stat* st : {&sf, &sg, &sd}) {
    EXPECT_TRUE(NearNow(st->st_mtim)) << TsStr(st->st_mtim);
    EXPECT_TRUE(NearNow(st->st_ctim)) << TsStr(st->st_ctim);
    EXPECT_TRUE(NearNow(st->st_atim)) << TsStr(st->st_atim);
    EXPECT_LE(t0.tv_sec - 1, st->st_mtim.tv_sec);
  }
  // Inode numbers are stable and match readdir's d_ino.
  EXPECT_EQ(sf.st_ino, StatOf(f).st_ino);
  DIR* dir = opendir(path().c_str());
  ASSERT_NE(nullptr, dir);
  std::map<std::string, ino_t> dino;
  while (struct dirent* e = readdir(dir)) dino[e->d_name] = e->d_ino;
  closedir(dir);
  EXPECT_EQ(sf.st_ino, dino["f"]);
  EXPECT_EQ(sg.st_ino, dino["g"]);
  EXPECT_EQ(sd.st_ino, dino["d"]);
}

TEST_F(PosixBasic, DirectoryLinkCount) {
  std::string d = path("d");
  ASSERT_SYS(mkdir(d.c_str(), 0755));
  EXPECT_EQ(2u, StatOf(d).st_nlink);
  nlink_t root_links = StatOf(path()).st_nlink;
  for (int i = 0; i < 3; ++i) ASSERT_SYS(mkdir((d + "/s" + std::to_string(i)).c_str(), 0755));
  ASSERT_TRUE(WriteFile(d + "/file", "x"));
  EXPECT_EQ(5u, StatOf(d).st_nlink) << "2 + one per subdirectory";
  ASSERT_SYS(rmdir((d + "/s1").c_str()));
  EXPECT_EQ(4u, StatOf(d).st_nlink);
  EXPECT_EQ(root_links, StatOf(path()).st_nlink);
  EXPECT_EQ(StatOf(path()).st_ino, StatOf(d + "/..").st_ino);
  EXPECT_EQ(StatOf(d).st_ino, StatOf(d + "/s0/..").st_ino);
}

TEST_F(PosixBasic, MkdirRmdir) {
  std::string d = path("dir");
  ASSERT_SYS(mkdir(d.c_str(), 0755));
  EXPECT_ERRNO(EEXIST, mkdir(d.c_str(), 0755));
  ASSERT_TRUE(WriteFile(d + "/file", "x"));
  EXPECT_ERRNO(ENOTEMPTY, rmdir(d.c_str()));
  EXPECT_ERRNO(ENOTDIR, rmdir((d + "/file").c_str()));
  EXPECT_ERRNO(ENOENT, rmdir((d + "/missing").c_str()));
  EXPECT_ERRNO(EINVAL, rmdir((d + "/.").c_str()));
  EXPECT_ERRNO(ENOENT, mkdir(path("missing/sub").c_str(), 0755));
  EXPECT_ERRNO(ENOTDIR, mkdir((d + "/file/sub").c_str(), 0755));
  EXPECT_ERRNO(EEXIST, mkdir((d + "/file").c_str(), 0755));
  ASSERT_SYS(unlink((d + "/file").c_str()));
  ASSERT_SYS(rmdir(d.c_str()));
  EXPECT_ERRNO(ENOENT, access(d.c_str(), F_OK));
  EXPECT_TRUE(ListDir(path()).empty());
  // Deep nesting.
  std::string p = path();
  for (int i = 0; i < 30; ++i) {
    p += "/n" + std::to_string(i);
    ASSERT_SYS(mkdir(p.c_str(), 0755));
  }
  ASSERT_TRUE(WriteFile(p + "/leaf", "leaf"));
  EXPECT_EQ("leaf", ReadFile(p + "/leaf"));
}

TEST_F(PosixBasic, Unlink) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "x"));
  ASSERT_SYS(unlink(f.c_str()));
  EXPECT_ERRNO(ENOENT, access(f.c_str(), F_OK));
  EXPECT_ERRNO(ENOENT, unlink(f.c_str()));
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  EXPECT_ERRNO(EISDIR, unlink(path("d").c_str()));
  ASSERT_TRUE(WriteFile(f, "y"));
  EXPECT_ERRNO(ENOTDIR, unlink(path("f/x").c_str()));
  // A new file under the same name is a new, independent file.
  EXPECT_EQ("y", ReadFile(f));
}

TEST_F(PosixBasic, ErrorCodes) {
  std::string f = path("file"), d = path("dir");
  ASSERT_TRUE(WriteFile(f, "data"));
  ASSERT_SYS(mkdir(d.c_str(), 0755));
  EXPECT_ERRNO(ENOENT, open(path("missing").c_str(), O_RDONLY));
  EXPECT_ERRNO(ENOENT, open(path("missing/x").c_str(), O_RDONLY));
  EXPECT_ERRNO(ENOENT, open(path("missing/x").c_str(), O_CREAT | O_WRONLY, 0644));
  struct stat st;
  EXPECT_ERRNO(ENOENT, stat(path("missing").c_str(), &st));
  EXPECT_ERRNO(ENOTDIR, open((f + "/x").c_str(), O_RDONLY));
  EXPECT_ERRNO(ENOTDIR, open((f + "/x").c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_ERRNO(ENOTDIR, stat((f + "/x").c_str(), &st));
  EXPECT_ERRNO(ENOTDIR, open(f.c_str(), O_RDONLY | O_DIRECTORY));
  EXPECT_ERRNO(EISDIR, open(d.c_str(), O_WRONLY));
  EXPECT_ERRNO(EISDIR, open(d.c_str(), O_RDWR));
  EXPECT_ERRNO(EISDIR, open(d.c_str(), O_WRONLY | O_CREAT, 0644));
  Fd dfd(open(d.c_str(), O_RDONLY | O_DIRECTORY));
  ASSERT_SYS(dfd.get());
  char c;
  EXPECT_ERRNO(EISDIR, read(dfd, &c, 1));
  EXPECT_ERRNO(EEXIST, mkdir(f.c_str(), 0755));
  EXPECT_ERRNO(EEXIST, symlink("x", f.c_str()));
  EXPECT_ERRNO(EEXIST, link(f.c_str(), d.c_str()));
  EXPECT_ERRNO(EEXIST, mknod(f.c_str(), S_IFIFO | 0644, 0));
  EXPECT_ERRNO(ENOENT, rename(path("missing").c_str(), path("other").c_str()));
  EXPECT_ERRNO(ENOENT, rename(f.c_str(), path("missing/x").c_str()));
  EXPECT_ERRNO(ENOENT, link(path("missing").c_str(), path("l").c_str()));
  EXPECT_ERRNO(ENOENT, truncate(path("missing").c_str(), 0));
  EXPECT_ERRNO(ENOENT, chmod(path("missing").c_str(), 0644));
}

TEST_F(PosixBasic, NameLength) {
  std::string n255(255, 'a'), n256(256, 'b');
  ASSERT_TRUE(WriteFile(path(n255), "max"));
  EXPECT_EQ("max", ReadFile(path(n255)));
  std::string d255(255, 'd');
  ASSERT_SYS(mkdir(path(d255).c_str(), 0755));
  ASSERT_TRUE(WriteFile(path(d255 + "/" + n255), "nested"));
  auto names = ListDir(path());
  EXPECT_EQ(1, std::count(names.begin(), names.end(), n255));
  EXPECT_EQ(1, std::count(names.begin(), names.end(), d255));

  struct stat st;
  EXPECT_ERRNO(ENAMETOOLONG, open(path(n256).c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_ERRNO(ENAMETOOLONG, stat(path(n256).c_str(), &st));
  EXPECT_ERRNO(ENAMETOOLONG, mkdir(path(n256).c_str(), 0755));
  EXPECT_ERRNO(ENAMETOOLONG, symlink("t", path(n256).c_str()));
  EXPECT_ERRNO(ENAMETOOLONG, mknod(path(n256).c_str(), S_IFIFO | 0644, 0));
  EXPECT_ERRNO(ENAMETOOLONG, link(path(n255).c_str(), path(n256).c_str()));
  EXPECT_ERRNO(ENAMETOOLONG, rename(path(n255).c_str(), path(n256).c_str()));
  EXPECT_EQ("max", ReadFile(path(n255)));
  names = ListDir(path());
  EXPECT_EQ(2u, names.size());
}

TEST_F(PosixBasic, UnusualNames) {
  std::vector<std::string> names = {" space ", "new\nline", "tab\t", "ünïcödé-文字", "-dash",
                                    ".hidden", "..dots",    "a.b.c", "*?[]",         "\\back"};
  std::string all;
  for (int c = 1; c < 256; ++c) {
    if (c != '/') all.push_back(static_cast<char>(c));
  }
  names.push_back(all.substr(0, 127));
  names.push_back(all.substr(127));
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE(WriteFile(path(names[i]), std::to_string(i))) << i;
  }
  auto listed = ListDir(path());
  std::multiset<std::string> got(listed.begin(), listed.end());
  std::multiset<std::string> want(names.begin(), names.end());
  EXPECT_EQ(want, got);
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(std::to_string(i), ReadFile(path(names[i])));
}

TEST_F(PosixBasic, UnlinkedOpenFileStaysUsable) {
  std::string f = path("orphan");
  Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(fd.get());
  Fd fd2(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(fd2.get());
  std::string data = Pattern(100000, 7);
  ASSERT_TRUE(PWriteAll(fd, data, 0));
  ASSERT_SYS(unlink(f.c_str()));
  EXPECT_FALSE(Exists(f));
  EXPECT_TRUE(ListDir(path()).empty());
  struct stat st = FStatOf(fd);
  EXPECT_EQ(0u, st.st_nlink) << "fstat of an unlinked open file";
  EXPECT_EQ(100000, st.st_size);
  EXPECT_EQ(data, PRead(fd, data.size(), 0));
  std::string more = Pattern(50000, 8);
  ASSERT_TRUE(PWriteAll(fd, more, data.size()));
  EXPECT_EQ(150000, FStatOf(fd).st_size);
  EXPECT_EQ(data + more, PRead(fd, 150000, 0));
  // The other descriptor sees it too, and survives the first one's close.
  fd.reset();
  EXPECT_EQ(data + more, PRead(fd2, 150000, 0));
  // Reopening the unlinked inode through /proc works and can truncate it.
  Fd re(open(("/proc/self/fd/" + std::to_string(fd2.get())).c_str(), O_WRONLY));
  ASSERT_SYS(re.get());
  EXPECT_SYS(ftruncate(re, 10));
  re.reset();
  // A new file with the same name is independent.
  ASSERT_TRUE(WriteFile(f, "new"));
  EXPECT_EQ("new", ReadFile(f));
  EXPECT_EQ(data.substr(0, 10), PRead(fd2, 100, 0));
  EXPECT_EQ(0u, FStatOf(fd2).st_nlink);
}

TEST_F(PosixBasic, HardLinks) {
  std::string a = path("a"), b = path("sub/b");
  ASSERT_SYS(mkdir(path("sub").c_str(), 0755));
  ASSERT_TRUE(WriteFile(a, "shared"));
  struct stat before = StatOf(a);
  WaitClockPast(before.st_ctim);
  ASSERT_SYS(link(a.c_str(), b.c_str()));
  struct stat sa = StatOf(a), sb = StatOf(b);
  EXPECT_EQ(sa.st_ino, sb.st_ino);
  EXPECT_EQ(2u, sa.st_nlink);
  EXPECT_EQ(2u, sb.st_nlink);
  EXPECT_TRUE(TsLess(before.st_ctim, sa.st_ctim)) << "link must update the inode's ctime";
  // Writes through one name are seen through the other.
  Fd fd(open(b.c_str(), O_WRONLY | O_APPEND));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(6, write(fd, " data!", 6));
  fd.reset();
  EXPECT_EQ("shared data!", ReadFile(a));
  ASSERT_SYS(link(a.c_str(), path("c").c_str()));
  EXPECT_EQ(3u, StatOf(a).st_nlink);
  struct stat mid = StatOf(a);
  WaitClockPast(mid.st_ctim);
  ASSERT_SYS(unlink(a.c_str()));
  struct stat after = StatOf(b);
  EXPECT_EQ(2u, after.st_nlink);
  EXPECT_TRUE(TsLess(mid.st_ctim, after.st_ctim)) << "unlink must update the inode's ctime";
  EXPECT_EQ("shared data!", ReadFile(b));
  ASSERT_SYS(unlink(path("c").c_str()));
  EXPECT_EQ(1u, StatOf(b).st_nlink);
  EXPECT_EQ("shared data!", ReadFile(b));

  // Errors.
  ASSERT_SYS(mkdir(path("dir").c_str(), 0755));
  EXPECT_ERRNO(EPERM, link(path("dir").c_str(), path("dirlink").c_str()));
  EXPECT_ERRNO(EEXIST, link(b.c_str(), path("dir").c_str()));
  EXPECT_ERRNO(ENOENT, link(path("nothing").c_str(), path("x").c_str()));
  EXPECT_EQ(2u, StatOf(path("dir")).st_nlink);
}

TEST_F(PosixBasic, Symlinks) {
  std::string l = path("link");
  ASSERT_SYS(symlink("target", l.c_str()));
  struct stat st = LStatOf(l);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(6, st.st_size) << "a symlink's size is its target's length";
  char buf[4096];
  ssize_t n = readlink(l.c_str(), buf, sizeof buf);
  ASSERT_SYS(n);
  EXPECT_EQ("target", std::string(buf, n));
  EXPECT_EQ(3, readlink(l.c_str(), buf, 3)) << "readlink truncates to the buffer";
  EXPECT_ERRNO(ENOENT, stat(l.c_str(), &st));  // dangling
  ASSERT_TRUE(WriteFile(path("target"), "through the link"));
  EXPECT_EQ("through the link", ReadFile(l));
  EXPECT_TRUE(S_ISREG(StatOf(l).st_mode));

  // Directory symlinks, relative and absolute targets.
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("d/inner"), "inner"));
  ASSERT_SYS(symlink("d", path("dl").c_str()));
  EXPECT_EQ("inner", ReadFile(path("dl/inner")));
  ASSERT_SYS(symlink("../target", path("d/up").c_str()));
  EXPECT_EQ("through the link", ReadFile(path("d/up")));
  ASSERT_SYS(symlink(path("d/inner").c_str(), path("abs").c_str()));
  EXPECT_EQ("inner", ReadFile(path("abs")));

  // A long target.
  std::string longt(1000, 'x');
  for (size_t i = 100; i < longt.size(); i += 100) longt[i] = '/';
  ASSERT_SYS(symlink(longt.c_str(), path("long").c_str()));
  n = readlink(path("long").c_str(), buf, sizeof buf);
  ASSERT_EQ(1000, n);
  EXPECT_EQ(longt, std::string(buf, n));

  // The longest target PATH_MAX allows.
  std::string maxt(4095, 'm');
  for (size_t i = 200; i < maxt.size(); i += 200) maxt[i] = '/';
  ASSERT_SYS(symlink(maxt.c_str(), path("max").c_str()));
  char big[8192];
  n = readlink(path("max").c_str(), big, sizeof big);
  ASSERT_EQ(4095, n);
  EXPECT_EQ(maxt, std::string(big, n));
  EXPECT_EQ(4095, LStatOf(path("max")).st_size);

  // Errors.
  EXPECT_ERRNO(EINVAL, readlink(path("target").c_str(), buf, sizeof buf));
  EXPECT_ERRNO(ELOOP, open(l.c_str(), O_RDONLY | O_NOFOLLOW));
  ASSERT_SYS(symlink("loop2", path("loop1").c_str()));
  ASSERT_SYS(symlink("loop1", path("loop2").c_str()));
  EXPECT_ERRNO(ELOOP, stat(path("loop1").c_str(), &st));

  // Unlinking a symlink leaves the target alone.
  ASSERT_SYS(unlink(l.c_str()));
  EXPECT_EQ("through the link", ReadFile(path("target")));

  // lchown changes the link, not its target.
  ASSERT_SYS(symlink("target", l.c_str()));
  ASSERT_SYS(lchown(l.c_str(), kNobody, kNobody));
  EXPECT_EQ(kNobody, LStatOf(l).st_uid);
  EXPECT_EQ(0u, StatOf(path("target")).st_uid);
}

}  // namespace
}  // namespace dbfs::testing
