// POSIX semantics over DBFS transactions. See filesystem.h.
//
// Pattern of every mutating operation:
//   1. validate arguments (names, flags);
//   2. lock the inodes it will change (InodeLocks; ascending stripe order);
//   3. open a Transaction (its snapshot now includes the latest state of the
//      locked inodes), read, check POSIX rules, write;
//   4. commit (durable under -o sync), unlock.
// Reads lock nothing: they read a snapshot. (Requests of a `--lock`
// transaction also take its exclusive inode locks first: TxLock.)
#include "fuse/filesystem.h"

#include "fuse/checkpoint.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <thread>
#include <cstring>
#include <map>
#include <set>
#include <mutex>
#include <unordered_map>

#include "fuse/inode_format.h"
#include "mvcc/store.h"
#include "mvcc/superblock.h"
#include "mvcc/volume_lock.h"
#include "txn/inode_locks.h"
#include "txn/lock_manager.h"
#include "txn/transaction.h"

namespace dbfs {

using mvcc::ChunkKey;
using mvcc::InoKey;
using mvcc::NameKey;
using mvcc::Table;
using txn::Transaction;

namespace {

// A chunk's slice list is rewritten by every write to the chunk and its live
// bytes are rewritten (compacted into one DATA record) when the list grows
// past this: random 4 KiB writes cost ~5 KiB of list per write and a 1 MiB
// compaction per ~128 writes. (At 32 the compactions alone were 12x the data.)
constexpr size_t kMaxSlicesPerChunk = 256;
constexpr uint64_t kMaxLinks = 65000;
constexpr size_t kXattrNameMax = 255;
constexpr size_t kXattrSizeMax = 65536;
constexpr time_t kRelatimeWindow = 24 * 3600;

timespec Now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

bool TimeLE(const timespec& a, const timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

Status CheckName(std::string_view name) {
  if (name.empty()) return Status::NotFound("empty name");
  if (name.size() > kNameMax) return Status(Code::kNameTooLong, "name longer than 255 bytes");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return Status::Invalid("name contains '/' or NUL");
  }
  if (name == "." || name == "..") return Status::Invalid("'.' and '..' cannot be changed");
  return Status::Ok();
}

Attr ToAttr(uint64_t ino, const Inode& n) {
  Attr a;
  a.ino = ino;
  a.generation = n.generation;
  a.mode = n.mode;
  a.uid = n.uid;
  a.gid = n.gid;
  a.nlink = n.nlink;
  a.size = S_ISLNK(n.mode) ? n.target.size() : n.size;
  a.blocks = (n.alloc + 511) / 512;
  a.rdev = n.rdev;
  a.atime = n.atime;
  a.mtime = n.mtime;
  a.ctime = n.ctime;
  a.btime = n.btime;
  return a;
}

// Inserts `n` into a chunk's slice list (sorted by offset, no overlaps),
// cutting what it overwrites. Returns the number of bytes that were holes
// before. In place: random writes call this on lists of up to
// kMaxSlicesPerChunk slices, once per write.
uint64_t InsertSlice(SliceList* l, const Slice& n) {
  // The first slice that ends after n starts, and the first that starts at or
  // after n ends: [first, last) is what n overlaps.
  auto first = std::partition_point(l->begin(), l->end(),
                                    [&](const Slice& s) { return s.end() <= n.off; });
  auto last = first;
  uint64_t overlap = 0;
  std::array<Slice, 3> repl;
  size_t k = 0;
  for (; last != l->end() && last->off < n.end(); ++last) {
    overlap += std::min(last->end(), n.end()) - std::max(last->off, n.off);
    if (last->off < n.off) repl[k++] = Slice{last->off, n.off - last->off, last->segment, last->data};
  }
  repl[k++] = n;
  if (last != first) {
    const Slice& s = *(last - 1);
    if (s.end() > n.end()) {
      repl[k++] = Slice{n.end(), s.end() - n.end(), s.segment, s.data + (n.end() - s.off)};
    }
  }
  const auto at = static_cast<size_t>(first - l->begin());
  const auto removed = static_cast<size_t>(last - first);
  if (k > removed) {
    l->insert(l->begin() + static_cast<std::ptrdiff_t>(at + removed), k - removed, Slice{});
  } else if (k < removed) {
    l->erase(l->begin() + static_cast<std::ptrdiff_t>(at + k),
             l->begin() + static_cast<std::ptrdiff_t>(at + removed));
  }
  std::copy(repl.begin(), repl.begin() + static_cast<std::ptrdiff_t>(k),
            l->begin() + static_cast<std::ptrdiff_t>(at));
  return n.len - overlap;
}

// Removes [off, end) from a slice list. Returns the bytes removed.
uint64_t RemoveRange(SliceList* l, uint32_t off, uint32_t end) {
  SliceList out;
  uint64_t removed = 0;
  for (const Slice& s : *l) {
    if (s.end() <= off || s.off >= end) {
      out.push_back(s);
      continue;
    }
    removed += std::min(s.end(), end) - std::max(s.off, off);
    if (s.off < off) out.push_back(Slice{s.off, off - s.off, s.segment, s.data});
    if (s.end() > end) out.push_back(Slice{end, s.end() - end, s.segment, s.data + (end - s.off)});
  }
  *l = std::move(out);
  return removed;
}

}  // namespace

void Attr::ToStat(struct stat* st) const {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  st->st_mode = mode;
  st->st_nlink = nlink;
  st->st_uid = uid;
  st->st_gid = gid;
  st->st_rdev = rdev;
  st->st_size = static_cast<off_t>(size);
  st->st_blksize = 4096;
  st->st_blocks = static_cast<blkcnt_t>(blocks);
  st->st_atim = atime;
  st->st_mtim = mtime;
  st->st_ctim = ctime;
}

// ---------------------------------------------------------------------------

// Requests the filesystem makes on its own behalf (reclaim, atime): never
// part of a user transaction.
const Caller kInternal{};

// An explicit transaction (dbfs tx): bound to a root process; every request
// from that process or a descendant runs in it.
constexpr int kTxOpen = 0, kTxCommitted = 1, kTxNotCommitted = 2;

struct ExplicitTx {
  uint64_t id = 0;
  int32_t root_pid = 0;
  uint64_t root_start = 0;  // start time of the root process (pid reuse guard)
  uint32_t uid = 0;
  bool serializable = true;
  std::chrono::steady_clock::time_point started;
  std::mutex mu;  // one operation of the transaction at a time
  // Everything below is guarded by mu.
  std::unique_ptr<Transaction> txn;
  std::vector<uint64_t> orphans;         // nlink reached 0 inside the transaction
  std::set<uint64_t> inodes;             // touched: invalidated in the kernel at the end
  // Directories it removed (rmdir, rename over): the kernel marked their
  // inodes dead, so if it does not commit they come back with a new
  // generation (the kernel then drops the dead inode: RevivedDirs).
  std::set<uint64_t> removed_dirs;
  bool dirs_revived = false;
  std::set<std::pair<uint64_t, std::string>> entries;  // changed (parent, name): likewise
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> names;  // ino -> (parent, name) seen
  // Directories whose record the transaction changed only as the parent of
  // an entry operation (nlink, mtime, ctime): their record as first seen.
  // At commit the change is re-applied as a delta on the latest committed
  // record, so transactions creating different names in one directory do
  // not conflict on it. Directories changed directly (chmod, ...) are exact.
  std::map<uint64_t, Inode> dir_base;
  std::set<uint64_t> dir_exact;
  bool durable = false;                  // an fsync inside asked for durability
  bool done = false;                     // committed or aborted
  std::string end_reason;
  // kTxOpen until EndTx, then kTxCommitted or kTxNotCommitted; shared with
  // the file handles opened inside, which outlive it (Write, writeback).
  std::shared_ptr<std::atomic<int>> outcome = std::make_shared<std::atomic<int>>(0);

  // ---- pessimistic mode (`dbfs tx run --lock`, docs/ARCHITECTURE.md §8) ----
  // The lock manager owner is the transaction id. `lock` and `benign` are set
  // at begin and never change; the rest is guarded by mu unless atomic.
  bool lock = false;
  Transaction::BenignChange benign;      // validation's "benign change" rule, for new Transactions
  std::set<uint64_t> locked;             // inodes this transaction holds an exclusive lock on
  // Keys read outside any lock (directory entries looked up, directory
  // records): with `locked` (whose records stand for everything of theirs)
  // what must be unchanged for the snapshot to move forward (TxRebase).
  std::set<std::pair<Table, std::string>> unlocked_reads;
  bool rebase_ok = true;                 // false once it read what unlocked_reads cannot describe
  std::unique_ptr<Transaction> pin;      // the first Transaction, kept after a rebase (see TxRebase)
  uint64_t data_carried = 0;             // data bytes of the Transactions a rebase replaced
  std::string deadlock;                  // the victim's deadlock description (end_reason "deadlock")
  std::atomic<bool> cancel{false};       // set by TxAbort: ends a lock wait
  std::atomic<uint64_t> waiting_on{0};   // inode whose lock it is waiting for (0: none)
  std::atomic<bool> released{false};     // EndTx has released its locks and caches
  uint64_t data_bytes() const { return data_carried + (txn ? txn->data_bytes() : 0); }
};

class FilesystemImpl {
 public:
  FilesystemImpl(VolumeLock lock, std::unique_ptr<mvcc::Store> store, FsOptions opts)
      : lock_(std::move(lock)), store_(std::move(store)), opts_(std::move(opts)),
        chunk_(store_->chunk_size()),
        checkpointer_(store_.get(), CheckpointOptions{.barrier_wait = std::chrono::milliseconds(
                                                          opts_.checkpoint_barrier_ms)}) {
    reaper_ = std::thread([this] { ReaperLoop(); });
    checkpointer_.Start(opts_.checkpoint_bytes, std::chrono::seconds(opts_.checkpoint_interval_s));
  }
  ~FilesystemImpl() {
    checkpointer_.Stop();
    StopReaper();
  }

  Status Close();
  Status ReclaimAllOrphans();

