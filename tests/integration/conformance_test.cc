// POSIX and Linux semantics a kernel filesystem's test suite expects (issue
// 12, items 4-10): rewinddir, SEEK_DATA/SEEK_HOLE, fallocate, device nodes
// and setuid, read-only mounts, file handles, OFD locks.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
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

class Conformance : public MountTest {};

// lseek's answer as text: the offset, or the errno name.
std::string SeekAnswer(int fd, off_t off, int whence) {
  errno = 0;
  const off_t r = lseek(fd, off, whence);
  return r >= 0 ? std::to_string(r) : std::string(ErrName(errno));
}

// Item 5: SEEK_DATA / SEEK_HOLE answer exactly what tmpfs answers for a
// file of the same layout (block-granular data, ENXIO at or past EOF and for
// negative offsets), in a file of huge holes and many data runs. Before the
// fix: EINVAL for negative offsets, and byte-granular runs (a hole starting
// inside a written block).
TEST_F(Conformance, SeekDataAndHoleMatchTmpfs) {
  struct statfs sfs {};
  if (statfs("/dev/shm", &sfs) != 0 || sfs.f_type != 0x01021994 /* TMPFS_MAGIC */) {
    GTEST_SKIP() << "/dev/shm is not tmpfs: no oracle";
  }
  char oracle_path[] = "/dev/shm/dbfs-seek-XXXXXX";
  Fd oracle(mkstemp(oracle_path));
  ASSERT_GE(oracle.get(), 0);
  unlink(oracle_path);
  Fd fd(open(path("seek").c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_GE(fd.get(), 0);

  std::mt19937_64 rng(12);
  constexpr off_t kG = off_t{1} << 30;
  std::vector<std::pair<off_t, size_t>> runs = {{0, 100}, {5 * kG, 4096}, {5 * kG + 8192, 1}};
  for (int i = 0; i < 150; ++i) {
    // Runs anywhere in 8 GiB: some in huge holes, some touching each other.
    runs.emplace_back(static_cast<off_t>(rng() % (8 * kG)), 1 + rng() % 20000);
  }
  const off_t size = 9 * kG + 777;
  const std::string bytes(20000, 'd');
  for (auto [off, len] : runs) {
    ASSERT_TRUE(PWriteAll(fd.get(), bytes.substr(0, len), off));
    ASSERT_TRUE(PWriteAll(oracle.get(), bytes.substr(0, len), off));
  }
  ASSERT_SYS(ftruncate(fd.get(), size));
  ASSERT_SYS(ftruncate(oracle.get(), size));

  std::set<off_t> probes = {-1, -4096, 0, 1, size - 1, size, size + 1, 3 * kG, 8 * kG + 5};
  for (auto [off, len] : runs) {
    for (off_t d : {-4097, -1, 0, 1, 4095}) probes.insert(off + d);
    for (off_t d : {-1, 0, 1, 4096}) probes.insert(off + static_cast<off_t>(len) + d);
  }
  int wrong = 0;
  for (off_t p : probes) {
    for (int whence : {SEEK_DATA, SEEK_HOLE}) {
      const std::string want = SeekAnswer(oracle.get(), p, whence);
      const std::string got = SeekAnswer(fd.get(), p, whence);
      if (want != got && ++wrong <= 10) {
        ADD_FAILURE() << (whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE") << " from " << p
                      << ": " << got << ", tmpfs says " << want;
      }
    }
  }
  EXPECT_EQ(0, wrong) << "of " << probes.size() * 2 << " answers";
}


std::set<std::string> ReadAll(DIR* d) {
  std::set<std::string> names;
  while (struct dirent* e = readdir(d)) names.insert(e->d_name);
  return names;
}

// Item 4: names created after opendir() and before rewinddir() are returned
// by later readdir() calls, and names removed meanwhile are not (POSIX
// rewinddir). Before the fix the handle kept the listing it took at open.
TEST_F(Conformance, RewinddirSeesNamesCreatedSinceOpendir) {
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("d/old"), "x"));
  ASSERT_TRUE(WriteFile(path("d/gone"), "x"));
  DIR* d = opendir(path("d").c_str());
  ASSERT_NE(nullptr, d);
  EXPECT_EQ((std::set<std::string>{".", "..", "old", "gone"}), ReadAll(d));
  ASSERT_TRUE(WriteFile(path("d/new"), "x"));
  ASSERT_SYS(unlink(path("d/gone").c_str()));
  rewinddir(d);
  EXPECT_EQ((std::set<std::string>{".", "..", "old", "new"}), ReadAll(d));
  // A rewind before anything was read, and a second pass, work the same.
  ASSERT_TRUE(WriteFile(path("d/newer"), "x"));
  rewinddir(d);
  rewinddir(d);
  EXPECT_EQ((std::set<std::string>{".", "..", "old", "new", "newer"}), ReadAll(d));
  closedir(d);
}

// A pass through a listing stays stable while names come and go: entries
// present throughout appear exactly once (the guarantee rewinddir must not
// break).
TEST_F(Conformance, ListingInProgressStaysStableUnderChanges) {
  ASSERT_SYS(mkdir(path("s").c_str(), 0755));
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(WriteFile(path("s/keep" + std::to_string(i)), ""));
  DIR* d = opendir(path("s").c_str());
  ASSERT_NE(nullptr, d);
  std::vector<std::string> seen;
  int made = 0;
  while (struct dirent* e = readdir(d)) {
    seen.push_back(e->d_name);
    // Churn between the small reads of the listing.
    ASSERT_TRUE(WriteFile(path("s/churn" + std::to_string(made++)), ""));
    if (made % 3 == 0) unlink(path("s/churn" + std::to_string(made - 2)).c_str());
  }
  closedir(d);
  std::map<std::string, int> count;
  for (const std::string& n : seen) ++count[n];
  for (int i = 0; i < 400; ++i) EXPECT_EQ(1, count["keep" + std::to_string(i)]) << i;
  for (const auto& [n, k] : count) EXPECT_EQ(1, k) << n << " listed twice";
}


// Runs argv as `uid` (gid the same) with stdout captured; returns the exit
// status (-1 if it did not run) and the output in *out.
int RunAs(uid_t uid, const std::vector<std::string>& argv, std::string* out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    if (setgroups(0, nullptr) != 0 || setgid(uid) != 0 || setuid(uid) != 0) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(errno == EACCES ? 125 : 127);
  }
  close(fds[1]);
  out->clear();
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  if (!WaitPid(pid, std::chrono::seconds(20), &st)) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A copy of id(1) owned by root with the set-user-ID bit, on the mount.
void MakeSetuidId(const std::string& dst) {
  const std::string id = ReadFile("/usr/bin/id");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WriteFile(dst, id, 0, 0755));
  ASSERT_SYS(chown(dst.c_str(), 0, 0));
  ASSERT_SYS(chmod(dst.c_str(), 04755));
}

