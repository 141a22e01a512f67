// Special files, xattrs, fallocate, SEEK_DATA/HOLE, copy_file_range, locks,
// statfs, huge sparse files and mmap.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class PosixSpecial : public MountTest {};

int Err(long r) { return r == -1 ? errno : 0; }

TEST_F(PosixSpecial, Fifo) {
  std::string p = path("fifo");
  ASSERT_SYS(mkfifo(p.c_str(), 0644));
  struct stat st = LStatOf(p);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(0644u, st.st_mode & 07777u);
  // O_RDWR on a FIFO never blocks on Linux; data flows through the kernel pipe.
  Fd fd(open(p.c_str(), O_RDWR | O_NONBLOCK));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(5, write(fd, "piped", 5));
  char buf[16];
  ASSERT_EQ(5, read(fd, buf, sizeof buf));
  EXPECT_EQ("piped", std::string(buf, 5));
  EXPECT_EQ(0, FStatOf(fd).st_size);
  ASSERT_SYS(mknod(path("fifo2").c_str(), S_IFIFO | 0600, 0));
  EXPECT_TRUE(S_ISFIFO(LStatOf(path("fifo2")).st_mode));
}

TEST_F(PosixSpecial, UnixSocket) {
  std::string p = path("sock");
  int srv = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_SYS(srv);
  Fd s(srv);
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(p.size(), sizeof addr.sun_path);
  strcpy(addr.sun_path, p.c_str());
  ASSERT_SYS(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  ASSERT_SYS(listen(s, 1));
  EXPECT_TRUE(S_ISSOCK(LStatOf(p).st_mode));
  Fd c(socket(AF_UNIX, SOCK_STREAM, 0));
  ASSERT_SYS(c.get());
  ASSERT_SYS(connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  Fd a(accept(s, nullptr, nullptr));
  ASSERT_SYS(a.get());
  ASSERT_EQ(2, write(c, "hi", 2));
  char buf[4];
  ASSERT_EQ(2, read(a, buf, sizeof buf));
  EXPECT_EQ("hi", std::string(buf, 2));
  ASSERT_SYS(mknod(path("sock2").c_str(), S_IFSOCK | 0600, 0));
  EXPECT_TRUE(S_ISSOCK(LStatOf(path("sock2")).st_mode));
}

TEST_F(PosixSpecial, DeviceNodes) {
  ASSERT_SYS(mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  ASSERT_SYS(mknod(path("loop").c_str(), S_IFBLK | 0660, makedev(7, 0)));
  ASSERT_SYS(mknod(path("big").c_str(), S_IFCHR | 0600, makedev(4095, 1048575)));
  struct stat c = LStatOf(path("null")), b = LStatOf(path("loop")), big = LStatOf(path("big"));
  EXPECT_TRUE(S_ISCHR(c.st_mode));
  EXPECT_EQ(makedev(1, 3), c.st_rdev);
  EXPECT_EQ(0644u, c.st_mode & 07777u) << "mknod applies the umask (022)";
  EXPECT_TRUE(S_ISBLK(b.st_mode));
  EXPECT_EQ(makedev(7, 0), b.st_rdev);
  EXPECT_EQ(makedev(4095, 1048575), big.st_rdev) << "full 32-bit dev_t";
  // mknod of a regular file is a plain create.
  ASSERT_SYS(mknod(path("reg").c_str(), S_IFREG | 0640, 0));
  struct stat r = LStatOf(path("reg"));
  EXPECT_TRUE(S_ISREG(r.st_mode));
  EXPECT_EQ(0, r.st_size);
  // Device nodes can be renamed, linked and removed like files.
  ASSERT_SYS(link(path("null").c_str(), path("null2").c_str()));
  EXPECT_EQ(2u, LStatOf(path("null")).st_nlink);
  ASSERT_SYS(rename(path("loop").c_str(), path("loop0").c_str()));
  EXPECT_EQ(makedev(7, 0), LStatOf(path("loop0")).st_rdev);
  ASSERT_SYS(unlink(path("null").c_str()));
  EXPECT_EQ(makedev(1, 3), LStatOf(path("null2")).st_rdev);
}

std::set<std::string> UserXattrs(const std::string& p) {
  std::set<std::string> out;
  char buf[65536];
  ssize_t n = llistxattr(p.c_str(), buf, sizeof buf);
  if (n < 0) {
    ADD_FAILURE() << "listxattr(" << p << "): " << ErrName(errno);
    return out;
  }
  for (ssize_t i = 0; i < n;) {
    std::string name(buf + i);
    if (name.rfind("user.", 0) == 0) out.insert(name);
    i += name.size() + 1;
  }
  return out;
}

std::string GetX(const std::string& p, const std::string& name) {
  char buf[65536];
  ssize_t n = lgetxattr(p.c_str(), name.c_str(), buf, sizeof buf);
  if (n < 0) {
    ADD_FAILURE() << "getxattr(" << p << ", " << name << "): " << ErrName(errno);
    return "";
  }
  return std::string(buf, n);
}

TEST_F(PosixSpecial, Xattrs) {
  std::string f = path("f");
  ASSERT_TRUE(WriteFile(f, "x"));
  EXPECT_TRUE(UserXattrs(f).empty());
  ASSERT_SYS(setxattr(f.c_str(), "user.a", "alpha", 5, 0));
  std::string binary("b\0i\0n\xff", 6);
  ASSERT_SYS(setxattr(f.c_str(), "user.bin", binary.data(), binary.size(), 0));
  ASSERT_SYS(setxattr(f.c_str(), "user.empty", "", 0, 0));
  std::string big = Pattern(3000, 5);
  ASSERT_SYS(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0));
  EXPECT_EQ("alpha", GetX(f, "user.a"));
  EXPECT_EQ(binary, GetX(f, "user.bin"));
  EXPECT_EQ("", GetX(f, "user.empty"));
  EXPECT_EQ(big, GetX(f, "user.big"));
  EXPECT_EQ((std::set<std::string>{"user.a", "user.bin", "user.empty", "user.big"}), UserXattrs(f));

  // Size probes and ERANGE.
  EXPECT_EQ(5, getxattr(f.c_str(), "user.a", nullptr, 0));
  char small[2];
  EXPECT_ERRNO(ERANGE, getxattr(f.c_str(), "user.a", small, sizeof small));
  ssize_t list_size = listxattr(f.c_str(), nullptr, 0);
  ASSERT_SYS(list_size);
  EXPECT_GE(list_size, static_cast<ssize_t>(strlen("user.a") + strlen("user.bin") +
                                            strlen("user.empty") + strlen("user.big") + 4));
  EXPECT_ERRNO(ERANGE, listxattr(f.c_str(), small, sizeof small));

  // Flags.
  EXPECT_ERRNO(EEXIST, setxattr(f.c_str(), "user.a", "x", 1, XATTR_CREATE));
  EXPECT_ERRNO(ENODATA, setxattr(f.c_str(), "user.nope", "x", 1, XATTR_REPLACE));
  EXPECT_EQ("alpha", GetX(f, "user.a"));
  ASSERT_SYS(setxattr(f.c_str(), "user.a", "beta", 4, XATTR_REPLACE));
  EXPECT_EQ("beta", GetX(f, "user.a"));
  ASSERT_SYS(setxattr(f.c_str(), "user.new", "n", 1, XATTR_CREATE));
  ASSERT_SYS(setxattr(f.c_str(), "user.a", "gamma-longer", 12, 0));
  EXPECT_EQ("gamma-longer", GetX(f, "user.a"));

  // Missing names and removal.
  char buf[16];
  EXPECT_ERRNO(ENODATA, getxattr(f.c_str(), "user.missing", buf, sizeof buf));
  EXPECT_ERRNO(ENODATA, getxattr(f.c_str(), "user.missing", nullptr, 0));
  EXPECT_ERRNO(ENODATA, removexattr(f.c_str(), "user.missing"));
  ASSERT_SYS(removexattr(f.c_str(), "user.bin"));
  EXPECT_ERRNO(ENODATA, getxattr(f.c_str(), "user.bin", buf, sizeof buf));
  EXPECT_EQ((std::set<std::string>{"user.a", "user.empty", "user.big", "user.new"}), UserXattrs(f));

  // Setting an xattr changes ctime.
  struct stat before = StatOf(f);
  WaitClockPast(before.st_ctim);
  ASSERT_SYS(setxattr(f.c_str(), "user.t", "1", 1, 0));
  EXPECT_TRUE(TsLess(before.st_ctim, StatOf(f).st_ctim)) << "setxattr must update ctime";

  // fd variants, directories, and xattrs follow the inode through rename/link.
  Fd fd(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(fd.get());
  ASSERT_SYS(fsetxattr(fd, "user.fd", "via fd", 6, 0));
  EXPECT_EQ(6, fgetxattr(fd, "user.fd", buf, sizeof buf));
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_SYS(setxattr(path("d").c_str(), "user.dir", "D", 1, 0));
  EXPECT_EQ("D", GetX(path("d"), "user.dir"));
  ASSERT_SYS(rename(f.c_str(), path("d/g").c_str()));
  ASSERT_SYS(link(path("d/g").c_str(), path("h").c_str()));
  EXPECT_EQ("via fd", GetX(path("h"), "user.fd"));
  EXPECT_EQ(big, GetX(path("d/g"), "user.big"));

  // Many attributes on one inode (small enough for ext4's one-block limit,
  // so that the test holds on the reference filesystem too).
  ASSERT_TRUE(WriteFile(path("many"), ""));
  for (int i = 0; i < 60; ++i) {
    std::string n = "user.m" + std::to_string(i);
    ASSERT_SYS(setxattr(path("many").c_str(), n.c_str(), n.data(), n.size(), 0));
  }
  EXPECT_EQ(60u, UserXattrs(path("many")).size());
  EXPECT_EQ("user.m42", GetX(path("many"), "user.m42"));

  // Permissions: a non-owner without write permission cannot set user.*.
  EXPECT_EQ(EACCES, RunAsUser(kNobody, kNobody, [&] {
              return Err(setxattr(path("h").c_str(), "user.x", "1", 1, 0));
            }));
  EXPECT_EQ(0, RunAsUser(kNobody, kNobody, [&] {
              char b[64];
              return getxattr(path("h").c_str(), "user.a", b, sizeof b) > 0 ? 0 : errno;
            }));
}

TEST_F(PosixSpecial, Fallocate) {
  std::string f = path("f");
  Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(fd.get());
  // Default mode extends the size.
  ASSERT_SYS(fallocate(fd, 0, 0, 1 << 20));
  EXPECT_EQ(1 << 20, FStatOf(fd).st_size);
  EXPECT_TRUE(AllZero(PRead(fd, 1 << 20, 0)));
  // KEEP_SIZE does not.
  std::string data = Pattern(3 << 20, 9);
  ASSERT_SYS(ftruncate(fd, 0));
  ASSERT_TRUE(PWriteAll(fd, data.substr(0, 1000), 0));
  ASSERT_SYS(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20));
  EXPECT_EQ(1000, FStatOf(fd).st_size);
  EXPECT_EQ(data.substr(0, 1000), PRead(fd, 5000, 0));
  // fallocate inside existing data leaves it alone.
  ASSERT_TRUE(PWriteAll(fd, data, 0));
  ASSERT_SYS(fallocate(fd, 0, 4096, 8192));
  EXPECT_EQ(data, PRead(fd, data.size(), 0));
  // PUNCH_HOLE: zeros inside, data around, size unchanged.
  ASSERT_SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100000, 1000000));
  EXPECT_EQ(static_cast<off_t>(data.size()), FStatOf(fd).st_size);
  std::string got = PRead(fd, data.size(), 0);
  ASSERT_EQ(data.size(), got.size());
  EXPECT_EQ(data.substr(0, 100000), got.substr(0, 100000));
  EXPECT_TRUE(AllZero(got.substr(100000, 1000000))) << "punched range must read zeros";
  EXPECT_EQ(data.substr(1100000), got.substr(1100000));
  // Punch an unaligned small range and the tail.
  ASSERT_SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 7, 3));
  got = PRead(fd, 20, 0);
  EXPECT_EQ(data.substr(0, 7) + std::string(3, '\0') + data.substr(10, 10), got);
  ASSERT_SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3000000, 1 << 20));
  EXPECT_EQ(static_cast<off_t>(data.size()), FStatOf(fd).st_size);
  EXPECT_TRUE(AllZero(PRead(fd, data.size() - 3000000, 3000000)));
  // The punched data stays gone across a reopen.
  fd.reset();
  got = ReadFile(f);
  EXPECT_TRUE(AllZero(got.substr(100000, 1000000)));
  // fallocate needs a writable fd.
  Fd ro(open(f.c_str(), O_RDONLY));
  ASSERT_SYS(ro.get());
  EXPECT_ERRNO(EBADF, fallocate(ro, 0, 0, 4096));
}