  Result<Attr> Lookup(const Caller& c, uint64_t parent, std::string_view name);
  void Forget(uint64_t ino, uint64_t n);
  void AddLookup(uint64_t ino);
  Result<Attr> GetAttr(const Caller& c, uint64_t ino);
  Result<Attr> SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in);
  Result<Attr> MakeNode(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode,
                        uint64_t rdev, std::string_view target);
  Result<std::string> Readlink(const Caller& c, uint64_t ino);
  Status Remove(const Caller& c, uint64_t parent, std::string_view name, bool dir);
  Status Rename(const Caller& c, uint64_t p, std::string_view n, uint64_t np,
                std::string_view nn, unsigned flags);
  Result<Attr> Link(const Caller& c, uint64_t ino, uint64_t np, std::string_view nn);
  Status Access(const Caller& c, uint64_t ino, int mask);
  Result<uint64_t> Open(const Caller& c, uint64_t ino, int flags, uint64_t* size);
  Result<Filesystem::Created> Create(const Caller& c, uint64_t parent, std::string_view name,
                                     uint32_t mode, int flags);
  Result<size_t> Read(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, size_t size, char* buf);
  Result<size_t> Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, const char* data,
                       size_t size, bool writeback);
  Status Release(uint64_t ino, uint64_t fh);
  Status Fsync(const Caller& c);
  Status Fallocate(const Caller& c, uint64_t ino, int mode, uint64_t off, uint64_t len);
  Result<uint64_t> Lseek(const Caller& c, uint64_t ino, uint64_t off, int whence);
  Result<size_t> CopyFileRange(const Caller& c, uint64_t in, uint64_t fh_in, uint64_t off_in,
                               uint64_t out, uint64_t fh_out, uint64_t off_out, size_t len);
  Result<uint64_t> OpenDir(const Caller& c, uint64_t ino);
  const std::vector<DirEntry>* DirEntries(uint64_t fh);
  Status ReleaseDir(uint64_t fh);
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  int flags);
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, std::string_view name);
  Result<std::string> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name);
  Result<FsStat> StatFs();
  FsStats Stats() const;
  std::string StatsText() const;

  mvcc::Store* store() { return store_.get(); }

  // ---- explicit transactions ----
  Result<uint64_t> TxBegin(const Caller& c, int32_t root_pid, bool serializable, bool lock = false);
  // Returns "ok CSN", "conflict PATH", "deadlock DESCRIPTION" (the
  // transaction was a deadlock victim), or an error.
  Result<std::string> TxCommit(const Caller& c, uint64_t id, bool durable);
  // `deadlock`, if given, receives the description when the transaction had
  // already been aborted as a deadlock victim.
  Status TxAbort(const Caller& c, uint64_t id, const std::string& reason,
                 std::string* deadlock = nullptr);
  void ShutdownTxLockWaits() { tx_locks_.Shutdown(); }
  void TEST_SetTxLockSyncPoint(txn::LockManager::SyncPoint f) {
    tx_locks_.TEST_SetSyncPoint(std::move(f));
  }
  bool TEST_TxHoldsLock(uint64_t tx, uint64_t ino) {
    return tx_locks_.TEST_InodeHold(tx, ino).has_value();
  }
  std::string TxStatus();
  bool Uncached(const Caller& c, uint64_t ino);
  void SetInvalidator(std::function<void(uint64_t ino, bool sync)> f) {
    std::lock_guard g(hot_mu_);
    invalidate_ = std::move(f);
  }
  void SetEntryInvalidator(Filesystem::EntryInvalidator f) {
    std::lock_guard g(hot_mu_);
    invalidate_entry_ = std::move(f);
  }
  Result<std::string> Control(const Caller& c, std::string_view name);
  void TEST_Abandon() {
    StopReaper();
    store_->TEST_Abandon();
    closed_ = true;  // destructors now release memory, locks and fds only
  }

 private:
  struct Handle {
    uint64_t ino = 0;
    int flags = 0;
    bool dir = false;
    std::vector<DirEntry> entries;
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

  // The context of one filesystem operation: either an autocommit
  // transaction (inode locks held, committed by Finish) or the caller's
  // explicit transaction (its mutex held; Finish commits nothing).
  struct OpScope {
    std::shared_ptr<ExplicitTx> tx;
    std::unique_lock<std::mutex> tx_lock;
    txn::InodeLocks::Guard guard;
    std::unique_ptr<Transaction> own;
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
  // Aborts transactions older than tx_timeout even when they are idle, so
  // they stop pinning old versions (GC) as soon as they expire.
  void ReaperLoop();
  void StopReaper();
  Status Finish(OpScope& op, int flags = 0);
  // An inode whose link count reached 0: reclaimed when unreferenced, or at
  // the end of the explicit transaction that unlinked it.
  void Orphaned(OpScope& op, uint64_t ino);
  // Marks an inode as touched by the operation's explicit transaction.
  void Touch(OpScope& op, uint64_t ino);
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
  // Records `dir` (as loaded by LoadDir) as changed by an entry operation.
  void ParentChanged(OpScope& op, uint64_t dir, const Inode& loaded);
  // At commit: re-applies parent-directory deltas on the latest records.
  Status MergeDirDeltas(ExplicitTx& tx);
  std::shared_ptr<ExplicitTx> TxFor(const Caller& c);
  std::shared_ptr<ExplicitTx> TxForPid(int32_t pid);
  std::string PathOf(Transaction& t, const Transaction::ConflictKey& k, const ExplicitTx* tx);
  // sync=false when called from inside a request (the kernel may hold locks
  // the invalidation would need): kernel invalidations are then queued.
  // keep_binding: a daemon-side abort (timeout, tx_max_bytes, deadlock
  // victim) — the transaction releases its locks and caches now but stays
  // bound to its processes, so their next requests fail (ECANCELED) instead
  // of running outside it, until `dbfs tx` commits or aborts it (and learns
  // why it ended) or its root process is gone.
  void EndTx(const std::shared_ptr<ExplicitTx>& tx, bool sync = true, bool keep_binding = false);
  // Gives a directory a new generation (autocommit): an aborted rmdir left
  // the kernel's inode of it dead (S_DEAD: creates inside fail with ENOENT);
  // a new generation makes the kernel treat that inode as stale and make a
  // fresh one at the next lookup.
  Status NewGeneration(uint64_t ino);
  // A daemon-side abort (tx_timeout, tx_max_bytes, deadlock victim).
  // REQUIRES: `lock` holds tx->mu, tx is not done; unlocks it. Ends the
  // transaction with keep_binding (see EndTx).
  void AbortBound(const std::shared_ptr<ExplicitTx>& tx, std::unique_lock<std::mutex>& lock,
                  const std::string& reason, bool sync);

  // ---- pessimistic (--lock) transactions ----
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

  Result<Inode> LoadInode(Transaction& t, uint64_t ino);
  void StoreInode(Transaction& t, uint64_t ino, const Inode& n) {
    t.Put(Table::kInodes, InoKey(ino), EncodeInode(n));
  }
  Result<std::optional<std::pair<uint64_t, uint32_t>>> LoadDirent(Transaction& t, uint64_t parent,
                                                                  std::string_view name);
  Result<bool> DirIsEmpty(Transaction& t, uint64_t dir);
  Result<Inode> LoadDir(Transaction& t, uint64_t ino);
  Status Truncate(Transaction& t, uint64_t ino, Inode* n, uint64_t size);
  Status DeleteInodeData(Transaction& t, uint64_t ino);
  Status WriteChunks(Transaction& t, uint64_t ino, Inode* n, uint64_t off, const char* data,
                     size_t size);
  Status CompactChunk(Transaction& t, uint64_t ino, uint64_t chunk, SliceList* l);
  Status ReadRange(Transaction& t, uint64_t ino, uint64_t off, size_t size, char* buf);
  void MaybeUpdateAtime(uint64_t ino);
  Result<bool> IsAncestor(Transaction& t, uint64_t maybe_ancestor, uint64_t ino);
  Result<mvcc::CommitResult> Commit(Transaction& t, int flags = 0) { return t.Commit(Durable(flags)); }

  // Kernel references.
  void MarkOrphan(uint64_t ino);
  bool Hot(uint64_t ino);
  void Unref(uint64_t ino, uint64_t lookups, uint64_t opens);
  void Reclaim(uint64_t ino);

  VolumeLock lock_;
  std::unique_ptr<mvcc::Store> store_;
  FsOptions opts_;
  const uint64_t chunk_;
  // Reclaims WAL space (fuse/checkpoint.h); stopped before the store closes.
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

  std::atomic<uint64_t> fsync_calls_{0};
  bool closed_ = false;

  // Explicit transactions. tx_mu_ is taken before any ExplicitTx::mu.
  std::mutex tx_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<ExplicitTx>> txs_;  // guarded by tx_mu_
  struct PidBinding {
    uint64_t start = 0;
    uint64_t gen = 0;
    uint64_t tx = 0;  // 0: not in a transaction
  };
  std::unordered_map<int32_t, PidBinding> pid_cache_;  // guarded by tx_mu_
  uint64_t tx_gen_ = 0;                                // guarded by tx_mu_
  uint64_t next_tx_ = 1;                               // guarded by tx_mu_
  // Lock order: ExplicitTx::mu, then tx_mu_, then hot_mu_ (a leaf).
  std::mutex hot_mu_;
  std::unordered_map<uint64_t, int> hot_;              // guarded by hot_mu_: inode -> open txs touching it
  std::function<void(uint64_t, bool)> invalidate_;     // guarded by hot_mu_
  Filesystem::EntryInvalidator invalidate_entry_;  // guarded by hot_mu_
  std::atomic<size_t> open_txs_{0};
  std::atomic<uint64_t> tx_commits_{0}, tx_conflicts_{0}, tx_aborts_{0};
  std::atomic<uint64_t> tx_deadlocks_{0}, tx_rebases_{0}, tx_root_gone_{0};
  // Exclusive inode locks of --lock transactions (owner: the transaction id;
  // the FUSE adapter's advisory locks have their own manager). Only --lock
  // transactions ever wait here: autocommit operations and optimistic
  // transactions never touch it. Its mutexes are leaves below ExplicitTx::mu.
  txn::LockManager tx_locks_;

  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;  // guarded by reaper_mu_
  std::thread reaper_;
};

namespace {

// /proc facts about a task (thread or process).
struct ProcInfo {
  int32_t tgid = 0;
  int32_t ppid = 0;
  uint64_t start = 0;  // start time in clock ticks since boot
};

std::optional<ProcInfo> ReadProc(int32_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (!f) return std::nullopt;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  // The command may contain spaces and parentheses: parse after the last ')'.
  const char* p = strrchr(buf, ')');
  if (!p) return std::nullopt;
  ProcInfo info;
  char state;
  unsigned long long fields[20];
  int got = sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &state, &info.ppid, &fields[0]);
  if (got != 3) return std::nullopt;
  info.start = fields[0];
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "re");
  if (f) {
    char line[256];
    while (fgets(line, sizeof(line), f)) {
      if (sscanf(line, "Tgid: %d", &info.tgid) == 1) break;
    }
    fclose(f);
  }
  if (info.tgid == 0) info.tgid = pid;
  return info;
}

}  // namespace

Result<Inode> FilesystemImpl::LoadInode(Transaction& t, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  return DecodeInode(*v);
}

Result<Inode> FilesystemImpl::LoadDir(Transaction& t, uint64_t ino) {
  // The parent of an entry operation: read outside the read set (see
  // ExplicitTx::dir_base for how its changes are validated).
  DBFS_ASSIGN_OR_RETURN(auto v, t.GetUntracked(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
  if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
  if (n.nlink == 0) return Status::NotFound("directory was removed");
  return n;
}

Result<std::optional<std::pair<uint64_t, uint32_t>>> FilesystemImpl::LoadDirent(
    Transaction& t, uint64_t parent, std::string_view name) {
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kDirents, NameKey(parent, name)));
  if (!v) return std::optional<std::pair<uint64_t, uint32_t>>();
  uint64_t ino;
  uint32_t type;
  if (!DecodeDirent(*v, &ino, &type)) return Status::Corruption("malformed directory entry");
  return std::optional<std::pair<uint64_t, uint32_t>>(std::make_pair(ino, type));
}

Result<bool> FilesystemImpl::DirIsEmpty(Transaction& t, uint64_t dir) {
  bool empty = true;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kDirents, InoKey(dir), InoKey(dir + 1),
                              [&](std::string_view, std::string_view) {
                                empty = false;
                                return false;
                              }));
  return empty;
}

// ---- kernel references and orphans ----

void FilesystemImpl::AddLookup(uint64_t ino) {
  std::lock_guard g(refs_mu_);
  ++refs_[ino].lookups;
}

void FilesystemImpl::Forget(uint64_t ino, uint64_t n) { Unref(ino, n, 0); }

bool FilesystemImpl::Hot(uint64_t ino) {
  if (open_txs_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard g(hot_mu_);
  return hot_.count(ino) > 0;
}

void FilesystemImpl::MarkOrphan(uint64_t ino) {
  bool reclaim = false;
  const bool hot = Hot(ino);
  {
    std::lock_guard g(refs_mu_);
    Refs& r = refs_[ino];
    r.orphan = true;
    // An open transaction that touched the inode would lose its commit to
    // the reclamation (first committer wins): EndTx retries it instead.
    if (r.lookups == 0 && r.opens == 0 && !r.reclaiming && !hot) {
      r.reclaiming = true;
      reclaim = true;
    }
  }
  if (reclaim) Reclaim(ino);
}

void FilesystemImpl::Unref(uint64_t ino, uint64_t lookups, uint64_t opens) {
  bool reclaim = false;
  const bool hot = Hot(ino);
  {
    std::lock_guard g(refs_mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    Refs& r = it->second;
    r.lookups -= std::min(r.lookups, lookups);
    r.opens -= std::min(r.opens, opens);
    if (r.lookups == 0 && r.opens == 0) {
      if (r.orphan && !r.reclaiming) {
        if (!hot) {
          r.reclaiming = true;
          reclaim = true;
        }
      } else if (!r.orphan) {
        refs_.erase(it);
      }
    }
  }
  if (reclaim) Reclaim(ino);
}

// Deletes an unlinked inode nobody references: attributes, data, xattrs and
// its orphan-list entry, in one transaction. A crash before it commits leaves
// the orphan entry, and the next mount reclaims it.
void FilesystemImpl::Reclaim(uint64_t ino) {
  Status st = [&]() -> Status {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(kInternal, {ino}));
    Transaction& t = op.t();
    auto n = LoadInode(t, ino);
    if (!n.ok()) {
      if (n.status().code() == Code::kNotFound) {
        t.Delete(Table::kOrphans, InoKey(ino));
        return Finish(op);
      }
      return n.status();
    }
    if (n->nlink != 0) return Status::Ok();  // relinked meanwhile (linkat)
    DBFS_RETURN_IF_ERROR(DeleteInodeData(t, ino));
    t.Delete(Table::kInodes, InoKey(ino));
    t.Delete(Table::kOrphans, InoKey(ino));
    return Finish(op);
  }();
  if (!st.ok()) spdlog::error("reclaiming inode {} failed: {}", ino, st.ToString());
  std::lock_guard g(refs_mu_);
  auto it = refs_.find(ino);
  if (it != refs_.end()) {
    it->second.reclaiming = false;
    if (st.ok() && it->second.lookups == 0 && it->second.opens == 0) refs_.erase(it);
  }
}

Status FilesystemImpl::DeleteInodeData(Transaction& t, uint64_t ino) {
  std::vector<std::string> keys;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, InoKey(ino), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view) {
                                keys.emplace_back(k);
                                return true;
                              }));
  for (auto& k : keys) t.Delete(Table::kExtents, std::move(k));
  keys.clear();
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kXattrs, InoKey(ino), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view) {
                                keys.emplace_back(k);
                                return true;
                              }));
  for (auto& k : keys) t.Delete(Table::kXattrs, std::move(k));
  return Status::Ok();
}

Status FilesystemImpl::ReclaimAllOrphans() {
  std::vector<uint64_t> inos;
  {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(kInternal, {}));
  Transaction& t = op.t();
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kOrphans, "", "", [&](std::string_view k, std::string_view) {
      if (k.size() == 8) inos.push_back(GetBE64(k.data()));
      return true;
    }));
  }
  for (uint64_t ino : inos) Reclaim(ino);
  if (!inos.empty()) spdlog::info("reclaimed {} orphaned inodes", inos.size());
  return Status::Ok();
}


// ---- operation scopes and explicit transactions ----

