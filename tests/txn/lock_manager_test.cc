// LockManager: inode S/X locks, POSIX range locks, flock, blocking waits,
// deadlock detection through the wait-for graph, cancellation, and a
// randomized stress test against a shadow model of the holders.
//
// Threads never sleep-and-hope: a test learns that a request is blocked from
// the "before wait" sync point, and waits for results with bounded timeouts.
#include "txn/lock_manager.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace dbfs::txn {
namespace {

using namespace std::chrono_literals;
using Conflict = LockManager::Conflict;

constexpr auto kWait = 20s;  // generous bound for "this must happen"
constexpr uint64_t kEof = LockManager::kToEof;

bool IsErrno(const Status& s, int err) { return !s.ok() && s.ToErrno() == err; }

// Records the sync points; lets a test wait until one was reached, and can
// hold one thread at a point (with no LockManager mutex held) until released.
class SyncLog {
 public:
  void Attach(LockManager* m) {
    m->TEST_SetSyncPoint([this](std::string_view point, uint64_t owner, uint64_t ino) {
      std::unique_lock<std::mutex> lk(mu_);
      events_.push_back(Event{std::string(point), owner, ino});
      cv_.notify_all();
      if (!hold_used_ && point == hold_point_ && owner == hold_owner_) {
        hold_used_ = true;
        cv_.wait_for(lk, kWait, [&] { return hold_released_; });
      }
    });
  }
  // The first time `owner` reaches `point`, it stays there until Release().
  void HoldAt(std::string point, uint64_t owner) {
    std::lock_guard<std::mutex> g(mu_);
    hold_point_ = std::move(point);
    hold_owner_ = owner;
  }
  void Release() {
    std::lock_guard<std::mutex> g(mu_);
    hold_released_ = true;
    cv_.notify_all();
  }
  // Waits until `owner` reached `point` at least `n` times.
  bool WaitFor(std::string_view point, uint64_t owner, size_t n = 1) {
    return WaitForAny({point}, owner, n);
  }
  // Waits until `owner` reached any of `points` (n times in total).
  bool WaitForAny(std::initializer_list<std::string_view> points, uint64_t owner, size_t n = 1) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, kWait, [&] {
      size_t c = 0;
      for (std::string_view p : points) c += CountLocked(p, owner);
      return c >= n;
    });
  }
  size_t Count(std::string_view point, uint64_t owner) {
    std::lock_guard<std::mutex> g(mu_);
    return CountLocked(point, owner);
  }

 private:
  struct Event {
    std::string point;
    uint64_t owner, ino;
  };
  size_t CountLocked(std::string_view point, uint64_t owner) const {
    return std::count_if(events_.begin(), events_.end(),
                         [&](const Event& e) { return e.point == point && e.owner == owner; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
  std::string hold_point_;
  uint64_t hold_owner_ = 0;
  bool hold_used_ = false;
  bool hold_released_ = false;
};

// A lock call on another thread. If the test ends while the call still
// blocks (a failed test), Shutdown() ends the wait so the test cannot hang.
class AsyncCall {
 public:
  AsyncCall(LockManager* m, std::function<Status()> f)
      : m_(m), fut_(std::async(std::launch::async, std::move(f))) {}
  AsyncCall(const AsyncCall&) = delete;
  AsyncCall& operator=(const AsyncCall&) = delete;
  ~AsyncCall() {
    if (fut_.valid() && fut_.wait_for(0s) != std::future_status::ready) m_->Shutdown();
    if (fut_.valid()) fut_.wait();
  }
  bool Done() { return !fut_.valid() || fut_.wait_for(0s) == std::future_status::ready; }
  // The call's result, or nullopt if it did not finish within kWait.
  std::optional<Status> Get() {
    if (fut_.wait_for(kWait) != std::future_status::ready) return std::nullopt;
    return fut_.get();
  }

 private:
  LockManager* m_;
  std::future<Status> fut_;
};

class LockManagerTest : public ::testing::Test {
 protected:
  void SetUp() override { log_.Attach(&m_); }
  void TearDown() override { m_.TEST_SetSyncPoint(nullptr); }

  static LockManager::Options TestOptions() {
    LockManager::Options o;
    // A missed deadlock fails the test with kBusy instead of hanging it.
    o.wait_timeout = 30s;
    return o;
  }

  SyncLog log_;  // outlives m_ (declared first)
  LockManager m_{TestOptions()};
};

constexpr LockMode S = LockMode::kShared;
constexpr LockMode X = LockMode::kExclusive;

// ---------------------------------------------------------------- inode locks

TEST_F(LockManagerTest, InodeSharedSharedCompatible) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, S, false).ok());
  ASSERT_TRUE(m_.LockInode(2, 22, 5, S, false).ok());
  ASSERT_TRUE(m_.LockInode(3, 33, 5, S, true).ok());
  EXPECT_EQ(m_.stats().acquired, 3u);
  EXPECT_EQ(m_.stats().immediate, 3u);
}

