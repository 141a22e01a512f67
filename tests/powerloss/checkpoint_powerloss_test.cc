// Power cuts in the middle of a checkpoint, at each of its steps (issue 17
// item 5; docs/powerloss.md "Checkpoints"): DBFS on plfs with a test crash
// point armed (kvstore/crash_point.h) — after a relocation commit, after the
// snapshot barrier, between segment removals. Every file is made durable
// (fsync) before `dbfs checkpoint`; the daemon dies at the step (its log line
// proves where), then the power is cut (drop, prefix or random: whatever
// the checkpoint wrote and did not sync is lost or torn). fsck -n of what
// survived is clean, the volume mounts, every file is intact, a checkpoint
// after the cut completes, and fsck -n -f is clean with no warning.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/powerloss/harness.h"

namespace dbfs::powerloss {
namespace {

using dbfs::testing::ReadFile;
using dbfs::testing::RunCommand;
using dbfs::testing::ToolPath;
using dbfs::testing::WaitFor;
using dbfs::testing::WriteFile;
using std::chrono::milliseconds;

std::string Content(uint64_t seed, size_t size) {
  std::string s(size, '\0');
  std::mt19937_64 rng(seed);
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

bool Fsync(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

TEST(PowerLossCheckpoint, CutAtEachStepOfACheckpoint) {
  for (const char* t : {"mkfs.dbfs", "dbfs-mount", "fsck.dbfs", "dbfs"}) {
    ASSERT_FALSE(ToolPath(t).empty()) << t << " not built";
  }
  const char* modes[] = {"drop", "prefix", "random"};
  const char* points[] = {"checkpoint.relocate", "checkpoint.barrier", "checkpoint.remove"};
  int run = 0;
  for (const char* point : points) {
    for (const char* mode : modes) {
      SCOPED_TRACE(std::string(point) + ", cut " + mode);
      char tmpl[] = "/tmp/dbfs-pl-checkpoint-XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      const std::string dir = tmpl, backing = dir + "/backing", pmnt = dir + "/plfs",
                        dmnt = dir + "/mnt", log = dir + "/log";
      for (const auto& d : {backing, pmnt, dmnt}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
      std::string err, out;
      auto plfs = Daemon::Start("plfs", {PlfsBinary(), backing, pmnt, "-f"}, pmnt, log, &err);
      ASSERT_TRUE(plfs) << err;
      const std::string vol = pmnt + "/vol";
      ASSERT_EQ(RunCommand({ToolPath("mkfs.dbfs"), "-q", vol}, milliseconds(60000), &out), 0)
          << out;
      const std::string opts = "wal_segment_mb=1,checkpoint_mb=0,checkpoint_interval=0";
      // The crash point, for this daemon only (the test is single-threaded here).
      ASSERT_EQ(setenv("DBFS_TEST_CRASH_POINT", point, 1), 0);
      auto dbfs =
          Daemon::Start("dbfs-mount", {ToolPath("dbfs-mount"), vol, dmnt, "-f", "-o", opts}, dmnt,
                        log, &err);
      unsetenv("DBFS_TEST_CRASH_POINT");
      ASSERT_TRUE(dbfs) << err << Tail(log, 4000);
      // Live data in an old segment among garbage, then churn; all durable.
      std::map<std::string, std::string> model;
      model["keep"] = Content(1000 + static_cast<uint64_t>(run), 300 << 10);
      ASSERT_TRUE(WriteFile(dmnt + "/keep", model["keep"]));
      for (int r = 0; r < 4; ++r) {
        for (int i = 0; i < 6; ++i) {
          const std::string name = "f" + std::to_string(i);
          model[name] = Content(static_cast<uint64_t>(run * 100 + r * 10 + i), 256 << 10);
          ASSERT_TRUE(WriteFile(dmnt + "/" + name, model[name]));
        }
      }
      for (const auto& [name, data] : model) ASSERT_TRUE(Fsync(dmnt + "/" + name)) << name;
      // The checkpoint: the daemon dies at the crash point.
      EXPECT_NE(RunCommand({ToolPath("dbfs"), "checkpoint", "-m", dmnt}, milliseconds(60000), &out),
                0)
          << "the checkpoint returned although the daemon should have crashed";
      int st = 0;
      ASSERT_TRUE(WaitFor([&] { return dbfs->Exited(&st); }, milliseconds(60000)))
          << "the daemon did not reach " << point;
      EXPECT_NE(Tail(log, 1 << 20).find(std::string("dbfs: crash point ") + point + " reached"),
                std::string::npos)
          << "the daemon died, but not at " << point << ":\n" << Tail(log, 4000);
      ASSERT_TRUE(dbfs->Kill(&st, &err)) << err;  // clears the dead mount
      dbfs.reset();
      // The power goes: what the checkpoint wrote and did not sync is lost.
      std::string reply;
      EXPECT_TRUE(PlfsCtl(pmnt, "cut " + std::to_string(run + 1) + " " + mode, &reply)) << reply;
      ASSERT_TRUE(plfs->Unmount(&err)) << err;
      plfs.reset();
      const std::string bvol = backing + "/vol";
      EXPECT_EQ(RunCommand({ToolPath("fsck.dbfs"), "-n", bvol}, milliseconds(120000), &out), 0)
          << out;
      dbfs = Daemon::Start("dbfs-mount", {ToolPath("dbfs-mount"), bvol, dmnt, "-f", "-o", opts},
                           dmnt, log, &err);
      ASSERT_TRUE(dbfs) << "no mount after the cut: " << err << Tail(log, 4000);
      for (const auto& [name, data] : model) {
        EXPECT_EQ(ReadFile(dmnt + "/" + name), data) << name << " changed by the cut";
      }
      EXPECT_EQ(RunCommand({ToolPath("dbfs"), "checkpoint", "-m", dmnt}, milliseconds(60000), &out),
                0)
          << out;
      for (const auto& [name, data] : model) {
        EXPECT_EQ(ReadFile(dmnt + "/" + name), data) << name << " after the next checkpoint";
      }
      ASSERT_TRUE(dbfs->Unmount(&err)) << err;
      dbfs.reset();
      EXPECT_EQ(RunCommand({ToolPath("fsck.dbfs"), "-n", "-f", bvol}, milliseconds(120000), &out),
                0)
          << out;
      EXPECT_EQ(out.find(": warning: "), std::string::npos) << out;
      if (!::testing::Test::HasFailure()) dbfs::testing::RemoveTree(dir);
      ++run;
    }
  }
}

}  // namespace
}  // namespace dbfs::powerloss