void FilesystemImpl::ReaperLoop() {
  std::unique_lock lock(reaper_mu_);
  while (!reaper_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return reaper_stop_; })) {
    if (open_txs_.load(std::memory_order_acquire) == 0) continue;
    lock.unlock();
    std::vector<std::shared_ptr<ExplicitTx>> expired, bound, forgotten;
    const auto now = std::chrono::steady_clock::now();
    const auto timeout = std::chrono::seconds(opts_.tx_timeout_s);
    {
      std::lock_guard g(tx_mu_);
      for (const auto& [id, tx] : txs_) {
        // Ended by the daemon but still bound (AbortBound): it waits for its
        // root process to end it or to go away.
        const bool ended = tx->released.load();
        if (!ended && now - tx->started > timeout) {
          expired.push_back(tx);
        } else if (tx->root_pid != 0) {
          bound.push_back(tx);
        } else if (ended && now - tx->started > 2 * timeout) {
          forgotten.push_back(tx);  // joined by Caller::tx: no process to watch
        }
      }
    }
    for (const auto& tx : expired) {
      // A request of it may be waiting for a --lock lock, holding tx->mu.
      tx->cancel.store(true);
      if (tx->lock) tx_locks_.Interrupt();
      std::unique_lock l(tx->mu);
      if (tx->done) continue;
      spdlog::warn("transaction {} (root pid {}) aborted: open longer than tx_timeout={}s", tx->id,
                   tx->root_pid, opts_.tx_timeout_s);
      AbortBound(tx, l, "timeout", /*sync=*/true);
    }
    for (const auto& tx : forgotten) TxAbort(Caller{}, tx->id, "forgotten").IgnoreError();
    // A transaction whose root process is gone (dbfs tx run killed, the shell
    // of dbfs tx begin exited) can never be committed: abort it now rather
    // than at tx_timeout, so its --lock locks do not block others that long.
    // (`dbfs tx run` keeps its exited child unreaped until the commit.)
    for (const auto& tx : bound) {
      auto info = ReadProc(tx->root_pid);
      if (info && info->start == tx->root_start) continue;
      spdlog::warn("transaction {} aborted: its root process {} is gone", tx->id, tx->root_pid);
      tx_root_gone_.fetch_add(1, std::memory_order_relaxed);
      Caller root;
      TxAbort(root, tx->id, "root process gone").IgnoreError();
    }
    lock.lock();
  }
}

void FilesystemImpl::StopReaper() {
  {
    std::lock_guard g(reaper_mu_);
    reaper_stop_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}


void FilesystemImpl::ParentChanged(OpScope& op, uint64_t dir, const Inode& loaded) {
  if (!op.tx || op.tx->dir_exact.count(dir)) return;
  if (op.tx->dir_base.emplace(dir, loaded).second) {
    op.tx->txn->MergeAtCommit(Table::kInodes, InoKey(dir));
  }
}

Status FilesystemImpl::MergeDirDeltas(ExplicitTx& tx) {
  Transaction& t = *tx.txn;
  for (const auto& [dir, base] : tx.dir_base) {
    if (tx.dir_exact.count(dir)) continue;
    DBFS_ASSIGN_OR_RETURN(auto mine_v, t.GetUntracked(Table::kInodes, InoKey(dir)));
    if (!mine_v) continue;
    DBFS_ASSIGN_OR_RETURN(Inode mine, DecodeInode(*mine_v));
    // The caller holds the inode locks: the latest record cannot change now.
    DBFS_ASSIGN_OR_RETURN(auto latest_v, store_->Get(store_->visible_csn(), Table::kInodes, InoKey(dir)));
    Inode latest;
    if (latest_v) {
      DBFS_ASSIGN_OR_RETURN(latest, DecodeInode(*latest_v));
    }
    if (!latest_v) {
      DBFS_ASSIGN_OR_RETURN(auto at_snapshot, store_->Get(t.snapshot(), Table::kInodes, InoKey(dir)));
      if (!at_snapshot) continue;  // created by this transaction: its record stands
    }
    if (!latest_v || (latest.nlink == 0 && base.nlink != 0)) {
      // Someone removed the directory the transaction changed entries in.
      return Status::Conflict("directory removed");
    }
    latest.nlink = latest.nlink + mine.nlink - base.nlink;
    if (!TimeLE(mine.mtime, latest.mtime)) latest.mtime = mine.mtime;
    if (!TimeLE(mine.ctime, latest.ctime)) latest.ctime = mine.ctime;
    t.Put(Table::kInodes, InoKey(dir), EncodeInode(latest));
  }
  return Status::Ok();
}


Result<FilesystemImpl::OpScope> FilesystemImpl::BeginOp(const Caller& c,
                                                        std::initializer_list<uint64_t> lock_inos,
                                                        std::initializer_list<uint64_t> read_inos,
                                                        bool dir_read_tracked) {
  return BeginOpIn(TxFor(c), c, lock_inos, read_inos, dir_read_tracked);
}

Result<FilesystemImpl::OpScope> FilesystemImpl::BeginOpIn(
    std::shared_ptr<ExplicitTx> tx, const Caller& c, std::initializer_list<uint64_t> lock_inos,
    std::initializer_list<uint64_t> read_inos, bool dir_read_tracked) {
  OpScope op;
  if (tx) {
    op.tx_lock = std::unique_lock(tx->mu);
    if (tx->done) {
      return Status(Code::kConflict, "transaction " + std::to_string(tx->id) + " has ended (" +
                                         tx->end_reason + ")");
    }
    if (std::chrono::steady_clock::now() - tx->started > std::chrono::seconds(opts_.tx_timeout_s)) {
      spdlog::warn("transaction {} (root pid {}) aborted: open longer than tx_timeout={}s", tx->id,
                   tx->root_pid, opts_.tx_timeout_s);
      AbortBound(tx, op.tx_lock, "timeout", /*sync=*/false);
      return Status(Code::kConflict, "transaction aborted: open longer than tx_timeout");
    }
    std::vector<uint64_t> fresh;
    for (uint64_t ino : lock_inos) {
      if (ino != 0 && tx->inodes.insert(ino).second) fresh.push_back(ino);
    }
    if (!fresh.empty()) {
      // From now on the kernel must not answer from its caches for these
      // inodes: drop what it has (asynchronously: the kernel may hold locks
      // for the very request we are serving) and give zero timeouts.
      std::function<void(uint64_t, bool)> inval;
      {
        std::lock_guard g(hot_mu_);
        for (uint64_t ino : fresh) ++hot_[ino];
        inval = invalidate_;
      }
      if (inval) {
        for (uint64_t ino : fresh) inval(ino, false);
      }
    }
    if (tx->lock) {
      Status locked = TxLock(*tx, c, lock_inos, read_inos, dir_read_tracked);
      if (locked.code() == Code::kDeadlock) {
        // The victim: aborted now, so that the others of the cycle get its
        // locks. Its processes stay bound to it (their next requests fail)
        // until `dbfs tx` ends it and reports the deadlock (exit 75).
        spdlog::info("transaction {} (root pid {}) aborted: {}", tx->id, tx->root_pid,
                     locked.message());
        tx->deadlock = locked.message();
        tx_deadlocks_.fetch_add(1);
        AbortBound(tx, op.tx_lock, "deadlock", /*sync=*/false);
      }
      DBFS_RETURN_IF_ERROR(locked);
    }
    op.tx = std::move(tx);
    return op;
  }
  op.guard = locks_.Lock(lock_inos);
  op.own = std::make_unique<Transaction>(store_.get());
  return op;
}

void FilesystemImpl::AbortBound(const std::shared_ptr<ExplicitTx>& tx,
                                std::unique_lock<std::mutex>& lock, const std::string& reason,
                                bool sync) {
  tx->done = true;
  tx->end_reason = reason;
  tx_aborts_.fetch_add(1);
  tx->txn.reset();  // nothing of it will ever commit: free the write set now
  tx->pin.reset();
  // Keep our own reference: `tx` may be the OpScope's, which the caller's
  // return destroys.
  std::shared_ptr<ExplicitTx> keep = tx;
  lock.unlock();
  EndTx(keep, sync, /*keep_binding=*/true);
}

Status FilesystemImpl::TxLock(ExplicitTx& tx, const Caller& c,
                              std::initializer_list<uint64_t> write_inos,
                              std::initializer_list<uint64_t> read_inos, bool dir_read_tracked) {
  std::vector<uint64_t> want;
  for (uint64_t ino : write_inos) {
    if (ino != 0 && !tx.locked.count(ino)) want.push_back(ino);
  }
  for (uint64_t ino : read_inos) {
    if (ino == 0 || tx.locked.count(ino)) continue;
    // Every path walk reads directories (lookups, and stat for permission
    // checks): locking them on read would serialize all --lock transactions
    // at the root. A directory is locked when written; its reads stay
    // optimistic (validated at commit) and are recorded for TxRebase.
    DBFS_ASSIGN_OR_RETURN(auto v, tx.txn->GetUntracked(Table::kInodes, InoKey(ino)));
    if (!v) continue;  // the operation fails with ENOENT by itself
    DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
    if (n.IsDir()) {
      if (dir_read_tracked) tx.unlocked_reads.emplace(Table::kInodes, InoKey(ino));
      continue;
    }
    want.push_back(ino);
  }
  if (want.empty()) return Status::Ok();
  // Ascending order: operations locking several inodes (rename) do not
  // deadlock with each other just by their order.
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  std::vector<uint64_t> fresh;
  for (uint64_t ino : want) {
    tx.waiting_on.store(ino, std::memory_order_relaxed);
    Status s = tx_locks_.LockInode(tx.id, c.pid, ino, txn::LockMode::kExclusive, /*wait=*/true,
                                   &tx.cancel);
    tx.waiting_on.store(0, std::memory_order_relaxed);
    if (s.code() == Code::kDeadlock) {
      Transaction now(store_.get());
      const std::string path = PathOf(now, Transaction::ConflictKey{Table::kInodes, InoKey(ino)}, &tx);
      // The manager's cycle ("deadlock: owner 2 (pid 7) waits on ino 3 ->
      // owner 1 ..."), told in terms of transactions (the owners here).
      std::string cycle = s.message();
      if (cycle.starts_with("deadlock: ")) cycle.erase(0, 10);
      for (size_t at = 0; (at = cycle.find("owner ", at)) != std::string::npos;) {
        cycle.replace(at, 6, "transaction ");
        at += 12;
      }
      return Status(Code::kDeadlock, "deadlock waiting for " + path + ": " + cycle, EDEADLK);
    }
    if (!s.ok()) {
      if (tx.cancel.load()) return Status::Conflict("transaction aborted while waiting for a lock");
      return s;  // ENOLCK at unmount
    }
    tx.locked.insert(ino);
    fresh.push_back(ino);
  }
  // A newly locked inode that changed since the snapshot (typically: the
  // transaction waited for another one that changed and committed it) would
  // be read stale and fail validation at commit. Move the snapshot forward.
  const mvcc::Csn snap = tx.txn->snapshot();
  for (uint64_t ino : fresh) {
    DBFS_ASSIGN_OR_RETURN(bool changed, ChangedSince(tx, snap, Table::kInodes, InoKey(ino)));
    if (changed) return TxRebase(tx, fresh);
  }
  return Status::Ok();
}

Result<bool> FilesystemImpl::ChangedSince(const ExplicitTx& tx, mvcc::Csn snap, Table t,
                                          std::string_view key) {
  DBFS_ASSIGN_OR_RETURN(mvcc::Csn newest, store_->NewestCsn(t, key));
  if (newest <= snap) return false;
  if (tx.benign) {
    DBFS_ASSIGN_OR_RETURN(auto before, store_->Get(snap, t, key));
    DBFS_ASSIGN_OR_RETURN(auto after, store_->Get(mvcc::kMaxCsn, t, key));
    if (before && after && tx.benign(t, *before, *after)) return false;
  }
  return true;
}

// Moving a transaction's snapshot from S to S' is sound when everything it
// read or wrote is unchanged between S and S': it would have read and
// written the same at S', so it is as if it had begun there. What it read is
// described conservatively: the record of every inode it locked (every
// change of an inode's data, entries or xattrs also writes its record), and
// unlocked_reads (entries it looked up, directory records it read). If any of
// it changed, the snapshot stays and commit-time validation decides, exactly
// as for an optimistic transaction.
Status FilesystemImpl::TxRebase(ExplicitTx& tx, const std::vector<uint64_t>& fresh) {
  if (!tx.rebase_ok) return Status::Ok();
  Transaction& old = *tx.txn;
  const mvcc::Csn snap = old.snapshot();
  // The new snapshot first: a change committed after it is caught by the
  // checks below (they look at the newest version) or by validation.
  auto next = std::make_unique<Transaction>(store_.get());
  std::set<std::pair<Table, std::string>> reads = tx.unlocked_reads;
  for (const auto& [parent, name] : tx.entries) reads.emplace(Table::kDirents, NameKey(parent, name));
  for (uint64_t ino : tx.locked) {
    if (!std::binary_search(fresh.begin(), fresh.end(), ino)) reads.emplace(Table::kInodes, InoKey(ino));
  }
  for (const auto& [t, key] : reads) {
    DBFS_ASSIGN_OR_RETURN(bool changed, ChangedSince(tx, snap, t, key));
    if (changed) return Status::Ok();
  }
  std::vector<std::pair<Table, std::string>> writes;
  old.ForEachWrite([&](Table t, std::string_view key) { writes.emplace_back(t, std::string(key)); });
  auto merged = [&](Table t, const std::string& key) {
    if (t != Table::kInodes || key.size() != 8) return false;
    const uint64_t ino = GetBE64(key.data());
    return tx.dir_base.count(ino) > 0 && tx.dir_exact.count(ino) == 0;
  };
  for (const auto& [t, key] : writes) {
    if (merged(t, key)) continue;  // re-applied on the latest record at commit
    DBFS_ASSIGN_OR_RETURN(bool changed, ChangedSince(tx, snap, t, key));
    if (changed) return Status::Ok();
  }
  if (tx.serializable) next->TrackReads();
  next->SetBenignChange(tx.benign);
  for (const auto& [t, key] : writes) {
    DBFS_ASSIGN_OR_RETURN(auto v, old.GetUntracked(t, key));  // from the write set
    if (v) {
      next->Put(t, key, std::move(*v));
    } else {
      next->Delete(t, key);
    }
    if (merged(t, key)) next->MergeAtCommit(t, key);
  }
  // What it read before stays in its read set (its commit validates it from
  // the new snapshot on).
  for (const auto& [t, key] : reads) next->NoteRead(t, key);
  tx.data_carried += old.data_bytes();
  // The first Transaction stays alive until the end: its snapshot keeps the
  // WAL segments holding the data written so far from a checkpoint (they are
  // referenced only by this write set) and the versions ChangedSince needs.
  if (!tx.pin) tx.pin = std::move(tx.txn);
  tx.txn = std::move(next);
  tx_rebases_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

Status FilesystemImpl::TxPreLock(const Caller& c, std::initializer_list<uint64_t> inos) {
  auto tx = TxFor(c);
  if (!tx || !tx->lock) return Status::Ok();
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, inos));
  return Status::Ok();
}

