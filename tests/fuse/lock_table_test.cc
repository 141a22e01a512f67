#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>

#include <chrono>
#include <functional>
#include <future>
#include <thread>
#include <tuple>
#include <vector>

#include "fuse/ll_locks.h"

namespace dbfs::fuse {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kIno = 42;
constexpr uint64_t kA = 1;  // lock owners
constexpr uint64_t kB = 2;
constexpr uint64_t kEof = PosixLock::kToEof;
// Bounded waits on conditions, never sleeps: generous so a loaded machine
// does not flake, short enough that a hang fails the test.
constexpr auto kWait = seconds(10);

PosixLock L(int type, uint64_t start, uint64_t end, uint64_t owner, int32_t pid = 0) {
  PosixLock l;
  l.type = type;
  l.start = start;
  l.end = end;
  l.owner = owner;
  l.pid = pid;
  return l;
}

// The locks of `owner` as (type, start, end) triples.
std::vector<std::tuple<int, uint64_t, uint64_t>> Ranges(const LockTable& t, uint64_t owner) {
  std::vector<std::tuple<int, uint64_t, uint64_t>> out;
  for (const PosixLock& l : t.TEST_PosixLocks(kIno)) {
    if (l.owner == owner) out.emplace_back(l.type, l.start, l.end);
  }
  return out;
}

using R = std::vector<std::tuple<int, uint64_t, uint64_t>>;

// A lock call running on another thread. If the test ends (say, on a failed
// assertion) while the call still waits, Shutdown() ends the wait, so a bug
// fails the test instead of hanging it.
class Background {
 public:
  Background(LockTable* t, std::function<Status()> fn)
      : t_(t), f_(std::async(std::launch::async, std::move(fn))) {}
  ~Background() {
    if (f_.valid() && f_.wait_for(milliseconds(0)) != std::future_status::ready) t_->Shutdown();
  }
  std::future_status wait_for(milliseconds d) const { return f_.wait_for(d); }
  std::future_status wait_for(seconds d) const { return f_.wait_for(d); }
  Status get() { return f_.get(); }

 private:
  LockTable* t_;
  std::future<Status> f_;
};

TEST(LockTableTest, SetAndUnlockWholeFile) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_WRLCK, 0, kEof}}));
  ASSERT_TRUE(t.SetLk(kIno, L(F_UNLCK, 0, kEof, kA), false).ok());
  EXPECT_TRUE(t.TEST_PosixLocks(kIno).empty());
}

TEST(LockTableTest, UnlockInTheMiddleSplits) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, 99, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_UNLCK, 40, 59, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_WRLCK, 0, 39}, {F_WRLCK, 60, 99}}));
}

TEST(LockTableTest, DifferentTypeInTheMiddleSplitsInThree) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, kEof, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 10, 19, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_RDLCK, 0, 9}, {F_WRLCK, 10, 19}, {F_RDLCK, 20, kEof}}));
}

TEST(LockTableTest, AdjacentAndOverlappingSameTypeMerge) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 9, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 20, 29, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 10, 19, kA), false).ok());  // touches both
  EXPECT_EQ(Ranges(t, kA), (R{{F_RDLCK, 0, 29}}));
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 25, 40, kA), false).ok());  // overlaps
  EXPECT_EQ(Ranges(t, kA), (R{{F_RDLCK, 0, 40}}));
}

TEST(LockTableTest, DifferentTypesDoNotMerge) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 9, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 10, 19, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_RDLCK, 0, 9}, {F_WRLCK, 10, 19}}));
  // Converting the read part to write merges the two.
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, 9, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_WRLCK, 0, 19}}));
}

TEST(LockTableTest, LockToEofMergesWithoutOverflow) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 100, kEof, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, 99, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_WRLCK, 0, kEof}}));
  ASSERT_TRUE(t.SetLk(kIno, L(F_UNLCK, 50, kEof, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_WRLCK, 0, 49}}));
}

