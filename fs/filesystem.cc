// The public face of the engine (fs/filesystem.h): opening and creating
// volumes, and forwarding to the Engine (fs/engine.h).
#include "fs/filesystem.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "fs/engine.h"
#include "mvcc/volume.h"

namespace dbfs {

namespace {

// Everything under MNT/.dbfs is read-only, and the name .dbfs in the root
// belongs to it.
Status ReadOnlyView() { return Status(Code::kErrno, "history views are read-only", EROFS); }
bool IsDotDbfs(uint64_t parent, std::string_view name) {
  return parent == kRootIno && name == ".dbfs";
}
bool InHistory(uint64_t parent, std::string_view name) {
  return Filesystem::IsHistoryIno(parent) || IsDotDbfs(parent, name);
}

// On a volume other mounts share, an autocommit operation's commit is
// validated (txn::Transaction::Commit): a concurrent commit of another mount
// to a key it writes fails it with kConflict, nothing committed. It then runs
// again from a newer snapshot — what its inode locks do between the
// operations of one mount. Local volumes never get here with a conflict.
constexpr int kSharedConflictAttempts = 16;
Code CodeOf(const Status& s) { return s.code(); }
template <typename T>
Code CodeOf(const Result<T>& r) {
  return r.ok() ? Code::kOk : r.status().code();
}
template <typename F>
auto RetryShared(bool shared, F&& f) -> decltype(f()) {
  for (int attempt = 1;; ++attempt) {
    auto r = f();
    if (!shared || attempt >= kSharedConflictAttempts || CodeOf(r) != Code::kConflict) return r;
  }
}

}  // namespace

Filesystem::Filesystem(std::unique_ptr<Engine> engine)
    : engine_(std::move(engine)), shared_(engine_->shared()) {}

Filesystem::~Filesystem() {
  if (engine_) {
    Status st = engine_->Close();
    if (!st.ok()) spdlog::error("closing the filesystem failed: {}", st.ToString());
  }
}

Status Filesystem::Initialize(const std::string& volume_dir) {
  DBFS_ASSIGN_OR_RETURN(auto store, mvcc::OpenVolume(volume_dir, mvcc::OpenVolumeOptions{}));
  Transaction t(store.get());
  DBFS_ASSIGN_OR_RETURN(auto existing, t.Get(Table::kInodes, InoKey(kRootIno)));
  if (existing) return Status::Exists("volume already has a root directory");
  Inode root;
  root.mode = S_IFDIR | 0755;
  // Owned by whoever makes the volume (like mke2fs's root_owner default): a
  // user's own volume is writable by that user once mounted.
  root.uid = geteuid();
  root.gid = getegid();
  root.nlink = 2;
  root.parent = kRootIno;
  root.atime = root.mtime = root.ctime = root.btime = Now();
  t.Put(Table::kInodes, InoKey(kRootIno), EncodeInode(root));
  mvcc::CommitMeta meta;
  meta.comm = "mkfs.dbfs";
  meta.flags = mvcc::kCommitInternal;
  t.SetMeta(std::move(meta));
  DBFS_RETURN_IF_ERROR(t.Commit(/*durable=*/true).status());
  return store->Close();
}

Result<std::unique_ptr<Filesystem>> Filesystem::Open(const std::string& volume,
                                                     const FsOptions& options) {
  mvcc::OpenVolumeOptions o;
  o.local.segment_size = options.wal_segment_bytes;
  // Read-only: no WAL writer, no flusher, a log tail replayed in memory
  // only, and not even LMDB's lock file written (we hold the volume lock,
  // taken read-only: nobody writes beside us).
  o.local.read_only = options.read_only;
  o.local.no_lock_file = options.read_only;
  o.lock_holder = "dbfs-mount";
  o.cluster.timeout = std::chrono::milliseconds(options.cluster_timeout_ms);
  o.cluster.ceph_conf = options.ceph_conf;
  o.cluster.ceph_user = options.ceph_user;
  DBFS_ASSIGN_OR_RETURN(auto store, mvcc::OpenVolume(volume, o));
  return Open(std::move(store), options);
}

Result<std::unique_ptr<Filesystem>> Filesystem::Open(std::unique_ptr<mvcc::Store> store,
                                                     const FsOptions& options) {
  {
    Transaction t(store.get());
    DBFS_ASSIGN_OR_RETURN(auto root, t.Get(Table::kInodes, InoKey(kRootIno)));
    if (!root) return Status::Corruption("volume has no root directory; run fsck.dbfs");
  }
  const bool shared = store->shared();
  auto engine = std::make_unique<Engine>(std::move(store), options);
  // Nobody can reference an orphan at mount time: reclaim them all now (a
  // read-only mount leaves them to the next read-write one). Not on a volume
  // other mounts share: one of them may still have the file open.
  if (!options.read_only && !shared) DBFS_RETURN_IF_ERROR(engine->ReclaimAllOrphans());
  return std::unique_ptr<Filesystem>(new Filesystem(std::move(engine)));
}

Status Filesystem::Close() { return engine_->Close(); }
void Filesystem::StartBackgroundCheckpoints() { engine_->StartBackgroundCheckpoints(); }
Result<CheckpointReport> Filesystem::Checkpoint() { return engine_->Checkpoint(); }
Result<FsStat> Filesystem::StatFs() { return engine_->StatFs(); }
Status Filesystem::SyncAll(const Caller& c) { return engine_->Fsync(c); }
FsStats Filesystem::Stats() const { return engine_->Stats(); }

Result<Attr> Filesystem::Lookup(const Caller& c, uint64_t parent, std::string_view name) {
  if (InHistory(parent, name)) return engine_->HLookup(c, parent, name);
  return engine_->Lookup(c, parent, name);
}
Result<Attr> Filesystem::Mknod(const Caller& c, uint64_t parent, std::string_view name,
                               uint32_t mode, uint64_t rdev) {
  const uint32_t type = mode & S_IFMT;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK && type != 0) {
    return Status::Invalid("mknod: unsupported file type");
  }
  if (InHistory(parent, name)) return ReadOnlyView();
  return RetryShared(shared_, [&] {
    return engine_->MakeNode(c, parent, name, type ? mode : (mode | S_IFREG), rdev, "");
  });
}
Result<Attr> Filesystem::Mkdir(const Caller& c, uint64_t parent, std::string_view name,
                               uint32_t mode) {
  if (InHistory(parent, name)) return ReadOnlyView();
  return RetryShared(
      shared_, [&] { return engine_->MakeNode(c, parent, name, S_IFDIR | (mode & 07777), 0, ""); });
}
Result<Attr> Filesystem::Symlink(const Caller& c, uint64_t parent, std::string_view name,
                                 std::string_view target) {
  if (InHistory(parent, name)) return ReadOnlyView();
  return RetryShared(shared_,
                     [&] { return engine_->MakeNode(c, parent, name, S_IFLNK | 0777, 0, target); });
}
Result<std::string> Filesystem::Readlink(const Caller& c, uint64_t ino) {
  if (IsHistoryIno(ino)) return engine_->HReadlink(ino);
  return engine_->Readlink(c, ino);
}
Status Filesystem::Unlink(const Caller& c, uint64_t parent, std::string_view name) {
  if (InHistory(parent, name)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->Remove(c, parent, name, /*dir=*/false); });
}
Status Filesystem::Rmdir(const Caller& c, uint64_t parent, std::string_view name) {
  if (InHistory(parent, name)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->Remove(c, parent, name, /*dir=*/true); });
}
Status Filesystem::Rename(const Caller& c, uint64_t parent, std::string_view name,
                          uint64_t newparent, std::string_view newname, unsigned flags) {
  if (InHistory(parent, name) || InHistory(newparent, newname)) return ReadOnlyView();
  return RetryShared(shared_,
                     [&] { return engine_->Rename(c, parent, name, newparent, newname, flags); });
}
Result<Attr> Filesystem::Link(const Caller& c, uint64_t ino, uint64_t newparent,
                              std::string_view newname) {
  if (IsHistoryIno(ino) || InHistory(newparent, newname)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->Link(c, ino, newparent, newname); });
}

