// Pessimistic transactions (`dbfs tx run --lock`, docs/ARCHITECTURE.md §8):
// exclusive inode locks held to the end, and moving the snapshot forward
// after a wait when nothing the transaction used changed meanwhile.
#include <algorithm>

#include "fs/engine.h"

namespace dbfs {

Status Engine::TxLock(ExplicitTx& tx, const Caller& c, std::initializer_list<uint64_t> write_inos,
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
      const std::string path =
          PathOf(now, Transaction::ConflictKey{Table::kInodes, InoKey(ino)}, &tx);
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

Result<bool> Engine::ChangedSince(const ExplicitTx& tx, mvcc::Csn snap, Table t,
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
Status Engine::TxRebase(ExplicitTx& tx, const std::vector<uint64_t>& fresh) {
  if (!tx.rebase_ok) return Status::Ok();
  Transaction& old = *tx.txn;
  const mvcc::Csn snap = old.snapshot();
  // The new snapshot first: a change committed after it is caught by the
  // checks below (they look at the newest version) or by validation.
  auto next = std::make_unique<Transaction>(store_.get());
  std::set<std::pair<Table, std::string>> reads = tx.unlocked_reads;
  for (const auto& [parent, name] : tx.entries)
    reads.emplace(Table::kDirents, NameKey(parent, name));
  for (uint64_t ino : tx.locked) {
    if (!std::binary_search(fresh.begin(), fresh.end(), ino))
      reads.emplace(Table::kInodes, InoKey(ino));
  }
  for (const auto& [t, key] : reads) {
    DBFS_ASSIGN_OR_RETURN(bool changed, ChangedSince(tx, snap, t, key));
    if (changed) return Status::Ok();
  }
  std::vector<std::pair<Table, std::string>> writes;
  old.ForEachWrite(
      [&](Table t, std::string_view key) { writes.emplace_back(t, std::string(key)); });
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

Status Engine::TxPreLock(const Caller& c, std::initializer_list<uint64_t> inos) {
  auto tx = TxFor(c);
  if (!tx || !tx->lock) return Status::Ok();
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, inos));
  return Status::Ok();
}

}  // namespace dbfs
