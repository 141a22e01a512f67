// Undo (docs/ARCHITECTURE.md §11.5): restore a path as it was, roll the
// volume back to a snapshot, revert one past commit. Each is one explicit
// transaction run by the engine itself through its ordinary operations, so it
// is validated at commit like `dbfs tx` (a concurrent conflicting writer:
// kConflict naming the path, nothing changed), invalidates the kernel's
// caches of what it changed, and can be left open for review (`keep`). File
// contents are restored by copying slice lists: the old bytes stay where they
// are, shared with the old versions.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "fs/engine.h"

namespace dbfs {

namespace {

struct Child {
  uint64_t ino;
  uint32_t type;
};

Result<std::map<std::string, Child>> ChildrenOf(Transaction& t, uint64_t dir, bool untracked) {
  std::map<std::string, Child> out;
  auto fn = [&](std::string_view k, std::string_view v) {
    Child c;
    if (k.size() >= 10 && DecodeDirent(v, &c.ino, &c.type)) {
      out.emplace(std::string(k.substr(8, k.size() - 9)), c);
    }
    return true;
  };
  if (untracked) {
    DBFS_RETURN_IF_ERROR(t.ScanUntracked(Table::kDirents, InoKey(dir), InoKey(dir + 1), fn));
  } else {
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kDirents, InoKey(dir), InoKey(dir + 1), fn));
  }
  return out;
}

}  // namespace

Result<uint64_t> Engine::BeginInternalTx(const Caller& c) {
  TxOptions o;
  o.serializable = true;
  o.cmd = "dbfs (undo)";
  Caller owner = c;
  owner.tx = 0;
  return BeginTx(owner, o);
}

Result<TxOutcome> Engine::FinishInternalTx(const Caller& c, uint64_t id, bool keep, Status body) {
  if (!body.ok()) {
    AbortTx(c, id, "undo failed").status().IgnoreError();
    return body;
  }
  if (keep) {
    DBFS_RETURN_IF_ERROR(KeepTx(c, id));
    TxOutcome o;
    o.kind = TxOutcome::Kind::kAborted;  // not ended: left open
    o.tx = id;
    return o;
  }
  return CommitTx(c, id, /*durable=*/true);
}

Status Engine::RemoveTree(const Caller& ct, uint64_t parent, const std::string& name) {
  DBFS_ASSIGN_OR_RETURN(Attr a, Lookup(ct, parent, name));
  Forget(a.ino, 1);
  if (S_ISDIR(a.mode)) {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(ct, {}));
    DBFS_ASSIGN_OR_RETURN(auto children, ChildrenOf(op.t(), a.ino, false));
    op.tx_lock.unlock();
    for (const auto& [n, c] : children) DBFS_RETURN_IF_ERROR(RemoveTree(ct, a.ino, n));
    return Remove(ct, parent, name, /*dir=*/true);
  }
  return Remove(ct, parent, name, /*dir=*/false);
}

// Makes inode `dst` (live, in the transaction) carry src_ino's attributes,
// xattrs and — for files — contents as they are in `src`.
Status Engine::CopyInode(const Caller& ct, Transaction& src, uint64_t src_ino, uint64_t dst) {
  DBFS_ASSIGN_OR_RETURN(Inode from, LoadInode(src, src_ino));
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(ct, {dst}));
  ExactWrite(op, dst);
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, dst));
  auto replace = [&](Table table) -> Status {
    std::vector<std::string> now;
    DBFS_RETURN_IF_ERROR(t.Scan(table, InoKey(dst), InoKey(dst + 1),
                                [&](std::string_view k, std::string_view) {
                                  now.emplace_back(k);
                                  return true;
                                }));
    for (auto& k : now) t.Delete(table, std::move(k));
    return src.ScanUntracked(table, InoKey(src_ino), InoKey(src_ino + 1),
                             [&](std::string_view k, std::string_view v) {
                               std::string key = InoKey(dst);
                               key.append(k.substr(8));
                               t.Put(table, std::move(key), std::string(v));
                               return true;
                             });
  };
  if (n.IsReg() && from.IsReg()) {
    DBFS_RETURN_IF_ERROR(replace(Table::kExtents));
    n.size = from.size;
    n.alloc = from.alloc;
  }
  DBFS_RETURN_IF_ERROR(replace(Table::kXattrs));
  n.mode = (n.mode & S_IFMT) | (from.mode & 07777);
  n.uid = from.uid;
  n.gid = from.gid;
  n.atime = from.atime;
  n.mtime = from.mtime;
  n.ctime = Now();
  StoreInode(t, dst, n);
  return Finish(op);
}

