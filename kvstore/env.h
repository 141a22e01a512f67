// kvstore: the LMDB environment that holds DBFS metadata (VOLUME/meta/).
//
// This layer is the only code in DBFS that includes <lmdb.h>; everything
// above it sees Env, Table, ReadTxn, WriteTxn, Cursor and the key codec.
//
//   DBFS_ASSIGN_OR_RETURN(auto env, kv::Env::Open(dir, kv::EnvOptions{}));
//   DBFS_ASSIGN_OR_RETURN(kv::Table t, env->OpenTable("inodes"));   // at startup
//   DBFS_RETURN_IF_ERROR(env->Write([&](kv::WriteTxn& w) -> Status {
//     return w.Put(t, key, value);                                  // must be re-runnable
//   }));
//   DBFS_ASSIGN_OR_RETURN(auto r, env->BeginRead());
//   DBFS_ASSIGN_OR_RETURN(auto v, r->Get(t, key));                  // nullopt when absent
//
// Map size. LMDB maps data.mdb into memory with a fixed maximum size. Env
// starts at EnvOptions::initial_map_size (or the size of an existing, larger
// data file) and doubles the map whenever LMDB reports MDB_MAP_FULL: the
// failed write transaction is aborted, the map is grown, and the Write body
// runs again from scratch. Remapping requires that no transaction is open, so
// every ReadTxn holds a "resize gate" shared for its whole life and a resize
// waits (holding the gate exclusive) until all of them have ended.
//
// Read transactions are recycled. Ending a ReadTxn resets its LMDB handle
// (mdb_txn_reset: the snapshot is released, the reader slot kept) and parks
// the ReadTxn in the Env's pool; the next BeginRead renews a parked one
// (mdb_txn_renew: a fresh snapshot of the last commit) instead of allocating
// and beginning a new one. MDB_NOTLS lets any thread renew a handle another
// thread reset. At most kMaxPooledReadTxns are parked (each holds one of the
// 512 reader slots); a map resize and ~Env abort every parked handle, since
// LMDB requires that no transaction is open when the map changes.
//
// Consequences for callers:
//  * Keep ReadTxns short. A long-lived ReadTxn stalls a Write that needs to
//    grow the map until the ReadTxn ends.
//  * Never call Env::Write, or wait for a thread that may be in Env::Write,
//    while holding a ReadTxn: if that Write needs to grow the map it waits
//    for your ReadTxn, which waits for it (deadlock). A thread may hold
//    several ReadTxns at once, and may end a ReadTxn on another thread.
//  * A Write body must be re-runnable (it may run several times; only the
//    last run commits). Reset any state it accumulates at its start.
//
// Durability: commits use LMDB's default sync (fdatasync of data.mdb, then
// of the meta page); MDB_NOSYNC / MDB_NOMETASYNC are never used, since they
// can corrupt the store on power loss.
//
// Thread-safety: Env is thread-safe. A ReadTxn, WriteTxn or Cursor is used
// by one thread at a time. Destroy cursors before their transaction and
// transactions before the Env.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kvstore/cursor.h"
#include "kvstore/key_codec.h"
#include "kvstore/resize_gate.h"
#include "kvstore/status.h"
#include "kvstore/txn_state.h"

struct MDB_env;

namespace dbfs::kv {

struct EnvOptions {
  uint64_t initial_map_size = 256ull << 20;  // grows automatically (doubling) on MDB_MAP_FULL
  unsigned max_tables = 16;
  bool read_only = false;  // MDB_RDONLY; never writes (data.mdb)
  // With read_only: MDB_NOLOCK, so not even lock.mdb (the reader table) is
  // written. Only for a caller that no writer can run beside (a read-only
  // mount holding the volume lock).
  bool no_lock_file = false;
};

// A named LMDB database (MDB_dbi). Cheap value type. Table{} is not a valid
// table: operations on it return Invalid.
struct Table {
  unsigned dbi = 0;
  bool valid() const { return dbi != 0; }
};

class ReadTxn;
class WriteTxn;

class Env {
 public:
  // Opens/creates the LMDB environment in directory `dir` (must exist), with
  // MDB_NOTLS so transactions are not tied to threads, 512 reader slots and
  // file mode 0600. If data.mdb is already larger than
  // opts.initial_map_size, the map starts at the file's size instead.
  // read_only: MDB_RDONLY; data.mdb must exist.
  static Result<std::unique_ptr<Env>> Open(const std::string& dir, const EnvOptions& opts);
  // Aborts the pooled read transactions and closes the environment.
  // REQUIRES: no ReadTxn or Cursor of this Env is still open.
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // Opens (creating unless read_only) the named table. Call at startup,
  // before concurrent use. Opening the same name twice returns the same
  // Table. In read_only mode a missing table is NotFound.
  Result<Table> OpenTable(const std::string& name);

