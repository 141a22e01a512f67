// Explicit transactions through the control channel (fuse/control.h), the
// process bindings (fuse/tx_binding.h) and the engine, without a mount:
// requests from this process's pid run inside the transaction bound to it
// (the adapter's CallerOf resolves them the same way: R below); requests
// with pid 0 come from "outside".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "fs/filesystem.h"
#include "fuse/control.h"
#include "fuse/tx_binding.h"
#include "tools/lib/fsck.h"
#include "tests/testlib/temp_volume.h"
#include "tools/lib/mkfs.h"

namespace dbfs {
namespace {

class TxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vol_ = std::make_unique<testing::TempVolume>("tx");
    ASSERT_TRUE(vol_->ok());
    root_ = vol_->root();
    dir_ = vol_->dir();
    ASSERT_NO_FATAL_FAILURE(Open({}));
    in_.pid = getpid();
  }
  void Open(const FsOptions& o) {
    auto f = Filesystem::Open(dir_, o);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    fs_ = std::move(f).value();
    bindings_ = std::make_unique<fuse::TxBindings>(fs_.get());
    control_ = std::make_unique<fuse::ControlChannel>(fs_.get(), bindings_.get());
  }
  void Close() {
    control_.reset();
    bindings_.reset();
    fs_.reset();
  }
  // The caller as the adapter sees it: with the transaction its process is bound to.
  Caller R(Caller c) {
    c.tx = bindings_->TxOf(c.pid);
    return c;
  }
  // Closes the volume and opens it again with tx_timeout = `seconds`.
  void ReopenWithTxTimeout(uint64_t seconds) {
    Close();
    FsOptions o;
    o.tx_timeout_s = seconds;
    ASSERT_NO_FATAL_FAILURE(Open(o));
  }
  void TearDown() override {
    Close();
    vol_.reset();
  }
  std::string Ctl(const std::string& cmd) {
    auto r = control_->Handle(out_, cmd);
    EXPECT_TRUE(r.ok()) << cmd << ": " << r.status().ToString();
    return r.ok() ? *r : "";
  }
  std::string Begin(const std::string& iso = "serializable") {
    return Ctl("dbfs.tx.begin:" + std::to_string(getpid()) + ":" + iso);
  }
  uint64_t Write(const Caller& c, const std::string& name, const std::string& data) {
    auto l = fs_->Lookup(R(c), kRootIno, name);
    uint64_t ino, fh;
    if (l.ok()) {
      ino = l->ino;
      auto o = fs_->Open(R(c), ino, O_RDWR | O_TRUNC);
      EXPECT_TRUE(o.ok());
      fh = *o;
    } else {
      auto cr = fs_->Create(R(c), kRootIno, name, 0644, O_RDWR);
      EXPECT_TRUE(cr.ok()) << cr.status().ToString();
      ino = cr->attr.ino;
      fh = cr->fh;
    }
    EXPECT_TRUE(fs_->Write(R(c), ino, fh, 0, data.data(), data.size()).ok());
    EXPECT_TRUE(fs_->Release(ino, fh).ok());
    return ino;
  }
  std::optional<std::string> Read(const Caller& c, const std::string& name) {
    auto l = fs_->Lookup(R(c), kRootIno, name);
    if (!l.ok()) return std::nullopt;
    auto o = fs_->Open(R(c), l->ino, O_RDONLY);
    EXPECT_TRUE(o.ok());
    std::string buf(4096, '\0');
    auto n = fs_->Read(R(c), l->ino, *o, 0, buf.size(), buf.data());
    EXPECT_TRUE(fs_->Release(l->ino, *o).ok());
    buf.resize(n.ok() ? *n : 0);
    return buf;
  }

  std::unique_ptr<testing::TempVolume> vol_;
  std::string root_, dir_;
  std::unique_ptr<Filesystem> fs_;
  std::unique_ptr<fuse::TxBindings> bindings_;
  std::unique_ptr<fuse::ControlChannel> control_;
  Caller in_, out_;
};

