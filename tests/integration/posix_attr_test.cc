// Attributes, times, truncation and permissions (incl. non-root users).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class PosixAttr : public MountTest {};

// Errno of a syscall-like result: 0 on success.
int Err(long r) { return r == -1 ? errno : 0; }

TEST_F(PosixAttr, ChmodUpdatesCtimeOnly) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "x"));
  SetOldTimes(f);
  struct stat before = StatOf(f);
  WaitClockPast(before.st_ctim);
  ASSERT_SYS(chmod(f.c_str(), 0600));
  struct stat after = StatOf(f);
  EXPECT_EQ(S_IFREG | 0600u, after.st_mode);
  EXPECT_TRUE(TsLess(before.st_ctim, after.st_ctim)) << "chmod must update ctime";
  EXPECT_TRUE(TsEq(before.st_mtim, after.st_mtim)) << "chmod must not update mtime";
  EXPECT_TRUE(TsEq(before.st_atim, after.st_atim)) << "chmod must not update atime";
  // All permission bits round-trip, including the special ones.
  for (mode_t m : {07777u, 04755u, 02711u, 01777u, 0u, 0444u}) {
    ASSERT_SYS(chmod(f.c_str(), m));
    EXPECT_EQ(m, StatOf(f).st_mode & 07777u) << std::oct << m;
  }
  Fd fd(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(fd.get());
  ASSERT_SYS(fchmod(fd, 0640));
  EXPECT_EQ(0640u, FStatOf(fd).st_mode & 07777u);
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_SYS(chmod(path("d").c_str(), 0700));
  EXPECT_EQ(S_IFDIR | 0700u, StatOf(path("d")).st_mode);
}

TEST_F(PosixAttr, ChownAsRoot) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "x"));
  struct stat before = StatOf(f);
  WaitClockPast(before.st_ctim);
  ASSERT_SYS(chown(f.c_str(), kNobody, kOtherUser));
  struct stat after = StatOf(f);
  EXPECT_EQ(kNobody, after.st_uid);
  EXPECT_EQ(kOtherUser, after.st_gid);
  EXPECT_TRUE(TsLess(before.st_ctim, after.st_ctim)) << "chown must update ctime";
  ASSERT_SYS(chown(f.c_str(), -1, 0));
  EXPECT_EQ(kNobody, StatOf(f).st_uid) << "-1 leaves the owner alone";
  EXPECT_EQ(0u, StatOf(f).st_gid);
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_SYS(chown(path("d").c_str(), 123, 456));
  EXPECT_EQ(123u, StatOf(path("d")).st_uid);
  EXPECT_EQ(456u, StatOf(path("d")).st_gid);
}

TEST_F(PosixAttr, ChownClearsSetuidSetgid) {
  std::string f = path("suid");
  ASSERT_TRUE(WriteFile(f, "#!/bin/true\n"));
  ASSERT_SYS(chmod(f.c_str(), 06755));
  ASSERT_SYS(chown(f.c_str(), kNobody, kNobody));
  EXPECT_EQ(0755u, StatOf(f).st_mode & 07777u) << "chown of a regular file clears S_ISUID/S_ISGID";
}

TEST_F(PosixAttr, NonOwnerCannotChmodOrChown) {
  std::string f = path("rootfile");
  ASSERT_TRUE(WriteFile(f, "x"));
  ASSERT_SYS(chmod(f.c_str(), 0666));
  EXPECT_EQ(EPERM, RunAsUser(kNobody, kNobody, [&] { return Err(chmod(f.c_str(), 0777)); }));
  EXPECT_EQ(EPERM, RunAsUser(kNobody, kNobody, [&] { return Err(chown(f.c_str(), kNobody, -1)); }));
  EXPECT_EQ(0666u, StatOf(f).st_mode & 07777u);
  // The owner may chmod but not give the file away.
  std::string g = path("nobodyfile");
  ASSERT_TRUE(WriteFile(g, "x"));
  ASSERT_SYS(chown(g.c_str(), kNobody, kNobody));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return Err(chmod(g.c_str(), 0600)); }));
  EXPECT_EQ(0600u, StatOf(g).st_mode & 07777u);
  EXPECT_EQ(EPERM, RunAsUser(kNobody, kNobody, [&] { return Err(chown(g.c_str(), 0, -1)); }));
  EXPECT_EQ(kNobody, StatOf(g).st_uid);
}

