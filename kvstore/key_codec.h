// Big-endian key codec: builds and parses LMDB keys.
//
// LMDB orders keys with memcmp, so every integer in a key is written
// big-endian: byte order then equals numeric order, and a cursor walks keys
// in numeric order. Variable-length strings inside a key are NUL-terminated
// (Nul()) so that a shorter string sorts before its extensions and no key is
// a prefix of a differently-split key.
//
//   std::string k = KeyBuilder().U64(parent).Bytes(name).Nul().U64(~csn).Take();
//
//   KeyReader r(k);
//   uint64_t parent, ncsn; std::string_view name;
//   if (!r.U64(&parent) || !r.BytesUntilNul(&name) || !r.U64(&ncsn) || !r.empty()) -> bad key
//
// Both classes are plain values; not thread-safe (use one per thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "kvstore/coding.h"

namespace dbfs::kv {

class KeyBuilder {
 public:
  KeyBuilder() = default;

  KeyBuilder& U8(uint8_t v) {
    buf_.push_back(static_cast<char>(v));
    return *this;
  }
  // Big-endian, 4 bytes.
  KeyBuilder& U32(uint32_t v) {
    PutBE32(&buf_, v);
    return *this;
  }
  // Big-endian, 8 bytes.
  KeyBuilder& U64(uint64_t v) {
    PutBE64(&buf_, v);
    return *this;
  }
  // Raw bytes, no length prefix and no terminator.
  KeyBuilder& Bytes(std::string_view s) {
    buf_.append(s);
    return *this;
  }
  // Same as Bytes(); reads better before Nul() for names.
  KeyBuilder& Str(std::string_view s) { return Bytes(s); }
  // A single 0x00 byte (terminates a preceding Bytes()).
  KeyBuilder& Nul() {
    buf_.push_back('\0');
    return *this;
  }

  // A reference into the builder. On a temporary builder it is valid only
  // until the end of the full expression: copy it, or use Take().
  const std::string& Build() const { return buf_; }
  // Moves the key out; the builder is left empty and reusable.
  std::string Take() {
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

 private:
  std::string buf_;
};

// A bounds-checked big-endian parser over a key. A getter that fails (short
// input, or no NUL for BytesUntilNul) returns false and consumes nothing.
// Views returned point into the parsed key: they live as long as it does.
class KeyReader {
 public:
  explicit KeyReader(std::string_view key) : in_(key) {}

  bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    *v = GetBE32(in_.data());
    in_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = GetBE64(in_.data());
    in_.remove_prefix(8);
    return true;
  }
  // *v = the bytes before the next 0x00; the 0x00 is consumed too.
  bool BytesUntilNul(std::string_view* v) {
    const size_t pos = in_.find('\0');
    if (pos == std::string_view::npos) return false;
    *v = in_.substr(0, pos);
    in_.remove_prefix(pos + 1);
    return true;
  }
  bool Raw(size_t n, std::string_view* v) {
    if (in_.size() < n) return false;
    *v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

  std::string_view rest() const { return in_; }
  bool empty() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace dbfs::kv
