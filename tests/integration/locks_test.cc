// Advisory locks through the kernel with real processes: fcntl record locks
// (deadlock detection, F_GETLK across processes, release when the holder is
// SIGKILLed, interrupted waits) and flock(2). Children are forked and driven
// over pipes; every wait is bounded (poll with a timeout), none relies on
// sleeping.
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

using std::chrono::milliseconds;

constexpr int kTimeoutMs = 20000;

class Locks : public MountTest {};

// A forked child driven over two pipes: the parent sends one-byte commands,
// the child answers with one-byte reports. The destructor SIGKILLs and reaps
// a child that is still running, so a failing test leaves nothing behind.
class Child {
 public:
  // `fn(in, out)` runs in the child; its return value is the exit status.
  explicit Child(const std::function<int(int in, int out)>& fn) {
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0) return;
    if (pipe2(from, O_CLOEXEC) != 0) {
      close(to[0]);
      close(to[1]);
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(to[1]);
      close(from[0]);
      _exit(fn(to[0], from[1]) & 0xff);
    }
    close(to[0]);
    close(from[1]);
    to_ = to[1];
    from_ = from[0];
    if (pid_ < 0) {
      close(to_);
      close(from_);
      to_ = from_ = -1;
    }
  }
  ~Child() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      WaitPid(pid_, milliseconds(10000), nullptr);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool ok() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int report_fd() const { return from_; }

  bool Send(char c) { return write(to_, &c, 1) == 1; }
  // The next report, or -1 if none arrives within `timeout_ms` (or the child
  // died without one).
  int Read(int timeout_ms = kTimeoutMs) {
    pollfd p{from_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return -1;
    unsigned char c = 0;
    if (read(from_, &c, 1) != 1) return -1;
    return c;
  }
  // Whether a report is ready within `timeout_ms`.
  bool Ready(int timeout_ms) {
    pollfd p{from_, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
  }
  // Waits for exit; returns the exit status, or -1 (killed / timed out).
  int Wait() {
    int status = 0;
    if (!WaitPid(pid_, milliseconds(kTimeoutMs), &status)) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ::testing::AssertionResult Kill9() {
    if (kill(pid_, SIGKILL) != 0) return ::testing::AssertionFailure() << "kill failed";
    int status = 0;
    if (!WaitPid(pid_, milliseconds(kTimeoutMs), &status)) {
      return ::testing::AssertionFailure() << "child did not die";
    }
    reaped_ = true;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      return ::testing::AssertionFailure() << "child was not killed by SIGKILL";
    }
    return ::testing::AssertionSuccess();
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  bool reaped_ = false;
};

// Child side helpers (no gtest in children).
int Get(int in) {
  unsigned char c = 0;
  return read(in, &c, 1) == 1 ? c : -1;
}
void Put(int out, int c) {
  const unsigned char b = static_cast<unsigned char>(c);
  [[maybe_unused]] ssize_t r = write(out, &b, 1);
}

struct flock Range(short type, off_t start, off_t len) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = start;
  l.l_len = len;
  return l;
}

int SetLk(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock l = Range(type, start, len);
  return fcntl(fd, cmd, &l) == 0 ? 0 : errno;
}

// One counter of the daemon's `dbfs stats` text (dbfs.stats xattr of the
// root), or -1 if it is not there (plain-dir mode, or not reported).
long Stat(const std::string& root, const std::string& name) {
  const ssize_t n = getxattr(root.c_str(), "dbfs.stats", nullptr, 0);
  if (n <= 0) return -1;
  std::string buf(static_cast<size_t>(n) + 4096, '\0');
  const ssize_t m = getxattr(root.c_str(), "dbfs.stats", buf.data(), buf.size());
  if (m < 0) return -1;
  buf.resize(static_cast<size_t>(m));
  std::istringstream in(buf);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::strtol(line.c_str() + name.size() + 1, nullptr, 10);
  }
  return -1;
}

// Waits (bounded) until the lock manager counts at least `n` blocking waits.
// Without the counters (plain-dir mode) returns true at once: the tests below
// are correct in any interleaving, this only makes the interesting one likely.
bool WaitForLockWaits(const std::string& root, long n) {
  if (Stat(root, "lock_waits") < 0) return true;
  return WaitFor([&] { return Stat(root, "lock_waits") >= n; }, milliseconds(kTimeoutMs));
}

