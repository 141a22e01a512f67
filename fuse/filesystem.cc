// POSIX semantics over DBFS transactions. See filesystem.h.
//
// Pattern of every mutating operation:
//   1. validate arguments (names, flags);
//   2. lock the inodes it will change (InodeLocks; ascending stripe order);
//   3. open a Transaction (its snapshot now includes the latest state of the
//      locked inodes), read, check POSIX rules, write;
//   4. commit (durable under -o sync), unlock.
// Reads lock nothing: they read a snapshot.
#include "fuse/filesystem.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "fuse/inode_format.h"
#include "mvcc/store.h"
#include "mvcc/volume_lock.h"
#include "txn/inode_locks.h"
#include "txn/transaction.h"

namespace dbfs {

using mvcc::ChunkKey;
using mvcc::InoKey;
using mvcc::NameKey;
using mvcc::Table;
using txn::Transaction;

namespace {

constexpr size_t kMaxSlicesPerChunk = 32;
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

// Inserts `n` into a chunk's slice list, cutting what it overwrites.
// Returns the number of bytes that were holes before.
uint64_t InsertSlice(SliceList* l, const Slice& n) {
  SliceList out;
  out.reserve(l->size() + 2);
  uint64_t overlap = 0;
  for (const Slice& s : *l) {
    if (s.end() <= n.off || s.off >= n.end()) {
      out.push_back(s);
      continue;
    }
    overlap += std::min(s.end(), n.end()) - std::max(s.off, n.off);
    if (s.off < n.off) out.push_back(Slice{s.off, n.off - s.off, s.segment, s.data});
    if (s.end() > n.end()) {
      out.push_back(Slice{n.end(), s.end() - n.end(), s.segment, s.data + (n.end() - s.off)});
    }
  }
  out.push_back(n);
  std::sort(out.begin(), out.end(), [](const Slice& a, const Slice& b) { return a.off < b.off; });
  *l = std::move(out);
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

class FilesystemImpl {
 public:
  FilesystemImpl(VolumeLock lock, std::unique_ptr<mvcc::Store> store, FsOptions opts)
      : lock_(std::move(lock)), store_(std::move(store)), opts_(std::move(opts)),
        chunk_(store_->chunk_size()) {}

  Status Close();
  Status ReclaimAllOrphans();

  Result<Attr> Lookup(const Caller& c, uint64_t parent, std::string_view name);
  void Forget(uint64_t ino, uint64_t n);
  void AddLookup(uint64_t ino);
  Result<Attr> GetAttr(uint64_t ino);
  Result<Attr> SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in);
  Result<Attr> MakeNode(const Caller& c, uint64_t parent, std::string_view name, uint32_t mode,
                        uint64_t rdev, std::string_view target);
  Result<std::string> Readlink(uint64_t ino);
  Status Remove(const Caller& c, uint64_t parent, std::string_view name, bool dir);
  Status Rename(const Caller& c, uint64_t p, std::string_view n, uint64_t np,
                std::string_view nn, unsigned flags);
  Result<Attr> Link(const Caller& c, uint64_t ino, uint64_t np, std::string_view nn);
  Status Access(const Caller& c, uint64_t ino, int mask);
  Result<uint64_t> Open(const Caller& c, uint64_t ino, int flags);
  Result<Filesystem::Created> Create(const Caller& c, uint64_t parent, std::string_view name,
                                     uint32_t mode, int flags);
  Result<size_t> Read(uint64_t ino, uint64_t fh, uint64_t off, size_t size, char* buf);
  Result<size_t> Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off, const char* data,
                       size_t size);
  Status Release(uint64_t ino, uint64_t fh);
  Status Fsync();
  Status Fallocate(const Caller& c, uint64_t ino, int mode, uint64_t off, uint64_t len);
  Result<uint64_t> Lseek(uint64_t ino, uint64_t off, int whence);
  Result<size_t> CopyFileRange(const Caller& c, uint64_t in, uint64_t fh_in, uint64_t off_in,
                               uint64_t out, uint64_t fh_out, uint64_t off_out, size_t len);
  Result<uint64_t> OpenDir(const Caller& c, uint64_t ino);
  const std::vector<DirEntry>* DirEntries(uint64_t fh);
  Status ReleaseDir(uint64_t fh);
  Status SetXattr(const Caller& c, uint64_t ino, std::string_view name, std::string_view value,
                  int flags);
  Result<std::string> GetXattr(uint64_t ino, std::string_view name);
  Result<std::string> ListXattr(uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, std::string_view name);
  Result<FsStat> StatFs();
  FsStats Stats() const;
  std::string StatsText() const;

