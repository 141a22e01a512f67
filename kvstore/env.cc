#include "kvstore/env.h"

#include <lmdb.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <shared_mutex>
#include <string>

namespace dbfs::kv {
namespace {

constexpr unsigned kMaxReaders = 512;
// Metadata may name files in private directories: owner-only.
constexpr mdb_mode_t kFileMode = 0600;
// Far below the 128 TiB of user address space on x86-64/arm64 Linux; a body
// that keeps hitting MDB_MAP_FULL past this is a bug, not a big volume.
constexpr uint64_t kMaxMapSize = 1ull << 46;  // 64 TiB
// Another process growing the map under us repeatedly: give up eventually.
constexpr int kMaxResizedRetries = 16;

uint64_t PageSize() {
  const long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<uint64_t>(p) : 4096;
}

uint64_t RoundUp(uint64_t v, uint64_t unit) { return (v + unit - 1) / unit * unit; }

MDB_val ToVal(std::string_view s) {
  // LMDB copies keys and values it stores and never writes through them.
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

Result<std::optional<std::string_view>> GetImpl(internal::TxnState& st, Table t,
                                                std::string_view key) {
  DBFS_RETURN_IF_ERROR(internal::CheckDbi(t.dbi));
  if (st.map_full) return internal::MapFullStatus();
  // Keys LMDB cannot store are simply absent.
  if (key.empty() || key.size() > st.max_key_size) return std::optional<std::string_view>();
  MDB_val k = ToVal(key);
  MDB_val v{0, nullptr};
  const int rc = mdb_get(st.txn, t.dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
  DBFS_RETURN_IF_ERROR(st.Check(rc, "mdb_get"));
  return std::optional<std::string_view>(
      std::string_view(static_cast<const char*>(v.mv_data), v.mv_size));
}

// Marks the thread that runs a Write body, so a nested Write is refused
// instead of deadlocking on write_mu_.
class WriterMark {
 public:
  explicit WriterMark(std::atomic<std::thread::id>* t) : t_(t) {
    t_->store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  ~WriterMark() { t_->store(std::thread::id(), std::memory_order_relaxed); }
  WriterMark(const WriterMark&) = delete;
  WriterMark& operator=(const WriterMark&) = delete;

 private:
  std::atomic<std::thread::id>* t_;
};

}  // namespace

// ---------------------------------------------------------------------------
// Env

Result<std::unique_ptr<Env>> Env::Open(const std::string& dir, const EnvOptions& opts) {
  if (opts.max_tables == 0) return Status::Invalid("kvstore: EnvOptions::max_tables must be > 0");
  const uint64_t page = PageSize();
  uint64_t map_size = RoundUp(std::max<uint64_t>(opts.initial_map_size, 16 * page), page);
  // A data file larger than the requested map (written by an earlier open
  // that grew the map) must be mapped whole: adopt its size.
  struct stat st;
  const std::string data_path = dir + "/data.mdb";
  if (::stat(data_path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) > map_size) {
    map_size = RoundUp(static_cast<uint64_t>(st.st_size), page);
  }

  MDB_env* raw = nullptr;
  int rc = mdb_env_create(&raw);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_env_create");
  // From here on ~Env calls mdb_env_close, which LMDB requires even when
  // mdb_env_open fails.
  std::unique_ptr<Env> env(new Env(raw, opts.read_only));
  rc = mdb_env_set_maxreaders(raw, kMaxReaders);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_env_set_maxreaders");
  rc = mdb_env_set_maxdbs(raw, opts.max_tables);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_env_set_maxdbs");
  rc = mdb_env_set_mapsize(raw, map_size);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_env_set_mapsize");
  // MDB_NOTLS: a ReadTxn may be used from any thread (one at a time) and a
  // thread may hold several. No MDB_NOSYNC/MDB_NOMETASYNC: a commit must be
  // durable when Write returns, and those flags can corrupt on power loss.
  unsigned flags = MDB_NOTLS;
  if (opts.read_only) flags |= MDB_RDONLY;
  if (opts.read_only && opts.no_lock_file) flags |= MDB_NOLOCK;
  rc = mdb_env_open(raw, dir.c_str(), flags, kFileMode);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_env_open(" + dir + ")");

  const int max_key = mdb_env_get_maxkeysize(raw);
  env->max_key_size_ = std::min<size_t>(kMaxKeySize, max_key > 0 ? max_key : 0);
  env->RefreshInfoLocked();
  return env;
}

Env::Env(MDB_env* env, bool read_only) : env_(env), read_only_(read_only) {
  pool_.reserve(kMaxPooledReadTxns);
}

Env::~Env() {
  DrainPool();
  mdb_env_close(env_);
}

void Env::DrainPool() {
  std::lock_guard l(pool_mu_);
  for (ReadTxn* txn : pool_) ReadTxn::Free(txn);  // aborts: gives the reader slot back
  pool_.clear();
}

size_t Env::TEST_pooled_read_txns() const {
  std::lock_guard l(pool_mu_);
  return pool_.size();
}

int Env::TEST_reader_slots_in_use() const {
  struct Ctx {
    int pid;
    int slots;
  } ctx{static_cast<int>(::getpid()), 0};
  // One line per taken slot: "pid thread txnid" ("-" for a reset txn), after
  // a header line that does not start with a number.
  mdb_reader_list(
      env_,
      [](const char* line, void* p) -> int {
        auto* c = static_cast<Ctx*>(p);
        int pid = 0;
        if (std::sscanf(line, "%d", &pid) == 1 && pid == c->pid) ++c->slots;
        return 0;
      },
      &ctx);
  return ctx.slots;
}

void Env::RefreshInfoLocked() {
  MDB_envinfo info;
  MDB_stat stat;
  if (mdb_env_info(env_, &info) != MDB_SUCCESS || mdb_env_stat(env_, &stat) != MDB_SUCCESS) {
    return;  // both only read in-memory state; keep the old numbers if not
  }
  map_size_.store(info.me_mapsize, std::memory_order_relaxed);
  used_bytes_.store((static_cast<uint64_t>(info.me_last_pgno) + 1) * stat.ms_psize,
                    std::memory_order_relaxed);
}

Status Env::BrokenStatus() const {
  return Status::IOError(
      "kvstore: the LMDB map could not be remapped after a resize; reopen the volume");
}

Status Env::GrowMapLocked() {
  const uint64_t cur = map_size();
  const uint64_t next = cur * 2;
  if (next > kMaxMapSize) {
    return Status::IOError(
        "kvstore: LMDB map cannot grow beyond " + std::to_string(kMaxMapSize >> 20) + " MiB",
        ENOMEM);
  }
  // mdb_env_set_mapsize unmaps before it maps again, and leaves the env
  // without a map if the new mmap fails. Check first that the address space
  // is there, so a failure leaves the old map in place.
  void* probe =
      ::mmap(nullptr, next, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) {
    const int err = errno;
    return Status::IOError("kvstore: cannot grow the LMDB map to " + std::to_string(next >> 20) +
                               " MiB: " + std::strerror(err),
                           err);
  }
  ::munmap(probe, next);

  // Waits until every ReadTxn has ended: remapping moves the memory their
  // views point into. No write txn is open (REQUIRES). The pooled (reset)
  // handles go too: LMDB allows a remap only with no transaction open.
  std::unique_lock gate(gate_);
  DrainPool();
  const int rc = mdb_env_set_mapsize(env_, next);
  if (rc != MDB_SUCCESS) {
    broken_.store(true);
    spdlog::error("LMDB map resize to {} MiB failed: {}", next >> 20, mdb_strerror(rc));
    return internal::MdbStatus(rc, "mdb_env_set_mapsize");
  }
  RefreshInfoLocked();
  spdlog::info("LMDB map grown to {} MiB", map_size() >> 20);
  return Status::Ok();
}

Status Env::AdoptMapSizeLocked() {
  std::unique_lock gate(gate_);
  DrainPool();  // no transaction may be open across a remap, pooled ones included
  // Size 0: adopt the size recorded in the meta page by the other process.
  const int rc = mdb_env_set_mapsize(env_, 0);
  if (rc != MDB_SUCCESS) {
    broken_.store(true);
    return internal::MdbStatus(rc, "mdb_env_set_mapsize(adopt)");
  }
  RefreshInfoLocked();
  return Status::Ok();
}

Result<Table> Env::OpenTable(const std::string& name) {
  if (name.empty()) return Status::Invalid("kvstore: empty table name");
  if (read_only_) return OpenTableReadOnly(name);
  unsigned dbi = 0;
  DBFS_RETURN_IF_ERROR(Write([&](WriteTxn& w) -> Status {
    MDB_dbi d = 0;
    const int rc = mdb_dbi_open(w.state_.txn, name.c_str(), MDB_CREATE, &d);
    if (rc == MDB_DBS_FULL) {
      return Status::Invalid("kvstore: too many tables (raise EnvOptions::max_tables) opening '" +
                             name + "'");
    }
    DBFS_RETURN_IF_ERROR(w.state_.Check(rc, "mdb_dbi_open(" + name + ")"));
    dbi = d;
    return Status::Ok();
  }));
  return Table{dbi};
}

Result<Table> Env::OpenTableReadOnly(const std::string& name) {
  std::shared_lock gate(gate_);
  if (broken_.load()) return BrokenStatus();
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_txn_begin(read)");
  MDB_dbi d = 0;
  rc = mdb_dbi_open(txn, name.c_str(), 0, &d);
  if (rc != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND) return Status::NotFound("kvstore: table '" + name + "' not found");
    if (rc == MDB_DBS_FULL) {
      return Status::Invalid("kvstore: too many tables (raise EnvOptions::max_tables)");
    }
    return internal::MdbStatus(rc, "mdb_dbi_open(" + name + ")");
  }
  // Commit (not abort) so the handle stays open for later transactions.
  rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_txn_commit(open table)");
  return Table{d};
}

Result<std::unique_ptr<ReadTxn>> Env::BeginRead() {
  for (int attempt = 0;; ++attempt) {
    gate_.lock_shared();
    if (broken_.load()) {
      gate_.unlock_shared();
      return BrokenStatus();
    }
    ReadTxn* txn = nullptr;
    const int rc = BeginReadLocked(&txn);
    if (rc == MDB_SUCCESS) {
      // The ReadTxn now owns the shared hold on the gate.
      return std::unique_ptr<ReadTxn>(txn);
    }
    gate_.unlock_shared();
    if (rc != MDB_MAP_RESIZED || attempt >= kMaxResizedRetries) {
      return internal::MdbStatus(rc, "mdb_txn_begin(read)");
    }
    // Another process grew the map beyond ours. Adopting its size needs the
    // gate exclusive; never block for it here (this thread may hold other
    // ReadTxns), just try.
    std::unique_lock w(write_mu_, std::try_to_lock);
    if (!w.owns_lock() || !gate_.try_lock()) {
      return Status::IOError("kvstore: the LMDB map was grown by another process; retry", EAGAIN);
    }
    DrainPool();  // no transaction may be open across a remap, pooled ones included
    const int rc2 = mdb_env_set_mapsize(env_, 0);
    if (rc2 != MDB_SUCCESS) broken_.store(true);
    RefreshInfoLocked();
    gate_.unlock();
    if (rc2 != MDB_SUCCESS) return internal::MdbStatus(rc2, "mdb_env_set_mapsize(adopt)");
  }
}

int Env::BeginReadLocked(ReadTxn** out) {
  ReadTxn* txn = nullptr;
  {
    std::lock_guard l(pool_mu_);
    if (!pool_.empty()) {
      txn = pool_.back();  // the most recently used: likeliest to be in cache
      pool_.pop_back();
    }
  }
  if (txn != nullptr) {
    // A fresh snapshot of the last commit, in the reader slot the handle kept.
    const int rc = mdb_txn_renew(txn->state_.txn);
    if (rc == MDB_SUCCESS) {
      *out = txn;
      return MDB_SUCCESS;
    }
    // E.g. MDB_MAP_RESIZED (another process grew the map): drop the handle;
    // mdb_txn_begin below meets the same condition and BeginRead handles it.
    ReadTxn::Free(txn);
  }
  MDB_txn* raw = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &raw);
  if (rc != MDB_SUCCESS) return rc;
  read_txns_begun_.fetch_add(1, std::memory_order_relaxed);
  *out = ::new ReadTxn(this, raw, max_key_size_);  // freed by ReadTxn::Free
  return MDB_SUCCESS;
}

void Env::Recycle(ReadTxn* txn) {
  // Releases the snapshot (old pages become reusable by writers); the
  // handle keeps its reader slot for the next mdb_txn_renew.
  mdb_txn_reset(txn->state_.txn);
  bool pooled = false;
  {
    std::lock_guard l(pool_mu_);
    if (pool_.size() < kMaxPooledReadTxns) {
      pool_.push_back(txn);  // never reallocates: capacity reserved
      pooled = true;
    }
  }
  if (!pooled) ReadTxn::Free(txn);
  // Only now may the map move: a resize finds a pooled handle in pool_ and
  // aborts it. (`txn` may already be renewed by another thread here.)
  gate_.unlock_shared();
}

Status Env::Write(const std::function<Status(WriteTxn&)>& body) {
  if (read_only_) return Status::ReadOnly("kvstore: the LMDB environment is open read-only");
  if (writer_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    return Status::Invalid("kvstore: Env::Write called from inside a Write body");
  }
  std::lock_guard lock(write_mu_);
  WriterMark mark(&writer_thread_);
  int resized = 0;
  for (;;) {
    if (broken_.load()) return BrokenStatus();
    MDB_txn* raw = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &raw);
    if (rc == MDB_MAP_RESIZED && ++resized <= kMaxResizedRetries) {
      DBFS_RETURN_IF_ERROR(AdoptMapSizeLocked());
      continue;
    }
    if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_txn_begin(write)");

    WriteTxn txn(raw, max_key_size_);  // aborts on every early return
    Status s = body(txn);
    txn.state_.CloseCursors();
    // Checked before `s`: the body may have swallowed or rewritten the
    // map-full status, but the LMDB txn is dead either way.
    if (txn.state_.map_full) {
      txn.Abort();
      DBFS_RETURN_IF_ERROR(GrowMapLocked());
      map_full_retries_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!s.ok()) return s;
    rc = txn.Commit();
    if (rc == MDB_MAP_FULL) {  // the free list did not fit
      DBFS_RETURN_IF_ERROR(GrowMapLocked());
      map_full_retries_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (rc != MDB_SUCCESS) return internal::MdbStatus(rc, "mdb_txn_commit");
    RefreshInfoLocked();
    return Status::Ok();
  }
}

// ---------------------------------------------------------------------------
// ReadTxn

ReadTxn::ReadTxn(Env* env, MDB_txn* txn, size_t max_key_size) : env_(env) {
  state_.txn = txn;
  state_.write = false;
  state_.max_key_size = max_key_size;
  // Parking a cursor handle happens on the way out: it must not allocate.
  state_.idle_cursors.reserve(internal::TxnState::kMaxIdleCursors);
}

void ReadTxn::Free(ReadTxn* txn) {
  assert(txn->state_.cursors.empty());  // ended: CloseCursors ran in operator delete
  txn->state_.CloseIdleCursors();
  mdb_txn_abort(txn->state_.txn);  // frees the handle and its reader slot
  txn->~ReadTxn();
  ::operator delete(txn);  // allocated by ::new in Env::BeginReadLocked
}

void ReadTxn::operator delete(ReadTxn* txn, std::destroying_delete_t) {
  txn->state_.CloseCursors();
  txn->env_->Recycle(txn);  // releases the gate last
}

Result<std::optional<std::string_view>> ReadTxn::Get(Table t, std::string_view key) {
  return GetImpl(state_, t, key);
}

Result<std::unique_ptr<Cursor>> ReadTxn::NewCursor(Table t) { return Cursor::Open(&state_, t.dbi); }

// ---------------------------------------------------------------------------
// WriteTxn

WriteTxn::WriteTxn(MDB_txn* txn, size_t max_key_size) {
  state_.txn = txn;
  state_.write = true;
  state_.max_key_size = max_key_size;
}

WriteTxn::~WriteTxn() { Abort(); }

void WriteTxn::Abort() {
  state_.CloseCursors();
  if (state_.txn != nullptr) mdb_txn_abort(state_.txn);
  state_.txn = nullptr;
}

int WriteTxn::Commit() {
  state_.CloseCursors();
  MDB_txn* txn = state_.txn;
  state_.txn = nullptr;  // mdb_txn_commit frees it, success or not
  return mdb_txn_commit(txn);
}

Result<std::optional<std::string_view>> WriteTxn::Get(Table t, std::string_view key) {
  return GetImpl(state_, t, key);
}

Status WriteTxn::Put(Table t, std::string_view key, std::string_view value) {
  DBFS_RETURN_IF_ERROR(internal::CheckDbi(t.dbi));
  if (state_.map_full) return internal::MapFullStatus();
  if (key.empty()) return Status::Invalid("kvstore: empty key");
  if (key.size() > state_.max_key_size) {
    return Status::Invalid("key too long: " + std::to_string(key.size()) + " bytes (max " +
                           std::to_string(state_.max_key_size) + ")");
  }
  MDB_val k = ToVal(key);
  MDB_val v = ToVal(value);
  return state_.Check(mdb_put(state_.txn, t.dbi, &k, &v, 0), "mdb_put");
}

Status WriteTxn::Delete(Table t, std::string_view key) {
  DBFS_RETURN_IF_ERROR(internal::CheckDbi(t.dbi));
  if (state_.map_full) return internal::MapFullStatus();
  if (key.empty() || key.size() > state_.max_key_size) return Status::Ok();  // cannot exist
  MDB_val k = ToVal(key);
  const int rc = mdb_del(state_.txn, t.dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  return state_.Check(rc, "mdb_del");
}

Status WriteTxn::Clear(Table t) {
  DBFS_RETURN_IF_ERROR(internal::CheckDbi(t.dbi));
  if (state_.map_full) return internal::MapFullStatus();
  DBFS_RETURN_IF_ERROR(state_.Check(mdb_drop(state_.txn, t.dbi, 0), "mdb_drop"));
  // LMDB resets the table's cursors; forget their cached positions too.
  for (Cursor* c : state_.cursors) {
    if (c->dbi() == t.dbi) c->Unposition();
  }
  return Status::Ok();
}

Result<std::unique_ptr<Cursor>> WriteTxn::NewCursor(Table t) {
  return Cursor::Open(&state_, t.dbi);
}

}  // namespace dbfs::kv
