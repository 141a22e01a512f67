// Power-cut test (docs/powerloss.md): DBFS runs on plfs, a workload journals
// every operation outside the mounts, plfs simulates a power cut at a random
// moment, and after recovery an oracle checks that every acknowledged-durable
// operation survived and that the tree is the state after a prefix of the
// operations (tests/powerloss/workload.h).
//
// One cut: fresh backing dir; plfs on it; mkfs.dbfs inside the plfs mount;
// dbfs-mount -f on that; the workload in a child; `cut SEED MODE` after a
// random delay; the workload sees EIO and stops; SIGKILL the daemon and clear
// its mount; unmount plfs. The backing dir now holds exactly what survived:
// fsck.dbfs -n on it, mount DBFS directly on it, observe, judge, unmount
// cleanly, fsck.dbfs -n again. Some cuts add a second cut: DBFS is mounted
// on plfs again over the survivors and power is cut during or right after
// its recovery; what recovery showed must survive that cut unchanged.
//
// Everything a cut does follows from its seed (workload, delay, mode,
// sync mount, which bytes survive); only thread timing varies between runs.
//
// Environment: POWERLOSS_CUTS (cuts per mode in ctest, default 35),
// POWERLOSS_SEED (first seed; default from the clock), POWERLOSS_MAX_DELAY_MS
// (default 1000), POWERLOSS_KEEP=1 (keep every cut's directory),
// POWERLOSS_AVOID_KNOWN_BUGS=1 (a workload that steers clear of the DBFS bugs
// pinned by the PowerLossRegression tests, to look for others),
// DBFS_BIN_DIR (mkfs.dbfs, dbfs-mount, fsck.dbfs), PLFS_BIN.
//
// powerloss_test --bench N [--seed S] [--mode all|drop|prefix|random] [--repeat]
// runs N cuts (seeds S, S+1, ...; all seed S with --repeat) and prints
// "N cuts, 0 violations" or the first violation with its reproducer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/powerloss/harness.h"
#include "tests/powerloss/workload.h"

namespace dbfs::powerloss {
namespace {

using dbfs::testing::RemoveTree;
using dbfs::testing::RunCommand;
using dbfs::testing::ToolPath;
using dbfs::testing::WaitPid;
using std::chrono::milliseconds;

long EnvLong(const char* name, long def) {
  const char* v = getenv(name);
  return (v && *v) ? strtol(v, nullptr, 10) : def;
}

int64_t MonotonicNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

uint64_t ClockSeed() {
  return static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) %
         1000000000ULL;
}

// ---- one cut ----

struct CutConfig {
  uint64_t seed = 0;
  std::string mode;  // drop prefix random
  bool sync_mount = false;
  long delay_ms = 0;
  uint64_t workload_seed = 0;
  // 0: none; 1: second cut while DBFS recovers on plfs; 2: right after.
  int second_cut = 0;
  long second_delay_ms = 0;

  std::string Summary() const {
    std::ostringstream o;
    o << "seed " << seed << " mode " << mode << (sync_mount ? " -o sync" : "") << " delay "
      << delay_ms << "ms";
    if (second_cut) {
      o << " +second cut " << (second_cut == 1 ? "during" : "after") << " recovery at "
        << second_delay_ms << "ms";
    }
    return o.str();
  }
};

CutConfig ConfigFor(uint64_t seed, const std::string& mode) {
  static const char* kModes[] = {"drop", "prefix", "random"};
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL);
  CutConfig c;
  c.seed = seed;
  c.mode = mode == "all" ? kModes[seed % 3] : mode;
  c.workload_seed = rng();
  c.sync_mount = rng() % 6 == 0;
  const long max_delay = std::max(60L, EnvLong("POWERLOSS_MAX_DELAY_MS", 1000));
  // Mostly short runs (many cuts), some long ones (bigger histories, the
  // flusher and LMDB commits in progress).
  c.delay_ms = rng() % 10 < 4 ? 20 + static_cast<long>(rng() % 280)
                              : std::min(max_delay, 300 + static_cast<long>(rng() % 700));
  c.delay_ms = std::min(c.delay_ms, max_delay);
  uint64_t r = rng() % 8;
  c.second_cut = r == 0 ? 1 : r == 1 ? 2 : 0;
  c.second_delay_ms =
      c.second_cut == 1 ? static_cast<long>(rng() % 60) : static_cast<long>(rng() % 400);
  return c;
}

struct CutResult {
  enum Kind { kOk, kViolation, kHarnessError } kind = kOk;
  std::string report;  // what went wrong, with logs
  std::string line;    // one-line summary
  std::string dir;     // kept on failure
};

class Cut {
 public:
  Cut(CutConfig c, std::string dir) : c_(std::move(c)), dir_(std::move(dir)) {
    backing_ = dir_ + "/backing";
    pmnt_ = dir_ + "/plfs";
    dmnt_ = dir_ + "/dbfs";
    journal_ = dir_ + "/journal";
    plog_ = dir_ + "/plfs.log";
    dlog_ = dir_ + "/dbfs.log";
    tlog_ = dir_ + "/tools.log";
    vol_ = backing_ + "/vol";
  }

