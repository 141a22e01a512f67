// LocalStore: the embedded implementation of the versioned store
// (mvcc/store.h) — one volume directory on one machine (DESIGN §3, §4).
//
// Composition: LMDB (kvstore) holds flushed versions; the Overlay holds
// committed versions not yet flushed; the WAL holds file data (DATA records)
// and the redo of every commit (COMMIT records). A background flusher moves
// overlay versions into LMDB, recording the applied LSN in the same LMDB
// transaction, and garbage-collects versions no snapshot can see. Commits are
// serialized by one mutex that covers validation, the log append and the
// in-memory publication only.
//
// Only the code that opens volumes (mvcc/volume.cc), fsck and tests name
// this class; everything else uses mvcc::Store.
//
// Thread-safe unless noted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/env.h"
#include "kvstore/status.h"
#include "mvcc/keys.h"
#include "mvcc/overlay.h"
#include "mvcc/redo.h"
#include "mvcc/store.h"
#include "mvcc/volume_lock.h"
#include "wal/file_system.h"
#include "wal/record_format.h"
#include "wal/writer.h"

namespace dbfs::mvcc {

struct StoreOptions {
  wal::FileSystem* fs = nullptr;  // nullptr: POSIX
  uint64_t history_window_ns = 0;  // Store::SetHistoryWindow at open
  uint64_t segment_size = 64ull << 20;
  uint64_t flush_interval_ms = 200;            // background flush period
  uint64_t flush_overlay_bytes = 64ull << 20;  // flush early above this
  bool read_only = false;                      // fsck -n: no writes at all, no flusher
  // With read_only: not even LMDB's lock file is written (MDB_NOLOCK); only
  // for an owner of the volume lock (a read-only mount), since no writer
  // may run beside it.
  bool no_lock_file = false;
  uint64_t lmdb_initial_map_size = 256ull << 20;
};

class LocalStore final : public Store, private SegmentedData {
 public:
  // Opens the volume's store and recovers: replays COMMIT records past the
  // applied LSN into the overlay, then flushes them. `lock`, if held, is the
  // caller's VolumeLock of the volume: the store keeps it until destroyed.
  static Result<std::unique_ptr<LocalStore>> Open(const std::string& volume_dir,
                                                  const StoreOptions& opts,
                                                  VolumeLock lock = VolumeLock());
  ~LocalStore() override;

  // ---- Store ----
  // Stops the flusher, flushes everything, syncs WAL and LMDB. Idempotent.
  Status Close() override;
  Csn visible_csn() const override { return visible_csn_.load(std::memory_order_acquire); }
  Csn MinActiveSnapshot() override;
  Result<std::optional<std::string>> Get(Csn snap, Table t, std::string_view key) override;
  Status Scan(Csn snap, Table t, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view key, std::string_view value)>& fn) override;
  Result<Csn> NewestCsn(Table t, std::string_view key) override;
  // Validation and merges run under the commit mutex, so nothing commits in
  // between them and the publication.
  Result<CommitResult> Commit(CommitRequest req, Conflict* conflict = nullptr) override;
  Status SyncAll() override;
  // Appends file bytes to the WAL as a DATA record (not durable until a
  // later commit syncs).
  Result<DataRef> AppendData(std::string_view bytes) override;
  Status ReadData(const DataRef& ref, uint64_t off, size_t n, char* out) override;
  uint64_t AllocateIno() override { return next_ino_.fetch_add(1); }
  uint64_t next_ino() const override { return next_ino_.load(); }
  // Flushes the overlay up to the visible CSN into LMDB now.
  Status Flush() override;
  SegmentedData* segmented_data() override { return this; }
  const VolumeInfo& info() const override { return info_; }
  StoreStats Stats() const override;
  Result<Space> StatSpace() override;
  Status health() const override;
  void TEST_Abandon() override;
  Result<NamedSnapshot> CreateSnapshot(const std::string& name, const CommitMeta& who) override;
  Status DeleteSnapshot(const std::string& name) override;
  Result<std::vector<NamedSnapshot>> ListSnapshots() override;
  void SetHistoryWindow(uint64_t window_ns) override;
  Retention retention() override;
  Result<Csn> CsnAt(uint64_t time_ns) override;
  Status ScanCommits(Csn from, Csn to, bool newest_first,
                     const std::function<bool(const CommitRecord&)>& fn) override;

  // ---- local only ----
  // Commits `writes` with the next CSN, unvalidated (fsck repairs, tests).
  Result<CommitResult> Commit(std::vector<Write> writes, bool durable) {
    CommitRequest req;
    req.writes = std::move(writes);
    req.durable = durable;
    return Commit(std::move(req));
  }
  // The first key in [begin, end) with a version newer than `snap` (a
  // change, insertion or deletion after the snapshot), if any — phantom
  // detection. REQUIRES: a Snapshot at or below `snap` is registered, so GC
  // has kept every newer version and tombstone.
  Result<std::optional<std::string>> ChangedSince(Table t, std::string_view begin,
                                                  std::string_view end, Csn snap);
  // Durable up to `lsn` (group commit).
  Status SyncTo(wal::Lsn lsn);
  // The WAL position recovery would start from: everything before it is in
  // LMDB.
  wal::Lsn applied_lsn() const { return applied_lsn_.load(std::memory_order_acquire); }
  const RecoveryReport& recovery() const { return recovery_; }
  const std::string& volume_dir() const { return dir_; }
  // Number of LMDB versions stored for a logical key (tests of GC).
  Result<int> TEST_LmdbVersions(Table t, std::string_view key);