TEST(LockTableTest, ConflictRules) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 99, kA), false).ok());
  // Readers share.
  EXPECT_TRUE(t.SetLk(kIno, L(F_RDLCK, 50, 149, kB), false).ok());
  // A writer overlapping another owner's reader conflicts: EAGAIN.
  Status s = t.SetLk(kIno, L(F_WRLCK, 90, 95, kB), false);
  EXPECT_EQ(s.ToErrno(), EAGAIN);
  // Not overlapping: fine.
  EXPECT_TRUE(t.SetLk(kIno, L(F_WRLCK, 150, 200, kB), false).ok());
  // An owner never conflicts with itself.
  EXPECT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, 10, kA), false).ok());
  // A different inode is independent.
  EXPECT_TRUE(t.SetLk(kIno + 1, L(F_WRLCK, 0, kEof, kB), false).ok());
}

TEST(LockTableTest, FailedSetLeavesLocksUnchanged) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 9, kB), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 99, kA), false).ok());
  EXPECT_FALSE(t.SetLk(kIno, L(F_WRLCK, 0, 99, kA), false).ok());
  EXPECT_EQ(Ranges(t, kA), (R{{F_RDLCK, 0, 99}}));
}

TEST(LockTableTest, GetLkReportsTheConflictingLockAndItsPid) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 10, 19, kA, /*pid=*/4242), false).ok());
  std::optional<PosixLock> c = t.GetLk(kIno, L(F_RDLCK, 0, kEof, kB));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->type, F_WRLCK);
  EXPECT_EQ(c->start, 10u);
  EXPECT_EQ(c->end, 19u);
  EXPECT_EQ(c->pid, 4242);
  EXPECT_EQ(c->owner, kA);
  // No conflict outside the range, nor with oneself.
  EXPECT_FALSE(t.GetLk(kIno, L(F_WRLCK, 20, kEof, kB)).has_value());
  EXPECT_FALSE(t.GetLk(kIno, L(F_WRLCK, 0, kEof, kA)).has_value());
  // Read locks only conflict with writers.
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 50, 59, kA, 4242), false).ok());
  EXPECT_FALSE(t.GetLk(kIno, L(F_RDLCK, 50, 59, kB)).has_value());
  EXPECT_TRUE(t.GetLk(kIno, L(F_WRLCK, 55, 55, kB)).has_value());
}

TEST(LockTableTest, ReleasePosixDropsOnlyThatOwnersLocks) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 9, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 20, 29, kA), false).ok());
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 9, kB), false).ok());
  t.ReleasePosix(kIno, kA);
  EXPECT_TRUE(Ranges(t, kA).empty());
  EXPECT_EQ(Ranges(t, kB), (R{{F_RDLCK, 0, 9}}));
  t.ReleasePosix(kIno, kA);      // idempotent
  t.ReleasePosix(kIno + 7, kA);  // unknown inode
}

TEST(LockTableTest, RejectsBadRequests) {
  LockTable t;
  EXPECT_EQ(t.SetLk(kIno, L(42, 0, 1, kA), false).ToErrno(), EINVAL);
  EXPECT_EQ(t.SetLk(kIno, L(F_RDLCK, 10, 5, kA), false).ToErrno(), EINVAL);
  EXPECT_EQ(t.Flock(kIno, kA, 0).ToErrno(), EINVAL);
}

TEST(LockTableTest, SetLkWaitIsWokenByUnlock) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kA), false).ok());
  auto waiter = Background(&t, [&] { return t.SetLk(kIno, L(F_WRLCK, 5, 5, kB), true); });
  ASSERT_TRUE(t.TEST_WaitForWaiters(1, kWait));
  // Unlocking a part that does not cover byte 5 leaves it waiting.
  ASSERT_TRUE(t.SetLk(kIno, L(F_UNLCK, 100, kEof, kA), false).ok());
  EXPECT_EQ(waiter.wait_for(milliseconds(0)), std::future_status::timeout);
  ASSERT_TRUE(t.TEST_WaitForWaiters(1, kWait));
  t.ReleasePosix(kIno, kA);
  ASSERT_EQ(waiter.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(waiter.get().ok());
  EXPECT_EQ(Ranges(t, kB), (R{{F_WRLCK, 5, 5}}));
}

