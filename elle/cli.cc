#include "elle/cli.h"

#include <ostream>

#include "elle/history.h"
#include "elle/list_append.h"
#include "elle/report.h"

namespace dbfs::elle {

int RunCheck(const std::string& path, bool realtime, std::ostream& out, std::ostream& err) {
  const std::string name = path == "-" ? std::string("<stdin>") : path;
  auto history = ReadHistoryFile(path);
  if (!history.ok()) {
    err << "dbfs elle check: " << name << ": " << history.status().ToString() << "\n";
    return kCheckUnreadable;
  }
  CheckOptions options;
  options.realtime = realtime;
  auto result = CheckListAppend(*history, options);
  if (!result.ok()) {
    err << "dbfs elle check: " << name << ": " << result.status().ToString() << "\n";
    return kCheckUnreadable;
  }
  WriteReport(*result, options, out);
  out.flush();
  return result->valid ? kCheckValid : kCheckAnomalies;
}

}  // namespace dbfs::elle
