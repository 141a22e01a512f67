// WAL on-disk format: constants, LSNs, segment file names and the record
// header codec. docs/wal_format.md is the prose spec; this header is the one
// place the numbers live.
//
// A record (all integers little-endian; header is kHeaderSize = 32 bytes):
//    0  u32  masked crc32c over bytes [4, 32 + length): rest of header + payload
//    4  u32  payload length
//    8  u8   type (RecordType)
//    9  u8[3] reserved, zero
//   12  u32  segment number (redundant: catches misplaced files)
//   16  u64  LSN of this record's first byte
//   24  u64  synced_lsn: every byte of the log before it was durable when this
//            record was appended
//   32  payload
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "kvstore/coding.h"

namespace dbfs::wal {

enum class RecordType : uint8_t { kData = 1, kCommit = 2, kSegmentHeader = 3 };

// LSN = (segment << 32) | byte offset inside the segment file. LSNs order the
// whole log: every byte of segment N comes before every byte of segment N+1.
using Lsn = uint64_t;
inline uint32_t LsnSegment(Lsn l) { return static_cast<uint32_t>(l >> 32); }
inline uint64_t LsnOffset(Lsn l) { return l & 0xffffffffull; }
inline Lsn MakeLsn(uint32_t seg, uint64_t off) {
  assert(off <= 0xffffffffull);  // segments are capped below 4 GiB (see kMaxSegmentSize)
  return (static_cast<uint64_t>(seg) << 32) | off;
}

// Header field offsets.
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kCrcOffset = 0;
inline constexpr size_t kLengthOffset = 4;
inline constexpr size_t kTypeOffset = 8;
inline constexpr size_t kReservedOffset = 9;
inline constexpr size_t kReservedSize = 3;
inline constexpr size_t kSegmentOffset = 12;
inline constexpr size_t kLsnOffset = 16;
inline constexpr size_t kSyncedLsnOffset = 24;
// The CRC covers everything after itself.
inline constexpr size_t kCrcCoverStart = kLengthOffset;
static_assert(kLengthOffset == kCrcOffset + 4);
static_assert(kTypeOffset == kLengthOffset + 4);
static_assert(kReservedOffset == kTypeOffset + 1);
static_assert(kSegmentOffset == kReservedOffset + kReservedSize);
static_assert(kLsnOffset == kSegmentOffset + 4);
static_assert(kSyncedLsnOffset == kLsnOffset + 8);
static_assert(kHeaderSize == kSyncedLsnOffset + 8);

// Segment header record payload: 16-byte volume uuid, u32 format version.
inline constexpr size_t kUuidSize = 16;
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderPayloadSize = kUuidSize + 4;
// Offset of the first DATA/COMMIT record in every segment.
inline constexpr uint64_t kSegmentDataStart = kHeaderSize + kSegmentHeaderPayloadSize;
static_assert(kSegmentDataStart == 52);

// Limits. A record never spans segments, and every offset must fit the 32
// low bits of an LSN: the largest segment is kMaxSegmentSize of records plus
// one more oversized record that starts right after the segment header.
inline constexpr uint32_t kMaxPayloadSize = 1u << 30;
inline constexpr uint64_t kMaxSegmentSize = 1ull << 31;
static_assert(kMaxSegmentSize + kHeaderSize + kMaxPayloadSize < (1ull << 32));
static_assert(kSegmentDataStart + kHeaderSize + kMaxPayloadSize < (1ull << 32));

// Segment files are named "%08u.wal"; numbers start at 1.
inline std::string SegmentFileName(uint32_t seg) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08u.wal", seg);
  return buf;
}
inline std::string SegmentPath(const std::string& dir, uint32_t seg) {
  return dir + "/" + SegmentFileName(seg);
}
// True for names SegmentFileName produces (at least 8 digits, ".wal").
inline bool ParseSegmentFileName(std::string_view name, uint32_t* seg) {
  constexpr std::string_view kSuffix = ".wal";
  if (name.size() < 8 + kSuffix.size() || name.size() > 10 + kSuffix.size()) return false;
  if (name.substr(name.size() - kSuffix.size()) != kSuffix) return false;
  uint64_t v = 0;
  for (char c : name.substr(0, name.size() - kSuffix.size())) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0 || v > 0xffffffffull) return false;
  if (SegmentFileName(static_cast<uint32_t>(v)) != name) return false;  // canonical only
  *seg = static_cast<uint32_t>(v);
  return true;
}

// A decoded header. `type` is the raw byte: it may hold a value that is not a
// RecordType when the header is damaged.
struct RecordHeader {
  uint32_t masked_crc = 0;
  uint32_t length = 0;
  uint8_t type = 0;
  uint8_t reserved[kReservedSize] = {0, 0, 0};
  uint32_t segment = 0;
  Lsn lsn = 0;
  Lsn synced_lsn = 0;
};

// Writes bytes [4, 32) of a header; the caller computes the CRC over them and
// the payload and stores it with EncodeLE32(h + kCrcOffset, MaskCrc(crc)).
inline void EncodeHeaderFields(char* h, RecordType type, uint32_t length, uint32_t segment, Lsn lsn,
                               Lsn synced_lsn) {
  EncodeLE32(h + kLengthOffset, length);
  h[kTypeOffset] = static_cast<char>(type);
  for (size_t i = 0; i < kReservedSize; ++i) h[kReservedOffset + i] = 0;
  EncodeLE32(h + kSegmentOffset, segment);
  EncodeLE64(h + kLsnOffset, lsn);
  EncodeLE64(h + kSyncedLsnOffset, synced_lsn);
}

inline RecordHeader DecodeHeader(const char* h) {
  RecordHeader r;
  r.masked_crc = DecodeLE32(h + kCrcOffset);
  r.length = DecodeLE32(h + kLengthOffset);
  r.type = static_cast<uint8_t>(h[kTypeOffset]);
  for (size_t i = 0; i < kReservedSize; ++i)
    r.reserved[i] = static_cast<uint8_t>(h[kReservedOffset + i]);
  r.segment = DecodeLE32(h + kSegmentOffset);
  r.lsn = DecodeLE64(h + kLsnOffset);
  r.synced_lsn = DecodeLE64(h + kSyncedLsnOffset);
  return r;
}

}  // namespace dbfs::wal