  CutResult Run() {
    CutResult r;
    RunSteps();
    // Stop whatever is still running (error paths), by pid.
    StopWorkload();
    std::string err;
    if (dbfs_) {
      int st;
      (void)dbfs_->Kill(&st, &err);
      dbfs_.reset();
    }
    if (plfs_) {
      (void)plfs_->Unmount(&err);
      plfs_.reset();
    }
    if (!err.empty() && harness_.empty() && violation_.empty()) harness_ = "cleanup: " + err;
    r.dir = dir_;
    std::ostringstream line;
    line << c_.Summary() << ": " << begun_ << " ops begun, " << completed_ << " returned, "
         << required_ << " required durable, survived prefix " << matched_;
    if (!notes_.empty()) line << " [" << notes_ << "]";
    r.line = line.str();
    if (!violation_.empty() || !harness_.empty()) {
      r.kind = violation_.empty() ? CutResult::kHarnessError : CutResult::kViolation;
      std::ostringstream o;
      o << (violation_.empty() ? "HARNESS ERROR" : "VIOLATION") << " (" << c_.Summary() << ")\n"
        << violation_ << harness_ << "plfs cut: " << cut_reply_ << "\n"
        << "workload seed " << c_.workload_seed << " (powerloss_test --workload DIR JOURNAL SEED)\n"
        << "---- plfs.log (tail) ----\n"
        << Tail(plog_, 3000) << "\n---- dbfs.log (tail) ----\n"
        << Tail(dlog_, 6000) << "\n---- tools.log (tail) ----\n"
        << Tail(tlog_, 3000) << "\n";
      r.report = o.str();
    }
    return r;
  }

 private:
  void Violation(const std::string& what) { violation_ += what + "\n"; }
  void Harness(const std::string& what) { harness_ += what + "\n"; }
  void Note(const std::string& what) { notes_ += (notes_.empty() ? "" : "; ") + what; }

  bool Tool(const std::vector<std::string>& argv, std::string* out) {
    int rc = RunCommand(argv, milliseconds(120000), out);
    std::string line = "$";
    for (const auto& a : argv) line += " " + a;
    AppendFile(tlog_, line + " -> " + std::to_string(rc) + "\n" + *out);
    return rc == 0;
  }

  bool StartPlfs() {
    std::string err;
    plfs_ = Daemon::Start("plfs", {PlfsBinary(), backing_, pmnt_, "-f"}, pmnt_, plog_, &err);
    if (!plfs_) Harness("starting plfs: " + err);
    return plfs_ != nullptr;
  }

  bool StartDbfs(const std::string& vol, bool sync, bool violation_if_fails) {
    std::vector<std::string> argv = {ToolPath("dbfs-mount"), vol, dmnt_, "-f"};
    if (sync) {
      argv.push_back("-o");
      argv.push_back("sync");
    }
    std::string err;
    dbfs_ = Daemon::Start("dbfs-mount", argv, dmnt_, dlog_, &err);
    if (!dbfs_) {
      if (violation_if_fails) {
        Violation("DBFS does not mount after the power cut: " + err);
      } else {
        Harness("starting dbfs-mount: " + err);
      }
    }
    return dbfs_ != nullptr;
  }

  // Sends the cut; returns false (harness error) if plfs did not do it.
  bool PowerCut(uint64_t seed, const std::string& mode) {
    std::string reply;
    bool ok = PlfsCtl(pmnt_, "cut " + std::to_string(seed) + " " + mode, &reply);
    cut_reply_ += reply;
    if (!ok) Harness("plfs cut failed: " + reply);
    return ok;
  }

  // After a cut: the daemon is killed and its mount cleared, then plfs is
  // unmounted (it must exit cleanly).
  bool KillDbfsAndUnmountPlfs() {
    std::string err;
    if (dbfs_) {
      int st = 0;
      bool exited_before = dbfs_->Exited(&st);
      if (!dbfs_->Kill(&st, &err)) Harness(err);
      if (exited_before) Note("dbfs-mount died by itself: " + StatusString(st));
      dbfs_.reset();
    }
    if (plfs_) {
      if (!plfs_->Unmount(&err)) Harness("plfs unmount: " + err);
      plfs_.reset();
    }
    return harness_.empty();
  }

  void StopWorkload() {
    if (wpid_ <= 0) return;
    kill(wpid_, SIGKILL);
    if (!WaitPid(wpid_, milliseconds(30000), &wstatus_)) Harness("workload did not die");
    wpid_ = -1;
  }

  bool Fsck(const std::string& when) {
    std::string out;
    if (!Tool({ToolPath("fsck.dbfs"), "-n", vol_}, &out)) {
      Violation("fsck.dbfs -n " + when + " is not clean:\n" + out);
      return false;
    }
    return true;
  }