TEST_F(TxTest, ChangesAreInvisibleOutsideUntilCommit) {
  Write(out_, "f", "old");
  const std::string id = Begin();
  Write(in_, "f", "new");
  Write(in_, "g", "created");
  ASSERT_TRUE(fs_->Unlink(R(in_), kRootIno, "f").ok());
  // Inside: own writes (f was unlinked, g exists).
  EXPECT_EQ(Read(in_, "f"), std::nullopt);
  EXPECT_EQ(Read(in_, "g"), "created");
  // Outside: the committed state only.
  EXPECT_EQ(Read(out_, "f"), "old");
  EXPECT_EQ(Read(out_, "g"), std::nullopt);
  EXPECT_TRUE(fs_->Uncached(R(in_), kRootIno));
  EXPECT_TRUE(fs_->Uncached(out_, kRootIno));  // touched by an open transaction
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + id).substr(0, 3), "ok ");
  EXPECT_EQ(Read(out_, "f"), std::nullopt);
  EXPECT_EQ(Read(out_, "g"), "created");
  EXPECT_FALSE(fs_->Uncached(out_, kRootIno));
}

TEST_F(TxTest, AbortDiscardsEverything) {
  Write(out_, "keep", "1");
  const std::string id = Begin();
  Write(in_, "keep", "2");
  ASSERT_TRUE(fs_->Mkdir(R(in_), kRootIno, "d", 0755).ok());
  EXPECT_EQ(Ctl("dbfs.tx.abort:" + id), "ok");
  EXPECT_EQ(Read(out_, "keep"), "1");
  EXPECT_EQ(fs_->Lookup(out_, kRootIno, "d").status().code(), Code::kNotFound);
  // The process is no longer in a transaction: its writes autocommit.
  Write(in_, "keep", "3");
  EXPECT_EQ(Read(out_, "keep"), "3");
}

TEST_F(TxTest, AutocommitWinsAndTheTransactionFailsNamingThePath) {
  Write(out_, "counter", "0");
  const std::string id = Begin();
  EXPECT_EQ(Read(in_, "counter"), "0");
  Write(in_, "counter", "1");
  Write(out_, "counter", "9");  // an outside write always succeeds
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + id), "conflict /counter");
  EXPECT_EQ(Read(out_, "counter"), "9");
}

TEST_F(TxTest, PhantomCreationInAListedDirectoryFailsSerializableOnly) {
  for (std::string iso : {"serializable", "snapshot"}) {
    const std::string id = Begin(iso);
    auto dh = fs_->OpenDir(R(in_), kRootIno);  // the transaction lists /
    ASSERT_TRUE(dh.ok());
    ASSERT_TRUE(fs_->ReleaseDir(kRootIno, *dh).ok());
    Write(in_, "summary-" + iso, "n");
    Write(out_, "phantom-" + iso, "x");  // someone adds an entry to /
    const std::string r = Ctl("dbfs.tx.commit:" + id);
    if (iso == "serializable") {
      EXPECT_EQ(r, "conflict /phantom-serializable");
    } else {
      EXPECT_EQ(r.substr(0, 3), "ok ");
    }
  }
}

TEST_F(TxTest, UnlinkedInsideAndCommittedIsReclaimed) {
  uint64_t ino = Write(out_, "victim", "data");
  fs_->Forget(ino, 2);  // drop the kernel references Write's lookups counted
  const std::string id = Begin();
  ASSERT_TRUE(fs_->Unlink(R(in_), kRootIno, "victim").ok());
  EXPECT_TRUE(fs_->GetAttr(out_, ino).ok());
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + id).substr(0, 3), "ok ");
  EXPECT_EQ(fs_->GetAttr(out_, ino).status().code(), Code::kNotFound);
  Close();
  FsckReport r = Fsck(dir_, {});
  for (const auto& e : r.errors) ADD_FAILURE() << e;
}

TEST_F(TxTest, StatusListsOpenTransactionsAndBadCommandsFail) {
  const std::string id = Begin();
  const std::string st = Ctl("dbfs.tx.status");
  EXPECT_NE(st.find("tx " + id + " pid " + std::to_string(getpid())), std::string::npos) << st;
  EXPECT_FALSE(control_->Handle(out_, "dbfs.tx.commit:999").ok());
  EXPECT_FALSE(control_->Handle(out_, "dbfs.tx.begin:notapid").ok());
  // One transaction per process tree.
  EXPECT_EQ(control_->Handle(out_, "dbfs.tx.begin:" + std::to_string(getpid())).status().code(),
            Code::kBusy);
  EXPECT_EQ(Ctl("dbfs.tx.abort:" + id), "ok");
  EXPECT_EQ(Ctl("dbfs.tx.status"), "");
}

