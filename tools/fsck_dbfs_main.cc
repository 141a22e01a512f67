// fsck.dbfs — check a DBFS volume. Exit codes as fsck(8).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/lib/fsck.h"

int main(int argc, char** argv) {
  CLI::App app{"fsck.dbfs: check a DBFS volume (it must not be mounted)"};
  std::string volume;
  bool no_write = false, yes = false, force = false, verbose = false;
  app.add_option("VOLUME", volume, "volume directory")->required();
  app.add_flag("-n", no_write, "check only; never write to the volume");
  app.add_flag("-y", yes, "repair what can be repaired (not yet available: reports only)");
  app.add_flag("-f", force, "check even a clean volume (always the case for now)");
  app.add_flag("-v", verbose, "print notes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return dbfs::kFsckUsage;
  }
  dbfs::FsckOptions o;
  o.no_write = true;  // repair is not implemented yet: never write
  o.verbose = verbose;
  dbfs::FsckReport r = dbfs::Fsck(volume, o);
  for (const auto& e : r.errors) std::fprintf(stderr, "fsck.dbfs: %s: %s\n", volume.c_str(), e.c_str());
  if (verbose || r.exit_code != 0) {
    for (const auto& n : r.notes) std::fprintf(stdout, "fsck.dbfs: note: %s\n", n.c_str());
  }
  if (r.exit_code == dbfs::kFsckClean) {
    std::printf("%s: clean, %llu inodes, %llu entries, %llu extents, %llu WAL records\n", volume.c_str(),
                (unsigned long long)r.inodes, (unsigned long long)r.dirents,
                (unsigned long long)r.extents, (unsigned long long)r.wal_records);
  } else if (r.exit_code == dbfs::kFsckUncorrected) {
    std::fprintf(stderr, "fsck.dbfs: %s: %zu errors found, not corrected%s\n", volume.c_str(),
                 r.errors.size(), (yes && !no_write) ? " (repair is not implemented yet)" : "");
  }
  return r.exit_code;
}