  void RunSteps() {
    if (mkdir(backing_.c_str(), 0755) != 0 || mkdir(pmnt_.c_str(), 0755) != 0 ||
        mkdir(dmnt_.c_str(), 0755) != 0) {
      Harness(std::string("mkdir: ") + strerror(errno));
      return;
    }
    if (!StartPlfs()) return;
    std::string out;
    if (!Tool({ToolPath("mkfs.dbfs"), "-q", pmnt_ + "/vol"}, &out)) {
      Harness("mkfs.dbfs on plfs failed:\n" + out);
      return;
    }
    if (!StartDbfs(pmnt_ + "/vol", c_.sync_mount, false)) return;

    // The workload, until the cut.
    wpid_ = fork();
    if (wpid_ < 0) {
      Harness("fork failed");
      return;
    }
    if (wpid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      RunWorkload(dmnt_ + "/w", journal_, c_.workload_seed);
    }
    // The delay is the randomized moment of the cut, not a wait for anything.
    bool early = WaitPid(wpid_, milliseconds(c_.delay_ms), &wstatus_);
    if (early) wpid_ = -1;
    const int64_t cut_ns = MonotonicNs();
    if (!PowerCut(c_.seed, c_.mode)) return;
    // Every DBFS write and sync now fails; the workload stops at its first
    // failed operation.
    if (!early) {
      if (WaitPid(wpid_, milliseconds(10000), &wstatus_)) {
        wpid_ = -1;
      } else {
        Note("workload still running 10 s after the cut (killed)");
        StopWorkload();
      }
    }
    if (!WIFEXITED(wstatus_) && !(WIFSIGNALED(wstatus_) && WTERMSIG(wstatus_) == SIGKILL)) {
      Harness("workload ended with " + StatusString(wstatus_));
    } else if (WIFEXITED(wstatus_) && WEXITSTATUS(wstatus_) != 0) {
      Harness("workload ended with " + StatusString(wstatus_) + " (journal I/O failed?)");
    }
    if (!KillDbfsAndUnmountPlfs()) return;

    std::string jerr;
    ops_ = ParseJournal(journal_, &jerr);
    if (!jerr.empty()) Harness("journal: " + jerr);
    begun_ = static_cast<int>(ops_.size());
    for (const Op& o : ops_) completed_ += o.ended;
    if (!ops_.empty() && ops_.back().failed_errno) {
      const Op& f = ops_.back();
      if (f.failed_at_ns < cut_ns) {
        Violation("operation failed before the power cut: " + Describe(f));
      } else if (f.failed_errno != EIO) {
        Note(std::string("failed with ") + strerrorname_np(f.failed_errno) + " after the cut");
      }
    }
    if (early && (ops_.empty() || !ops_.back().failed_errno)) {
      Harness("workload exited before the cut: " + StatusString(wstatus_));
    }
    if (!harness_.empty()) return;

    // The backing dir holds what survived.
    if (!Fsck("after the power cut")) return;

    bool have_s1 = false;
    State s1;
    if (c_.second_cut) {
      if (!SecondCut(&have_s1, &s1)) return;
      if (!Fsck("after the second power cut")) return;
    }

    if (!StartDbfs(vol_, false, true)) return;
    std::string oerr;
    State seen = Observe(dmnt_ + "/w", &oerr);
    if (!oerr.empty()) Violation("reading the recovered tree:\n" + oerr);
    Verdict v = Judge(seen, ops_, c_.sync_mount);
    required_ = v.required;
    matched_ = v.matched;
    if (!v.ok) Violation(v.message);
    if (have_s1 && !(seen == s1)) {
      Violation(
          "the second power cut changed what recovery had shown (a recovery that is not "
          "durable):\n" +
          Diff(s1, seen));
    }
    std::string err;
    if (!dbfs_->Unmount(&err)) Violation("DBFS did not unmount cleanly after recovery: " + err);
    dbfs_.reset();
    Fsck("after recovery and a clean unmount");
  }

  // DBFS recovers on plfs over the survivors, and power is cut again during
  // the recovery mount (1) or after it (2). With (2) the recovered tree is
  // observed first and returned in *s1.
  bool SecondCut(bool* have_s1, State* s1) {
    if (!StartPlfs()) return false;
    if (c_.second_cut == 1) {
      // Do not wait for the mount: the cut may land in the middle of recovery.
      std::vector<std::string> argv = {ToolPath("dbfs-mount"), pmnt_ + "/vol", dmnt_, "-f"};
      std::string err;
      dbfs_ = Daemon::StartNoWait("dbfs-mount", argv, dmnt_, dlog_, &err);
      if (!dbfs_) {
        Harness("starting dbfs-mount: " + err);
        return false;
      }
      struct timespec ts = {c_.second_delay_ms / 1000, (c_.second_delay_ms % 1000) * 1000000};
      nanosleep(&ts, nullptr);  // the randomized moment of the second cut
    } else {
      if (!StartDbfs(pmnt_ + "/vol", false, true)) return false;
      std::string oerr;
      *s1 = Observe(dmnt_ + "/w", &oerr);
      if (!oerr.empty()) Violation("reading the tree recovered on plfs:\n" + oerr);
      Verdict v = Judge(*s1, ops_, c_.sync_mount);
      if (!v.ok) Violation("recovery on plfs: " + v.message);
      *have_s1 = true;
      struct timespec ts = {c_.second_delay_ms / 1000, (c_.second_delay_ms % 1000) * 1000000};
      nanosleep(&ts, nullptr);  // the randomized moment of the second cut
    }
    if (!PowerCut(c_.seed + 1, c_.mode)) return false;
    return KillDbfsAndUnmountPlfs() && violation_.empty();
  }

  CutConfig c_;
  std::string dir_, backing_, pmnt_, dmnt_, journal_, plog_, dlog_, tlog_, vol_;
  std::unique_ptr<Daemon> plfs_, dbfs_;
  pid_t wpid_ = -1;
  int wstatus_ = 0;
  std::vector<Op> ops_;
  int begun_ = 0, completed_ = 0, required_ = 0, matched_ = -1;
  std::string violation_, harness_, notes_, cut_reply_;
};

std::string MakeCutDir() {
  // /dev/shm: plfs never syncs its backing dir, and the journal's fdatasync
  // is cheap there; everything is outside both mounts.
  for (const char* base : {"/dev/shm", "/tmp"}) {
    std::string t = std::string(base) + "/dbfs-pl-XXXXXX";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data())) return buf.data();
  }
  return "";
}

CutResult RunOneCut(const CutConfig& c) {
  std::string dir = MakeCutDir();
  if (dir.empty()) {
    CutResult r;
    r.kind = CutResult::kHarnessError;
    r.report = "mkdtemp failed";
    return r;
  }
  CutResult r = Cut(c, dir).Run();
  bool keep = r.kind != CutResult::kOk || EnvLong("POWERLOSS_KEEP", 0) == 1;
  if (keep) {
    r.report += "kept " + dir + "\n";
  } else {
    RemoveTree(dir);
  }
  return r;
}

std::string Reproducer(const CutConfig& c) {
  return "reproduce: bench/powerloss.sh 1 --seed " + std::to_string(c.seed) + " --mode " + c.mode +
         "   (the cut moment depends on timing too: add --repeat and a count, e.g. "
         "bench/powerloss.sh 20 --seed " +
         std::to_string(c.seed) + " --mode " + c.mode + " --repeat)";
}