Status FilesystemImpl::Finish(OpScope& op, int flags) {
  if (!op.tx) return Commit(*op.own, flags).status();
  if (flags & (O_SYNC | O_DSYNC)) op.tx->durable = true;
  if (op.tx->data_bytes() > opts_.tx_max_bytes) {
    spdlog::warn("transaction {} (root pid {}) aborted: wrote more than tx_max_bytes={}", op.tx->id,
                 op.tx->root_pid, opts_.tx_max_bytes);
    AbortBound(op.tx, op.tx_lock, "too big (tx_max_bytes)", /*sync=*/false);
    return Status(Code::kNoSpace, "transaction exceeded tx_max_bytes and was aborted");
  }
  return Status::Ok();
}

void FilesystemImpl::Orphaned(OpScope& op, uint64_t ino) {
  if (op.tx) {
    op.tx->orphans.push_back(ino);
  } else {
    MarkOrphan(ino);
  }
}

std::shared_ptr<ExplicitTx> FilesystemImpl::TxFor(const Caller& c) {
  if (c.tx != 0) {
    std::lock_guard g(tx_mu_);
    auto t = txs_.find(c.tx);
    if (t == txs_.end() || t->second->root_pid != 0) return nullptr;
    return t->second;
  }
  return TxForPid(c.pid);
}

std::shared_ptr<ExplicitTx> FilesystemImpl::TxForPid(int32_t pid) {
  if (pid <= 0 || open_txs_.load(std::memory_order_acquire) == 0) return nullptr;
  // /proc is read without tx_mu_ held: every request of every process asks
  // this while any transaction is open, and they must not queue behind one
  // another's file reads.
  auto self = ReadProc(pid);
  if (!self) return nullptr;
  struct Root {
    int32_t pid;
    uint64_t start, id;
  };
  std::vector<Root> roots;
  uint64_t gen;
  {
    std::lock_guard g(tx_mu_);
    if (txs_.empty()) return nullptr;
    auto cached = pid_cache_.find(pid);
    if (cached != pid_cache_.end() && cached->second.gen == tx_gen_ &&
        cached->second.start == self->start) {
      auto t = txs_.find(cached->second.tx);
      return t == txs_.end() ? nullptr : t->second;
    }
    gen = tx_gen_;
    for (const auto& [id, tx] : txs_) {
      if (tx->root_pid != 0) roots.push_back(Root{tx->root_pid, tx->root_start, id});
    }
  }
  // Walk up: thread -> its process -> parent -> ... until a bound root.
  uint64_t found = 0;
  int32_t cur = pid;
  std::optional<ProcInfo> info = self;
  for (int depth = 0; info && cur > 1 && depth < 128 && !found; ++depth) {
    for (const Root& r : roots) {
      if (r.pid == cur && r.start == info->start) {
        found = r.id;
        break;
      }
    }
    cur = info->tgid != cur ? info->tgid : info->ppid;
    info = ReadProc(cur);
  }
  std::lock_guard g(tx_mu_);
  // Transactions began or ended meanwhile: the walk may be stale for them,
  // so it is not cached (the next request walks again).
  if (gen == tx_gen_) pid_cache_[pid] = PidBinding{self->start, tx_gen_, found};
  auto t = txs_.find(found);
  return t == txs_.end() ? nullptr : t->second;
}

bool FilesystemImpl::Uncached(const Caller& c, uint64_t ino) {
  if (open_txs_.load(std::memory_order_acquire) == 0) return false;
  if (TxFor(c)) return true;
  std::lock_guard g(hot_mu_);
  return hot_.count(ino) > 0;
}

Result<uint64_t> FilesystemImpl::TxBegin(const Caller& c, int32_t root_pid, bool serializable,
                                         bool lock) {
  // root_pid 0: a transaction joined by Caller::tx rather than by pid.
  auto root = root_pid == 0 ? std::optional<ProcInfo>(ProcInfo{}) : ReadProc(root_pid);
  if (!root) return Status::NotFound("no process " + std::to_string(root_pid));
  if (c.uid != 0 && root_pid != 0) {
    struct stat st;
    const std::string proc = "/proc/" + std::to_string(root_pid);
    if (::stat(proc.c_str(), &st) != 0 || st.st_uid != c.uid) {
      return Status(Code::kPermission, "cannot bind a transaction to another user's process");
    }
  }
  if (TxFor(c)) return Status::Busy("the caller is already inside a transaction");
  auto tx = std::make_shared<ExplicitTx>();
  tx->root_pid = root_pid;
  tx->root_start = root->start;
  tx->uid = c.uid;
  tx->serializable = serializable;
  tx->lock = lock;
  tx->started = std::chrono::steady_clock::now();
  tx->txn = std::make_unique<Transaction>(store_.get());
  if (serializable) tx->txn->TrackReads();
  // Readers bump atime with autocommits, and checkpoints move file data
  // without changing it; neither may abort a transaction.
  tx->benign = [store = store_.get()](Table t, std::string_view before,
                                      std::string_view after) {
    if (t == Table::kExtents) return ExtentsReadTheSame(store, before, after);
    if (t != Table::kInodes) return false;
    auto a = DecodeInode(before), b = DecodeInode(after);
    if (!a.ok() || !b.ok()) return false;
    a->atime = b->atime;
    return EncodeInode(*a) == EncodeInode(*b);
  };
  tx->txn->SetBenignChange(tx->benign);  // kept: a --lock rebase gives it to a new Transaction
  std::lock_guard g(tx_mu_);
  for (const auto& [id, other] : txs_) {
    if (root_pid != 0 && other->root_pid == root_pid && other->root_start == root->start) {
      return Status::Busy("process " + std::to_string(root_pid) + " is already bound to transaction " +
                          std::to_string(id));
    }
  }
  tx->id = next_tx_++;
  txs_.emplace(tx->id, tx);
  ++tx_gen_;
  pid_cache_.clear();
  open_txs_.fetch_add(1, std::memory_order_release);
  spdlog::debug("transaction {} begun for pid {} ({}{})", tx->id, root_pid,
                serializable ? "serializable" : "snapshot", lock ? ", lock" : "");
  return tx->id;
}

void FilesystemImpl::EndTx(const std::shared_ptr<ExplicitTx>& tx, bool sync, bool keep_binding) {
  // Before the kernel drops the transaction's pages below: dirty mapped
  // pages it writes back first must find the outcome (Write, writeback).
  tx->outcome->store(tx->end_reason == "committed" ? kTxCommitted : kTxNotCommitted,
                     std::memory_order_release);
  // Before the kernel drops the entries below: its next lookup of such a
  // directory must find the new generation.
  if (tx->end_reason != "committed" && !tx->dirs_revived) {
    tx->dirs_revived = true;
    for (uint64_t ino : tx->removed_dirs) {
      Status st = NewGeneration(ino);
      if (!st.ok()) spdlog::warn("directory {}: new generation failed: {}", ino, st.ToString());
    }
  }
  if (!keep_binding) {
    std::lock_guard g(tx_mu_);
    if (txs_.erase(tx->id) == 0) return;
    ++tx_gen_;
    pid_cache_.clear();
    open_txs_.fetch_sub(1, std::memory_order_release);
  }
  // Its --lock locks go first: the transactions waiting for them proceed
  // (after a commit, from the state it published).
  if (tx->lock) tx_locks_.ReleaseAll(tx->id);
  // A transaction ended with keep_binding was released then; its final end
  // only repeats the kernel invalidations (synchronously this time).
  const bool first_end = !tx->released.exchange(true);
  std::function<void(uint64_t, bool)> inval;
  Filesystem::EntryInvalidator inval_entry;
  {
    std::lock_guard g(hot_mu_);
    for (uint64_t ino : first_end ? tx->inodes : std::set<uint64_t>{}) {
      auto it = hot_.find(ino);
      if (it != hot_.end() && --it->second == 0) hot_.erase(it);
    }
    inval = invalidate_;
    inval_entry = invalidate_entry_;
  }
  // The kernel applied the transaction's namespace changes to its shared
  // dentry cache as they happened; drop those entries so everyone looks up
  // the committed (or, after an abort, the unchanged) state.
  if (inval_entry && sync) inval_entry(tx->entries);
  // Synchronously: when commit returns, no outside reader may still be served
  // the old pages or attributes from the kernel's caches.
  if (inval) {
    for (uint64_t ino : tx->inodes) inval(ino, sync);
  }
  // Orphans whose reclamation waited for this transaction.
  for (uint64_t ino : tx->inodes) {
    bool orphan = false;
    {
      std::lock_guard g(refs_mu_);
      auto it = refs_.find(ino);
      orphan = it != refs_.end() && it->second.orphan;
    }
    if (orphan) Unref(ino, 0, 0);
  }
}

std::string FilesystemImpl::PathOf(Transaction& t, const Transaction::ConflictKey& k,
                                   const ExplicitTx* tx) {
  // The name under which `parent` lists `ino` ("" if it does not).
  auto name_in = [&](uint64_t parent, uint64_t ino) {
    std::string name;
    Status st = t.Scan(Table::kDirents, InoKey(parent), InoKey(parent + 1),
                       [&](std::string_view key, std::string_view v) {
                         uint64_t child;
                         uint32_t type;
                         if (DecodeDirent(v, &child, &type) && child == ino) {
                           name = std::string(key.substr(8, key.size() - 9));
                           return false;
                         }
                         return true;
                       });
    st.IgnoreError();  // a message helper: an unreadable name is shown as "?"
    return name;
  };
  auto dir_path = [&](uint64_t ino) -> std::string {
    std::string path;
    for (int depth = 0; ino != kRootIno && depth < 4096; ++depth) {
      auto n = LoadInode(t, ino);
      if (!n.ok() || !n->IsDir()) return "<inode " + std::to_string(ino) + ">" + path;
      std::string name = name_in(n->parent, ino);
      path = "/" + (name.empty() ? std::string("?") : name) + path;
      ino = n->parent;
    }
    return path.empty() ? "/" : path;
  };
  auto join = [](const std::string& dir, const std::string& name) {
    return (dir == "/" ? "" : dir) + "/" + name;
  };
  if (k.key.size() < 8) return "?";
  const uint64_t ino = GetBE64(k.key.data());
  if (k.table == Table::kDirents) return join(dir_path(ino), k.key.substr(8, k.key.size() - 9));
  auto n = LoadInode(t, ino);
  if (n.ok() && n->IsDir()) return dir_path(ino);
  if (n.ok() && n->parent != 0) {
    std::string name = name_in(n->parent, ino);
    if (!name.empty()) return join(dir_path(n->parent), name);
  }
  if (tx) {
    auto it = tx->names.find(ino);
    if (it != tx->names.end()) return join(dir_path(it->second.first), it->second.second);
  }
  return "<inode " + std::to_string(ino) + ">";
}

Result<std::string> FilesystemImpl::TxCommit(const Caller& c, uint64_t id, bool durable) {
  std::shared_ptr<ExplicitTx> tx;
  {
    std::lock_guard g(tx_mu_);
    auto it = txs_.find(id);
    if (it == txs_.end()) return Status::NotFound("no open transaction " + std::to_string(id));
    tx = it->second;
  }
  if (c.uid != 0 && c.uid != tx->uid) return Status(Code::kPermission, "not your transaction");
  std::unique_lock lock(tx->mu);
  if (tx->done && tx->end_reason == "deadlock") {
    // A deadlock victim, kept bound until now: `dbfs tx` reports it (exit 75).
    const std::string why = tx->deadlock;
    lock.unlock();
    EndTx(tx);
    return "deadlock " + why;
  }
  if (tx->done) {
    // Aborted by the daemon (kept bound so far) or ended meanwhile.
    const std::string why = tx->end_reason;
    lock.unlock();
    EndTx(tx);
    return Status(Code::kConflict, "transaction has ended (" + why + ")");
  }
  Transaction& t = *tx->txn;
  // Lock every inode the transaction writes, like an autocommit operation
  // would: validation and publication then cannot interleave with an
  // autocommit read-modify-write of the same inode.
  std::vector<uint64_t> inos;
  t.ForEachWrite([&](Table, std::string_view key) {
    if (key.size() >= 8) inos.push_back(GetBE64(key.data()));
  });
  auto guard = locks_.Lock(inos);
  if (Status m = MergeDirDeltas(*tx); !m.ok()) {
    guard.Release();
    tx->done = true;
    tx->end_reason = "conflict";
    tx_conflicts_.fetch_add(1);
    lock.unlock();
    EndTx(tx);
    if (m.code() != Code::kConflict) return m;
    return std::string("conflict (a directory the transaction changed was removed)");
  }
  auto r = t.Commit(durable || tx->durable || opts_.sync,
                    tx->serializable ? Transaction::Validation::kReadsAndWrites
                                     : Transaction::Validation::kWrites);
  guard.Release();
  tx->done = true;
  std::string out;
  if (r.ok() && (durable || tx->durable || opts_.sync)) {
    // An fsync inside the transaction promised durability of everything
    // before it, even when the transaction itself wrote nothing.
    Status synced = store_->SyncAll();
    if (!synced.ok()) r = synced;
  }
  if (r.ok()) {
    tx->end_reason = "committed";
    tx_commits_.fetch_add(1);
    out = "ok " + std::to_string(r->csn);
  } else if (r.status().code() == Code::kConflict && t.conflict()) {
    tx->end_reason = "conflict";
    tx_conflicts_.fetch_add(1);
    // Name the path as the world sees it now.
    Transaction now(store_.get());
    out = "conflict " + PathOf(now, *t.conflict(), tx.get());
  } else {
    tx->end_reason = "error";
    lock.unlock();
    EndTx(tx);
    return r.TakeStatus();
  }
  std::vector<uint64_t> orphans = r.ok() ? tx->orphans : std::vector<uint64_t>{};
  lock.unlock();
  EndTx(tx);
  for (uint64_t ino : orphans) MarkOrphan(ino);
  return out;
}

