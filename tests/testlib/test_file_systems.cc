#include "tests/testlib/test_file_systems.h"

#include <algorithm>
#include <random>
#include <utility>

namespace dbfs::wal {

// ---------------------------------------------------------------------------
// MemFileSystem

class MemFileSystem::MemFile final : public File {
 public:
  MemFile(MemFileSystem* fs, std::shared_ptr<Node> node, std::string path, bool read_only)
      : fs_(fs), node_(std::move(node)), path_(std::move(path)), read_only_(read_only) {}

  Status PWrite(uint64_t off, const void* data, size_t n) override {
    if (read_only_) return Status::FromErrno(EBADF, "pwrite " + path_);
    std::lock_guard<std::mutex> l(fs_->mu_);
    std::string& d = node_->data;
    if (d.size() < off + n) d.resize(off + n, '\0');
    if (n > 0) d.replace(off, n, static_cast<const char*>(data), n);
    return Status::Ok();
  }

  Status PWriteV(uint64_t off, const std::string_view* pieces, size_t count) override {
    if (read_only_) return Status::FromErrno(EBADF, "pwritev " + path_);
    std::lock_guard<std::mutex> l(fs_->mu_);
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) total += pieces[i].size();
    std::string& d = node_->data;
    if (d.size() < off + total) d.resize(off + total, '\0');
    for (size_t i = 0; i < count; ++i) {
      if (!pieces[i].empty()) d.replace(off, pieces[i].size(), pieces[i].data(), pieces[i].size());
      off += pieces[i].size();
    }
    return Status::Ok();
  }

  Status PRead(uint64_t off, void* buf, size_t n, size_t* got) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    const std::string& d = node_->data;
    if (off >= d.size()) {
      *got = 0;
      return Status::Ok();
    }
    *got = std::min<uint64_t>(n, d.size() - off);
    std::copy_n(d.data() + off, *got, static_cast<char*>(buf));
    return Status::Ok();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    node_->synced = node_->data;
    return Status::Ok();
  }

  Status Truncate(uint64_t size) override {
    if (read_only_) return Status::FromErrno(EBADF, "ftruncate " + path_);
    std::lock_guard<std::mutex> l(fs_->mu_);
    node_->data.resize(size, '\0');
    return Status::Ok();
  }

  Result<uint64_t> Size() override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    return static_cast<uint64_t>(node_->data.size());
  }

 private:
  MemFileSystem* const fs_;
  const std::shared_ptr<Node> node_;
  const std::string path_;
  const bool read_only_;
};

MemFileSystem::MemFileSystem() {
  dirs_.insert("/");
  dirs_.insert(".");
}

MemFileSystem::~MemFileSystem() = default;

std::string MemFileSystem::Normalize(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  // push_back, not `out = "."`: GCC 12 at -O3 reports a false -Wrestrict
  // inside std::string::assign for the literal (GCC bug 105329).
  if (out.empty()) out.push_back('.');
  return out;
}

Result<std::unique_ptr<File>> MemFileSystem::Open(const std::string& raw_path, int flags) {
  const std::string path = Normalize(raw_path);
  std::lock_guard<std::mutex> l(mu_);
  if (dirs_.count(path)) return Status::FromErrno(EISDIR, "open " + path);
  if (!dirs_.count(ParentDir(path))) return Status::FromErrno(ENOENT, "open " + path);
  auto it = files_.find(path);
  if (it == files_.end()) {
    if (!(flags & kCreate)) return Status::FromErrno(ENOENT, "open " + path);
    it = files_.emplace(path, std::make_shared<Node>()).first;
  }
  return std::unique_ptr<File>(new MemFile(this, it->second, path, (flags & kReadOnly) != 0));
}

Result<std::vector<std::string>> MemFileSystem::ListDir(const std::string& raw_dir) {
  const std::string dir = Normalize(raw_dir);
  std::lock_guard<std::mutex> l(mu_);
  if (!dirs_.count(dir)) return Status::FromErrno(ENOENT, "opendir " + dir);
  std::vector<std::string> names;
  auto add = [&](const std::string& p) {
    if (p != dir && ParentDir(p) == dir) {
      const size_t slash = p.rfind('/');
      names.push_back(slash == std::string::npos ? p : p.substr(slash + 1));
    }
  };
  for (const auto& [p, node] : files_) add(p);
  for (const auto& p : dirs_) add(p);
  return names;
}

Status MemFileSystem::Remove(const std::string& raw_path) {
  const std::string path = Normalize(raw_path);
  std::lock_guard<std::mutex> l(mu_);
  if (dirs_.count(path)) return Status::FromErrno(EISDIR, "unlink " + path);
  if (files_.erase(path) == 0) return Status::FromErrno(ENOENT, "unlink " + path);
  return Status::Ok();
}