std::string MissingTools() {
  std::string missing;
  for (const char* t : {"mkfs.dbfs", "dbfs-mount", "fsck.dbfs"}) {
    if (ToolPath(t).empty()) missing += std::string(" ") + t;
  }
  if (access(PlfsBinary().c_str(), X_OK) != 0) missing += " plfs(" + PlfsBinary() + ")";
  return missing;
}

// Runs `cuts` cuts; returns the number of violations (it stops at the first
// violation or harness error) and prints a line per cut.
struct RunSummary {
  int cuts = 0, violations = 0, harness_errors = 0;
  std::string first_failure;
};

RunSummary RunCuts(int cuts, uint64_t seed, const std::string& mode, bool repeat) {
  RunSummary s;
  for (int i = 0; i < cuts; ++i) {
    CutConfig c = ConfigFor(repeat ? seed : seed + static_cast<uint64_t>(i), mode);
    auto t0 = std::chrono::steady_clock::now();
    CutResult r = RunOneCut(c);
    long ms = static_cast<long>(
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count());
    ++s.cuts;
    std::cout << "cut " << i + 1 << "/" << cuts << " " << r.line << " (" << ms << " ms)"
              << std::endl;
    if (r.kind != CutResult::kOk) {
      if (r.kind == CutResult::kViolation) {
        ++s.violations;
      } else {
        ++s.harness_errors;
      }
      s.first_failure = r.report + Reproducer(c) + "\n";
      break;
    }
  }
  return s;
}

// ---- ctest: the three modes, a third of the cuts each ----

class PowerLoss : public ::testing::TestWithParam<std::string> {};

TEST_P(PowerLoss, CutsKeepAcknowledgedOpsAndAPrefix) {
  std::string missing = MissingTools();
  ASSERT_TRUE(missing.empty()) << "not built:" << missing
                               << " (DBFS_BIN_DIR=" << dbfs::testing::BinDir() << ")";
  umask(022);
  const int cuts = static_cast<int>(EnvLong("POWERLOSS_CUTS", 35));
  const std::string mode = GetParam();
  const uint64_t seed =
      static_cast<uint64_t>(EnvLong("POWERLOSS_SEED", static_cast<long>(ClockSeed()))) +
      (mode == "drop"     ? 0
       : mode == "prefix" ? 1000000
                          : 2000000);
  std::cout << "power-loss test, mode " << mode << ": " << cuts << " cuts from seed " << seed
            << std::endl;
  RunSummary s = RunCuts(cuts, seed, mode, false);
  EXPECT_EQ(0, s.violations + s.harness_errors) << s.first_failure;
  std::cout << s.cuts << " cuts, " << s.violations << " violations" << std::endl;
}

INSTANTIATE_TEST_SUITE_P(Modes, PowerLoss, ::testing::Values("drop", "prefix", "random"),
                         [](const auto& info) { return info.param; });