Status FilesystemImpl::TxAbort(const Caller& c, uint64_t id, const std::string& reason,
                               std::string* deadlock) {
  std::shared_ptr<ExplicitTx> tx;
  {
    std::lock_guard g(tx_mu_);
    auto it = txs_.find(id);
    if (it == txs_.end()) return Status::NotFound("no open transaction " + std::to_string(id));
    tx = it->second;
  }
  if (c.uid != 0 && c.uid != tx->uid) return Status(Code::kPermission, "not your transaction");
  if (tx->lock) {
    // One of its requests may be waiting for a lock, holding tx->mu: end the
    // wait (it fails with ECANCELED).
    tx->cancel.store(true);
    tx_locks_.Interrupt();
  }
  {
    std::lock_guard lock(tx->mu);
    if (!tx->done) {
      tx->done = true;
      tx->end_reason = reason;
      tx_aborts_.fetch_add(1);
    } else if (deadlock && tx->end_reason == "deadlock") {
      *deadlock = tx->deadlock;
    }
  }
  EndTx(tx);
  return Status::Ok();
}

Status FilesystemImpl::NewGeneration(uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(Caller{}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kInodes, InoKey(ino)));
  if (!v) return Status::Ok();  // removed by someone else meanwhile
  DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
  if (!n.IsDir() || n.nlink == 0) return Status::Ok();
  ++n.generation;
  StoreInode(t, ino, n);
  return Finish(op);
}

std::string FilesystemImpl::TxStatus() {
  std::vector<std::shared_ptr<ExplicitTx>> txs;
  {
    std::lock_guard g(tx_mu_);
    for (const auto& [id, tx] : txs_) txs.push_back(tx);
  }
  std::sort(txs.begin(), txs.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  std::string out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& tx : txs) {
    if (tx->released.load()) continue;  // aborted by the daemon, bound until `dbfs tx` ends it
    const double age = std::chrono::duration<double>(now - tx->started).count();
    out += fmt::format("tx {} pid {} uid {} {} {} age {:.1f}s", tx->id, tx->root_pid, tx->uid,
                       tx->serializable ? "serializable" : "snapshot",
                       tx->lock ? "lock" : "optimistic", age);
    // A request of a --lock transaction may hold its mutex for as long as it
    // waits for a lock: never block on it here.
    std::unique_lock lock(tx->mu, std::try_to_lock);
    if (lock.owns_lock() && tx->txn) {
      out += fmt::format(" writes {} bytes {}", tx->txn->write_count(), tx->data_bytes());
      if (tx->lock) out += fmt::format(" locks {}", tx->locked.size());
    } else if (const uint64_t ino = tx->waiting_on.load(); ino != 0) {
      out += fmt::format(" waiting for the lock of inode {}", ino);
    } else {
      out += " busy";
    }
    out += "\n";
  }
  return out;
}

// Control commands arrive as reads of virtual xattrs of the root directory
// (the caller's pid and uid come with the request):
//   dbfs.stats                               counters
//   dbfs.tx.begin:PID[:serializable|snapshot][:lock]  -> "ID"
//   dbfs.tx.commit:ID[:durable]              -> "ok CSN" | "conflict PATH" | "deadlock WHY"
//   dbfs.tx.abort:ID                         -> "ok" | "deadlock WHY" (a victim before)
//   dbfs.tx.status                           -> one line per open transaction
Result<std::string> FilesystemImpl::Control(const Caller& c, std::string_view name) {
  if (name == kStatsXattr) return StatsText();
  if (name == "dbfs.tx.status") return TxStatus();
  if (name == kCheckpointXattr) {
    // Root only: it rewrites data and may take a while.
    if (c.uid != 0) return Status(Code::kPermission, "only root may checkpoint");
    DBFS_ASSIGN_OR_RETURN(CheckpointReport r, checkpointer_.Run());
    return r.ToString();
  }
  auto parts = [&](std::string_view prefix) {
    std::vector<std::string> out;
    std::string_view rest = name.substr(prefix.size());
    while (!rest.empty()) {
      size_t p = rest.find(':');
      out.emplace_back(rest.substr(0, p));
      rest = p == std::string_view::npos ? std::string_view() : rest.substr(p + 1);
    }
    return out;
  };
  auto number = [](const std::string& s, uint64_t* v) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
    *v = std::stoull(s);
    return true;
  };
  uint64_t n = 0;
  if (name.starts_with("dbfs.tx.begin:")) {
    auto a = parts("dbfs.tx.begin:");
    bool serializable = true, lock = false, bad = a.empty() || !number(a[0], &n);
    for (size_t i = 1; i < a.size() && !bad; ++i) {
      if (a[i] == "serializable" || a[i] == "snapshot") {
        serializable = a[i] == "serializable";
      } else if (a[i] == "lock") {
        lock = true;
      } else {
        bad = true;
      }
    }
    if (bad) return Status::Invalid("usage: dbfs.tx.begin:PID[:serializable|snapshot][:lock]");
    DBFS_ASSIGN_OR_RETURN(uint64_t id, TxBegin(c, static_cast<int32_t>(n), serializable, lock));
    return std::to_string(id);
  }
  if (name.starts_with("dbfs.tx.commit:")) {
    auto a = parts("dbfs.tx.commit:");
    if (a.empty() || !number(a[0], &n)) return Status::Invalid("usage: dbfs.tx.commit:ID[:durable]");
    return TxCommit(c, n, a.size() > 1 && a[1] == "durable");
  }
  if (name.starts_with("dbfs.tx.abort:")) {
    auto a = parts("dbfs.tx.abort:");
    if (a.empty() || !number(a[0], &n)) return Status::Invalid("usage: dbfs.tx.abort:ID");
    std::string deadlock;
    DBFS_RETURN_IF_ERROR(TxAbort(c, n, "aborted by request", &deadlock));
    return deadlock.empty() ? std::string("ok") : "deadlock " + deadlock;
  }
  return Status(Code::kNoData, "no such control attribute");
}

// ---- namespace ----

Result<Attr> FilesystemImpl::Lookup(const Caller& c, uint64_t parent, std::string_view name) {
  if (name.size() > kNameMax) return Status(Code::kNameTooLong, "name too long");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}));
  Transaction& t = op.t();
  uint64_t ino;
  if (name == ".") {
    ino = parent;
  } else if (name == "..") {
    UnlockedRead(op, Table::kInodes, InoKey(parent));
    DBFS_ASSIGN_OR_RETURN(Inode p, LoadInode(t, parent));
    ino = p.parent ? p.parent : kRootIno;
  } else {
    UnlockedRead(op, Table::kDirents, NameKey(parent, name));
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
    if (!de) return Status::NotFound("no such entry");
    ino = de->first;
  }
  // The entry (name -> inode) is what a lookup observes and it is in the
  // read set; the attributes it returns are incidental, so their read is
  // not (stat of the inode is a tracked GetAttr). Otherwise every lookup of a
  // directory would conflict with every creation inside it.
  DBFS_ASSIGN_OR_RETURN(auto v, t.GetUntracked(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
  if (op.tx && name != "." && name != "..") op.tx->names[ino] = {parent, std::string(name)};
  AddLookup(ino);
  return ToAttr(ino, n);
}

Result<Attr> FilesystemImpl::GetAttr(const Caller& c, uint64_t ino) {
  // (a directory's attributes are read untracked: see below)
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}, /*dir_read_tracked=*/false));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(auto v, t.GetUntracked(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
  // A directory's attributes change with every entry operation in it, and
  // the kernel asks for them on every path walk (permission checks): they
  // are not in the read set. What a transaction depends on in a directory —
  // its entries — is tracked through lookups and listings.
  if (!n.IsDir()) t.NoteRead(Table::kInodes, InoKey(ino));
  return ToAttr(ino, n);
}

Status FilesystemImpl::Truncate(Transaction& t, uint64_t ino, Inode* n, uint64_t size) {
  if (size > kMaxFileSize) return Status(Code::kTooBig, "file too large");
  if (size < n->size) {
    // Drop whole chunks past the new end and cut the boundary chunk.
    const uint64_t first_dead = (size + chunk_ - 1) / chunk_;
    std::vector<std::pair<std::string, SliceList>> cut;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, size / chunk_), InoKey(ino + 1),
                                [&](std::string_view k, std::string_view v) {
                                  auto l = DecodeSlices(v);
                                  if (l.ok()) cut.emplace_back(std::string(k), std::move(*l));
                                  return true;
                                }));
    for (auto& [k, l] : cut) {
      uint64_t chunk = GetBE64(k.data() + 8);
      uint64_t removed;
      if (chunk >= first_dead) {
        removed = 0;
        for (const auto& s : l) removed += s.len;
        t.Delete(Table::kExtents, k);
      } else {
        removed = RemoveRange(&l, static_cast<uint32_t>(size % chunk_), static_cast<uint32_t>(chunk_));
        if (l.empty()) t.Delete(Table::kExtents, k);
        else t.Put(Table::kExtents, k, EncodeSlices(l));
      }
      n->alloc -= std::min(n->alloc, removed);
    }
  }
  n->size = size;
  return Status::Ok();
}

Result<Attr> FilesystemImpl::SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  ExactWrite(op, ino);
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  const timespec now = Now();
  if (in.valid & SetAttrIn::kMode) n.mode = (n.mode & S_IFMT) | (in.mode & 07777);
  if (in.valid & (SetAttrIn::kUid | SetAttrIn::kGid)) {
    if (in.valid & SetAttrIn::kUid) n.uid = in.uid;
    if (in.valid & SetAttrIn::kGid) n.gid = in.gid;
    // chown clears set-user-ID, and set-group-ID when it means "group
    // executable" (not mandatory locking), on everything but directories.
    if (!n.IsDir()) {
      n.mode &= ~S_ISUID;
      if (n.mode & S_IXGRP) n.mode &= ~S_ISGID;
    }
  }
  if (in.valid & SetAttrIn::kSize) {
    if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
    if (!n.IsReg()) return Status::Invalid("not a regular file");
    DBFS_RETURN_IF_ERROR(Truncate(t, ino, &n, in.size));
    n.mtime = now;
    if (c.uid != 0) {
      n.mode &= ~S_ISUID;
      if (n.mode & S_IXGRP) n.mode &= ~S_ISGID;
    }
  }
  if (in.valid & SetAttrIn::kAtimeNow) n.atime = now;
  else if (in.valid & SetAttrIn::kAtime) n.atime = in.atime;
  if (in.valid & SetAttrIn::kMtimeNow) n.mtime = now;
  else if (in.valid & SetAttrIn::kMtime) n.mtime = in.mtime;
  n.ctime = (in.valid & SetAttrIn::kCtime) ? in.ctime : now;
  StoreInode(t, ino, n);
  DBFS_RETURN_IF_ERROR(Finish(op));
  return ToAttr(ino, n);
}

Result<Attr> FilesystemImpl::MakeNode(const Caller& c, uint64_t parent, std::string_view name,
                                      uint32_t mode, uint64_t rdev, std::string_view target) {
  DBFS_RETURN_IF_ERROR(CheckName(name));
  if (S_ISLNK(mode) && (target.empty() || target.size() > 4095)) {
    return Status(Code::kNameTooLong, "symlink target too long");
  }
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {parent}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode p, LoadDir(t, parent));
  ParentChanged(op, parent, p);
  EntryChanged(op, parent, name);
  DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
  if (de) return Status::Exists("entry exists");
  if (S_ISDIR(mode) && p.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");
  const timespec now = Now();
  Inode n;
  n.mode = mode;
  n.uid = c.uid;
  n.gid = c.gid;
  if (p.mode & S_ISGID) {
    // BSD group semantics in set-group-ID directories.
    n.gid = p.gid;
    if (S_ISDIR(mode)) n.mode |= S_ISGID;
  }
  n.nlink = S_ISDIR(mode) ? 2 : 1;
  n.rdev = (S_ISCHR(mode) || S_ISBLK(mode)) ? rdev : 0;
  // Directories: their one parent. Others: a hint (the directory it was
  // created or last renamed in) used to name paths in messages.
  n.parent = parent;
  n.atime = n.mtime = n.ctime = n.btime = now;
  n.target = std::string(target);
  const uint64_t ino = store_->AllocateIno();
  StoreInode(t, ino, n);
  t.Put(Table::kDirents, NameKey(parent, name), EncodeDirent(ino, mode & S_IFMT));
  if (S_ISDIR(mode)) ++p.nlink;
  p.mtime = p.ctime = now;
  StoreInode(t, parent, p);
  if (op.tx) op.tx->names[ino] = {parent, std::string(name)};
  DBFS_RETURN_IF_ERROR(Finish(op));
  AddLookup(ino);
  return ToAttr(ino, n);
}

Result<std::string> FilesystemImpl::Readlink(const Caller& c, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (!S_ISLNK(n.mode)) return Status::Invalid("not a symlink");
  return n.target;
}

