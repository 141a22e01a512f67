// The I/O seam of the WAL (like leveldb's Env): every file operation of wal/
// goes through FileSystem/File, so tests can swap in an in-memory file system,
// inject errors, or simulate a power cut (tests/testlib/test_file_systems.h).
//
// Verbs: PWrite hands bytes to the OS (not durable); Sync makes a file's data
// durable (fdatasync); SyncDir makes directory entries (creates, removes)
// durable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::wal {

// An open file. Implementations are thread-safe: positional reads and writes
// and Sync may run concurrently from several threads.
class File {
 public:
  virtual ~File() = default;
  // Writes all n bytes at `off`, or returns an error (ENOSPC -> kNoSpace).
  virtual Status PWrite(uint64_t off, const void* data, size_t n) = 0;
  // Writes the concatenation of pieces[0, count) at `off`: one pwritev for the
  // POSIX file. The default calls PWrite per piece. Full write or error.
  virtual Status PWriteV(uint64_t off, const std::string_view* pieces, size_t count);
  // Reads up to n bytes at `off` into buf; *got < n only at end of file.
  virtual Status PRead(uint64_t off, void* buf, size_t n, size_t* got) = 0;
  // fdatasync: every byte written before the call is durable when it returns.
  virtual Status Sync() = 0;
  virtual Status Truncate(uint64_t size) = 0;
  virtual Result<uint64_t> Size() = 0;
};

// Thread-safe.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // flags: kCreate (create if missing), kReadOnly. Opened for read+write
  // unless kReadOnly. A missing file without kCreate is kNotFound.
  enum OpenFlags : int { kNone = 0, kCreate = 1, kReadOnly = 2 };
  virtual Result<std::unique_ptr<File>> Open(const std::string& path, int flags) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..".
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // Makes the entries of `dir` (files created or removed in it) durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Creates `dir` (not its parents); ok if it already exists as a directory.
  virtual Status CreateDir(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
};

// The POSIX file system: pwrite/pwritev/pread/fdatasync/ftruncate, O_CLOEXEC,
// EINTR and short transfers handled. A process-lifetime singleton.
FileSystem* DefaultFileSystem();

// "a/b/c" -> "a/b", "/a" -> "/", "a" -> ".". Trailing slashes are ignored.
std::string ParentDir(std::string_view path);

}  // namespace dbfs::wal