TEST_F(PosixAttr, Utimensat) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "x"));
  struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), ts, 0));
  struct stat st = StatOf(f);
  EXPECT_TRUE(TsEq(ts[0], st.st_atim)) << TsStr(st.st_atim);
  EXPECT_TRUE(TsEq(ts[1], st.st_mtim)) << TsStr(st.st_mtim) << " (nanoseconds must be kept)";
  EXPECT_TRUE(NearNow(st.st_ctim)) << "utimensat sets ctime to now";

  // UTIME_OMIT keeps a time; UTIME_NOW sets it to the current time.
  struct timespec before = Now();
  struct timespec ts2[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), ts2, 0));
  st = StatOf(f);
  EXPECT_TRUE(TsEq(ts[0], st.st_atim)) << "UTIME_OMIT must keep atime";
  EXPECT_TRUE(NearNow(st.st_mtim)) << TsStr(st.st_mtim);
  EXPECT_LE(before.tv_sec - 1, st.st_mtim.tv_sec);

  struct timespec ts3[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  struct timespec mtime_kept = st.st_mtim;
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), ts3, 0));
  st = StatOf(f);
  EXPECT_TRUE(NearNow(st.st_atim));
  EXPECT_TRUE(TsEq(mtime_kept, st.st_mtim)) << "UTIME_OMIT must keep mtime";

  // NULL times = both now; futimens on an fd.
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), ts, 0));
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), nullptr, 0));
  st = StatOf(f);
  EXPECT_TRUE(NearNow(st.st_atim));
  EXPECT_TRUE(NearNow(st.st_mtim));
  Fd fd(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(fd.get());
  ASSERT_SYS(futimens(fd, ts));
  EXPECT_TRUE(TsEq(ts[1], FStatOf(fd).st_mtim));

  // Explicit times set while written data may still be cached in the kernel
  // must not be overwritten when that data reaches the filesystem (what
  // tar -x and cp -p rely on).
  {
    Fd w(open(path("cached").c_str(), O_CREAT | O_WRONLY, 0644));
    ASSERT_SYS(w.get());
    ASSERT_TRUE(PWriteAll(w, Pattern(300000, 4), 0));
    ASSERT_SYS(futimens(w, ts));
    w.reset();
    struct stat cs = StatOf(path("cached"));
    EXPECT_TRUE(TsEq(ts[1], cs.st_mtim)) << "mtime after close: " << TsStr(cs.st_mtim);
    EXPECT_EQ(300000, cs.st_size);
  }
  // Times before the epoch and far in the future.
  struct timespec odd[2] = {{-1000, 5}, {4102444800LL, 1}};
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), odd, 0));
  st = StatOf(f);
  EXPECT_TRUE(TsEq(odd[0], st.st_atim)) << TsStr(st.st_atim);
  EXPECT_TRUE(TsEq(odd[1], st.st_mtim)) << TsStr(st.st_mtim);

  // Symlink's own times with AT_SYMLINK_NOFOLLOW.
  ASSERT_SYS(symlink("f", path("l").c_str()));
  ASSERT_SYS(utimensat(AT_FDCWD, path("l").c_str(), ts, AT_SYMLINK_NOFOLLOW));
  EXPECT_TRUE(TsEq(ts[1], LStatOf(path("l")).st_mtim));
  EXPECT_TRUE(TsEq(odd[1], StatOf(f).st_mtim));
}