  mvcc::Store* store() { return store_.get(); }
  void TEST_Abandon() {
    store_->TEST_Abandon();
    closed_ = true;  // destructors now release memory, locks and fds only
  }

 private:
  struct Handle {
    uint64_t ino = 0;
    int flags = 0;
    bool dir = false;
    std::vector<DirEntry> entries;
  };
  struct Refs {
    uint64_t lookups = 0;
    uint64_t opens = 0;
    bool orphan = false;  // nlink reached 0; reclaim when unreferenced
    bool reclaiming = false;
  };

  bool Durable(int flags = 0) const { return opts_.sync || (flags & (O_SYNC | O_DSYNC)); }

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
  void Unref(uint64_t ino, uint64_t lookups, uint64_t opens);
  void Reclaim(uint64_t ino);

  VolumeLock lock_;
  std::unique_ptr<mvcc::Store> store_;
  FsOptions opts_;
  const uint64_t chunk_;
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
};

Result<Inode> FilesystemImpl::LoadInode(Transaction& t, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  return DecodeInode(*v);
}

Result<Inode> FilesystemImpl::LoadDir(Transaction& t, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
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

void FilesystemImpl::MarkOrphan(uint64_t ino) {
  bool reclaim = false;
  {
    std::lock_guard g(refs_mu_);
    Refs& r = refs_[ino];
    r.orphan = true;
    if (r.lookups == 0 && r.opens == 0 && !r.reclaiming) {
      r.reclaiming = true;
      reclaim = true;
    }
  }
  if (reclaim) Reclaim(ino);
}

void FilesystemImpl::Unref(uint64_t ino, uint64_t lookups, uint64_t opens) {
  bool reclaim = false;
  {
    std::lock_guard g(refs_mu_);
    auto it = refs_.find(ino);
    if (it == refs_.end()) return;
    Refs& r = it->second;
    r.lookups -= std::min(r.lookups, lookups);
    r.opens -= std::min(r.opens, opens);
    if (r.lookups == 0 && r.opens == 0) {
      if (r.orphan && !r.reclaiming) {
        r.reclaiming = true;
        reclaim = true;
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
    auto guard = locks_.Lock({ino});
    Transaction t(store_.get());
    auto n = LoadInode(t, ino);
    if (!n.ok()) {
      if (n.status().code() == Code::kNotFound) {
        t.Delete(Table::kOrphans, InoKey(ino));
        return Commit(t).status();
      }
      return n.status();
    }
    if (n->nlink != 0) return Status::Ok();  // relinked meanwhile (linkat)
    DBFS_RETURN_IF_ERROR(DeleteInodeData(t, ino));
    t.Delete(Table::kInodes, InoKey(ino));
    t.Delete(Table::kOrphans, InoKey(ino));
    return Commit(t).status();
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
    Transaction t(store_.get());
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kOrphans, "", "", [&](std::string_view k, std::string_view) {
      if (k.size() == 8) inos.push_back(GetBE64(k.data()));
      return true;
    }));
  }
  for (uint64_t ino : inos) Reclaim(ino);
  if (!inos.empty()) spdlog::info("reclaimed {} orphaned inodes", inos.size());
  return Status::Ok();
}

// ---- namespace ----

Result<Attr> FilesystemImpl::Lookup(const Caller&, uint64_t parent, std::string_view name) {
  if (name.size() > kNameMax) return Status(Code::kNameTooLong, "name too long");
  Transaction t(store_.get());
  uint64_t ino;
  if (name == ".") {
    ino = parent;
  } else if (name == "..") {
    DBFS_ASSIGN_OR_RETURN(Inode p, LoadInode(t, parent));
    ino = p.parent ? p.parent : kRootIno;
  } else {
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
    if (!de) return Status::NotFound("no such entry");
    ino = de->first;
  }
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  AddLookup(ino);
  return ToAttr(ino, n);
}

Result<Attr> FilesystemImpl::GetAttr(uint64_t ino) {
  Transaction t(store_.get());
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
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
  auto guard = locks_.Lock({ino});
  Transaction t(store_.get());
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
  DBFS_RETURN_IF_ERROR(Commit(t).status());
  return ToAttr(ino, n);
}

Result<Attr> FilesystemImpl::MakeNode(const Caller& c, uint64_t parent, std::string_view name,
                                      uint32_t mode, uint64_t rdev, std::string_view target) {
  DBFS_RETURN_IF_ERROR(CheckName(name));
  if (S_ISLNK(mode) && (target.empty() || target.size() > 4095)) {
    return Status(Code::kNameTooLong, "symlink target too long");
  }
  auto guard = locks_.Lock({parent});
  Transaction t(store_.get());
  DBFS_ASSIGN_OR_RETURN(Inode p, LoadDir(t, parent));
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
  n.parent = S_ISDIR(mode) ? parent : 0;
  n.atime = n.mtime = n.ctime = n.btime = now;
  n.target = std::string(target);
  const uint64_t ino = store_->AllocateIno();
  StoreInode(t, ino, n);
  t.Put(Table::kDirents, NameKey(parent, name), EncodeDirent(ino, mode & S_IFMT));
  if (S_ISDIR(mode)) ++p.nlink;
  p.mtime = p.ctime = now;
  StoreInode(t, parent, p);
  DBFS_RETURN_IF_ERROR(Commit(t).status());
  AddLookup(ino);
  return ToAttr(ino, n);
}

Result<std::string> FilesystemImpl::Readlink(uint64_t ino) {
  Transaction t(store_.get());
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (!S_ISLNK(n.mode)) return Status::Invalid("not a symlink");
  return n.target;
}

Status FilesystemImpl::Remove(const Caller&, uint64_t parent, std::string_view name, bool dir) {
  if (name == ".") return Status::Invalid("cannot remove '.'");
  if (name == "..") return Status(Code::kNotEmpty, "cannot remove '..'");
  DBFS_RETURN_IF_ERROR(CheckName(name));
  for (;;) {
    // Find the child without locks, then lock parent + child and re-check.
    uint64_t child;
    {
      Transaction t(store_.get());
      DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
      if (!de) return Status::NotFound("no such entry");
      child = de->first;
    }
    auto guard = locks_.Lock({parent, child});
    Transaction t(store_.get());
    DBFS_ASSIGN_OR_RETURN(Inode p, LoadDir(t, parent));
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, parent, name));
    if (!de) return Status::NotFound("no such entry");
    if (de->first != child) continue;  // replaced meanwhile: retry
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, child));
    const timespec now = Now();
    if (dir) {
      if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
      DBFS_ASSIGN_OR_RETURN(bool empty, DirIsEmpty(t, child));
      if (!empty) return Status(Code::kNotEmpty, "directory not empty");
      n.nlink = 0;
      --p.nlink;
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
    DBFS_RETURN_IF_ERROR(Commit(t).status());
    guard.Release();
    if (n.nlink == 0) MarkOrphan(child);
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

Status FilesystemImpl::Rename(const Caller&, uint64_t p, std::string_view n, uint64_t np,
                              std::string_view nn, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Invalid("unsupported rename flags");
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return Status::Invalid("bad flags");
  DBFS_RETURN_IF_ERROR(CheckName(n));
  DBFS_RETURN_IF_ERROR(CheckName(nn));
  for (;;) {
    uint64_t src, dst = 0;
    uint32_t src_type;
    {
      Transaction t(store_.get());
      DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, p, n));
      if (!de) return Status::NotFound("no such entry");
      src = de->first;
      src_type = de->second;
      DBFS_ASSIGN_OR_RETURN(auto dd, LoadDirent(t, np, nn));
      if (dd) dst = dd->first;
    }
    std::unique_lock<std::mutex> tree_lock;
    if (p != np) tree_lock = std::unique_lock(dir_rename_mu_);
    auto guard = locks_.Lock({p, np, src, dst});
    Transaction t(store_.get());
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
    for (uint64_t i : {p, np, src, dst}) {
      if (i == 0 || in.count(i)) continue;
      DBFS_ASSIGN_OR_RETURN(Inode x, LoadInode(t, i));
      in.emplace(i, std::move(x));
    }
    if (!in[p].IsDir() || !in[np].IsDir()) return Status(Code::kNotDir, "not a directory");
    if (in[np].nlink == 0) return Status::NotFound("target directory was removed");
    Inode& s = in[src];
    const bool sdir = s.IsDir();
    const bool ddir = dst && in[dst].IsDir();
    // A directory may not move below itself.
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
        s.parent = np;
        --in[p].nlink;
        ++in[np].nlink;
      }
      if (!orphan) dst = 0;
    }
    s.ctime = now;
    in[p].mtime = in[p].ctime = now;
    in[np].mtime = in[np].ctime = now;
    for (auto& [i, x] : in) StoreInode(t, i, x);
    DBFS_RETURN_IF_ERROR(Commit(t).status());
    guard.Release();
    if (dst && !(flags & RENAME_EXCHANGE)) MarkOrphan(dst);
    return Status::Ok();
  }
}