Status MemFileSystem::SyncDir(const std::string& raw_dir) {
  const std::string dir = Normalize(raw_dir);
  std::lock_guard<std::mutex> l(mu_);
  if (!dirs_.count(dir)) return Status::FromErrno(ENOENT, "open directory " + dir);
  for (auto it = durable_.begin(); it != durable_.end();) {
    if (ParentDir(it->first) == dir && !files_.count(it->first)) {
      it = durable_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [p, node] : files_) {
    if (ParentDir(p) == dir) durable_[p] = node;
  }
  return Status::Ok();
}

Status MemFileSystem::CreateDir(const std::string& raw_dir) {
  const std::string dir = Normalize(raw_dir);
  std::lock_guard<std::mutex> l(mu_);
  if (dirs_.count(dir)) return Status::Ok();
  if (files_.count(dir)) return Status::FromErrno(ENOTDIR, "mkdir " + dir);
  if (!dirs_.count(ParentDir(dir))) return Status::FromErrno(ENOENT, "mkdir " + dir);
  dirs_.insert(dir);
  return Status::Ok();
}

bool MemFileSystem::Exists(const std::string& raw_path) {
  const std::string path = Normalize(raw_path);
  std::lock_guard<std::mutex> l(mu_);
  return dirs_.count(path) > 0 || files_.count(path) > 0;
}

void MemFileSystem::DropUnsynced() { DropUnsynced(CrashMode::kDropAll, 0); }

namespace {

constexpr size_t kPage = 4096;

// Content of a file after a power cut, given its synced and current content.
std::string Survivor(const std::string& old, const std::string& cur, MemFileSystem::CrashMode mode,
                     std::mt19937_64* rng) {
  using CrashMode = MemFileSystem::CrashMode;
  if (mode == CrashMode::kDropAll || old == cur) return old;
  if (mode == CrashMode::kKeepRandomPrefix) {
    // The first c bytes of the current content reached the disk, the rest is
    // as synced.
    size_t cp = 0;
    const size_t common = std::min(old.size(), cur.size());
    while (cp < common && old[cp] == cur[cp]) ++cp;
    const size_t c = cp + static_cast<size_t>((*rng)() % (cur.size() - cp + 1));
    std::string out = cur.substr(0, c);
    if (c < old.size()) out.append(old, c, std::string::npos);
    return out;
  }
  // kKeepRandomPages.
  const size_t len = ((*rng)() & 1) ? cur.size() : old.size();
  std::string out(len, '\0');
  for (size_t p = 0; p < len; p += kPage) {
    const size_t n = std::min(kPage, len - p);
    auto page_of = [&](const std::string& s) {
      std::string page(n, '\0');
      if (p < s.size()) s.copy(page.data(), std::min(n, s.size() - p), p);
      return page;
    };
    const std::string o = page_of(old), c = page_of(cur);
    const std::string& pick = (o == c || ((*rng)() & 1)) ? c : o;
    out.replace(p, n, pick);
  }
  return out;
}

}  // namespace

void MemFileSystem::DropUnsynced(CrashMode mode, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lock_guard<std::mutex> l(mu_);
  files_ = durable_;
  for (auto& [path, node] : files_) {
    node->data = Survivor(node->synced, node->data, mode, &rng);
    node->synced = node->data;
  }
}

uint64_t MemFileSystem::UnsyncedBytes() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t total = 0;
  for (const auto& [path, node] : files_) {
    const std::string& a = node->data;
    const std::string& b = node->synced;
    const size_t common = std::min(a.size(), b.size());
    for (size_t i = 0; i < common; ++i) total += a[i] != b[i];
    total += std::max(a.size(), b.size()) - common;
  }
  return total;
}

// ---------------------------------------------------------------------------
// FaultInjectionFileSystem

class FaultInjectionFileSystem::FaultFile final : public File {
 public:
  FaultFile(FaultInjectionFileSystem* fs, std::unique_ptr<File> base, std::string path)
      : fs_(fs), base_(std::move(base)), path_(std::move(path)) {}

