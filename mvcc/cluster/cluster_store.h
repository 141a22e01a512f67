// ClusterStore: the versioned store (mvcc/store.h) of a cluster volume —
// metadata, versions and transactions on an etcd cluster, file data in a
// Ceph RADOS pool (issue 13; docs/cluster.md "The cluster store" has the key
// layout and the commit protocol). Any number of ClusterStores (one per
// mount, on any machine) open the same volume at once.
//
// The model maps onto etcd directly:
//   CSN            = etcd revision. Every commit also puts the volume's head
//                    key, so the head's mod_revision is the newest commit.
//   snapshot read  = Range at revision = snapshot (serializable: any member
//                    answers, and the history at a revision never changes).
//   tombstone      = a key whose value is the one byte 0x00 (never an etcd
//                    delete: a compare on the key's mod_revision must see
//                    the delete); live values carry a 0x01 tag byte.
//   commit         = one etcd Txn: compares check that every written key,
//                    read key and read range (a range compare) has
//                    mod_revision <= snapshot; the success branch puts the
//                    writes, the head and a commit-log key unique to the
//                    commit (it makes an in-doubt commit recognisable).
//   version GC     = etcd compaction below the oldest state any mount still
//                    reads (each mount publishes it under its session lease).
//   file data      = RADOS objects "<uuid hex>.<segment %08x>"; a mount
//                    appends to a segment of its own (ids from an etcd
//                    counter), written and acknowledged before the commit
//                    that references them.
//   inode numbers  = batches from an etcd counter (unique across mounts).
//
// The layer above never learns about etcd: it sees an mvcc::Store.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/status.h"
#include "mvcc/cluster/etcd_client.h"
#include "mvcc/cluster/rados_client.h"
#include "mvcc/store.h"

namespace dbfs::mvcc::cluster {

// Where a cluster volume lives and how to reach it.
struct ClusterVolume {
  std::string endpoints;  // etcd "host:port[,host:port...]"
  std::string name;       // the volume's name: its keys live under /dbfs/<name>/
  std::string pool;       // RADOS pool of the data objects
  std::string ceph_conf;  // ceph.conf path ("" = librados' default search)
  std::string ceph_user = "admin";
};

// "etcd://H:P[,H:P...]/NAME" -> endpoints + name. Invalid with a message
// naming the expected form otherwise.
Result<ClusterVolume> ParseMetaUrl(const std::string& url);
// "rados://POOL[?conf=PATH&id=USER]" -> pool, conf, user (into `v`).
Status ParseDataUrl(const std::string& url, ClusterVolume* v);
// Whether `spec` names a cluster volume (starts with "etcd://").
bool IsClusterSpec(const std::string& spec);

struct ClusterStoreOptions {
  ClusterVolume volume;
  // Upper bound on every etcd and RADOS call (the mount's cluster_timeout).
  std::chrono::milliseconds timeout{10000};
  // Session lease TTL: a dead mount's published state goes after this.
  int64_t lease_ttl_s = 10;
  // Background maintenance period (publishing the oldest snapshot, history
  // horizon, commit-log trimming, compaction).
  std::chrono::milliseconds maintenance_interval{1000};
  // Data segment objects roll over at this size.
  uint64_t segment_size = 64ull << 20;
  // Inode numbers taken from the volume counter at a time.
  uint64_t ino_batch = 1024;
  // Compact only when the target moved at least this many revisions.
  int64_t compact_every = 1000;
  // fsck -n, mount -o ro: no commits, no data; the session (lease, published
  // oldest snapshot) is still kept, so compaction spares what it reads.
  bool read_only = false;
};

// The etcd server limits the store needs (checked at create and open).
inline constexpr int kRequiredMaxTxnOps = 16384;
inline constexpr int64_t kRequiredMaxRequestBytes = 33554432;

struct ClusterStats {
  uint64_t etcd_txns = 0;
  uint64_t etcd_ranges = 0;
  uint64_t rados_writes = 0;
  uint64_t rados_reads = 0;
  uint64_t commit_retries = 0;  // internal retries (a merged or benign key moved)
  uint64_t in_doubt = 0;        // commits whose outcome had to be resolved
};

class ClusterStore final : public Store {
 public:
  // Creates the volume: superblock, counters and head under /dbfs/<name>/.
  // Exists when the name is taken (unless `force`: the old keys and data
  // objects are removed first).
  static Status Create(const ClusterStoreOptions& opts, bool force, uint32_t chunk_size = 1 << 20);
  // Opens an existing volume (NotFound naming it otherwise) and starts the
  // session: lease, published state, watch, maintenance thread.
  static Result<std::unique_ptr<ClusterStore>> Open(const ClusterStoreOptions& opts);
  ~ClusterStore() override;

