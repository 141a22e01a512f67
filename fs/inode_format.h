// Value formats of the filesystem's tables (see mvcc/keys.h for the keys and
// docs/ARCHITECTURE.md for the prose spec). All little-endian.
//
// Inode value (inodes table), format byte 1:
//   0  u8  format (1)        1 u8[3] zero
//   4  u32 mode              8 u32 uid         12 u32 gid      16 u32 flags (0)
//  20  u64 nlink            28 u64 size        36 u64 alloc_bytes (bytes held by data slices)
//  44  u64 rdev             52 u64 generation  60 u64 parent (directories: parent ino)
//  68  atime, mtime, ctime, btime: each i64 seconds + u32 nanoseconds (12 bytes) -> 116
// 116  u32 target length, target bytes (symlinks)
//
// Dirent value (dirents table): u64 child ino | u32 child mode (S_IFMT bits)
//
// Extent value (extents table) = the slice list of one chunk (chunk_size
// bytes of the file, default 1 MiB), sorted by offset, non-overlapping:
//   u16 count, count x { u32 offset in chunk | u32 length | u32 WAL segment | u64 segment offset }
// Bytes of the chunk not covered by a slice are zeros (holes).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/coding.h"
#include "kvstore/status.h"

namespace dbfs {

struct Inode {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t flags = 0;
  uint64_t nlink = 0;
  uint64_t size = 0;
  uint64_t alloc = 0;
  uint64_t rdev = 0;
  uint64_t generation = 1;
  uint64_t parent = 0;
  timespec atime{}, mtime{}, ctime{}, btime{};
  std::string target;

  bool IsDir() const { return S_ISDIR(mode); }
  bool IsReg() const { return S_ISREG(mode); }
};

inline constexpr uint8_t kInodeFormat = 1;
inline constexpr size_t kInodeFixedSize = 116;

inline void PutTime(std::string* d, const timespec& t) {
  PutLE64(d, static_cast<uint64_t>(t.tv_sec));
  PutLE32(d, static_cast<uint32_t>(t.tv_nsec));
}

inline std::string EncodeInode(const Inode& n) {
  std::string d;
  d.reserve(kInodeFixedSize + 4 + n.target.size());
  PutU8(&d, kInodeFormat);
  d.append(3, '\0');
  PutLE32(&d, n.mode);
  PutLE32(&d, n.uid);
  PutLE32(&d, n.gid);
  PutLE32(&d, n.flags);
  PutLE64(&d, n.nlink);
  PutLE64(&d, n.size);
  PutLE64(&d, n.alloc);
  PutLE64(&d, n.rdev);
  PutLE64(&d, n.generation);
  PutLE64(&d, n.parent);
  PutTime(&d, n.atime);
  PutTime(&d, n.mtime);
  PutTime(&d, n.ctime);
  PutTime(&d, n.btime);
  PutBytes(&d, n.target);
  return d;
}

inline Result<Inode> DecodeInode(std::string_view v) {
  Decoder d(v);
  Inode n;
  uint8_t fmt = 0;
  std::string_view pad, target;
  uint64_t s[4];
  uint32_t ns[4];
  bool ok = d.U8(&fmt) && d.Raw(3, &pad) && d.LE32(&n.mode) && d.LE32(&n.uid) && d.LE32(&n.gid) &&
            d.LE32(&n.flags) && d.LE64(&n.nlink) && d.LE64(&n.size) && d.LE64(&n.alloc) &&
            d.LE64(&n.rdev) && d.LE64(&n.generation) && d.LE64(&n.parent);
  for (int i = 0; ok && i < 4; ++i) ok = d.LE64(&s[i]) && d.LE32(&ns[i]);
  ok = ok && d.Bytes(&target) && d.empty();
  if (!ok || fmt != kInodeFormat) return Status::Corruption("malformed inode record");
  timespec* t[4] = {&n.atime, &n.mtime, &n.ctime, &n.btime};
  for (int i = 0; i < 4; ++i) {
    t[i]->tv_sec = static_cast<time_t>(s[i]);
    t[i]->tv_nsec = ns[i];
  }
  n.target = std::string(target);
  return n;
}

inline std::string EncodeDirent(uint64_t ino, uint32_t type) {
  std::string d;
  PutLE64(&d, ino);
  PutLE32(&d, type);
  return d;
}

inline bool DecodeDirent(std::string_view v, uint64_t* ino, uint32_t* type) {
  if (v.size() != 12) return false;
  *ino = DecodeLE64(v.data());
  *type = DecodeLE32(v.data() + 8);
  return true;
}

struct Slice {
  uint32_t off = 0;  // offset inside the chunk
  uint32_t len = 0;
  uint32_t segment = 0;
  uint64_t data = 0;  // segment file offset of the byte at `off`
  uint32_t end() const { return off + len; }
};
using SliceList = std::vector<Slice>;

inline constexpr size_t kSliceSize = 20;

// Encoded and decoded on every write of a chunk (lists of up to 256
// slices): one allocation, no per-field appends or checks.
inline std::string EncodeSlices(const SliceList& l) {
  std::string d(2 + l.size() * kSliceSize, '\0');
  char* p = d.data();
  EncodeLE16(p, static_cast<uint16_t>(l.size()));
  p += 2;
  for (const auto& s : l) {
    EncodeLE32(p, s.off);
    EncodeLE32(p + 4, s.len);
    EncodeLE32(p + 8, s.segment);
    EncodeLE64(p + 12, s.data);
    p += kSliceSize;
  }
  return d;
}

inline Result<SliceList> DecodeSlices(std::string_view v) {
  if (v.size() < 2) return Status::Corruption("malformed extent record");
  const size_t n = DecodeLE16(v.data());
  if (v.size() != 2 + n * kSliceSize) return Status::Corruption("malformed extent record");
  SliceList l(n);
  const char* p = v.data() + 2;
  for (auto& s : l) {
    s.off = DecodeLE32(p);
    s.len = DecodeLE32(p + 4);
    s.segment = DecodeLE32(p + 8);
    s.data = DecodeLE64(p + 12);
    p += kSliceSize;
  }
  return l;
}

// Calls fn(slice) for each slice of an encoded list, in order, without
// building the list; stops at the first error fn returns.
template <typename Fn>
Status ForEachSlice(std::string_view v, Fn&& fn) {
  if (v.size() < 2) return Status::Corruption("malformed extent record");
  const size_t n = DecodeLE16(v.data());
  if (v.size() != 2 + n * kSliceSize) return Status::Corruption("malformed extent record");
  const char* p = v.data() + 2;
  for (size_t i = 0; i < n; ++i, p += kSliceSize) {
    Status st = fn(Slice{DecodeLE32(p), DecodeLE32(p + 4), DecodeLE32(p + 8), DecodeLE64(p + 12)});
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace dbfs
