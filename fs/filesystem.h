// Filesystem: the POSIX engine of DBFS — POSIX semantics over transactions
// on a versioned store (mvcc/store.h), addressed by inode number like the
// FUSE low-level API, but with no FUSE types: it is driven by the FUSE
// adapter (fuse/), the Elle protocol server (elle/server.h), or a unit test
// without a mount.
//
// Every mutating method is one transaction: all of it becomes visible (and,
// after a crash, recovered) or none of it — unless the caller runs inside an
// explicit transaction (Caller::tx), whose operations commit together.
// Thread-safe: every method may be called concurrently from any thread.
//
// Where each concern lives (all behind this one class):
//   fs/namespace.cc      lookup, create, mknod, mkdir, symlink, link, unlink, rmdir, rename
//   fs/data.cc           open, read, write, truncate, fallocate, lseek, copy_file_range
//   fs/slices.{h,cc}     the slice lists of file chunks
//   fs/attributes.cc     getattr, setattr, access, statfs
//   fs/xattrs.cc         extended attributes
//   fs/directories.cc    directory listings
//   fs/references.cc     kernel lookup/open references, orphans and their reclamation
//   fs/transactions.cc   explicit transactions: registry, operation scopes, commit, abort,
//                        limits and the reaper; fs/tx_locking.cc: --lock mode;
//                        fs/directory_deltas.cc: merged parent-directory changes
//   fs/checkpoint.{h,cc} WAL space reclamation
//   fs/stats.cc          counters
//   fs/inode_format.h    value formats of the tables
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs {

namespace mvcc {
class Store;
}
class Engine;
struct CheckpointReport;

inline constexpr uint64_t kRootIno = 1;
inline constexpr size_t kNameMax = 255;
// Largest file size DBFS accepts (EFBIG beyond): 8 EiB - 1 would overflow
// chunk arithmetic; 2^60 bytes is far beyond the 1 TiB the format promises.
inline constexpr uint64_t kMaxFileSize = uint64_t{1} << 60;

// Who is asking. With the kernel's default_permissions most access checks
// are done by the kernel; the filesystem still uses the caller for owner of
// new files, sticky-directory and setgid rules, and for Access().
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  int32_t pid = 0;
  uint32_t umask = 0;  // already applied by the kernel when it sends a mode
  // The explicit transaction the request runs in (0: none, autocommit). The
  // adapter finds it from the calling process (fuse/tx_binding.h); the Elle
  // server names its own.
  uint64_t tx = 0;
};

struct Attr {
  uint64_t ino = 0;
  uint64_t generation = 0;
  uint32_t mode = 0;  // type + permission bits, as in st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t nlink = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // 512-byte units actually allocated
  uint64_t rdev = 0;
  struct timespec atime {};
  struct timespec mtime {};
  struct timespec ctime {};
  struct timespec btime {};
  // A history view's inode (MNT/.dbfs): its contents never change, so the
  // kernel may cache it for long.
  bool immutable = false;

  void ToStat(struct stat* st) const;
};

// Which fields SetAttr changes (bit set), mirroring FUSE_SET_ATTR_*.
struct SetAttrIn {
  enum : uint32_t {
    kMode = 1u << 0,
    kUid = 1u << 1,
    kGid = 1u << 2,
    kSize = 1u << 3,
    kAtime = 1u << 4,
    kMtime = 1u << 5,
    kAtimeNow = 1u << 7,
    kMtimeNow = 1u << 8,
    kCtime = 1u << 10,
  };
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  struct timespec atime {};
  struct timespec mtime {};
  struct timespec ctime {};
};

struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  uint32_t type = 0;  // S_IFMT bits of the child
};

struct FsStat {
  uint64_t block_size = 4096;
  uint64_t blocks = 0;
  uint64_t blocks_free = 0;
  uint64_t blocks_avail = 0;
  uint64_t files = 0;
  uint64_t files_free = 0;
  uint64_t name_max = kNameMax;
};