void Filesystem::Forget(uint64_t ino, uint64_t nlookup) {
  if (!IsHistoryIno(ino)) engine_->Forget(ino, nlookup);
}
void Filesystem::AddLookup(uint64_t ino) {
  if (!IsHistoryIno(ino)) engine_->AddLookup(ino);
}

Result<Attr> Filesystem::GetAttr(const Caller& c, uint64_t ino) {
  if (IsHistoryIno(ino)) return engine_->HGetAttr(ino);
  return engine_->GetAttr(c, ino);
}
Result<Attr> Filesystem::SetAttr(const Caller& c, uint64_t ino, const SetAttrIn& in) {
  if (IsHistoryIno(ino)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->SetAttr(c, ino, in); });
}
Status Filesystem::Access(const Caller& c, uint64_t ino, int mask) {
  if (IsHistoryIno(ino)) {
    if (mask & W_OK) return ReadOnlyView();
    return engine_->HGetAttr(ino).status();
  }
  return engine_->Access(c, ino, mask);
}

Result<uint64_t> Filesystem::Open(const Caller& c, uint64_t ino, int flags, uint64_t* size) {
  if (IsHistoryIno(ino)) return engine_->HOpen(ino, flags, size);
  return RetryShared(shared_, [&] { return engine_->Open(c, ino, flags, size); });
}
Result<Filesystem::Created> Filesystem::Create(const Caller& c, uint64_t parent,
                                               std::string_view name, uint32_t mode, int flags) {
  if (InHistory(parent, name)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->Create(c, parent, name, mode, flags); });
}
Result<size_t> Filesystem::Read(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off,
                                size_t size, char* buf) {
  if (IsHistoryIno(ino)) return engine_->HRead(ino, off, size, buf);
  return engine_->Read(c, ino, fh, off, size, buf);
}
Result<size_t> Filesystem::Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off,
                                 const char* data, size_t size, WriteOrigin origin) {
  if (IsHistoryIno(ino)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->Write(c, ino, fh, off, data, size, origin); });
}
Status Filesystem::Flush(uint64_t, uint64_t) { return Status::Ok(); }
Status Filesystem::Release(uint64_t ino, uint64_t fh) {
  if (IsHistoryIno(ino)) return Status::Ok();
  return engine_->Release(ino, fh);
}
Status Filesystem::Fsync(const Caller& c, uint64_t, uint64_t, bool) { return engine_->Fsync(c); }
Status Filesystem::Fallocate(const Caller& c, uint64_t ino, uint64_t, int mode, uint64_t off,
                             uint64_t len) {
  if (IsHistoryIno(ino)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->Fallocate(c, ino, mode, off, len); });
}
Result<uint64_t> Filesystem::Lseek(const Caller& c, uint64_t ino, uint64_t, uint64_t off,
                                   int whence) {
  if (IsHistoryIno(ino)) return engine_->HLseek(ino, off, whence);
  return engine_->Lseek(c, ino, off, whence);
}
Result<size_t> Filesystem::CopyFileRange(const Caller& c, uint64_t ino_in, uint64_t fh_in,
                                         uint64_t off_in, uint64_t ino_out, uint64_t fh_out,
                                         uint64_t off_out, size_t len) {
  if (IsHistoryIno(ino_out)) return ReadOnlyView();
  if (IsHistoryIno(ino_in)) return Status(Code::kErrno, "copy from a history view", EXDEV);
  return RetryShared(shared_, [&] {
    return engine_->CopyFileRange(c, ino_in, fh_in, off_in, ino_out, fh_out, off_out, len);
  });
}

