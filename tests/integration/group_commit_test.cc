// Group commit through a real mount (issue 4, "Group commit, measured"):
// 16 threads doing create + write + fsync share the WAL's fdatasyncs. The
// daemon counts both sides (`dbfs stats`: fsync_calls, wal_syncs), and every
// acknowledged file must be intact after a remount. No assertion depends on
// how long anything takes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

constexpr int kThreads = 16;
constexpr int kFilesPerThread = 50;

// Content of file (t, i): its own size and bytes, so a file holding another
// file's data, or a torn write, is detected.
std::string FileContent(int t, int i) {
  const size_t size = 64 + static_cast<size_t>((t * 131 + i * 17) % 512);
  std::string s;
  s.reserve(size + 64);
  while (s.size() < size) s += "thread " + std::to_string(t) + " file " + std::to_string(i) + ";";
  s.resize(size);
  return s;
}

std::string FileName(int t, int i) {
  return "gc/t" + std::to_string(t) + "_f" + std::to_string(i);
}

class GroupCommit : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    if (vol_->plain()) GTEST_SKIP() << "needs the daemon's counters";
    ASSERT_SYS(mkdir(path("gc").c_str(), 0755));
  }

  std::map<std::string, uint64_t> Stats() {
    std::string err;
    auto s = DaemonStats(vol_->mountpoint(), &err);
    EXPECT_TRUE(err.empty()) << err;
    for (const char* k : {"fsync_calls", "wal_syncs", "wal_sync_requests", "flushes",
                          "wal_segments_created"}) {
      EXPECT_TRUE(s.count(k)) << "dbfs stats lacks " << k;
    }
    return s;
  }

  // kThreads threads; thread t creates, writes, fsyncs and closes
  // FileName(t, i) for i < kFilesPerThread. `lockstep`: the threads create
  // and write file i, meet, fsync it, meet again, then close it; otherwise
  // each runs freely.
  void Run(bool lockstep) {
    std::atomic<int> failures{0};
    std::vector<std::string> errors(kThreads);
    std::barrier sync_point(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        sync_point.arrive_and_wait();  // all threads begin together
        for (int i = 0; i < kFilesPerThread; ++i) {
          const std::string p = path(FileName(t, i));
          const std::string data = FileContent(t, i);
          std::string what = "open";
          int fd = open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
          bool ok = fd >= 0;
          if (ok) {
            what = "write";
            ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
          }
          if (lockstep) sync_point.arrive_and_wait();  // every commit of the round is in the log
          if (ok) {
            what = "fsync";
            ok = fsync(fd) == 0;
          }
          const int e = errno;
          if (lockstep) sync_point.arrive_and_wait();  // nothing is appended while fsyncs run
          if (fd >= 0 && close(fd) != 0 && ok) {
            what = "close";
            ok = false;
          }
          if (!ok) {
            errors[t] = what + " " + p + ": " + strerror(e);
            failures.fetch_add(1);
            if (lockstep) sync_point.arrive_and_drop();  // the others must not wait for us
            return;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    for (const auto& e : errors) EXPECT_TRUE(e.empty()) << e;
    EXPECT_EQ(0, failures.load());
  }

  // Every acknowledged file is intact after a remount (a clean one; power
  // cuts are tests/powerloss/'s business).
  void ExpectFilesAfterRemount() {
    ASSERT_TRUE(vol_->Remount());
    int bad = 0;
    for (int t = 0; t < kThreads; ++t) {
      for (int i = 0; i < kFilesPerThread; ++i) {
        const std::string got = ReadFile(path(FileName(t, i)));
        if (got != FileContent(t, i) && ++bad <= 10) {
          ADD_FAILURE() << FileName(t, i) << ": " << got.size() << " bytes, expected "
                        << FileContent(t, i).size();
        }
      }
    }
    EXPECT_EQ(0, bad) << "files lost or damaged after the remount";
  }
};

// 16 threads, 50 rounds: every thread creates and writes a file, then all 16
// fsync at once. The first fsync's WAL sync covers every commit of the round
// (all were appended before any fsync began, and nothing is appended while
// they run), so every other fsync of the round either waits on that sync or
// finds its commits already durable: one sync per round, however the 16
// calls interleave with it. Without group commit each fsync syncs: 16 per
// round. That makes the bound independent of timing and of the device:
//   app-led syncs <= rounds + (one extra per background flush: a flush that
//   syncs in the middle of a round's creates can split the round's sync in
//   two), so wal_syncs <= rounds + 2 * flushes + segment rolls.
// The flusher runs every 200 ms; the run takes well under a second on the
// 2-core test VM (50 or 51 syncs for 800 fsyncs), and would have to take
// over 10 s for the bound (wal_syncs <= fsync_calls / 4 here, stricter
// than the suggested / 2) to fail while the structural one holds.
TEST_F(GroupCommit, LockstepFsyncsShareOneWalSyncPerRound) {
  auto before = Stats();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(Run(/*lockstep=*/true));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto after = Stats();
  auto delta = [&](const char* k) { return after[k] - before[k]; };
  const uint64_t fsyncs = delta("fsync_calls"), syncs = delta("wal_syncs");
  const uint64_t flushes = delta("flushes"), rolls = delta("wal_segments_created");
  std::cout << "lockstep: " << kThreads << " threads x " << kFilesPerThread
            << " rounds of create+write, fsync together, in " << secs << " s: fsync_calls "
            << fsyncs << ", wal_sync_requests " << delta("wal_sync_requests") << ", wal_syncs "
            << syncs << ", flushes " << flushes << ", segment rolls " << rolls << "\n";
  RecordProperty("fsync_calls", static_cast<int>(fsyncs));
  RecordProperty("wal_syncs", static_cast<int>(syncs));
  // The kernel sends one FUSE_FSYNC per fsync(2).
  EXPECT_EQ(static_cast<uint64_t>(kThreads * kFilesPerThread), fsyncs);
  EXPECT_LE(syncs, kFilesPerThread + 2 * flushes + rolls)
      << "more than one WAL sync per round of " << kThreads << " concurrent fsyncs";
  EXPECT_LE(syncs * 4, fsyncs) << syncs << " WAL syncs for " << fsyncs << " fsync calls";
  ExpectFilesAfterRemount();
}

// The same 800 create+write+fsync, each thread free-running. How many fsyncs
// meet inside one sync now depends on how long a sync takes against a
// create+write (the device, the load): 3-7 fsyncs per sync on the 2-core
// test VM, about 2 with two CPU hogs running, so no ratio is asserted (it
// would let timing decide). What is asserted holds for any timing: no WAL
// sync without a request for one (fsyncs plus background flushes plus
// segment rolls), and every acknowledged file survives.
TEST_F(GroupCommit, FreeRunningFsyncsNeverCauseExtraSyncs) {
  auto before = Stats();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(Run(/*lockstep=*/false));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto after = Stats();
  auto delta = [&](const char* k) { return after[k] - before[k]; };
  const uint64_t fsyncs = delta("fsync_calls"), syncs = delta("wal_syncs");
  std::cout << "free-running: " << kThreads << " threads x " << kFilesPerThread
            << " create+write+fsync in " << secs << " s: fsync_calls " << fsyncs
            << ", wal_syncs " << syncs << " ("
            << (syncs ? static_cast<double>(fsyncs) / static_cast<double>(syncs) : 0.0)
            << " fsyncs per WAL sync), flushes " << delta("flushes") << "\n";
  RecordProperty("fsync_calls", static_cast<int>(fsyncs));
  RecordProperty("wal_syncs", static_cast<int>(syncs));
  EXPECT_EQ(static_cast<uint64_t>(kThreads * kFilesPerThread), fsyncs);
  EXPECT_LE(syncs, fsyncs + delta("flushes") + delta("wal_segments_created"));
  ExpectFilesAfterRemount();
}

// The other direction: every acknowledged fsync/fdatasync is covered by a
// WAL sync that finished after its commit. Each thread writes (the commit is
// appended: the log's end, wal_written_lsn, is now at or past it), reads
// wal_written_lsn, syncs, then reads wal_synced_lsn: it must have reached
// the end read before. A fsync that returned without syncing leaves
// wal_synced_lsn behind except when a background flush (every 200 ms)
// happened to sync in that instant, so over 8 x 40 calls it fails; no
// timing decides a pass.
TEST_F(GroupCommit, EveryAcknowledgedFsyncFollowsAWalSyncOfItsCommit) {
  constexpr int kSyncThreads = 8, kCalls = 40;
  std::vector<std::string> errors(kSyncThreads);
  std::atomic<int> uncovered{0}, checked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kSyncThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string p = path("gc/cover" + std::to_string(t));
      int fd = open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) {
        errors[t] = "open " + p + ": " + strerror(errno);
        return;
      }
      for (int i = 0; i < kCalls && errors[t].empty(); ++i) {
        const std::string data = FileContent(t, i);
        std::string err;
        if (pwrite(fd, data.data(), data.size(), 0) != static_cast<ssize_t>(data.size())) {
          errors[t] = "write: " + std::string(strerror(errno));
          break;
        }
        auto before = DaemonStats(vol_->mountpoint(), &err);
        const int r = i % 2 ? fdatasync(fd) : fsync(fd);
        if (r != 0) {
          errors[t] = "fsync: " + std::string(strerror(errno));
          break;
        }
        auto after = DaemonStats(vol_->mountpoint(), &err);
        if (!err.empty() || !before.count("wal_written_lsn") || !after.count("wal_synced_lsn")) {
          errors[t] = "dbfs stats: " + err + " (no wal_written_lsn / wal_synced_lsn?)";
          break;
        }
        checked.fetch_add(1);
        if (after["wal_synced_lsn"] < before["wal_written_lsn"] && uncovered.fetch_add(1) < 5) {
          ADD_FAILURE() << "thread " << t << " call " << i << ": " << (i % 2 ? "fdatasync" : "fsync")
                        << " returned with wal_synced_lsn " << after["wal_synced_lsn"]
                        << " below the log end " << before["wal_written_lsn"]
                        << " its commit was under";
        }
      }
      close(fd);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) EXPECT_TRUE(e.empty()) << e;
  EXPECT_EQ(checked.load(), kSyncThreads * kCalls);
  EXPECT_EQ(uncovered.load(), 0) << "fsyncs acknowledged without a WAL sync covering their commit";
}

}  // namespace
}  // namespace dbfs::testing