// Item 7: a root mount honours device nodes and set-user-ID files by default
// (mount(8)'s defaults for root). Before the fix libfuse mounted nodev,nosuid:
// opening a device node failed with EACCES.
TEST_F(Conformance, RootMountHonoursDeviceNodesAndSetuid) {
  if (vol_->plain()) GTEST_SKIP() << "mount flags of a plain directory are the host's";
  struct statvfs sv {};
  ASSERT_SYS(statvfs(path().c_str(), &sv));
  EXPECT_EQ(0u, sv.f_flag & ST_NODEV);
  EXPECT_EQ(0u, sv.f_flag & ST_NOSUID);
  ASSERT_SYS(mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  Fd fd(open(path("null").c_str(), O_WRONLY));
  ASSERT_GE(fd.get(), 0) << "opening a device node: " << ErrName(errno);
  EXPECT_EQ(5, write(fd.get(), "hello", 5));
  MakeSetuidId(path("id"));
  std::string out;
  ASSERT_EQ(0, RunAs(kNobody, {path("id"), "-u"}, &out));
  EXPECT_EQ("0\n", out) << "a set-user-ID root program ran without its privilege";
}

class ConformanceNoDev : public MountTest {
 protected:
  std::string MountOptions() const override {
    return MountedVolume::DefaultOptions() + ",nodev,nosuid,noexec";
  }
};

// nodev, nosuid and noexec work when given.
TEST_F(ConformanceNoDev, NodevNosuidNoexecAreHonoured) {
  if (vol_->plain()) GTEST_SKIP() << "mount flags of a plain directory are the host's";
  struct statvfs sv {};
  ASSERT_SYS(statvfs(path().c_str(), &sv));
  EXPECT_NE(0u, sv.f_flag & ST_NODEV);
  EXPECT_NE(0u, sv.f_flag & ST_NOSUID);
  EXPECT_NE(0u, sv.f_flag & ST_NOEXEC);
  ASSERT_SYS(mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)));
  EXPECT_ERRNO(EACCES, open(path("null").c_str(), O_WRONLY));
  MakeSetuidId(path("id"));
  std::string out;
  EXPECT_EQ(125, RunAs(kNobody, {path("id"), "-u"}, &out)) << "noexec: exec must fail with EACCES";
}


