// The library side of `dbfs elle check FILE [--realtime]`.
#pragma once

#include <iosfwd>
#include <string>

namespace dbfs::elle {

// Exit codes of `dbfs elle check`.
inline constexpr int kCheckValid = 0;
inline constexpr int kCheckAnomalies = 1;
inline constexpr int kCheckUnreadable = 2;

// Reads the EDN history at `path` ("-" = standard input), checks it with the
// list-append analysis (with realtime edges if `realtime`: strict
// serializability), writes the report (elle/report.h) to `out` and returns
// kCheckValid, kCheckAnomalies, or kCheckUnreadable — the last after writing
// why to `err` (unreadable file, malformed EDN with its line, or a history the
// analysis cannot handle, e.g. an element appended twice).
int RunCheck(const std::string& path, bool realtime, std::ostream& out, std::ostream& err);

}  // namespace dbfs::elle