// Only root may checkpoint (it rewrites data and may take long).
TEST_F(TxTest, OnlyRootMayCheckpoint) {
  Caller user;
  user.uid = 1000;
  auto r = control_->Handle(user, fuse::kCheckpointXattr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Code::kPermission, r.status().code());
  auto root = control_->Handle(out_, fuse::kCheckpointXattr);
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_NE(root->find("segments_after "), std::string::npos) << *root;
}

TEST_F(TxTest, UnknownControlAttributeIsNoData) {
  EXPECT_EQ(control_->Handle(out_, "dbfs.nonsense").status().code(), Code::kNoData);
  EXPECT_EQ(control_->Handle(out_, "dbfs.tx.commit:1:maybe").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace dbfs

namespace dbfs {
namespace {

TEST_F(TxTest, IdleTransactionPastTimeoutIsAbortedByTheReaper) {
  ASSERT_NO_FATAL_FAILURE(ReopenWithTxTimeout(1));
  const std::string id = Begin();
  Write(in_, "never", "x");
  // Bounded wait for the reaper (it runs every second).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Ctl("dbfs.tx.status") != "" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Ctl("dbfs.tx.status"), "");
  EXPECT_FALSE(control_->Handle(out_, "dbfs.tx.commit:" + id).ok());
  EXPECT_EQ(Read(out_, "never"), std::nullopt);
}

TEST_F(TxTest, TransactionsCreatingDifferentNamesInOneDirectoryBothCommit) {
  // Two "processes": this one, and a forked child that only sleeps so that
  // its pid can be bound to a second transaction.
  pid_t other = fork();
  if (other == 0) {
    pause();
    _exit(0);
  }
  Caller in2;
  in2.pid = other;
  const std::string a = Begin();
  const std::string b = Ctl("dbfs.tx.begin:" + std::to_string(other));
  ASSERT_TRUE(fs_->Mkdir(R(in_), kRootIno, "from-a", 0755).ok());
  ASSERT_TRUE(fs_->Mkdir(R(in2), kRootIno, "from-b", 0755).ok());
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a).substr(0, 3), "ok ");
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + b).substr(0, 3), "ok ");
  kill(other, SIGKILL);
  waitpid(other, nullptr, 0);
  EXPECT_EQ(fs_->GetAttr(out_, kRootIno)->nlink, 4u);  // ., .., from-a/.., from-b/..
  Close();
  FsckReport r = Fsck(dir_, {});
  for (const auto& e : r.errors) ADD_FAILURE() << e;
}

}  // namespace
}  // namespace dbfs

// ---- pessimistic transactions (dbfs tx run --lock) ----