struct flock Range(short type) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = 0;
  l.l_len = 100;
  return l;
}

// F_OFD_SETLK of a write lock on [0, 100) through a fresh open file
// description: 0 if granted, else the errno.
int TryOfdLock(const std::string& f) {
  Fd fd(open(f.c_str(), O_RDWR));
  if (fd.get() < 0) return errno;
  struct flock l = Range(F_WRLCK);
  return fcntl(fd.get(), F_OFD_SETLK, &l) == 0 ? 0 : errno;
}

// Item 10: OFD locks belong to the open file description: they survive dup
// and fork and closing some of its descriptors, and end at its last close —
// also when that close is a process exit. Before the fix an OFD lock was
// never released (the kernel does not tell the daemon), so another
// process's F_OFD_SETLKW waited forever.
TEST_F(Conformance, OfdLocksEndAtTheLastCloseOfTheirDescription) {
  const std::string f = path("ofd");
  ASSERT_TRUE(WriteFile(f, std::string(100, 'x')));
  {
    Fd fd(open(f.c_str(), O_RDWR));
    ASSERT_GE(fd.get(), 0);
    struct flock l = Range(F_WRLCK);
    ASSERT_SYS(fcntl(fd.get(), F_OFD_SETLK, &l));
    Fd dup_fd(dup(fd.get()));
    EXPECT_EQ(EAGAIN, TryOfdLock(f)) << "another description must conflict";
    fd = Fd();  // one of two descriptors closed: the lock stays
    EXPECT_EQ(EAGAIN, TryOfdLock(f)) << "the lock ended before the last close";
    // F_OFD_GETLK reports the conflicting OFD lock with l_pid -1.
    Fd other(open(f.c_str(), O_RDWR));
    struct flock q = Range(F_WRLCK);
    ASSERT_SYS(fcntl(other.get(), F_OFD_GETLK, &q));
    EXPECT_EQ(F_WRLCK, q.l_type);
    EXPECT_EQ(-1, q.l_pid);
  }
  EXPECT_EQ(0, TryOfdLock(f)) << "the lock outlived the last close of its description";

  // Inherited by fork: the parent's close does not end it, the child's exit does.
  int pipefd[2];
  ASSERT_SYS(pipe(pipefd));
  Fd fd(open(f.c_str(), O_RDWR));
  struct flock l = Range(F_WRLCK);
  ASSERT_SYS(fcntl(fd.get(), F_OFD_SETLK, &l));
  const pid_t child = fork();
  if (child == 0) {
    close(pipefd[1]);
    char c;
    [[maybe_unused]] ssize_t n = read(pipefd[0], &c, 1);  // until told to exit
    _exit(0);  // exits holding the description: no close(2) of its own
  }
  close(pipefd[0]);
  fd = Fd();
  EXPECT_EQ(EAGAIN, TryOfdLock(f)) << "the child's copy of the description holds the lock";
  close(pipefd[1]);
  int st = 0;
  ASSERT_TRUE(WaitPid(child, std::chrono::seconds(10), &st));
  // A blocking F_OFD_SETLKW must be granted now (bounded by the alarm).
  Fd waiter(open(f.c_str(), O_RDWR));
  struct flock w = Range(F_WRLCK);
  const int rc = RunInChild([&] {
    alarm(10);
    return fcntl(waiter.get(), F_OFD_SETLKW, &w) == 0 ? 0 : errno;
  });
  EXPECT_EQ(0, rc) << "F_OFD_SETLKW after the holder exited (-1: hung)";
}

// F_GETLK reports a conflicting POSIX lock with its holder's pid.
TEST_F(Conformance, GetlkReportsPosixHolderPid) {
  const std::string f = path("posix");
  ASSERT_TRUE(WriteFile(f, std::string(100, 'x')));
  int ready[2], done[2];
  ASSERT_SYS(pipe(ready));
  ASSERT_SYS(pipe(done));
  const pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    close(done[1]);  // so that the parent's close (or death) ends the read below
    Fd fd(open(f.c_str(), O_RDWR));
    struct flock l = Range(F_WRLCK);
    const char ok = fcntl(fd.get(), F_SETLK, &l) == 0 ? 'y' : 'n';
    [[maybe_unused]] ssize_t n = write(ready[1], &ok, 1);
    char c;
    n = read(done[0], &c, 1);
    _exit(0);
  }
  close(ready[1]);
  close(done[0]);
  char ok = 0;
  ASSERT_EQ(1, read(ready[0], &ok, 1));
  ASSERT_EQ('y', ok);
  Fd fd(open(f.c_str(), O_RDWR));
  struct flock q = Range(F_RDLCK);
  ASSERT_SYS(fcntl(fd.get(), F_GETLK, &q));
  EXPECT_EQ(F_WRLCK, q.l_type);
  EXPECT_EQ(child, q.l_pid);
  close(done[1]);
  int st = 0;
  EXPECT_TRUE(WaitPid(child, std::chrono::seconds(10), &st));
  close(ready[0]);
}


