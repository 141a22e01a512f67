// Filesystem semantics without a mount: orphans across crashes, data slices
// against a model, holes, truncation.
#include "fs/filesystem.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "tools/lib/fsck.h"
#include "tests/testlib/temp_volume.h"
#include "tools/lib/mkfs.h"

namespace dbfs {
namespace {

class FilesystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vol_ = std::make_unique<testing::TempVolume>("fs");
    ASSERT_TRUE(vol_->ok());
    root_ = vol_->root();
    dir_ = vol_->dir();
    Open();
  }
  void TearDown() override {
    fs_.reset();
    vol_.reset();
  }
  void Open() {
    auto f = Filesystem::Open(dir_, {});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    fs_ = std::move(f).value();
  }
  void Crash() {
    fs_->TEST_Abandon();
    fs_.reset();
    Open();
  }
  void ExpectFsckClean() {
    fs_.reset();
    FsckReport r = Fsck(dir_, {});
    for (const auto& e : r.errors) ADD_FAILURE() << "fsck: " << e;
    EXPECT_EQ(r.exit_code, kFsckClean);
    Open();
  }
  uint64_t CreateFile(const std::string& name, uint64_t* fh) {
    auto c = fs_->Create(caller_, kRootIno, name, 0644, O_RDWR);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    *fh = c->fh;
    return c->attr.ino;
  }
  std::string ReadAll(uint64_t ino, uint64_t fh, size_t n) {
    std::string buf(n, '\0');
    auto r = fs_->Read(caller_, ino, fh, 0, n, buf.data());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    buf.resize(r.ok() ? *r : 0);
    return buf;
  }

  std::unique_ptr<testing::TempVolume> vol_;
  std::string root_, dir_;
  std::unique_ptr<Filesystem> fs_;
  Caller caller_;
};

TEST_F(FilesystemTest, UnlinkedOpenFileLivesUntilReleaseThenIsReclaimed) {
  uint64_t fh;
  uint64_t ino = CreateFile("f", &fh);
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, 0, "data", 4).ok());
  ASSERT_TRUE(fs_->Unlink(caller_, kRootIno, "f").ok());
  EXPECT_EQ(fs_->GetAttr(caller_, ino)->nlink, 0u);
  EXPECT_EQ(ReadAll(ino, fh, 4), "data");
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, 4, "more", 4).ok());
  EXPECT_EQ(ReadAll(ino, fh, 8), "datamore");
  fs_->Forget(ino, 1);  // the kernel's lookup reference from Create
  ASSERT_TRUE(fs_->Release(ino, fh).ok());
  EXPECT_EQ(fs_->GetAttr(caller_, ino).status().code(), Code::kNotFound);
  ExpectFsckClean();
}

TEST_F(FilesystemTest, OrphanOfACrashedDaemonIsReclaimedAtMount) {
  uint64_t fh;
  uint64_t ino = CreateFile("f", &fh);
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, 0, "data", 4).ok());
  ASSERT_TRUE(fs_->Unlink(caller_, kRootIno, "f").ok());
  ASSERT_TRUE(fs_->SyncAll(caller_).ok());
  Crash();
  EXPECT_EQ(fs_->GetAttr(caller_, ino).status().code(), Code::kNotFound);
  ExpectFsckClean();
}

TEST_F(FilesystemTest, CrashKeepsEverySyncedOperation) {
  uint64_t fh;
  uint64_t ino = CreateFile("a", &fh);
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, 0, "hello", 5).ok());
  ASSERT_TRUE(fs_->Mkdir(caller_, kRootIno, "d", 0755).ok());
  ASSERT_TRUE(fs_->Rename(caller_, kRootIno, "a", kRootIno, "b", 0).ok());
  ASSERT_TRUE(fs_->Fsync(caller_, ino, fh, false).ok());
  Crash();
  auto b = fs_->Lookup(caller_, kRootIno, "b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size, 5u);
  EXPECT_EQ(fs_->Lookup(caller_, kRootIno, "a").status().code(), Code::kNotFound);
  EXPECT_TRUE(fs_->Lookup(caller_, kRootIno, "d").ok());
  auto fh2 = fs_->Open(caller_, b->ino, O_RDONLY);
  ASSERT_TRUE(fh2.ok());
  EXPECT_EQ(ReadAll(b->ino, *fh2, 5), "hello");
  ASSERT_TRUE(fs_->Release(b->ino, *fh2).ok());
  ExpectFsckClean();
}