struct FsOptions {
  bool sync = false;                // -o sync: every operation durable before it returns
  bool noatime = false;             // never update atime (default: relatime rules)
  // -o ro: nothing is ever written to the volume — no log records, no LMDB
  // writes, no orphan reclamation, no atime, no checkpoints, no lock-file
  // holder line; a log tail left by a crash is replayed in memory only.
  // Every change fails with EROFS.
  bool read_only = false;
  std::string log_level;            // informational; logging is set up by the caller
  uint64_t tx_timeout_s = 15 * 60;  // -o tx_timeout=: explicit transactions older are aborted
  uint64_t tx_max_bytes = uint64_t{4} << 30;  // -o tx_max_bytes=: data one transaction may write
  // Background checkpoints (fs/checkpoint.h, StartBackgroundCheckpoints): after this much WAL
  // (-o checkpoint_mb=, 0 = never by size) and every this many seconds when
  // anything was written (-o checkpoint_interval=, 0 = never by time).
  uint64_t checkpoint_bytes = uint64_t{256} << 20;
  uint64_t checkpoint_interval_s = 300;
  // How long a checkpoint waits for snapshots older than its relocations
  // before it leaves the segments to the next one.
  uint64_t checkpoint_barrier_ms = 5000;
  // WAL segment size (-o wal_segment_mb=): the unit of space reclamation.
  uint64_t wal_segment_bytes = uint64_t{64} << 20;
  // -o history=DURATION: every committed state of this many seconds back is
  // kept and browsable (0: only snapshots keep old states).
  uint64_t history_window_s = 0;
  // A transaction left open for review (`dbfs tx run --keep`) is aborted
  // after this many seconds (-o tx_keep_timeout=; tx_timeout does not apply).
  uint64_t tx_keep_timeout_s = 24 * 3600;
  // Cluster volumes (etcd://...; docs/cluster.md): every etcd and RADOS call
  // fails with EIO after this long (-o cluster_timeout=SECONDS), and how this
  // machine reaches Ceph if not as the volume says (-o ceph_conf=, ceph_id=).
  uint64_t cluster_timeout_ms = 10000;
  std::string ceph_conf;
  std::string ceph_user;
};

// Counters shown by `dbfs stats` (ForEachCounter in fs/stats.h names them).
struct FsStats {
  // store
  uint64_t commits = 0;
  uint64_t fsync_calls = 0;
  uint64_t wal_sync_requests = 0;
  uint64_t wal_syncs = 0;
  uint64_t wal_bytes = 0;
  uint64_t wal_segments_created = 0;
  uint64_t wal_written_lsn = 0;  // the log's end (segment << 32 | offset)
  uint64_t wal_synced_lsn = 0;   // everything before it is durable
  uint64_t flushes = 0;
  uint64_t gc_versions_dropped = 0;
  uint64_t overlay_bytes = 0;
  uint64_t lmdb_bytes = 0;
  uint64_t visible_csn = 0;
  uint64_t next_ino = 0;
  // explicit transactions, and the locks of --lock ones
  uint64_t tx_commits = 0;
  uint64_t tx_conflicts = 0;
  uint64_t tx_aborts = 0;
  uint64_t tx_aborts_deadlock = 0;
  uint64_t tx_lock_rebases = 0;
  uint64_t tx_lock_acquired = 0;
  uint64_t tx_lock_immediate = 0;
  uint64_t tx_lock_backoffs = 0;
  uint64_t tx_lock_waits = 0;
  uint64_t tx_lock_deadlocks = 0;
  uint64_t tx_lock_cancelled = 0;
  // recovery at open, checkpoints
  uint64_t recovery_commits_replayed = 0;
  uint64_t recovery_micros = 0;
  uint64_t checkpoints = 0;
  uint64_t checkpoint_relocated_bytes = 0;
  uint64_t checkpoint_segments_removed = 0;
  uint64_t checkpoint_bytes_removed = 0;
  // history (docs/ARCHITECTURE.md §11)
  uint64_t history_window_s = 0;
  uint64_t history_horizon_csn = 0;  // every state from this CSN on is kept
  uint64_t history_snapshots = 0;
  uint64_t history_log_from_csn = 0;
  // File data only old versions hold (not the current state), as measured by
  // the last checkpoint (dbfs checkpoint refreshes it).
  uint64_t history_bytes = 0;
};