Result<Attr> FilesystemImpl::Link(const Caller&, uint64_t ino, uint64_t np, std::string_view nn) {
  DBFS_RETURN_IF_ERROR(CheckName(nn));
  auto guard = locks_.Lock({ino, np});
  Transaction t(store_.get());
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (n.IsDir()) return Status(Code::kPermission, "hard links to directories are not allowed");
  if (n.nlink == 0) return Status::NotFound("file was removed");
  if (n.nlink >= kMaxLinks) return Status(Code::kTooManyLinks, "too many links");
  DBFS_ASSIGN_OR_RETURN(Inode p, LoadDir(t, np));
  DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, np, nn));
  if (de) return Status::Exists("entry exists");
  const timespec now = Now();
  ++n.nlink;
  n.ctime = now;
  p.mtime = p.ctime = now;
  t.Put(Table::kDirents, NameKey(np, nn), EncodeDirent(ino, n.mode & S_IFMT));
  StoreInode(t, ino, n);
  StoreInode(t, np, p);
  DBFS_RETURN_IF_ERROR(Commit(t).status());
  AddLookup(ino);
  return ToAttr(ino, n);
}

Status FilesystemImpl::Access(const Caller& c, uint64_t ino, int mask) {
  Transaction t(store_.get());
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

Result<uint64_t> FilesystemImpl::Open(const Caller& c, uint64_t ino, int flags) {
  {
    Transaction t(store_.get());
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    if (n.IsDir() && (flags & O_ACCMODE) != O_RDONLY) return Status(Code::kIsDir, "is a directory");
  }
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    SetAttrIn in;
    in.valid = SetAttrIn::kSize;
    in.size = 0;
    Transaction probe(store_.get());
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(probe, ino));
    if (n.IsReg()) DBFS_RETURN_IF_ERROR(SetAttr(c, ino, in).status());
  }
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->flags = flags;
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
  auto fh = Open(c, made->ino, flags & ~O_TRUNC);
  if (!fh.ok()) {
    Forget(made->ino, 1);
    return fh.TakeStatus();
  }
  return Filesystem::Created{*made, *fh};
}

