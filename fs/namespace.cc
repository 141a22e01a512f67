// The namespace: lookup, create (mknod, mkdir, symlink), link, unlink, rmdir,
// rename. Entry operations change the parent directory's record (nlink,
// times); inside explicit transactions those changes are merged at commit
// (fs/directory_deltas.cc) rather than validated.
#include <linux/fs.h>

#include <map>

#include "fs/engine.h"

namespace dbfs {

Result<Attr> Engine::Lookup(const Caller& c, uint64_t parent, std::string_view name) {
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

Result<Attr> Engine::MakeNode(const Caller& c, uint64_t parent, std::string_view name,
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

Result<std::string> Engine::Readlink(const Caller& c, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (!S_ISLNK(n.mode)) return Status::Invalid("not a symlink");
  return n.target;
}

Status Engine::Remove(const Caller& c, uint64_t parent, std::string_view name, bool dir) {
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

Status Engine::Rename(const Caller& c, uint64_t p, std::string_view n, uint64_t np,
                      std::string_view nn, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
    return Status::Invalid("unsupported rename flags");
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
        if (sdir) {
          s.parent = np;
          --in[p].nlink;
          ++in[np].nlink;
        }
        if (ddir) {
          d.parent = p;
          --in[np].nlink;
          ++in[p].nlink;
        }
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

Result<Attr> Engine::Link(const Caller& c, uint64_t ino, uint64_t np, std::string_view nn) {
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

}  // namespace dbfs