// Where a Write comes from: how the kernel's page cache relates to it
// (fs/write_edges.h keeps writes and stale mapped pages from undoing each
// other).
enum class WriteOrigin {
  kCall,       // not through a kernel page cache (the Elle server, tests)
  kDirect,     // write(2) with direct I/O: the kernel dropped the range's cached pages first
  kPageCache,  // write(2) through the page cache, which now holds the bytes
  kWriteback,  // the kernel writing back dirty pages of a shared mapping
};

// A named snapshot, as `dbfs snapshot list` shows it.
struct SnapshotInfo {
  std::string name;
  uint64_t csn = 0;
  uint64_t time_ns = 0;
  uint32_t uid = 0;
  uint64_t used_bytes = 0;   // file data only this snapshot holds (ZFS's USED)
  uint64_t refer_bytes = 0;  // file data the snapshot's state refers to
};

// One changed path (`dbfs diff`, `dbfs log`).
struct Change {
  enum class Kind { kAdded, kRemoved, kModified, kAttributes, kRenamed };
  Kind kind = Kind::kModified;
  std::string path;      // at FROM for removed and renamed, else at TO
  std::string new_path;  // kRenamed: at TO
  bool dir = false;
  uint64_t size_before = 0, size_after = 0;
  uint64_t bytes_written = 0;  // file data written in between (new slices)
};

struct LogEntry {
  uint64_t csn = 0;
  uint64_t time_ns = 0;
  uint32_t uid = 0;
  int32_t pid = 0;
  std::string comm;
  uint64_t tx = 0;
  std::string tx_cmd;
  uint32_t flags = 0;  // mvcc kCommit* bits
  std::vector<Change> changes;
};

struct LogQuery {
  std::string path;       // only commits that changed it (or below it)
  uint64_t since_ns = 0;  // only commits at or after this time
  size_t limit = 0;       // at most this many (0: all)
  bool all = false;       // also the daemon's own commits (atime, reclamation, checkpoints)
};

// Parses the time forms of a point in history (ISO-8601, "@SECONDS[.frac]")
// into nanoseconds since the epoch; false for anything else.
bool ParsePointTime(std::string_view point, uint64_t* time_ns);

// How an explicit transaction runs.
struct TxOptions {
  bool serializable = true;  // false: snapshot isolation
  // Pessimistic mode (`dbfs tx run --lock`): an exclusive lock on every inode
  // it writes, and on every non-directory it reads, held until it ends;
  // conflicting --lock transactions wait for each other (ARCHITECTURE.md §8).
  bool lock = false;
  // The process the caller binds it to (shown by ListTx and in logs). A
  // transaction with root_pid 0 is joined by id only, and is forgotten once
  // ended by the daemon and unclaimed for twice tx_timeout.
  int32_t root_pid = 0;
  std::string cmd{};  // the root command line (the commit log shows it)
};

// How CommitTx or AbortTx ended a transaction.
struct TxOutcome {
  enum class Kind { kCommitted, kAborted, kConflict, kDeadlock };
  Kind kind = Kind::kAborted;
  uint64_t csn = 0;    // kCommitted: the commit's CSN
  std::string detail;  // kConflict: the path that changed; kDeadlock: the cycle
  uint64_t tx = 0;     // kept (left open for review): its id
};

