// Store: the versioned key-value engine under the transaction layer
// (DESIGN §3, §4, §9). It is the narrow seam a distributed backend would
// implement: take a snapshot, read (point and range) at it, commit a batch of
// writes that gets the next CSN, and keep file data bytes.
//
// Composition: LMDB (kvstore) holds flushed versions; the Overlay holds
// committed versions not yet flushed; the WAL holds file data (DATA records)
// and the redo of every commit (COMMIT records). A background flusher moves
// overlay versions into LMDB, recording the applied LSN in the same LMDB
// transaction, and garbage-collects versions no snapshot can see.
//
// Thread-safe unless noted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/env.h"
#include "kvstore/status.h"
#include "mvcc/keys.h"
#include "mvcc/overlay.h"
#include "mvcc/redo.h"
#include "wal/file_system.h"
#include "wal/writer.h"

namespace dbfs::mvcc {

struct StoreOptions {
  wal::FileSystem* fs = nullptr;            // nullptr: POSIX
  uint64_t segment_size = 64ull << 20;
  uint64_t flush_interval_ms = 200;         // background flush period
  uint64_t flush_overlay_bytes = 64ull << 20;  // flush early above this
  bool read_only = false;                   // fsck -n: no writes at all, no flusher
  uint64_t lmdb_initial_map_size = 256ull << 20;
};

// Where file bytes live: inside the payload of a WAL DATA record.
struct DataRef {
  uint32_t segment = 0;
  uint64_t offset = 0;  // byte offset in the segment file of the first byte
  uint32_t length = 0;
};

struct CommitResult {
  Csn csn = 0;
  wal::Lsn end_lsn = 0;
};

struct RecoveryReport {
  uint64_t records_replayed = 0;
  uint64_t commits_replayed = 0;
  uint64_t bytes_discarded = 0;
  bool torn_tail = false;
  double millis = 0;
};

struct StoreStats {
  uint64_t commits = 0;
  uint64_t flushes = 0;
  uint64_t gc_versions_dropped = 0;
  uint64_t overlay_bytes = 0;
  uint64_t lmdb_bytes = 0;
  wal::WriterStats wal{};
};

class Store;

// A registered snapshot: the flusher keeps every version it can see.
// Move-only RAII; releases its registration on destruction.
class Snapshot {
 public:
  Snapshot() = default;
  Snapshot(Store* s, Csn csn) : store_(s), csn_(csn) {}
  Snapshot(Snapshot&& o) noexcept : store_(o.store_), csn_(o.csn_) { o.store_ = nullptr; }
  Snapshot& operator=(Snapshot&& o) noexcept;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  ~Snapshot();
  Csn csn() const { return csn_; }

 private:
  Store* store_ = nullptr;
  Csn csn_ = 0;
};

class Store {
 public:
  // Opens the volume's store and recovers: replays COMMIT records past the
  // applied LSN into the overlay, then flushes them.
  static Result<std::unique_ptr<Store>> Open(const std::string& volume_dir,
                                             const StoreOptions& opts);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Stops the flusher, flushes everything, syncs WAL and LMDB. Idempotent.
  Status Close();

  Snapshot AcquireSnapshot();
  Csn visible_csn() const { return visible_csn_.load(std::memory_order_acquire); }

  // Point read at snapshot `snap`: nullopt when absent or deleted.
  Result<std::optional<std::string>> Get(Csn snap, Table t, std::string_view key);
  // Visits the live keys in [begin, end) (end empty: unbounded) visible at
  // `snap`, in key order, until fn returns false.
  Status Scan(Csn snap, Table t, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);
  // Newest committed csn of `key` (0 if it never existed) — for validation.
  Result<Csn> NewestCsn(Table t, std::string_view key);
  // The first key in [begin, end) with a version newer than `snap` (a
  // change, insertion or deletion after the snapshot), if any — phantom
  // detection for serializable validation. REQUIRES: a Snapshot at or below
  // `snap` is registered, so GC has kept every newer version and tombstone.
  Result<std::optional<std::string>> ChangedSince(Table t, std::string_view begin,
                                                  std::string_view end, Csn snap);

  // Appends file bytes to the WAL (not durable until a later commit syncs).
  Result<DataRef> AppendData(std::string_view bytes);
  Status ReadData(const DataRef& ref, uint64_t off, size_t n, char* out);

