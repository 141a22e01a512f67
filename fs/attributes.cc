// Attributes: getattr, setattr (chmod, chown, truncate, utimes), access(2),
// and statfs.
#include "fs/engine.h"

namespace dbfs {

Result<Attr> Engine::GetAttr(const Caller& c, uint64_t ino) {
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

Result<Attr> Engine::SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in) {
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
  if (in.valid & SetAttrIn::kAtimeNow)
    n.atime = now;
  else if (in.valid & SetAttrIn::kAtime)
    n.atime = in.atime;
  if (in.valid & SetAttrIn::kMtimeNow)
    n.mtime = now;
  else if (in.valid & SetAttrIn::kMtime)
    n.mtime = in.mtime;
  n.ctime = (in.valid & SetAttrIn::kCtime) ? in.ctime : now;
  StoreInode(t, ino, n);
  DBFS_RETURN_IF_ERROR(Finish(op));
  return ToAttr(ino, n);
}

Status Engine::Access(const Caller& c, uint64_t ino, int mask) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (mask == F_OK) return Status::Ok();
  if (c.uid == 0) {
    // root: read/write always; execute if any execute bit is set (or a dir).
    if ((mask & X_OK) && !n.IsDir() && !(n.mode & 0111))
      return Status(Code::kAccess, "not executable");
    return Status::Ok();
  }
  uint32_t bits;
  if (c.uid == n.uid)
    bits = (n.mode >> 6) & 7;
  else if (c.gid == n.gid)
    bits = (n.mode >> 3) & 7;
  else
    bits = n.mode & 7;
  if ((mask & bits) != static_cast<uint32_t>(mask))
    return Status(Code::kAccess, "permission denied");
  return Status::Ok();
}

Result<FsStat> Engine::StatFs() {
  DBFS_ASSIGN_OR_RETURN(mvcc::Space space, store_->StatSpace());
  FsStat s;
  s.block_size = 4096;
  s.blocks = space.total_bytes / s.block_size;
  s.blocks_free = space.free_bytes / s.block_size;
  s.blocks_avail = space.avail_bytes / s.block_size;
  // Inodes cost only LMDB space: report as many free as there are free blocks.
  s.files = store_->next_ino() + s.blocks_free;
  s.files_free = s.blocks_free;
  return s;
}

}  // namespace dbfs