Status FilesystemImpl::ReadRange(Transaction& t, uint64_t ino, uint64_t off, size_t size, char* buf) {
  std::memset(buf, 0, size);
  const uint64_t end = off + size;
  // One scan over the chunks the range touches.
  std::vector<std::pair<uint64_t, SliceList>> chunks;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, off / chunk_),
                              ChunkKey(ino, (end - 1) / chunk_ + 1),
                              [&](std::string_view k, std::string_view v) {
                                auto l = DecodeSlices(v);
                                if (!l.ok()) return false;
                                chunks.emplace_back(GetBE64(k.data() + 8), std::move(*l));
                                return true;
                              }));
  for (const auto& [chunk, l] : chunks) {
    const uint64_t base = chunk * chunk_;
    for (const Slice& s : l) {
      uint64_t a = std::max<uint64_t>(base + s.off, off);
      uint64_t b = std::min<uint64_t>(base + s.end(), end);
      if (a >= b) continue;
      mvcc::DataRef ref{s.segment, s.data, s.len};
      DBFS_RETURN_IF_ERROR(store_->ReadData(ref, a - (base + s.off), b - a, buf + (a - off)));
    }
  }
  return Status::Ok();
}

void FilesystemImpl::MaybeUpdateAtime(uint64_t ino) {
  if (opts_.noatime) return;
  Status st = [&]() -> Status {
    auto guard = locks_.Lock({ino});
    Transaction t(store_.get());
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    const timespec now = Now();
    // relatime: only when atime is not newer than mtime/ctime, or a day old.
    if (!TimeLE(n.atime, n.mtime) && !TimeLE(n.atime, n.ctime) &&
        now.tv_sec - n.atime.tv_sec < kRelatimeWindow) {
      return Status::Ok();
    }
    n.atime = now;
    StoreInode(t, ino, n);
    return Commit(t).status();
  }();
  if (!st.ok() && st.code() != Code::kNotFound) spdlog::warn("atime update of {} failed: {}", ino, st.ToString());
}

