// Where a mounted volume's runtime files live: the Elle protocol socket and
// its token (elle/server.h), and the log of a read-only mount. Never inside
// the volume directory: the daemon needs nothing of the volume's filesystem
// beyond regular files, directories, rename and fsync (a FUSE or network
// filesystem may refuse sockets), and a read-only mount writes nothing there.
//
//   -o runtime_dir=DIR      as given
//   root                    /run/dbfs/<volume>
//   other users             $XDG_RUNTIME_DIR/dbfs/<volume>, else /tmp/dbfs-<uid>/<volume>
//
// <volume> is the volume directory's last component and a hash of its
// absolute path ("vol-9f86d081884c7d65"): unique per volume on the machine,
// and computable by a client that knows only the volume path (`dbfs elle
// run` finds the socket from the mount's "dbfs:VOLUME" source).
// Header-only: the daemon and the elle runner both use it.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kvstore/status.h"

namespace dbfs {

// The default runtime directory of the volume at absolute path `volume`.
inline std::string DefaultRuntimeDir(const std::string& volume) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : volume) {
    h ^= c;
    h *= 1099511628211ull;
  }
  std::string base = volume.substr(volume.find_last_of('/') + 1);
  if (base.empty()) base = "root";
  char suffix[24];
  std::snprintf(suffix, sizeof suffix, "-%016llx", static_cast<unsigned long long>(h));
  std::string parent;
  if (geteuid() == 0) {
    parent = "/run/dbfs";
  } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && xdg[0] == '/') {
    parent = std::string(xdg) + "/dbfs";
  } else {
    parent = "/tmp/dbfs-" + std::to_string(geteuid());
  }
  return parent + "/" + base + suffix;
}

// Creates `dir` (and missing parents) mode 0700 and checks that it is ours
// and not writable by others: the socket's peers and the token must stay
// private.
inline Status MakeRuntimeDir(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const std::string part = dir.substr(0, slash);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "runtime directory " + part);
    }
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Status::FromErrno(errno, "runtime directory " + dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    return Status::Invalid("runtime directory " + dir +
                           " is not a directory of ours that only we can write");
  }
  return Status::Ok();
}

}  // namespace dbfs