// Regression (found by bench/fsx.sh's fsstress: ESTALE from lookups, links,
// renames under concurrent renames): READDIRPLUS sent attributes for names
// of the listing's snapshot that had been renamed away since, so the kernel
// made a dentry for a moved directory under its old name — moving it back
// there in the dcache, behind the daemon's back.
TEST_F(Conformance, ReaddirplusOfAStaleListingDoesNotResurrectRenamedDirectory) {
  ASSERT_SYS(mkdir(path("x").c_str(), 0755));
  ASSERT_SYS(mkdir(path("y").c_str(), 0755));
  ASSERT_SYS(mkdir(path("x/d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("x/d/f"), "data"));
  DIR* dir = opendir(path("x").c_str());  // the listing is taken here
  ASSERT_NE(nullptr, dir);
  ASSERT_SYS(rename(path("x/d").c_str(), path("y/moved").c_str()));
  std::set<std::string> names = ReadAll(dir);  // the snapshot still has "d"
  closedir(dir);
  EXPECT_TRUE(names.count("d")) << "the listing is the opendir snapshot";
  struct stat st {};
  EXPECT_ERRNO(ENOENT, stat(path("x/d").c_str(), &st));
  EXPECT_SYS(stat(path("y/moved").c_str(), &st));
  EXPECT_EQ("data", ReadFile(path("y/moved/f")));
  EXPECT_SYS(mkdir(path("y/moved/sub").c_str(), 0755));
  EXPECT_SYS(rename(path("y/moved").c_str(), path("x/back").c_str()));
  EXPECT_EQ("data", ReadFile(path("x/back/f")));
}


struct Handle {
  std::vector<char> mem = std::vector<char>(sizeof(file_handle) + MAX_HANDLE_SZ);
  file_handle* get() { return reinterpret_cast<file_handle*>(mem.data()); }
};

Handle HandleOf(const std::string& p) {
  Handle h;
  h.get()->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, p.c_str(), h.get(), &mount_id, 0) != 0) {
    ADD_FAILURE() << "name_to_handle_at " << p << ": " << ErrName(errno);
  }
  return h;
}

// open_by_handle_at through a descriptor of the current mount: the file's
// content, or "errno:NAME".
std::string ReadByHandle(const std::string& mnt, Handle& h) {
  Fd m(open(mnt.c_str(), O_RDONLY | O_DIRECTORY));
  Fd fd(open_by_handle_at(m.get(), h.get(), O_RDONLY));
  if (fd.get() < 0) return std::string("errno:") + ErrName(errno);
  return PRead(fd.get(), 1 << 16, 0);
}

void DropKernelCaches() {
  sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "2\n";  // dentries and inodes
}

// Item 9: file handles stay valid for the file's life — across rename,
// unlink of other names, the kernel forgetting the inode, and unmount +
// mount — and give ESTALE only for a file that is gone. Before the fix
// (no FUSE export support) every open_by_handle_at of an inode the kernel
// did not cache failed with ESTALE.
TEST_F(Conformance, FileHandlesLiveAsLongAsTheirFile) {
  if (vol_->plain()) GTEST_SKIP() << "needs a DBFS mount";
  ASSERT_TRUE(WriteFile(path("f"), "content"));
  ASSERT_SYS(link(path("f").c_str(), path("g").c_str()));
  ASSERT_SYS(mkdir(path("d").c_str(), 0755));
  ASSERT_TRUE(WriteFile(path("gone"), "x"));
  Handle hf = HandleOf(path("f"));
  Handle hd = HandleOf(path("d"));
  Handle hgone = HandleOf(path("gone"));
  ASSERT_SYS(rename(path("f").c_str(), path("d/f2").c_str()));
  ASSERT_SYS(unlink(path("g").c_str()));
  ASSERT_SYS(unlink(path("gone").c_str()));
  EXPECT_EQ("content", ReadByHandle(path(), hf));
  DropKernelCaches();
  EXPECT_EQ("content", ReadByHandle(path(), hf)) << "after the kernel forgot the inode";
  EXPECT_EQ("errno:ESTALE", ReadByHandle(path(), hgone));
  ASSERT_TRUE(vol_->Remount());
  EXPECT_EQ("content", ReadByHandle(path(), hf)) << "after unmount + mount";
  {
    Fd m(open(path().c_str(), O_RDONLY | O_DIRECTORY));
    Fd dir(open_by_handle_at(m.get(), hd.get(), O_RDONLY | O_DIRECTORY));
    ASSERT_GE(dir.get(), 0) << "directory handle: " << ErrName(errno);
    Fd f2(openat(dir.get(), "f2", O_RDONLY));  // usable, and its ".." resolves
    EXPECT_GE(f2.get(), 0);
    struct stat up {}, root {};
    EXPECT_SYS(fstatat(dir.get(), "..", &up, 0));
    EXPECT_SYS(stat(path().c_str(), &root));
    EXPECT_EQ(root.st_ino, up.st_ino);
  }
  ASSERT_SYS(unlink(path("d/f2").c_str()));
  DropKernelCaches();
  EXPECT_EQ("errno:ESTALE", ReadByHandle(path(), hf)) << "the file is gone";
  EXPECT_EQ("errno:ESTALE", ReadByHandle(path(), hgone));
}


uint64_t FreeBytes(const std::string& p) {
  struct statvfs v {};
  EXPECT_SYS(statvfs(p.c_str(), &v));
  return uint64_t{v.f_bfree} * v.f_frsize;
}

// Item 6: fallocate reserves for real: an unaligned range reserves every
// block it touches (st_blocks), statfs shows the space as used, KEEP_SIZE
// keeps EOF (also for later writes inside the file), the reservation past
// EOF survives a remount (fsck clean), and a request larger than the free
// space fails with ENOSPC and changes nothing. Before the fix mode 0 only
// moved the size and KEEP_SIZE did nothing at all.
TEST_F(Conformance, FallocateReservesSpace) {
  const std::string f = path("fa");
  Fd fd(open(f.c_str(), O_RDWR | O_CREAT, 0644));
  ASSERT_GE(fd.get(), 0);
  ASSERT_SYS(fallocate(fd.get(), 0, 100, 10));  // touches one block
  struct stat st = FStatOf(fd.get());
  EXPECT_EQ(110, st.st_size);
  EXPECT_EQ(8, st.st_blocks) << "the one 4 KiB block [100, 110) touches";

  constexpr off_t kReserve = 64 << 20;
  const uint64_t free_before = FreeBytes(path());
  ASSERT_SYS(fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, kReserve));
  st = FStatOf(fd.get());
  EXPECT_EQ(110, st.st_size) << "KEEP_SIZE moved EOF";
  EXPECT_GE(st.st_blocks, kReserve / 512);
  const uint64_t free_after = FreeBytes(path());
  EXPECT_GE(free_before - std::min(free_before, free_after), uint64_t{kReserve} * 9 / 10)
      << "statfs does not show the reservation";
  // A write inside the file does not move EOF; one past EOF (inside the
  // reservation) moves it to the write's end only.
  ASSERT_EQ(5, pwrite(fd.get(), "hello", 5, 50));
  EXPECT_EQ(110, FStatOf(fd.get()).st_size);
  ASSERT_EQ(5, pwrite(fd.get(), "world", 5, 1 << 20));
  EXPECT_EQ((1 << 20) + 5, FStatOf(fd.get()).st_size);
  EXPECT_TRUE(AllZero(PRead(fd.get(), (1 << 20) - 110, 110)));

  // Larger than the free space: ENOSPC, nothing changed.
  const struct stat before = FStatOf(fd.get());
  const off_t huge = static_cast<off_t>(FreeBytes(path()) + (off_t{1} << 30));
  EXPECT_ERRNO(ENOSPC, fallocate(fd.get(), 0, 0, huge));
  EXPECT_ERRNO(ENOSPC, fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 0, huge));
  const struct stat after = FStatOf(fd.get());
  EXPECT_EQ(before.st_size, after.st_size);
  EXPECT_EQ(before.st_blocks, after.st_blocks);

  fd = Fd();
  ASSERT_TRUE(vol_->Remount());
  st = StatOf(f);
  EXPECT_EQ((1 << 20) + 5, st.st_size);
  EXPECT_GE(st.st_blocks, kReserve / 512) << "the reservation past EOF did not survive";
  const std::string back = ReadFile(f);
  EXPECT_EQ("hello", back.substr(50, 5));
  EXPECT_EQ("world", back.substr(1 << 20, 5));
  // A truncate drops the reservation past the new end.
  ASSERT_SYS(truncate(f.c_str(), 4096));
  EXPECT_EQ(8, StatOf(f).st_blocks);
}

}  // namespace
}  // namespace dbfs::testing