// The oracle itself must catch lost durable operations, torn writes, torn
// renames and stray entries.
TEST(PowerLossOracle, CatchesViolations) {
  auto op = [](std::string kind, std::string a, std::string b = "", uint64_t off = 0,
               uint64_t len = 0, uint64_t gen = 0, bool ended = true) {
    Op o;
    o.kind = kind;
    o.a = a;
    o.b = b;
    o.off = off;
    o.len = len;
    o.gen = gen;
    o.ended = ended;
    return o;
  };
  std::vector<Op> ops = {
      op("MKDIR", "."),                          // 0
      op("CREATE", "s0"),                        // 1
      op("WRITE", "s0", "", 0, 1000, 1),         // 2
      op("FSYNC", "s0"),                         // 3: ops 0-2 durable
      op("CREATE", "t2"),                        // 4
      op("WRITE", "t2", "", 0, 600, 2),          // 5
      op("RENAME", "t2", "r0"),                  // 6
      op("WRITE", "s0", "", 500, 1000, 3),       // 7: overwrite + extend
      op("TRUNC", "s0", "", 700),                // 8
      op("WRITE", "s0", "", 100, 50, 4, false),  // 9: in flight
  };
  for (size_t i = 0; i < ops.size(); ++i) ops[i].index = static_cast<int>(i);
  std::vector<State> st(ops.size() + 1);
  for (size_t k = 1; k <= ops.size(); ++k) {
    st[k] = st[k - 1];
    Apply(&st[k], ops[k - 1], nullptr);
  }
  EXPECT_EQ(Pattern(1, 0, 500) + Pattern(3, 500, 200), st[9]["s0"].data);
  for (size_t k = 0; k <= ops.size(); ++k) {
    EXPECT_EQ(k >= 3, Judge(st[k], ops, false).ok) << "prefix " << k;
    EXPECT_EQ(k >= 9, Judge(st[k], ops, true).ok) << "-o sync, prefix " << k;
  }
  // A torn write: half of write 3 reached the file.
  State torn = st[8];
  torn["s0"].data =
      Pattern(1, 0, 500) + Pattern(3, 500, 400) + Pattern(1, 900, 100) + std::string(500, '\0');
  torn["s0"].data.resize(1500);
  Verdict v = Judge(torn, ops, false);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(std::string::npos, v.message.find("NOT PREFIX-CONSISTENT")) << v.message;
  // A write applied only below the first page boundary is diagnosed as split.
  std::vector<Op> ops4(ops.begin(), ops.begin() + 8);
  ops4[7] = op("WRITE", "s0", "", 3000, 5000, 9);
  ops4[7].index = 7;
  State split = st[7];
  Op part = ops4[7];
  part.len = 4096 - 3000;
  Apply(&split, part, nullptr);
  v = Judge(split, ops4, false);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(std::string::npos, v.message.find("DIAGNOSIS")) << v.message;
  // A torn rename: the file under both names, or under neither, while a
  // later write (op 7) survived.
  State both = st[8];
  both["t2"] = both["r0"];
  EXPECT_FALSE(Judge(both, ops, false).ok);
  State neither = st[8];
  neither.erase("r0");
  EXPECT_FALSE(Judge(neither, ops, false).ok);
  // An earlier op (the rename) missing while a later one (write 3) survived.
  State undone = st[8];
  undone["t2"] = undone["r0"];
  undone.erase("r0");
  EXPECT_FALSE(Judge(undone, ops, false).ok);
  // A stray entry.
  State stray = st[10];
  stray["zzz"] = Node{};
  EXPECT_FALSE(Judge(stray, ops, false).ok);
  // Lost fsync'ed data.
  State lost = st[2];
  v = Judge(lost, ops, false);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(std::string::npos, v.message.find("LOST DURABLE")) << v.message;
  // An O_DSYNC write is durable by itself.
  std::vector<Op> ops2(ops.begin(), ops.begin() + 8);
  ops2[7].dsync = true;
  EXPECT_FALSE(Judge(st[7], ops2, false).ok);
  EXPECT_TRUE(Judge(st[8], ops2, false).ok);
  // A directory fsync makes everything before it durable (DBFS syncs its log).
  std::vector<Op> ops3(ops.begin(), ops.begin() + 7);
  ops3.push_back(op("FSYNCDIR", "."));
  ops3.back().index = 7;
  EXPECT_FALSE(Judge(st[6], ops3, false).ok);
  EXPECT_TRUE(Judge(st[7], ops3, false).ok);
  // Transactions: their operations appear together at the commit; an fsync
  // inside makes the commit durable; an abort leaves no trace.
  std::vector<Op> tx = {
      op("MKDIR", "."),                       // 0
      op("CREATE", "a"),                      // 1
      op("TXBEGIN", ""),                      // 2
      op("CREATE", "b"),                      // 3
      op("WRITE", "b", "", 0, 100, 5),        // 4
      op("FSYNC", "b"),                       // 5: marks the commit durable, syncs nothing
      op("RENAME", "a", "c"),                 // 6
      op("TXCOMMIT", ""),                     // 7: durable: prefix >= 8
      op("TXBEGIN", ""),                      // 8
      op("CREATE", "d"),                      // 9
      op("TXABORT", ""),                      // 10
      op("CREATE", "e", "", 0, 0, 0, false),  // 11: in flight
  };
  for (size_t i = 0; i < tx.size(); ++i) tx[i].index = static_cast<int>(i);
  State before = StateAfter(tx, 2), after = StateAfter(tx, 8);
  EXPECT_EQ(before, StateAfter(tx, 7));  // nothing of the transaction before its commit
  EXPECT_TRUE(after.count("b") && after.count("c") && !after.count("a"));
  EXPECT_EQ(after, StateAfter(tx, 11));       // the aborted transaction left nothing
  EXPECT_FALSE(Judge(before, tx, false).ok);  // the durable commit is lost
  EXPECT_TRUE(Judge(after, tx, false).ok);
  EXPECT_TRUE(Judge(StateAfter(tx, 12), tx, false).ok);
  State half = before;  // b created but the rename missing: a torn commit
  half["b"] = after["b"];
  EXPECT_FALSE(Judge(half, tx, false).ok);
  State aborted = after;
  aborted["d"] = Node{};
  EXPECT_FALSE(Judge(aborted, tx, false).ok);
  tx[5].kind = "CREATE";  // without the fsync the commit is not durable
  tx[5].a = "x";
  EXPECT_TRUE(Judge(StateAfter(tx, 2), tx, false).ok);
  // A directory rename moves the subtree.
  State d;
  Op mk = op("MKDIR", "d0"), mk2 = op("MKDIR", "d0/d1"), cr = op("CREATE", "d0/d1/f"),
     mv = op("RENAME", "d0", "d2");
  for (const Op* o : {&mk, &mk2, &cr, &mv}) Apply(&d, *o, nullptr);
  EXPECT_EQ(3u, d.size());
  EXPECT_TRUE(d.count("d2/d1/f"));
  // Patterns mark position and generation.
  EXPECT_EQ("gen=000000000042 off=0000000000\n", Pattern(42, 0, 32));
  EXPECT_EQ(Pattern(7, 0, 100).substr(33, 40), Pattern(7, 33, 40));
  EXPECT_NE(std::string::npos, DescribeContent(torn["s0"].data).find("gen 3"));
}

// powerloss_test --judge VOLUME JOURNAL [--sync] [--prefix K]: mounts VOLUME
// (a kept cut's backing/vol; mount a copy, recovery writes to it), judges
// what it holds against JOURNAL, and with --prefix K prints the model's
// state after K operations next to what was found.
// ---- regression tests for what the power cuts found ----

// Commits so far, from `dbfs stats --mount MNT`; -1 if unavailable.
long Commits(const std::string& mnt) {
  std::string out;
  if (RunCommand({ToolPath("dbfs"), "stats", "--mount", mnt}, milliseconds(30000), &out) != 0)
    return -1;
  auto p = out.find("commits ");
  return p == std::string::npos ? -1 : strtol(out.c_str() + p + 8, nullptr, 10);
}