 protected:
  Csn RegisterSnapshot() override;
  Status RegisterSnapshotAt(Csn csn) override;
  void ReleaseSnapshot(Csn csn) override;

 private:
  LocalStore() = default;

  // ---- SegmentedData (checkpoint support) ----
  uint32_t recovery_segment() const override { return wal::LsnSegment(applied_lsn()); }
  uint32_t current_segment() const override { return wal_ ? wal_->current_segment() : 0; }
  uint64_t header_bytes() const override { return wal::kSegmentDataStart; }
  Result<std::vector<std::pair<uint32_t, uint64_t>>> Segments() override;
  Status RemoveSegment(uint32_t segment) override;
  Status ForEachVersion(
      Table t, const std::function<void(std::string_view key, Csn csn,
                                        std::optional<std::string_view> value)>& fn) override;
  Status ForEachKey(Table t, const std::function<Status(std::string_view key,
                                                        const std::vector<Version>& versions)>&
                                 fn) override;

  // What version GC keeps: every version a state at csn >= `continuous`
  // sees, and the versions the named snapshots `pins` (ascending) see.
  struct GcPolicy {
    Csn continuous = 0;
    // The same without registered (reader) snapshots: a key that keeps more
    // under `continuous` than under this is revisited at the next flush.
    Csn without_readers = 0;
    std::vector<Csn> pins;
  };
  Status Recover();
  Status LoadHistory();
  // Adds the log entry of a commit just published (or replayed).
  void RememberCommit(Csn csn, uint64_t time_ns, const CommitMeta& meta,
                      const std::vector<Write>& writes);
  // The largest logged CSN whose commit time is <= time_ns (0: none), from
  // the unflushed entries and LMDB.
  Result<Csn> LoggedCsnAtOrBefore(uint64_t time_ns);
  Status GcKeys(kv::WriteTxn& w, const GcPolicy& p, const std::set<std::pair<int, std::string>>& keys,
                std::set<std::pair<int, std::string>>* pending);
  // Calls fn(table, key) for every key of the LMDB log entries from < csn <= to.
  Status LoggedKeys(kv::WriteTxn& w, Csn from, Csn to, std::set<std::pair<int, std::string>>* out);
  // REQUIRES: commit_mu_ held. Checks `v` against the latest committed state.
  Status Validate(const ValidationSet& v, Conflict* conflict);
  void FlusherLoop();
  Status FlushLocked();  // REQUIRES: flush_mu_ held
  Status GcKey(kv::WriteTxn& w, Table t, std::string_view key, const GcPolicy& p, bool* pending);
  void SetFailed(const Status& s);

  std::string dir_;
  VolumeInfo info_;
  StoreOptions opts_;
  VolumeLock lock_;
  std::unique_ptr<kv::Env> env_;
  kv::Table tables_[kNumTables];
  kv::Table meta_;
  kv::Table snapshots_table_;  // name -> NamedSnapshot (EncodeSnapshotRecord)
  kv::Table log_table_;        // BE64(csn) -> commit log entry (EncodeLogRecord)
  std::unique_ptr<wal::Writer> wal_;
  Overlay overlay_;
  RecoveryReport recovery_;

  // Lock order: commit_mu_ before overlay part mutexes; flush_mu_ before
  // commit_mu_; snap_mu_ is a leaf.
  std::mutex commit_mu_;
  Csn last_csn_ = 0;       // guarded by commit_mu_
  wal::Lsn last_lsn_ = 0;  // end LSN of the last commit, guarded by commit_mu_
  std::atomic<Csn> visible_csn_{0};
  std::atomic<uint64_t> next_ino_{2};
  std::atomic<uint64_t> commits_{0};

  uint64_t last_time_ns_ = 0;  // time of the last commit, guarded by commit_mu_

  std::mutex snap_mu_;
  std::map<Csn, int> active_snaps_;  // guarded by snap_mu_
  // History: named snapshots, and the horizon from which every state is
  // kept. The flusher moves the horizon forward (never back) under snap_mu_,
  // so a snapshot registered at a retained CSN is never collected under it.
  std::map<std::string, NamedSnapshot> named_;  // guarded by snap_mu_
  std::multiset<Csn> pins_;                     // their CSNs, guarded by snap_mu_
  Csn horizon_ = 0;                             // guarded by snap_mu_
  Csn log_from_ = 0;                            // guarded by snap_mu_
  std::atomic<uint64_t> window_ns_{0};
  std::mutex history_mu_;  // serializes CreateSnapshot and DeleteSnapshot

  // Log entries of commits not yet flushed (ascending CSN, contiguous). The
  // flusher writes them into LMDB before trimming them (the overlay's rule).
  mutable std::mutex recent_mu_;
  std::map<Csn, CommitRecord> recent_;  // guarded by recent_mu_

  std::mutex flush_mu_;
  Csn flushed_csn_ = 0;                               // guarded by flush_mu_
  std::atomic<wal::Lsn> applied_lsn_{0};              // written under flush_mu_
  std::set<std::pair<int, std::string>> gc_pending_;  // guarded by flush_mu_
  std::atomic<uint64_t> flushes_{0};
  std::atomic<uint64_t> gc_dropped_{0};

  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool stop_ = false;  // guarded by bg_mu_
  std::thread flusher_;
  bool closed_ = false;

  mutable std::mutex fail_mu_;
  Status failed_;  // guarded by fail_mu_
};

}  // namespace dbfs::mvcc
