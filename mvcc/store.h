// Store: the versioned-store interface under the transaction layer (DESIGN
// §9). Everything above mvcc/ (txn/, fs/, the tools) talks to a volume's
// metadata and file data through it and never names an implementation; the
// code that opens a volume (mvcc/volume.h) picks one:
//
//   LocalStore   (mvcc/local_store.h)  LMDB + WAL on one machine: the embedded
//                                      default.
//
// The model: every commit publishes a batch of writes under the next commit
// sequence number (CSN). A snapshot is a CSN; a read at snapshot S sees, for
// every key, the newest version with csn <= S. No layer above may assume
// anything about how versions are stored (CSNs inside keys, an overlay, a
// remote revision): it only acquires snapshots, reads at them and commits.
//
// Concurrency control is split: callers that serialize themselves (autocommit
// operations under inode locks) commit without validation; optimistic
// transactions hand the store their validation set (keys and ranges that
// must be unchanged since their snapshot) and the store checks it atomically
// with the commit — first committer wins. Keys that must not conflict but
// combine (a directory's link count and times under concurrent entry
// changes) are merged: their value is computed at commit time from the
// latest committed one.
//
// History (docs/ARCHITECTURE.md §11): a store keeps old versions when asked
// — named snapshots pin the state at their CSN, and a retention window keeps
// every state of its last DURATION — and keeps a commit log: per commit its
// time, who made it (CommitMeta) and the keys it changed, for as long as any
// retained state needs it. Reads at a retained CSN go through
// AcquireSnapshotAt; version GC never drops a version a retained state sees.
//
// Thread-safe: every method may be called from any thread, concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvstore/status.h"
#include "mvcc/keys.h"
#include "mvcc/redo.h"

namespace dbfs::mvcc {

// Where file bytes live in the store's data space: `segment` names a unit of
// it (a WAL segment of a LocalStore), `offset` the first byte, `length` the
// byte count. Written once, never changed, read by reference.
struct DataRef {
  uint32_t segment = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

struct KeyRef {
  Table table;
  std::string key;
};

// [begin, end) of one table; an empty `end` is unbounded.
struct RangeRef {
  Table table;
  std::string begin, end;
};

// Whether a change of a key from `before` to `after` (both live values)
// leaves what a transaction read intact — an inode record that differs only
// in atime, file data moved by a checkpoint — and so is not a conflict.
using BenignChange = std::function<bool(Table, std::string_view before, std::string_view after)>;

// What an optimistic transaction depends on: none of it may have a committed
// version newer than `snapshot` (unless the change is benign) when it
// commits. Checked in this order, the first failure named: written keys
// (first committer wins), read ranges (phantoms), read keys.
struct ValidationSet {
  Csn snapshot = 0;
  std::vector<KeyRef> write_keys;
  std::vector<RangeRef> read_ranges;
  std::vector<KeyRef> read_keys;
  BenignChange benign;
};

// A key whose committed value is computed at commit time from its latest
// committed value (nullopt: absent). The function may refuse with kConflict.
struct Merge {
  Table table;
  std::string key;
  std::function<Result<std::optional<std::string>>(const std::optional<std::string>& latest)> fn;
};

struct CommitRequest {
  std::vector<Write> writes;
  // Who makes the commit (the commit log). The store adds the time.
  CommitMeta meta{};
  std::vector<Merge> merges;
  // Unset: the caller's own locking makes the batch safe (autocommit).
  std::optional<ValidationSet> validation;
  // Returns only once the commit is durable.
  bool durable = false;
};

struct CommitResult {
  Csn csn = 0;
};

// Why a commit was refused with kConflict.
struct Conflict {
  enum class Kind { kWrite, kPhantom, kRead, kMerge } kind = Kind::kWrite;
  KeyRef key;  // the key that changed (for a phantom: the entry that appeared or went)
};

struct RecoveryReport {
  uint64_t records_replayed = 0;
  uint64_t commits_replayed = 0;
  uint64_t bytes_discarded = 0;
  bool torn_tail = false;
  double millis = 0;
};

struct WalStats {
  uint64_t appends = 0;        // records appended since open
  uint64_t bytes = 0;          // bytes appended since open, headers included
  uint64_t syncs = 0;          // fdatasyncs done
  uint64_t sync_requests = 0;  // callers that asked for durability
  uint64_t segments_created = 0;
  // Where the log ends now, and the end of what is durable: a caller that
  // saw its commit below written_lsn and later synced_lsn >= that knows a
  // sync finished after the commit was appended (0 where there is no log).
  uint64_t written_lsn = 0;
  uint64_t synced_lsn = 0;
};

struct StoreStats {
  uint64_t commits = 0;
  uint64_t flushes = 0;
  uint64_t gc_versions_dropped = 0;
  uint64_t overlay_bytes = 0;
  uint64_t lmdb_bytes = 0;
  WalStats wal{};
  RecoveryReport recovery{};
};

// The space the store may use (statfs of a LocalStore's directory).
struct Space {
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t avail_bytes = 0;  // free for unprivileged users
};

// Facts about the volume the store holds.
struct VolumeInfo {
  std::string uuid;
  uint32_t chunk_size = 1 << 20;  // bytes of file data per extents key
  std::string location;           // the volume directory (or cluster address)
};

// A named snapshot: the state at `csn` kept until it is deleted.
struct NamedSnapshot {
  std::string name;
  Csn csn = 0;
  uint64_t time_ns = 0;  // when it was created (CLOCK_REALTIME)
  uint32_t uid = 0;      // who created it
};

// One entry of the commit log.
struct CommitRecord {
  Csn csn = 0;
  uint64_t time_ns = 0;  // CLOCK_REALTIME; never decreases with the CSN (0: unknown)
  CommitMeta meta{};
  std::vector<KeyRef> keys;  // every key the commit wrote
};

// What history the store keeps right now.
struct Retention {
  // Every state at a CSN in [horizon, visible_csn()] is kept (the retention
  // window, or only the latest state when the window is 0).
  Csn horizon = 0;
  uint64_t window_ns = 0;
  // The oldest CSN whose commit-log entry is kept (entries of older commits
  // are gone; diffs between retained states need only kept entries).
  Csn log_from = 0;
  std::vector<NamedSnapshot> snapshots;  // by CSN
  // Whether the state at `csn` is kept (inside the window or a snapshot's).
  bool Keeps(Csn csn, Csn visible) const;
};

class Store;
class SegmentedData;

// A registered snapshot: the store keeps every version it can see until it
// is destroyed. Move-only RAII.
class Snapshot {
 public:
  Snapshot() = default;
  Snapshot(Snapshot&& o) noexcept : store_(o.store_), csn_(o.csn_) { o.store_ = nullptr; }
  Snapshot& operator=(Snapshot&& o) noexcept;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  ~Snapshot();
  Csn csn() const { return csn_; }

