// File systems for tests, shipped as real code (like rocksdb's
// FaultInjectionTestFS): an in-memory file system that can simulate a power
// cut, and a wrapper that fails the k-th operation of a kind.
#pragma once

#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "wal/file_system.h"

namespace dbfs::wal {

// In-memory file system. Tracks, per file, the content as of its last Sync,
// and per directory the entries as of its last SyncDir, so DropUnsynced() can
// simulate a power cut. Directories themselves are always durable. Paths are
// '/'-separated; repeated and trailing slashes are ignored; "/" and "." exist.
// Thread-safe (one mutex). Files opened from it must not outlive it.
class MemFileSystem final : public FileSystem {
 public:
  MemFileSystem();
  ~MemFileSystem() override;
  MemFileSystem(const MemFileSystem&) = delete;
  MemFileSystem& operator=(const MemFileSystem&) = delete;

  Result<std::unique_ptr<File>> Open(const std::string& path, int flags) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  Status CreateDir(const std::string& dir) override;
  bool Exists(const std::string& path) override;

  // A simulated power cut: every file reverts to its last-synced content, and
  // directory entries created or removed since the last SyncDir of their
  // directory are undone (new files vanish, removed files come back with their
  // synced content). Handles opened before see the reverted content of files
  // that still exist.
  void DropUnsynced();

  enum class CrashMode {
    kDropAll,           // same as DropUnsynced()
    kKeepRandomPrefix,  // of each file's unsynced writes, a random prefix survives
    kKeepRandomPages,   // the length is the old or the new one; each 4 KiB page whose
                        // content changed since the sync is randomly old or new
  };
  // Like DropUnsynced, but keeps random parts of the unsynced data, chosen by
  // a RNG seeded with `seed` (same seed, same result).
  void DropUnsynced(CrashMode mode, uint64_t seed);

  // Total bytes of all files that are not yet as synced (differing bytes plus
  // length difference). For tests of the harness itself.
  uint64_t UnsyncedBytes() const;

 private:
  struct Node {
    std::string data;
    std::string synced;
  };
  class MemFile;

  static std::string Normalize(std::string_view path);

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Node>> files_;    // live namespace, guarded by mu_
  std::map<std::string, std::shared_ptr<Node>> durable_;  // as of the last SyncDir, guarded by mu_
  std::set<std::string> dirs_;                            // guarded by mu_
};

// Wraps another FileSystem; counts operations and fails the k-th subsequent
// operation of a kind with an injected errno. Thread-safe.
//   kWrite: File::PWrite, PWriteV, Truncate
//   kSync:  File::Sync, FileSystem::SyncDir
//   kRead:  File::PRead
//   kAny:   all of the above and Open, ListDir, Remove, CreateDir, File::Size
class FaultInjectionFileSystem final : public FileSystem {
 public:
  enum class OpKind { kWrite = 0, kSync = 1, kRead = 2, kAny = 3 };

  // REQUIRES: base outlives this object and every file opened through it.
  explicit FaultInjectionFileSystem(FileSystem* base);
  ~FaultInjectionFileSystem() override;

  // The k-th (k >= 1; 1 = the next one) operation of `kind` from now on fails
  // with `err` (EIO, ENOSPC, ...) without reaching the base file system. With
  // `persistent`, every later operation of that kind fails too.
  void FailAfter(OpKind kind, uint64_t k, int err = EIO, bool persistent = false);
  void ClearFaults();
  // Operations of `kind` seen so far (including failed ones).
  uint64_t count(OpKind kind) const;
  // Failures injected so far.
  uint64_t injected() const;
  // Runs at the start of every File::Sync, before fault injection and outside
  // every lock of this class: a test can hold a syncing thread at a known
  // point. An empty function removes the hook.
  void SetSyncHook(std::function<void()> hook);

  Result<std::unique_ptr<File>> Open(const std::string& path, int flags) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  Status CreateDir(const std::string& dir) override;
  bool Exists(const std::string& path) override;

 private:
  class FaultFile;

  // Counts one operation; returns the injected error if this one must fail.
  Status Check(OpKind kind, std::string_view what);
  void RunSyncHook();

  FileSystem* const base_;
  mutable std::mutex mu_;
  uint64_t counts_[4] = {0, 0, 0, 0};                 // guarded by mu_
  bool armed_ = false;                                // guarded by mu_
  OpKind fault_kind_ = OpKind::kAny;                  // guarded by mu_
  uint64_t remaining_ = 0;                            // guarded by mu_
  int fault_errno_ = EIO;                             // guarded by mu_
  bool persistent_ = false;                           // guarded by mu_
  uint64_t injected_ = 0;                             // guarded by mu_
  std::shared_ptr<std::function<void()>> sync_hook_;  // guarded by mu_
};

// Whole-file helpers for tests and tools.
Result<std::string> ReadFileToString(FileSystem* fs, const std::string& path);
// Creates or replaces the content of `path` (not synced).
Status WriteStringToFile(FileSystem* fs, const std::string& path, std::string_view data);

}  // namespace dbfs::wal
