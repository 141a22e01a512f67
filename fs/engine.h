// Engine: the implementation behind fs/filesystem.h (private to fs/). One
// class, its methods spread over one file per concern (see the list at the
// top of fs/filesystem.h).
//
// Pattern of every mutating operation:
//   1. validate arguments (names, flags);
//   2. lock the inodes it will change (InodeLocks; ascending stripe order) —
//      or, inside an explicit transaction, take that transaction's mutex;
//   3. read at a snapshot (a Transaction: the snapshot includes the latest
//      state of the locked inodes), check POSIX rules, buffer writes;
//   4. commit (durable under -o sync), unlock (Finish).
// Reads lock nothing: they read a snapshot. (Requests of a `--lock`
// transaction also take its exclusive inode locks first: TxLock.)
#pragma once

#include <fcntl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fs/checkpoint.h"
#include "fs/filesystem.h"
#include "fs/inode_format.h"
#include "fs/write_edges.h"
#include "mvcc/store.h"
#include "txn/inode_locks.h"
#include "txn/lock_manager.h"
#include "txn/transaction.h"

namespace dbfs {

using mvcc::ChunkKey;
using mvcc::InoKey;
using mvcc::NameKey;
using mvcc::Table;
using txn::Transaction;

inline constexpr uint64_t kMaxLinks = 65000;

timespec Now();
bool TimeLE(const timespec& a, const timespec& b);
// A name that may be created or removed: ENAMETOOLONG, EINVAL for "/",
// NUL, "." and "..".
Status CheckName(std::string_view name);
Attr ToAttr(uint64_t ino, const Inode& n);

// Requests the filesystem makes on its own behalf (reclaim, atime): never
// part of a user transaction.
inline const Caller kInternal{};

// The outcome of an explicit transaction as its file handles see it.
inline constexpr int kTxOpen = 0, kTxCommitted = 1, kTxNotCommitted = 2;

// An explicit transaction (dbfs tx, the Elle protocol): every request whose
// Caller::tx names it runs in it.
struct ExplicitTx {
  uint64_t id = 0;
  int32_t root_pid = 0;  // informational (TxOptions::root_pid)
  std::string cmd;       // root command line (commit log)
  // Left open for review (KeepTx): bound to no process, tx_keep_timeout
  // instead of tx_timeout (counted from kept_since, steady_clock ticks).
  std::atomic<bool> kept{false};
  std::atomic<int64_t> kept_since{0};
  uint32_t uid = 0;
  bool serializable = true;
  std::chrono::steady_clock::time_point started;
  std::mutex mu;  // one operation of the transaction at a time
  // Everything below is guarded by mu.
  std::unique_ptr<Transaction> txn;
  std::vector<uint64_t> orphans;  // nlink reached 0 inside the transaction
  std::set<uint64_t> inodes;      // touched: invalidated in the kernel at the end
  // Directories it removed (rmdir, rename over): the kernel marked their
  // inodes dead, so if it does not commit they come back with a new
  // generation (the kernel then drops the dead inode: NewGeneration).
  std::set<uint64_t> removed_dirs;
  bool dirs_revived = false;
  std::set<std::pair<uint64_t, std::string>> entries;  // changed (parent, name): likewise
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>>
      names;  // ino -> (parent, name) seen
  // Directories whose record the transaction changed only as the parent of
  // an entry operation (nlink, mtime, ctime): their record as first seen.
  // At commit the change is merged as a delta into the latest committed
  // record (fs/directory_deltas.cc), so transactions creating different
  // names in one directory do not conflict on it. Directories changed
  // directly (chmod, ...) are exact.
  std::map<uint64_t, Inode> dir_base;
  std::set<uint64_t> dir_exact;
  bool durable = false;  // an fsync inside asked for durability
  bool done = false;     // committed or aborted
  std::string end_reason;
  // kTxOpen until EndTx, then kTxCommitted or kTxNotCommitted; shared with
  // the file handles opened inside, which outlive it (Write, writeback).
  std::shared_ptr<std::atomic<int>> outcome = std::make_shared<std::atomic<int>>(0);