 private:
  friend class Store;
  Snapshot(Store* s, Csn csn) : store_(s), csn_(csn) {}
  Store* store_ = nullptr;
  Csn csn_ = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Makes everything committed durable in the store's home and releases it
  // (background work stopped). Idempotent; nothing else may follow.
  virtual Status Close() = 0;

  // ---- snapshots ----
  Snapshot AcquireSnapshot() { return Snapshot(this, RegisterSnapshot()); }
  // The newest CSN a new snapshot would get.
  virtual Csn visible_csn() const = 0;
  // Oldest registered snapshot (kMaxCsn when none).
  virtual Csn MinActiveSnapshot() = 0;
  // A snapshot at an older, retained state (Retention::Keeps): NotFound when
  // its versions are no longer kept. Registered like AcquireSnapshot's.
  Result<Snapshot> AcquireSnapshotAt(Csn csn) {
    DBFS_RETURN_IF_ERROR(RegisterSnapshotAt(csn));
    return Snapshot(this, csn);
  }

  // ---- reads at a snapshot ----
  // nullopt when absent or deleted at `snap`. kMaxCsn reads the latest.
  virtual Result<std::optional<std::string>> Get(Csn snap, Table t, std::string_view key) = 0;
  // Visits the live keys in [begin, end) (end empty: unbounded) visible at
  // `snap`, in key order, until fn returns false.
  virtual Status Scan(
      Csn snap, Table t, std::string_view begin, std::string_view end,
      const std::function<bool(std::string_view key, std::string_view value)>& fn) = 0;
  // CSN of the newest committed version of `key` (0: it never existed).
  virtual Result<Csn> NewestCsn(Table t, std::string_view key) = 0;

  // ---- commits ----
  // Publishes the request's writes (and merges) as one transaction under the
  // next CSN: all or nothing, visible to snapshots taken afterwards. On a
  // failed validation or merge returns kConflict and, if `conflict` is given,
  // says which key.
  virtual Result<CommitResult> Commit(CommitRequest req, Conflict* conflict = nullptr) = 0;
  // Makes every commit so far durable (group commit: concurrent callers
  // share the work).
  virtual Status SyncAll() = 0;

  // ---- file data ----
  // Stores bytes for a later commit to reference (durable with that commit).
  virtual Result<DataRef> AppendData(std::string_view bytes) = 0;
  // Reads n bytes at `off` within the bytes `ref` names.
  virtual Status ReadData(const DataRef& ref, uint64_t off, size_t n, char* out) = 0;

  // ---- inode numbers: unique for the volume's lifetime, never reused ----
  virtual uint64_t AllocateIno() = 0;
  virtual uint64_t next_ino() const = 0;