TEST(LockTableTest, SetLkWaitIsWokenByDowngrade) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, 9, kA), false).ok());
  auto waiter = Background(&t, [&] { return t.SetLk(kIno, L(F_RDLCK, 0, 9, kB), true); });
  ASSERT_TRUE(t.TEST_WaitForWaiters(1, kWait));
  ASSERT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 9, kA), false).ok());
  ASSERT_EQ(waiter.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(waiter.get().ok());
}

TEST(LockTableTest, CancelEndsTheWaitWithEintr) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kA), false).ok());
  LockWaitCancel cancel(&t);
  auto waiter = Background(&t, [&] { return t.SetLk(kIno, L(F_WRLCK, 0, 0, kB), true, &cancel); });
  ASSERT_TRUE(t.TEST_WaitForWaiters(1, kWait));
  cancel.Cancel();
  ASSERT_EQ(waiter.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(waiter.get().ToErrno(), EINTR);
  EXPECT_TRUE(Ranges(t, kB).empty());
}

TEST(LockTableTest, CancelBeforeTheWaitReturnsAtOnce) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kA), false).ok());
  LockWaitCancel cancel(&t);
  cancel.Cancel();
  EXPECT_EQ(t.SetLk(kIno, L(F_WRLCK, 0, 0, kB), true, &cancel).ToErrno(), EINTR);
  EXPECT_EQ(t.Flock(kIno, kB, LOCK_EX, &cancel).ToErrno(), 0);  // no conflict: no wait
}

TEST(LockTableTest, ShutdownEndsAllWaits) {
  LockTable t;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kA), false).ok());
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_EX).ok());
  auto w1 = Background(&t, [&] { return t.SetLk(kIno, L(F_RDLCK, 0, 0, kB), true); });
  auto w2 = Background(&t, [&] { return t.Flock(kIno, kB, LOCK_SH); });
  ASSERT_TRUE(t.TEST_WaitForWaiters(2, kWait));
  t.Shutdown();
  ASSERT_EQ(w1.wait_for(kWait), std::future_status::ready);
  ASSERT_EQ(w2.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(w1.get().ToErrno(), ENOLCK);
  EXPECT_EQ(w2.get().ToErrno(), ENOLCK);
  // Non-blocking requests still work after shutdown.
  EXPECT_EQ(t.SetLk(kIno, L(F_RDLCK, 0, 0, kB), false).ToErrno(), EAGAIN);
  t.ReleasePosix(kIno, kA);
  EXPECT_TRUE(t.SetLk(kIno, L(F_RDLCK, 0, 0, kB), false).ok());
}

TEST(LockTableTest, TwoWaitersBothGetReadLocks) {
  LockTable t;
  constexpr uint64_t kC = 3;
  ASSERT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kA), false).ok());
  auto w1 = Background(&t, [&] { return t.SetLk(kIno, L(F_RDLCK, 0, kEof, kB), true); });
  auto w2 = Background(&t, [&] { return t.SetLk(kIno, L(F_RDLCK, 0, kEof, kC), true); });
  ASSERT_TRUE(t.TEST_WaitForWaiters(2, kWait));
  t.ReleasePosix(kIno, kA);
  ASSERT_EQ(w1.wait_for(kWait), std::future_status::ready);
  ASSERT_EQ(w2.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(w1.get().ok());
  EXPECT_TRUE(w2.get().ok());
}

// ---- flock ----

TEST(LockTableTest, FlockSharedAndExclusive) {
  LockTable t;
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_SH | LOCK_NB).ok());
  EXPECT_TRUE(t.Flock(kIno, kB, LOCK_SH | LOCK_NB).ok());
  EXPECT_EQ(t.Flock(kIno, 3, LOCK_EX | LOCK_NB).ToErrno(), EWOULDBLOCK);
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_UN).ok());
  ASSERT_TRUE(t.Flock(kIno, kB, LOCK_UN).ok());
  EXPECT_TRUE(t.Flock(kIno, 3, LOCK_EX | LOCK_NB).ok());
  EXPECT_EQ(t.Flock(kIno, kA, LOCK_SH | LOCK_NB).ToErrno(), EWOULDBLOCK);
}