  Status PWrite(uint64_t off, const void* data, size_t n) override {
    DBFS_RETURN_IF_ERROR(fs_->Check(OpKind::kWrite, "pwrite " + path_));
    return base_->PWrite(off, data, n);
  }
  Status PWriteV(uint64_t off, const std::string_view* pieces, size_t count) override {
    DBFS_RETURN_IF_ERROR(fs_->Check(OpKind::kWrite, "pwritev " + path_));
    return base_->PWriteV(off, pieces, count);
  }
  Status PRead(uint64_t off, void* buf, size_t n, size_t* got) override {
    *got = 0;
    DBFS_RETURN_IF_ERROR(fs_->Check(OpKind::kRead, "pread " + path_));
    return base_->PRead(off, buf, n, got);
  }
  Status Sync() override {
    fs_->RunSyncHook();
    DBFS_RETURN_IF_ERROR(fs_->Check(OpKind::kSync, "fdatasync " + path_));
    return base_->Sync();
  }
  Status Truncate(uint64_t size) override {
    DBFS_RETURN_IF_ERROR(fs_->Check(OpKind::kWrite, "ftruncate " + path_));
    return base_->Truncate(size);
  }
  Result<uint64_t> Size() override {
    DBFS_RETURN_IF_ERROR(fs_->Check(OpKind::kAny, "fstat " + path_));
    return base_->Size();
  }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::unique_ptr<File> base_;
  const std::string path_;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(FileSystem* base) : base_(base) {}
FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

void FaultInjectionFileSystem::FailAfter(OpKind kind, uint64_t k, int err, bool persistent) {
  std::lock_guard<std::mutex> l(mu_);
  armed_ = true;
  fault_kind_ = kind;
  remaining_ = std::max<uint64_t>(k, 1);
  fault_errno_ = err;
  persistent_ = persistent;
}

void FaultInjectionFileSystem::ClearFaults() {
  std::lock_guard<std::mutex> l(mu_);
  armed_ = false;
}

uint64_t FaultInjectionFileSystem::count(OpKind kind) const {
  std::lock_guard<std::mutex> l(mu_);
  return counts_[static_cast<int>(kind)];
}

uint64_t FaultInjectionFileSystem::injected() const {
  std::lock_guard<std::mutex> l(mu_);
  return injected_;
}

void FaultInjectionFileSystem::SetSyncHook(std::function<void()> hook) {
  std::lock_guard<std::mutex> l(mu_);
  if (hook) {
    sync_hook_ = std::make_shared<std::function<void()>>(std::move(hook));
  } else {
    sync_hook_.reset();
  }
}

void FaultInjectionFileSystem::RunSyncHook() {
  std::shared_ptr<std::function<void()>> hook;
  {
    std::lock_guard<std::mutex> l(mu_);
    hook = sync_hook_;
  }
  if (hook) (*hook)();
}

Status FaultInjectionFileSystem::Check(OpKind kind, std::string_view what) {
  std::lock_guard<std::mutex> l(mu_);
  ++counts_[static_cast<int>(kind)];
  if (kind != OpKind::kAny) ++counts_[static_cast<int>(OpKind::kAny)];
  if (!armed_ || (fault_kind_ != OpKind::kAny && fault_kind_ != kind)) return Status::Ok();
  if (remaining_ > 1) {
    --remaining_;
    return Status::Ok();
  }
  if (!persistent_) armed_ = false;
  ++injected_;
  return Status::FromErrno(fault_errno_, "injected fault in " + std::string(what));
}

Result<std::unique_ptr<File>> FaultInjectionFileSystem::Open(const std::string& path, int flags) {
  DBFS_RETURN_IF_ERROR(Check(OpKind::kAny, "open " + path));
  DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, base_->Open(path, flags));
  return std::unique_ptr<File>(new FaultFile(this, std::move(f), path));
}

Result<std::vector<std::string>> FaultInjectionFileSystem::ListDir(const std::string& dir) {
  DBFS_RETURN_IF_ERROR(Check(OpKind::kAny, "opendir " + dir));
  return base_->ListDir(dir);
}

Status FaultInjectionFileSystem::Remove(const std::string& path) {
  DBFS_RETURN_IF_ERROR(Check(OpKind::kAny, "unlink " + path));
  return base_->Remove(path);
}

Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  DBFS_RETURN_IF_ERROR(Check(OpKind::kSync, "fsync directory " + dir));
  return base_->SyncDir(dir);
}

Status FaultInjectionFileSystem::CreateDir(const std::string& dir) {
  DBFS_RETURN_IF_ERROR(Check(OpKind::kAny, "mkdir " + dir));
  return base_->CreateDir(dir);
}

bool FaultInjectionFileSystem::Exists(const std::string& path) { return base_->Exists(path); }

// ---------------------------------------------------------------------------
// Helpers

Result<std::string> ReadFileToString(FileSystem* fs, const std::string& path) {
  DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, fs->Open(path, FileSystem::kReadOnly));
  DBFS_ASSIGN_OR_RETURN(uint64_t size, f->Size());
  std::string out(size, '\0');
  size_t got = 0;
  DBFS_RETURN_IF_ERROR(f->PRead(0, out.data(), out.size(), &got));
  out.resize(got);
  return out;
}

Status WriteStringToFile(FileSystem* fs, const std::string& path, std::string_view data) {
  DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, fs->Open(path, FileSystem::kCreate));
  DBFS_RETURN_IF_ERROR(f->Truncate(0));
  return f->PWrite(0, data.data(), data.size());
}

}  // namespace dbfs::wal
