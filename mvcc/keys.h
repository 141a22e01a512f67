// Versioned key layout of the LMDB tables (DESIGN §3, docs/ARCHITECTURE.md).
//
// Every versioned table stores  logical_key | BE64(~csn)  ->  tag | value.
// `~csn` (bitwise complement, big-endian) makes a cursor land on the newest
// version of a logical key first. Logical keys of one table are prefix-free
// (fixed width, or NUL-terminated names — POSIX names and xattr names never
// contain NUL), so all versions of one logical key are contiguous.
//
//   inodes   ino(BE64)                      -> inode attributes  (fs/inode_format.h)
//   dirents  parent(BE64) | name | 0x00     -> child ino + type
//   extents  ino(BE64) | chunk index(BE64)  -> slice list of that chunk
//   xattrs   ino(BE64) | name | 0x00        -> value bytes
//   orphans  ino(BE64)                      -> empty (nlink 0, still open)
//
// Value tag byte: 0 = tombstone (the key was deleted at this csn), 1 = live.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvstore/coding.h"

namespace dbfs::mvcc {

using Csn = uint64_t;
// A snapshot that sees every committed version.
inline constexpr Csn kMaxCsn = ~Csn{0};

enum class Table : uint8_t {
  kInodes = 0,
  kDirents = 1,
  kExtents = 2,
  kXattrs = 3,
  kOrphans = 4,
};
inline constexpr int kNumTables = 5;
inline constexpr const char* kTableNames[kNumTables] = {"inodes", "dirents", "extents", "xattrs",
                                                        "orphans"};
// The non-versioned table of counters written only by the flusher.
inline constexpr const char* kMetaTableName = "meta";
inline constexpr std::string_view kMetaAppliedLsn = "applied_lsn";  // LE64
inline constexpr std::string_view kMetaLastCsn = "last_csn";        // LE64
inline constexpr std::string_view kMetaNextIno = "next_ino";        // LE64

inline constexpr size_t kCsnSuffix = 8;
inline constexpr char kTagTombstone = 0;
inline constexpr char kTagLive = 1;

inline std::string VersionKey(std::string_view logical, Csn csn) {
  std::string k;
  k.reserve(logical.size() + kCsnSuffix);
  k.append(logical);
  PutBE64(&k, ~csn);
  return k;
}
inline Csn VersionCsn(std::string_view version_key) {
  return ~GetBE64(version_key.data() + version_key.size() - kCsnSuffix);
}
inline std::string_view VersionLogical(std::string_view version_key) {
  return version_key.substr(0, version_key.size() - kCsnSuffix);
}

// Logical key builders.
inline std::string InoKey(uint64_t ino) {
  std::string k;
  PutBE64(&k, ino);
  return k;
}
inline std::string NameKey(uint64_t ino, std::string_view name) {
  std::string k;
  k.reserve(9 + name.size());
  PutBE64(&k, ino);
  k.append(name);
  k.push_back('\0');
  return k;
}
inline std::string ChunkKey(uint64_t ino, uint64_t chunk) {
  std::string k;
  PutBE64(&k, ino);
  PutBE64(&k, chunk);
  return k;
}
// [begin, end) bounds of every logical key that starts with ino.
inline std::string InoPrefixBegin(uint64_t ino) { return InoKey(ino); }
inline std::string InoPrefixEnd(uint64_t ino) { return InoKey(ino + 1); }

}  // namespace dbfs::mvcc