// A DBFS volume mounted (not on plfs) for a regression test; unmounted and
// removed at the end of the scope.
class PlainMount {
 public:
  bool Start(std::string* err) {
    dir_ = MakeCutDir();
    if (dir_.empty()) return false;
    mnt_ = dir_ + "/mnt";
    std::string vol = dir_ + "/vol", out;
    if (mkdir(mnt_.c_str(), 0755) != 0 ||
        RunCommand({ToolPath("mkfs.dbfs"), "-q", vol}, milliseconds(60000), &out) != 0) {
      *err = "mkfs: " + out;
      return false;
    }
    d_ = Daemon::Start("dbfs-mount", {ToolPath("dbfs-mount"), vol, mnt_, "-f"}, mnt_,
                       dir_ + "/dbfs.log", err);
    return d_ != nullptr;
  }
  ~PlainMount() {
    std::string err;
    if (d_ && !d_->Unmount(&err)) ADD_FAILURE() << err;
    d_.reset();
    if (!dir_.empty()) RemoveTree(dir_);
  }
  std::string path(const std::string& rel) const { return mnt_ + "/" + rel; }
  const std::string& mountpoint() const { return mnt_; }
  // A control request (docs/ARCHITECTURE.md §8); "error: ..." on failure.
  std::string Control(const std::string& cmd) const {
    std::string reply(65536, '\0');
    ssize_t n = getxattr(mnt_.c_str(), cmd.c_str(), reply.data(), reply.size());
    if (n < 0) return "error: " + std::string(strerror(errno));
    reply.resize(static_cast<size_t>(n));
    return reply;
  }
  bool HasTransactions() const { return Control("dbfs.tx.status").rfind("error", 0) != 0; }

 private:
  std::string dir_, mnt_;
  std::unique_ptr<Daemon> d_;
};

// Power cuts left files holding the first part of one write(2) (up to a
// 4 KiB page boundary) without the rest: through the page cache, the kernel
// sends a write that starts inside a page not in the cache as two FUSE WRITE
// requests (the first ends at the page boundary), and DBFS commits each
// request as its own transaction. Descriptors that can write now use direct
// I/O, which sends the write whole (docs/ARCHITECTURE.md §7).
TEST(PowerLossRegression, UnalignedWriteIsOneTransaction) {
  ASSERT_FALSE(ToolPath("dbfs").empty()) << "dbfs not built";
  ASSERT_EQ(MissingTools(), "") << "DBFS tools not built";
  PlainMount m;
  std::string err;
  ASSERT_TRUE(m.Start(&err)) << err;
  // Write-only descriptors, and read-write descriptors of a file empty at
  // open (O_TRUNC here); the latter need the kernel's
  // FUSE_DIRECT_IO_ALLOW_MMAP, which the daemon negotiates. Read-write
  // descriptors of non-empty files keep the page cache (ARCHITECTURE.md §7).
  for (int mode : {O_WRONLY, O_RDWR | O_TRUNC}) {
    SCOPED_TRACE(mode == O_WRONLY ? "O_WRONLY" : "O_RDWR|O_TRUNC");
    const std::string f = m.path(mode == O_WRONLY ? "w" : "rw");
    ASSERT_TRUE(dbfs::testing::WriteFile(f, std::string(37382, 'a')));
    // A reader caches the file's pages, then drops them: the write below
    // starts inside a page that is not cached.
    int rfd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(rfd, 0);
    char buf[4096];
    ASSERT_EQ(static_cast<ssize_t>(sizeof buf), pread(rfd, buf, sizeof buf, 0));
    ASSERT_EQ(0, posix_fadvise(rfd, 0, 0, POSIX_FADV_DONTNEED));
    int fd = open(f.c_str(), mode | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    long before = Commits(m.mountpoint());
    std::string data(30638, 'b');
    EXPECT_EQ(static_cast<ssize_t>(data.size()), pwrite(fd, data.data(), data.size(), 31968));
    long after = Commits(m.mountpoint());
    close(fd);
    EXPECT_GE(before, 0);
    EXPECT_EQ(1, after - before) << "one pwrite of 30638 bytes at offset 31968 became "
                                 << after - before << " transactions: a crash between them "
                                 << "leaves half of the write(2)";
    // The reader's descriptor sees the write (direct writes drop cached pages).
    std::string got(data.size(), '\0');
    ASSERT_EQ(static_cast<ssize_t>(got.size()), pread(rfd, got.data(), got.size(), 31968));
    EXPECT_EQ(data, got);
    close(rfd);
  }
}

// Aborting a transaction that renamed something leaves the kernel's dentry
// cache as the rename made it: DBFS invalidates the inodes the transaction
// touched but not the entries. A renamed file stays visible under its new
// name after the abort (stat finds it, readdir does not), and a renamed
// directory, now back at its old name in DBFS, cannot be renamed from there:
// the kernel finds the directory's inode already attached to the aborted
// name and, inside rename's locks, gives up with ESTALE.
TEST(PowerLossRegression, AbortedRenameLeavesNoStaleEntries) {
  ASSERT_EQ(MissingTools(), "") << "DBFS tools not built";
  PlainMount m;
  std::string err;
  ASSERT_TRUE(m.Start(&err)) << err;
  // A DBFS mount has transactions: a regression test for them must not pass
  // by not running.
  ASSERT_TRUE(m.HasTransactions()) << "the transaction control xattrs do not answer";
  ASSERT_TRUE(dbfs::testing::WriteFile(m.path("f"), "x"));
  struct stat st;
  ASSERT_EQ(0, stat(m.path("f").c_str(), &st));  // cached by the kernel
  ASSERT_EQ(0, mkdir(m.path("a").c_str(), 0755));
  ASSERT_EQ(0, mkdir(m.path("a/c").c_str(), 0755));
  std::string id = m.Control("dbfs.tx.begin:" + std::to_string(getpid()) + ":serializable");
  ASSERT_EQ(std::string::npos, id.find("error")) << id;
  ASSERT_EQ(0, rename(m.path("f").c_str(), m.path("g").c_str()));
  ASSERT_EQ(0, rename(m.path("a/c").c_str(), m.path("x").c_str()));
  ASSERT_EQ("ok", m.Control("dbfs.tx.abort:" + id));
  EXPECT_NE(0, stat(m.path("g").c_str(), &st)) << "the aborted rename target is still visible";
  EXPECT_EQ(0, stat(m.path("f").c_str(), &st));
  EXPECT_EQ(0, rename(m.path("a/c").c_str(), m.path("y").c_str()))
      << "renaming a directory whose rename was aborted: " << strerror(errno);
}

// A directory moved inside a transaction that aborted (the workload's
// op #1533, RENAME d12/d17 -> d6/d113) left the kernel's dentries of the
// directories below it under the moved alias; a later rename out of one of
// them (#1557, RENAME d12/d17/d91 -> d84/d115) got ESTALE: moving the alias
// back needs the rename lock, which that rename held. Found by the power-loss
// workload of seed 581642081 on a plain mount (no cut needed): the workload
// stops at its first failed operation, so it must get well past #1557.
TEST(PowerLossRegression, DirectoryMovedInAnAbortedTransactionStaysRenamable) {
  ASSERT_EQ(MissingTools(), "") << "DBFS tools not built";
  PlainMount m;
  std::string err;
  ASSERT_TRUE(m.Start(&err)) << err;
  ASSERT_TRUE(m.HasTransactions()) << "the transaction control xattrs do not answer";
  const std::string journal = m.path("../journal");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    RunWorkload(m.path("w"), journal, 7593107232870539683ULL);
  }
  // Until the journal records operation 1700, or the workload stops (bounded).
  auto past = [&] {
    int fd = open(journal.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string all;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) all.append(buf, static_cast<size_t>(n));
    close(fd);
    return all.find("\nB 1700 ") != std::string::npos;
  };
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 1200 && !past(); ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    usleep(50 * 1000);
  }
  const bool reached = past();
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  EXPECT_TRUE(reached) << "the workload stopped before operation 1700 ("
                       << (exited ? "it exited: an operation failed" : "60 s passed")
                       << "); its journal: " << journal;
}