Result<uint64_t> Filesystem::OpenDir(const Caller& c, uint64_t ino) {
  if (IsHistoryIno(ino)) return engine_->HOpenDir(ino);
  return engine_->OpenDir(c, ino);
}
const std::vector<DirEntry>* Filesystem::DirEntries(uint64_t fh) { return engine_->DirEntries(fh); }
Status Filesystem::RewindDir(const Caller& c, uint64_t ino, uint64_t fh) {
  // A view's listing is its state's: nothing new can appear in it.
  if (IsHistoryIno(ino)) return Status::Ok();
  return engine_->RewindDir(c, ino, fh);
}
Status Filesystem::ReleaseDir(uint64_t, uint64_t fh) { return engine_->ReleaseDir(fh); }
Status Filesystem::FsyncDir(const Caller& c, uint64_t, uint64_t, bool) { return engine_->Fsync(c); }

Status Filesystem::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                            std::string_view value, int flags) {
  if (IsHistoryIno(ino)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->SetXattr(c, ino, name, value, flags); });
}
Result<std::string> Filesystem::GetXattr(const Caller& c, uint64_t ino, std::string_view name) {
  if (IsHistoryIno(ino)) return engine_->HGetXattr(ino, name);
  return engine_->GetXattr(c, ino, name);
}
Result<std::string> Filesystem::ListXattr(const Caller& c, uint64_t ino) {
  if (IsHistoryIno(ino)) return engine_->HListXattr(ino);
  return engine_->ListXattr(c, ino);
}
Status Filesystem::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  if (IsHistoryIno(ino)) return ReadOnlyView();
  return RetryShared(shared_, [&] { return engine_->RemoveXattr(c, ino, name); });
}