TEST_F(PosixAttr, UtimensatPermissions) {
  std::string w = path("writable"), r = path("readonly");
  ASSERT_TRUE(WriteFile(w, "x"));
  ASSERT_TRUE(WriteFile(r, "x"));
  ASSERT_SYS(chmod(w.c_str(), 0666));
  ASSERT_SYS(chmod(r.c_str(), 0644));
  struct timespec now2[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  struct timespec explicit2[2] = {{5, 0}, {5, 0}};
  // Write permission suffices for "now"; explicit times need ownership.
  EXPECT_EQ(
      0, RunAsUser(kNobody, kNobody, [&] { return Err(utimensat(AT_FDCWD, w.c_str(), now2, 0)); }));
  EXPECT_EQ(EPERM, RunAsUser(kNobody, kNobody,
                             [&] { return Err(utimensat(AT_FDCWD, w.c_str(), explicit2, 0)); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody,
                              [&] { return Err(utimensat(AT_FDCWD, r.c_str(), now2, 0)); }));
  EXPECT_NE(5, StatOf(w).st_mtime);
}

TEST_F(PosixAttr, WriteUpdatesMtimeAndCtime) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "hello"));
  SetOldTimes(f, /*atime=*/2000000000, /*mtime=*/1000000000);
  struct stat before = StatOf(f);
  WaitClockPast(before.st_ctim);
  Fd fd(open(f.c_str(), O_WRONLY));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(3, pwrite(fd, "abc", 3, 1));
  fd.reset();
  struct stat after = StatOf(f);
  EXPECT_TRUE(TsLess(before.st_mtim, after.st_mtim)) << "write must update mtime";
  EXPECT_TRUE(TsLess(before.st_ctim, after.st_ctim)) << "write must update ctime";
  EXPECT_TRUE(TsEq(before.st_atim, after.st_atim)) << "write must not update atime";
  EXPECT_TRUE(NearNow(after.st_mtim));
}

TEST_F(PosixAttr, ReadUpdatesAtimeWhenNotNewerThanMtime) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "some content"));
  // atime <= mtime: relatime (and strictatime) update atime on read.
  SetOldTimes(f, /*atime=*/1000000000, /*mtime=*/1100000000);
  struct stat before = StatOf(f);
  EXPECT_EQ("some content", ReadFile(f));
  struct stat after = StatOf(f);
  EXPECT_TRUE(TsLess(before.st_atim, after.st_atim))
      << "atime " << TsStr(before.st_atim) << " -> " << TsStr(after.st_atim);
  EXPECT_TRUE(NearNow(after.st_atim));
  EXPECT_TRUE(TsEq(before.st_mtim, after.st_mtim)) << "read must not change mtime";
  EXPECT_TRUE(TsEq(before.st_ctim, after.st_ctim)) << "an atime update must not change ctime";
}

TEST_F(PosixAttr, CreateAndRemoveUpdateParentTimes) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  auto check = [&](const char* what, auto op) {
    SetOldTimes(path("d"));
    struct stat before = StatOf(path("d"));
    WaitClockPast(before.st_ctim);
    op();
    struct stat after = StatOf(path("d"));
    EXPECT_TRUE(TsLess(before.st_mtim, after.st_mtim)) << what << " must update parent mtime";
    EXPECT_TRUE(TsLess(before.st_ctim, after.st_ctim)) << what << " must update parent ctime";
  };
  check("create", [&] { ASSERT_TRUE(WriteFile(path("d/f"), "x")); });
  check("mkdir", [&] { ASSERT_SYS(mkdir(path("d/sub").c_str(), 0755)); });
  check("symlink", [&] { ASSERT_SYS(symlink("f", path("d/l").c_str())); });
  check("link", [&] { ASSERT_SYS(link(path("d/f").c_str(), path("d/f2").c_str())); });
  check("mknod", [&] { ASSERT_SYS(mknod(path("d/fifo").c_str(), S_IFIFO | 0644, 0)); });
  check("unlink", [&] { ASSERT_SYS(unlink(path("d/f").c_str())); });
  check("rmdir", [&] { ASSERT_SYS(rmdir(path("d/sub").c_str())); });
}

