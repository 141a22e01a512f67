// Logical redo of one committed transaction: the payload of a WAL COMMIT
// record. Replaying it (idempotently) reproduces the transaction's writes.
//
// Layout (little-endian):
//   u64 csn
//   u64 max_ino        highest inode number allocated so far (recovery bound)
//   u32 count
//   count x { u8 table | u32 key_len | key | u8 tag (0 delete, 1 put) | [u32 len | value] }
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kvstore/status.h"
#include "mvcc/keys.h"

namespace dbfs::mvcc {

struct Write {
  Table table;
  std::string key;                   // logical key
  std::optional<std::string> value;  // nullopt: delete (tombstone)
};

inline constexpr size_t kRedoCsnOffset = 0;

std::string EncodeRedo(Csn csn, uint64_t max_ino, const std::vector<Write>& writes);
// Patches the csn of an encoded redo in place (the csn is assigned under the
// commit mutex, after encoding).
void PatchRedoCsn(std::string* redo, Csn csn);
struct Redo {
  Csn csn = 0;
  uint64_t max_ino = 0;
  std::vector<Write> writes;
};
Result<Redo> DecodeRedo(std::string_view payload);

}  // namespace dbfs::mvcc
