// Directory listings: opendir materializes the listing from one snapshot, so
// a listing never shows duplicates or misses entries present throughout,
// even under concurrent changes; rewinddir takes a fresh one.
#include "fs/engine.h"

namespace dbfs {

Status Engine::ListDir(const Caller& c, uint64_t ino, std::vector<DirEntry>* out) {
  // The listing is materialized from one snapshot, so entries stay stable
  // (no duplicates, no misses) under concurrent changes. (A --lock
  // transaction does not lock a directory it lists: its record stands for
  // the listing in unlocked_reads.)
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
  out->clear();
  out->push_back(DirEntry{".", ino, S_IFDIR});
  out->push_back(DirEntry{"..", n.parent ? n.parent : kRootIno, S_IFDIR});
  Status bad;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kDirents, InoKey(ino), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view v) {
                                DirEntry e;
                                if (k.size() < 10 || !DecodeDirent(v, &e.ino, &e.type)) {
                                  bad = Status::Corruption("malformed directory entry");
                                  return false;
                                }
                                e.name = std::string(k.substr(8, k.size() - 9));
                                out->push_back(std::move(e));
                                return true;
                              }));
  return bad;
}

Result<uint64_t> Engine::OpenDir(const Caller& c, uint64_t ino) {
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->dir = true;
  DBFS_RETURN_IF_ERROR(ListDir(c, ino, &h->entries));
  std::lock_guard g(handles_mu_);
  const uint64_t fh = next_fh_++;
  handles_.emplace(fh, std::move(h));
  return fh;
}

Status Engine::RewindDir(const Caller& c, uint64_t ino, uint64_t fh) {
  {
    std::lock_guard g(handles_mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end() || !it->second->dir) return Status(Code::kBadFd, "unknown directory handle");
    // Not read since it was taken (opendir just now): already current.
    if (!it->second->entries_read) return Status::Ok();
  }
  std::vector<DirEntry> fresh;
  DBFS_RETURN_IF_ERROR(ListDir(c, ino, &fresh));
  std::lock_guard g(handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end()) return Status(Code::kBadFd, "unknown directory handle");
  it->second->entries = std::move(fresh);
  it->second->entries_read = false;
  return Status::Ok();
}

const std::vector<DirEntry>* Engine::DirEntries(uint64_t fh) {
  std::lock_guard g(handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || !it->second->dir) return nullptr;
  it->second->entries_read = true;
  return &it->second->entries;
}

Status Engine::ReleaseDir(uint64_t fh) {
  std::lock_guard g(handles_mu_);
  handles_.erase(fh);
  return Status::Ok();
}

}  // namespace dbfs
