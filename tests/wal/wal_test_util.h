// Shared fixtures and helpers of the WAL tests: every log test runs on the
// in-memory file system and on the real POSIX file system in a temp dir.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "wal/file_system.h"
#include "wal/reader.h"
#include "wal/record_format.h"
#include "tests/testlib/test_file_systems.h"
#include "wal/writer.h"

namespace dbfs::wal::testing {

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const ::dbfs::Status _s = (expr);                       \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                     \
  do {                                                      \
    const ::dbfs::Status _s = (expr);                       \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

enum class Backend { kMem, kPosix };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kMem ? "Mem" : "Posix";
}

inline const std::string kUuid = "0123456789abcdef";

// Provides fs() and dir() (the wal directory, not yet created) for either
// backend; mem() is non-null for the in-memory one.
class WalTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kMem) {
      mem_ = std::make_unique<MemFileSystem>();
      fs_ = mem_.get();
      dir_ = "/wal";
    } else {
      std::string tmpl = (std::filesystem::temp_directory_path() / "dbfs_wal_test.XXXXXX").string();
      ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
      tmp_ = tmpl;
      fs_ = DefaultFileSystem();
      dir_ = tmp_ + "/wal";
    }
  }
  void TearDown() override {
    if (!tmp_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_, ec);
    }
  }

  FileSystem* fs() { return fs_; }
  MemFileSystem* mem() { return mem_.get(); }
  const std::string& dir() const { return dir_; }
  std::string SegPath(uint32_t seg) const { return SegmentPath(dir_, seg); }

  WriterOptions Options(uint64_t segment_size = 64ull << 20) {
    WriterOptions o;
    o.segment_size = segment_size;
    o.uuid = kUuid;
    return o;
  }

  std::unique_ptr<Writer> OpenWriter(FileSystem* fs, const WriterOptions& o, Lsn end) {
    auto w = Writer::Open(fs, dir_, o, end);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(*w) : nullptr;
  }

 private:
  std::unique_ptr<MemFileSystem> mem_;
  FileSystem* fs_ = nullptr;
  std::string dir_;
  std::string tmp_;
};

struct Scan {
  Status status;  // first error of Open or Next
  std::vector<Record> records;
  ScanEnd end;
};

inline Scan ScanLog(FileSystem* fs, const std::string& dir, Lsn from = 0,
                    const std::string& uuid = kUuid, bool read_data = true) {
  Scan out;
  auto r = Reader::Open(fs, dir, from, uuid);
  if (!r.ok()) {
    out.status = r.TakeStatus();
    return out;
  }
  (*r)->set_read_data(read_data);
  while (true) {
    Record rec;
    auto more = (*r)->Next(&rec);
    if (!more.ok()) {
      out.status = more.TakeStatus();
      return out;
    }
    if (!*more) break;
    out.records.push_back(std::move(rec));
  }
  out.end = (*r)->end();
  return out;
}

inline std::string RandomBytes(std::mt19937_64* rng, size_t n) {
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = (*rng)();
    std::memcpy(s.data() + i, &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>((*rng)());
  return s;
}

inline uint64_t FileSize(FileSystem* fs, const std::string& path) {
  auto f = fs->Open(path, FileSystem::kReadOnly);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return 0;
  auto size = (*f)->Size();
  EXPECT_TRUE(size.ok());
  return size.ok() ? *size : 0;
}

inline void TruncateFile(FileSystem* fs, const std::string& path, uint64_t size) {
  auto f = fs->Open(path, FileSystem::kNone);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_OK((*f)->Truncate(size));
}

inline void WriteAt(FileSystem* fs, const std::string& path, uint64_t off,
                    const std::string& data) {
  auto f = fs->Open(path, FileSystem::kNone);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_OK((*f)->PWrite(off, data.data(), data.size()));
}

inline void FlipByte(FileSystem* fs, const std::string& path, uint64_t off) {
  auto f = fs->Open(path, FileSystem::kNone);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  char c;
  size_t got = 0;
  ASSERT_OK((*f)->PRead(off, &c, 1, &got));
  ASSERT_EQ(got, 1u);
  c = static_cast<char>(c ^ 0x40);
  ASSERT_OK((*f)->PWrite(off, &c, 1));
}

}  // namespace dbfs::wal::testing