  // A read transaction: a consistent snapshot of the last commit. Many may
  // be open at once, from any threads. Returns IOError (errno EAGAIN) when
  // all 512 reader slots are taken. Reuses a pooled ReadTxn when there is
  // one (see above); the snapshot is fresh either way.
  Result<std::unique_ptr<ReadTxn>> BeginRead();

  // Runs `body` inside one write transaction and commits it durably.
  // * MDB_MAP_FULL at any point (put, delete, commit) aborts the txn, doubles
  //   the map (waiting until no ReadTxn is open) and runs `body` again from
  //   scratch; the caller never sees MDB_MAP_FULL.
  // * If `body` returns non-ok, the txn is aborted and that status returned.
  // * ENOSPC (disk full) -> kNoSpace; damage -> kCorruption; other LMDB
  //   errors -> kIOError with the LMDB message.
  // * A read_only Env returns kReadOnly without running `body`.
  // * Write transactions are serialized; callers may call concurrently.
  //   Calling Write from inside a body returns Invalid (it would deadlock).
  // REQUIRES: the calling thread holds no ReadTxn of this Env (see above).
  Status Write(const std::function<Status(WriteTxn&)>& body);

  // Current map size in bytes.
  uint64_t map_size() const { return map_size_.load(std::memory_order_relaxed); }
  // Bytes of data.mdb in use (last used page + 1) * page size, as of Open
  // or the last committed Write. For statfs/stats.
  uint64_t used_bytes() const { return used_bytes_.load(std::memory_order_relaxed); }

  // How many times a Write body was rerun after MDB_MAP_FULL. For tests.
  uint64_t TEST_map_full_retries() const {
    return map_full_retries_.load(std::memory_order_relaxed);
  }
  // True while a map resize is waiting for open ReadTxns to end. For tests.
  bool TEST_resize_waiting() const { return gate_.TEST_exclusive_waiting(); }
  // Ended ReadTxns parked for reuse. For tests.
  size_t TEST_pooled_read_txns() const;
  // ReadTxns created with mdb_txn_begin rather than renewed from the pool.
  // For tests.
  uint64_t TEST_read_txns_begun() const { return read_txns_begun_.load(std::memory_order_relaxed); }
  // Reader slots of the lock file held by this process: open ReadTxns plus
  // pooled ones (mdb_reader_list). For tests.
  int TEST_reader_slots_in_use() const;

  // Ended ReadTxns kept for reuse, at most. Enough for every FUSE worker
  // (64) to hold one; each pooled one keeps a reader slot of the 512.
  static constexpr size_t kMaxPooledReadTxns = 64;

 private:
  friend class ReadTxn;
  Env(MDB_env* env, bool read_only);

  // Takes a pooled ReadTxn and renews it, or begins a new one. REQUIRES:
  // gate_ held shared. Returns the LMDB rc; *out set only on success.
  int BeginReadLocked(ReadTxn** out);
  // Called when a ReadTxn ends (its cursors already closed): resets the
  // handle and pools it (or frees it when the pool is full), then releases
  // the ReadTxn's shared hold on gate_.
  void Recycle(ReadTxn* txn);
  // Aborts and frees every pooled ReadTxn. REQUIRES: gate_ held exclusive
  // (no ReadTxn open, none can be recycled concurrently), or ~Env.
  void DrainPool();

  // Doubles the map. REQUIRES: write_mu_ held, no write txn open.
  Status GrowMapLocked();
  // Adopts a map size another process set (after MDB_MAP_RESIZED).
  // REQUIRES: write_mu_ held, no write txn open.
  Status AdoptMapSizeLocked();
  // Re-reads map size and used bytes from LMDB. REQUIRES: write_mu_ held
  // (or no concurrent use, during Open).
  void RefreshInfoLocked();
  Result<Table> OpenTableReadOnly(const std::string& name);
  Status BrokenStatus() const;