TEST_F(PosixAttr, TruncateUpAndDown) {
  std::string f = path("f");
  std::string data = Pattern(10000, 3);
  ASSERT_TRUE(WriteFile(f, data));
  ASSERT_SYS(truncate(f.c_str(), 20000));
  std::string got = ReadFile(f);
  ASSERT_EQ(20000u, got.size());
  EXPECT_EQ(data, got.substr(0, 10000));
  EXPECT_TRUE(AllZero(got.substr(10000))) << "extended region must read as zeros";

  // Down then up: the cut-off bytes must not come back.
  ASSERT_SYS(truncate(f.c_str(), 1234));
  EXPECT_EQ(1234, StatOf(f).st_size);
  ASSERT_SYS(truncate(f.c_str(), 9000));
  got = ReadFile(f);
  ASSERT_EQ(9000u, got.size());
  EXPECT_EQ(data.substr(0, 1234), got.substr(0, 1234));
  EXPECT_TRUE(AllZero(got.substr(1234))) << "bytes past a truncate-down must read as zeros";

  // ftruncate on an open fd, and times.
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  SetOldTimes(f);
  struct stat before = FStatOf(fd);
  WaitClockPast(before.st_ctim);
  ASSERT_SYS(ftruncate(fd, 100));
  struct stat after = FStatOf(fd);
  EXPECT_EQ(100, after.st_size);
  EXPECT_TRUE(TsLess(before.st_mtim, after.st_mtim)) << "truncate must update mtime";
  EXPECT_TRUE(TsLess(before.st_ctim, after.st_ctim)) << "truncate must update ctime";
  ASSERT_SYS(ftruncate(fd, 0));
  EXPECT_EQ("", ReadFile(f));
  ASSERT_SYS(ftruncate(fd, 5000000));
  got = ReadFile(f);
  EXPECT_EQ(5000000u, got.size());
  EXPECT_TRUE(AllZero(got));

  // Errors.
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  EXPECT_ERRNO(EISDIR, truncate(path("d").c_str(), 0));
  EXPECT_ERRNO(EINVAL, truncate(f.c_str(), -1));
  Fd ro(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(ro.get());
  EXPECT_ERRNO(EINVAL, ftruncate(ro, 0));  // not open for writing
}

TEST_F(PosixAttr, NonRootPermissions) {
  // Positive controls first: without them an EACCES for everything would pass.
  std::string pub = path("public"), secret = path("secret");
  ASSERT_TRUE(WriteFile(pub, "public data"));
  ASSERT_TRUE(WriteFile(secret, "secret data"));
  ASSERT_SYS(chmod(pub.c_str(), 0644));
  ASSERT_SYS(chmod(secret.c_str(), 0600));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return ReadFile(pub) == "public data" ? 0 : 1; }));
  EXPECT_EQ(EACCES,
            RunAsUser(kNobody, kNobody, [&] { return Err(open(secret.c_str(), O_RDONLY)); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] { return Err(open(pub.c_str(), O_WRONLY)); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] { return Err(truncate(pub.c_str(), 0)); }));

  // Directories: create needs w+x; lookup needs x; listing needs r.
  std::string closed = path("closed"), open_dir = path("open");
  ASSERT_SYS(mkdir(closed.c_str(), 0755));
  ASSERT_SYS(mkdir(open_dir.c_str(), 0777));
  ASSERT_SYS(chmod(open_dir.c_str(), 0777));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] {
              return Err(open((closed + "/new").c_str(), O_CREAT | O_WRONLY, 0644));
            }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody,
                              [&] { return Err(mkdir((closed + "/sub").c_str(), 0755)); }));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody,
                         [&] { return WriteFile(open_dir + "/mine", "by nobody") ? 0 : errno; }));
  struct stat mine = StatOf(open_dir + "/mine");
  EXPECT_EQ(kNobody, mine.st_uid) << "new files belong to the creating user";
  EXPECT_EQ(kNobody, mine.st_gid);
  EXPECT_EQ(S_IFREG | 0644u, mine.st_mode);
  ASSERT_TRUE(WriteFile(closed + "/rootfile", "r"));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody,
                              [&] { return Err(unlink((closed + "/rootfile").c_str())); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] {
              return Err(rename((closed + "/rootfile").c_str(), (open_dir + "/stolen").c_str()));
            }));
  EXPECT_TRUE(Exists(closed + "/rootfile"));

  std::string noexec = path("noexec"), noread = path("noread");
  ASSERT_SYS(mkdir(noexec.c_str(), 0744));
  ASSERT_SYS(chmod(noexec.c_str(), 0744));
  ASSERT_TRUE(WriteFile(noexec + "/f", "f"));
  ASSERT_SYS(mkdir(noread.c_str(), 0711));
  ASSERT_SYS(chmod(noread.c_str(), 0711));
  ASSERT_TRUE(WriteFile(noread + "/f", "visible by name"));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] {
              struct stat st;
              return Err(stat((noexec + "/f").c_str(), &st));
            }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody,
                              [&] { return Err(open(noread.c_str(), O_RDONLY | O_DIRECTORY)); }));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody,
                         [&] { return ReadFile(noread + "/f") == "visible by name" ? 0 : 1; }));
  // rmdir/unlink of entries in a root-owned dir.
  ASSERT_SYS(mkdir((closed + "/d").c_str(), 0777));
  EXPECT_EQ(EACCES,
            RunAsUser(kNobody, kNobody, [&] { return Err(rmdir((closed + "/d").c_str())); }));
}

