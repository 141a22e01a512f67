// The engine's lifecycle, shared helpers and table access.
#include "fs/engine.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace dbfs {

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

Engine::Engine(std::unique_ptr<mvcc::Store> store, FsOptions opts)
    : store_(std::move(store)),
      opts_(std::move(opts)),
      chunk_(store_->info().chunk_size),
      checkpointer_(store_.get(), CheckpointOptions{.barrier_wait = std::chrono::milliseconds(
                                                        opts_.checkpoint_barrier_ms)}) {
  store_->SetHistoryWindow(opts_.history_window_s * 1000000000ull);
  store_->SetRemoteChangeListener(
      [this](const std::vector<mvcc::KeyRef>& keys) { OnRemoteChanges(keys); });
  reaper_ = std::thread([this] { ReaperLoop(); });
}

// Other processes sharing the volume committed these keys: the kernel drops
// what it caches about them (entries, attributes, pages) now, instead of
// when its timeouts expire.
void Engine::OnRemoteChanges(const std::vector<mvcc::KeyRef>& keys) {
  std::set<uint64_t> inodes;
  std::set<std::pair<uint64_t, std::string>> entries;
  for (const mvcc::KeyRef& k : keys) {
    if (k.key.size() < 8) continue;
    const uint64_t ino = GetBE64(k.key.data());
    switch (k.table) {
      case Table::kDirents:
        if (k.key.size() > 9 && k.key.back() == '\0') {
          entries.emplace(ino, k.key.substr(8, k.key.size() - 9));
        }
        inodes.insert(ino);  // the directory's listing and times
        break;
      case Table::kInodes:
      case Table::kExtents:
      case Table::kXattrs:
        inodes.insert(ino);
        break;
      case Table::kOrphans:
        break;
    }
  }
  std::function<void(uint64_t, bool)> inval;
  Filesystem::EntryInvalidator inval_entry;
  {
    std::lock_guard g(hot_mu_);
    inval = invalidate_;
    inval_entry = invalidate_entry_;
  }
  if (inval_entry && !entries.empty()) inval_entry(entries);
  if (inval) {
    for (uint64_t ino : inodes) inval(ino, /*sync=*/false);
  }
}

Engine::~Engine() {
  store_->SetRemoteChangeListener(nullptr);
  checkpointer_.Stop();
  StopReaper();
}

void Engine::StartBackgroundCheckpoints() {
  if (opts_.read_only) return;
  checkpointer_.Start(opts_.checkpoint_bytes, std::chrono::seconds(opts_.checkpoint_interval_s));
}

void Engine::TEST_Abandon() {
  store_->SetRemoteChangeListener(nullptr);
  checkpointer_.Stop();
  StopReaper();
  store_->TEST_Abandon();
  closed_ = true;  // destructors now release memory, locks and fds only
}

Status Engine::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  store_->SetRemoteChangeListener(nullptr);
  checkpointer_.Stop();
  StopReaper();
  // Open transactions end with the daemon: nothing of them was committed.
  std::vector<uint64_t> open;
  {
    std::lock_guard g(tx_mu_);
    for (const auto& [id, tx] : txs_) open.push_back(id);
  }
  for (uint64_t id : open) AbortTx(kInternal, id, "unmount").status().IgnoreError();
  // At unmount the kernel holds no references any more.
  {
    std::lock_guard g(handles_mu_);
    handles_.clear();
  }
  {
    std::lock_guard g(refs_mu_);
    refs_.clear();
  }
  // Not on a shared volume: another mount may still have them open.
  if (!opts_.read_only && !store_->shared()) {
    Status st = ReclaimAllOrphans();
    if (!st.ok()) spdlog::error("reclaiming orphans at unmount failed: {}", st.ToString());
  }
  return store_->Close();
}

// ---- table access ----

Result<Inode> Engine::LoadInode(Transaction& t, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  return DecodeInode(*v);
}

Result<Inode> Engine::LoadDir(Transaction& t, uint64_t ino) {
  // The parent of an entry operation: read outside the read set (see
  // ExplicitTx::dir_base for how its changes are validated).
  DBFS_ASSIGN_OR_RETURN(auto v, t.GetUntracked(Table::kInodes, InoKey(ino)));
  if (!v) return Status::NotFound("no inode " + std::to_string(ino));
  DBFS_ASSIGN_OR_RETURN(Inode n, DecodeInode(*v));
  if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
  if (n.nlink == 0) return Status::NotFound("directory was removed");
  return n;
}

Result<std::optional<std::pair<uint64_t, uint32_t>>> Engine::LoadDirent(Transaction& t,
                                                                        uint64_t parent,
                                                                        std::string_view name) {
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kDirents, NameKey(parent, name)));
  if (!v) return std::optional<std::pair<uint64_t, uint32_t>>();
  uint64_t ino;
  uint32_t type;
  if (!DecodeDirent(*v, &ino, &type)) return Status::Corruption("malformed directory entry");
  return std::optional<std::pair<uint64_t, uint32_t>>(std::make_pair(ino, type));
}

Result<bool> Engine::DirIsEmpty(Transaction& t, uint64_t dir) {
  bool empty = true;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kDirents, InoKey(dir), InoKey(dir + 1),
                              [&](std::string_view, std::string_view) {
                                empty = false;
                                return false;
                              }));
  return empty;
}

Result<bool> Engine::IsAncestor(Transaction& t, uint64_t anc, uint64_t ino) {
  // Walks ino's parent chain up to the root.
  for (int depth = 0; depth < 100000; ++depth) {
    if (ino == anc) return true;
    if (ino == kRootIno) return false;
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    ino = n.parent ? n.parent : kRootIno;
  }
  return Status::Corruption("directory parent chain does not reach the root");
}

}  // namespace dbfs
