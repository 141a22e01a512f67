// Fsck: checks a DBFS volume's invariants. A library call so that tests can
// run it in-process after every simulated crash; fsck.dbfs is a thin main.
//
// The volume is checked as recovery would leave it: committed WAL records
// past the applied LSN are replayed in memory (never written when
// options.no_write is set), so a volume that was not cleanly unmounted is
// not an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvstore/status.h"

namespace dbfs {

struct FsckOptions {
  bool no_write = true;  // -n: open everything read-only
  bool verbose = false;
};

// fsck(8) exit codes.
inline constexpr int kFsckClean = 0;
inline constexpr int kFsckCorrected = 1;
inline constexpr int kFsckUncorrected = 4;
inline constexpr int kFsckOperational = 8;
inline constexpr int kFsckUsage = 16;

struct FsckReport {
  int exit_code = kFsckClean;
  std::vector<std::string> errors;  // one line per problem found
  std::vector<std::string> notes;   // informational (pending replay, orphans)
  uint64_t inodes = 0, dirents = 0, extents = 0, xattrs = 0, wal_records = 0;
};

FsckReport Fsck(const std::string& volume_dir, const FsckOptions& options);

}  // namespace dbfs