// Child for the deadlock test: locks byte `mine`, reports 'L'; on 'g' asks
// for byte `other` with F_SETLKW and reports the errno (0: granted). A victim
// (EDEADLK) then drops its own lock and reports 'U'. Exits on 'q'.
int DeadlockChild(const std::string& file, off_t mine, off_t other, int in, int out) {
  const int fd = open(file.c_str(), O_RDWR);
  if (fd < 0) return 100;
  if (SetLk(fd, F_SETLK, F_WRLCK, mine, 1) != 0) return 101;
  Put(out, 'L');
  if (Get(in) != 'g') return 102;
  const int e = SetLk(fd, F_SETLKW, F_WRLCK, other, 1);
  Put(out, e);
  if (e == EDEADLK) {
    if (SetLk(fd, F_SETLK, F_UNLCK, mine, 1) != 0) return 103;
    Put(out, 'U');
  }
  if (Get(in) != 'q') return 104;
  close(fd);
  return 0;
}

TEST_F(Locks, FcntlDeadlockBetweenTwoProcessesFailsExactlyOne) {
  const std::string f = path("dl");
  ASSERT_TRUE(WriteFile(f, std::string(16, 'x')));
  const long deadlocks_before = Stat(path(), "lock_deadlocks");
  const long waits_before = Stat(path(), "lock_waits");

  Child a([&](int in, int out) { return DeadlockChild(f, 0, 1, in, out); });
  Child b([&](int in, int out) { return DeadlockChild(f, 1, 0, in, out); });
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ('L', a.Read());
  ASSERT_EQ('L', b.Read());

  // A blocks on B's byte; once it waits, B asks for A's byte: a cycle.
  ASSERT_TRUE(a.Send('g'));
  ASSERT_TRUE(WaitForLockWaits(path(), waits_before + 1)) << "A never blocked";
  ASSERT_FALSE(a.Ready(0)) << "A was answered although B holds byte 1";
  ASSERT_TRUE(b.Send('g'));

  // Exactly one of them is the victim (EDEADLK); the other is granted, which
  // can only happen after the victim has dropped its lock. Each answer is
  // awaited with a bound: an undetected deadlock answers neither.
  const int ra = a.Read();
  const int rb = b.Read();
  ASSERT_NE(-1, ra) << "A was never answered: undetected deadlock?";
  ASSERT_NE(-1, rb) << "B was never answered: undetected deadlock?";
  ASSERT_TRUE((ra == EDEADLK && rb == 0) || (ra == 0 && rb == EDEADLK))
      << "A got " << ErrName(ra) << " (" << ra << "), B got " << ErrName(rb) << " (" << rb << ")";
  Child& victim = ra == EDEADLK ? a : b;
  EXPECT_EQ('U', victim.Read());
  std::cout << "victim: " << (&victim == &a ? "A (locked byte 0)" : "B (locked byte 1)") << "\n";

  ASSERT_TRUE(a.Send('q'));
  ASSERT_TRUE(b.Send('q'));
  EXPECT_EQ(0, a.Wait());
  EXPECT_EQ(0, b.Wait());
  if (deadlocks_before >= 0) {
    EXPECT_EQ(deadlocks_before + 1, Stat(path(), "lock_deadlocks"));
  }
}

TEST_F(Locks, GetlkReportsTheHolderPidAcrossProcesses) {
  const std::string f = path("getlk");
  ASSERT_TRUE(WriteFile(f, std::string(100, 'x')));
  Child holder([&](int in, int out) {
    const int fd = open(f.c_str(), O_RDWR);
    if (fd < 0) return 100;
    if (SetLk(fd, F_SETLK, F_WRLCK, 10, 10) != 0) return 101;
    if (SetLk(fd, F_SETLK, F_RDLCK, 50, 0) != 0) return 102;  // to EOF
    Put(out, 'L');
    if (Get(in) != 'q') return 103;
    return 0;
  });
  ASSERT_TRUE(holder.ok());
  ASSERT_EQ('L', holder.Read());

  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  struct flock q = Range(F_RDLCK, 0, 30);
  ASSERT_SYS(fcntl(fd, F_GETLK, &q));
  EXPECT_EQ(F_WRLCK, q.l_type);
  EXPECT_EQ(holder.pid(), q.l_pid);
  EXPECT_EQ(10, q.l_start);
  EXPECT_EQ(10, q.l_len);

  q = Range(F_WRLCK, 60, 5);
  ASSERT_SYS(fcntl(fd, F_GETLK, &q));
  EXPECT_EQ(F_RDLCK, q.l_type);
  EXPECT_EQ(holder.pid(), q.l_pid);
  EXPECT_EQ(50, q.l_start);
  EXPECT_EQ(0, q.l_len) << "a lock to EOF reports l_len 0";

  q = Range(F_RDLCK, 60, 5);  // read locks share
  ASSERT_SYS(fcntl(fd, F_GETLK, &q));
  EXPECT_EQ(F_UNLCK, q.l_type);
  q = Range(F_WRLCK, 20, 30);  // the gap
  ASSERT_SYS(fcntl(fd, F_GETLK, &q));
  EXPECT_EQ(F_UNLCK, q.l_type);

  EXPECT_EQ(EAGAIN, SetLk(fd, F_SETLK, F_WRLCK, 15, 1));
  ASSERT_TRUE(holder.Send('q'));
  EXPECT_EQ(0, holder.Wait());
  // The holder's exit closed its descriptor: its locks are gone.
  q = Range(F_WRLCK, 0, 0);
  ASSERT_SYS(fcntl(fd, F_GETLK, &q));
  EXPECT_EQ(F_UNLCK, q.l_type);
  EXPECT_EQ(0, SetLk(fd, F_SETLK, F_WRLCK, 0, 0));
}

