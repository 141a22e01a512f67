#include "tools/lib/mkfs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "mvcc/superblock.h"
#include "mvcc/volume_lock.h"

namespace dbfs {
namespace {

class MkfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dbfs-mkfs-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    vol_ = root_ + "/vol";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  static bool IsPrivateDir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 077) == 0;
  }

  std::string root_;  // scratch directory, removed after each test
  std::string vol_;   // root_/vol, not created yet
};

TEST_F(MkfsTest, CreatesLayoutInMissingDirectory) {
  Result<Superblock> sb = Mkfs(vol_, {});
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->format_version, kFormatVersion);
  EXPECT_EQ(sb->uuid.size(), 16u);

  EXPECT_TRUE(IsPrivateDir(vol_));
  EXPECT_TRUE(IsPrivateDir(vol_ + "/meta"));
  EXPECT_TRUE(IsPrivateDir(vol_ + "/wal"));
  Result<Superblock> read = ReadSuperblock(vol_);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->uuid, sb->uuid);
  EXPECT_EQ(read->created_ns, sb->created_ns);
  EXPECT_FALSE(std::filesystem::exists(vol_ + "/superblock.tmp"));

  // mkfs does not keep the volume locked once it returns.
  Result<std::optional<std::string>> holder = VolumeLock::Holder(vol_);
  ASSERT_TRUE(holder.ok()) << holder.status().ToString();
  EXPECT_FALSE(holder->has_value());
}

TEST_F(MkfsTest, AcceptsExistingEmptyDirectoryAndTrailingSlash) {
  ASSERT_EQ(::mkdir(vol_.c_str(), 0755), 0);
  Result<Superblock> sb = Mkfs(vol_ + "/", {});
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_TRUE(ReadSuperblock(vol_).ok());
}

TEST_F(MkfsTest, RefusesNonEmptyDirectoryWithoutForce) {
  ASSERT_EQ(::mkdir(vol_.c_str(), 0755), 0);
  { std::ofstream(vol_ + "/precious") << "do not delete"; }
  Result<Superblock> sb = Mkfs(vol_, {});
  ASSERT_FALSE(sb.ok());
  EXPECT_EQ(sb.status().code(), Code::kExists);
  EXPECT_EQ(sb.status().message(), vol_ + " is not empty; use --force to overwrite");
  EXPECT_TRUE(std::filesystem::exists(vol_ + "/precious"));
  // Refusing leaves nothing behind, not even a lock file.
  EXPECT_FALSE(std::filesystem::exists(vol_ + "/lock"));
  EXPECT_FALSE(std::filesystem::exists(vol_ + "/superblock"));
}

TEST_F(MkfsTest, RefusesExistingVolumeWithoutForce) {
  Result<Superblock> first = Mkfs(vol_, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<Superblock> second = Mkfs(vol_, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kExists);
  Result<Superblock> read = ReadSuperblock(vol_);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->uuid, first->uuid);
}

TEST_F(MkfsTest, ForceReplacesContents) {
  Result<Superblock> first = Mkfs(vol_, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  { std::ofstream(vol_ + "/junk") << "junk"; }
  std::filesystem::create_directories(vol_ + "/sub/dir");
  { std::ofstream(vol_ + "/sub/dir/file") << "x"; }
  std::filesystem::create_symlink(root_ + "/outside", vol_ + "/link");
  { std::ofstream(root_ + "/outside") << "must survive"; }

  MkfsOptions force;
  force.force = true;
  Result<Superblock> second = Mkfs(vol_, force);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_NE(second->uuid, first->uuid);
  EXPECT_FALSE(std::filesystem::exists(vol_ + "/junk"));
  EXPECT_FALSE(std::filesystem::exists(vol_ + "/sub"));
  EXPECT_FALSE(std::filesystem::is_symlink(vol_ + "/link"));
  EXPECT_TRUE(std::filesystem::exists(root_ + "/outside"));  // symlinks are not followed
  EXPECT_TRUE(IsPrivateDir(vol_ + "/meta"));
  EXPECT_TRUE(IsPrivateDir(vol_ + "/wal"));
  Result<Superblock> read = ReadSuperblock(vol_);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->uuid, second->uuid);
}

TEST_F(MkfsTest, ForceRefusesLockedVolume) {
  Result<Superblock> first = Mkfs(vol_, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // Another open file description holding the lock stands in for a mount.
  Result<VolumeLock> mounted = VolumeLock::Acquire(vol_, "dbfs-mount");
  ASSERT_TRUE(mounted.ok()) << mounted.status().ToString();

  MkfsOptions force;
  force.force = true;
  Result<Superblock> second = Mkfs(vol_, force);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_EQ(second.status().message(), "volume " + vol_ + " is in use by pid " +
                                           std::to_string(::getpid()) +
                                           " (dbfs-mount); unmount it first");
  // Nothing was touched.
  Result<Superblock> read = ReadSuperblock(vol_);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->uuid, first->uuid);
  EXPECT_TRUE(IsPrivateDir(vol_ + "/meta"));

  mounted->Release();
  EXPECT_TRUE(Mkfs(vol_, force).ok());
}

TEST_F(MkfsTest, RefusesNonDirectory) {
  { std::ofstream(vol_) << "a file"; }
  MkfsOptions force;
  force.force = true;
  Result<Superblock> sb = Mkfs(vol_, force);
  ASSERT_FALSE(sb.ok());
  EXPECT_EQ(sb.status().code(), Code::kNotDir);
  EXPECT_NE(sb.status().message().find(vol_), std::string::npos);
}

TEST_F(MkfsTest, RefusesMissingParent) {
  Result<Superblock> sb = Mkfs(root_ + "/no/such/vol", {});
  ASSERT_FALSE(sb.ok());
  EXPECT_EQ(sb.status().code(), Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/no"));
}

}  // namespace
}  // namespace dbfs