Status FilesystemImpl::Remove(const Caller& c, uint64_t parent, std::string_view name, bool dir) {
  if (name == ".") return Status::Invalid("cannot remove '.'");
  if (name == "..") return Status(Code::kNotEmpty, "cannot remove '..'");
  DBFS_RETURN_IF_ERROR(CheckName(name));
  for (;;) {
    // Find the child without locks, then lock parent + child and re-check.
    uint64_t child;
    {
      DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}));
  Transaction& t = op.t();
      UnlockedRead(op, Table::kDirents, NameKey(parent, name));
      DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
      if (!de) return Status::NotFound("no such entry");
      child = de->first;
    }
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {parent, child}));
    Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(Inode p, LoadDir(t, parent));
    ParentChanged(op, parent, p);
    EntryChanged(op, parent, name);
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
    if (!de) return Status::NotFound("no such entry");
    if (de->first != child) continue;  // replaced meanwhile: retry
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, child));
    const timespec now = Now();
    if (dir) {
      if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
      DBFS_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(t, child));
      if (!empty) return Status(Code::kNotEmpty, "directory not empty");
      ExactWrite(op, child);
      n.nlink = 0;
      --p.nlink;
      if (op.tx) op.tx->removed_dirs.insert(child);
    } else {
      if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
      --n.nlink;
    }
    n.ctime = now;
    p.mtime = p.ctime = now;
    t.Delete(Table::kDirents, NameKey(parent, name));
    StoreInode(t, child, n);
    StoreInode(t, parent, p);
    if (n.nlink == 0) t.Put(Table::kOrphans, InoKey(child), "");
    DBFS_RETURN_IF_ERROR(Finish(op));
    op.ReleaseLocks();
    if (n.nlink == 0) Orphaned(op, child);
    return Status::Ok();
  }
}

Result<bool> FilesystemImpl::IsAncestor(Transaction& t, uint64_t anc, uint64_t ino) {
  // Walks ino's parent chain up to the root.
  for (int depth = 0; depth < 100000; ++depth) {
    if (ino == anc) return true;
    if (ino == kRootIno) return false;
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    ino = n.parent ? n.parent : kRootIno;
  }
  return Status::Corruption("directory parent chain does not reach the root");
}

Status FilesystemImpl::Rename(const Caller& c, uint64_t p, std::string_view n, uint64_t np,
                              std::string_view nn, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Invalid("unsupported rename flags");
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return Status::Invalid("bad flags");
  DBFS_RETURN_IF_ERROR(CheckName(n));
  DBFS_RETURN_IF_ERROR(CheckName(nn));
  for (;;) {
    uint64_t src, dst = 0;
    uint32_t src_type;
    {
      DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}));
  Transaction& t = op.t();
      UnlockedRead(op, Table::kDirents, NameKey(p, n));
      UnlockedRead(op, Table::kDirents, NameKey(np, nn));
      DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, p, n));
      if (!de) return Status::NotFound("no such entry");
      src = de->first;
      src_type = de->second;
      DBFS_ASSIGN_OR_RETURN(auto dd, LoadDirent(t, np, nn));
      if (dd) dst = dd->first;
    }
    // A --lock transaction waits for its locks before taking the rename
    // mutex: waiting while holding it would stall every cross-directory
    // rename, outsiders' included, and hide a deadlock from the lock manager.
    DBFS_RETURN_IF_ERROR(TxPreLock(c, {p, np, src, dst}));
    std::unique_lock<std::mutex> tree_lock;
    if (p != np) tree_lock = std::unique_lock(dir_rename_mu_);
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {p, np, src, dst}));
    Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, p, n));
    if (!de) return Status::NotFound("no such entry");
    DBFS_ASSIGN_OR_RETURN(auto dd, LoadDirent(t, np, nn));
    if (de->first != src || (dd ? dd->first : 0) != dst) continue;  // changed: retry
    (void)src_type;

    if ((flags & RENAME_NOREPLACE) && dst) return Status::Exists("target exists");
    if ((flags & RENAME_EXCHANGE) && !dst) return Status::NotFound("target does not exist");
    if (src == dst) return Status::Ok();  // same inode: POSIX says do nothing

    // All inodes involved, loaded once (p and np may be the same).
    std::map<uint64_t, Inode> in;
    EntryChanged(op, p, n);
    EntryChanged(op, np, nn);
    for (uint64_t i : {p, np}) {
      if (in.count(i)) continue;
      DBFS_ASSIGN_OR_RETURN(Inode x, LoadDir(t, i));
      ParentChanged(op, i, x);
      in.emplace(i, std::move(x));
    }
    for (uint64_t i : {src, dst}) {
      if (i == 0 || in.count(i)) continue;
      DBFS_ASSIGN_OR_RETURN(Inode x, LoadInode(t, i));
      if (x.IsDir()) ExactWrite(op, i);
      in.emplace(i, std::move(x));
    }
    if (!in[p].IsDir() || !in[np].IsDir()) return Status(Code::kNotDir, "not a directory");
    if (in[np].nlink == 0) return Status::NotFound("target directory was removed");
    Inode& s = in[src];
    const bool sdir = s.IsDir();
    const bool ddir = dst && in[dst].IsDir();
    // A directory the kernel moves inside a transaction that then does not
    // commit stays attached to its new name in the dentry cache; a new
    // generation makes the kernel drop that alias (EndTx, NewGeneration).
    if (op.tx && sdir) op.tx->removed_dirs.insert(src);
    if (op.tx && ddir && (flags & RENAME_EXCHANGE)) op.tx->removed_dirs.insert(dst);
    // A directory may not move below itself. (The walk reads ancestors a
    // --lock transaction does not lock: its snapshot stays where it is.)
    if (op.tx && ((sdir && p != np) || ((flags & RENAME_EXCHANGE) && ddir && p != np))) {
      op.tx->rebase_ok = false;
    }
    if (sdir && p != np) {
      DBFS_ASSIGN_OR_RETURN(bool below, IsAncestor(t, src, np));
      if (below) return Status::Invalid("cannot move a directory into itself");
    }
    if ((flags & RENAME_EXCHANGE) && ddir && p != np) {
      DBFS_ASSIGN_OR_RETURN(bool below, IsAncestor(t, dst, p));
      if (below) return Status::Invalid("cannot move a directory into itself");
    }
    const timespec now = Now();
    if (flags & RENAME_EXCHANGE) {
      Inode& d = in[dst];
      t.Put(Table::kDirents, NameKey(p, n), EncodeDirent(dst, d.mode & S_IFMT));
      t.Put(Table::kDirents, NameKey(np, nn), EncodeDirent(src, s.mode & S_IFMT));
      if (p != np) {
        if (sdir) { s.parent = np; --in[p].nlink; ++in[np].nlink; }
        if (ddir) { d.parent = p; --in[np].nlink; ++in[p].nlink; }
      }
      d.ctime = now;
    } else {
      bool orphan = false;
      if (dst) {
        Inode& d = in[dst];
        if (sdir && !ddir) return Status(Code::kNotDir, "target is not a directory");
        if (!sdir && ddir) return Status(Code::kIsDir, "target is a directory");
        if (ddir) {
          DBFS_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(t, dst));
          if (!empty) return Status(Code::kNotEmpty, "target directory not empty");
          d.nlink = 0;
          --in[np].nlink;
          if (op.tx) op.tx->removed_dirs.insert(dst);
        } else {
          --d.nlink;
        }
        d.ctime = now;
        if (d.nlink == 0) {
          t.Put(Table::kOrphans, InoKey(dst), "");
          orphan = true;
        }
      }
      t.Delete(Table::kDirents, NameKey(p, n));
      t.Put(Table::kDirents, NameKey(np, nn), EncodeDirent(src, s.mode & S_IFMT));
      if (sdir && p != np) {
        --in[p].nlink;
        ++in[np].nlink;
      }
      s.parent = np;
      if (!orphan) dst = 0;
    }
    s.ctime = now;
    in[p].mtime = in[p].ctime = now;
    in[np].mtime = in[np].ctime = now;
    for (auto& [i, x] : in) StoreInode(t, i, x);
    DBFS_RETURN_IF_ERROR(Finish(op));
    op.ReleaseLocks();
    if (dst && !(flags & RENAME_EXCHANGE)) Orphaned(op, dst);
    return Status::Ok();
  }
}

Result<Attr> FilesystemImpl::Link(const Caller& c, uint64_t ino, uint64_t np, std::string_view nn) {
  DBFS_RETURN_IF_ERROR(CheckName(nn));
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino, np}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (n.IsDir()) return Status(Code::kPermission, "hard links to directories are not allowed");
  if (n.nlink == 0) return Status::NotFound("file was removed");
  if (n.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");
  DBFS_ASSIGN_OR_RETURN(Inode p, LoadDir(t, np));
  ParentChanged(op, np, p);
  EntryChanged(op, np, nn);
  DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, np, nn));
  if (de) return Status::Exists("entry exists");
  const timespec now = Now();
  ++n.nlink;
  n.ctime = now;
  p.mtime = p.ctime = now;
  t.Put(Table::kDirents, NameKey(np, nn), EncodeDirent(ino, n.mode & S_IFMT));
  StoreInode(t, ino, n);
  StoreInode(t, np, p);
  DBFS_RETURN_IF_ERROR(Finish(op));
  AddLookup(ino);
  return ToAttr(ino, n);
}

Status FilesystemImpl::Access(const Caller& c, uint64_t ino, int mask) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (mask == F_OK) return Status::Ok();
  if (c.uid == 0) {
    // root: read/write always; execute if any execute bit is set (or a dir).
    if ((mask & X_OK) && !n.IsDir() && !(n.mode & 0111)) return Status(Code::kAccess, "not executable");
    return Status::Ok();
  }
  uint32_t bits;
  if (c.uid == n.uid) bits = (n.mode >> 6) & 7;
  else if (c.gid == n.gid) bits = (n.mode >> 3) & 7;
  else bits = n.mode & 7;
  if ((mask & bits) != static_cast<uint32_t>(mask)) return Status(Code::kAccess, "permission denied");
  return Status::Ok();
}

// ---- files ----

Result<uint64_t> FilesystemImpl::Open(const Caller& c, uint64_t ino, int flags, uint64_t* size) {
  bool regular;
  std::shared_ptr<ExplicitTx> tx;  // the one the handle is opened in, if any
  {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(op.t(), ino));
    if (n.IsDir() && (flags & O_ACCMODE) != O_RDONLY) return Status(Code::kIsDir, "is a directory");
    regular = n.IsReg();
    if (size != nullptr) *size = n.size;
    tx = op.tx;
  }
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && regular) {
    if (size != nullptr) *size = 0;
    SetAttrIn in;
    in.valid = SetAttrIn::kSize;
    in.size = 0;
    DBFS_RETURN_IF_ERROR(SetAttr(c, ino, in).status());
  }
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->flags = flags;
  if (tx) {
    h->tx = tx;
    h->tx_outcome = tx->outcome;
  }
  uint64_t fh;
  {
    std::lock_guard g(handles_mu_);
    fh = next_fh_++;
    handles_.emplace(fh, std::move(h));
  }
  std::lock_guard g(refs_mu_);
  ++refs_[ino].opens;
  return fh;
}

Result<Filesystem::Created> FilesystemImpl::Create(const Caller& c, uint64_t parent,
                                                   std::string_view name, uint32_t mode, int flags) {
  auto made = MakeNode(c, parent, name, S_IFREG | (mode & 07777), 0, "");
  if (!made.ok()) {
    if (made.status().code() != Code::kExists || (flags & O_EXCL)) return made.TakeStatus();
    // Lost a race with another creator: open the existing file (like open(2)).
    DBFS_ASSIGN_OR_RETURN(Attr a, Lookup(c, parent, name));
    made = a;
  }
  auto fh = Open(c, made->ino, flags & ~O_TRUNC, nullptr);
  if (!fh.ok()) {
    Forget(made->ino, 1);
    return fh.TakeStatus();
  }
  return Filesystem::Created{*made, *fh};
}

Status FilesystemImpl::ReadRange(Transaction& t, uint64_t ino, uint64_t off, size_t size, char* buf) {
  const uint64_t end = off + size;
  // Bytes of [off, end) no slice covers are holes: zeros. `filled` is how far
  // from `off` the buffer is written, slices being visited in file order.
  uint64_t filled = off;
  auto zero_to = [&](uint64_t pos) {
    if (pos > filled) std::memset(buf + (filled - off), 0, pos - filled);
    filled = std::max(filled, pos);
  };
  auto read_chunk = [&](uint64_t chunk, std::string_view encoded) -> Status {
    const uint64_t base = chunk * chunk_;
    return ForEachSlice(encoded, [&](const Slice& s) -> Status {
      const uint64_t a = std::max<uint64_t>(base + s.off, off);
      const uint64_t b = std::min<uint64_t>(base + s.end(), end);
      if (a >= b) return Status::Ok();
      zero_to(a);
      mvcc::DataRef ref{s.segment, s.data, s.len};
      DBFS_RETURN_IF_ERROR(store_->ReadData(ref, a - (base + s.off), b - a, buf + (a - off)));
      filled = b;
      return Status::Ok();
    });
  };
  const uint64_t first = off / chunk_, last = (end - 1) / chunk_;
  if (first == last) {
    // Most reads (up to max_read within one chunk): one point lookup.
    DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kExtents, ChunkKey(ino, first)));
    if (v) DBFS_RETURN_IF_ERROR(read_chunk(first, *v));
  } else {
    Status inner;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, first), ChunkKey(ino, last + 1),
                                [&](std::string_view k, std::string_view v) {
                                  inner = read_chunk(GetBE64(k.data() + 8), v);
                                  return inner.ok();
                                }));
    DBFS_RETURN_IF_ERROR(inner);
  }
  zero_to(end);
  return Status::Ok();
}

void FilesystemImpl::MaybeUpdateAtime(uint64_t ino) {
  if (opts_.noatime) return;
  // An atime update of an inode an open transaction touched would make that
  // transaction fail at commit (first committer wins on the inode record):
  // readers do not abort writers, so the update is skipped (relatime is a
  // hint, not a guarantee).
  if (open_txs_.load(std::memory_order_acquire) > 0) {
    std::lock_guard g(hot_mu_);
    if (hot_.count(ino)) return;
  }
  Status st = [&]() -> Status {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(kInternal, {ino}));
    Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    const timespec now = Now();
    // relatime: only when atime is not newer than mtime/ctime, or a day old.
    if (!TimeLE(n.atime, n.mtime) && !TimeLE(n.atime, n.ctime) &&
        now.tv_sec - n.atime.tv_sec < kRelatimeWindow) {
      return Status::Ok();
    }
    n.atime = now;
    StoreInode(t, ino, n);
    return Finish(op);
  }();
  if (!st.ok() && st.code() != Code::kNotFound) spdlog::warn("atime update of {} failed: {}", ino, st.ToString());
}

