#include "mvcc/superblock.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "kvstore/coding.h"
#include "wal/crc32c.h"

namespace dbfs {
namespace {

class SuperblockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dbfs-sb-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string SbPath() const { return dir_ + "/superblock"; }
  void WriteRaw(const std::string& bytes) {
    std::ofstream f(SbPath(), std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(f.good());
  }
  std::string ReadRaw() {
    std::ifstream f(SbPath(), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  // Re-seals a hand-edited block with a correct CRC.
  static void Reseal(std::string* block) {
    EncodeLE32(block->data() + kSuperblockCrcOffset,
               wal::Crc32c(block->data(), kSuperblockCrcOffset));
  }

  std::string dir_;
};

TEST_F(SuperblockTest, NewSuperblockHasRandomV4UuidAndCurrentTime) {
  Superblock a = NewSuperblock();
  Superblock b = NewSuperblock();
  ASSERT_EQ(a.uuid.size(), 16u);
  EXPECT_NE(a.uuid, b.uuid);
  EXPECT_EQ(a.format_version, kFormatVersion);
  EXPECT_EQ(a.block_size, 4096u);
  EXPECT_EQ(a.chunk_size, 1u << 20);
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + ts.tv_nsec;
  EXPECT_LE(a.created_ns, now);
  EXPECT_GT(a.created_ns, now - 60ull * 1000000000u);

  const std::string s = a.UuidString();
  ASSERT_EQ(s.size(), 36u);
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      EXPECT_EQ(s[i], '-') << s;
    } else {
      EXPECT_NE(std::string("0123456789abcdef").find(s[i]), std::string::npos) << s;
    }
  }
  // RFC 4122: version 4, variant 10xx.
  EXPECT_EQ(s[14], '4') << s;
  EXPECT_NE(std::string("89ab").find(s[19]), std::string::npos) << s;
}

TEST_F(SuperblockTest, UuidStringIsHexOfTheBytes) {
  Superblock sb;
  sb.uuid = std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
  EXPECT_EQ(sb.UuidString(), "00112233-4455-6677-8899-aabbccddeeff");
}

TEST_F(SuperblockTest, RoundTrip) {
  Superblock sb = NewSuperblock();
  sb.block_size = 8192;
  sb.chunk_size = 1 << 22;
  ASSERT_TRUE(WriteSuperblock(dir_, sb).ok());
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uuid, sb.uuid);
  EXPECT_EQ(r->format_version, sb.format_version);
  EXPECT_EQ(r->created_ns, sb.created_ns);
  EXPECT_EQ(r->block_size, 8192u);
  EXPECT_EQ(r->chunk_size, 1u << 22);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/superblock.tmp"));
}

// Pins the documented byte layout (docs/superblock_format.md).
TEST_F(SuperblockTest, EncodingMatchesDocumentedLayout) {
  Superblock sb;
  sb.uuid = std::string("0123456789abcdef");
  sb.created_ns = 0x1122334455667788ull;
  sb.block_size = 4096;
  sb.chunk_size = 1 << 20;
  const std::string b = EncodeSuperblock(sb);
  ASSERT_EQ(b.size(), 512u);
  EXPECT_EQ(b.substr(0, 6), "DBFS01");
  EXPECT_EQ(b.substr(6, 2), std::string(2, '\0'));
  EXPECT_EQ(DecodeLE32(b.data() + 8), kFormatVersion);
  EXPECT_EQ(DecodeLE32(b.data() + 12), 4096u);
  EXPECT_EQ(DecodeLE32(b.data() + 16), 1u << 20);
  EXPECT_EQ(DecodeLE32(b.data() + 20), 0u);
  EXPECT_EQ(static_cast<unsigned char>(b[24]), 0x88);  // little-endian
  EXPECT_EQ(DecodeLE64(b.data() + 24), 0x1122334455667788ull);
  EXPECT_EQ(b.substr(32, 16), "0123456789abcdef");
  EXPECT_EQ(b.substr(48, 460), std::string(460, '\0'));
  EXPECT_EQ(DecodeLE32(b.data() + 508), wal::Crc32c(b.data(), 508));
}

TEST_F(SuperblockTest, MissingSuperblockIsNotFound) {
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message(), dir_ + " is not a DBFS volume (no superblock)");
}

TEST_F(SuperblockTest, MissingVolumeDirectoryIsNotFound) {
  Result<Superblock> r = ReadSuperblock(dir_ + "/nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find(dir_ + "/nope"), std::string::npos);
}

TEST_F(SuperblockTest, VolumeThatIsAFileIsNotDir) {
  { std::ofstream(dir_ + "/file") << "x"; }
  Result<Superblock> r = ReadSuperblock(dir_ + "/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotDir);
}

TEST_F(SuperblockTest, TruncatedIsBadMagic) {
  ASSERT_TRUE(WriteSuperblock(dir_, NewSuperblock()).ok());
  WriteRaw(ReadRaw().substr(0, 100));
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message(), dir_ + " is not a DBFS volume (bad magic)");
}

TEST_F(SuperblockTest, EmptyAndOverlongAreBadMagic) {
  ASSERT_TRUE(WriteSuperblock(dir_, NewSuperblock()).ok());
  const std::string good = ReadRaw();
  for (const std::string& bytes : {std::string(), good + "x"}) {
    WriteRaw(bytes);
    Result<Superblock> r = ReadSuperblock(dir_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalid) << bytes.size();
  }
}

TEST_F(SuperblockTest, WrongMagicIsBadMagic) {
  ASSERT_TRUE(WriteSuperblock(dir_, NewSuperblock()).ok());
  std::string b = ReadRaw();
  b[5] = '2';  // "DBFS02"
  Reseal(&b);  // a valid CRC does not make it ours
  WriteRaw(b);
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message(), dir_ + " is not a DBFS volume (bad magic)");
}

