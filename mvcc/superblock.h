// Superblock: the identity of a DBFS volume, stored in VOLUME/superblock.
//
// A directory is a DBFS volume exactly when it holds a valid superblock. The
// file is one fixed 512-byte block (layout in docs/superblock_format.md and at
// EncodeSuperblock); it is written once by mkfs.dbfs and read by every tool
// before it touches meta/ or wal/. It is replaced only atomically (temp file
// + rename), so a reader sees the old or the new block, never a torn one.
//
// Thread-safety: the functions are stateless; concurrent writers of the same
// volume must be serialized by the caller (VolumeLock does that).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kvstore/status.h"

namespace dbfs {

inline constexpr char kSuperblockMagic[6] = {'D', 'B', 'F', 'S', '0', '1'};
// 2: COMMIT records carry metadata (mvcc/redo.h), LMDB has the history
// tables (snapshots, commitlog). A format-1 volume is read as it is and
// upgraded to 2 by its first read-write open (LocalStore::Open), before
// anything new is written: builds that know only format 1 then refuse it
// instead of misreading the new COMMIT records.
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kMinFormatVersion = 1;

// ---- on-disk layout constants (docs/superblock_format.md) ----
// Every format version keeps the block size, the magic at 0, format_version at
// 8 and the CRC at 508, so an old build can always tell "damaged" from "newer".
inline constexpr size_t kSuperblockSize = 512;
inline constexpr size_t kSuperblockMagicOffset = 0;
inline constexpr size_t kSuperblockVersionOffset = 8;
inline constexpr size_t kSuperblockBlockSizeOffset = 12;
inline constexpr size_t kSuperblockChunkSizeOffset = 16;
inline constexpr size_t kSuperblockCreatedOffset = 24;
inline constexpr size_t kSuperblockUuidOffset = 32;
inline constexpr size_t kSuperblockUuidSize = 16;
inline constexpr size_t kSuperblockReservedOffset = kSuperblockUuidOffset + kSuperblockUuidSize;
inline constexpr size_t kSuperblockCrcOffset = kSuperblockSize - 4;  // crc32c over [0, 508)

inline constexpr char kSuperblockFileName[] = "superblock";

// Accepted geometry: both sizes powers of two, with
// kMinBlockSize <= block_size <= chunk_size <= kMaxChunkSize.
inline constexpr uint32_t kMinBlockSize = 512;
inline constexpr uint32_t kMaxChunkSize = uint32_t{1} << 30;

struct Superblock {
  std::string uuid;  // 16 random bytes (RFC 4122 version-4 bits set)
  uint32_t format_version = kFormatVersion;
  uint64_t created_ns = 0;  // CLOCK_REALTIME nanoseconds
  uint32_t block_size = 4096;
  uint32_t chunk_size = 1 << 20;  // file data chunking unit

  // 8-4-4-4-12 lowercase hex form, e.g. "1b4e28ba-2fa1-41d2-883f-0016d3cca427".
  std::string UuidString() const;
};

// A superblock for a new volume: fresh random uuid, created now, default
// geometry. Aborts if the kernel cannot supply random bytes (it always can on
// Linux >= 3.17 once booted).
Superblock NewSuperblock();

// Reads and validates VOLUME/superblock. Errors (one sentence, naming the path):
//   missing file             -> NotFound   "X is not a DBFS volume (no superblock)"
//   wrong size or magic      -> Invalid    "X is not a DBFS volume (bad magic)"
//   CRC mismatch             -> Corruption "X: superblock checksum mismatch; run fsck.dbfs"
//   unknown format version   -> NotSupported
//       "X: format version N is not supported (this build supports 1 to 2)"
//   impossible geometry      -> Corruption "X: superblock has invalid ...; run fsck.dbfs"
//   volume_dir missing / not a directory, I/O errors -> the errno's Status.
Result<Superblock> ReadSuperblock(const std::string& volume_dir);

// Writes VOLUME/superblock atomically and durably (temp file, fsync, rename,
// fsync of the directory). On return the new superblock survives power loss.
// REQUIRES: sb.uuid has 16 bytes, the geometry is valid (Invalid otherwise),
// and the caller holds the volume's VolumeLock or otherwise owns the volume.
Status WriteSuperblock(const std::string& volume_dir, const Superblock& sb);

// The 512-byte encoding of `sb`, CRC included. Exposed for fsck and tests.
std::string EncodeSuperblock(const Superblock& sb);
// Parses and validates a 512-byte block; `volume_dir` only names the volume in
// error messages. Same errors as ReadSuperblock.
Result<Superblock> DecodeSuperblock(std::string_view block, const std::string& volume_dir);

}  // namespace dbfs
