// CRC-32C (Castagnoli), the checksum of every WAL record and of the superblock.
//
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
// run time), else a slicing-by-8 table. All functions are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dbfs::wal {

// CRC-32C of data[0, n) continuing from `init` (the CRC of the bytes before),
// so Crc32c(b, m, Crc32c(a, n)) == CRC of a followed by b. Crc32c("123456789")
// == 0xE3069283.
uint32_t Crc32c(const void* data, size_t n, uint32_t init = 0);
// Same as Crc32c(data, n, crc).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

// CRC of A followed by B, given crc_a = Crc32c(A), crc_b = Crc32c(B) and
// len_b = |B| (zlib's crc32_combine; O(log len_b)). Lets a caller checksum a
// payload before it knows the header that precedes it.
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

// A CRC stored next to the data it covers is masked (leveldb-style), because
// computing the CRC of a string that contains embedded CRCs is error-prone.
uint32_t MaskCrc(uint32_t crc);
uint32_t UnmaskCrc(uint32_t masked);

// The two implementations, exposed for tests and benchmarks.
bool Crc32cHardwareAvailable();
uint32_t Crc32cExtendSoftware(uint32_t crc, const void* data, size_t n);
// REQUIRES: Crc32cHardwareAvailable().
uint32_t Crc32cExtendHardware(uint32_t crc, const void* data, size_t n);

}  // namespace dbfs::wal
