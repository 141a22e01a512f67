// fsck.dbfs — check (-n) or repair (-y) a DBFS volume. Exit codes as fsck(8).
// docs/fsck.md says what is checked and what is repaired.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "tools/lib/fsck.h"

namespace {

// One self-overwriting status line on the terminal.
void ShowProgress(std::string_view phase, uint64_t done, uint64_t total) {
  if (phase == "done") {
    std::fprintf(stderr, "\r\033[K");
  } else if (total > 0) {
    std::fprintf(stderr, "\r\033[Kfsck.dbfs: %.*s %3.0f%%", static_cast<int>(phase.size()),
                 phase.data(), 100.0 * static_cast<double>(done) / static_cast<double>(total));
  } else if (done > 0) {
    std::fprintf(stderr, "\r\033[Kfsck.dbfs: %.*s %llu", static_cast<int>(phase.size()),
                 phase.data(), static_cast<unsigned long long>(done));
  } else {
    std::fprintf(stderr, "\r\033[Kfsck.dbfs: %.*s", static_cast<int>(phase.size()), phase.data());
  }
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  dbfs::FsckCommandLine cl = dbfs::ParseFsckCommandLine(argc, argv);
  if (cl.exit_code >= 0) {
    std::fprintf(cl.exit_code == 0 ? stdout : stderr, "%s\n", cl.message.c_str());
    return cl.exit_code;
  }
  // The engine's own log lines (recovery, torn tails) repeat what the report
  // says; show them only when asked.
  spdlog::set_level(cl.options.verbose ? spdlog::level::info : spdlog::level::err);
  if (isatty(STDERR_FILENO)) cl.options.progress = ShowProgress;

  const dbfs::FsckReport r = dbfs::Fsck(cl.volume, cl.options);
  const char* vol = cl.volume.c_str();
  for (const auto& f : r.fixed) std::printf("fsck.dbfs: %s: fixed: %s\n", vol, f.c_str());
  for (const auto& e : r.errors) std::fprintf(stderr, "fsck.dbfs: %s: %s\n", vol, e.c_str());
  for (const auto& w : r.warnings)
    std::fprintf(stderr, "fsck.dbfs: %s: warning: %s\n", vol, w.c_str());
  if (cl.options.verbose || r.exit_code != 0) {
    for (const auto& n : r.notes) std::printf("fsck.dbfs: %s: note: %s\n", vol, n.c_str());
  }
  if (r.exit_code == dbfs::kFsckOperational) return r.exit_code;
  std::printf(
      "%s: %s%s, %llu inodes, %llu entries, %llu extents, %llu xattrs; %llu bytes of file "
      "data in %llu WAL bytes (%llu segments, %llu records)\n",
      vol,
      (r.exit_code & dbfs::kFsckUncorrected) ? "errors left"
      : (r.exit_code & dbfs::kFsckCorrected) ? "repaired"
                                             : "clean",
      r.full_check ? "" : " (quick check; -f verifies every WAL checksum)",
      static_cast<unsigned long long>(r.inodes), static_cast<unsigned long long>(r.dirents),
      static_cast<unsigned long long>(r.extents), static_cast<unsigned long long>(r.xattrs),
      static_cast<unsigned long long>(r.live_bytes), static_cast<unsigned long long>(r.wal_bytes),
      static_cast<unsigned long long>(r.wal_segments),
      static_cast<unsigned long long>(r.wal_records));
  if (r.exit_code & dbfs::kFsckUncorrected) {
    std::fprintf(stderr, "fsck.dbfs: %s: %zu errors left uncorrected%s\n", vol, r.errors.size(),
                 cl.options.repair ? "" : " (fsck.dbfs -y repairs what can be repaired)");
  }
  return r.exit_code;
}
