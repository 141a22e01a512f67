// Merged parent-directory changes of explicit transactions: a directory
// whose record a transaction changed only as the parent of entry operations
// (link count, mtime, ctime) is not validated as a whole at commit; its
// delta is merged into the latest committed record by the store
// (mvcc::Merge), so two transactions creating different names in one
// directory both commit. The name keys themselves are validated, and a
// parent removed meanwhile is a conflict.
#include "fs/engine.h"

namespace dbfs {

void Engine::ParentChanged(OpScope& op, uint64_t dir, const Inode& loaded) {
  if (!op.tx || op.tx->dir_exact.count(dir)) return;
  if (op.tx->dir_base.emplace(dir, loaded).second) {
    op.tx->txn->MergeAtCommit(Table::kInodes, InoKey(dir));
  }
}

Status Engine::MergeDirDeltas(ExplicitTx& tx) {
  Transaction& t = *tx.txn;
  for (const auto& [dir, base] : tx.dir_base) {
    if (tx.dir_exact.count(dir)) continue;
    DBFS_ASSIGN_OR_RETURN(auto mine_v, t.GetUntracked(Table::kInodes, InoKey(dir)));
    if (!mine_v) continue;
    DBFS_ASSIGN_OR_RETURN(Inode mine, DecodeInode(*mine_v));
    DBFS_ASSIGN_OR_RETURN(auto at_snapshot, store_->Get(t.snapshot(), Table::kInodes, InoKey(dir)));
    const bool existed = at_snapshot.has_value();
    t.SetMerge(Table::kInodes, InoKey(dir),
               [mine, base = base, existed](const std::optional<std::string>& latest_v)
                   -> Result<std::optional<std::string>> {
                 // Created by this transaction: its record stands.
                 if (!latest_v && !existed) return std::optional<std::string>(EncodeInode(mine));
                 Inode latest;
                 if (latest_v) {
                   DBFS_ASSIGN_OR_RETURN(latest, DecodeInode(*latest_v));
                 }
                 if (!latest_v || (latest.nlink == 0 && base.nlink != 0)) {
                   // Someone removed the directory the transaction changed entries in.
                   return Status::Conflict("directory removed");
                 }
                 latest.nlink = latest.nlink + mine.nlink - base.nlink;
                 if (!TimeLE(mine.mtime, latest.mtime)) latest.mtime = mine.mtime;
                 if (!TimeLE(mine.ctime, latest.ctime)) latest.ctime = mine.ctime;
                 return std::optional<std::string>(EncodeInode(latest));
               });
  }
  return Status::Ok();
}

}  // namespace dbfs
