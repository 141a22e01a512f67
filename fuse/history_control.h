// The history commands of the control channel (fuse/control.h): snapshots,
// diffs, the log, undo, and leaving a transaction open for review. Replies
// are text the `dbfs` tool formats (tools/lib/history_cli.h); fields are
// separated by tabs, and every path or command field is escaped
// (EscapeField: backslash, tab, newline and other control bytes as \xNN).
//
//   dbfs.snapshot.create:NAME         -> "NAME\tCSN\tTIME_NS"           (root)
//   dbfs.snapshot.delete:NAME         -> "ok"                           (root)
//   dbfs.snapshot.list[:space]        -> "NAME\tCSN\tTIME_NS\tUID\tUSED\tREFER" lines
//   dbfs.diff:FROM:TO[:PATH]          -> change lines (FormatChange)
//   dbfs.tx.diff:ID[:PATH]            -> change lines
//   dbfs.log:SINCE_NS:LIMIT:ALL[:PATH] -> "C\tCSN\tTIME\tUID\tPID\tTX\tFLAGS\tCOMM\tCMD" lines, each
//                                        followed by its change lines
//   dbfs.restore:AT:KEEP:PATH         -> "ok CSN" | "kept ID" | "conflict WHY"   (root)
//   dbfs.rollback:NAME:KEEP           -> likewise                        (root)
//   dbfs.revert:CSN:KEEP              -> likewise                        (root)
//   dbfs.tx.keep:ID                   -> "ok": unbinds ID, left open for review
// FROM, TO and AT are points (Filesystem::ResolvePoint) with ':' escaped as
// \x3a by the client. A change line: "KIND\tPATH\tNEW_PATH\tDIR\tSIZE_A\tSIZE_B\tWRITTEN" with
// KIND one of + - M A R.
#pragma once

#include <string>
#include <string_view>

#include "fs/filesystem.h"
#include "fuse/tx_binding.h"
#include "kvstore/status.h"

namespace dbfs::fuse {

inline constexpr std::string_view kHistoryPrefixes[] = {
    "dbfs.snapshot.", "dbfs.diff:", "dbfs.tx.diff:", "dbfs.log:",
    "dbfs.restore:",  "dbfs.rollback:", "dbfs.revert:", "dbfs.tx.keep:"};

std::string EscapeField(std::string_view s);
std::string UnescapeField(std::string_view s);

// Runs a history command; kNoData when `name` is not one.
Result<std::string> HandleHistory(Filesystem* fs, TxBindings* bindings, const Caller& c,
                                  std::string_view name);

}  // namespace dbfs::fuse