  // ---- pessimistic mode (`dbfs tx run --lock`, docs/ARCHITECTURE.md §8) ----
  // The lock manager owner is the transaction id. `lock` and `benign` are set
  // at begin and never change; the rest is guarded by mu unless atomic.
  bool lock = false;
  Transaction::BenignChange benign;  // validation's "benign change" rule, for new Transactions
  std::set<uint64_t> locked;         // inodes this transaction holds an exclusive lock on
  // Keys read outside any lock (directory entries looked up, directory
  // records): with `locked` (whose records stand for everything of theirs)
  // what must be unchanged for the snapshot to move forward (TxRebase).
  std::set<std::pair<Table, std::string>> unlocked_reads;
  bool rebase_ok = true;                // false once it read what unlocked_reads cannot describe
  std::unique_ptr<Transaction> pin;     // the first Transaction, kept after a rebase (see TxRebase)
  uint64_t data_carried = 0;            // data bytes of the Transactions a rebase replaced
  std::string deadlock;                 // the victim's deadlock description (end_reason "deadlock")
  std::atomic<bool> cancel{false};      // set by an abort: ends a lock wait
  std::atomic<uint64_t> waiting_on{0};  // inode whose lock it is waiting for (0: none)
  std::atomic<bool> released{false};    // EndTx has released its locks and caches
  uint64_t data_bytes() const { return data_carried + (txn ? txn->data_bytes() : 0); }
};

class Engine {
 public:
  Engine(std::unique_ptr<mvcc::Store> store, FsOptions opts);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- lifecycle (fs/engine.cc) ----
  Status Close();
  void StartBackgroundCheckpoints();
  Result<CheckpointReport> Checkpoint() {
    if (opts_.read_only) return Status::ReadOnly("read-only mount: nothing to checkpoint");
    return checkpointer_.Run();
  }
  Status ReclaimAllOrphans();
  void TEST_Abandon();
  mvcc::Store* store() { return store_.get(); }

  // ---- namespace (fs/namespace.cc) ----
  Result<Attr> Lookup(const Caller& c, uint64_t parent, std::string_view name);
  Result<Attr> MakeNode(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode,
                        uint64_t rdev, std::string_view target);
  Result<std::string> Readlink(const Caller& c, uint64_t ino);
  Status Remove(const Caller& c, uint64_t parent, std::string_view name, bool dir);
  Status Rename(const Caller& c, uint64_t p, std::string_view n, uint64_t np, std::string_view nn,
                unsigned flags);
  Result<Attr> Link(const Caller& c, uint64_t ino, uint64_t np, std::string_view nn);

  // ---- kernel references and orphans (fs/references.cc) ----
  void Forget(uint64_t ino, uint64_t n);
  void AddLookup(uint64_t ino);

  // ---- attributes (fs/attributes.cc) ----
  Result<Attr> GetAttr(const Caller& c, uint64_t ino);
  Result<Attr> SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in);
  Status Access(const Caller& c, uint64_t ino, int mask);
  Result<FsStat> StatFs();