TEST_F(Locks, FlockBetweenProcessesReleasedOnClose) {
  const std::string f = path("flock");
  ASSERT_TRUE(WriteFile(f, "x"));
  Child holder([&](int in, int out) {
    const int fd = open(f.c_str(), O_RDWR);
    if (fd < 0) return 100;
    if (flock(fd, LOCK_EX) != 0) return 101;
    Put(out, 'L');
    if (Get(in) != 'c') return 102;
    close(fd);
    Put(out, 'C');
    if (Get(in) != 'q') return 103;
    return 0;
  });
  ASSERT_TRUE(holder.ok());
  ASSERT_EQ('L', holder.Read());

  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  EXPECT_ERRNO(EWOULDBLOCK, flock(fd, LOCK_EX | LOCK_NB));
  EXPECT_ERRNO(EWOULDBLOCK, flock(fd, LOCK_SH | LOCK_NB));

  // A blocking waiter in a third process is granted when the holder closes.
  const long waits_before = Stat(path(), "lock_waits");
  Child waiter([&](int in, int out) {
    const int wfd = open(f.c_str(), O_RDWR);
    if (wfd < 0) return 100;
    Put(out, 'W');
    Put(out, flock(wfd, LOCK_EX) == 0 ? 0 : errno);
    if (Get(in) != 'q') return 101;
    return 0;
  });
  ASSERT_TRUE(waiter.ok());
  ASSERT_EQ('W', waiter.Read());
  ASSERT_TRUE(WaitForLockWaits(path(), waits_before + 1)) << "the waiter never blocked";
  EXPECT_FALSE(waiter.Ready(0)) << "granted while the holder still has LOCK_EX";

  ASSERT_TRUE(holder.Send('c'));
  ASSERT_EQ('C', holder.Read());
  EXPECT_EQ(0, waiter.Read()) << "close(2) released the flock lock";
  EXPECT_ERRNO(EWOULDBLOCK, flock(fd, LOCK_SH | LOCK_NB));  // the waiter holds it now
  ASSERT_TRUE(waiter.Send('q'));
  EXPECT_EQ(0, waiter.Wait());
  ASSERT_TRUE(WaitFor([&] { return flock(fd, LOCK_EX | LOCK_NB) == 0; },
                      milliseconds(kTimeoutMs)))
      << "the waiter's exit released its lock";
  ASSERT_TRUE(holder.Send('q'));
  EXPECT_EQ(0, holder.Wait());
}

TEST_F(Locks, LocksOfASigkilledProcessAreReleased) {
  const std::string f = path("killed");
  ASSERT_TRUE(WriteFile(f, std::string(100, 'x')));
  Child holder([&](int in, int out) {
    const int fd = open(f.c_str(), O_RDWR);
    const int ffd = open(f.c_str(), O_RDWR);
    if (fd < 0 || ffd < 0) return 100;
    if (SetLk(fd, F_SETLK, F_WRLCK, 0, 0) != 0) return 101;
    if (flock(ffd, LOCK_EX) != 0) return 102;
    Put(out, 'L');
    Get(in);  // until killed
    return 0;
  });
  ASSERT_TRUE(holder.ok());
  ASSERT_EQ('L', holder.Read());

  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  struct flock q = Range(F_WRLCK, 0, 0);
  ASSERT_SYS(fcntl(fd, F_GETLK, &q));
  EXPECT_EQ(F_WRLCK, q.l_type);
  EXPECT_EQ(holder.pid(), q.l_pid);
  EXPECT_ERRNO(EWOULDBLOCK, flock(fd, LOCK_EX | LOCK_NB));

  // A process blocked behind the doomed holder.
  const long waits_before = Stat(path(), "lock_waits");
  Child waiter([&](int in, int out) {
    const int wfd = open(f.c_str(), O_RDWR);
    if (wfd < 0) return 100;
    Put(out, 'W');
    Put(out, SetLk(wfd, F_SETLKW, F_WRLCK, 40, 10));
    if (Get(in) != 'q') return 101;
    return 0;
  });
  ASSERT_TRUE(waiter.ok());
  ASSERT_EQ('W', waiter.Read());
  ASSERT_TRUE(WaitForLockWaits(path(), waits_before + 1)) << "the waiter never blocked";
  EXPECT_FALSE(waiter.Ready(0));

  ASSERT_TRUE(holder.Kill9());
  EXPECT_EQ(0, waiter.Read()) << "the killed holder's POSIX lock was released";
  ASSERT_TRUE(WaitFor([&] { return flock(fd, LOCK_EX | LOCK_NB) == 0; },
                      milliseconds(kTimeoutMs)))
      << "the killed holder's flock lock was released";
  EXPECT_EQ(EAGAIN, SetLk(fd, F_SETLK, F_WRLCK, 45, 1)) << "the waiter holds [40, 50)";
  EXPECT_EQ(0, SetLk(fd, F_SETLK, F_WRLCK, 0, 40));
  ASSERT_TRUE(waiter.Send('q'));
  EXPECT_EQ(0, waiter.Wait());
}