TEST_F(SuperblockTest, EveryFlippedByteAfterTheMagicIsACrcMismatch) {
  ASSERT_TRUE(WriteSuperblock(dir_, NewSuperblock()).ok());
  const std::string good = ReadRaw();
  const std::string expected = dir_ + ": superblock checksum mismatch; run fsck.dbfs";
  for (size_t i = sizeof(kSuperblockMagic); i < kSuperblockSize; ++i) {
    std::string b = good;
    b[i] = static_cast<char>(b[i] ^ 0x01);
    Result<Superblock> r = DecodeSuperblock(b, dir_);
    ASSERT_FALSE(r.ok()) << "byte " << i;
    ASSERT_EQ(r.status().code(), Code::kCorruption) << "byte " << i;
    ASSERT_EQ(r.status().message(), expected);
  }
  // And through the file, for one byte in the uuid.
  std::string b = good;
  b[kSuperblockUuidOffset] = static_cast<char>(b[kSuperblockUuidOffset] ^ 0x80);
  WriteRaw(b);
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_EQ(r.status().message(), expected);
}

TEST_F(SuperblockTest, FutureVersionIsNotSupported) {
  Superblock sb = NewSuperblock();
  sb.format_version = 3;
  WriteRaw(EncodeSuperblock(sb));
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotSupported);
  EXPECT_EQ(r.status().message(),
            dir_ + ": format version 3 is not supported (this build supports 1 to 2)");
}

TEST_F(SuperblockTest, FormatOneVolumesStillRead) {
  Superblock sb = NewSuperblock();
  sb.format_version = 1;
  WriteRaw(EncodeSuperblock(sb));
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->format_version, 1u);
}

TEST_F(SuperblockTest, ImpossibleGeometryWithValidCrcIsCorruption) {
  for (auto [block, chunk] : {std::pair<uint32_t, uint32_t>{0, 1 << 20},
                              {4095, 1 << 20},
                              {256, 1 << 20},
                              {4096, 2048},
                              {4096, 3 << 20},
                              {4096, 1u << 31}}) {
    Superblock sb = NewSuperblock();
    sb.block_size = block;
    sb.chunk_size = chunk;
    WriteRaw(EncodeSuperblock(sb));
    Result<Superblock> r = ReadSuperblock(dir_);
    ASSERT_FALSE(r.ok()) << block << " " << chunk;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << block << " " << chunk;
    EXPECT_NE(r.status().message().find("run fsck.dbfs"), std::string::npos);
    // ... and WriteSuperblock refuses to write it in the first place.
    EXPECT_EQ(WriteSuperblock(dir_, sb).code(), Code::kInvalid) << block << " " << chunk;
  }
}

TEST_F(SuperblockTest, WriteRejectsBadUuid) {
  Superblock sb = NewSuperblock();
  sb.uuid = "short";
  EXPECT_EQ(WriteSuperblock(dir_, sb).code(), Code::kInvalid);
  EXPECT_FALSE(std::filesystem::exists(SbPath()));
}

TEST_F(SuperblockTest, WriteReplacesAtomicallyByRename) {
  Superblock a = NewSuperblock();
  ASSERT_TRUE(WriteSuperblock(dir_, a).ok());
  struct stat before {};
  ASSERT_EQ(::stat(SbPath().c_str(), &before), 0);
  // A stale temp file from an earlier crash does not get in the way.
  { std::ofstream(dir_ + "/superblock.tmp") << "garbage from a crash"; }

  Superblock b = NewSuperblock();
  ASSERT_TRUE(WriteSuperblock(dir_, b).ok());
  struct stat after {};
  ASSERT_EQ(::stat(SbPath().c_str(), &after), 0);
  // A new inode renamed over the old one, never an in-place overwrite that a
  // crash could tear.
  EXPECT_NE(before.st_ino, after.st_ino);
  EXPECT_EQ(after.st_size, 512);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/superblock.tmp"));
  Result<Superblock> r = ReadSuperblock(dir_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->uuid, b.uuid);
  // Only the superblock is left in the directory.
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    names.insert(e.path().filename().string());
  }
  EXPECT_EQ(names, std::set<std::string>{"superblock"});
}

TEST_F(SuperblockTest, WriteIntoMissingDirectoryFails) {
  Status s = WriteSuperblock(dir_ + "/nope", NewSuperblock());
  EXPECT_EQ(s.code(), Code::kNotFound);
}

}  // namespace
}  // namespace dbfs
