// Fsck: checks (and with `repair`, repairs) a DBFS volume. A library call so
// that tests can run it in-process after every simulated crash; fsck.dbfs is
// a thin main. docs/fsck.md lists every invariant checked and every repair.
//
// The volume is checked as recovery would leave it: committed WAL records
// past the applied LSN are replayed into fsck's in-memory model (a check
// never writes), so a volume that was not cleanly unmounted is not an error.
//
// How it works: one *pass* reads the superblock, every LMDB table (raw, so
// damaged keys and versions are seen instead of failing a scan), replays the
// pending WAL commits on top, indexes the WAL records, and then runs every
// check on that model. A check that finds a problem also applies its repair
// to the model, so later checks (and the messages) see what -y would leave.
// A check-only pass throws the model away; a repair pass opens mvcc::Store
// read-write and commits the repaired keys as ONE transaction through the
// normal commit path (logged in the WAL, crash-safe), then flushes. After a
// repair pass Fsck re-checks read-only and reports what is left.
//
// Not thread-safe with respect to the volume: it takes the VolumeLock, so it
// refuses a mounted volume (or one another fsck/mkfs holds).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs {

// Called during long checks: the phase being run, and how far it got
// (`total` 0 when unknown). Fsck calls it at phase changes and at most about
// every 100 ms in between.
using FsckProgressFn = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

struct FsckOptions {
  // -y: repair what can be repaired. false (-n): open everything read-only,
  // write nothing at all.
  bool repair = false;
  // -f: the full check even of a clean volume. A volume is clean when the
  // WAL holds nothing to replay past the applied LSN and has no torn tail
  // (a clean unmount leaves it so). The quick check of a clean volume skips
  // reading the payload of every WAL record: record CRCs (so the CRC of the
  // DATA records that file data points into) and the COMMIT records' CSN
  // sequence. Everything else is checked either way.
  bool force = false;
  bool verbose = false;  // for the CLI: print notes and statistics
  FsckProgressFn progress;  // may be empty
};

// fsck(8) exit codes. They are bits: 5 = some errors corrected, others not.
inline constexpr int kFsckClean = 0;
inline constexpr int kFsckCorrected = 1;
inline constexpr int kFsckUncorrected = 4;
inline constexpr int kFsckOperational = 8;
inline constexpr int kFsckUsage = 16;

struct FsckReport {
  int exit_code = kFsckClean;
  // Problems left on the volume: everything found by a check-only run; after
  // a repair, what the final re-check still finds. One line each.
  std::vector<std::string> errors;
  // Problems a repair corrected (empty unless options.repair).
  std::vector<std::string> fixed;
  // Damage nothing depends on (for example a damaged WAL record that was
  // already applied and that no file data points into): reported, but the
  // volume is consistent, so it does not affect the exit code.
  std::vector<std::string> warnings;
  // Informational: pending replay, torn tail, pending orphans, what a repair
  // did besides fixing errors (replay, orphan reclamation).
  std::vector<std::string> notes;
  bool full_check = false;  // CRCs of every WAL record verified (-f or not clean)
  bool was_clean = false;   // nothing to replay, no torn tail (before any repair)
  // Counts of the (last) pass.
  uint64_t inodes = 0, dirents = 0, extents = 0, xattrs = 0, orphans = 0;
  uint64_t lmdb_versions = 0;  // stored versions in all LMDB tables
  uint64_t wal_segments = 0, wal_records = 0, wal_bytes = 0;
  uint64_t live_bytes = 0;  // file bytes held by data slices (sum of alloc_bytes)
  uint64_t commits_replayed = 0;
};

FsckReport Fsck(const std::string& volume_dir, const FsckOptions& options);

// The command line of fsck.dbfs: `fsck.dbfs [-n | -y] [-f] [-v] VOLUME`.
// Without -n or -y it checks only, like -n (there is no interactive mode).
struct FsckCommandLine {
  // -1: run Fsck(volume, options). Otherwise exit with this code after
  // printing `message` (0: --help, to stdout; kFsckUsage: to stderr).
  int exit_code = -1;
  std::string message;
  std::string volume;
  FsckOptions options;
};
FsckCommandLine ParseFsckCommandLine(int argc, const char* const* argv);

}  // namespace dbfs