  // Commits `writes` as one transaction with the next CSN: logged, then
  // visible. When durable, returns only after the COMMIT record is synced.
  // `validate`, if set, runs under the commit mutex before the CSN is taken
  // and may refuse the commit (used by optimistic transactions).
  Result<CommitResult> Commit(std::vector<Write> writes, bool durable,
                              const std::function<Status()>& validate = nullptr);
  // Durable up to `lsn` (group commit).
  Status SyncTo(wal::Lsn lsn);
  Status SyncAll();

  uint64_t AllocateIno() { return next_ino_.fetch_add(1); }
  uint64_t next_ino() const { return next_ino_.load(); }

  // Flushes the overlay up to the visible CSN into LMDB now.
  Status Flush();

  // ---- checkpoint support (fuse/checkpoint.h drives it) ----
  // Oldest registered snapshot (kMaxCsn when none).
  Csn MinActiveSnapshot();
  // The WAL position recovery would start from: everything before it is in
  // LMDB. Segments below LsnSegment(applied_lsn()) are not needed to replay.
  wal::Lsn applied_lsn() const { return applied_lsn_.load(std::memory_order_acquire); }
  // The WAL segment being appended to (0 when read-only).
  uint32_t wal_segment() const { return wal_ ? wal_->current_segment() : 0; }
  // Every WAL segment file and its size, ascending.
  Result<std::vector<std::pair<uint32_t, uint64_t>>> WalSegments();
  // Deletes a WAL segment nothing needs any more. REQUIRES (checked): below
  // both the applied LSN's segment and the segment being written; the caller
  // guarantees no version any snapshot can see refers to it.
  Status RemoveWalSegment(uint32_t segment);
  // Visits every stored version of every key of `t` — overlay and LMDB,
  // tombstones as nullopt — in no particular order.
  Status ForEachVersion(Table t, const std::function<void(std::string_view key, Csn csn,
                                                          std::optional<std::string_view> value)>& fn);

  const RecoveryReport& recovery() const { return recovery_; }
  StoreStats Stats() const;
  const std::string& uuid() const { return uuid_; }
  uint32_t chunk_size() const { return chunk_size_; }
  const std::string& volume_dir() const { return dir_; }
  // Test hook: stops background work and abandons the store without
  // flushing or syncing, as a killed process would.
  void TEST_Abandon();
  // Number of LMDB versions stored for a logical key (tests of GC).
  Result<int> TEST_LmdbVersions(Table t, std::string_view key);

  // Sticky I/O failure: once set, every mutation fails (volume read-only).
  Status health() const;

 private:
  friend class Snapshot;
  Store() = default;
  Status Recover();
  void ReleaseSnapshot(Csn csn);
  void FlusherLoop();
  Status FlushLocked();  // REQUIRES: flush_mu_ held
  Status GcKey(kv::WriteTxn& w, Table t, std::string_view key, Csn min_active, bool* done);
  void SetFailed(const Status& s);

  std::string dir_;
  std::string uuid_;
  uint32_t chunk_size_ = 1 << 20;
  StoreOptions opts_;
  std::unique_ptr<kv::Env> env_;
  kv::Table tables_[kNumTables];
  kv::Table meta_;
  std::unique_ptr<wal::Writer> wal_;
  Overlay overlay_;
  RecoveryReport recovery_;

  // Lock order: commit_mu_ before overlay part mutexes; flush_mu_ before
  // commit_mu_; snap_mu_ is a leaf.
  std::mutex commit_mu_;
  Csn last_csn_ = 0;             // guarded by commit_mu_
  wal::Lsn last_lsn_ = 0;        // end LSN of the last commit, guarded by commit_mu_
  std::atomic<Csn> visible_csn_{0};
  std::atomic<uint64_t> next_ino_{2};
  std::atomic<uint64_t> commits_{0};

  std::mutex snap_mu_;
  std::map<Csn, int> active_snaps_;  // guarded by snap_mu_

  std::mutex flush_mu_;
  Csn flushed_csn_ = 0;  // guarded by flush_mu_
  std::atomic<wal::Lsn> applied_lsn_{0};  // written under flush_mu_
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
