#include "mvcc/volume.h"

#include "mvcc/superblock.h"
#include "mvcc/volume_lock.h"

namespace dbfs::mvcc {

Result<std::unique_ptr<Store>> OpenVolume(const std::string& spec, const OpenVolumeOptions& o) {
  // Not a volume: say so without leaving a lock file in someone's directory.
  DBFS_RETURN_IF_ERROR(ReadSuperblock(spec).status());
  VolumeLock lock;
  if (!o.lock_holder.empty()) {
    // A read-only open takes the lock without writing the holder line.
    DBFS_ASSIGN_OR_RETURN(lock, VolumeLock::AcquireWhenUnmounted(spec, o.lock_holder,
                                                                 std::chrono::seconds(15),
                                                                 o.local.read_only));
  }
  DBFS_ASSIGN_OR_RETURN(auto store, LocalStore::Open(spec, o.local, std::move(lock)));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace dbfs::mvcc