Result<size_t> FilesystemImpl::Read(const Caller& c, uint64_t ino, uint64_t, uint64_t off, size_t size,
                                    char* buf) {
  bool touch_atime = false;
  size_t n_read = 0;
  {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
    if (off < n.size && size > 0) {
      n_read = static_cast<size_t>(std::min<uint64_t>(size, n.size - off));
      DBFS_RETURN_IF_ERROR(ReadRange(t, ino, off, n_read, buf));
    }
    touch_atime = !opts_.noatime && !op.tx &&
                  (TimeLE(n.atime, n.mtime) || TimeLE(n.atime, n.ctime) ||
                   Now().tv_sec - n.atime.tv_sec >= kRelatimeWindow);
  }
  if (touch_atime) MaybeUpdateAtime(ino);
  return n_read;
}

Status FilesystemImpl::CompactChunk(Transaction& t, uint64_t ino, uint64_t chunk, SliceList* l) {
  // Rewrites the chunk's live bytes as one DATA record (holes stay holes).
  const uint32_t lo = l->front().off;
  const uint32_t hi = l->back().end();
  std::string buf(hi - lo, '\0');
  for (const Slice& s : *l) {
    mvcc::DataRef ref{s.segment, s.data, s.len};
    DBFS_RETURN_IF_ERROR(store_->ReadData(ref, 0, s.len, buf.data() + (s.off - lo)));
  }
  (void)ino;
  (void)chunk;
  DBFS_ASSIGN_OR_RETURN(mvcc::DataRef ref, t.AppendData(buf));
  SliceList out;
  for (const Slice& s : *l) {
    if (!out.empty() && out.back().end() == s.off) {
      out.back().len += s.len;
    } else {
      out.push_back(Slice{s.off, s.len, ref.segment, ref.offset + (s.off - lo)});
    }
  }
  *l = std::move(out);
  return Status::Ok();
}

Status FilesystemImpl::WriteChunks(Transaction& t, uint64_t ino, Inode* n, uint64_t off,
                                   const char* data, size_t size) {
  DBFS_ASSIGN_OR_RETURN(mvcc::DataRef ref, t.AppendData(std::string_view(data, size)));
  uint64_t pos = off;
  const uint64_t end = off + size;
  while (pos < end) {
    const uint64_t chunk = pos / chunk_;
    const uint32_t coff = static_cast<uint32_t>(pos % chunk_);
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(end - pos, chunk_ - coff));
    std::string key = ChunkKey(ino, chunk);
    DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kExtents, key));
    SliceList l;
    if (v) {
      DBFS_ASSIGN_OR_RETURN(l, DecodeSlices(*v));
    }
    n->alloc += InsertSlice(&l, Slice{coff, len, ref.segment, ref.offset + (pos - off)});
    if (l.size() > kMaxSlicesPerChunk) DBFS_RETURN_IF_ERROR(CompactChunk(t, ino, chunk, &l));
    t.Put(Table::kExtents, std::move(key), EncodeSlices(l));
    pos += len;
  }
  return Status::Ok();
}

Result<size_t> FilesystemImpl::Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off,
                                     const char* data, size_t size, bool writeback) {
  int flags = 0;
  std::shared_ptr<ExplicitTx> tx;
  {
    std::lock_guard g(handles_mu_);
    auto it = handles_.find(fh);
    if (it != handles_.end()) {
      flags = it->second->flags;
      if (writeback && it->second->tx_outcome) {
        // Pages of a shared mapping written back by the kernel (on behalf of
        // any process, or none): they belong to the transaction the mapped
        // handle was opened in. After it aborted they are dropped; after it
        // committed they are ordinary late writes.
        const int outcome = it->second->tx_outcome->load(std::memory_order_acquire);
        if (outcome == kTxNotCommitted) {
          spdlog::debug("inode {}: {} bytes of mapped pages of an aborted transaction dropped", ino,
                        size);
          return size;
        }
        if (outcome == kTxOpen) tx = it->second->tx.lock();
      }
    }
  }
  if (size == 0) return size_t{0};
  if (off + size > kMaxFileSize || off + size < off) return Status(Code::kTooBig, "file too large");
  // The kernel's writeback is nobody's request: never the caller's transaction.
  DBFS_ASSIGN_OR_RETURN(OpScope op, writeback ? BeginOpIn(std::move(tx), c, {ino}, {}, false)
                                              : BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
  if (flags & O_APPEND) off = n.size;
  DBFS_RETURN_IF_ERROR(WriteChunks(t, ino, &n, off, data, size));
  const timespec now = Now();
  n.size = std::max<uint64_t>(n.size, off + size);
  n.mtime = n.ctime = now;
  // A write by anyone but root clears set-user-ID (and group-executable
  // set-group-ID), so a modified binary cannot keep its privileges.
  if (c.uid != 0 && (n.mode & (S_ISUID | S_ISGID))) {
    n.mode &= ~S_ISUID;
    if (n.mode & S_IXGRP) n.mode &= ~S_ISGID;
  }
  StoreInode(t, ino, n);
  DBFS_RETURN_IF_ERROR(Finish(op, flags));
  return size;
}

Status FilesystemImpl::Release(uint64_t ino, uint64_t fh) {
  {
    std::lock_guard g(handles_mu_);
    handles_.erase(fh);
  }
  Unref(ino, 0, 1);
  return Status::Ok();
}

Status FilesystemImpl::Fsync(const Caller& c) {
  fsync_calls_.fetch_add(1, std::memory_order_relaxed);
  if (auto tx = TxFor(c)) {
    // Inside a transaction nothing is visible yet: fsync makes the commit durable.
    std::lock_guard g(tx->mu);
    tx->durable = true;
    return Status::Ok();
  }
  // Every commit is in the WAL in order; syncing it to its end makes this
  // file's (and everything earlier's) changes durable. Group commit shares
  // the fdatasync with concurrent callers.
  return store_->SyncAll();
}

Status FilesystemImpl::Fallocate(const Caller& c, uint64_t ino, int mode, uint64_t off, uint64_t len) {
  const int supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~supported) return Status::NotSupported("fallocate mode not supported");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
    return Status::NotSupported("PUNCH_HOLE requires KEEP_SIZE");
  }
  if (len == 0) return Status::Invalid("zero length");
  if (off + len > kMaxFileSize || off + len < off) return Status(Code::kTooBig, "file too large");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
  if (!n.IsReg()) return Status(Code::kErrno, "not a regular file", ENODEV);
  const timespec now = Now();
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    // Drop the data of [off, off+len) chunk by chunk: reads return zeros.
    const uint64_t end = std::min(off + len, std::max(n.size, off + len));
    std::vector<std::pair<std::string, SliceList>> hit;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, off / chunk_),
                                ChunkKey(ino, (end - 1) / chunk_ + 1),
                                [&](std::string_view k, std::string_view v) {
                                  auto l = DecodeSlices(v);
                                  if (l.ok()) hit.emplace_back(std::string(k), std::move(*l));
                                  return true;
                                }));
    for (auto& [k, l] : hit) {
      const uint64_t base = GetBE64(k.data() + 8) * chunk_;
      const uint32_t a = static_cast<uint32_t>(std::max(off, base) - base);
      const uint32_t b = static_cast<uint32_t>(std::min(end, base + chunk_) - base);
      n.alloc -= std::min(n.alloc, RemoveRange(&l, a, b));
      if (l.empty()) t.Delete(Table::kExtents, k);
      else t.Put(Table::kExtents, k, EncodeSlices(l));
    }
    n.mtime = n.ctime = now;
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > n.size) {
    // The log never overwrites in place, so there is nothing to reserve:
    // extending the size is all allocation means here.
    n.size = off + len;
    n.mtime = n.ctime = now;
  }
  StoreInode(t, ino, n);
  return Finish(op);
}

Result<uint64_t> FilesystemImpl::Lseek(const Caller& c, uint64_t ino, uint64_t off, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Invalid("bad whence");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (off >= n.size) return Status(Code::kErrno, "offset past end of file", ENXIO);
  std::optional<uint64_t> found;
  uint64_t pos = off;  // for SEEK_HOLE: end of the data run starting at or covering off
  bool in_run = true;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, off / chunk_), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view v) {
                                auto l = DecodeSlices(v);
                                if (!l.ok()) return false;
                                const uint64_t base = GetBE64(k.data() + 8) * chunk_;
                                for (const Slice& s : *l) {
                                  const uint64_t a = base + s.off, b = base + s.end();
                                  if (b <= off) continue;
                                  if (whence == SEEK_DATA) {
                                    found = std::max(a, off);
                                    return false;
                                  }
                                  if (a > pos) {  // a hole before this slice
                                    found = pos;
                                    return false;
                                  }
                                  pos = std::max(pos, b);
                                }
                                return in_run;
                              }));
  if (whence == SEEK_DATA) {
    if (!found || *found >= n.size) return Status(Code::kErrno, "no data past offset", ENXIO);
    return *found;
  }
  return std::min(found.value_or(pos), n.size);
}

Result<size_t> FilesystemImpl::CopyFileRange(const Caller& c, uint64_t in, uint64_t fh_in,
                                             uint64_t off_in, uint64_t out, uint64_t fh_out,
                                             uint64_t off_out, size_t len) {
  constexpr size_t kStep = 1 << 20;
  std::string buf;
  size_t done = 0;
  while (done < len) {
    const size_t want = std::min(kStep, len - done);
    buf.resize(want);
    DBFS_ASSIGN_OR_RETURN(size_t got, Read(c, in, fh_in, off_in + done, want, buf.data()));
    if (got == 0) break;
    DBFS_ASSIGN_OR_RETURN(size_t put,
                          Write(c, out, fh_out, off_out + done, buf.data(), got, false));
    done += put;
    if (got < want) break;
  }
  return done;
}

// ---- directories ----

Result<uint64_t> FilesystemImpl::OpenDir(const Caller& c, uint64_t ino) {
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->dir = true;
  {
    // The listing is materialized at opendir from one snapshot, so entries
    // stay stable (no duplicates, no misses) under concurrent changes. (A
    // --lock transaction does not lock a directory it lists: its record
    // stands for the listing in unlocked_reads.)
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
    h->entries.push_back(DirEntry{".", ino, S_IFDIR});
    h->entries.push_back(DirEntry{"..", n.parent ? n.parent : kRootIno, S_IFDIR});
    Status bad;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kDirents, InoKey(ino), InoKey(ino + 1),
                                [&](std::string_view k, std::string_view v) {
                                  DirEntry e;
                                  if (k.size() < 10 || !DecodeDirent(v, &e.ino, &e.type)) {
                                    bad = Status::Corruption("malformed directory entry");
                                    return false;
                                  }
                                  e.name = std::string(k.substr(8, k.size() - 9));
                                  h->entries.push_back(std::move(e));
                                  return true;
                                }));
    DBFS_RETURN_IF_ERROR(bad);
  }
  std::lock_guard g(handles_mu_);
  const uint64_t fh = next_fh_++;
  handles_.emplace(fh, std::move(h));
  return fh;
}

const std::vector<DirEntry>* FilesystemImpl::DirEntries(uint64_t fh) {
  std::lock_guard g(handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || !it->second->dir) return nullptr;
  return &it->second->entries;
}

Status FilesystemImpl::ReleaseDir(uint64_t fh) {
  std::lock_guard g(handles_mu_);
  handles_.erase(fh);
  return Status::Ok();
}

// ---- xattrs ----

namespace {
Status CheckXattrName(std::string_view name) {
  if (name.empty()) return Status::Invalid("empty xattr name");
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  if (name.starts_with("system.")) return Status::NotSupported("system.* attributes are not supported");
  if (!name.starts_with("user.") && !name.starts_with("trusted.") && !name.starts_with("security.")) {
    return Status::NotSupported("unknown xattr namespace");
  }
  return Status::Ok();
}
}  // namespace

Status FilesystemImpl::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                                std::string_view value, int flags) {
  DBFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kXattrSizeMax) return Status(Code::kErrno, "xattr value too large", E2BIG);
  if (name.starts_with("trusted.") && c.uid != 0) return Status(Code::kPermission, "trusted.* needs root");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (name.starts_with("user.") && !n.IsDir() && !n.IsReg()) {
    return Status(Code::kPermission, "user.* attributes only on files and directories");
  }
  std::string key = NameKey(ino, name);
  DBFS_ASSIGN_OR_RETURN(auto old, t.Get(Table::kXattrs, key));
  if ((flags & XATTR_CREATE) && old) return Status::Exists("attribute exists");
  if ((flags & XATTR_REPLACE) && !old) return Status(Code::kNoData, "no such attribute");
  t.Put(Table::kXattrs, std::move(key), std::string(value));
  n.ctime = Now();
  StoreInode(t, ino, n);
  return Finish(op);
}

Result<std::string> FilesystemImpl::GetXattr(const Caller& c, uint64_t ino, std::string_view name) {
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  // Virtual attributes of the root: the `dbfs` tool's read-only window into
  // the daemon (they are never listed and cannot be set).
  if (ino == kRootIno && name.starts_with("dbfs.")) return Control(c, name);
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kXattrs, NameKey(ino, name)));
  if (!v) return Status(Code::kNoData, "no such attribute");
  return std::move(*v);
}

Result<std::string> FilesystemImpl::ListXattr(const Caller& c, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  std::string out;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kXattrs, InoKey(ino), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view) {
                                out.append(k.substr(8, k.size() - 9));
                                out.push_back('\0');
                                return true;
                              }));
  return out;
}

