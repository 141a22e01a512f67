// mkfs.dbfs [-f|--force] [-q|--quiet] VOLUME
// mkfs.dbfs [-f|--force] [-q|--quiet] --meta etcd://H:P[,H:P...]/NAME --data rados://POOL[?conf=PATH&id=USER]
//
// Exit codes: 0 created; 1 error (one line on stderr, like mkfs(8));
// usage errors exit with CLI11's code.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "tools/lib/mkfs.h"

int main(int argc, char** argv) {
  CLI::App app{"Create a DBFS volume in a directory, or a cluster volume on etcd + Ceph RADOS.",
               "mkfs.dbfs"};
  dbfs::MkfsOptions options;
  std::string volume, meta, data;
  app.add_flag("-f,--force",
               options.force,
               "Overwrite a non-empty directory (refused while the volume is mounted), or replace "
               "an existing cluster volume of that name (never while it is mounted)");
  app.add_flag("-q,--quiet", options.quiet, "Print nothing on success");
  app.add_option("VOLUME", volume, "Volume directory (created if missing; its parent must exist)");
  auto* meta_opt = app.add_option(
      "--meta", meta, "Cluster volume: its metadata on etcd, etcd://HOST:PORT[,HOST:PORT...]/NAME");
  auto* data_opt = app.add_option(
      "--data", data, "Cluster volume: its file data in a RADOS pool, rados://POOL[?conf=PATH&id=USER]");
  meta_opt->needs(data_opt);
  data_opt->needs(meta_opt);
  CLI11_PARSE(app, argc, argv);
  if (meta.empty() == volume.empty()) {
    std::fprintf(stderr, "mkfs.dbfs: give either VOLUME (a directory) or --meta and --data\n");
    return 1;
  }

  if (!meta.empty()) {
    dbfs::Status st = dbfs::MkfsCluster(meta, data, options);
    if (!st.ok()) {
      std::fprintf(stderr, "mkfs.dbfs: %s\n", st.ToString().c_str());
      return 1;
    }
    if (!options.quiet) std::printf("Created DBFS cluster volume %s (data in %s)\n", meta.c_str(), data.c_str());
    return 0;
  }
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