TEST_F(LockManagerTest, InodeSharedExclusiveAndExclusiveExclusiveConflict) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, S, false).ok());
  Status s = m_.LockInode(2, 22, 5, X, false);
  EXPECT_EQ(s.code(), Code::kAgain);
  EXPECT_EQ(s.ToErrno(), EAGAIN);
  m_.UnlockInode(1, 5);
  ASSERT_TRUE(m_.LockInode(2, 22, 5, X, false).ok());
  EXPECT_EQ(m_.LockInode(1, 11, 5, X, false).code(), Code::kAgain);
  EXPECT_EQ(m_.LockInode(1, 11, 5, S, false).code(), Code::kAgain);
  // Another inode is independent.
  EXPECT_TRUE(m_.LockInode(1, 11, 6, X, false).ok());
  EXPECT_EQ(m_.stats().would_block, 2u + 1u);
}

TEST_F(LockManagerTest, InodeReentrant) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  ASSERT_TRUE(m_.LockInode(1, 11, 5, S, false).ok());
  EXPECT_EQ(m_.TEST_InodeHold(1, 5), std::make_pair(X, 3u));
  m_.UnlockInode(1, 5);
  m_.UnlockInode(1, 5);
  EXPECT_EQ(m_.LockInode(2, 22, 5, S, false).code(), Code::kAgain);
  m_.UnlockInode(1, 5);
  EXPECT_FALSE(m_.TEST_InodeHold(1, 5).has_value());
  EXPECT_TRUE(m_.LockInode(2, 22, 5, S, false).ok());
  m_.UnlockInode(1, 5);  // not held: a no-op
  EXPECT_TRUE(m_.TEST_InodeHold(2, 5).has_value());
}

TEST_F(LockManagerTest, InodeUpgrade) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, S, false).ok());
  ASSERT_TRUE(m_.LockInode(2, 22, 5, S, false).ok());
  EXPECT_EQ(m_.LockInode(1, 11, 5, X, false).code(), Code::kAgain);
  EXPECT_EQ(m_.TEST_InodeHold(1, 5), std::make_pair(S, 1u));  // failed upgrade keeps S
  m_.UnlockInode(2, 5);
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  EXPECT_EQ(m_.TEST_InodeHold(1, 5), std::make_pair(X, 2u));
  EXPECT_EQ(m_.LockInode(2, 22, 5, S, false).code(), Code::kAgain);
  // The hold stays exclusive until the last unlock.
  m_.UnlockInode(1, 5);
  EXPECT_EQ(m_.LockInode(2, 22, 5, S, false).code(), Code::kAgain);
  m_.UnlockInode(1, 5);
  EXPECT_TRUE(m_.LockInode(2, 22, 5, S, false).ok());
}

TEST_F(LockManagerTest, UpgradeOfTwoSharedHoldersDeadlocksTheSecond) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, S, false).ok());
  ASSERT_TRUE(m_.LockInode(2, 22, 5, S, false).ok());
  AsyncCall a(&m_, [&] { return m_.LockInode(1, 11, 5, X, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  Status s = m_.LockInode(2, 22, 5, X, true);
  EXPECT_EQ(s.code(), Code::kDeadlock);
  EXPECT_EQ(s.ToErrno(), EDEADLK);
  EXPECT_EQ(log_.Count("deadlock victim chosen", 2), 1u);
  EXPECT_FALSE(a.Done());  // the victim still holds its shared lock
  m_.ReleaseAll(2);
  auto r = a.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok()) << r->ToString();
  EXPECT_EQ(m_.TEST_InodeHold(1, 5), std::make_pair(X, 2u));
}

TEST_F(LockManagerTest, ScopedGuardReleases) {
  {
    auto g = m_.LockInodeScoped(1, 11, 5, X, false);
    ASSERT_TRUE(g.ok());
    EXPECT_TRUE(g->held());
    EXPECT_EQ(m_.LockInode(2, 22, 5, S, false).code(), Code::kAgain);
    InodeLockGuard moved = std::move(*g);
    EXPECT_FALSE(g->held());
    EXPECT_TRUE(moved.held());
  }
  EXPECT_TRUE(m_.LockInode(2, 22, 5, S, false).ok());
  EXPECT_FALSE(m_.LockInodeScoped(3, 33, 5, X, false).ok());
}

// ---------------------------------------------------------------- range locks

TEST_F(LockManagerTest, RangeUnlockInTheMiddleSplits) {
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 0, 99, false).ok());
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_UNLCK, 40, 59, false).ok());
  EXPECT_EQ(m_.TEST_Ranges(5),
            (std::vector<Conflict>{{F_WRLCK, 0, 39, 11, 1}, {F_WRLCK, 60, 99, 11, 1}}));
  // The hole is free for others, the rest is not.
  EXPECT_TRUE(m_.SetRange(2, 22, 5, F_WRLCK, 40, 59, false).ok());
  EXPECT_EQ(m_.SetRange(2, 22, 5, F_RDLCK, 39, 40, false).code(), Code::kAgain);
}

TEST_F(LockManagerTest, RangeSameTypeMerges) {
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 0, 9, false).ok());
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 20, 29, false).ok());
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 10, 19, false).ok());  // adjacent on both sides
  EXPECT_EQ(m_.TEST_Ranges(5), (std::vector<Conflict>{{F_RDLCK, 0, 29, 11, 1}}));
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 25, 40, false).ok());  // overlapping
  EXPECT_EQ(m_.TEST_Ranges(5), (std::vector<Conflict>{{F_RDLCK, 0, 40, 11, 1}}));
  // A different type next to it does not merge.
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 41, 50, false).ok());
  EXPECT_EQ(m_.TEST_Ranges(5),
            (std::vector<Conflict>{{F_RDLCK, 0, 40, 11, 1}, {F_WRLCK, 41, 50, 11, 1}}));
}