namespace dbfs {
namespace {

// A second "process" for a second transaction: a forked child that only
// waits to be killed, so that its pid can be bound.
class SleepingChild {
 public:
  SleepingChild() {
    pid_ = fork();
    if (pid_ == 0) {
      pause();
      _exit(0);
    }
  }
  ~SleepingChild() { Kill(); }
  SleepingChild(const SleepingChild&) = delete;
  SleepingChild& operator=(const SleepingChild&) = delete;
  pid_t pid() const { return pid_; }
  Caller caller() const {
    Caller c;
    c.pid = pid_;
    return c;
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Records which lock owners (transaction ids) reached "before wait": a
// request of theirs is blocked in the lock manager.
class WaitLog {
 public:
  explicit WaitLog(Filesystem* fs) : fs_(fs) {
    fs_->TEST_SetTxLockSyncPoint([this](std::string_view point, uint64_t owner, uint64_t) {
      if (point != "before wait") return;
      std::lock_guard g(mu_);
      waited_.insert(owner);
      cv_.notify_all();
    });
  }
  ~WaitLog() { fs_->TEST_SetTxLockSyncPoint(nullptr); }
  // Bounded wait until a request of `owner` blocks.
  bool WaitFor(uint64_t owner) {
    std::unique_lock g(mu_);
    return cv_.wait_for(g, std::chrono::seconds(20), [&] { return waited_.count(owner) > 0; });
  }
  bool Waited(uint64_t owner) {
    std::lock_guard g(mu_);
    return waited_.count(owner) > 0;
  }

 private:
  Filesystem* fs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint64_t> waited_;
};

class LockTxTest : public TxTest {
 protected:
  std::string BeginLocked(pid_t pid) {
    return Ctl("dbfs.tx.begin:" + std::to_string(pid) + ":serializable:lock");
  }
  // Like TxTest::Write, but returns the first failure instead of expecting
  // none (a deadlock victim's or an aborted transaction's request fails).
  Status TryWrite(const Caller& c, const std::string& name, const std::string& data) {
    DBFS_ASSIGN_OR_RETURN(Attr a, fs_->Lookup(R(c), kRootIno, name));
    DBFS_ASSIGN_OR_RETURN(uint64_t fh, fs_->Open(R(c), a.ino, O_RDWR | O_TRUNC));
    Status w = fs_->Write(R(c), a.ino, fh, 0, data.data(), data.size()).status();
    EXPECT_TRUE(fs_->Release(a.ino, fh).ok());
    return w;
  }
  uint64_t Ino(const std::string& name) {
    auto a = fs_->Lookup(out_, kRootIno, name);
    EXPECT_TRUE(a.ok());
    return a.ok() ? a->ino : 0;
  }
  static uint64_t Id(const std::string& id) { return std::stoull(id); }
  static constexpr auto kNow = std::chrono::seconds(0);

  // The setting of most tests below: transaction `a` bound to this process
  // (caller in_), `b` to a sleeping child (caller `in2`), and `waits`, the
  // log of whose requests blocked on a lock.
  struct TwoLocked {
    explicit TwoLocked(LockTxTest* t)
        : in2(other.caller()),
          a(t->BeginLocked(getpid())),
          b(t->BeginLocked(other.pid())),
          waits(t->fs_.get()) {}
    SleepingChild other;
    const Caller in2;
    const std::string a, b;
    WaitLog waits;
  };
};

TEST_F(LockTxTest, SecondTransactionWaitsForTheFirstAndThenSeesItsCommit) {
  Write(out_, "counter", "0");
  const uint64_t ino = Ino("counter");
  TwoLocked two(this);
  auto& [other, in2, a, b, waits] = two;
  // a: read-increment-write; the read already takes the exclusive lock.
  EXPECT_EQ(Read(in_, "counter"), "0");
  EXPECT_TRUE(fs_->TEST_TxHoldsLock(Id(a), ino));
  Write(in_, "counter", "1");
  // b's read of the counter waits for a instead of reading the old value.
  auto b_read = std::async(std::launch::async, [&] { return Read(in2, "counter"); });
  ASSERT_TRUE(waits.WaitFor(Id(b)));
  EXPECT_EQ(b_read.wait_for(kNow), std::future_status::timeout);
  // Status never blocks on a waiting transaction, and shows the mode.
  const std::string st = Ctl("dbfs.tx.status");
  EXPECT_NE(st.find("tx " + a + " pid " + std::to_string(getpid()) + " uid 0 serializable lock"),
            std::string::npos) << st;
  EXPECT_NE(st.find("waiting for the lock of inode " + std::to_string(ino)), std::string::npos) << st;
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a).substr(0, 3), "ok ");
  // Granted after a's commit, b reads what a committed (its snapshot moved).
  EXPECT_EQ(b_read.get(), "1");
  Write(in2, "counter", "2");
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + b).substr(0, 3), "ok ");  // no conflict
  EXPECT_EQ(Read(out_, "counter"), "2");
  EXPECT_FALSE(fs_->TEST_TxHoldsLock(Id(a), ino));
  EXPECT_FALSE(fs_->TEST_TxHoldsLock(Id(b), ino));
  const std::string stats = Ctl("dbfs.stats");
  EXPECT_NE(stats.find("tx_lock_waits 1\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("tx_lock_rebases 1\n"), std::string::npos) << stats;
}

TEST_F(LockTxTest, WritesMadeBeforeAWaitSurviveTheSnapshotMove) {
  Write(out_, "mine", "0");
  Write(out_, "theirs", "0");
  TwoLocked two(this);
  auto& [other, in2, a, b, waits] = two;
  Write(in2, "theirs", "b");  // b holds "theirs"
  Write(in_, "mine", "a");    // a writes first, then needs "theirs"
  auto a_read = std::async(std::launch::async, [&] { return Read(in_, "theirs"); });
  ASSERT_TRUE(waits.WaitFor(Id(a)));
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + b).substr(0, 3), "ok ");
  EXPECT_EQ(a_read.get(), "b");
  EXPECT_EQ(Read(in_, "mine"), "a");  // its own write, carried to the new snapshot
  Write(in_, "theirs", "a");
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a).substr(0, 3), "ok ");
  EXPECT_EQ(Read(out_, "mine"), "a");
  EXPECT_EQ(Read(out_, "theirs"), "a");
}