Result<size_t> FilesystemImpl::Read(uint64_t ino, uint64_t, uint64_t off, size_t size, char* buf) {
  bool touch_atime = false;
  size_t n_read = 0;
  {
    Transaction t(store_.get());
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
    if (off < n.size && size > 0) {
      n_read = static_cast<size_t>(std::min<uint64_t>(size, n.size - off));
      DBFS_RETURN_IF_ERROR(ReadRange(t, ino, off, n_read, buf));
    }
    touch_atime = !opts_.noatime &&
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
                                     const char* data, size_t size) {
  int flags = 0;
  {
    std::lock_guard g(handles_mu_);
    auto it = handles_.find(fh);
    if (it != handles_.end()) flags = it->second->flags;
  }
  if (size == 0) return size_t{0};
  if (off + size > kMaxFileSize || off + size < off) return Status(Code::kTooBig, "file too large");
  auto guard = locks_.Lock({ino});
  Transaction t(store_.get());
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
  DBFS_RETURN_IF_ERROR(Commit(t, flags).status());
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

Status FilesystemImpl::Fsync() {
  fsync_calls_.fetch_add(1, std::memory_order_relaxed);
  // Every commit is in the WAL in order; syncing it to its end makes this
  // file's (and everything earlier's) changes durable. Group commit shares
  // the fdatasync with concurrent callers.
  return store_->SyncAll();
}

Status FilesystemImpl::Fallocate(const Caller&, uint64_t ino, int mode, uint64_t off, uint64_t len) {
  const int supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~supported) return Status::NotSupported("fallocate mode not supported");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
    return Status::NotSupported("PUNCH_HOLE requires KEEP_SIZE");
  }
  if (len == 0) return Status::Invalid("zero length");
  if (off + len > kMaxFileSize || off + len < off) return Status(Code::kTooBig, "file too large");
  auto guard = locks_.Lock({ino});
  Transaction t(store_.get());
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
  return Commit(t).status();
}

Result<uint64_t> FilesystemImpl::Lseek(uint64_t ino, uint64_t off, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Invalid("bad whence");
  Transaction t(store_.get());
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
    DBFS_ASSIGN_OR_RETURN(size_t got, Read(in, fh_in, off_in + done, want, buf.data()));
    if (got == 0) break;
    DBFS_ASSIGN_OR_RETURN(size_t put, Write(c, out, fh_out, off_out + done, buf.data(), got));
    done += put;
    if (got < want) break;
  }
  return done;
}

// ---- directories ----

Result<uint64_t> FilesystemImpl::OpenDir(const Caller&, uint64_t ino) {
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->dir = true;
  {
    // The listing is materialized at opendir from one snapshot, so entries
    // stay stable (no duplicates, no misses) under concurrent changes.
    Transaction t(store_.get());
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
  auto guard = locks_.Lock({ino});
  Transaction t(store_.get());
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
  return Commit(t).status();
}

Result<std::string> FilesystemImpl::GetXattr(uint64_t ino, std::string_view name) {
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  // Virtual attributes of the root: the `dbfs` tool's read-only window into
  // the daemon (they are never listed and cannot be set).
  if (ino == kRootIno && name == kStatsXattr) return StatsText();
  Transaction t(store_.get());
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kXattrs, NameKey(ino, name)));
  if (!v) return Status(Code::kNoData, "no such attribute");
  return std::move(*v);
}