TEST_F(PosixAttr, Access) {
  std::string f = path("f"), x = path("x"), ro = path("ro");
  ASSERT_TRUE(WriteFile(f, "x"));
  ASSERT_TRUE(WriteFile(x, "x"));
  ASSERT_TRUE(WriteFile(ro, "x"));
  ASSERT_SYS(chmod(f.c_str(), 0600));
  ASSERT_SYS(chmod(x.c_str(), 0755));
  ASSERT_SYS(chmod(ro.c_str(), 0444));
  EXPECT_SYS(access(f.c_str(), R_OK | W_OK));
  // root needs an x bit to execute.
  EXPECT_ERRNO(EACCES, access(f.c_str(), X_OK));
  EXPECT_SYS(access(ro.c_str(), W_OK)) << "root may write a read-only file";
  EXPECT_SYS(access(x.c_str(), X_OK));
  EXPECT_ERRNO(ENOENT, access(path("missing").c_str(), F_OK));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] { return Err(access(f.c_str(), R_OK)); }));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return Err(access(f.c_str(), F_OK)); }));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return Err(access(x.c_str(), R_OK | X_OK)); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] { return Err(access(x.c_str(), W_OK)); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] { return Err(access(ro.c_str(), W_OK)); }));
  // Group permission applies to members of the file's group.
  ASSERT_SYS(chown(f.c_str(), 0, kOtherUser));
  ASSERT_SYS(chmod(f.c_str(), 0640));
  EXPECT_EQ(0, RunAsUser(kNobody, kOtherUser, [&] { return Err(access(f.c_str(), R_OK)); }));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kOtherUser, [&] { return Err(access(f.c_str(), W_OK)); }));
  // Owner bits win over group/other bits for the owner.
  ASSERT_SYS(chown(f.c_str(), kNobody, kNobody));
  ASSERT_SYS(chmod(f.c_str(), 0077));
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] { return Err(access(f.c_str(), R_OK)); }));
}

TEST_F(PosixAttr, StickyDirectory) {
  std::string tmp = path("tmp");
  ASSERT_SYS(mkdir(tmp.c_str(), 0777));
  ASSERT_SYS(chmod(tmp.c_str(), 01777));
  EXPECT_EQ(S_IFDIR | 01777u, StatOf(tmp).st_mode);
  std::string a = tmp + "/a", b = tmp + "/b";
  ASSERT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return WriteFile(a, "a") ? 0 : errno; }));
  ASSERT_EQ(0, RunAsUser(kOtherUser, kOtherUser, [&] { return WriteFile(b, "b") ? 0 : errno; }));
  auto denied = [](int e) { return e == EPERM || e == EACCES; };
  int e = RunAsUser(kOtherUser, kOtherUser, [&] { return Err(unlink(a.c_str())); });
  EXPECT_TRUE(denied(e)) << "unlink of another user's file in a sticky dir: got " << ErrName(e);
  e = RunAsUser(kOtherUser, kOtherUser,
                [&] { return Err(rename(a.c_str(), (tmp + "/c").c_str())); });
  EXPECT_TRUE(denied(e)) << "rename of another user's file in a sticky dir: got " << ErrName(e);
  e = RunAsUser(kOtherUser, kOtherUser, [&] { return Err(rename(b.c_str(), a.c_str())); });
  EXPECT_TRUE(denied(e)) << "replacing another user's file in a sticky dir: got " << ErrName(e);
  EXPECT_EQ("a", ReadFile(a));
  EXPECT_EQ("b", ReadFile(b));
  // Owners can remove their own files; root can remove anything.
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return Err(unlink(a.c_str())); }));
  EXPECT_SYS(unlink(b.c_str()));
  // Control: without the sticky bit, any writer of the dir may unlink.
  ASSERT_SYS(chmod(tmp.c_str(), 0777));
  ASSERT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return WriteFile(a, "a") ? 0 : errno; }));
  EXPECT_EQ(0, RunAsUser(kOtherUser, kOtherUser, [&] { return Err(unlink(a.c_str())); }));
}

