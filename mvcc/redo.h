// Logical redo of one committed transaction: the payload of a WAL COMMIT
// record. Replaying it (idempotently) reproduces the transaction's writes;
// its metadata (who, when) feeds the commit log (`dbfs log`).
//
// Layout (little-endian; docs/wal_format.md "COMMIT payload"):
//   u64 csn
//   u64 max_ino        highest inode number allocated so far (recovery bound)
//   u32 count | kRedoHasMeta (bit 31: a metadata section follows; format 2)
//   [metadata, format 2 only:
//      u64 time_ns     CLOCK_REALTIME of the commit (offset 20: patched under the commit mutex)
//      u32 uid | i32 pid | u64 tx | u32 flags
//      u32 len | comm  | u32 len | tx_cmd ]
//   count x { u8 table | u32 key_len | key | u8 tag (0 delete, 1 put) | [u32 len | value] }
// Records written before format 2 have no metadata section (bit 31 clear) and
// still decode: their metadata is empty and their time unknown (0).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvstore/status.h"
#include "mvcc/keys.h"

namespace dbfs::mvcc {

// Who made a commit and why: kept with the commit (WAL COMMIT record, then
// the store's commit log) for `dbfs log`. The store adds the time.
struct CommitMeta {
  uint32_t uid = 0;
  int32_t pid = 0;
  std::string comm{};  // command name of `pid` (empty: unknown)
  uint64_t tx = 0;     // the explicit transaction it commits (0: an autocommit operation)
  std::string tx_cmd{};  // that transaction's root command line
  uint32_t flags = 0;  // kCommit* bits
};
// The daemon's own work (atime updates, reclaiming unlinked files, new
// directory generations): not shown by `dbfs log` unless asked.
inline constexpr uint32_t kCommitInternal = 1u << 0;
// Moves file data without changing what any file reads (a checkpoint's
// relocations): never a change for `dbfs diff`.
inline constexpr uint32_t kCommitSameContent = 1u << 1;
// Reclaims inodes an earlier commit unlinked (orphans): `dbfs revert` of that
// earlier commit brings them back.
inline constexpr uint32_t kCommitReclaim = 1u << 2;
// Only atime changed.
inline constexpr uint32_t kCommitAtime = 1u << 3;

// One stored version of a key.
struct Version {
  Csn csn;
  std::optional<std::string> value;  // nullopt = tombstone
};
// Versions of one logical key, ascending csn.
using Chain = std::vector<Version>;

struct Write {
  Table table;
  std::string key;                   // logical key
  std::optional<std::string> value;  // nullopt: delete (tombstone)
};

inline constexpr size_t kRedoCsnOffset = 0;
inline constexpr size_t kRedoTimeOffset = 20;
inline constexpr uint32_t kRedoHasMeta = 1u << 31;

// Format 2 (with metadata; time 0 until patched).
std::string EncodeRedo(Csn csn, uint64_t max_ino, const std::vector<Write>& writes,
                       const CommitMeta& meta);
// Format 1 (no metadata): what volumes made before format 2 hold. Tests only.
std::string EncodeRedoV1(Csn csn, uint64_t max_ino, const std::vector<Write>& writes);
// Patch the csn and the time of an encoded redo in place (both are assigned
// under the commit mutex, after encoding).
void PatchRedoCsn(std::string* redo, Csn csn);
void PatchRedoTime(std::string* redo, uint64_t time_ns);
struct Redo {
  Csn csn = 0;
  uint64_t max_ino = 0;
  bool has_meta = false;  // format 2
  uint64_t time_ns = 0;   // 0: unknown (format 1)
  CommitMeta meta;
  std::vector<Write> writes;
};
Result<Redo> DecodeRedo(std::string_view payload);

}  // namespace dbfs::mvcc