TEST_F(LockManagerTest, RangeDifferentTypeSplitsInThree) {
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 0, 99, false).ok());
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 40, 59, false).ok());
  EXPECT_EQ(m_.TEST_Ranges(5),
            (std::vector<Conflict>{
                {F_WRLCK, 0, 39, 11, 1}, {F_RDLCK, 40, 59, 11, 1}, {F_WRLCK, 60, 99, 11, 1}}));
  // Another owner may share the read-locked middle only.
  EXPECT_TRUE(m_.SetRange(2, 22, 5, F_RDLCK, 45, 50, false).ok());
  EXPECT_EQ(m_.SetRange(2, 22, 5, F_RDLCK, 55, 60, false).code(), Code::kAgain);
  // Upgrading the middle back to write conflicts with owner 2's read lock.
  EXPECT_EQ(m_.SetRange(1, 11, 5, F_WRLCK, 40, 59, false).code(), Code::kAgain);
  EXPECT_EQ(m_.TEST_Ranges(5).size(), 4u);  // a failed request changes nothing
}

TEST_F(LockManagerTest, RangeToEof) {
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 100, kEof, false).ok());
  auto c = m_.TestRange(2, 5, F_RDLCK, uint64_t{1} << 50, uint64_t{1} << 50);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->end, kEof);
  EXPECT_FALSE(m_.TestRange(2, 5, F_WRLCK, 0, 99).has_value());
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_UNLCK, 200, kEof, false).ok());
  EXPECT_EQ(m_.TEST_Ranges(5), (std::vector<Conflict>{{F_WRLCK, 100, 199, 11, 1}}));
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 150, kEof, false).ok());
  EXPECT_EQ(m_.TEST_Ranges(5),
            (std::vector<Conflict>{{F_WRLCK, 100, 149, 11, 1}, {F_RDLCK, 150, kEof, 11, 1}}));
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_UNLCK, 0, kEof, false).ok());
  EXPECT_TRUE(m_.TEST_Ranges(5).empty());
  EXPECT_EQ(m_.TEST_LiveInodes(), 0u);
}

TEST_F(LockManagerTest, RangeBadArguments) {
  EXPECT_EQ(m_.SetRange(1, 11, 5, 42, 0, 1, false).code(), Code::kInvalid);
  EXPECT_EQ(m_.SetRange(1, 11, 5, F_RDLCK, 2, 1, false).code(), Code::kInvalid);
}

TEST_F(LockManagerTest, TestRangeReportsConflictAndPid) {
  ASSERT_TRUE(m_.SetRange(1, 4242, 5, F_RDLCK, 0, 9, false).ok());
  ASSERT_TRUE(m_.SetRange(3, 4343, 5, F_WRLCK, 20, 29, false).ok());
  EXPECT_FALSE(m_.TestRange(2, 5, F_RDLCK, 0, 9).has_value());  // read/read
  auto c = m_.TestRange(2, 5, F_WRLCK, 5, 5);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(*c, (Conflict{F_RDLCK, 0, 9, 4242, 1}));
  c = m_.TestRange(2, 5, F_RDLCK, 29, 100);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->pid, 4343);
  EXPECT_EQ(c->owner, 3u);
  EXPECT_EQ(c->type, F_WRLCK);
  // An owner never conflicts with itself.
  EXPECT_FALSE(m_.TestRange(3, 5, F_WRLCK, 20, 29).has_value());
  EXPECT_FALSE(m_.TestRange(2, 5, F_WRLCK, 10, 19).has_value());
  EXPECT_FALSE(m_.TestRange(2, 6, F_WRLCK, 0, kEof).has_value());
}

TEST_F(LockManagerTest, ReleaseRangesDropsOnlyThatOwnerOnThatInode) {
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 0, 9, false).ok());
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 20, 29, false).ok());
  ASSERT_TRUE(m_.SetRange(1, 11, 6, F_WRLCK, 0, 9, false).ok());
  ASSERT_TRUE(m_.SetRange(2, 22, 5, F_RDLCK, 20, 29, false).ok());
  ASSERT_TRUE(m_.Flock(1, 11, 5, LOCK_EX, true).ok());
  m_.ReleaseRanges(1, 5);
  EXPECT_EQ(m_.TEST_Ranges(5), (std::vector<Conflict>{{F_RDLCK, 20, 29, 22, 2}}));
  EXPECT_EQ(m_.TEST_Ranges(6).size(), 1u);
  EXPECT_EQ(m_.TEST_FlockOf(1, 5), LOCK_EX);  // flock is independent
}

// ---------------------------------------------------------------- flock

