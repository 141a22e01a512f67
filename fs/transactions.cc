// Explicit transactions: the registry (begin, commit, abort, status), the
// scope every operation runs in (autocommit under inode locks, or inside the
// caller's transaction), limits (tx_timeout, tx_max_bytes), the reaper, and
// the kernel-cache bookkeeping of inodes open transactions touched.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "fs/checkpoint.h"
#include "fs/engine.h"

namespace dbfs {

Result<Engine::OpScope> Engine::BeginOp(const Caller& c, std::initializer_list<uint64_t> lock_inos,
                                        std::initializer_list<uint64_t> read_inos,
                                        bool dir_read_tracked) {
  return BeginOpIn(TxFor(c), c, lock_inos, read_inos, dir_read_tracked);
}

Result<Engine::OpScope> Engine::BeginOpIn(std::shared_ptr<ExplicitTx> tx, const Caller& c,
                                          std::initializer_list<uint64_t> lock_inos,
                                          std::initializer_list<uint64_t> read_inos,
                                          bool dir_read_tracked) {
  // Every operation that changes something names the inodes it changes.
  if (opts_.read_only && lock_inos.size() > 0) return Status::ReadOnly("read-only mount");
  OpScope op;
  if (tx) {
    op.tx_lock = std::unique_lock(tx->mu);
    if (tx->done) {
      return Status(Code::kConflict, "transaction " + std::to_string(tx->id) + " has ended (" +
                                         tx->end_reason + ")");
    }
    if (!tx->kept &&
        std::chrono::steady_clock::now() - tx->started > std::chrono::seconds(opts_.tx_timeout_s)) {
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
  op.meta.uid = c.uid;
  op.meta.pid = c.pid;
  return op;
}

void Engine::AbortBound(const std::shared_ptr<ExplicitTx>& tx, std::unique_lock<std::mutex>& lock,
                        const std::string& reason, bool sync) {
  tx->done = true;
  tx->end_reason = reason;
  tx_aborts_.fetch_add(1);
  tx->txn.reset();  // nothing of it will ever commit: free the write set now
  tx->pin.reset();
  // Keep our own reference: `tx` may be the OpScope's, which the caller's
  // return destroys.
  std::shared_ptr<ExplicitTx> keep = tx;
  lock.unlock();
  EndTx(keep, sync, /*keep_registered=*/true);
}

Status Engine::Finish(OpScope& op, int flags) {
  if (!op.tx) {
    if (op.own->empty()) return Status::Ok();
    if (op.meta.pid > 0 && namer_) op.meta.comm = namer_(op.meta.pid);
    if (op.meta.pid == 0 && op.meta.uid == 0) op.meta.flags |= mvcc::kCommitInternal;
    op.own->SetMeta(std::move(op.meta));
    DBFS_ASSIGN_OR_RETURN(mvcc::CommitResult r, Commit(*op.own, flags));
    op.committed_csn = r.csn;
    return Status::Ok();
  }
  if (flags & (O_SYNC | O_DSYNC)) op.tx->durable = true;
  if (op.tx->data_bytes() > opts_.tx_max_bytes) {
    spdlog::warn("transaction {} (root pid {}) aborted: wrote more than tx_max_bytes={}", op.tx->id,
                 op.tx->root_pid, opts_.tx_max_bytes);
    AbortBound(op.tx, op.tx_lock, "too big (tx_max_bytes)", /*sync=*/false);
    return Status(Code::kNoSpace, "transaction exceeded tx_max_bytes and was aborted");
  }
  return Status::Ok();
}

void Engine::Orphaned(OpScope& op, uint64_t ino) {
  if (op.tx) {
    op.tx->orphans.push_back(ino);
  } else {
    MarkOrphan(ino);
  }
}

std::shared_ptr<ExplicitTx> Engine::TxById(uint64_t id) {
  std::lock_guard g(tx_mu_);
  auto t = txs_.find(id);
  return t == txs_.end() ? nullptr : t->second;
}

Status Engine::KeepTx(const Caller& c, uint64_t id) {
  std::shared_ptr<ExplicitTx> tx = TxById(id);
  if (!tx) return Status::NotFound("no open transaction " + std::to_string(id));
  if (c.uid != 0 && c.uid != tx->uid) return Status(Code::kPermission, "not your transaction");
  std::lock_guard lock(tx->mu);
  if (tx->done) return Status(Code::kConflict, "transaction has ended (" + tx->end_reason + ")");
  tx->kept_since.store(std::chrono::steady_clock::now().time_since_epoch().count());
  tx->kept.store(true);
  spdlog::info("transaction {} left open for review (aborted after {} s unless committed)", id,
               opts_.tx_keep_timeout_s);
  return Status::Ok();
}

std::shared_ptr<ExplicitTx> Engine::TxFor(const Caller& c) {
  if (c.tx == 0 || open_txs_.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard g(tx_mu_);
  auto t = txs_.find(c.tx);
  if (t == txs_.end()) return nullptr;
  // A non-root user's transaction binds only that user's processes: a
  // descendant running as someone else (a set-user-ID program, su) is not
  // part of it — its changes are its own, and it must not see the
  // transaction's private state.
  if (t->second->uid != 0 && c.uid != t->second->uid) return nullptr;
  return t->second;
}

bool Engine::Uncached(const Caller& c, uint64_t ino) {
  if (open_txs_.load(std::memory_order_acquire) == 0) return false;
  if (TxFor(c)) return true;
  std::lock_guard g(hot_mu_);
  return hot_.count(ino) > 0;
}

Result<uint64_t> Engine::BeginTx(const Caller& c, const TxOptions& o) {
  if (opts_.read_only) return Status::ReadOnly("read-only mount: no transactions");
  if (TxFor(c)) return Status::Busy("the caller is already inside a transaction");
  auto tx = std::make_shared<ExplicitTx>();
  tx->root_pid = o.root_pid;
  tx->cmd = o.cmd;
  tx->uid = c.uid;
  tx->serializable = o.serializable;
  tx->lock = o.lock;
  tx->started = std::chrono::steady_clock::now();
  tx->txn = std::make_unique<Transaction>(store_.get());
  if (o.serializable) tx->txn->TrackReads();
  // Readers bump atime with autocommits, and checkpoints move file data
  // without changing it; neither may abort a transaction.
  tx->benign = [store = store_.get()](Table t, std::string_view before, std::string_view after) {
    if (t == Table::kExtents) return ExtentsReadTheSame(store, before, after);
    if (t != Table::kInodes) return false;
    auto a = DecodeInode(before), b = DecodeInode(after);
    if (!a.ok() || !b.ok()) return false;
    a->atime = b->atime;
    return EncodeInode(*a) == EncodeInode(*b);
  };
  tx->txn->SetBenignChange(tx->benign);  // kept: a --lock rebase gives it to a new Transaction
  std::lock_guard g(tx_mu_);
  tx->id = next_tx_++;
  txs_.emplace(tx->id, tx);
  open_txs_.fetch_add(1, std::memory_order_release);
  spdlog::debug("transaction {} begun for pid {} ({}{})", tx->id, o.root_pid,
                o.serializable ? "serializable" : "snapshot", o.lock ? ", lock" : "");
  return tx->id;
}

void Engine::EndTx(const std::shared_ptr<ExplicitTx>& tx, bool sync, bool keep_registered) {
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
      // A directory the kernel moved keeps its subdirectories' dentries
      // under the moved alias: the kernel would have to move each back on
      // its next lookup, which it refuses (ESTALE) while a rename holds its
      // rename lock. New generations for them too, so it drops them instead.
      st = NewGenerationBelow(ino);
      if (!st.ok()) spdlog::warn("below directory {}: new generations failed: {}", ino, st.ToString());
    }
  }
  if (!keep_registered) {
    std::lock_guard g(tx_mu_);
    if (txs_.erase(tx->id) == 0) return;
    open_txs_.fetch_sub(1, std::memory_order_release);
  }
  // Its --lock locks go first: the transactions waiting for them proceed
  // (after a commit, from the state it published).
  if (tx->lock) tx_locks_.ReleaseAll(tx->id);
  // A transaction ended with keep_registered was released then; its final end
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

std::string Engine::PathOf(Transaction& t, const Transaction::ConflictKey& k,
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

Result<TxOutcome> Engine::CommitTx(const Caller& c, uint64_t id, bool durable) {
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
    // A deadlock victim, kept registered until now: `dbfs tx` reports it (exit 75).
    TxOutcome out{TxOutcome::Kind::kDeadlock, 0, tx->deadlock};
    lock.unlock();
    EndTx(tx);
    return out;
  }
  if (tx->done) {
    // Aborted by the daemon (kept registered so far) or ended meanwhile.
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
  const bool sync = durable || tx->durable || opts_.sync;
  {
    mvcc::CommitMeta meta;
    meta.uid = tx->uid;
    meta.pid = tx->root_pid;
    meta.tx = tx->id;
    meta.tx_cmd = tx->cmd;
    t.SetMeta(std::move(meta));
  }
  Status merges = MergeDirDeltas(*tx);
  Result<mvcc::CommitResult> r =
      !merges.ok() ? Result<mvcc::CommitResult>(std::move(merges))
                   : t.Commit(sync, tx->serializable ? Transaction::Validation::kReadsAndWrites
                                                     : Transaction::Validation::kWrites);
  guard.Release();
  tx->done = true;
  TxOutcome out;
  if (r.ok() && sync) {
    // An fsync inside the transaction promised durability of everything
    // before it, even when the transaction itself wrote nothing.
    Status synced = store_->SyncAll();
    if (!synced.ok()) r = synced;
  }
  if (r.ok()) {
    tx->end_reason = "committed";
    tx_commits_.fetch_add(1);
    out = TxOutcome{TxOutcome::Kind::kCommitted, r->csn, ""};
  } else if (r.status().code() == Code::kConflict && t.conflict()) {
    tx->end_reason = "conflict";
    tx_conflicts_.fetch_add(1);
    // Name the path as the world sees it now.
    Transaction now(store_.get());
    out = TxOutcome{TxOutcome::Kind::kConflict, 0, PathOf(now, *t.conflict(), tx.get())};
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

Result<TxOutcome> Engine::AbortTx(const Caller& c, uint64_t id, const std::string& reason) {
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
  TxOutcome out{TxOutcome::Kind::kAborted, 0, ""};
  {
    std::lock_guard lock(tx->mu);
    if (!tx->done) {
      tx->done = true;
      tx->end_reason = reason;
      tx_aborts_.fetch_add(1);
    } else if (tx->end_reason == "deadlock") {
      out = TxOutcome{TxOutcome::Kind::kDeadlock, 0, tx->deadlock};
    }
  }
  EndTx(tx);
  return out;
}

bool Engine::TxExists(uint64_t id) {
  std::lock_guard g(tx_mu_);
  return txs_.count(id) > 0;
}

Status Engine::NewGeneration(uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(Caller{}, {ino}));
  op.meta.flags |= mvcc::kCommitInternal;
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kInodes, InoKey(ino)));
  if (!v) return Status::Ok();  // removed by someone else meanwhile
  DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
  if (!n.IsDir() || n.nlink == 0) return Status::Ok();
  ++n.generation;
  StoreInode(t, ino, n);
  return Finish(op);
}

Status Engine::NewGenerationBelow(uint64_t dir) {
  std::vector<uint64_t> todo{dir};
  while (!todo.empty()) {
    const uint64_t d = todo.back();
    todo.pop_back();
    std::vector<uint64_t> subdirs;
    {
      Transaction t(store_.get());
      DBFS_RETURN_IF_ERROR(t.ScanUntracked(Table::kDirents, InoKey(d), InoKey(d + 1),
                                           [&](std::string_view, std::string_view v) {
                                             uint64_t child;
                                             uint32_t type;
                                             if (DecodeDirent(v, &child, &type) && type == S_IFDIR) {
                                               subdirs.push_back(child);
                                             }
                                             return true;
                                           }));
    }
    for (uint64_t c : subdirs) {
      DBFS_RETURN_IF_ERROR(NewGeneration(c));
      todo.push_back(c);
    }
  }
  return Status::Ok();
}

std::vector<TxInfo> Engine::ListTx() {
  std::vector<std::shared_ptr<ExplicitTx>> txs;
  {
    std::lock_guard g(tx_mu_);
    for (const auto& [id, tx] : txs_) txs.push_back(tx);
  }
  std::sort(txs.begin(), txs.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  std::vector<TxInfo> out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& tx : txs) {
    if (tx->released.load()) continue;  // aborted by the daemon, registered until claimed
    TxInfo i;
    i.id = tx->id;
    i.root_pid = tx->root_pid;
    i.uid = tx->uid;
    i.serializable = tx->serializable;
    i.lock = tx->lock;
    i.kept = tx->kept;
    i.age_seconds = std::chrono::duration<double>(now - tx->started).count();
    // A request of a --lock transaction may hold its mutex for as long as it
    // waits for a lock: never block on it here.
    std::unique_lock lock(tx->mu, std::try_to_lock);
    if (lock.owns_lock() && tx->txn) {
      i.writes = tx->txn->write_count();
      i.data_bytes = tx->data_bytes();
      i.locks = tx->locked.size();
    } else {
      i.busy = true;
      i.waiting_on = tx->waiting_on.load();
    }
    out.push_back(i);
  }
  return out;
}

void Engine::ReaperLoop() {
  std::unique_lock lock(reaper_mu_);
  while (!reaper_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return reaper_stop_; })) {
    if (open_txs_.load(std::memory_order_acquire) == 0) continue;
    lock.unlock();
    std::vector<std::shared_ptr<ExplicitTx>> expired, forgotten;
    const auto now = std::chrono::steady_clock::now();
    const auto timeout = std::chrono::seconds(opts_.tx_timeout_s);
    {
      std::lock_guard g(tx_mu_);
      for (const auto& [id, tx] : txs_) {
        // Ended by the daemon but still registered (AbortBound): its owner
        // claims it by committing or aborting. A transaction bound to a
        // process (root_pid) is claimed, or aborted when that process is
        // gone, by whoever bound it (fuse/tx_binding.h).
        const bool ended = tx->released.load();
        const auto keep_timeout = std::chrono::seconds(opts_.tx_keep_timeout_s);
        if (!ended && tx->kept.load()) {
          const auto since = std::chrono::steady_clock::time_point(
              std::chrono::steady_clock::duration(tx->kept_since.load()));
          if (now - since > keep_timeout) expired.push_back(tx);
        } else if (!ended && now - tx->started > timeout) {
          expired.push_back(tx);
        } else if (ended && (tx->root_pid == 0 || tx->kept.load()) &&
                   now - tx->started > 2 * std::max(timeout, keep_timeout)) {
          forgotten.push_back(tx);  // joined by id only: no process to watch
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
    for (const auto& tx : forgotten) AbortTx(kInternal, tx->id, "forgotten").status().IgnoreError();
    lock.lock();
  }
}

void Engine::StopReaper() {
  {
    std::lock_guard g(reaper_mu_);
    reaper_stop_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

}  // namespace dbfs