  MDB_env* const env_;
  const bool read_only_;
  size_t max_key_size_ = kMaxKeySize;

  // Lock order: write_mu_ -> gate_ (exclusive) -> pool_mu_. ReadTxns hold
  // gate_ shared without write_mu_ and take pool_mu_ (a leaf) inside it.
  std::mutex write_mu_;  // serializes write txns and map resizes
  internal::ResizeGate gate_;
  // Ended ReadTxns whose LMDB handle is reset (holds a reader slot, no
  // snapshot). Capacity reserved up front: Recycle never allocates.
  mutable std::mutex pool_mu_;
  std::vector<ReadTxn*> pool_;                    // guarded by pool_mu_
  std::atomic<std::thread::id> writer_thread_{};  // thread inside Write, if any
  // Set (under gate_ exclusive) when a remap failed and LMDB has no map
  // left: every later BeginRead/Write fails. Sticky.
  std::atomic<bool> broken_{false};

  std::atomic<uint64_t> map_size_{0};
  std::atomic<uint64_t> used_bytes_{0};
  std::atomic<uint64_t> map_full_retries_{0};
  std::atomic<uint64_t> read_txns_begun_{0};
};

// A read-only LMDB transaction (MDB_RDONLY): a snapshot that never changes.
// Not copyable or movable. Only Env::BeginRead creates one.
class ReadTxn {
 public:
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;

  // Ends the snapshot; any cursor still open on it is closed (see cursor.h).
  // `delete txn` -- what the unique_ptr from BeginRead does -- runs this
  // C++20 destroying delete instead of a destructor: the object and its
  // reset LMDB handle go back to the Env for the next BeginRead, or are
  // freed when the pool is full.
  void operator delete(ReadTxn* txn, std::destroying_delete_t);
  // Runs only inside Free(). Public because a delete-expression needs an
  // accessible destructor even when it calls a destroying delete.
  ~ReadTxn() = default;

  // The value of `key`, or nullopt when absent (including keys that are
  // empty or longer than the key limit, which can never be stored). The
  // view is valid until this transaction ends.
  Result<std::optional<std::string_view>> Get(Table t, std::string_view key);
  Result<std::unique_ptr<Cursor>> NewCursor(Table t);

 private:
  friend class Env;
  ReadTxn(Env* env, MDB_txn* txn, size_t max_key_size);
  // Aborts the LMDB handle (giving its reader slot back), destroys and
  // deallocates an ended ReadTxn: a pooled one, or one the full pool did
  // not take.
  static void Free(ReadTxn* txn);

  Env* const env_;  // while open, holds env_->gate_ shared
  internal::TxnState state_;
};

// A write transaction; exists only inside an Env::Write body. Changes are
// visible to this transaction's own Gets and cursors at once, and to others
// after Write commits.
class WriteTxn {
 public:
  ~WriteTxn();  // aborts unless committed
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;

  // The view is valid until the next Put/Delete/Clear in this transaction or
  // its end, whichever comes first.
  Result<std::optional<std::string_view>> Get(Table t, std::string_view key);
  // Inserts or overwrites. Returns Invalid for an empty key or a key longer
  // than kMaxKeySize (511) bytes ("key too long").
  Status Put(Table t, std::string_view key, std::string_view value);
  // Deleting a missing key is OK (not an error).
  Status Delete(Table t, std::string_view key);
  // Drops every record of the table; the table itself stays (mdb_drop del=0).
  Status Clear(Table t);
  // Cursors from a write transaction see its uncommitted changes and can
  // DeleteCurrent(). Destroy them before the body returns.
  Result<std::unique_ptr<Cursor>> NewCursor(Table t);

 private:
  friend class Env;
  WriteTxn(MDB_txn* txn, size_t max_key_size);
  // Commits; the LMDB txn is freed whatever the outcome. Returns the LMDB rc.
  int Commit();
  void Abort();

  internal::TxnState state_;
};

}  // namespace dbfs::kv
