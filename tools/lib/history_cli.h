// The history subcommands of `dbfs` (snapshot, log, diff, restore,
// rollback, revert, tx diff, tx run --keep): each sends one control command
// (fuse/history_control.h) and formats the reply. Return the exit status.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace dbfs::cli {

inline constexpr int kExitConflict = 75;  // EX_TEMPFAIL: lost a conflict

int SnapshotCreate(const std::string& mount, const std::string& name);
int SnapshotDelete(const std::string& mount, const std::string& name);
int SnapshotList(const std::string& mount, bool json);

struct LogArgs {
  std::string path;  // as given on the command line
  std::string since;
  uint64_t limit = 0;
  bool json = false;
  bool all = false;
};
int Log(const std::string& mount, const LogArgs& a);

// FROM/TO: snapshot names, CSNs, times (ISO-8601, @SECONDS) or now.
int Diff(const std::string& mount, const std::string& from, const std::string& to,
         const std::string& path, bool stat, bool json);
int TxDiff(const std::string& mount, const std::string& id, const std::string& path, bool stat);

int Restore(const std::string& mount, const std::string& path, const std::string& at, bool keep);
int Rollback(const std::string& mount, const std::string& snapshot, bool keep);
int Revert(const std::string& mount, const std::string& csn, bool keep);

// `dbfs tx run --keep`: after CMD exited 0, leaves transaction `id` open.
int KeepTx(const std::string& mount, const std::string& id);

// PATH (relative to the current directory or absolute, existing or not) as a
// path inside the mount ("/..."); empty with a message on stderr if it is not
// inside `mount`.
std::string MountRelative(const std::string& mount, const std::string& path);
// A point argument for the daemon: times become "@SECONDS.NANOS" (local
// times are read in this process's time zone), ':' escaped.
std::string PointArg(const std::string& point);

}  // namespace dbfs::cli