// An open transaction, as `dbfs tx status` shows it.
struct TxInfo {
  uint64_t id = 0;
  int32_t root_pid = 0;
  uint32_t uid = 0;
  bool serializable = true;
  bool lock = false;
  double age_seconds = 0;
  // busy: one of its operations runs right now (the counts below are then
  // unknown); waiting_on: the inode whose --lock lock it waits for (0: none).
  bool busy = false;
  bool kept = false;  // left open for review, bound to no process
  uint64_t waiting_on = 0;
  uint64_t writes = 0;
  uint64_t data_bytes = 0;
  uint64_t locks = 0;
};

class Filesystem {
 public:
  // ---- volume lifecycle ----
  // Opens (and recovers) the volume `volume` (a volume directory), taking its
  // lock for this process until Close. Starts the transaction reaper;
  // background checkpoints start with StartBackgroundCheckpoints.
  static Result<std::unique_ptr<Filesystem>> Open(const std::string& volume,
                                                  const FsOptions& options);
  // The same over a store the caller opened (tests, tools).
  static Result<std::unique_ptr<Filesystem>> Open(std::unique_ptr<mvcc::Store> store,
                                                  const FsOptions& options);
  // Writes the initial state of a new volume (root directory, counters)
  // into `volume_dir`, whose superblock, meta/ and wal/ mkfs has created.
  static Status Initialize(const std::string& volume_dir);
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // Clean shutdown: aborts open transactions, reclaims orphans nobody
  // references, flushes everything and syncs, so the next mount needs no
  // recovery. Idempotent.
  Status Close();
  // Background checkpoints by WAL growth and time (FsOptions). Stopped by Close.
  void StartBackgroundCheckpoints();
  // Runs a checkpoint now and reports what it reclaimed.
  Result<CheckpointReport> Checkpoint();
  Result<FsStat> StatFs();
  // Makes every committed operation durable (syncfs).
  Status SyncAll(const Caller& c);
  FsStats Stats() const;

  // ---- namespace (fs/namespace.cc) ----
  // Lookup, Mknod, Mkdir, Symlink, Link and Create count one kernel lookup
  // reference on the returned inode (released by Forget).
  Result<Attr> Lookup(const Caller& c, uint64_t parent, std::string_view name);
  Result<Attr> Mknod(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode,
                     uint64_t rdev);
  Result<Attr> Mkdir(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode);
  Result<Attr> Symlink(const Caller& c, uint64_t parent, std::string_view name,
                       std::string_view target);
  Result<std::string> Readlink(const Caller& c, uint64_t ino);
  Status Unlink(const Caller& c, uint64_t parent, std::string_view name);
  Status Rmdir(const Caller& c, uint64_t parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Status Rename(const Caller& c, uint64_t parent, std::string_view name, uint64_t newparent,
                std::string_view newname, unsigned flags);
  Result<Attr> Link(const Caller& c, uint64_t ino, uint64_t newparent, std::string_view newname);

  // ---- history: snapshots, views, diffs, the log, undo (fs/history.cc,
  // fs/diff.cc, fs/undo.cc; docs/ARCHITECTURE.md §11) ----
  // Inode numbers of the read-only views under MNT/.dbfs (bit 63 set):
  // stable while mounted, never a live inode's.
  static bool IsHistoryIno(uint64_t ino) { return (ino >> 63) != 0; }
  Result<SnapshotInfo> CreateSnapshot(const Caller& c, const std::string& name);
  Status DeleteSnapshot(const Caller& c, const std::string& name);
  // with_space: also each snapshot's USED and REFER bytes (a scan of every
  // stored version of the file data).
  Result<std::vector<SnapshotInfo>> ListSnapshots(bool with_space);
  // A point in history: "now", a CSN (digits), an ISO-8601 time
  // (2025-01-31T12:00:00[.frac][Z|+hh:mm], no zone: local time),
  // "@SECONDS[.frac]" since the epoch, or a snapshot name. NotFound when
  // that state is not kept.
  Result<uint64_t> ResolvePoint(std::string_view point);
  // What changed between two retained states (CSNs), under `path` ("" or
  // "/": everything), found from the commit log (unchanged subtrees are
  // never visited).
  Result<std::vector<Change>> Diff(const Caller& c, uint64_t from, uint64_t to,
                                   std::string_view path);
  // What the open transaction `tx` changed, compared with its snapshot.
  Result<std::vector<Change>> TxDiff(const Caller& c, uint64_t tx, std::string_view path);
  // The commit log, newest first.
  Result<std::vector<LogEntry>> Log(const Caller& c, const LogQuery& q);
  // Undo, each one transaction validated like `dbfs tx` (a concurrent
  // conflicting writer: kConflict naming the path, nothing changed). With
  // `keep` the transaction is left open for review (TxOutcome::tx).
  Result<TxOutcome> Restore(const Caller& c, std::string_view path, uint64_t at, bool keep);
  Result<TxOutcome> Rollback(const Caller& c, const std::string& snapshot, bool keep);
  Result<TxOutcome> Revert(const Caller& c, uint64_t csn, bool keep);
  // Leaves transaction `id` open, bound to no process (`dbfs tx run
  // --keep`): joined by id only, ended by CommitTx or AbortTx, aborted after
  // tx_keep_timeout.
  Status KeepTx(const Caller& c, uint64_t id);
  // The command name of a process (commit log attribution); installed by
  // the adapter, which knows processes.
  void SetCallerNamer(std::function<std::string(int32_t pid)> f);

  // ---- kernel references (fs/references.cc) ----
  void Forget(uint64_t ino, uint64_t nlookup);
  // Adds one kernel lookup reference (readdirplus entries).
  void AddLookup(uint64_t ino);

  // ---- attributes (fs/attributes.cc) ----
  Result<Attr> GetAttr(const Caller& c, uint64_t ino);
  Result<Attr> SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in);
  // Checks `mask` (R_OK/W_OK/X_OK/F_OK) for the caller like access(2).
  Status Access(const Caller& c, uint64_t ino, int mask);