TEST_F(LockManagerTest, FlockSemantics) {
  ASSERT_TRUE(m_.Flock(1, 11, 5, LOCK_SH, true).ok());
  ASSERT_TRUE(m_.Flock(2, 22, 5, LOCK_SH, true).ok());
  Status s = m_.Flock(3, 33, 5, LOCK_EX, true);
  EXPECT_EQ(s.code(), Code::kAgain);
  EXPECT_EQ(s.ToErrno(), EWOULDBLOCK);
  EXPECT_EQ(m_.Flock(3, 33, 5, LOCK_EX | LOCK_NB, false).code(), Code::kAgain);
  // Re-requesting the held mode is a no-op.
  EXPECT_TRUE(m_.Flock(1, 11, 5, LOCK_SH, true).ok());
  // A failed non-blocking upgrade drops the old lock, as Linux does.
  EXPECT_EQ(m_.Flock(1, 11, 5, LOCK_EX, true).code(), Code::kAgain);
  EXPECT_EQ(m_.TEST_FlockOf(1, 5), 0);
  // Owner 2 is alone now: its conversion succeeds, both ways.
  EXPECT_TRUE(m_.Flock(2, 22, 5, LOCK_EX, true).ok());
  EXPECT_EQ(m_.TEST_FlockOf(2, 5), LOCK_EX);
  EXPECT_EQ(m_.Flock(1, 11, 5, LOCK_SH, true).code(), Code::kAgain);
  EXPECT_TRUE(m_.Flock(2, 22, 5, LOCK_SH, true).ok());
  EXPECT_TRUE(m_.Flock(1, 11, 5, LOCK_SH, true).ok());
  EXPECT_TRUE(m_.Flock(2, 22, 5, LOCK_UN, false).ok());
  EXPECT_TRUE(m_.Flock(1, 11, 5, LOCK_UN, false).ok());
  EXPECT_TRUE(m_.Flock(1, 11, 5, LOCK_UN, false).ok());  // unlocking nothing is fine
  EXPECT_EQ(m_.Flock(1, 11, 5, 0, false).code(), Code::kInvalid);
  EXPECT_EQ(m_.TEST_LiveInodes(), 0u);
}

TEST_F(LockManagerTest, FlockPosixAndInodeLocksAreIndependent) {
  ASSERT_TRUE(m_.Flock(1, 11, 5, LOCK_EX, true).ok());
  EXPECT_TRUE(m_.SetRange(2, 22, 5, F_WRLCK, 0, kEof, false).ok());
  EXPECT_TRUE(m_.LockInode(3, 33, 5, X, false).ok());
  EXPECT_TRUE(m_.TestRange(4, 5, F_WRLCK, 0, kEof).has_value());
  m_.ReleaseAll(1);
  m_.ReleaseAll(2);
  m_.ReleaseAll(3);
  EXPECT_EQ(m_.TEST_LiveInodes(), 0u);
}