TEST_F(LockTxTest, DeadlockAbortsExactlyOneWithEdeadlk) {
  Write(out_, "x", "0");
  Write(out_, "y", "0");
  TwoLocked two(this);
  auto& [other, in2, a, b, waits] = two;
  ASSERT_TRUE(TryWrite(in_, "x", "a").ok());
  ASSERT_TRUE(TryWrite(in2, "y", "b").ok());
  // a waits for y (held by b); b then asks for x (held by a): a cycle.
  auto a_write = std::async(std::launch::async, [&] { return TryWrite(in_, "y", "a"); });
  ASSERT_TRUE(waits.WaitFor(Id(a)));
  const Status victim = TryWrite(in2, "x", "b");
  EXPECT_EQ(victim.code(), Code::kDeadlock) << victim.ToString();
  EXPECT_EQ(victim.ToErrno(), EDEADLK);
  EXPECT_NE(victim.message().find("deadlock waiting for /x"), std::string::npos) << victim.ToString();
  // The victim's locks went with it: a proceeds.
  const Status survivor = a_write.get();
  EXPECT_TRUE(survivor.ok()) << survivor.ToString();
  // The victim's processes stay in the aborted transaction: their requests
  // fail (ECANCELED) instead of running outside it.
  const Status after = TryWrite(in2, "y", "late");
  EXPECT_EQ(after.ToErrno(), ECANCELED) << after.ToString();
  EXPECT_EQ(Ctl("dbfs.tx.status").find("tx " + b + " "), std::string::npos);
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a).substr(0, 3), "ok ");
  const std::string r = Ctl("dbfs.tx.commit:" + b);
  EXPECT_EQ(r.rfind("deadlock ", 0), 0u) << r;
  // Ended now: b's process is outside any transaction again.
  EXPECT_FALSE(control_->Handle(out_, "dbfs.tx.commit:" + b).ok());
  EXPECT_EQ(Read(out_, "x"), "a");
  EXPECT_EQ(Read(out_, "y"), "a");
  EXPECT_NE(Ctl("dbfs.stats").find("tx_aborts_deadlock 1\n"), std::string::npos);
}

TEST_F(LockTxTest, AbortReleasesLocksAndEndsAWaitOfTheAbortedTransaction) {
  Write(out_, "f", "0");
  const uint64_t ino = Ino("f");
  TwoLocked two(this);
  auto& [other, in2, a, b, waits] = two;
  ASSERT_TRUE(TryWrite(in_, "f", "a").ok());
  auto b_write = std::async(std::launch::async, [&] { return TryWrite(in2, "f", "b"); });
  ASSERT_TRUE(waits.WaitFor(Id(b)));
  // Aborting the waiting transaction ends its wait.
  EXPECT_EQ(Ctl("dbfs.tx.abort:" + b), "ok");
  EXPECT_EQ(b_write.get().ToErrno(), ECANCELED);
  EXPECT_TRUE(fs_->TEST_TxHoldsLock(Id(a), ino));
  // Aborting the holder releases its lock: the next transaction does not wait.
  EXPECT_EQ(Ctl("dbfs.tx.abort:" + a), "ok");
  EXPECT_FALSE(fs_->TEST_TxHoldsLock(Id(a), ino));
  const std::string c = BeginLocked(other.pid());
  ASSERT_TRUE(TryWrite(in2, "f", "c").ok());
  EXPECT_FALSE(waits.Waited(Id(c)));
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + c).substr(0, 3), "ok ");
  EXPECT_EQ(Read(out_, "f"), "c");
}

