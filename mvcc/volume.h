// Opening a volume's versioned store: the one place above the
// implementations that knows which mvcc::Store a volume specification names:
//
//   /path/to/dir                      a LocalStore (LMDB + WAL in a directory)
//   etcd://H:P[,H:P...]/NAME          a ClusterStore (metadata on etcd, data
//                                     in RADOS; docs/cluster.md), when the
//                                     build has cluster support
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kvstore/status.h"
#include "mvcc/local_store.h"
#include "mvcc/store.h"

namespace dbfs::mvcc {

// How to reach a cluster volume's engines from this machine.
struct ClusterOpenOptions {
  // Bound on every etcd and RADOS call (-o cluster_timeout=).
  std::chrono::milliseconds timeout{10000};
  // Override what the volume's superblock says (-o ceph_conf=, ceph_id=).
  std::string ceph_conf;
  std::string ceph_user;
};

struct OpenVolumeOptions {
  StoreOptions local;  // tuning of a LocalStore (read_only applies to both kinds)
  ClusterOpenOptions cluster;
  // Non-empty: take the volume lock for this program ("dbfs-mount") first,
  // waiting briefly for a daemon that is still finishing an unmount; the
  // store holds it until it is destroyed. Empty: the caller holds it.
  // Cluster volumes have no lock: any number of mounts share them.
  std::string lock_holder;
};

// Whether `spec` names a cluster volume (etcd://...).
bool IsClusterVolume(const std::string& spec);
// Whether this build can open cluster volumes.
bool ClusterSupportBuilt();

// Checks that `spec` is a volume (without leaving anything behind in a
// directory that is not one), takes the lock if asked, opens and recovers.
Result<std::unique_ptr<Store>> OpenVolume(const std::string& spec, const OpenVolumeOptions& o);

// Creates the store of a cluster volume (superblock, counters) named by
// `meta_url` (etcd://...) with its data in `data_url` (rados://POOL[?conf=
// PATH&id=USER]). Exists if the name is taken, unless `force`.
Status CreateClusterVolume(const std::string& meta_url, const std::string& data_url, bool force,
                           const ClusterOpenOptions& o);

}  // namespace dbfs::mvcc
