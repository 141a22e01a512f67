// mkfs.dbfs [-f|--force] [-q|--quiet] VOLUME
//
// Exit codes: 0 created; 1 error (one line on stderr, like mkfs(8));
// usage errors exit with CLI11's code.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "tools/lib/mkfs.h"

int main(int argc, char** argv) {
  CLI::App app{"Create a DBFS volume in a directory.", "mkfs.dbfs"};
  dbfs::MkfsOptions options;
  std::string volume;
  app.add_flag("-f,--force", options.force,
               "Overwrite a non-empty directory (refused while the volume is mounted)");
  app.add_flag("-q,--quiet", options.quiet, "Print nothing on success");
  app.add_option("VOLUME", volume, "Volume directory (created if missing; its parent must exist)")
      ->required();
  CLI11_PARSE(app, argc, argv);

  dbfs::Result<dbfs::Superblock> sb = dbfs::Mkfs(volume, options);
  if (!sb.ok()) {
    std::fprintf(stderr, "mkfs.dbfs: %s\n", sb.status().ToString().c_str());
    return 1;
  }
  if (!options.quiet) {
    std::printf("Created DBFS volume %s (uuid %s, format %u)\n", volume.c_str(),
                sb->UuidString().c_str(), static_cast<unsigned>(sb->format_version));
  }
  return 0;
}