  // ---- file data (fs/data.cc) ----
  Result<uint64_t> Open(const Caller& c, uint64_t ino, int flags, uint64_t* size);
  Result<Filesystem::Created> Create(const Caller& c, uint64_t parent, std::string_view name,
                                     uint32_t mode, int flags);
  Result<size_t> Read(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, size_t size,
                      char* buf);
  Result<size_t> Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, const char* data,
                       size_t size, WriteOrigin origin);
  Status Release(uint64_t ino, uint64_t fh);
  Status Fsync(const Caller& c);
  Status Fallocate(const Caller& c, uint64_t ino, int mode, uint64_t off, uint64_t len);
  // Fills every hole of the 4 KiB blocks [off, off+len) touches with zeros
  // appended to the store's data (fallocate's reservation); ENOSPC, changing
  // nothing, when the store has less space available than that needs.
  Status AllocateRange(Transaction& t, uint64_t ino, Inode* n, uint64_t off, uint64_t len);
  Result<uint64_t> Lseek(const Caller& c, uint64_t ino, uint64_t off, int whence);
  Result<size_t> CopyFileRange(const Caller& c, uint64_t in, uint64_t fh_in, uint64_t off_in,
                               uint64_t out, uint64_t fh_out, uint64_t off_out, size_t len);

  // ---- directories (fs/directories.cc) ----
  Result<uint64_t> OpenDir(const Caller& c, uint64_t ino);
  // The listing of `ino` at one snapshot, "." and ".." first.
  Status ListDir(const Caller& c, uint64_t ino, std::vector<DirEntry>* out);
  Status RewindDir(const Caller& c, uint64_t ino, uint64_t fh);
  const std::vector<DirEntry>* DirEntries(uint64_t fh);
  Status ReleaseDir(uint64_t fh);

  // ---- extended attributes (fs/xattrs.cc) ----
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  int flags);
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, std::string_view name);
  Result<std::string> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name);

  // ---- counters (fs/stats.cc) ----
  FsStats Stats() const;

  // ---- history (fs/history.cc: snapshots and the .dbfs views; fs/diff.cc:
  // diffs and the log; fs/undo.cc: restore, rollback, revert) ----
  Result<SnapshotInfo> CreateSnapshot(const Caller& c, const std::string& name);
  Status DeleteSnapshot(const Caller& c, const std::string& name);
  Result<std::vector<SnapshotInfo>> ListSnapshots(bool with_space);
  Result<uint64_t> ResolvePoint(std::string_view point);
  Result<std::vector<Change>> Diff(const Caller& c, uint64_t from, uint64_t to,
                                   std::string_view path);
  Result<std::vector<Change>> TxDiff(const Caller& c, uint64_t tx, std::string_view path);
  Result<std::vector<LogEntry>> Log(const Caller& c, const LogQuery& q);
  Result<TxOutcome> Restore(const Caller& c, std::string_view path, uint64_t at, bool keep);
  Result<TxOutcome> Rollback(const Caller& c, const std::string& snapshot, bool keep);
  Result<TxOutcome> Revert(const Caller& c, uint64_t csn, bool keep);
  Status KeepTx(const Caller& c, uint64_t id);
  void SetCallerNamer(std::function<std::string(int32_t)> f) { namer_ = std::move(f); }
  // The read-only views under MNT/.dbfs (REQUIRES: IsHistoryIno(ino), or
  // parent the root and name ".dbfs" for HLookup).
  Result<Attr> HLookup(const Caller& c, uint64_t parent, std::string_view name);
  Result<Attr> HGetAttr(uint64_t ino);
  Result<std::string> HReadlink(uint64_t ino);
  Result<uint64_t> HOpen(uint64_t ino, int flags, uint64_t* size);
  Result<size_t> HRead(uint64_t ino, uint64_t off, size_t size, char* buf);
  Result<uint64_t> HOpenDir(uint64_t ino);
  Result<std::string> HGetXattr(uint64_t ino, std::string_view name);
  Result<std::string> HListXattr(uint64_t ino);
  Result<uint64_t> HLseek(uint64_t ino, uint64_t off, int whence);

  // ---- explicit transactions (fs/transactions.cc) ----
  Result<uint64_t> BeginTx(const Caller& c, const TxOptions& o);
  Result<TxOutcome> CommitTx(const Caller& c, uint64_t id, bool durable);
  // Ends `id` as not committed. A deadlock victim the daemon had already
  // aborted reports kDeadlock.
  Result<TxOutcome> AbortTx(const Caller& c, uint64_t id, const std::string& reason);
  bool TxExists(uint64_t id);
  std::vector<TxInfo> ListTx();
  bool Uncached(const Caller& c, uint64_t ino);
  void SetInvalidator(std::function<void(uint64_t ino, bool sync)> f) {
    std::lock_guard g(hot_mu_);
    invalidate_ = std::move(f);
  }
  void SetEntryInvalidator(Filesystem::EntryInvalidator f) {
    std::lock_guard g(hot_mu_);
    invalidate_entry_ = std::move(f);
  }
  void ShutdownTxLockWaits() { tx_locks_.Shutdown(); }
  bool shared() const { return store_->shared(); }
  // Keys other processes sharing the volume changed (mvcc::Store's remote
  // change listener): drops the kernel's caches of them.
  void OnRemoteChanges(const std::vector<mvcc::KeyRef>& keys);
  void TEST_SetTxLockSyncPoint(txn::LockManager::SyncPoint f) {
    tx_locks_.TEST_SetSyncPoint(std::move(f));
  }
  bool TEST_TxHoldsLock(uint64_t tx, uint64_t ino) {
    return tx_locks_.TEST_InodeHold(tx, ino).has_value();
  }

 private:
  struct Handle {
    uint64_t ino = 0;
    int flags = 0;
    bool dir = false;
    std::vector<DirEntry> entries;
    bool entries_read = false;  // DirEntries served the listing since it was taken
    // The transaction the handle was opened in, if any: the kernel's
    // writeback of pages mapped through it belongs to that transaction.
    std::weak_ptr<ExplicitTx> tx;
    std::shared_ptr<const std::atomic<int>> tx_outcome;
  };
  struct Refs {
    uint64_t lookups = 0;
    uint64_t opens = 0;
    bool orphan = false;  // nlink reached 0; reclaim when unreferenced
    bool reclaiming = false;
  };

  bool Durable(int flags = 0) const { return opts_.sync || (flags & (O_SYNC | O_DSYNC)); }

  // ---- operation scopes (fs/transactions.cc) ----
  // The context of one filesystem operation: either an autocommit
  // transaction (inode locks held, committed by Finish) or the caller's
  // explicit transaction (its mutex held; Finish commits nothing).
  struct OpScope {
    std::shared_ptr<ExplicitTx> tx;
    std::unique_lock<std::mutex> tx_lock;
    txn::InodeLocks::Guard guard;
    std::unique_ptr<Transaction> own;
    uint64_t committed_csn = 0;  // set by Finish for an autocommit
    // Who commits an autocommit operation (the commit log); internal
    // operations add their kCommit* flags.
    mvcc::CommitMeta meta;
    Transaction& t() { return tx ? *tx->txn : *own; }
    void ReleaseLocks() { guard.Release(); }
  };
  // lock_inos: the inodes the operation changes (locked by an autocommit
  // operation; touched by an explicit transaction). read_inos: the inodes it
  // reads — a --lock transaction locks them too unless they are directories
  // (see TxLock).
  Result<OpScope> BeginOp(const Caller& c, std::initializer_list<uint64_t> lock_inos,
                          std::initializer_list<uint64_t> read_inos = {},
                          bool dir_read_tracked = true);
  // BeginOp in `tx` rather than the caller's transaction; an autocommit when
  // `tx` is null.
  Result<OpScope> BeginOpIn(std::shared_ptr<ExplicitTx> tx, const Caller& c,
                            std::initializer_list<uint64_t> lock_inos,
                            std::initializer_list<uint64_t> read_inos, bool dir_read_tracked);
  Status Finish(OpScope& op, int flags = 0);
  // An inode whose link count reached 0: reclaimed when unreferenced, or at
  // the end of the explicit transaction that unlinked it.
  void Orphaned(OpScope& op, uint64_t ino);
  // The operation writes `ino`'s record as a whole (chmod, rmdir, a moved
  // directory): validated first-committer-wins, never merged.
  void ExactWrite(OpScope& op, uint64_t ino) {
    if (!op.tx) return;
    op.tx->dir_exact.insert(ino);
    op.tx->txn->ValidateAtCommit(Table::kInodes, InoKey(ino));
  }
  // Records that the operation's explicit transaction changed an entry.
  void EntryChanged(OpScope& op, uint64_t parent, std::string_view name) {
    if (op.tx) op.tx->entries.emplace(parent, std::string(name));
  }
  std::shared_ptr<ExplicitTx> TxFor(const Caller& c);
  std::shared_ptr<ExplicitTx> TxById(uint64_t id);
  // Aborts transactions older than tx_timeout even when they are idle, so
  // they stop pinning old versions (GC) as soon as they expire, and forgets
  // daemon-ended ones nobody claims.
  void ReaperLoop();
  void StopReaper();
  // sync=false when called from inside a request (the kernel may hold locks
  // the invalidation would need): kernel invalidations are then queued.
  // keep_registered: a daemon-side abort (timeout, tx_max_bytes, deadlock
  // victim) — the transaction releases its locks and caches now but stays
  // registered, so the requests of its processes fail (ECANCELED) instead of
  // running outside it, until its owner commits or aborts it (and learns why
  // it ended).
  void EndTx(const std::shared_ptr<ExplicitTx>& tx, bool sync = true, bool keep_registered = false);
  // A daemon-side abort (tx_timeout, tx_max_bytes, deadlock victim).
  // REQUIRES: `lock` holds tx->mu, tx is not done; unlocks it. Ends the
  // transaction with keep_registered (see EndTx).
  void AbortBound(const std::shared_ptr<ExplicitTx>& tx, std::unique_lock<std::mutex>& lock,
                  const std::string& reason, bool sync);
  // Gives a directory a new generation (autocommit): an aborted rmdir left
  // the kernel's inode of it dead (S_DEAD: creates inside fail with ENOENT);
  // a new generation makes the kernel treat that inode as stale and make a
  // fresh one at the next lookup.
  Status NewGeneration(uint64_t ino);
  // NewGeneration for every directory below `dir` (not `dir` itself).
  Status NewGenerationBelow(uint64_t dir);
  // A path naming `k` for conflict messages: through directory parents and
  // the inodes' parent hints (and what `tx` saw).
  std::string PathOf(Transaction& t, const Transaction::ConflictKey& k, const ExplicitTx* tx);

  // ---- merged parent-directory changes (fs/directory_deltas.cc) ----
  // Records `dir` (as loaded by LoadDir) as changed by an entry operation.
  void ParentChanged(OpScope& op, uint64_t dir, const Inode& loaded);
  // At commit: installs the merges that re-apply each such directory's
  // delta to its latest committed record.
  Status MergeDirDeltas(ExplicitTx& tx);

  // ---- pessimistic (--lock) transactions (fs/tx_locking.cc) ----
  // REQUIRES: tx.mu. Takes the exclusive locks of an operation: `write_inos`,
  // and those of `read_inos` that are not directories (a directory read is
  // recorded in unlocked_reads if `dir_read_tracked`). Waits for other --lock
  // transactions; then moves the snapshot forward if a newly locked inode
  // changed since it was taken (TxRebase). kDeadlock: the caller aborts it.
  Status TxLock(ExplicitTx& tx, const Caller& c, std::initializer_list<uint64_t> write_inos,
                std::initializer_list<uint64_t> read_inos, bool dir_read_tracked);
  // REQUIRES: tx.mu. Replaces the transaction's Transaction by one at the
  // current snapshot, carrying its writes and reads over, if nothing it read
  // or wrote changed since its snapshot (else leaves it: validation decides).
  Status TxRebase(ExplicitTx& tx, const std::vector<uint64_t>& fresh);
  // Whether `key` has a committed version newer than `snap` that validation
  // would not call benign.
  Result<bool> ChangedSince(const ExplicitTx& tx, mvcc::Csn snap, Table t, std::string_view key);
  // A --lock transaction read `key` of an inode it does not lock.
  void UnlockedRead(OpScope& op, Table t, std::string key) {
    if (op.tx && op.tx->lock) op.tx->unlocked_reads.emplace(t, std::move(key));
  }
  // For an operation that must not wait for --lock locks while it holds
  // another mutex (Rename and dir_rename_mu_): takes them beforehand.
  Status TxPreLock(const Caller& c, std::initializer_list<uint64_t> inos);

  // ---- table access (fs/engine.cc) ----
  Result<Inode> LoadInode(Transaction& t, uint64_t ino);
  void StoreInode(Transaction& t, uint64_t ino, const Inode& n) {
    t.Put(Table::kInodes, InoKey(ino), EncodeInode(n));
  }
  Result<std::optional<std::pair<uint64_t, uint32_t>>> LoadDirent(Transaction& t, uint64_t parent,
                                                                  std::string_view name);
  Result<bool> DirIsEmpty(Transaction& t, uint64_t dir);
  // The parent of an entry operation: a directory, not removed, read outside
  // the read set (its changes are merged: fs/directory_deltas.cc).
  Result<Inode> LoadDir(Transaction& t, uint64_t ino);
  Result<bool> IsAncestor(Transaction& t, uint64_t maybe_ancestor, uint64_t ino);
  Result<mvcc::CommitResult> Commit(Transaction& t, int flags = 0) {
    return t.Commit(Durable(flags));
  }

  // ---- file data internals (fs/data.cc) ----
  Status Truncate(Transaction& t, uint64_t ino, Inode* n, uint64_t size);
  Status WriteChunks(Transaction& t, uint64_t ino, Inode* n, uint64_t off, const char* data,
                     size_t size);
  Status CompactChunk(Transaction& t, SliceList* l);
  Status ReadRange(Transaction& t, uint64_t ino, uint64_t off, size_t size, char* buf);
  void MaybeUpdateAtime(uint64_t ino);

  // ---- references (fs/references.cc) ----
  void MarkOrphan(uint64_t ino);
  bool Hot(uint64_t ino);
  void Unref(uint64_t ino, uint64_t lookups, uint64_t opens);
  void Reclaim(uint64_t ino);
  Status DeleteInodeData(Transaction& t, uint64_t ino);

  std::unique_ptr<mvcc::Store> store_;
  FsOptions opts_;
  const uint64_t chunk_;
  // Reclaims WAL space (fs/checkpoint.h); stopped before the store closes.
  Checkpointer checkpointer_;
  txn::InodeLocks locks_;
  // Cross-directory directory renames are serialized (as the kernel's
  // s_vfs_rename_mutex does) so two of them cannot build a cycle.
  std::mutex dir_rename_mu_;

  std::mutex refs_mu_;
  std::unordered_map<uint64_t, Refs> refs_;  // guarded by refs_mu_

  std::mutex handles_mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Handle>> handles_;  // guarded by handles_mu_
  uint64_t next_fh_ = 1;                                           // guarded by handles_mu_

  // Edge bytes of writes, against stale mapped pages (fs/write_edges.h).
  WriteEdges edges_;

  std::atomic<uint64_t> fsync_calls_{0};
  bool closed_ = false;

  // Explicit transactions. tx_mu_ is taken before any ExplicitTx::mu.
  std::mutex tx_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<ExplicitTx>> txs_;  // guarded by tx_mu_
  uint64_t next_tx_ = 1;                                           // guarded by tx_mu_
  // Lock order: ExplicitTx::mu, then tx_mu_, then hot_mu_ (a leaf).
  std::mutex hot_mu_;
  std::unordered_map<uint64_t, int> hot_;  // guarded by hot_mu_: inode -> open txs touching it
  std::function<void(uint64_t, bool)> invalidate_;  // guarded by hot_mu_
  Filesystem::EntryInvalidator invalidate_entry_;   // guarded by hot_mu_
  std::atomic<size_t> open_txs_{0};
  std::atomic<uint64_t> tx_commits_{0}, tx_conflicts_{0}, tx_aborts_{0};
  std::atomic<uint64_t> tx_deadlocks_{0}, tx_rebases_{0};
  // Exclusive inode locks of --lock transactions (owner: the transaction id;
  // the FUSE adapter's advisory locks have their own manager). Only --lock
  // transactions ever wait here: autocommit operations and optimistic
  // transactions never touch it. Its mutexes are leaves below ExplicitTx::mu.
  txn::LockManager tx_locks_;

  // ---- history internals ----
  // The view (snapshot or point) a history inode belongs to.
  struct View {
    std::string name;  // the directory name under snapshots/ or at/
    mvcc::Csn csn = 0;
    bool snapshot = false;
  };
  // A transaction reading the state at `csn` (NotFound: no longer kept).
  Result<std::unique_ptr<Transaction>> ReadAt(mvcc::Csn csn);
  Result<uint64_t> ViewFor(std::string key, const View& v);
  Result<View> ViewOf(uint64_t ino);
  Result<Attr> ViewAttr(uint64_t view, Transaction& t, uint64_t live);
  // Path resolution in a state: "" or "/" is the root.
  Result<uint64_t> ResolvePath(Transaction& t, std::string_view path);
  // Undo helpers (fs/undo.cc).
  Result<uint64_t> BeginInternalTx(const Caller& c);
  Result<TxOutcome> FinishInternalTx(const Caller& c, uint64_t id, bool keep, Status body);
  Status RestoreNode(const Caller& ct, Transaction& src, uint64_t src_ino, uint64_t parent,
                     const std::string& name, std::map<uint64_t, uint64_t>* made);
  Status RemoveTree(const Caller& ct, uint64_t parent, const std::string& name);
  Status CopyInode(const Caller& ct, Transaction& src, uint64_t src_ino, uint64_t dst_ino);
  Status ReconcileDir(const Caller& ct, Transaction& src, uint64_t src_dir, uint64_t dst_dir,
                      std::map<uint64_t, uint64_t>* made);
  std::function<std::string(int32_t)> namer_;  // set before requests arrive
  std::mutex views_mu_;
  std::vector<View> views_;                      // index - 1 = view id, guarded by views_mu_
  std::unordered_map<std::string, uint64_t> view_ids_;  // guarded by views_mu_

  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;  // guarded by reaper_mu_
  std::thread reaper_;
};

}  // namespace dbfs