Status FilesystemImpl::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  if (name.starts_with("trusted.") && c.uid != 0) return Status(Code::kPermission, "trusted.* needs root");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  std::string key = NameKey(ino, name);
  DBFS_ASSIGN_OR_RETURN(auto old, t.Get(Table::kXattrs, key));
  if (!old) return Status(Code::kNoData, "no such attribute");
  t.Delete(Table::kXattrs, std::move(key));
  n.ctime = Now();
  StoreInode(t, ino, n);
  return Finish(op);
}

// ---- volume ----

Result<FsStat> FilesystemImpl::StatFs() {
  struct statvfs v;
  if (statvfs(store_->volume_dir().c_str(), &v) != 0) return Status::FromErrno(errno, "statvfs");
  FsStat s;
  s.block_size = 4096;
  const uint64_t unit = v.f_frsize ? v.f_frsize : v.f_bsize;
  s.blocks = v.f_blocks * unit / s.block_size;
  s.blocks_free = v.f_bfree * unit / s.block_size;
  s.blocks_avail = v.f_bavail * unit / s.block_size;
  // Inodes cost only LMDB space: report as many free as there are free blocks.
  s.files = store_->next_ino() + s.blocks_free;
  s.files_free = s.blocks_free;
  return s;
}

std::string FilesystemImpl::StatsText() const {
  const FsStats s = Stats();
  const auto st = store_->Stats();
  std::string out;
  auto line = [&](const char* k, uint64_t v) { out += std::string(k) + " " + std::to_string(v) + "\n"; };
  line("commits", s.commits);
  line("fsync_calls", s.fsync_calls);
  line("wal_sync_requests", st.wal.sync_requests);
  line("wal_syncs", s.wal_syncs);
  line("wal_bytes", s.wal_bytes);
  line("wal_segments_created", st.wal.segments_created);
  line("flushes", s.flushes);
  line("gc_versions_dropped", st.gc_versions_dropped);
  line("overlay_bytes", st.overlay_bytes);
  line("lmdb_bytes", st.lmdb_bytes);
  line("visible_csn", store_->visible_csn());
  line("next_ino", store_->next_ino());
  // Explicit transactions, and the locks of --lock ones (tx_lock_*: their own
  // lock manager; the adapter appends the advisory locks' counters as lock_*).
  line("tx_commits", tx_commits_.load());
  line("tx_conflicts", tx_conflicts_.load());
  line("tx_aborts", tx_aborts_.load());
  line("tx_aborts_deadlock", tx_deadlocks_.load());
  line("tx_aborts_root_gone", tx_root_gone_.load());
  line("tx_lock_rebases", tx_rebases_.load());
  const txn::LockStats ls = tx_locks_.stats();
  line("tx_lock_acquired", ls.acquired);
  line("tx_lock_immediate", ls.immediate);
  line("tx_lock_backoffs", ls.backoffs);
  line("tx_lock_waits", ls.waits);
  line("tx_lock_deadlocks", ls.deadlocks);
  line("tx_lock_cancelled", ls.cancelled);
  line("recovery_commits_replayed", store_->recovery().commits_replayed);
  line("recovery_micros", static_cast<uint64_t>(store_->recovery().millis * 1000));
  const CheckpointStats cp = checkpointer_.stats();
  line("checkpoints", cp.runs);
  line("checkpoint_relocated_bytes", cp.relocated_bytes);
  line("checkpoint_segments_removed", cp.segments_removed);
  line("checkpoint_bytes_removed", cp.bytes_removed);
  return out;
}

FsStats FilesystemImpl::Stats() const {
  FsStats s;
  auto st = store_->Stats();
  s.commits = st.commits;
  s.fsync_calls = fsync_calls_.load();
  s.wal_syncs = st.wal.syncs;
  s.wal_bytes = st.wal.bytes;
  s.flushes = st.flushes;
  return s;
}

Status FilesystemImpl::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  checkpointer_.Stop();
  StopReaper();
  // Open transactions end with the daemon: nothing of them was committed.
  std::vector<uint64_t> open;
  {
    std::lock_guard g(tx_mu_);
    for (const auto& [id, tx] : txs_) open.push_back(id);
  }
  for (uint64_t id : open) TxAbort(Caller{}, id, "unmount").IgnoreError();
  // At unmount the kernel holds no references any more.
  {
    std::lock_guard g(handles_mu_);
    handles_.clear();
  }
  {
    std::lock_guard g(refs_mu_);
    refs_.clear();
  }
  Status st = ReclaimAllOrphans();
  if (!st.ok()) spdlog::error("reclaiming orphans at unmount failed: {}", st.ToString());
  return store_->Close();
}

// ===========================================================================

Filesystem::Filesystem(std::unique_ptr<FilesystemImpl> impl) : impl_(std::move(impl)) {}
Filesystem::~Filesystem() {
  if (impl_) {
    Status st = impl_->Close();
    if (!st.ok()) spdlog::error("closing the filesystem failed: {}", st.ToString());
  }
}

Status Filesystem::Initialize(const std::string& volume_dir) {
  mvcc::StoreOptions so;
  DBFS_ASSIGN_OR_RETURN(auto store, mvcc::Store::Open(volume_dir, so));
  Transaction t(store.get());
  DBFS_ASSIGN_OR_RETURN(auto existing, t.Get(Table::kInodes, InoKey(kRootIno)));
  if (existing) return Status::Exists("volume already has a root directory");
  Inode root;
  root.mode = S_IFDIR | 0755;
  root.nlink = 2;
  root.parent = kRootIno;
  root.atime = root.mtime = root.ctime = root.btime = Now();
  t.Put(Table::kInodes, InoKey(kRootIno), EncodeInode(root));
  DBFS_RETURN_IF_ERROR(t.Commit(/*durable=*/true).status());
  return store->Close();
}

Result<std::unique_ptr<Filesystem>> Filesystem::Open(const std::string& volume_dir,
                                                     const FsOptions& options) {
  // Not a volume: say so without leaving a lock file in someone's directory.
  DBFS_RETURN_IF_ERROR(ReadSuperblock(volume_dir).status());
  DBFS_ASSIGN_OR_RETURN(VolumeLock lock, VolumeLock::AcquireWhenUnmounted(volume_dir, "dbfs-mount"));
  mvcc::StoreOptions so;
  so.segment_size = options.wal_segment_bytes;
  DBFS_ASSIGN_OR_RETURN(auto store, mvcc::Store::Open(volume_dir, so));
  {
    Transaction t(store.get());
    DBFS_ASSIGN_OR_RETURN(auto root, t.Get(Table::kInodes, InoKey(kRootIno)));
    if (!root) return Status::Corruption("volume has no root directory; run fsck.dbfs");
  }
  auto impl = std::make_unique<FilesystemImpl>(std::move(lock), std::move(store), options);
  // Nobody can reference an orphan at mount time: reclaim them all now.
  DBFS_RETURN_IF_ERROR(impl->ReclaimAllOrphans());
  return std::unique_ptr<Filesystem>(new Filesystem(std::move(impl)));
}

Status Filesystem::Close() { return impl_->Close(); }

Result<Attr> Filesystem::Lookup(const Caller& c, uint64_t parent, std::string_view name) {
  return impl_->Lookup(c, parent, name);
}
void Filesystem::Forget(uint64_t ino, uint64_t nlookup) { impl_->Forget(ino, nlookup); }
void Filesystem::AddLookup(uint64_t ino) { impl_->AddLookup(ino); }
Result<Attr> Filesystem::GetAttr(const Caller& c, uint64_t ino) { return impl_->GetAttr(c, ino); }
Result<Attr> Filesystem::SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in) {
  return impl_->SetAttr(c, ino, in);
}
Result<Attr> Filesystem::Mknod(const Caller& c, uint64_t parent, std::string_view name,
                               uint32_t mode, uint64_t rdev) {
  const uint32_t type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK &&
      type != 0) {
    return Status::Invalid("mknod: unsupported file type");
  }
  return impl_->MakeNode(c, parent, name, type ? mode : (mode | S_IFREG), rdev, "");
}
Result<Attr> Filesystem::Mkdir(const Caller& c, uint64_t parent, std::string_view name,
                               uint32_t mode) {
  return impl_->MakeNode(c, parent, name, S_IFDIR | (mode & 07777), 0, "");
}
Result<Attr> Filesystem::Symlink(const Caller& c, uint64_t parent, std::string_view name,
                                 std::string_view target) {
  return impl_->MakeNode(c, parent, name, S_IFLNK | 0777, 0, target);
}
Result<std::string> Filesystem::Readlink(const Caller& c, uint64_t ino) { return impl_->Readlink(c, ino); }
Status Filesystem::Unlink(const Caller& c, uint64_t parent, std::string_view name) {
  return impl_->Remove(c, parent, name, false);
}
Status Filesystem::Rmdir(const Caller& c, uint64_t parent, std::string_view name) {
  return impl_->Remove(c, parent, name, true);
}
Status Filesystem::Rename(const Caller& c, uint64_t parent, std::string_view name,
                          uint64_t newparent, std::string_view newname, unsigned flags) {
  return impl_->Rename(c, parent, name, newparent, newname, flags);
}
Result<Attr> Filesystem::Link(const Caller& c, uint64_t ino, uint64_t newparent,
                              std::string_view newname) {
  return impl_->Link(c, ino, newparent, newname);
}
Status Filesystem::Access(const Caller& c, uint64_t ino, int mask) { return impl_->Access(c, ino, mask); }
Result<uint64_t> Filesystem::Open(const Caller& c, uint64_t ino, int flags, uint64_t* size) {
  return impl_->Open(c, ino, flags, size);
}
Result<Filesystem::Created> Filesystem::Create(const Caller& c, uint64_t parent,
                                               std::string_view name, uint32_t mode, int flags) {
  return impl_->Create(c, parent, name, mode, flags);
}
Result<size_t> Filesystem::Read(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, size_t size,
                                char* buf) {
  return impl_->Read(c, ino, fh, off, size, buf);
}
Result<size_t> Filesystem::Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off,
                                 const char* data, size_t size, bool writeback) {
  return impl_->Write(c, ino, fh, off, data, size, writeback);
}
Status Filesystem::Flush(uint64_t, uint64_t) { return Status::Ok(); }
Status Filesystem::Release(uint64_t ino, uint64_t fh) { return impl_->Release(ino, fh); }
Status Filesystem::Fsync(const Caller& c, uint64_t, uint64_t, bool) { return impl_->Fsync(c); }
Status Filesystem::Fallocate(const Caller& c, uint64_t ino, uint64_t, int mode, uint64_t off,
                             uint64_t len) {
  return impl_->Fallocate(c, ino, mode, off, len);
}
Result<uint64_t> Filesystem::Lseek(const Caller& c, uint64_t ino, uint64_t, uint64_t off, int whence) {
  return impl_->Lseek(c, ino, off, whence);
}
Result<size_t> Filesystem::CopyFileRange(const Caller& c, uint64_t ino_in, uint64_t fh_in,
                                         uint64_t off_in, uint64_t ino_out, uint64_t fh_out,
                                         uint64_t off_out, size_t len) {
  return impl_->CopyFileRange(c, ino_in, fh_in, off_in, ino_out, fh_out, off_out, len);
}
Result<uint64_t> Filesystem::OpenDir(const Caller& c, uint64_t ino) { return impl_->OpenDir(c, ino); }
const std::vector<DirEntry>* Filesystem::DirEntries(uint64_t fh) { return impl_->DirEntries(fh); }
Status Filesystem::ReleaseDir(uint64_t, uint64_t fh) { return impl_->ReleaseDir(fh); }
Status Filesystem::FsyncDir(const Caller& c, uint64_t, uint64_t, bool) { return impl_->Fsync(c); }
Status Filesystem::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                            std::string_view value, int flags) {
  return impl_->SetXattr(c, ino, name, value, flags);
}
Result<std::string> Filesystem::GetXattr(const Caller& c, uint64_t ino, std::string_view name) {
  return impl_->GetXattr(c, ino, name);
}
Result<std::string> Filesystem::ListXattr(const Caller& c, uint64_t ino) { return impl_->ListXattr(c, ino); }
Status Filesystem::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  return impl_->RemoveXattr(c, ino, name);
}
Result<FsStat> Filesystem::StatFs() { return impl_->StatFs(); }
Status Filesystem::SyncAll(const Caller& c) { return impl_->Fsync(c); }
bool Filesystem::Uncached(const Caller& c, uint64_t ino) { return impl_->Uncached(c, ino); }
Result<uint64_t> Filesystem::BeginTx(const Caller& c, bool serializable, bool lock) {
  return impl_->TxBegin(c, 0, serializable, lock);
}
Result<std::string> Filesystem::CommitTx(const Caller& c, uint64_t id, bool durable) {
  return impl_->TxCommit(c, id, durable);
}
Status Filesystem::AbortTx(const Caller& c, uint64_t id) { return impl_->TxAbort(c, id, "aborted by request"); }
void Filesystem::SetInvalidator(std::function<void(uint64_t, bool)> f) {
  impl_->SetInvalidator(std::move(f));
}
void Filesystem::SetEntryInvalidator(EntryInvalidator f) {
  impl_->SetEntryInvalidator(std::move(f));
}
FsStats Filesystem::Stats() const { return impl_->Stats(); }
void Filesystem::TEST_Abandon() { impl_->TEST_Abandon(); }
void Filesystem::ShutdownTxLockWaits() { impl_->ShutdownTxLockWaits(); }
void Filesystem::TEST_SetTxLockSyncPoint(
    std::function<void(std::string_view point, uint64_t owner, uint64_t ino)> f) {
  impl_->TEST_SetTxLockSyncPoint(std::move(f));
}
bool Filesystem::TEST_TxHoldsLock(uint64_t tx, uint64_t ino) { return impl_->TEST_TxHoldsLock(tx, ino); }

}  // namespace dbfs