  // ---- Store ----
  Status Close() override;
  Csn visible_csn() const override { return visible_.load(std::memory_order_acquire); }
  Csn MinActiveSnapshot() override;
  Result<std::optional<std::string>> Get(Csn snap, Table t, std::string_view key) override;
  Status Scan(Csn snap, Table t, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view key, std::string_view value)>& fn) override;
  Result<Csn> NewestCsn(Table t, std::string_view key) override;
  Result<CommitResult> Commit(CommitRequest req, Conflict* conflict = nullptr) override;
  // etcd acknowledges a txn once a quorum has it on disk: every commit is
  // durable when it returns.
  Status SyncAll() override { return Status::Ok(); }
  Result<DataRef> AppendData(std::string_view bytes) override;
  Status ReadData(const DataRef& ref, uint64_t off, size_t n, char* out) override;
  uint64_t AllocateIno() override;
  uint64_t next_ino() const override;
  // Runs one maintenance pass now.
  Status Flush() override;
  Result<NamedSnapshot> CreateSnapshot(const std::string& name, const CommitMeta& who) override;
  Status DeleteSnapshot(const std::string& name) override;
  Result<std::vector<NamedSnapshot>> ListSnapshots() override;
  void SetHistoryWindow(uint64_t window_ns) override;
  Retention retention() override;
  Result<Csn> CsnAt(uint64_t time_ns) override;
  Status ScanCommits(Csn from, Csn to, bool newest_first,
                     const std::function<bool(const CommitRecord&)>& fn) override;
  const VolumeInfo& info() const override { return info_; }
  bool shared() const override { return true; }
  // Fed by the store's watch on the volume (other mounts' commits).
  void SetRemoteChangeListener(RemoteChangeListener fn) override;
  StoreStats Stats() const override;
  Result<Space> StatSpace() override;
  Status health() const override;
  void TEST_Abandon() override;

  // ---- cluster only ----
  ClusterStats cluster_stats() const;
  uint64_t mount_id() const { return mount_id_; }
  const std::string& prefix() const { return prefix_; }
  // The etcd key of a table row (tests and fsck).
  std::string TableKey(Table t, std::string_view key) const;

 protected:
  Csn RegisterSnapshot() override;
  Status RegisterSnapshotAt(Csn csn) override;
  void ReleaseSnapshot(Csn csn) override;

 private:
  ClusterStore() = default;

  struct Attempt;  // one try of a commit (cluster_store.cc)

  Status Start();
  // Stops the maintenance thread, the watch and the lease renewal.
  void StopBackground();
  void MaintenanceLoop();
  Status MaintainOnce();
  Status PublishSession(Csn oldest);
  // Takes n values of the counter at `key`: returns the first.
  Result<uint64_t> Reserve(const std::string& key, uint64_t n);
  // The live value of an etcd key holding a tagged value at `rev` (0 = now).
  Result<std::optional<std::string>> GetRaw(const std::string& key, int64_t rev);
  Result<KeyValue> Latest(const std::string& key);
  // After a failed commit attempt: finds what moved (conflict -> error).
  Status Diagnose(Attempt& a, const CommitRequest& req, Conflict* conflict);
  // An in-doubt commit: did the txn that puts `log_key` apply?
  Result<std::optional<int64_t>> ResolveInDoubt(const std::string& log_key);
  Result<std::vector<NamedSnapshot>> LoadSnapshots();
  // Log keys (all or up to time_ns) with their revisions.
  Status ScanLog(const std::function<void(const KeyValue&)>& fn, uint64_t up_to_time_ns,
                 bool keys_only);
  void SeeRevision(Csn csn);
  std::string ObjectName(uint32_t segment) const;

  ClusterStoreOptions opts_;
  std::string prefix_;  // "/dbfs/<name>/"
  VolumeInfo info_;
  std::string uuid_hex_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<RadosClient> rados_;

  uint64_t mount_id_ = 0;
  int64_t lease_ = 0;
  std::unique_ptr<LeaseKeeper> keeper_;
  std::atomic<bool> lease_lost_{false};
  // The volume's watch: `head` moves visible_csn, table rows go to the
  // listener (unless this store committed them).
  std::unique_ptr<Watch> watch_;
  void OnWatch(const WatchBatch& b);
  std::mutex listener_mu_;
  RemoteChangeListener listener_;  // guarded by listener_mu_ (held while calling it)
  std::mutex own_mu_;
  std::set<int64_t> own_revs_;  // this store's commits the watch has not passed; guarded by own_mu_
  void RememberOwn(int64_t rev);

  std::atomic<Csn> visible_{0};
  std::atomic<uint64_t> commit_seq_{0};
  std::mutex time_mu_;
  uint64_t last_time_ns_ = 0;  // guarded by time_mu_

  std::mutex snap_mu_;
  std::map<Csn, int> active_snaps_;  // guarded by snap_mu_
  // Retention as of the last maintenance pass / history call.
  std::vector<NamedSnapshot> named_;  // guarded by snap_mu_
  Csn horizon_ = 0;                   // guarded by snap_mu_; 0: no window
  std::atomic<uint64_t> window_ns_{0};
  int64_t compacted_ = 0;  // maintenance thread only

  mutable std::mutex ino_mu_;
  uint64_t ino_next_ = 0, ino_end_ = 0;  // guarded by ino_mu_
  mutable uint64_t ino_seen_ = 0;         // the volume counter as last read; guarded by ino_mu_

  std::mutex data_mu_;
  uint32_t seg_ = 0;      // guarded by data_mu_; 0: none yet
  uint64_t seg_off_ = 0;  // guarded by data_mu_

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool stop_ = false;  // guarded by bg_mu_
  std::thread maintenance_;
  bool closed_ = false;

  mutable std::atomic<uint64_t> commits_{0}, txns_{0}, ranges_{0}, rados_writes_{0},
      rados_reads_{0}, retries_{0}, in_doubt_{0};
};

}  // namespace dbfs::mvcc::cluster
