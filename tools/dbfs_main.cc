// dbfs — the user's tool for a mounted DBFS volume.
//   dbfs stats --mount MNT     counters of the running daemon
//   dbfs version
#include <sys/xattr.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "fuse/filesystem.h"

namespace {

int Stats(const std::string& mount) {
  const std::string name(dbfs::kStatsXattr);
  std::string buf(64 * 1024, '\0');
  ssize_t n = getxattr(mount.c_str(), name.c_str(), buf.data(), buf.size());
  if (n < 0) {
    std::fprintf(stderr, "dbfs stats: %s: %s (is it a DBFS mount?)\n", mount.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::fwrite(buf.data(), 1, static_cast<size_t>(n), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dbfs: work with a mounted DBFS volume"};
  app.require_subcommand(1);
  std::string mount = ".";
  auto* stats = app.add_subcommand("stats", "show the daemon's counters (commits, syncs, WAL, GC)");
  stats->add_option("--mount,-m", mount, "DBFS mount point (default: current directory)");
  auto* version = app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);
  if (*stats) return Stats(mount);
  if (*version) {
    std::printf("dbfs 0.1.0 (format 1)\n");
    return 0;
  }
  return 16;
}
