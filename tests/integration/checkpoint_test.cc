// Checkpoints through a real mount (fs/checkpoint.cc): the size- and
// interval-triggered background checkpoints with writers running, and a
// daemon that crashes at each step of a checkpoint (test crash points,
// kvstore/crash_point.h: after a relocation commit, after the snapshot
// barrier, between segment removals). After every crash: fsck of the
// crashed volume, recovery, every acknowledged byte intact, a checkpoint
// that completes, and the fixture's strict fsck at the end. No pass/fail
// depends on timing; waits are bounded.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr size_t kFileSize = 256 << 10;

std::string Pattern(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

class CheckpointMount : public MountTest {
 protected:
  std::string MountOptions() const override {
    // 1 MiB segments; background checkpoints off unless a test remounts.
    return MountedVolume::DefaultOptions() +
           ",wal_segment_mb=1,checkpoint_mb=0,checkpoint_interval=0";
  }
  void SetUp() override {
    MountTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    if (vol_->plain()) GTEST_SKIP() << "needs a DBFS mount";
  }

  uint64_t Stat(const char* name) {
    std::string err;
    auto s = DaemonStats(vol_->mountpoint(), &err);
    EXPECT_TRUE(err.empty()) << err;
    EXPECT_TRUE(s.count(name)) << "dbfs stats lacks " << name;
    return s[name];
  }

  // Files f0..f{n-1}, each overwritten `rounds` times with a new pattern
  // (dead data in old segments, live data spread over several).
  void Churn(int files, int rounds) {
    for (int r = 0; r < rounds; ++r) {
      for (int i = 0; i < files; ++i) {
        const uint64_t seed = static_cast<uint64_t>(r) * 1000 + static_cast<uint64_t>(i);
        const std::string data = Pattern(seed, kFileSize);
        ASSERT_TRUE(WriteFile(path("f" + std::to_string(i)), data));
        model_["f" + std::to_string(i)] = data;
      }
    }
  }
  void ExpectModel(const std::string& when) {
    int bad = 0;
    for (const auto& [name, data] : model_) {
      if (ReadFile(path(name)) != data && ++bad <= 5) ADD_FAILURE() << name << " " << when;
    }
    EXPECT_EQ(bad, 0) << "files differ " << when;
  }
  int RunCheckpointCli() {
    std::string out;
    const int rc =
        RunCommand({ToolPath("dbfs"), "checkpoint", "--mount", vol_->mountpoint()}, seconds(120),
                   &out);
    vol_->AppendLog("$ dbfs checkpoint -> " + std::to_string(rc) + "\n" + out);
    return rc;
  }

  std::map<std::string, std::string> model_;
};

// A daemon that crashes at each step of a checkpoint loses nothing: the
// crash point proves where it died, fsck -n of the crashed volume is clean
// (pending replay is a note), recovery keeps every file, and a checkpoint
// after it completes and frees space.
TEST_F(CheckpointMount, CrashAtEachStepOfACheckpoint) {
  ASSERT_FALSE(ToolPath("dbfs").empty()) << "dbfs not built";
  for (const char* point : {"checkpoint.relocate", "checkpoint.barrier", "checkpoint.remove"}) {
    SCOPED_TRACE(point);
    ASSERT_TRUE(vol_->Unmount());
    vol_->set_crash_point(point);
    ASSERT_TRUE(vol_->Mount());
    vol_->set_crash_point("");
    // Live data that stays in an old segment among the churn's garbage:
    // that segment is a victim whose live data the checkpoint relocates.
    const std::string keep = std::string("keep-") + point;
    model_[keep] = Pattern(std::hash<std::string>{}(keep), 300 << 10);
    ASSERT_TRUE(WriteFile(path(keep), model_[keep]));
    ASSERT_NO_FATAL_FAILURE(Churn(6, 4));
    EXPECT_NE(RunCheckpointCli(), 0) << "the checkpoint returned although the daemon crashed";
    ASSERT_TRUE(vol_->AwaitCrashPoint(point, seconds(60))) << vol_->Log();
    ASSERT_TRUE(vol_->FsckClean(std::string("after a crash at ") + point));
    ASSERT_TRUE(vol_->Mount());
    ExpectModel(std::string("after a crash at ") + point);
    const uint64_t removed_before = Stat("checkpoint_segments_removed");
    EXPECT_EQ(RunCheckpointCli(), 0);
    EXPECT_GT(Stat("checkpoint_segments_removed"), removed_before)
        << "the checkpoint after recovery freed nothing";
    ExpectModel(std::string("after the checkpoint that followed a crash at ") + point);
  }
}

// Background checkpoints with writers running: first triggered by WAL size
// (-o checkpoint_mb=2), then by time (-o checkpoint_interval=1). Four
// writers overwrite their files until the daemon counts enough checkpoints
// that removed segments (bounded by a number of writes); every file then
// holds its last write, also after a remount.
TEST_F(CheckpointMount, BackgroundCheckpointsWithWritersRunning) {
  for (const std::string trigger : {"checkpoint_mb=2,checkpoint_interval=0",
                                    "checkpoint_mb=0,checkpoint_interval=1"}) {
    SCOPED_TRACE(trigger);
    ASSERT_TRUE(vol_->Unmount());
    std::string err;
    // Remount with the trigger: a fresh MountedVolume is not needed, only options.
    auto v = MountedVolume::Create(MountedVolume::DefaultOptions() + ",wal_segment_mb=1," + trigger,
                                   &err);
    ASSERT_TRUE(v != nullptr) << err;
    vol_.swap(v);
    v.reset();  // the previous (unmounted) volume goes away
    model_.clear();
    const uint64_t cps_before = Stat("checkpoints");
    const uint64_t removed_before = Stat("checkpoint_segments_removed");
    constexpr int kWriters = 4;
    constexpr int kMaxWritesEach = 4000;
    std::atomic<bool> enough{false};
    std::vector<std::string> last(kWriters), errors(kWriters);
    std::vector<std::thread> writers;
    for (int t = 0; t < kWriters; ++t) {
      writers.emplace_back([&, t] {
        const std::string f = path("w" + std::to_string(t));
        for (int i = 0; i < kMaxWritesEach && !enough; ++i) {
          const std::string data = Pattern(static_cast<uint64_t>(t) << 32 | i, kFileSize);
          if (!WriteFile(f, data)) {
            errors[t] = "write " + f + ": " + strerror(errno);
            return;
          }
          last[t] = data;
        }
      });
    }
    // The condition, polled: enough checkpoints that removed segments.
    const bool reached = WaitFor(
        [&] {
          std::string e;
          auto s = DaemonStats(vol_->mountpoint(), &e);
          return s["checkpoints"] >= cps_before + 3 &&
                 s["checkpoint_segments_removed"] >= removed_before + 2;
        },
        seconds(120), milliseconds(50));
    enough = true;
    for (auto& w : writers) w.join();
    for (const auto& e : errors) EXPECT_TRUE(e.empty()) << e;
    EXPECT_TRUE(reached) << "checkpoints " << Stat("checkpoints") << ", segments removed "
                         << Stat("checkpoint_segments_removed");
    for (int t = 0; t < kWriters; ++t) model_["w" + std::to_string(t)] = last[t];
    ExpectModel("after the writers stopped");
    ASSERT_TRUE(vol_->Remount());
    ExpectModel("after a remount");
  }
}

}  // namespace
}  // namespace dbfs::testing