// A directory removed inside a transaction that aborted is back, but the
// kernel had marked its inode dead (rmdir, or a rename over it): creating
// anything inside failed with ENOENT until the inode left the kernel's cache.
// Found by the power-loss workload on a plain mount (no cut needed).
TEST(PowerLossRegression, DirectoryRemovedInAnAbortedTransactionStaysUsable) {
  ASSERT_EQ(MissingTools(), "") << "DBFS tools not built";
  PlainMount m;
  std::string err;
  ASSERT_TRUE(m.Start(&err)) << err;
  // A DBFS mount has transactions: a regression test for them must not pass
  // by not running.
  ASSERT_TRUE(m.HasTransactions()) << "the transaction control xattrs do not answer";
  ASSERT_EQ(0, mkdir(m.path("d").c_str(), 0755));
  ASSERT_EQ(0, mkdir(m.path("v").c_str(), 0755));
  ASSERT_EQ(0, mkdir(m.path("w").c_str(), 0755));
  struct stat st;
  // Open descriptors keep the kernel's inodes alive through the rmdir.
  int dfd = open(m.path("d").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int vfd = open(m.path("v").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  ASSERT_GE(vfd, 0);
  std::string id = m.Control("dbfs.tx.begin:" + std::to_string(getpid()) + ":serializable");
  ASSERT_EQ(std::string::npos, id.find("error")) << id;
  ASSERT_EQ(0, rmdir(m.path("d").c_str()));
  ASSERT_EQ(0, rename(m.path("w").c_str(), m.path("v").c_str()));  // over an empty directory
  ASSERT_EQ("ok", m.Control("dbfs.tx.abort:" + id));
  for (const char* dir : {"d", "v", "w"}) {
    const std::string f = m.path(std::string(dir) + "/f");
    EXPECT_TRUE(dbfs::testing::WriteFile(f, "x"))
        << "creating " << f << " after the aborted transaction: " << strerror(errno);
    EXPECT_EQ(0, stat(f.c_str(), &st)) << f;
  }
  close(dfd);
  close(vfd);
}

// The power-cut workload's transactions failed with "conflict <inode N>"
// although the workload is the only writer: inside a transaction it wrote to
// a file that was unlinked but still open (an orphan) and then closed it.
// The last close reclaims the orphan outside the transaction, and the
// transaction's own write to that inode then counts as a conflict, so the
// commit fails and everything else in it (here a mkdir) is lost.
TEST(PowerLossRegression, TransactionThatWritesAndClosesAnOrphanCommits) {
  ASSERT_EQ(MissingTools(), "") << "DBFS tools not built";
  PlainMount m;
  std::string err;
  ASSERT_TRUE(m.Start(&err)) << err;
  // A DBFS mount has transactions: a regression test for them must not pass
  // by not running.
  ASSERT_TRUE(m.HasTransactions()) << "the transaction control xattrs do not answer";
  std::string f = m.path("orphan");
  int fd = open(f.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(100, pwrite(fd, std::string(100, 'a').data(), 100, 0));
  ASSERT_EQ(0, unlink(f.c_str()));
  std::string id = m.Control("dbfs.tx.begin:" + std::to_string(getpid()) + ":serializable");
  ASSERT_EQ(std::string::npos, id.find("error")) << id;
  EXPECT_EQ(100, pwrite(fd, std::string(100, 'b').data(), 100, 0));
  EXPECT_EQ(0, close(fd));
  EXPECT_EQ(0, mkdir(m.path("d").c_str(), 0755));
  std::string reply = m.Control("dbfs.tx.commit:" + id);
  EXPECT_EQ(0u, reply.rfind("ok", 0)) << "commit of a single writer's transaction: " << reply;
  struct stat st;
  EXPECT_EQ(0, stat(m.path("d").c_str(), &st)) << "the transaction's mkdir was lost";
}

// A power cut lost operations acknowledged before a transaction whose only
// operation was a directory fsync, although the commit returned after that
// fsync had marked it durable. Inside a transaction fsync only marks the
// commit durable, and the commit of a transaction that wrote nothing syncs
// nothing: fsync(f) returns 0 and f's earlier writes are still not durable.
TEST(PowerLossRegression, FsyncInsideATransactionThatWritesNothingSyncs) {
  ASSERT_EQ(MissingTools(), "") << "DBFS tools not built";
  PlainMount m;
  std::string err;
  ASSERT_TRUE(m.Start(&err)) << err;
  // A DBFS mount has transactions: a regression test for them must not pass
  // by not running.
  ASSERT_TRUE(m.HasTransactions()) << "the transaction control xattrs do not answer";
  auto wal_syncs = [&] {
    std::string stats = m.Control("dbfs.stats");
    auto p = stats.find("wal_syncs ");
    return p == std::string::npos ? -1L : strtol(stats.c_str() + p + 10, nullptr, 10);
  };
  ASSERT_TRUE(dbfs::testing::WriteFile(m.path("f"), "not synced yet"));
  long before = wal_syncs();
  ASSERT_GE(before, 0);
  std::string id = m.Control("dbfs.tx.begin:" + std::to_string(getpid()) + ":serializable");
  ASSERT_EQ(std::string::npos, id.find("error")) << id;
  int fd = open(m.path("f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(0, fsync(fd));
  close(fd);
  std::string reply = m.Control("dbfs.tx.commit:" + id);
  EXPECT_EQ(0u, reply.rfind("ok", 0)) << reply;
  EXPECT_GT(wal_syncs(), before) << "fsync and the commit returned, but nothing was synced";
}

int JudgeMain(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " --judge VOLUME JOURNAL [--sync] [--prefix K]\n";
    return 16;
  }
  std::string vol = argv[2], journal = argv[3];
  bool sync = false;
  int prefix = -1;
  for (int i = 4; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sync") sync = true;
    if (a == "--prefix" && i + 1 < argc) prefix = atoi(argv[++i]);
  }
  std::string err;
  std::vector<Op> ops = ParseJournal(journal, &err);
  if (!err.empty()) std::cerr << "journal: " << err;
  char tmpl[] = "/tmp/dbfs-pl-judge-XXXXXX";
  if (!mkdtemp(tmpl)) return 8;
  std::string mnt = std::string(tmpl) + "/mnt";
  mkdir(mnt.c_str(), 0755);
  auto d = Daemon::Start("dbfs-mount", {ToolPath("dbfs-mount"), vol, mnt, "-f"}, mnt,
                         std::string(tmpl) + "/dbfs.log", &err);
  if (!d) {
    std::cerr << err << "\n" << Tail(std::string(tmpl) + "/dbfs.log", 4000);
    return 8;
  }
  State seen = Observe(mnt + "/w", &err);
  std::cout << (err.empty() ? "" : "observation errors:\n" + err);
  Verdict v = Judge(seen, ops, sync);
  std::cout << (v.ok ? "OK" : v.message) << "\n"
            << v.begun << " ops begun, " << v.completed << " returned, " << v.required
            << " required, matched prefix " << v.matched << "\n";
  if (prefix >= 0) {
    State want;
    for (int i = 0; i < prefix && i < static_cast<int>(ops.size()); ++i)
      Apply(&want, ops[i], nullptr);
    std::cout << "differences from the state after " << prefix << " ops:\n" << Diff(want, seen);
    for (int i = 0; i < prefix && i < static_cast<int>(ops.size()); ++i) {
      std::cout << "  " << Describe(ops[i]) << "\n";
    }
  }
  std::string uerr;
  if (!d->Unmount(&uerr)) std::cerr << uerr;
  d.reset();
  RemoveTree(tmpl);
  return v.ok ? 0 : 1;
}

int BenchMain(int argc, char** argv) {
  int cuts = -1;
  uint64_t seed = ClockSeed();
  std::string mode = "all";
  bool repeat = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bench" && i + 1 < argc) {
      cuts = atoi(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = strtoull(argv[++i], nullptr, 10);
    } else if (a == "--mode" && i + 1 < argc) {
      mode = argv[++i];
    } else if (a == "--repeat") {
      repeat = true;
    } else {
      std::cerr << "usage: " << argv[0]
                << " --bench N [--seed S] [--mode all|drop|prefix|random] [--repeat]\n";
      return 16;
    }
  }
  if (cuts < 0 || (mode != "all" && mode != "drop" && mode != "prefix" && mode != "random")) {
    std::cerr << "bad --bench/--mode\n";
    return 16;
  }
  std::string missing = MissingTools();
  if (!missing.empty()) {
    std::cerr << "not built:" << missing << " (DBFS_BIN_DIR=" << dbfs::testing::BinDir() << ")\n";
    return 2;
  }
  umask(022);
  std::cout << "power-loss bench: " << cuts << " cuts from seed " << seed << ", mode " << mode
            << (repeat ? " (same seed every cut)" : "") << std::endl;
  RunSummary s = RunCuts(cuts, seed, mode, repeat);
  if (!s.first_failure.empty()) {
    std::cout << "\n" << s.first_failure;
    std::cout << s.cuts << " of " << cuts << " cuts run, " << s.violations << " violations"
              << (s.harness_errors ? ", 1 harness error" : "") << std::endl;
    return 1;
  }
  std::cout << s.cuts << " cuts, 0 violations" << std::endl;
  return 0;
}

}  // namespace
}  // namespace dbfs::powerloss

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--judge") return dbfs::powerloss::JudgeMain(argc, argv);
  if (argc == 5 && std::string(argv[1]) == "--workload") {
    // powerloss_test --workload ROOT JOURNAL SEED: just the workload of a cut
    // (ConfigFor(SEED) picks its own seed from the cut seed; this takes the
    // workload seed itself), on any directory, until an op fails or ^C.
    dbfs::powerloss::RunWorkload(argv[2], argv[3], strtoull(argv[4], nullptr, 10));
  }
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--bench") return dbfs::powerloss::BenchMain(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
