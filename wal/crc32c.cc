#include "wal/crc32c.h"

#include <array>
#include <cstring>

#include "kvstore/coding.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace dbfs::wal {
namespace {

constexpr uint32_t kPolyReflected = 0x82F63B78u;  // Castagnoli, bit-reversed
constexpr uint32_t kMaskDelta = 0xa282ead8u;

// kTables[k][b]: the CRC state change of byte b followed by k zero bytes.
using Tables = std::array<std::array<uint32_t, 256>, 8>;
constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolyReflected : c >> 1;
    t[0][i] = c;
  }
  for (size_t s = 1; s < 8; ++s) {
    for (uint32_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}
constexpr Tables kTables = MakeTables();

// Raw (non-inverted) state update over data.
uint32_t UpdateSoftware(uint32_t l, const uint8_t* p, size_t n) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = kTables[0][(l ^ *p++) & 0xff] ^ (l >> 8);
    --n;
  }
  while (n >= 8) {
    const uint32_t lo = DecodeLE32(p) ^ l;
    const uint32_t hi = DecodeLE32(p + 4);
    l = kTables[7][lo & 0xff] ^ kTables[6][(lo >> 8) & 0xff] ^ kTables[5][(lo >> 16) & 0xff] ^
        kTables[4][lo >> 24] ^ kTables[3][hi & 0xff] ^ kTables[2][(hi >> 8) & 0xff] ^
        kTables[1][(hi >> 16) & 0xff] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) l = kTables[0][(l ^ *p++) & 0xff] ^ (l >> 8);
  return l;
}

#if defined(__x86_64__)
// The hardware path runs three independent crc32 chains over adjacent blocks
// (the instruction has a latency of 3 and a throughput of 1), then merges them
// with a precomputed "shift state over kBlock zero bytes" operator.
constexpr size_t kBlock = 8192;

struct ShiftTable {
  std::array<std::array<uint32_t, 256>, 4> t;
};

// Shift(x) = state after feeding kBlock zero bytes starting from state x. It is
// linear over GF(2), so a table per input byte suffices.
ShiftTable MakeShiftTable() {
  std::array<uint32_t, 32> basis;
  for (int bit = 0; bit < 32; ++bit) {
    uint32_t l = 1u << bit;
    for (size_t i = 0; i < kBlock; ++i) l = kTables[0][l & 0xff] ^ (l >> 8);
    basis[bit] = l;
  }
  ShiftTable s;
  for (int k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t v = 0;
      for (int bit = 0; bit < 8; ++bit) {
        if (b & (1u << bit)) v ^= basis[8 * k + bit];
      }
      s.t[k][b] = v;
    }
  }
  return s;
}

const ShiftTable& Shift() {
  static const ShiftTable table = MakeShiftTable();
  return table;
}

uint32_t ShiftBlock(const ShiftTable& s, uint32_t x) {
  return s.t[0][x & 0xff] ^ s.t[1][(x >> 8) & 0xff] ^ s.t[2][(x >> 16) & 0xff] ^ s.t[3][x >> 24];
}

__attribute__((target("sse4.2"))) uint32_t UpdateHardware(uint32_t l, const uint8_t* p, size_t n) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = _mm_crc32_u8(l, *p++);
    --n;
  }
  if (n >= 3 * kBlock) {
    const ShiftTable& shift = Shift();
    while (n >= 3 * kBlock) {
      uint64_t a = l, b = 0, c = 0;
      const uint8_t* pa = p;
      const uint8_t* pb = p + kBlock;
      const uint8_t* pc = p + 2 * kBlock;
      for (size_t i = 0; i < kBlock; i += 8) {
        uint64_t va, vb, vc;
        std::memcpy(&va, pa + i, 8);
        std::memcpy(&vb, pb + i, 8);
        std::memcpy(&vc, pc + i, 8);
        a = _mm_crc32_u64(a, va);
        b = _mm_crc32_u64(b, vb);
        c = _mm_crc32_u64(c, vc);
      }
      // U(s, A|B|C) = Shift(Shift(U(s,A)) ^ U(0,B)) ^ U(0,C).
      l = ShiftBlock(shift,
                     ShiftBlock(shift, static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^
          static_cast<uint32_t>(c);
      p += 3 * kBlock;
      n -= 3 * kBlock;
    }
  }
  uint64_t l64 = l;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    l64 = _mm_crc32_u64(l64, v);
    p += 8;
    n -= 8;
  }
  l = static_cast<uint32_t>(l64);
  while (n-- > 0) l = _mm_crc32_u8(l, *p++);
  return l;
}
#endif

bool DetectHardware() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

// Polynomial arithmetic modulo P over GF(2), bit-reflected (zlib's crc32.c):
// a * b mod P. REQUIRES: a != 0 (always some x^n mod P here, never zero).
constexpr uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  while (true) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPolyReflected : b >> 1;
  }
  return p;
}

// kX2n[k] = x^(2^k) mod P.
using X2nTable = std::array<uint32_t, 32>;
constexpr X2nTable MakeX2nTable() {
  X2nTable t{};
  uint32_t p = 1u << 30;  // x^1
  t[0] = p;
  for (size_t k = 1; k < 32; ++k) t[k] = p = MultModP(p, p);
  return t;
}
constexpr X2nTable kX2n = MakeX2nTable();

// x^(n * 2^k) mod P.
uint32_t X2nModP(uint64_t n, unsigned k) {
  uint32_t p = 1u << 31;  // x^0 == 1
  while (n) {
    if (n & 1) p = MultModP(kX2n[k & 31], p);
    n >>= 1;
    ++k;
  }
  return p;
}

}  // namespace

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  return MultModP(X2nModP(len_b, 3), crc_a) ^ crc_b;
}

bool Crc32cHardwareAvailable() {
  static const bool available = DetectHardware();
  return available;
}

uint32_t Crc32cExtendSoftware(uint32_t crc, const void* data, size_t n) {
  return ~UpdateSoftware(~crc, static_cast<const uint8_t*>(data), n);
}

uint32_t Crc32cExtendHardware(uint32_t crc, const void* data, size_t n) {
#if defined(__x86_64__)
  return ~UpdateHardware(~crc, static_cast<const uint8_t*>(data), n);
#else
  return Crc32cExtendSoftware(crc, data, n);
#endif
}

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  return Crc32cHardwareAvailable() ? Crc32cExtendHardware(crc, data, n)
                                   : Crc32cExtendSoftware(crc, data, n);
}

uint32_t Crc32c(const void* data, size_t n, uint32_t init) { return Crc32cExtend(init, data, n); }

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }

uint32_t UnmaskCrc(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

}  // namespace dbfs::wal
