// dbfs-mount VOLUME MOUNTPOINT [-o opt,opt...] [-f] [-d]
//
// Mounts a DBFS volume. Also works as a mount(8) helper
// (/sbin/mount.fuse.dbfs VOLUME MOUNTPOINT -o rw,nosuid,...). Without -f it
// returns once the mount is live, leaving a daemon that serves it until
// `fusermount3 -u MOUNTPOINT` or SIGTERM.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tools/lib/daemon.h"

namespace {

int Fail(const dbfs::Status& s) {
  std::fprintf(stderr, "dbfs-mount: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Mount a DBFS volume.", "dbfs-mount"};
  std::string volume;
  std::string mountpoint;
  std::vector<std::string> option_lists;
  bool foreground = false;
  bool debug = false;
  app.add_option("VOLUME", volume, "Volume directory (made by mkfs.dbfs)")->required();
  app.add_option("MOUNTPOINT", mountpoint, "Directory to mount it on")->required();
  app.add_option("-o", option_lists,
                 "Mount options, comma-separated, repeatable: ro (nothing is written to the volume), "
                 "rw, sync, noatime, "
                 "log_level=trace|debug|info|warn|error, log=syslog|stderr|file:PATH (default: "
                 "stderr with -f, VOLUME/dbfs.log otherwise), allow_other, default_permissions, "
                 "no_default_permissions, entry_timeout=SECONDS, attr_timeout=SECONDS, "
                 "direct_io, tx_timeout=SECONDS, tx_max_bytes=BYTES[k|m|g|t], checkpoint_mb=N, "
                 "checkpoint_interval=SECONDS, wal_segment_mb=N, history=DURATION, "
                 "tx_keep_timeout=DURATION, metrics_port=PORT (Prometheus text at "
                 "http://127.0.0.1:PORT/metrics), elle_port=PORT, runtime_dir=DIR (Elle socket and token; "
                 "default /run/dbfs/VOLUME-HASH for root, $XDG_RUNTIME_DIR/dbfs/... otherwise), dev, nodev, suid, nosuid, exec, "
                 "noexec, io_uring=auto|on|off (FUSE over io_uring when the kernel offers it; "
                 "off by default; auto falls back to /dev/fuse and says why; on refuses to "
                 "mount without it), io_uring_q_depth=N (requests in flight per CPU, default 64) "
                 "(root mounts default to dev,suid like mount(8); other users get "
                 "nodev,nosuid) (other generic mount(8) options such as auto are ignored)")
      ->allow_extra_args(false);
  app.add_flag("-f,--foreground", foreground, "Stay in the foreground, log to stderr");
  app.add_flag("-d,--debug", debug, "Trace every FUSE request (implies -f, log_level=debug)");
  // mount(8) helper flags (sloppy, no mtab, verbose): accepted, ignored.
  bool ignored = false;
  app.add_flag("-s,-n,-v", ignored)->group("");
  app.set_version_flag("--version", "dbfs-mount 0.1.0");
  // For the shell completion and the man page test: every -o option, one a line.
  bool list_options = false;
  app.add_flag("--list-options", list_options, "print the -o options, one a line, and exit");
  // Asked alone, it needs no VOLUME or MOUNTPOINT.
  if (argc == 2 && std::string_view(argv[1]) == "--list-options") {
    for (size_t i = 0; i < dbfs::kMountOptionCount; ++i) {
      std::printf("%.*s\n", static_cast<int>(dbfs::kMountOptionNames[i].size()),
                  dbfs::kMountOptionNames[i].data());
    }
    return 0;
  }
  CLI11_PARSE(app, argc, argv);

  dbfs::MountOptions o;
  o.volume = volume;
  o.mountpoint = mountpoint;
  o.foreground = foreground || debug;
  o.debug = debug;
  if (debug) {
    o.log_level = spdlog::level::debug;
    o.fs.log_level = "debug";
  }
  // DBFS_IO_URING=auto|on|off: the default of -o io_uring (how the test
  // suites run every mount under one transport).
  if (const char* env = std::getenv("DBFS_IO_URING"); env != nullptr && *env != '\0') {
    if (dbfs::Status s = dbfs::ParseMountOptions(std::string("io_uring=") + env, &o); !s.ok()) {
      return Fail(dbfs::Status::Invalid("DBFS_IO_URING: " + s.message()));
    }
  }
  for (const std::string& list : option_lists) {
    if (dbfs::Status s = dbfs::ParseMountOptions(list, &o); !s.ok()) return Fail(s);
  }
  if (o.remount) {
    // mount -o remount,ro|rw MNT through the helper.
    if (dbfs::Status s = dbfs::RemountKernel(o); !s.ok()) return Fail(s);
    return 0;
  }
  if (dbfs::Status s = dbfs::CheckMountTarget(&o); !s.ok()) return Fail(s);
  // Without -f this forks first thing (no thread may exist yet) and returns
  // in the parent once the daemon's mount is live.
  dbfs::Status s =
      o.foreground ? dbfs::RunMount(o, nullptr) : dbfs::RunMountInBackground(o);
  if (!s.ok()) return Fail(s);
  return 0;
}
