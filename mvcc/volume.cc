#include "mvcc/volume.h"

#include "mvcc/superblock.h"
#include "mvcc/volume_lock.h"
#ifdef DBFS_HAVE_CLUSTER
#include "mvcc/cluster/cluster_store.h"
#endif

namespace dbfs::mvcc {
namespace {

[[maybe_unused]] Status NoClusterSupport(const std::string& spec) {
  return Status::NotSupported(spec +
                              ": this build has no cluster support (install the cluster "
                              "packages with tools/install-deps.sh --cluster and rebuild)");
}

#ifdef DBFS_HAVE_CLUSTER
cluster::ClusterStoreOptions ClusterOptions(const cluster::ClusterVolume& v,
                                            const ClusterOpenOptions& o) {
  cluster::ClusterStoreOptions co;
  co.volume = v;
  if (!o.ceph_conf.empty()) co.volume.ceph_conf = o.ceph_conf;
  if (!o.ceph_user.empty()) co.volume.ceph_user = o.ceph_user;
  co.timeout = o.timeout;
  return co;
}
#endif

}  // namespace

bool IsClusterVolume(const std::string& spec) { return spec.rfind("etcd://", 0) == 0; }

bool ClusterSupportBuilt() {
#ifdef DBFS_HAVE_CLUSTER
  return true;
#else
  return false;
#endif
}

Result<std::unique_ptr<Store>> OpenVolume(const std::string& spec, const OpenVolumeOptions& o) {
  if (IsClusterVolume(spec)) {
#ifdef DBFS_HAVE_CLUSTER
    DBFS_ASSIGN_OR_RETURN(cluster::ClusterVolume v, cluster::ParseMetaUrl(spec));
    cluster::ClusterStoreOptions co = ClusterOptions(v, o.cluster);
    // The pool (and by default the Ceph conf and user) come from the
    // volume's superblock.
    co.read_only = o.local.read_only;
    DBFS_ASSIGN_OR_RETURN(auto store, cluster::ClusterStore::Open(co));
    return std::unique_ptr<Store>(std::move(store));
#else
    return NoClusterSupport(spec);
#endif
  }
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

Status CreateClusterVolume(const std::string& meta_url, const std::string& data_url, bool force,
                           const ClusterOpenOptions& o) {
#ifdef DBFS_HAVE_CLUSTER
  DBFS_ASSIGN_OR_RETURN(cluster::ClusterVolume v, cluster::ParseMetaUrl(meta_url));
  DBFS_RETURN_IF_ERROR(cluster::ParseDataUrl(data_url, &v));
  return cluster::ClusterStore::Create(ClusterOptions(v, o), force);
#else
  (void)data_url, (void)force, (void)o;
  return NoClusterSupport(meta_url);
#endif
}

}  // namespace dbfs::mvcc
