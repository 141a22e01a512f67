// Value formats of the store's history tables (docs/ARCHITECTURE.md §11.1).
// Both tables are plain (not versioned) LMDB tables written only by the
// LocalStore; fsck reads them too.
//
//   snapshots  name -> u8 format (1) | u64 csn | u64 time_ns | u32 uid
//   commitlog  BE64(csn) -> u8 format (1) | u64 time_ns | u32 uid | i32 pid | u64 tx
//                           | u32 flags | u32 len | comm | u32 len | tx_cmd
//                           | u32 nkeys | nkeys x { u8 table | u32 len | key }
// All integers in values little-endian.
#pragma once

#include <string>
#include <string_view>

#include "kvstore/status.h"
#include "mvcc/store.h"

namespace dbfs::mvcc {

inline constexpr const char* kSnapshotsTableName = "snapshots";
inline constexpr const char* kCommitLogTableName = "commitlog";
// meta: every state at a CSN >= this is kept (LE64).
inline constexpr std::string_view kMetaHistoryHorizon = "history_horizon";
inline constexpr uint8_t kHistoryRecordFormat = 1;
// Snapshot names: 1..255 bytes, no NUL or '/'.
inline constexpr size_t kSnapshotNameMax = 255;

std::string EncodeSnapshotRecord(const NamedSnapshot& s);
Result<NamedSnapshot> DecodeSnapshotRecord(std::string_view name, std::string_view value);

std::string LogKey(Csn csn);
std::string EncodeLogRecord(const CommitRecord& r);
// `key` is the BE64 csn.
Result<CommitRecord> DecodeLogRecord(std::string_view key, std::string_view value);

}  // namespace dbfs::mvcc
