// Kernel references (lookup counts via forget, open handles via release) and
// orphans: an inode whose link count reached 0 is reclaimed — attributes,
// data, xattrs and its orphan-list entry, in one transaction — once nothing
// references it, or at the next mount after a crash.
#include <spdlog/spdlog.h>

#include "fs/engine.h"

namespace dbfs {
void Engine::AddLookup(uint64_t ino) {
  std::lock_guard g(refs_mu_);
  ++refs_[ino].lookups;
}

void Engine::Forget(uint64_t ino, uint64_t n) { Unref(ino, n, 0); }

bool Engine::Hot(uint64_t ino) {
  if (open_txs_.load(std::memory_order_acquire) == 0) return false;
  std::lock_guard g(hot_mu_);
  return hot_.count(ino) > 0;
}

void Engine::MarkOrphan(uint64_t ino) {
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

void Engine::Unref(uint64_t ino, uint64_t lookups, uint64_t opens) {
  bool reclaim = false;
  const bool hot = Hot(ino);
  {
    std::lock_guard g(refs_mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    Refs& r = it->second;
    r.lookups -= std::min(r.lookups, lookups);
    r.opens -= std::min(r.opens, opens);
    // No open handle, so no mapping: no stale page of it can come back.
    if (opens > 0 && r.opens == 0) edges_.Forget(ino);
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
void Engine::Reclaim(uint64_t ino) {
  Status st = [&]() -> Status {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(kInternal, {ino}));
    op.meta.flags |= mvcc::kCommitInternal | mvcc::kCommitReclaim;
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

Status Engine::DeleteInodeData(Transaction& t, uint64_t ino) {
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

Status Engine::ReclaimAllOrphans() {
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

}  // namespace dbfs