TEST_F(PosixSpecial, SeekDataAndHole) {
  constexpr off_t kMiB = 1 << 20;
  std::string f = path("sparse");
  Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(fd.get());
  ASSERT_TRUE(PWriteAll(fd, Pattern(4096, 1), 0));
  ASSERT_TRUE(PWriteAll(fd, Pattern(4096, 2), 8 * kMiB));
  ASSERT_SYS(ftruncate(fd, 16 * kMiB));
  ASSERT_SYS(fsync(fd));
  EXPECT_EQ(0, lseek(fd, 0, SEEK_DATA));
  off_t hole = lseek(fd, 0, SEEK_HOLE);
  EXPECT_GE(hole, 4096);
  EXPECT_LE(hole, 8 * kMiB) << "the gap between the two data regions must be reported as a hole";
  off_t data2 = lseek(fd, 4 * kMiB, SEEK_DATA);
  EXPECT_GE(data2, 4 * kMiB);
  EXPECT_LE(data2, 8 * kMiB);
  off_t hole2 = lseek(fd, 8 * kMiB, SEEK_HOLE);
  EXPECT_GE(hole2, 8 * kMiB + 4096);
  EXPECT_LE(hole2, 16 * kMiB);
  EXPECT_ERRNO(ENXIO, lseek(fd, 12 * kMiB, SEEK_DATA));  // only a hole up to EOF
  EXPECT_ERRNO(ENXIO, lseek(fd, 16 * kMiB, SEEK_DATA));
  EXPECT_ERRNO(ENXIO, lseek(fd, 16 * kMiB, SEEK_HOLE));
  EXPECT_EQ(12 * kMiB, lseek(fd, 12 * kMiB, SEEK_HOLE)) << "an offset inside a hole is returned";
  // Punching the first data region turns it into a hole.
  ASSERT_SYS(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  off_t first = lseek(fd, 0, SEEK_DATA);
  EXPECT_GE(first, 4096) << "punched range must not be reported as data";
  EXPECT_LE(first, 8 * kMiB);
  // A file without holes: SEEK_HOLE lands at EOF.
  Fd dense(open(path("dense").c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_TRUE(PWriteAll(dense, Pattern(100000, 3), 0));
  EXPECT_EQ(100000, lseek(dense, 0, SEEK_HOLE));
  EXPECT_EQ(500, lseek(dense, 500, SEEK_DATA));
}

TEST_F(PosixSpecial, CopyFileRange) {
  std::string src = Pattern(1 << 20, 11);
  ASSERT_TRUE(WriteFile(path("src"), src));
  ASSERT_TRUE(WriteFile(path("dst"), std::string(10000, 'd')));
  Fd in(open(path("src").c_str(), O_RDONLY));
  Fd out(open(path("dst").c_str(), O_RDWR));
  ASSERT_SYS(in.get());
  ASSERT_SYS(out.get());
  loff_t off_in = 1000, off_out = 5000;
  size_t left = 300000;
  while (left > 0) {
    ssize_t n = copy_file_range(in, &off_in, out, &off_out, left, 0);
    ASSERT_SYS(n);
    ASSERT_GT(n, 0) << "copy_file_range made no progress";
    left -= n;
  }
  EXPECT_EQ(301000, off_in);
  EXPECT_EQ(305000, off_out);
  std::string got = ReadFile(path("dst"));
  ASSERT_EQ(305000u, got.size());
  EXPECT_EQ(std::string(5000, 'd'), got.substr(0, 5000));
  EXPECT_EQ(src.substr(1000, 300000), got.substr(5000));
  // Whole-file copy using the file offsets; then past EOF copies nothing.
  Fd out2(open(path("dst2").c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(out2.get());
  ASSERT_SYS(lseek(in, 0, SEEK_SET));
  size_t total = 0;
  for (;;) {
    ssize_t n = copy_file_range(in, nullptr, out2, nullptr, 1 << 20, 0);
    ASSERT_SYS(n);
    if (n == 0) break;
    total += n;
  }
  EXPECT_EQ(src.size(), total);
  EXPECT_EQ(src, ReadFile(path("dst2")));
  // Within one file, non-overlapping.
  loff_t a = 0, b = 2 << 20;
  ASSERT_EQ(4096, copy_file_range(out2, &a, out2, &b, 4096, 0));
  EXPECT_EQ(src.substr(0, 4096), PRead(out2, 4096, 2 << 20));
  EXPECT_EQ((2 << 20) + 4096, FStatOf(out2).st_size);
}

TEST_F(PosixSpecial, Flock) {
  std::string f = path("lock");
  ASSERT_TRUE(WriteFile(f, "x"));
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  auto child_flock = [&](int op) {
    return RunInChild([&] {
      int cfd = open(f.c_str(), O_RDWR);
      if (cfd < 0) return 200;
      return Err(flock(cfd, op | LOCK_NB));
    });
  };
  ASSERT_SYS(flock(fd, LOCK_EX));
  EXPECT_EQ(EWOULDBLOCK, child_flock(LOCK_EX)) << "LOCK_EX excludes other processes";
  EXPECT_EQ(EWOULDBLOCK, child_flock(LOCK_SH));
  ASSERT_SYS(flock(fd, LOCK_UN));
  EXPECT_EQ(0, child_flock(LOCK_EX)) << "released lock is available";
  ASSERT_SYS(flock(fd, LOCK_SH));
  EXPECT_EQ(0, child_flock(LOCK_SH)) << "LOCK_SH is shared";
  EXPECT_EQ(EWOULDBLOCK, child_flock(LOCK_EX));
  // A lock dies with its open file description.
  fd.reset();
  EXPECT_EQ(0, child_flock(LOCK_EX));
}

TEST_F(PosixSpecial, FcntlLocks) {
  std::string f = path("lock");
  ASSERT_TRUE(WriteFile(f, std::string(1000, 'x')));
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  auto lk = [](short type, off_t start, off_t len) {
    struct flock l {};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    l.l_start = start;
    l.l_len = len;
    return l;
  };
  struct flock w = lk(F_WRLCK, 0, 100);
  ASSERT_SYS(fcntl(fd, F_SETLK, &w));
  pid_t me = getpid();
  // Child: conflicting range is reported and refused; other ranges are free.
  int r = RunInChild([&] {
    int cfd = open(f.c_str(), O_RDWR);
    if (cfd < 0) return 200;
    struct flock q = lk(F_WRLCK, 50, 10);
    if (fcntl(cfd, F_GETLK, &q) != 0) return 201;
    if (q.l_type != F_WRLCK) return 202;
    if (q.l_pid != me) return 203;
    if (q.l_start != 0 || q.l_len != 100) return 204;
    struct flock s = lk(F_WRLCK, 50, 10);
    if (fcntl(cfd, F_SETLK, &s) == 0) return 205;
    if (errno != EAGAIN && errno != EACCES) return 206;
    struct flock rd = lk(F_RDLCK, 99, 1);
    if (fcntl(cfd, F_SETLK, &rd) == 0) return 207;
    struct flock free_range = lk(F_WRLCK, 100, 100);
    if (fcntl(cfd, F_SETLK, &free_range) != 0) return 208;
    struct flock q2 = lk(F_WRLCK, 300, 10);
    if (fcntl(cfd, F_GETLK, &q2) != 0 || q2.l_type != F_UNLCK) return 209;
    return 0;
  });
  EXPECT_EQ(0, r) << "child lock checks failed at step " << r;
  // Read locks are shared, and exclude writers.
  struct flock un = lk(F_UNLCK, 0, 0);
  ASSERT_SYS(fcntl(fd, F_SETLK, &un));
  struct flock rl = lk(F_RDLCK, 0, 100);
  ASSERT_SYS(fcntl(fd, F_SETLK, &rl));
  r = RunInChild([&] {
    int cfd = open(f.c_str(), O_RDWR);
    if (cfd < 0) return 200;
    struct flock rd = lk(F_RDLCK, 0, 100);
    if (fcntl(cfd, F_SETLK, &rd) != 0) return 210;
    struct flock wr = lk(F_WRLCK, 10, 1);
    if (fcntl(cfd, F_SETLK, &wr) == 0) return 211;
    return 0;
  });
  EXPECT_EQ(0, r) << "child lock checks failed at step " << r;
  // After unlocking everything, the child can take a write lock on the whole file.
  ASSERT_SYS(fcntl(fd, F_SETLK, &un));
  r = RunInChild([&] {
    int cfd = open(f.c_str(), O_RDWR);
    struct flock wr = lk(F_WRLCK, 0, 0);
    return fcntl(cfd, F_SETLK, &wr) == 0 ? 0 : 212;
  });
  EXPECT_EQ(0, r);
}

TEST_F(PosixSpecial, Statfs) {
  ASSERT_TRUE(WriteFile(path("f"), Pattern(1 << 20, 1)));
  struct statvfs sv;
  ASSERT_SYS(statvfs(path().c_str(), &sv));
  EXPECT_EQ(255u, sv.f_namemax);
  EXPECT_GT(sv.f_blocks, 0u);
  EXPECT_GT(sv.f_bsize, 0u);
  EXPECT_GT(sv.f_frsize, 0u);
  EXPECT_LE(sv.f_bfree, sv.f_blocks);
  EXPECT_LE(sv.f_bavail, sv.f_blocks);
  EXPECT_GT(sv.f_bavail, 0u);
  EXPECT_LE(sv.f_ffree, sv.f_files);
  struct statfs sf;
  ASSERT_SYS(statfs(path("f").c_str(), &sf));
  EXPECT_EQ(255, sf.f_namelen);
  EXPECT_GT(sf.f_blocks, 0u);
}

TEST_F(PosixSpecial, OneTebibyteSparseFile) {
  constexpr off_t kTiB = off_t{1} << 40;
  std::string f = path("huge");
  Fd fd(open(f.c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(1, pwrite(fd, "Z", 1, kTiB - 1));
  struct stat st = FStatOf(fd);
  EXPECT_EQ(kTiB, st.st_size);
  EXPECT_LT(st.st_blocks, 2048) << "a 1 TiB sparse file with one byte must not allocate much";
  EXPECT_TRUE(AllZero(PRead(fd, 65536, 0)));
  EXPECT_TRUE(AllZero(PRead(fd, 65536, kTiB / 2)));
  EXPECT_EQ(std::string(4095, '\0') + "Z", PRead(fd, 4096, kTiB - 4096));
  EXPECT_EQ("", PRead(fd, 10, kTiB));
  fd.reset();
  EXPECT_EQ(kTiB, StatOf(f).st_size);
  ASSERT_SYS(truncate(f.c_str(), kTiB / 2));
  EXPECT_EQ(kTiB / 2, StatOf(f).st_size);
  ASSERT_SYS(unlink(f.c_str()));
}

TEST_F(PosixSpecial, MmapReadAndSharedWrite) {
  constexpr size_t kSize = 256 * 1024;
  std::string f = path("m");
  std::string data = Pattern(kSize, 21);
  ASSERT_TRUE(WriteFile(f, data));
  {
    Fd fd(open(f.c_str(), O_RDONLY));
    ASSERT_SYS(fd.get());
    void* p = mmap(nullptr, kSize, PROT_READ, MAP_PRIVATE, fd, 0);
    ASSERT_NE(MAP_FAILED, p) << ErrName(errno);
    EXPECT_EQ(0, memcmp(p, data.data(), kSize)) << "mmap read differs";
    munmap(p, kSize);
  }
  {
    Fd fd(open(f.c_str(), O_RDWR));
    ASSERT_SYS(fd.get());
    void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(MAP_FAILED, p) << "MAP_SHARED writable mapping: " << ErrName(errno);
    char* c = static_cast<char*>(p);
    std::string patch = Pattern(10000, 22);
    memcpy(c + 5000, patch.data(), patch.size());
    memcpy(c + kSize - 3, "END", 3);
    data.replace(5000, patch.size(), patch);
    data.replace(kSize - 3, 3, "END");
    ASSERT_SYS(msync(p, kSize, MS_SYNC));
    munmap(p, kSize);
  }
  EXPECT_TRUE(ReadFile(f) == data) << "data written through MAP_SHARED + msync not seen by read()";
  EXPECT_EQ(static_cast<off_t>(kSize), StatOf(f).st_size);
  {
    // A write() is visible through an existing mapping.
    Fd fd(open(f.c_str(), O_RDWR));
    ASSERT_SYS(fd.get());
    void* p = mmap(nullptr, kSize, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(MAP_FAILED, p) << ErrName(errno);
    ASSERT_EQ(4, pwrite(fd, "WXYZ", 4, 100));
    data.replace(100, 4, "WXYZ");
    EXPECT_EQ(0, memcmp(static_cast<char*>(p) + 100, "WXYZ", 4));
    munmap(p, kSize);
  }
  {
    // Stores without msync reach the file by munmap + close (and a remount).
    Fd fd(open(f.c_str(), O_RDWR));
    ASSERT_SYS(fd.get());
    void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(MAP_FAILED, p) << ErrName(errno);
    memcpy(static_cast<char*>(p) + 70000, "no-msync", 8);
    data.replace(70000, 8, "no-msync");
    munmap(p, kSize);
  }
  ASSERT_TRUE(vol_->Remount());
  EXPECT_TRUE(ReadFile(f) == data) << "mmap'ed stores lost across munmap + close + remount";
}

}  // namespace
}  // namespace dbfs::testing