Result<std::string> FilesystemImpl::ListXattr(uint64_t ino) {
  Transaction t(store_.get());
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
  auto guard = locks_.Lock({ino});
  Transaction t(store_.get());
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  std::string key = NameKey(ino, name);
  DBFS_ASSIGN_OR_RETURN(auto old, t.Get(Table::kXattrs, key));
  if (!old) return Status(Code::kNoData, "no such attribute");
  t.Delete(Table::kXattrs, std::move(key));
  n.ctime = Now();
  StoreInode(t, ino, n);
  return Commit(t).status();
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
  line("recovery_commits_replayed", store_->recovery().commits_replayed);
  line("recovery_micros", static_cast<uint64_t>(store_->recovery().millis * 1000));
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
  DBFS_ASSIGN_OR_RETURN(VolumeLock lock, VolumeLock::AcquireWhenUnmounted(volume_dir, "dbfs-mount"));
  mvcc::StoreOptions so;
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
Result<Attr> Filesystem::GetAttr(uint64_t ino) { return impl_->GetAttr(ino); }
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
Result<std::string> Filesystem::Readlink(uint64_t ino) { return impl_->Readlink(ino); }
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
Result<uint64_t> Filesystem::Open(const Caller& c, uint64_t ino, int flags) {
  return impl_->Open(c, ino, flags);
}
Result<Filesystem::Created> Filesystem::Create(const Caller& c, uint64_t parent,
                                               std::string_view name, uint32_t mode, int flags) {
  return impl_->Create(c, parent, name, mode, flags);
}
Result<size_t> Filesystem::Read(uint64_t ino, uint64_t fh, uint64_t off, size_t size, char* buf) {
  return impl_->Read(ino, fh, off, size, buf);
}
Result<size_t> Filesystem::Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off,
                                 const char* data, size_t size) {
  return impl_->Write(c, ino, fh, off, data, size);
}
Status Filesystem::Flush(uint64_t, uint64_t) { return Status::Ok(); }
Status Filesystem::Release(uint64_t ino, uint64_t fh) { return impl_->Release(ino, fh); }
Status Filesystem::Fsync(uint64_t, uint64_t, bool) { return impl_->Fsync(); }
Status Filesystem::Fallocate(const Caller& c, uint64_t ino, uint64_t, int mode, uint64_t off,
                             uint64_t len) {
  return impl_->Fallocate(c, ino, mode, off, len);
}
Result<uint64_t> Filesystem::Lseek(uint64_t ino, uint64_t, uint64_t off, int whence) {
  return impl_->Lseek(ino, off, whence);
}
Result<size_t> Filesystem::CopyFileRange(const Caller& c, uint64_t ino_in, uint64_t fh_in,
                                         uint64_t off_in, uint64_t ino_out, uint64_t fh_out,
                                         uint64_t off_out, size_t len) {
  return impl_->CopyFileRange(c, ino_in, fh_in, off_in, ino_out, fh_out, off_out, len);
}
Result<uint64_t> Filesystem::OpenDir(const Caller& c, uint64_t ino) { return impl_->OpenDir(c, ino); }
const std::vector<DirEntry>* Filesystem::DirEntries(uint64_t fh) { return impl_->DirEntries(fh); }
Status Filesystem::ReleaseDir(uint64_t, uint64_t fh) { return impl_->ReleaseDir(fh); }
Status Filesystem::FsyncDir(uint64_t, uint64_t, bool) { return impl_->Fsync(); }
Status Filesystem::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                            std::string_view value, int flags) {
  return impl_->SetXattr(c, ino, name, value, flags);
}
Result<std::string> Filesystem::GetXattr(uint64_t ino, std::string_view name) {
  return impl_->GetXattr(ino, name);
}
Result<std::string> Filesystem::ListXattr(uint64_t ino) { return impl_->ListXattr(ino); }
Status Filesystem::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  return impl_->RemoveXattr(c, ino, name);
}
Result<FsStat> Filesystem::StatFs() { return impl_->StatFs(); }
Status Filesystem::SyncAll() { return impl_->Fsync(); }
FsStats Filesystem::Stats() const { return impl_->Stats(); }
void Filesystem::TEST_Abandon() { impl_->TEST_Abandon(); }

}  // namespace dbfs
