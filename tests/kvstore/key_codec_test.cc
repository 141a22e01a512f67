#include "kvstore/key_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace dbfs::kv {
namespace {

TEST(KeyBuilderTest, WritesBigEndianFixedWidth) {
  KeyBuilder b;
  b.U8(0xab).U32(0x01020304).U64(0x0102030405060708ull);
  const std::string expected("\xab\x01\x02\x03\x04\x01\x02\x03\x04\x05\x06\x07\x08", 13);
  EXPECT_EQ(b.Build(), expected);
}

TEST(KeyBuilderTest, BytesAndNul) {
  const std::string k = KeyBuilder().U64(7).Bytes("name").Nul().U64(9).Take();
  ASSERT_EQ(k.size(), 8u + 4u + 1u + 8u);
  EXPECT_EQ(k.substr(8, 5), std::string("name\0", 5));
  EXPECT_EQ(KeyBuilder().U64(7).Str("name").Nul().U64(9).Build(), k);
}

TEST(KeyBuilderTest, TakeLeavesBuilderEmptyAndReusable) {
  KeyBuilder b;
  b.U32(1);
  std::string first = b.Take();
  EXPECT_EQ(first.size(), 4u);
  EXPECT_TRUE(b.Build().empty());
  b.U8(5);
  EXPECT_EQ(b.Build(), std::string("\x05", 1));
}

TEST(KeyReaderTest, RoundTrip) {
  const uint64_t big = (uint64_t{1} << 40) + 12345;
  const std::string k = KeyBuilder()
                            .U8(200)
                            .U32(0xdeadbeef)
                            .U64(big)
                            .Bytes("hello")
                            .Nul()
                            .Bytes("")
                            .Nul()
                            .U64(std::numeric_limits<uint64_t>::max())
                            .Bytes("tail")
                            .Take();
  KeyReader r(k);
  uint8_t a = 0;
  uint32_t b = 0;
  uint64_t c = 0, d = 0;
  std::string_view s1, s2, raw;
  ASSERT_TRUE(r.U8(&a));
  ASSERT_TRUE(r.U32(&b));
  ASSERT_TRUE(r.U64(&c));
  ASSERT_TRUE(r.BytesUntilNul(&s1));
  ASSERT_TRUE(r.BytesUntilNul(&s2));
  ASSERT_TRUE(r.U64(&d));
  EXPECT_EQ(r.rest(), "tail");
  ASSERT_TRUE(r.Raw(4, &raw));
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(a, 200);
  EXPECT_EQ(b, 0xdeadbeefu);
  EXPECT_EQ(c, big);
  EXPECT_EQ(s1, "hello");
  EXPECT_EQ(s2, "");
  EXPECT_EQ(d, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(raw, "tail");
}

TEST(KeyReaderTest, ShortInputFailsAndConsumesNothing) {
  const std::string three("\x01\x02\x03", 3);
  KeyReader r(three);
  uint32_t v32 = 77;
  uint64_t v64 = 77;
  std::string_view sv;
  EXPECT_FALSE(r.U32(&v32));
  EXPECT_FALSE(r.U64(&v64));
  EXPECT_FALSE(r.Raw(4, &sv));
  EXPECT_FALSE(r.BytesUntilNul(&sv));  // no NUL anywhere
  EXPECT_EQ(v32, 77u);                 // untouched on failure
  EXPECT_EQ(v64, 77u);
  EXPECT_EQ(r.rest().size(), 3u);  // nothing consumed
  uint8_t b = 0;
  ASSERT_TRUE(r.U8(&b));
  EXPECT_EQ(b, 1);
  ASSERT_TRUE(r.Raw(2, &sv));
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.U8(&b));
}

TEST(KeyReaderTest, EmptyInput) {
  KeyReader r("");
  uint8_t b;
  std::string_view sv;
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.U8(&b));
  EXPECT_FALSE(r.BytesUntilNul(&sv));
  EXPECT_TRUE(r.Raw(0, &sv));
  EXPECT_TRUE(sv.empty());
}

// Byte order of encoded keys must equal numeric order: LMDB compares with memcmp.
TEST(KeyCodecTest, ByteOrderEqualsNumericOrder) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const uint64_t edges[] = {0,
                            1,
                            255,
                            256,
                            (uint64_t{1} << 32) - 1,
                            uint64_t{1} << 32,
                            (uint64_t{1} << 32) + 1,
                            uint64_t{1} << 63,
                            std::numeric_limits<uint64_t>::max()};
  auto pick = [&](int i) -> uint64_t {
    if (i % 3 == 0) return edges[rng() % std::size(edges)];
    if (i % 3 == 1) return rng() >> (rng() % 64);  // small and large magnitudes
    return rng();
  };
  for (int i = 0; i < 20000; ++i) {
    const uint64_t a = pick(i), b = pick(i + 1);
    const std::string ka = KeyBuilder().U64(a).Take();
    const std::string kb = KeyBuilder().U64(b).Take();
    ASSERT_EQ(a < b, ka < kb) << a << " vs " << b;
    ASSERT_EQ(a == b, ka == kb);
    const uint32_t a32 = static_cast<uint32_t>(a), b32 = static_cast<uint32_t>(b >> 7);
    ASSERT_EQ(a32 < b32, KeyBuilder().U32(a32).Take() < KeyBuilder().U32(b32).Take());
  }
}

// A NUL-terminated name sorts before its extensions: ("ab", x) < ("abc", y).
TEST(KeyCodecTest, NulTerminatedNamesSortBeforeExtensions) {
  const std::string ab = KeyBuilder().U64(1).Bytes("ab").Nul().U64(~uint64_t{0}).Take();
  const std::string abc = KeyBuilder().U64(1).Bytes("abc").Nul().U64(0).Take();
  EXPECT_LT(ab, abc);
}

}  // namespace
}  // namespace dbfs::kv
