// History across power cuts (issue 14, docs/powerloss.md "History"): a volume
// on plfs with a retention window and snapshots; the data under a snapshot
// is overwritten several times over and `dbfs checkpoint` runs (it must never
// free what a snapshot or the window needs); then the power is cut at a
// random moment of more overwrites. After the cut the volume mounts, every
// snapshot reads exactly what it held when it was created (a snapshot
// returned by `dbfs snapshot create` is durable), and fsck -n -f (which also
// checks that every version history keeps has its data) is clean.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>

#include "tests/integration/mount_fixture.h"
#include "tests/powerloss/harness.h"

namespace dbfs::powerloss {
namespace {

using dbfs::testing::ReadFile;
using dbfs::testing::RunCommand;
using dbfs::testing::ToolPath;
using dbfs::testing::WriteFile;
using std::chrono::milliseconds;

std::string Content(int version, size_t size) {
  std::string s(size, '\0');
  std::mt19937 rng(static_cast<unsigned>(version));
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

TEST(PowerLossHistory, SnapshotsAndTheWindowSurviveCutsAndCheckpoints) {
  for (const char* t : {"mkfs.dbfs", "dbfs-mount", "fsck.dbfs", "dbfs"}) {
    ASSERT_FALSE(ToolPath(t).empty()) << t << " not built";
  }
  const uint64_t seed = static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  std::cout << "seed " << seed << std::endl;
  std::mt19937_64 rng(seed);
  const char* modes[] = {"drop", "prefix", "random"};
  for (int cut = 0; cut < 3; ++cut) {
    SCOPED_TRACE("cut " + std::to_string(cut));
    char tmpl[] = "/tmp/dbfs-pl-history-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl, backing = dir + "/backing", pmnt = dir + "/plfs",
                      dmnt = dir + "/mnt", log = dir + "/log";
    for (const auto& d : {backing, pmnt, dmnt}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    std::string err, out;
    auto plfs = Daemon::Start("plfs", {PlfsBinary(), backing, pmnt, "-f"}, pmnt, log, &err);
    ASSERT_TRUE(plfs) << err;
    const std::string vol = pmnt + "/vol";
    ASSERT_EQ(RunCommand({ToolPath("mkfs.dbfs"), "-q", vol}, milliseconds(60000), &out), 0) << out;
    const std::vector<std::string> mount = {ToolPath("dbfs-mount"), vol, dmnt, "-f", "-o",
                                            "history=1h,wal_segment_mb=1,checkpoint_interval=0"};
    auto dbfs = Daemon::Start("dbfs-mount", mount, dmnt, log, &err);
    ASSERT_TRUE(dbfs) << err << Tail(log, 4000);
    const size_t size = 300000;
    // Three snapshots, each of a different content, with overwrites between.
    std::vector<std::string> held;
    int version = 0;
    for (int s = 0; s < 3; ++s) {
      ASSERT_TRUE(WriteFile(dmnt + "/f", Content(++version, size)));
      held.push_back(Content(version, size));
      ASSERT_EQ(RunCommand({ToolPath("dbfs"), "snapshot", "create", "s" + std::to_string(s), "-m",
                            dmnt},
                           milliseconds(60000), &out),
                0)
          << out;
      for (int i = 0; i < 4; ++i) ASSERT_TRUE(WriteFile(dmnt + "/f", Content(++version, size)));
    }
    ASSERT_EQ(RunCommand({ToolPath("dbfs"), "checkpoint", "-m", dmnt}, milliseconds(60000), &out),
              0)
        << out;
    // More overwrites and checkpoints while the power goes.
    std::thread writer([&] {
      std::string o;
      for (int i = 0; i < 30; ++i) {
        if (!WriteFile(dmnt + "/f", Content(100 + i, size))) break;
        if (i % 10 == 9) RunCommand({ToolPath("dbfs"), "checkpoint", "-m", dmnt}, milliseconds(60000), &o);
      }
    });
    std::this_thread::sleep_for(milliseconds(static_cast<long>(rng() % 400)));  // when the power goes
    std::string reply;
    const std::string mode = modes[(seed + cut) % 3];
    EXPECT_TRUE(PlfsCtl(pmnt, "cut " + std::to_string(rng()) + " " + mode, &reply)) << reply;
    int st = 0;
    ASSERT_TRUE(dbfs->Kill(&st, &err)) << err;
    writer.join();
    dbfs.reset();
    ASSERT_TRUE(plfs->Unmount(&err)) << err;
    plfs.reset();
    // What survived, before recovery: fsck (history checks included) is clean.
    const std::string bvol = backing + "/vol";
    EXPECT_EQ(RunCommand({ToolPath("fsck.dbfs"), "-n", bvol}, milliseconds(120000), &out), 0)
        << mode << ": " << out;
    // Power back: the volume mounts and every snapshot reads what it held.
    const std::vector<std::string> remount = {ToolPath("dbfs-mount"), bvol, dmnt, "-f", "-o",
                                              "history=1h,wal_segment_mb=1,checkpoint_interval=0"};
    dbfs = Daemon::Start("dbfs-mount", remount, dmnt, log, &err);
    ASSERT_TRUE(dbfs) << "no mount after the cut (" << mode << "): " << err << Tail(log, 4000);
    for (int s = 0; s < 3; ++s) {
      EXPECT_EQ(ReadFile(dmnt + "/.dbfs/snapshots/s" + std::to_string(s) + "/f"), held[s])
          << "snapshot s" << s << " changed by the cut (" << mode << ")";
    }
    EXPECT_EQ(RunCommand({ToolPath("dbfs"), "checkpoint", "-m", dmnt}, milliseconds(60000), &out), 0)
        << out;
    for (int s = 0; s < 3; ++s) {
      EXPECT_EQ(ReadFile(dmnt + "/.dbfs/snapshots/s" + std::to_string(s) + "/f"), held[s])
          << "a checkpoint after the cut freed snapshot s" << s << "'s data";
    }
    ASSERT_TRUE(dbfs->Unmount(&err)) << err;
    dbfs.reset();
    EXPECT_EQ(RunCommand({ToolPath("fsck.dbfs"), "-n", "-f", bvol}, milliseconds(120000), &out), 0)
        << out;
    if (!::testing::Test::HasFailure()) dbfs::testing::RemoveTree(dir);
  }
}

}  // namespace
}  // namespace dbfs::powerloss