  // ---- file data (fs/data.cc) ----
  // Returns a file handle. `flags` are open(2) flags (O_TRUNC honoured).
  // *size (if given): the file's size once opened (after O_TRUNC).
  Result<uint64_t> Open(const Caller& c, uint64_t ino, int flags, uint64_t* size = nullptr);
  struct Created {
    Attr attr;
    uint64_t fh = 0;
  };
  Result<Created> Create(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode,
                         int flags);
  // Reads up to `size` bytes at `off` into `buf`; returns the count (short at EOF).
  Result<size_t> Read(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, size_t size,
                      char* buf);
  // `origin`: how the kernel's page cache relates to the write (see
  // WriteOrigin). Writeback of a shared mapping's pages belongs to the
  // transaction the handle was opened in (if any), not to the caller's.
  Result<size_t> Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, const char* data,
                       size_t size, WriteOrigin origin = WriteOrigin::kCall);
  Status Flush(uint64_t ino, uint64_t fh);
  Status Release(uint64_t ino, uint64_t fh);
  Status Fsync(const Caller& c, uint64_t ino, uint64_t fh, bool datasync);
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE.
  Status Fallocate(const Caller& c, uint64_t ino, uint64_t fh, int mode, uint64_t off,
                   uint64_t len);
  // whence: SEEK_DATA or SEEK_HOLE. ENXIO past EOF.
  Result<uint64_t> Lseek(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, int whence);
  Result<size_t> CopyFileRange(const Caller& c, uint64_t ino_in, uint64_t fh_in, uint64_t off_in,
                               uint64_t ino_out, uint64_t fh_out, uint64_t off_out, size_t len);

  // ---- directories (fs/directories.cc) ----
  // Materializes a stable listing ("." and ".." first) for the handle.
  Result<uint64_t> OpenDir(const Caller& c, uint64_t ino);
  // A read from offset 0 again (rewinddir(3), or a seek back to the start):
  // takes a fresh listing from a new snapshot if the handle's listing was
  // read since it was taken, so names created since opendir are returned
  // (POSIX). A pass through the listing still never shows duplicates or
  // misses entries present throughout.
  Status RewindDir(const Caller& c, uint64_t ino, uint64_t fh);
  // Entries of the handle's listing from index `offset` on. The pointer stays
  // valid until ReleaseDir or RewindDir (the kernel serializes READDIRs of
  // one handle). Returns nullptr for an unknown handle.
  const std::vector<DirEntry>* DirEntries(uint64_t fh);
  Status ReleaseDir(uint64_t ino, uint64_t fh);
  Status FsyncDir(const Caller& c, uint64_t ino, uint64_t fh, bool datasync);

  // ---- extended attributes (fs/xattrs.cc) ----
  // flags: 0, XATTR_CREATE, XATTR_REPLACE.
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  int flags);
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, std::string_view name);
  // NUL-separated list of names, as listxattr(2) returns it.
  Result<std::string> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name);

  // ---- explicit transactions (fs/transactions.cc) ----
  // Begins a transaction; requests join it by setting Caller::tx = the id.
  // Busy when the caller already runs in one.
  Result<uint64_t> BeginTx(const Caller& c, const TxOptions& options);
  // Validates and commits (durable: synced before it returns), or reports
  // the conflict or the deadlock that ended it; the transaction is gone
  // afterwards either way. NotFound for an unknown id, Permission for
  // another user's transaction (unless the caller is root).
  Result<TxOutcome> CommitTx(const Caller& c, uint64_t id, bool durable);
  // kAborted, or kDeadlock when the daemon had already aborted it as a
  // deadlock victim.
  Result<TxOutcome> AbortTx(const Caller& c, uint64_t id);
  // Aborts `id` on the daemon's own behalf (its root process is gone, ...).
  Status AbortTxInternally(uint64_t id, std::string_view reason);
  // Whether `id` is still registered (open, or ended by the daemon and not
  // yet claimed by its owner).
  bool TxExists(uint64_t id);
  // The open transactions, by id.
  std::vector<TxInfo> ListTx();

  // ---- the kernel's caches ----
  // True when replies about `ino` to this caller must not be cached by the
  // kernel (zero entry/attr timeouts, direct I/O): the caller is inside an
  // explicit transaction, or an open transaction has touched the inode.
  bool Uncached(const Caller& c, uint64_t ino);
  // Installs the function that makes the kernel drop what it caches about an
  // inode (attributes, pages). sync=false may be queued; sync=true must be
  // done when it returns (called at commit/abort, outside kernel locks).
  void SetInvalidator(std::function<void(uint64_t ino, bool sync)> f);
  // Installs the function that makes the kernel drop cached directory
  // entries (parent, name) — called when a transaction that changed them
  // commits or aborts, before the commit or abort returns.
  using EntryInvalidator = std::function<void(const std::set<std::pair<uint64_t, std::string>>&)>;
  void SetEntryInvalidator(EntryInvalidator f);

  // Unmount: every current and future wait for a --lock transaction's lock
  // ends with ENOLCK, so no request thread keeps the session from ending.
  void ShutdownTxLockWaits();

  // Test hook: abandons the volume like a killed daemon (no flush, no sync,
  // no orphan reclamation). Only destruction may follow.
  void TEST_Abandon();
  // Test hooks into the lock manager of --lock transactions (owners are
  // transaction ids): its sync points (txn::LockManager::TEST_SetSyncPoint)
  // and whether transaction `tx` holds a lock on `ino`.
  void TEST_SetTxLockSyncPoint(
      std::function<void(std::string_view point, uint64_t owner, uint64_t ino)> f);
  bool TEST_TxHoldsLock(uint64_t tx, uint64_t ino);

 private:
  explicit Filesystem(std::unique_ptr<Engine> engine);
  std::unique_ptr<Engine> engine_;
  // Other mounts share the volume (mvcc::Store::shared()): operations that
  // lose a commit race with one of them run again (RetryShared).
  bool shared_ = false;
};

}  // namespace dbfs
