// Fixed-width integer encoding.
//
// Keys use big-endian so that byte order equals numeric order (LMDB compares
// keys with memcmp). Values and WAL payloads use little-endian, the native
// order of every machine DBFS targets; each encoder says which it writes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace dbfs {

inline void PutBE64(std::string* dst, uint64_t v) {
  char b[8];
  for (int i = 7; i >= 0; --i) { b[i] = static_cast<char>(v & 0xff); v >>= 8; }
  dst->append(b, 8);
}
inline void PutBE32(std::string* dst, uint32_t v) {
  char b[4];
  for (int i = 3; i >= 0; --i) { b[i] = static_cast<char>(v & 0xff); v >>= 8; }
  dst->append(b, 4);
}
inline uint64_t GetBE64(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}
inline uint32_t GetBE32(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | b[i];
  return v;
}
inline void EncodeBE64(char* dst, uint64_t v) {
  for (int i = 7; i >= 0; --i) { dst[i] = static_cast<char>(v & 0xff); v >>= 8; }
}
inline void EncodeBE32(char* dst, uint32_t v) {
  for (int i = 3; i >= 0; --i) { dst[i] = static_cast<char>(v & 0xff); v >>= 8; }
}

inline void EncodeLE64(char* dst, uint64_t v) { for (int i = 0; i < 8; ++i) { dst[i] = static_cast<char>(v & 0xff); v >>= 8; } }
inline void EncodeLE32(char* dst, uint32_t v) { for (int i = 0; i < 4; ++i) { dst[i] = static_cast<char>(v & 0xff); v >>= 8; } }
inline void EncodeLE16(char* dst, uint16_t v) { dst[0] = static_cast<char>(v & 0xff); dst[1] = static_cast<char>(v >> 8); }
inline uint64_t DecodeLE64(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}
inline uint32_t DecodeLE32(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}
inline uint16_t DecodeLE16(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | b[1] << 8);
}
inline void PutLE64(std::string* d, uint64_t v) { char b[8]; EncodeLE64(b, v); d->append(b, 8); }
inline void PutLE32(std::string* d, uint32_t v) { char b[4]; EncodeLE32(b, v); d->append(b, 4); }
inline void PutLE16(std::string* d, uint16_t v) { char b[2]; EncodeLE16(b, v); d->append(b, 2); }
inline void PutU8(std::string* d, uint8_t v) { d->push_back(static_cast<char>(v)); }

// Length-prefixed bytes (LE32 length).
inline void PutBytes(std::string* d, std::string_view s) {
  PutLE32(d, static_cast<uint32_t>(s.size()));
  d->append(s);
}

// A bounds-checked little-endian reader over a byte range. Every Get
// returns false (and leaves the reader failed) when the input is short, so a
// decoder can check once at the end.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) { if (!Need(1)) return false; *v = static_cast<uint8_t>(in_[0]); in_.remove_prefix(1); return true; }
  bool LE16(uint16_t* v) { if (!Need(2)) return false; *v = DecodeLE16(in_.data()); in_.remove_prefix(2); return true; }
  bool LE32(uint32_t* v) { if (!Need(4)) return false; *v = DecodeLE32(in_.data()); in_.remove_prefix(4); return true; }
  bool LE64(uint64_t* v) { if (!Need(8)) return false; *v = DecodeLE64(in_.data()); in_.remove_prefix(8); return true; }
  bool Bytes(std::string_view* v) {
    uint32_t n;
    if (!LE32(&n) || !Need(n)) return false;
    *v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  bool Raw(size_t n, std::string_view* v) { if (!Need(n)) return false; *v = in_.substr(0, n); in_.remove_prefix(n); return true; }
  std::string_view rest() const { return in_; }
  bool empty() const { return in_.empty(); }
  bool failed() const { return failed_; }

 private:
  bool Need(size_t n) { if (in_.size() < n) { failed_ = true; return false; } return true; }
  std::string_view in_;
  bool failed_ = false;
};

}  // namespace dbfs
