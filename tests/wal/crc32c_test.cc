#include "wal/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace dbfs::wal {
namespace {

uint32_t Crc(const std::string& s) { return Crc32c(s.data(), s.size()); }

// Vectors from RFC 3720 (iSCSI), section B.4, and the common check value.
TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc(""), 0u);
  EXPECT_EQ(Crc(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc(std::string(32, '\xff')), 0x62A8AB43u);
  std::string asc(32, '\0'), desc(32, '\0');
  for (int i = 0; i < 32; ++i) {
    asc[i] = static_cast<char>(i);
    desc[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(Crc(asc), 0x46DD794Eu);
  EXPECT_EQ(Crc(desc), 0x113FDB5Cu);
  // iSCSI SCSI Read (10) command PDU.
  const unsigned char pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(Crc32c(pdu, sizeof(pdu)), 0xD9963A56u);
}

TEST(Crc32cTest, SoftwareKnownVector) {
  EXPECT_EQ(Crc32cExtendSoftware(0, "123456789", 9), 0xE3069283u);
  if (Crc32cHardwareAvailable()) {
    EXPECT_EQ(Crc32cExtendHardware(0, "123456789", 9), 0xE3069283u);
  }
}

TEST(Crc32cTest, ExtendEqualsConcatenation) {
  const std::string a = "hello ", b = "world";
  EXPECT_EQ(Crc32cExtend(Crc(a), b.data(), b.size()), Crc(a + b));
  EXPECT_EQ(Crc32c(b.data(), b.size(), Crc(a)), Crc(a + b));
  EXPECT_NE(Crc("a"), Crc("foo"));
}

// Both implementations agree on random data of every length class (including
// the 3-way interleaved blocks of the hardware path), any alignment and any
// starting CRC.
TEST(Crc32cTest, HardwareAndSoftwareAgree) {
  if (!Crc32cHardwareAvailable()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::string buf(300 << 10, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  const size_t lengths[] = {0,      1,
                            7,      8,
                            9,      63,
                            64,     65,
                            4095,   8192,
                            24575,  24576,
                            24577,  3 * 24576 + 13,
                            200000, (300 << 10) - 16};
  for (size_t len : lengths) {
    for (size_t align = 0; align < 9; ++align) {
      const uint32_t init = static_cast<uint32_t>(rng());
      ASSERT_EQ(Crc32cExtendSoftware(init, buf.data() + align, len),
                Crc32cExtendHardware(init, buf.data() + align, len))
          << "len " << len << " align " << align;
    }
  }
  for (int i = 0; i < 200; ++i) {
    const size_t off = rng() % 1024;
    const size_t len = rng() % (buf.size() - off);
    ASSERT_EQ(Crc32cExtendSoftware(0, buf.data() + off, len),
              Crc32cExtendHardware(0, buf.data() + off, len));
  }
}

TEST(Crc32cTest, CombineEqualsConcatenation) {
  std::mt19937_64 rng(42);
  for (size_t len_a : {0, 1, 28, 1000}) {
    for (size_t len_b : {0, 1, 7, 8, 100, 4096, 100000, 3 << 20}) {
      std::string a(len_a, '\0'), b(len_b, '\0');
      for (auto& c : a) c = static_cast<char>(rng());
      for (auto& c : b) c = static_cast<char>(rng());
      ASSERT_EQ(Crc32cCombine(Crc(a), Crc(b), b.size()), Crc(a + b)) << len_a << " " << len_b;
    }
  }
}

TEST(Crc32cTest, Mask) {
  const uint32_t crc = Crc("foo");
  EXPECT_NE(crc, MaskCrc(crc));
  EXPECT_NE(crc, MaskCrc(MaskCrc(crc)));
  EXPECT_EQ(crc, UnmaskCrc(MaskCrc(crc)));
  EXPECT_EQ(crc, UnmaskCrc(UnmaskCrc(MaskCrc(MaskCrc(crc)))));
  for (uint32_t v : {0u, 1u, 0xffffffffu, 0x80000000u, 0x12345678u})
    EXPECT_EQ(UnmaskCrc(MaskCrc(v)), v);
}

}  // namespace
}  // namespace dbfs::wal