TEST_F(PosixAttr, WriteByNonOwnerClearsSetuidSetgid) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "0123456789"));
  ASSERT_SYS(chmod(f.c_str(), 06777));
  ASSERT_EQ(06777u, StatOf(f).st_mode & 07777u);
  ASSERT_EQ(0, RunAsUser(kNobody, kNobody, [&] {
              int fd = open(f.c_str(), O_WRONLY);
              if (fd < 0) return errno;
              int r = pwrite(fd, "X", 1, 0) == 1 ? 0 : errno;
              close(fd);
              return r;
            }));
  EXPECT_EQ(0777u, StatOf(f).st_mode & 07777u) << "write by a non-owner clears S_ISUID and S_ISGID";
  EXPECT_EQ("X123456789", ReadFile(f));
  // Root (CAP_FSETID) writing keeps the bits.
  ASSERT_SYS(chmod(f.c_str(), 06777));
  Fd fd(open(f.c_str(), O_WRONLY));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(1, pwrite(fd, "Y", 1, 0));
  fd.reset();
  EXPECT_EQ(06777u, StatOf(f).st_mode & 07777u);
}

TEST_F(PosixAttr, SetgidDirectoryInheritsGroup) {
  std::string d = path("shared");
  ASSERT_SYS(mkdir(d.c_str(), 0777));
  ASSERT_SYS(chown(d.c_str(), 0, kOtherUser));
  ASSERT_SYS(chmod(d.c_str(), 02777));
  ASSERT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return WriteFile(d + "/f", "x") ? 0 : errno; }));
  ASSERT_EQ(0, RunAsUser(kNobody, kNobody, [&] { return Err(mkdir((d + "/sub").c_str(), 0755)); }));
  EXPECT_EQ(kOtherUser, StatOf(d + "/f").st_gid) << "files in a setgid dir take the dir's group";
  EXPECT_EQ(kNobody, StatOf(d + "/f").st_uid);
  struct stat sub = StatOf(d + "/sub");
  EXPECT_EQ(kOtherUser, sub.st_gid);
  EXPECT_TRUE(sub.st_mode & S_ISGID) << "subdirectories of a setgid dir inherit S_ISGID";
}

class PosixNoatime : public MountTest {
 protected:
  std::string MountOptions() const override { return MountedVolume::DefaultOptions() + ",noatime"; }
};

TEST_F(PosixNoatime, ReadDoesNotUpdateAtime) {
  if (vol_->plain()) GTEST_SKIP() << "-o noatime is a DBFS mount option";
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "content"));
  SetOldTimes(f, /*atime=*/1000000000, /*mtime=*/1100000000);
  struct stat before = StatOf(f);
  EXPECT_EQ("content", ReadFile(f));
  ASSERT_TRUE(vol_->Remount());
  EXPECT_EQ("content", ReadFile(f));
  struct stat after = StatOf(f);
  EXPECT_TRUE(TsEq(before.st_atim, after.st_atim))
      << "atime changed under -o noatime: " << TsStr(after.st_atim);
  // Explicit atime changes still work.
  struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
  ASSERT_SYS(utimensat(AT_FDCWD, f.c_str(), ts, 0));
  EXPECT_TRUE(NearNow(StatOf(f).st_atim));
}

}  // namespace
}  // namespace dbfs::testing
