// Mkfs: creates a DBFS volume in a directory (the library behind mkfs.dbfs).
//
// The resulting layout (docs/superblock_format.md):
//   VOLUME/superblock   identity: magic, format version, uuid, geometry, CRC
//   VOLUME/lock         VolumeLock file (may be empty)
//   VOLUME/meta/        LMDB environment, written by Filesystem::Initialize
//   VOLUME/wal/         WAL segments (none yet)
#pragma once

#include <string>

#include "kvstore/status.h"
#include "mvcc/superblock.h"

namespace dbfs {

struct MkfsOptions {
  bool force = false;  // overwrite a non-empty directory (never a mounted volume)
  bool quiet = false;  // for the CLI; the library itself prints nothing
};

// Creates a volume at `volume_dir` and returns its superblock.
//  - A missing `volume_dir` is created (mode 0700); its parent must exist.
//  - An existing non-directory is refused (NotDir).
//  - A non-empty directory is refused with Exists "X is not empty; use --force
//    to overwrite" unless options.force; with force its whole content is
//    removed, but only after taking the VolumeLock: a volume that is mounted
//    (or being checked) is refused with the lock's Busy status.
//  - Writes meta/ and wal/ (0700), the superblock, then
//    Filesystem::Initialize(volume_dir) and makes every entry durable.
// The VolumeLock is held (holder "mkfs.dbfs") from before anything is removed
// until return, so Filesystem::Initialize runs under it and must not try to
// take the VolumeLock itself (it would get Busy naming our own pid).
// A crash part-way leaves a directory that is not a usable volume; running
// mkfs.dbfs --force again repairs it.
Result<Superblock> Mkfs(const std::string& volume_dir, const MkfsOptions& options);

// Creates a cluster volume (docs/cluster.md): its superblock, counters and
// root directory as keys under /dbfs/NAME/ of the etcd cluster `meta_url`
// (etcd://H:P[,H:P...]/NAME), its file data to go to `data_url`
// (rados://POOL[?conf=PATH&id=USER]). Refuses an existing NAME (Exists)
// unless options.force, which first removes the old volume's keys and data
// objects — never do that while it is mounted anywhere.
Status MkfsCluster(const std::string& meta_url, const std::string& data_url,
                   const MkfsOptions& options);

}  // namespace dbfs