Result<uint64_t> Filesystem::BeginTx(const Caller& c, const TxOptions& options) {
  return engine_->BeginTx(c, options);
}
Result<TxOutcome> Filesystem::CommitTx(const Caller& c, uint64_t id, bool durable) {
  return engine_->CommitTx(c, id, durable);
}
Result<TxOutcome> Filesystem::AbortTx(const Caller& c, uint64_t id) {
  return engine_->AbortTx(c, id, "aborted by request");
}
Status Filesystem::AbortTxInternally(uint64_t id, std::string_view reason) {
  return engine_->AbortTx(kInternal, id, std::string(reason)).status();
}
bool Filesystem::TxExists(uint64_t id) { return engine_->TxExists(id); }
std::vector<TxInfo> Filesystem::ListTx() { return engine_->ListTx(); }

bool Filesystem::Uncached(const Caller& c, uint64_t ino) {
  return !IsHistoryIno(ino) && engine_->Uncached(c, ino);
}
void Filesystem::SetInvalidator(std::function<void(uint64_t, bool)> f) {
  engine_->SetInvalidator(std::move(f));
}
void Filesystem::SetEntryInvalidator(EntryInvalidator f) {
  engine_->SetEntryInvalidator(std::move(f));
}
void Filesystem::ShutdownTxLockWaits() { engine_->ShutdownTxLockWaits(); }

Result<SnapshotInfo> Filesystem::CreateSnapshot(const Caller& c, const std::string& name) {
  return engine_->CreateSnapshot(c, name);
}
Status Filesystem::DeleteSnapshot(const Caller& c, const std::string& name) {
  return engine_->DeleteSnapshot(c, name);
}
Result<std::vector<SnapshotInfo>> Filesystem::ListSnapshots(bool with_space) {
  return engine_->ListSnapshots(with_space);
}
Result<uint64_t> Filesystem::ResolvePoint(std::string_view point) {
  return engine_->ResolvePoint(point);
}
Result<std::vector<Change>> Filesystem::Diff(const Caller& c, uint64_t from, uint64_t to,
                                             std::string_view path) {
  return engine_->Diff(c, from, to, path);
}
Result<std::vector<Change>> Filesystem::TxDiff(const Caller& c, uint64_t tx,
                                               std::string_view path) {
  return engine_->TxDiff(c, tx, path);
}
Result<std::vector<LogEntry>> Filesystem::Log(const Caller& c, const LogQuery& q) {
  return engine_->Log(c, q);
}
Result<TxOutcome> Filesystem::Restore(const Caller& c, std::string_view path, uint64_t at,
                                      bool keep) {
  return engine_->Restore(c, path, at, keep);
}
Result<TxOutcome> Filesystem::Rollback(const Caller& c, const std::string& snapshot, bool keep) {
  return engine_->Rollback(c, snapshot, keep);
}
Result<TxOutcome> Filesystem::Revert(const Caller& c, uint64_t csn, bool keep) {
  return engine_->Revert(c, csn, keep);
}
Status Filesystem::KeepTx(const Caller& c, uint64_t id) { return engine_->KeepTx(c, id); }
void Filesystem::SetCallerNamer(std::function<std::string(int32_t)> f) {
  engine_->SetCallerNamer(std::move(f));
}

void Filesystem::TEST_Abandon() { engine_->TEST_Abandon(); }
void Filesystem::TEST_SetTxLockSyncPoint(
    std::function<void(std::string_view, uint64_t, uint64_t)> f) {
  engine_->TEST_SetTxLockSyncPoint(std::move(f));
}
bool Filesystem::TEST_TxHoldsLock(uint64_t tx, uint64_t ino) {
  return engine_->TEST_TxHoldsLock(tx, ino);
}

}  // namespace dbfs