  // ---- maintenance ----
  // Moves committed state to its long-term home now (a LocalStore's overlay
  // into LMDB); version GC runs with it.
  virtual Status Flush() = 0;
  // The data space when it is a log a checkpoint compacts (fs/checkpoint.h);
  // nullptr for stores that reclaim data otherwise.
  virtual SegmentedData* segmented_data() { return nullptr; }

  // ---- history ----
  // Pins the current state under `name` (unique): atomic, constant time,
  // durable when it returns. Exists if `name` is taken.
  virtual Result<NamedSnapshot> CreateSnapshot(const std::string& name, const CommitMeta& who) = 0;
  // Unpins it; versions only it kept are collected. NotFound if unknown.
  virtual Status DeleteSnapshot(const std::string& name) = 0;
  virtual Result<std::vector<NamedSnapshot>> ListSnapshots() = 0;
  // Keeps every state of the last `window_ns` nanoseconds from now on (0:
  // only snapshots keep old states). States older than the horizon already
  // reached are never brought back.
  virtual void SetHistoryWindow(uint64_t window_ns) = 0;
  virtual Retention retention() = 0;
  // The CSN of the state at wall-clock time `time_ns` (the last commit at or
  // before it): NotFound when that state is not retained or the time is not
  // covered by the commit log; a time after the last commit gives visible_csn().
  virtual Result<Csn> CsnAt(uint64_t time_ns) = 0;
  // Visits the commit-log entries with from < csn <= to that are kept,
  // newest first if `newest_first`, until fn returns false.
  virtual Status ScanCommits(Csn from, Csn to, bool newest_first,
                             const std::function<bool(const CommitRecord&)>& fn) = 0;

  // ---- facts ----
  virtual const VolumeInfo& info() const = 0;
  // Whether other processes (mounts on other machines) use the volume at the
  // same time: nothing may then be reclaimed on the assumption that this
  // process is the only user (e.g. every orphan at mount time).
  virtual bool shared() const { return false; }
  // Receives the keys that other processes' commits changed (a shared()
  // volume), soon after each commit, in commit order, on a store thread, so
  // the layer above can drop what it caches about them. nullptr stops the
  // calls and returns after a call in progress. Stores nobody else writes to
  // never call it.
  using RemoteChangeListener = std::function<void(const std::vector<KeyRef>& keys)>;
  virtual void SetRemoteChangeListener(RemoteChangeListener fn) { (void)fn; }
  virtual StoreStats Stats() const = 0;
  virtual Result<Space> StatSpace() = 0;
  // Sticky failure: once an I/O error poisoned the store, every mutation
  // fails with it (the volume is read-only until remounted).
  virtual Status health() const = 0;

  // Test hook: stops background work and abandons the store without
  // flushing or syncing, as a killed process would. Only destruction may follow.
  virtual void TEST_Abandon() = 0;

 protected:
  Store() = default;
  // Registers a snapshot at visible_csn() and returns its CSN; released by
  // ReleaseSnapshot when the Snapshot goes away.
  virtual Csn RegisterSnapshot() = 0;
  // Registers a snapshot at `csn` if that state is retained (else NotFound).
  virtual Status RegisterSnapshotAt(Csn csn) = 0;
  virtual void ReleaseSnapshot(Csn csn) = 0;
  friend class Snapshot;
};

// A data space made of append-only segments, below a recovery point
// (applied_lsn), that a checkpoint compacts: it relocates the live bytes of
// sparse segments and deletes segments no version refers to.
class SegmentedData {
 public:
  virtual ~SegmentedData() = default;
  // Segments below this one are not needed to recover.
  virtual uint32_t recovery_segment() const = 0;
  // The segment being appended to.
  virtual uint32_t current_segment() const = 0;
  // Bytes at the start of every segment that hold no data (its header).
  virtual uint64_t header_bytes() const = 0;
  // Every segment and its size in bytes, ascending.
  virtual Result<std::vector<std::pair<uint32_t, uint64_t>>> Segments() = 0;
  // Deletes a segment nothing needs any more. REQUIRES (checked): below both
  // recovery_segment() and current_segment(); the caller guarantees no
  // version any snapshot can see refers to it.
  virtual Status RemoveSegment(uint32_t segment) = 0;
  // Visits every stored version of every key of `t` — tombstones as
  // nullopt — in no particular order.
  virtual Status ForEachVersion(
      Table t, const std::function<void(std::string_view key, Csn csn,
                                        std::optional<std::string_view> value)>& fn) = 0;
  // Visits every key of `t` in key order with all its stored versions,
  // ascending CSN (tombstones as nullopt), until fn returns an error.
  virtual Status ForEachKey(
      Table t,
      const std::function<Status(std::string_view key, const std::vector<Version>& versions)>&
          fn) = 0;
};

}  // namespace dbfs::mvcc
