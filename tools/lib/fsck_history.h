// fsck's checks of history (docs/fsck.md "History"): the snapshot records and
// the commit log decode, snapshots name committed CSNs, and every version a
// snapshot or the retention window can see still has its file data in the
// WAL. Read-only; problems are reported, not repaired (a repair would have to
// drop the snapshot or shorten the window, which is the user's call:
// `dbfs snapshot delete`).
#pragma once

#include <string>
#include <vector>

namespace dbfs {

struct HistoryFindings {
  std::vector<std::string> errors;
  std::vector<std::string> notes;
};

// REQUIRES: the volume is not in use (fsck holds its lock).
HistoryFindings CheckHistory(const std::string& volume_dir);

}  // namespace dbfs