TEST_F(LockTxTest, OutsidersNeverWaitAndStillWinAtCommit) {
  Write(out_, "f", "0");
  const std::string a = BeginLocked(getpid());
  WaitLog waits(fs_.get());
  EXPECT_EQ(Read(in_, "f"), "0");
  Write(in_, "f", "a");
  // An autocommit write of the locked file goes through at once (were it to
  // wait for the lock, this thread would hang here)...
  Write(out_, "f", "outside");
  EXPECT_EQ(Read(out_, "f"), "outside");
  // ...and validation protects the transaction against it.
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a), "conflict /f");
  EXPECT_EQ(Read(out_, "f"), "outside");
  EXPECT_FALSE(waits.Waited(Id(a)));
}

TEST_F(LockTxTest, SnapshotStaysWhenAnOutsiderChangedWhatTheWaiterRead) {
  Write(out_, "r", "0");
  Write(out_, "f", "0");
  TwoLocked two(this);
  auto& [other, in2, a, b, waits] = two;
  Write(in2, "f", "b");                 // b holds f
  EXPECT_EQ(Read(in_, "r"), "0");       // a read r...
  Write(out_, "r", "outside");          // ...which an outsider then changed
  auto a_read = std::async(std::launch::async, [&] { return Read(in_, "f"); });
  ASSERT_TRUE(waits.WaitFor(Id(a)));
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + b).substr(0, 3), "ok ");
  // Moving a's snapshot would mix the old r with the new f: it stays, and a
  // reads f as of its snapshot; commit-time validation then fails it.
  EXPECT_EQ(a_read.get(), "0");
  Write(in_, "f", "a");
  EXPECT_EQ(Ctl("dbfs.tx.commit:" + a).rfind("conflict ", 0), 0u);
  EXPECT_EQ(Read(out_, "f"), "b");
}

TEST_F(LockTxTest, TimedOutTransactionReleasesItsLocks) {
  ASSERT_NO_FATAL_FAILURE(ReopenWithTxTimeout(1));
  Write(out_, "f", "0");
  const uint64_t fino = Ino("f");
  // Timeout: the reaper aborts the idle transaction and releases its lock.
  const std::string a = BeginLocked(getpid());
  Write(in_, "f", "a");
  EXPECT_TRUE(fs_->TEST_TxHoldsLock(Id(a), fino));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fs_->TEST_TxHoldsLock(Id(a), fino) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(fs_->TEST_TxHoldsLock(Id(a), fino));
  EXPECT_EQ(Ctl("dbfs.tx.status"), "");
  EXPECT_EQ(Read(out_, "f"), "0");
  // Its processes stay in the aborted transaction: their requests fail
  // instead of autocommitting what was meant to be part of it...
  EXPECT_EQ(TryWrite(in_, "f", "late").ToErrno(), ECANCELED);
  EXPECT_EQ(Read(out_, "f"), "0");
  // ...until `dbfs tx` ends it (the commit reports why it cannot).
  auto r = control_->Handle(out_, "dbfs.tx.commit:" + a);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("timeout"), std::string::npos) << r.status().ToString();
  Write(in_, "f", "after");
  EXPECT_EQ(Read(out_, "f"), "after");
}

TEST_F(LockTxTest, TransactionWhoseRootProcessIsGoneIsAbortedAndReleasesItsLocks) {
  // (the default tx_timeout: only the root-process check can end it)
  Write(out_, "g", "0");
  const uint64_t gino = Ino("g");
  SleepingChild doomed;
  const std::string b = BeginLocked(doomed.pid());
  Write(doomed.caller(), "g", "b");
  EXPECT_TRUE(fs_->TEST_TxHoldsLock(Id(b), gino));
  doomed.Kill();
  const auto deadline2 = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fs_->TEST_TxHoldsLock(Id(b), gino) && std::chrono::steady_clock::now() < deadline2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(fs_->TEST_TxHoldsLock(Id(b), gino));
  EXPECT_EQ(Read(out_, "g"), "0");
  EXPECT_EQ(Ctl("dbfs.tx.status"), "");
  EXPECT_NE(Ctl("dbfs.stats").find("tx_aborts_root_gone 1\n"), std::string::npos);
}

}  // namespace
}  // namespace dbfs