TEST(LockTableTest, FlockAndPosixLocksAreIndependent) {
  LockTable t;
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_EX | LOCK_NB).ok());
  EXPECT_TRUE(t.SetLk(kIno, L(F_WRLCK, 0, kEof, kB), false).ok());
  t.ReleaseFlock(kIno, kA);
  EXPECT_EQ(t.TEST_FlockOf(kIno, kA), 0);
  EXPECT_EQ(Ranges(t, kB), (R{{F_WRLCK, 0, kEof}}));
}

TEST(LockTableTest, FlockConversionBothWays) {
  LockTable t;
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_SH | LOCK_NB).ok());
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_EX | LOCK_NB).ok());  // upgrade, alone
  EXPECT_EQ(t.TEST_FlockOf(kIno, kA), LOCK_EX);
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_EX | LOCK_NB).ok());  // same type again: no-op
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_SH | LOCK_NB).ok());  // downgrade
  EXPECT_EQ(t.TEST_FlockOf(kIno, kA), LOCK_SH);
  EXPECT_TRUE(t.Flock(kIno, kB, LOCK_SH | LOCK_NB).ok());  // now shareable
}

TEST(LockTableTest, FailedFlockUpgradeDropsTheOldLockLikeLinux) {
  LockTable t;
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_SH | LOCK_NB).ok());
  ASSERT_TRUE(t.Flock(kIno, kB, LOCK_SH | LOCK_NB).ok());
  EXPECT_EQ(t.Flock(kIno, kA, LOCK_EX | LOCK_NB).ToErrno(), EWOULDBLOCK);
  EXPECT_EQ(t.TEST_FlockOf(kIno, kA), 0);
  // So B, alone now, can upgrade.
  EXPECT_TRUE(t.Flock(kIno, kB, LOCK_EX | LOCK_NB).ok());
}

TEST(LockTableTest, SimultaneousFlockUpgradesDoNotDeadlock) {
  LockTable t;
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_SH).ok());
  ASSERT_TRUE(t.Flock(kIno, kB, LOCK_SH).ok());
  auto a = Background(&t, [&] { return t.Flock(kIno, kA, LOCK_EX); });
  // A dropped its shared lock and waits for B's.
  ASSERT_TRUE(t.TEST_WaitForWaiters(1, kWait));
  EXPECT_EQ(t.TEST_FlockOf(kIno, kA), 0);
  // B's upgrade drops B's shared lock, and as nobody holds a lock any more,
  // takes the exclusive one at once (waiters have no priority).
  ASSERT_TRUE(t.Flock(kIno, kB, LOCK_EX).ok());
  EXPECT_EQ(t.TEST_FlockOf(kIno, kB), LOCK_EX);
  EXPECT_EQ(a.wait_for(milliseconds(0)), std::future_status::timeout);
  ASSERT_TRUE(t.Flock(kIno, kB, LOCK_UN).ok());
  ASSERT_EQ(a.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(a.get().ok());
  EXPECT_EQ(t.TEST_FlockOf(kIno, kA), LOCK_EX);
}

TEST(LockTableTest, FlockWaitIsWokenByRelease) {
  LockTable t;
  ASSERT_TRUE(t.Flock(kIno, kA, LOCK_EX).ok());
  auto waiter = Background(&t, [&] { return t.Flock(kIno, kB, LOCK_SH); });
  ASSERT_TRUE(t.TEST_WaitForWaiters(1, kWait));
  t.ReleaseFlock(kIno, kA);
  ASSERT_EQ(waiter.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(waiter.get().ok());
  EXPECT_EQ(t.TEST_FlockOf(kIno, kB), LOCK_SH);
}

TEST(LockTableTest, FlockUnlockWithoutLockIsOk) {
  LockTable t;
  EXPECT_TRUE(t.Flock(kIno, kA, LOCK_UN).ok());
  EXPECT_TRUE(t.Flock(kIno, kA, LOCK_UN | LOCK_NB).ok());
  t.ReleaseFlock(kIno, kA);
}

}  // namespace
}  // namespace dbfs::fuse
