// Client side of the daemon's control channel (over libdbfs, libdbfs/dbfs.h): commands are reads of
// virtual xattrs ("dbfs.*") of the mount's root directory, so the daemon
// learns the caller's pid and uid from the request itself (see
// fuse/control.h and docs/ARCHITECTURE.md §8).
#pragma once

#include <string>

#include "kvstore/status.h"

namespace dbfs {

// Sends `command` (e.g. "dbfs.tx.status") to the DBFS mounted at `mount`.
Result<std::string> ControlRequest(const std::string& mount, const std::string& command);

// The mount point of the DBFS mount containing `path` (default: the current
// directory), from /proc/self/mountinfo.
Result<std::string> FindDbfsMount(const std::string& path);

}  // namespace dbfs
