// Opening a volume's versioned store: the one place above the
// implementations that knows which mvcc::Store a volume specification names.
// Today every volume is a directory (LocalStore); cluster volumes will be
// named by their etcd address here too.
#pragma once

#include <memory>
#include <string>

#include "kvstore/status.h"
#include "mvcc/local_store.h"
#include "mvcc/store.h"

namespace dbfs::mvcc {

struct OpenVolumeOptions {
  StoreOptions local;  // tuning of a LocalStore
  // Non-empty: take the volume lock for this program ("dbfs-mount") first,
  // waiting briefly for a daemon that is still finishing an unmount; the
  // store holds it until it is destroyed. Empty: the caller holds it.
  std::string lock_holder;
};

// Checks that `spec` is a volume (without leaving anything behind in a
// directory that is not one), takes the lock if asked, opens and recovers.
Result<std::unique_ptr<Store>> OpenVolume(const std::string& spec, const OpenVolumeOptions& o);

}  // namespace dbfs::mvcc