Status Engine::ReconcileDir(const Caller& ct, Transaction& src, uint64_t src_dir, uint64_t dst_dir,
                            std::map<uint64_t, uint64_t>* made) {
  DBFS_ASSIGN_OR_RETURN(auto want, ChildrenOf(src, src_dir, true));
  std::map<std::string, Child> have;
  {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(ct, {}));
    DBFS_ASSIGN_OR_RETURN(have, ChildrenOf(op.t(), dst_dir, false));
  }
  for (const auto& [name, c] : have) {
    if (!want.count(name)) DBFS_RETURN_IF_ERROR(RemoveTree(ct, dst_dir, name));
  }
  for (const auto& [name, c] : want) {
    DBFS_RETURN_IF_ERROR(RestoreNode(ct, src, c.ino, dst_dir, name, made));
  }
  return CopyInode(ct, src, src_dir, dst_dir);
}

// Makes (parent, name) in the transaction what src_ino is in `src`. An inode
// that is still there under that name is changed in place; anything else is
// replaced by a new inode (hard links among restored files are kept: `made`
// maps old inode numbers to the restored ones).
Status Engine::RestoreNode(const Caller& ct, Transaction& src, uint64_t src_ino, uint64_t parent,
                           const std::string& name, std::map<uint64_t, uint64_t>* made) {
  DBFS_ASSIGN_OR_RETURN(Inode from, LoadInode(src, src_ino));
  std::optional<Attr> cur;
  {
    auto l = Lookup(ct, parent, name);
    if (l.ok()) {
      Forget(l->ino, 1);
      cur = *l;
    } else if (l.status().code() != Code::kNotFound) {
      return l.status();
    }
  }
  const bool same = cur && cur->ino == src_ino && (cur->mode & S_IFMT) == (from.mode & S_IFMT);
  if (same && S_ISLNK(from.mode)) {
    DBFS_ASSIGN_OR_RETURN(std::string target, Readlink(ct, cur->ino));
    if (target == from.target) return CopyInode(ct, src, src_ino, cur->ino);
  } else if (same) {
    if (from.IsDir()) return ReconcileDir(ct, src, src_ino, cur->ino, made);
    return CopyInode(ct, src, src_ino, cur->ino);
  }
  if (cur) DBFS_RETURN_IF_ERROR(RemoveTree(ct, parent, name));
  auto linked = made->find(src_ino);
  if (linked != made->end() && !from.IsDir()) {
    DBFS_ASSIGN_OR_RETURN(Attr a, Link(ct, linked->second, parent, name));
    Forget(a.ino, 1);
    return Status::Ok();
  }
  DBFS_ASSIGN_OR_RETURN(Attr a, MakeNode(ct, parent, name, from.mode, from.rdev, from.target));
  Forget(a.ino, 1);
  made->emplace(src_ino, a.ino);
  if (from.IsDir()) return ReconcileDir(ct, src, src_ino, a.ino, made);
  return CopyInode(ct, src, src_ino, a.ino);
}

Result<TxOutcome> Engine::Restore(const Caller& c, std::string_view path, uint64_t at, bool keep) {
  if (c.uid != 0) return Status(Code::kPermission, "only root may restore");
  DBFS_ASSIGN_OR_RETURN(auto src, ReadAt(at));
  std::string p(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  DBFS_ASSIGN_OR_RETURN(uint64_t src_ino, ResolvePath(*src, p));
  const size_t slash = p.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : p.substr(0, slash);
  const std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
  DBFS_ASSIGN_OR_RETURN(uint64_t id, BeginInternalTx(c));
  Caller ct = c;
  ct.tx = id;
  Status body = [&]() -> Status {
    std::map<uint64_t, uint64_t> made;
    if (name.empty() || src_ino == kRootIno) {
      return ReconcileDir(ct, *src, kRootIno, kRootIno, &made);
    }
    uint64_t parent;
    {
      DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(ct, {}));
      auto r = ResolvePath(op.t(), dir);
      if (!r.ok()) {
        return Status::NotFound("the directory of " + p + " does not exist now: " +
                                r.status().message());
      }
      parent = *r;
    }
    return RestoreNode(ct, *src, src_ino, parent, name, &made);
  }();
  spdlog::info("restore of {} at csn {} by uid {}: {}", p.empty() ? "/" : p, at, c.uid,
               body.ok() ? "ok" : body.ToString());
  return FinishInternalTx(c, id, keep, body);
}

Result<TxOutcome> Engine::Rollback(const Caller& c, const std::string& snapshot, bool keep) {
  if (c.uid != 0) return Status(Code::kPermission, "only root may roll the volume back");
  DBFS_ASSIGN_OR_RETURN(auto snaps, store_->ListSnapshots());
  for (const auto& s : snaps) {
    if (s.name == snapshot) return Restore(c, "/", s.csn, keep);
  }
  return Status::NotFound("no snapshot '" + snapshot + "'");
}