TEST_F(FilesystemTest, RandomWritesMatchAModelThroughCompactionAndRemount) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937 rng(seed);
  uint64_t fh;
  uint64_t ino = CreateFile("f", &fh);
  const size_t kSize = 3 << 20;  // three chunks
  std::string model;
  // Enough writes per chunk to pass kMaxSlicesPerChunk (256) several times.
  for (int i = 0; i < 2000; ++i) {
    const size_t off = rng() % kSize;
    const size_t len = 1 + rng() % 20000;
    std::string data(len, '\0');
    for (auto& ch : data) ch = static_cast<char>('a' + rng() % 26);
    ASSERT_TRUE(fs_->Write(caller_, ino, fh, off, data.data(), len).ok());
    if (model.size() < off + len) model.resize(off + len, '\0');
    model.replace(off, len, data);
    if (i % 397 == 0) {
      const size_t cut = rng() % model.size();
      SetAttrIn in;
      in.valid = SetAttrIn::kSize;
      in.size = cut;
      ASSERT_TRUE(fs_->SetAttr(caller_, ino, in).ok());
      model.resize(cut);
    }
  }
  EXPECT_EQ(fs_->GetAttr(caller_, ino)->size, model.size());
  EXPECT_EQ(ReadAll(ino, fh, model.size() + 100), model);
  ASSERT_TRUE(fs_->Release(ino, fh).ok());
  fs_->Forget(ino, 1);
  ExpectFsckClean();  // also remounts
  auto fh2 = fs_->Open(caller_, ino, O_RDONLY);
  ASSERT_TRUE(fh2.ok());
  EXPECT_EQ(ReadAll(ino, *fh2, model.size()), model);
  ASSERT_TRUE(fs_->Release(ino, *fh2).ok());
}

TEST_F(FilesystemTest, HolesReadAsZerosAndSeekFindsData) {
  uint64_t fh;
  uint64_t ino = CreateFile("sparse", &fh);
  const uint64_t tib = uint64_t{1} << 40;
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, tib - 1, "x", 1).ok());
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, 5 << 20, "data", 4).ok());
  auto a = fs_->GetAttr(caller_, ino);
  EXPECT_EQ(a->size, tib);
  EXPECT_LE(a->blocks, 2u);
  EXPECT_EQ(*fs_->Lseek(caller_, ino, fh, 0, SEEK_DATA), uint64_t{5} << 20);
  EXPECT_EQ(*fs_->Lseek(caller_, ino, fh, 0, SEEK_HOLE), 0u);
  // Whole 4 KiB blocks, like ext4 and xfs: the block holding "data" is data
  // to its end, and the block holding the last byte starts at tib - 4096.
  EXPECT_EQ(*fs_->Lseek(caller_, ino, fh, (5 << 20) + 1, SEEK_HOLE), (uint64_t{5} << 20) + 4096);
  EXPECT_EQ(*fs_->Lseek(caller_, ino, fh, (5 << 20) + 4, SEEK_DATA), (uint64_t{5} << 20) + 4);
  EXPECT_EQ(*fs_->Lseek(caller_, ino, fh, (5 << 20) + 4096, SEEK_DATA), tib - 4096);
  EXPECT_EQ(fs_->Lseek(caller_, ino, fh, tib, SEEK_DATA).status().ToErrno(), ENXIO);
  char buf[8];
  ASSERT_EQ(*fs_->Read(caller_, ino, fh, (5 << 20) - 2, 8, buf), 8u);
  EXPECT_EQ(std::string(buf, 8), std::string("\0\0data\0\0", 8));
  // Punch the data out: zeros again, blocks released.
  ASSERT_TRUE(fs_->Fallocate(caller_, ino, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 5 << 20, 4).ok());
  ASSERT_EQ(*fs_->Read(caller_, ino, fh, (5 << 20) - 2, 8, buf), 8u);
  EXPECT_EQ(std::string(buf, 8), std::string(8, '\0'));
  EXPECT_EQ(fs_->GetAttr(caller_, ino)->size, tib);
  ASSERT_TRUE(fs_->Release(ino, fh).ok());
}

TEST_F(FilesystemTest, CleanCloseLeavesNothingToReplay) {
  uint64_t fh;
  uint64_t ino = CreateFile("f", &fh);
  ASSERT_TRUE(fs_->Write(caller_, ino, fh, 0, "abc", 3).ok());
  ASSERT_TRUE(fs_->Release(ino, fh).ok());
  ASSERT_TRUE(fs_->Close().ok());
  fs_.reset();
  Open();
  EXPECT_EQ(fs_->Stats().recovery_commits_replayed, 0u);
}

TEST_F(FilesystemTest, SecondOpenOfAMountedVolumeIsRefused) {
  auto second = Filesystem::Open(dir_, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
}

}  // namespace
}  // namespace dbfs