TEST_F(LockManagerTest, ReleaseAllDropsEverythingAndWakesWaiters) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());  // re-entrant levels go too
  ASSERT_TRUE(m_.SetRange(1, 11, 6, F_WRLCK, 0, 9, false).ok());
  ASSERT_TRUE(m_.Flock(1, 11, 7, LOCK_EX, true).ok());
  AsyncCall b(&m_, [&] { return m_.SetRange(2, 22, 6, F_WRLCK, 5, 5, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  m_.ReleaseAll(1);
  auto r = b.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
  EXPECT_TRUE(m_.LockInode(3, 33, 5, X, false).ok());
  EXPECT_TRUE(m_.Flock(3, 33, 7, LOCK_EX, true).ok());
  m_.ReleaseAll(2);
  m_.ReleaseAll(3);
  m_.ReleaseAll(99);  // holds nothing
  EXPECT_EQ(m_.TEST_LiveInodes(), 0u);
}

// ---------------------------------------------------------------- blocking waits

TEST_F(LockManagerTest, InodeWaitWokenByUnlock) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  AsyncCall b(&m_, [&] { return m_.LockInode(2, 22, 5, S, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  EXPECT_FALSE(b.Done());
  EXPECT_EQ(m_.TEST_Waiters(), 1u);
  m_.UnlockInode(1, 5);
  auto r = b.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok()) << r->ToString();
  EXPECT_EQ(log_.Count("lock grant", 2), 1u);
  EXPECT_EQ(m_.TEST_Waiters(), 0u);
  LockStats st = m_.stats();
  EXPECT_EQ(st.waits, 1u);
  EXPECT_EQ(st.backoffs, 3u);  // Options::backoff_attempts, all taken before waiting
  EXPECT_EQ(st.acquired, 2u);
  EXPECT_EQ(st.immediate, 1u);
}

TEST_F(LockManagerTest, RangeWaitWokenByDowngradeAndUnlock) {
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 0, 99, false).ok());
  AsyncCall reader(&m_, [&] { return m_.SetRange(2, 22, 5, F_RDLCK, 10, 10, true); });
  AsyncCall writer(&m_, [&] { return m_.SetRange(3, 33, 5, F_WRLCK, 50, 50, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  ASSERT_TRUE(log_.WaitFor("before wait", 3));
  // Downgrading [0, 49] to a read lock lets the reader in, not the writer.
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_RDLCK, 0, 49, false).ok());
  auto r = reader.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
  EXPECT_FALSE(writer.Done());
  m_.ReleaseRanges(1, 5);
  r = writer.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
}

TEST_F(LockManagerTest, FlockWaitWokenByUnlock) {
  ASSERT_TRUE(m_.Flock(1, 11, 5, LOCK_SH, false).ok());
  AsyncCall b(&m_, [&] { return m_.Flock(2, 22, 5, LOCK_EX, false); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  EXPECT_FALSE(b.Done());
  ASSERT_TRUE(m_.Flock(1, 11, 5, LOCK_UN, false).ok());
  auto r = b.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(m_.TEST_FlockOf(2, 5), LOCK_EX);
}

TEST_F(LockManagerTest, CancelEndsWaitWithEintr) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  std::atomic<bool> cancel{false};
  AsyncCall b(&m_, [&] { return m_.LockInode(2, 22, 5, X, true, &cancel); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  cancel = true;
  m_.Interrupt();
  auto r = b.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code(), Code::kErrno);
  EXPECT_TRUE(IsErrno(*r, EINTR)) << r->ToString();
  EXPECT_EQ(m_.stats().cancelled, 1u);
  EXPECT_EQ(m_.TEST_Waiters(), 0u);
  EXPECT_FALSE(m_.TEST_InodeHold(2, 5).has_value());
  // A flag already set does not matter without a conflict...
  EXPECT_TRUE(m_.SetRange(2, 22, 6, F_WRLCK, 0, 0, true, &cancel).ok());
  // ...and fails a conflicting request before it blocks.
  ASSERT_TRUE(m_.Flock(1, 11, 7, LOCK_EX, false).ok());
  EXPECT_TRUE(IsErrno(m_.Flock(2, 22, 7, LOCK_SH, false, &cancel), EINTR));
}

TEST(LockManagerOptionsTest, CancelIsPolledWithoutInterrupt) {
  LockManager::Options o;
  o.cancel_poll = 5ms;
  SyncLog log;
  LockManager m(o);
  log.Attach(&m);
  ASSERT_TRUE(m.SetRange(1, 11, 5, F_WRLCK, 0, kEof, false).ok());
  std::atomic<bool> cancel{false};
  AsyncCall b(&m, [&] { return m.SetRange(2, 22, 5, F_RDLCK, 7, 7, true, &cancel); });
  ASSERT_TRUE(log.WaitFor("before wait", 2));
  cancel = true;  // no Interrupt(): the poll notices
  auto r = b.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(IsErrno(*r, EINTR));
  m.TEST_SetSyncPoint(nullptr);
}

TEST(LockManagerOptionsTest, WaitTimeoutFailsWithBusy) {
  LockManager::Options o;
  o.wait_timeout = 30ms;
  LockManager m(o);
  ASSERT_TRUE(m.LockInode(1, 11, 5, X, false).ok());
  Status s = m.LockInode(2, 22, 5, S, true);
  EXPECT_EQ(s.code(), Code::kBusy);
  EXPECT_EQ(m.stats().timeouts, 1u);
  EXPECT_EQ(m.TEST_Waiters(), 0u);
}

TEST_F(LockManagerTest, ShutdownFailsWaitsWithEnolck) {
  ASSERT_TRUE(m_.LockInode(1, 11, 5, X, false).ok());
  AsyncCall b(&m_, [&] { return m_.LockInode(2, 22, 5, X, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  m_.Shutdown();
  auto r = b.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(IsErrno(*r, ENOLCK));
  EXPECT_TRUE(IsErrno(m_.LockInode(3, 33, 5, S, true), ENOLCK));
  // Non-blocking requests and releases keep working.
  EXPECT_EQ(m_.LockInode(3, 33, 5, S, false).code(), Code::kAgain);
  m_.ReleaseAll(1);
  EXPECT_TRUE(m_.LockInode(3, 33, 5, S, true).ok());
}

// ---------------------------------------------------------------- deadlocks

TEST_F(LockManagerTest, TwoOwnerDeadlockFailsTheRequesterThatClosesTheCycle) {
  ASSERT_TRUE(m_.LockInode(1, 11, 100, X, false).ok());
  ASSERT_TRUE(m_.LockInode(2, 22, 200, X, false).ok());
  AsyncCall a(&m_, [&] { return m_.LockInode(1, 11, 200, X, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  Status s = m_.LockInode(2, 22, 100, X, true);
  EXPECT_EQ(s.code(), Code::kDeadlock);
  EXPECT_EQ(s.ToErrno(), EDEADLK);
  EXPECT_NE(s.message().find("owner 1"), std::string::npos) << s.message();
  EXPECT_EQ(log_.Count("deadlock victim chosen", 2), 1u);
  EXPECT_FALSE(a.Done());
  m_.ReleaseAll(2);  // the victim gives up
  auto r = a.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(m_.stats().deadlocks, 1u);
  EXPECT_EQ(m_.TEST_Waiters(), 0u);
}

TEST_F(LockManagerTest, TwoOwnerDeadlockRacingExactlyOneVictim) {
  // No ordering forced: both request at once; exactly one must be the victim
  // whichever comes second, and the other is granted once it releases.
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_TRUE(m_.LockInode(1, 11, 100, X, false).ok());
    ASSERT_TRUE(m_.LockInode(2, 22, 200, X, false).ok());
    auto request = [&](uint64_t owner, uint64_t ino) {
      Status s = m_.LockInode(owner, 0, ino, X, true);
      if (s.code() == Code::kDeadlock) m_.ReleaseAll(owner);
      return s;
    };
    AsyncCall a(&m_, [&] { return request(1, 200); });
    AsyncCall b(&m_, [&] { return request(2, 100); });
    auto ra = a.Get();
    auto rb = b.Get();
    ASSERT_TRUE(ra.has_value() && rb.has_value());
    EXPECT_EQ((ra->code() == Code::kDeadlock) + (rb->code() == Code::kDeadlock), 1)
        << ra->ToString() << " / " << rb->ToString();
    EXPECT_TRUE(ra->ok() || rb->ok());
    m_.ReleaseAll(1);
    m_.ReleaseAll(2);
    ASSERT_EQ(m_.TEST_LiveInodes(), 0u);
  }
  EXPECT_EQ(m_.stats().deadlocks, 20u);
}

TEST_F(LockManagerTest, ThreeOwnerCycle) {
  ASSERT_TRUE(m_.LockInode(1, 11, 1, X, false).ok());
  ASSERT_TRUE(m_.LockInode(2, 22, 2, X, false).ok());
  ASSERT_TRUE(m_.LockInode(3, 33, 3, X, false).ok());
  AsyncCall a(&m_, [&] { return m_.LockInode(1, 11, 2, X, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  AsyncCall b(&m_, [&] { return m_.LockInode(2, 22, 3, S, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  // Owner 3 waiting for 1 would close 3 -> 1 -> 2 -> 3.
  Status s = m_.LockInode(3, 33, 1, S, true);
  EXPECT_EQ(s.code(), Code::kDeadlock) << s.ToString();
  EXPECT_EQ(m_.TEST_Waiters(), 2u);
  m_.ReleaseAll(3);
  auto rb = b.Get();
  ASSERT_TRUE(rb.has_value());
  EXPECT_TRUE(rb->ok());
  EXPECT_FALSE(a.Done());
  m_.ReleaseAll(2);
  auto ra = a.Get();
  ASSERT_TRUE(ra.has_value());
  EXPECT_TRUE(ra->ok());
  EXPECT_EQ(m_.stats().deadlocks, 1u);
}

TEST_F(LockManagerTest, CycleMixingRangeAndInodeLocks) {
  ASSERT_TRUE(m_.SetRange(1, 11, 10, F_WRLCK, 0, 9, false).ok());
  ASSERT_TRUE(m_.LockInode(2, 22, 20, X, false).ok());
  AsyncCall a(&m_, [&] { return m_.LockInode(1, 11, 20, S, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  Status s = m_.SetRange(2, 22, 10, F_RDLCK, 5, 5, true);  // F_SETLKW
  EXPECT_EQ(s.code(), Code::kDeadlock) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EDEADLK);
  m_.UnlockInode(2, 20);
  auto r = a.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
}

TEST_F(LockManagerTest, CycleThroughAllThreeLockKinds) {
  ASSERT_TRUE(m_.LockInode(1, 11, 1, X, false).ok());
  ASSERT_TRUE(m_.SetRange(2, 22, 2, F_WRLCK, 0, kEof, false).ok());
  ASSERT_TRUE(m_.Flock(3, 33, 3, LOCK_EX, false).ok());
  AsyncCall a(&m_, [&] { return m_.SetRange(1, 11, 2, F_WRLCK, 100, 200, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  AsyncCall b(&m_, [&] { return m_.Flock(2, 22, 3, LOCK_SH, false); });
  ASSERT_TRUE(log_.WaitFor("before wait", 2));
  Status s = m_.LockInode(3, 33, 1, S, true);
  EXPECT_EQ(s.code(), Code::kDeadlock) << s.ToString();
  m_.ReleaseAll(3);
  auto rb = b.Get();
  ASSERT_TRUE(rb.has_value());
  EXPECT_TRUE(rb->ok());
  m_.ReleaseAll(2);
  auto ra = a.Get();
  ASSERT_TRUE(ra.has_value());
  EXPECT_TRUE(ra->ok());
}

TEST_F(LockManagerTest, RangeDeadlockOnOneFile) {
  // The classic fcntl case: two processes each lock one byte, then the other.
  ASSERT_TRUE(m_.SetRange(1, 11, 5, F_WRLCK, 0, 0, false).ok());
  ASSERT_TRUE(m_.SetRange(2, 22, 5, F_WRLCK, 1, 1, false).ok());
  AsyncCall a(&m_, [&] { return m_.SetRange(1, 11, 5, F_WRLCK, 1, 1, true); });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  EXPECT_EQ(m_.SetRange(2, 22, 5, F_WRLCK, 0, 0, true).code(), Code::kDeadlock);
  // Waiting for a range nobody in the cycle holds is fine.
  EXPECT_TRUE(m_.SetRange(2, 22, 5, F_WRLCK, 2, 2, true).ok());
  m_.ReleaseRanges(2, 5);
  auto r = a.Get();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(m_.TEST_Ranges(5), (std::vector<Conflict>{{F_WRLCK, 0, 1, 11, 1}}));
}

TEST_F(LockManagerTest, ReleasedLockIsNotAStaleEdge) {
  // Owner 1 waits for ino 1, held by 2; its thread is held at "before wait"
  // (registered in the graph, not yet woken). Owner 2 releases ino 1 and then
  // waits for ino 2, held by 1. Owner 1 no longer waits for 2 although its
  // thread has not run since, so this is no deadlock: a stale edge 1 -> 2
  // must not make owner 2 a victim.
  ASSERT_TRUE(m_.LockInode(2, 22, 1, X, false).ok());
  ASSERT_TRUE(m_.LockInode(1, 11, 2, X, false).ok());
  log_.HoldAt("before wait", 1);
  AsyncCall a(&m_, [&] {
    Status s = m_.LockInode(1, 11, 1, X, true);
    m_.ReleaseAll(1);
    return s;
  });
  ASSERT_TRUE(log_.WaitFor("before wait", 1));
  m_.UnlockInode(2, 1);
  AsyncCall b(&m_, [&] { return m_.LockInode(2, 22, 2, X, true); });
  ASSERT_TRUE(log_.WaitForAny({"before wait", "deadlock victim chosen"}, 2));
  log_.Release();
  auto ra = a.Get();
  auto rb = b.Get();
  ASSERT_TRUE(ra.has_value() && rb.has_value());
  EXPECT_TRUE(ra->ok()) << ra->ToString();
  EXPECT_TRUE(rb->ok()) << rb->ToString();
  EXPECT_EQ(m_.stats().deadlocks, 0u);
}

// ---------------------------------------------------------------- stress

uint64_t TestSeed() {
  if (const char* e = std::getenv("DBFS_LOCK_SEED")) return std::strtoull(e, nullptr, 0);
  return std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32);
}

// A shadow of what each owner holds, updated so that it is always a subset
// of the real holdings: weakened before a release, strengthened after a
// grant. Two owners' shadows in conflict mean the manager granted an
// incompatible lock.
class Shadow {
 public:
  static constexpr int kOwners = 8;
  static constexpr int kInos = 3;
  static constexpr int kBytes = 64;  // ranges live in [0, 64) or reach EOF

  // Levels: 0 none, 1 shared, 2 exclusive.
  static bool Conflicts(int a, int b) { return a != 0 && b != 0 && (a == 2 || b == 2); }

  void InodeGranted(int t, int i, int level) {
    std::lock_guard<std::mutex> g(mu_);
    inode_count_[t][i]++;
    inode_[t][i] = std::max(inode_[t][i], level);
    for (int u = 0; u < kOwners; ++u) {
      if (u != t && Conflicts(inode_[u][i], inode_[t][i])) Violation("inode", t, u, i);
    }
  }
  void InodeUnlocking(int t, int i) {
    std::lock_guard<std::mutex> g(mu_);
    if (--inode_count_[t][i] == 0) inode_[t][i] = 0;
  }
  int InodeCount(int t, int i) {
    std::lock_guard<std::mutex> g(mu_);
    return inode_count_[t][i];
  }
  // Range [s, e] (clamped) is about to get `level` (0: unlock).
  void RangeBefore(int t, int i, int s, int e, int level) {
    std::lock_guard<std::mutex> g(mu_);
    for (int b = s; b <= e; ++b) bytes_[t][i][b] = std::min<int>(bytes_[t][i][b], level);
  }
  void RangeGranted(int t, int i, int s, int e, int level) {
    std::lock_guard<std::mutex> g(mu_);
    for (int b = s; b <= e; ++b) {
      bytes_[t][i][b] = static_cast<uint8_t>(level);
      for (int u = 0; u < kOwners; ++u) {
        if (u != t && Conflicts(bytes_[u][i][b], level)) Violation("range", t, u, i);
      }
    }
  }
  void RangesReleasing(int t, int i) {
    std::lock_guard<std::mutex> g(mu_);
    for (int b = 0; b < kBytes; ++b) bytes_[t][i][b] = 0;
  }
  void FlockBefore(int t, int i, int level) {
    std::lock_guard<std::mutex> g(mu_);
    if (flock_[t][i] != level) flock_[t][i] = 0;  // conversion drops first
  }
  void FlockGranted(int t, int i, int level) {
    std::lock_guard<std::mutex> g(mu_);
    flock_[t][i] = level;
    for (int u = 0; u < kOwners; ++u) {
      if (u != t && Conflicts(flock_[u][i], level)) Violation("flock", t, u, i);
    }
  }
  void ReleasingAll(int t) {
    std::lock_guard<std::mutex> g(mu_);
    for (int i = 0; i < kInos; ++i) {
      inode_[t][i] = inode_count_[t][i] = flock_[t][i] = 0;
      for (int b = 0; b < kBytes; ++b) bytes_[t][i][b] = 0;
    }
  }
  void Error(const std::string& what) {
    std::lock_guard<std::mutex> g(mu_);
    if (errors_.size() < 20) errors_.push_back(what);
  }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> g(mu_);
    return errors_;
  }

 private:
  void Violation(const char* kind, int t, int u, int i) {  // REQUIRES: mu_
    if (errors_.size() < 20) {
      errors_.push_back(std::string("incompatible ") + kind + " grant to owner " +
                        std::to_string(t) + " while owner " + std::to_string(u) +
                        " holds ino index " + std::to_string(i));
    }
  }
  std::mutex mu_;
  int inode_[kOwners][kInos] = {};
  int inode_count_[kOwners][kInos] = {};
  uint8_t bytes_[kOwners][kInos][kBytes] = {};
  int flock_[kOwners][kInos] = {};
  std::vector<std::string> errors_;
};

TEST(LockManagerStressTest, RandomLocksNeverGrantIncompatibleAndAlwaysFinish) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed=" + std::to_string(seed) +
               " (rerun with DBFS_LOCK_SEED=" + std::to_string(seed) + ")");
  LockManager::Options o;
  o.seed = seed;
  o.wait_timeout = 60s;  // a missed deadlock shows up as kBusy, not as a hang
  LockManager m(o);
  Shadow shadow;
  constexpr int kThreads = Shadow::kOwners;
  const uint64_t inos[Shadow::kInos] = {7, 8, 1000007};
  const auto end_time = std::chrono::steady_clock::now() + 2s;

  std::mutex done_mu;
  std::condition_variable done_cv;
  int done = 0;
  std::atomic<uint64_t> victims{0};

  auto worker = [&](int t) {
    std::mt19937_64 rng(seed * 1000003 + t);
    const uint64_t owner = 100 + t;
    const int32_t pid = 1000 + t;
    auto pick = [&](int n) { return static_cast<int>(rng() % n); };
    while (std::chrono::steady_clock::now() < end_time) {
      const int op = pick(100);
      const int i = pick(Shadow::kInos);
      const uint64_t ino = inos[i];
      const bool wait = pick(10) != 0;
      Status s;
      if (op < 30) {
        const int level = pick(2) + 1;
        s = m.LockInode(owner, pid, ino, level == 2 ? X : S, wait);
        if (s.ok()) shadow.InodeGranted(t, i, level);
      } else if (op < 45) {
        if (shadow.InodeCount(t, i) > 0) {
          shadow.InodeUnlocking(t, i);
          m.UnlockInode(owner, ino);
        }
      } else if (op < 75) {
        const int level = pick(3);  // 0 unlock, 1 read, 2 write
        const int type = level == 0 ? F_UNLCK : level == 1 ? F_RDLCK : F_WRLCK;
        const int start = pick(Shadow::kBytes);
        const bool to_eof = pick(8) == 0;
        const int last =
            to_eof ? Shadow::kBytes - 1 : std::min(start + pick(8), Shadow::kBytes - 1);
        const uint64_t end = to_eof ? kEof : static_cast<uint64_t>(last);
        shadow.RangeBefore(t, i, start, last, level);
        s = m.SetRange(owner, pid, ino, type, start, end, wait);
        if (s.ok()) shadow.RangeGranted(t, i, start, last, level);
      } else if (op < 90) {
        const int level = pick(3);
        const int fop = level == 0 ? LOCK_UN : level == 1 ? LOCK_SH : LOCK_EX;
        shadow.FlockBefore(t, i, level);
        s = m.Flock(owner, pid, ino, fop, !wait);
        if (s.ok()) shadow.FlockGranted(t, i, level);
      } else if (op < 95) {
        shadow.RangesReleasing(t, i);
        m.ReleaseRanges(owner, ino);
      } else {
        shadow.ReleasingAll(t);
        m.ReleaseAll(owner);
      }
      if (s.code() == Code::kDeadlock) {
        // The victim gives up everything and carries on, like an aborted
        // transaction that retries.
        victims.fetch_add(1, std::memory_order_relaxed);
        shadow.ReleasingAll(t);
        m.ReleaseAll(owner);
      } else if (!s.ok() && s.code() != Code::kAgain) {
        shadow.Error("owner " + std::to_string(t) + ": unexpected " + s.ToString());
        break;  // e.g. ENOLCK after the watchdog shut the manager down
      }
    }
    shadow.ReleasingAll(t);
    m.ReleaseAll(owner);
    std::lock_guard<std::mutex> g(done_mu);
    ++done;
    done_cv.notify_all();
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  bool finished;
  {
    std::unique_lock<std::mutex> lk(done_mu);
    finished = done_cv.wait_for(lk, 120s, [&] { return done == kThreads; });
  }
  if (!finished) {
    ADD_FAILURE() << "threads stuck (undetected deadlock?) waiters=" << m.TEST_Waiters()
                  << " seed=" << seed;
    m.Shutdown();
  }
  for (std::thread& th : threads) th.join();

  for (const std::string& e : shadow.errors()) ADD_FAILURE() << e << " seed=" << seed;
  const LockStats st = m.stats();
  EXPECT_EQ(st.deadlocks, victims.load()) << "seed=" << seed;
  EXPECT_GT(st.acquired, 0u);
  EXPECT_EQ(m.TEST_Waiters(), 0u) << "seed=" << seed;
  EXPECT_EQ(m.TEST_LiveInodes(), 0u) << "seed=" << seed;
  std::printf(
      "stress seed=%llu acquired=%llu immediate=%llu backoffs=%llu waits=%llu "
      "deadlocks=%llu would_block=%llu\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(st.acquired),
      static_cast<unsigned long long>(st.immediate), static_cast<unsigned long long>(st.backoffs),
      static_cast<unsigned long long>(st.waits), static_cast<unsigned long long>(st.deadlocks),
      static_cast<unsigned long long>(st.would_block));
}

}  // namespace
}  // namespace dbfs::txn