Result<TxOutcome> Engine::Revert(const Caller& c, uint64_t csn, bool keep) {
  if (c.uid != 0) return Status(Code::kPermission, "only root may revert commits");
  std::optional<mvcc::CommitRecord> rec;
  std::vector<mvcc::CommitRecord> later;
  DBFS_RETURN_IF_ERROR(
      store_->ScanCommits(csn - 1, mvcc::kMaxCsn, false, [&](const mvcc::CommitRecord& r) {
        if (r.csn == csn) {
          rec = r;
        } else {
          later.push_back(r);
        }
        return true;
      }));
  if (!rec) return Status::NotFound("the commit log no longer has csn " + std::to_string(csn));
  DBFS_ASSIGN_OR_RETURN(auto before, ReadAt(csn - 1));
  DBFS_ASSIGN_OR_RETURN(auto after, ReadAt(csn));
  // The keys to put back: the commit's, and those of later reclamations of
  // inodes it unlinked (reverting an rm brings the file's data back).
  std::set<std::pair<int, std::string>> keys, reclaim_keys;
  std::set<uint64_t> orphaned;
  for (const auto& k : rec->keys) {
    keys.emplace(static_cast<int>(k.table), k.key);
    if (k.table == Table::kOrphans && k.key.size() == 8) orphaned.insert(GetBE64(k.key.data()));
  }
  std::set<uint64_t> reclaim_csns;
  for (const auto& r : later) {
    if (!(r.meta.flags & mvcc::kCommitReclaim)) continue;
    bool ours = true;
    for (const auto& k : r.keys) ours &= k.key.size() >= 8 && orphaned.count(GetBE64(k.key.data()));
    if (!ours) continue;
    reclaim_csns.insert(r.csn);
    for (const auto& k : r.keys) {
      keys.emplace(static_cast<int>(k.table), k.key);
      reclaim_keys.emplace(static_cast<int>(k.table), k.key);
    }
  }
  DBFS_ASSIGN_OR_RETURN(uint64_t id, BeginInternalTx(c));
  std::shared_ptr<ExplicitTx> tx = TxById(id);
  Status body = [&]() -> Status {
    std::unique_lock lock(tx->mu);
    Transaction& t = *tx->txn;
    // Nothing after the commit may have touched its keys (except the
    // reclamations above, relocations and atime updates).
    for (const auto& r : later) {
      if (reclaim_csns.count(r.csn) || (r.meta.flags & (mvcc::kCommitSameContent | mvcc::kCommitAtime))) {
        continue;
      }
      for (const auto& k : r.keys) {
        if (!keys.count({static_cast<int>(k.table), k.key})) continue;
        // A directory record changed as the parent of later entry operations:
        // merged below, not a conflict.
        if (k.table == Table::kInodes) {
          DBFS_ASSIGN_OR_RETURN(auto v, after->Get(Table::kInodes, k.key));
          if (v) {
            DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
            if (n.IsDir()) continue;
          }
        }
        Transaction now(store_.get());
        return Status(Code::kConflict,
                      fmt::format("csn {} changed {} after csn {}", r.csn,
                                  PathOf(now, mvcc::KeyRef{k.table, k.key}, nullptr), csn));
      }
    }
    for (const auto& [ti, key] : keys) {
      const Table table = static_cast<Table>(ti);
      DBFS_ASSIGN_OR_RETURN(auto old, before->Get(table, key));
      if (key.size() >= 8) {
        const uint64_t ino = GetBE64(key.data());
        if (tx->inodes.insert(ino).second) {
          std::lock_guard g(hot_mu_);
          ++hot_[ino];
        }
        if (table == Table::kDirents) {
          tx->entries.emplace(ino, key.substr(8, key.size() - 9));
        }
      }
      if (table == Table::kInodes) {
        DBFS_ASSIGN_OR_RETURN(auto was, after->Get(table, key));
        DBFS_ASSIGN_OR_RETURN(auto cur, t.Get(table, key));
        if (old && was && cur) {
          DBFS_ASSIGN_OR_RETURN(Inode o, DecodeInode(*old));
          DBFS_ASSIGN_OR_RETURN(Inode w, DecodeInode(*was));
          DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*cur));
          if (o.IsDir() && w.IsDir()) {
            // Undo the commit's change of the link count; keep later ones.
            n.nlink = n.nlink + o.nlink - w.nlink;
            if (o.mode != w.mode || o.uid != w.uid || o.gid != w.gid) {
              n.mode = o.mode;
              n.uid = o.uid;
              n.gid = o.gid;
            }
            n.mtime = n.ctime = Now();
            t.Put(table, key, EncodeInode(n));
            continue;
          }
          o.ctime = Now();
          t.Put(table, key, EncodeInode(o));
          continue;
        }
      }
      if (old) {
        t.Put(table, key, *old);
      } else {
        t.Delete(table, key);
      }
    }
    return Status::Ok();
  }();
  if (!body.ok() && body.code() == Code::kConflict) {
    AbortTx(c, id, "revert conflict").status().IgnoreError();
    TxOutcome o;
    o.kind = TxOutcome::Kind::kConflict;
    o.detail = body.message();
    return o;
  }
  spdlog::info("revert of csn {} by uid {}: {}", csn, c.uid, body.ok() ? "ok" : body.ToString());
  return FinishInternalTx(c, id, keep, body);
}

}  // namespace dbfs