void OnSignal(int) {}

TEST_F(Locks, SignalInterruptsABlockedSetlkw) {
  const std::string f = path("intr");
  ASSERT_TRUE(WriteFile(f, "x"));
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(0, SetLk(fd, F_SETLK, F_WRLCK, 0, 0));

  const long waits_before = Stat(path(), "lock_waits");
  const long cancelled_before = Stat(path(), "lock_cancelled");
  Child waiter([&](int in, int out) {
    struct sigaction sa {};
    sa.sa_handler = OnSignal;  // no SA_RESTART: the call fails with EINTR
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, nullptr) != 0) return 100;
    const int wfd = open(f.c_str(), O_RDWR);
    if (wfd < 0) return 101;
    Put(out, 'W');
    Put(out, SetLk(wfd, F_SETLKW, F_WRLCK, 0, 0));
    if (Get(in) != 'q') return 102;
    return 0;
  });
  ASSERT_TRUE(waiter.ok());
  ASSERT_EQ('W', waiter.Read());
  if (waits_before < 0) GTEST_SKIP() << "needs the lock counters to know the waiter blocked";
  ASSERT_TRUE(WaitForLockWaits(path(), waits_before + 1)) << "the waiter never blocked";
  ASSERT_EQ(0, kill(waiter.pid(), SIGUSR1));
  EXPECT_EQ(EINTR, waiter.Read());
  EXPECT_EQ(cancelled_before + 1, Stat(path(), "lock_cancelled"));
  ASSERT_TRUE(waiter.Send('q'));
  EXPECT_EQ(0, waiter.Wait());
}

TEST_F(Locks, DaemonShutdownEndsABlockedSetlkwWithEnolck) {
  if (vol_->plain()) GTEST_SKIP() << "no daemon in plain-dir mode";
  const std::string f = path("shutdown");
  ASSERT_TRUE(WriteFile(f, "x"));
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(0, SetLk(fd, F_SETLK, F_WRLCK, 0, 0));

  const long waits_before = Stat(path(), "lock_waits");
  Child waiter([&](int in, int out) {
    const int wfd = open(f.c_str(), O_RDWR);
    if (wfd < 0) return 100;
    Put(out, 'W');
    Put(out, SetLk(wfd, F_SETLKW, F_WRLCK, 0, 0));
    close(wfd);
    if (Get(in) != 'q') return 101;
    return 0;
  });
  ASSERT_TRUE(waiter.ok());
  ASSERT_EQ('W', waiter.Read());
  ASSERT_TRUE(WaitForLockWaits(path(), waits_before + 1)) << "the waiter never blocked";

  // SIGTERM: the daemon ends every lock wait (ENOLCK), then unmounts.
  ASSERT_EQ(0, kill(vol_->daemon_pid(), SIGTERM));
  EXPECT_EQ(ENOLCK, waiter.Read());
  fd.reset();
  ASSERT_TRUE(waiter.Send('q'));
  EXPECT_EQ(0, waiter.Wait());
  // TearDown checks that the daemon exits 0 and the volume is clean.
}

TEST_F(Locks, StatsShowLockCounters) {
  const std::string f = path("stats");
  ASSERT_TRUE(WriteFile(f, "x"));
  if (vol_->plain()) GTEST_SKIP() << "no daemon statistics in plain-dir mode";
  for (const char* name : {"lock_acquired", "lock_backoffs", "lock_waits", "lock_deadlocks",
                           "lock_cancelled", "lock_timeouts"}) {
    EXPECT_GE(Stat(path(), name), 0) << name << " missing from dbfs.stats";
  }
  const long acquired = Stat(path(), "lock_acquired");
  Fd fd(open(f.c_str(), O_RDWR));
  ASSERT_SYS(fd.get());
  ASSERT_EQ(0, SetLk(fd, F_SETLK, F_WRLCK, 0, 0));
  ASSERT_SYS(flock(fd, LOCK_SH));
  EXPECT_EQ(acquired + 2, Stat(path(), "lock_acquired"));
}

}  // namespace
}  // namespace dbfs::testing
