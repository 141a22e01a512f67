// fsck.dbfs (as the Fsck library call): each kind of damage is detected;
// clean and merely-unrecovered volumes pass; a mounted volume is refused.
#include "tools/lib/fsck.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fuse/filesystem.h"
#include "fuse/inode_format.h"
#include "kvstore/env.h"
#include "mvcc/keys.h"
#include "tools/lib/mkfs.h"

namespace dbfs {
namespace {

class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dbfs-fsck-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/vol";
    MkfsOptions mo;
    mo.quiet = true;
    ASSERT_TRUE(Mkfs(dir_, mo).ok());
    // A small tree: /d (dir), /d/f (file with data), /g (file), /d/e (subdir).
    auto fs = Filesystem::Open(dir_, {});
    ASSERT_TRUE(fs.ok());
    Caller c;
    auto d = (*fs)->Mkdir(c, kRootIno, "d", 0755);
    ASSERT_TRUE(d.ok());
    dir_ino_ = d->ino;
    auto f = (*fs)->Create(c, d->ino, "f", 0644, O_RDWR);
    ASSERT_TRUE(f.ok());
    file_ino_ = f->attr.ino;
    ASSERT_TRUE((*fs)->Write(c, f->attr.ino, f->fh, 0, "hello", 5).ok());
    ASSERT_TRUE((*fs)->Release(f->attr.ino, f->fh).ok());
    auto e = (*fs)->Mkdir(c, d->ino, "e", 0755);
    ASSERT_TRUE(e.ok());
    sub_ino_ = e->ino;
    auto g = (*fs)->Create(c, kRootIno, "g", 0644, O_RDWR);
    ASSERT_TRUE(g.ok());
    ASSERT_TRUE((*fs)->Release(g->attr.ino, g->fh).ok());
    ASSERT_TRUE((*fs)->Close().ok());
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Runs `edit` in one LMDB write transaction on the (unmounted) volume.
  void EditLmdb(const std::function<void(kv::WriteTxn&, kv::Table inodes, kv::Table dirents)>& edit) {
    auto env = kv::Env::Open(dir_ + "/meta", {});
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    auto inodes = (*env)->OpenTable("inodes");
    auto dirents = (*env)->OpenTable("dirents");
    ASSERT_TRUE((*env)->Write([&](kv::WriteTxn& w) {
      edit(w, *inodes, *dirents);
      return Status::Ok();
    }).ok());
  }
  // The newest stored version key of a logical key.
  static std::string NewestVersion(kv::WriteTxn& w, kv::Table t, const std::string& logical) {
    auto c = w.NewCursor(t);
    EXPECT_TRUE(c.ok());
    auto found = (*c)->Seek(mvcc::VersionKey(logical, ~uint64_t{0}));
    EXPECT_TRUE(found.ok() && *found);
    return std::string((*c)->key());
  }
  FsckReport Check() { return Fsck(dir_, {}); }
  static bool Mentions(const FsckReport& r, const std::string& what) {
    for (const auto& e : r.errors) {
      if (e.find(what) != std::string::npos) return true;
    }
    return false;
  }

  std::string root_, dir_;
  uint64_t dir_ino_ = 0, file_ino_ = 0, sub_ino_ = 0;
};

TEST_F(FsckTest, CleanVolumeIsClean) {
  FsckReport r = Check();
  for (const auto& e : r.errors) ADD_FAILURE() << e;
  EXPECT_EQ(r.exit_code, kFsckClean);
  EXPECT_EQ(r.inodes, 5u);
}

TEST_F(FsckTest, DanglingEntryIsDetected) {
  EditLmdb([&](kv::WriteTxn& w, kv::Table inodes, kv::Table) {
    ASSERT_TRUE(w.Delete(inodes, NewestVersion(w, inodes, mvcc::InoKey(file_ino_))).ok());
  });
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckUncorrected);
  EXPECT_TRUE(Mentions(r, "points to missing inode")) << r.errors.size();
}

TEST_F(FsckTest, WrongLinkCountIsDetected) {
  EditLmdb([&](kv::WriteTxn& w, kv::Table inodes, kv::Table) {
    std::string k = NewestVersion(w, inodes, mvcc::InoKey(file_ino_));
    auto v = w.Get(inodes, k);
    ASSERT_TRUE(v.ok() && *v);
    auto n = DecodeInode(v.value()->substr(1));
    ASSERT_TRUE(n.ok());
    n->nlink = 3;
    ASSERT_TRUE(w.Put(inodes, k, std::string(1, mvcc::kTagLive) + EncodeInode(*n)).ok());
  });
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckUncorrected);
  EXPECT_TRUE(Mentions(r, "link count 3, expected 1"));
}

TEST_F(FsckTest, UnreachableDirectoryIsDetected) {
  EditLmdb([&](kv::WriteTxn& w, kv::Table, kv::Table dirents) {
    ASSERT_TRUE(w.Delete(dirents, NewestVersion(w, dirents, mvcc::NameKey(kRootIno, "d"))).ok());
  });
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckUncorrected);
  EXPECT_TRUE(Mentions(r, "not reachable from the root"));
  EXPECT_TRUE(Mentions(r, "directory is named by 0 entries"));
  EXPECT_TRUE(Mentions(r, "directory link count"));  // root lost a subdirectory
}

TEST_F(FsckTest, WalChecksumDamageIsDetected) {
  // Flip one byte inside the payload of an early record of segment 1: later
  // records were synced after it, so this is mid-log corruption.
  const std::string seg = dir_ + "/wal/00000001.wal";
  const auto size = std::filesystem::file_size(seg);
  ASSERT_GT(size, 200u);
  int fd = open(seg.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char b;
  const off_t where = 100;  // inside the first records after the segment header
  ASSERT_EQ(pread(fd, &b, 1, where), 1);
  b ^= 0x5a;
  ASSERT_EQ(pwrite(fd, &b, 1, where), 1);
  close(fd);
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckUncorrected);
  EXPECT_TRUE(Mentions(r, "WAL"));
}

TEST_F(FsckTest, UnrecoveredVolumeIsCheckedAsRecoveryWouldLeaveIt) {
  {
    auto fs = Filesystem::Open(dir_, {});
    ASSERT_TRUE(fs.ok());
    Caller c;
    ASSERT_TRUE((*fs)->Mkdir(c, kRootIno, "new", 0755).ok());
    ASSERT_TRUE((*fs)->Rename(c, dir_ino_, "f", kRootIno, "moved", 0).ok());
    ASSERT_TRUE((*fs)->SyncAll(c).ok());
    (*fs)->TEST_Abandon();  // crash: the overlay never reached LMDB
  }
  FsckReport r = Check();
  for (const auto& e : r.errors) ADD_FAILURE() << e;
  EXPECT_EQ(r.exit_code, kFsckClean);
  EXPECT_EQ(r.inodes, 6u);
  bool noted = false;
  for (const auto& n : r.notes) noted |= n.find("pending replay") != std::string::npos;
  EXPECT_TRUE(noted);
  // -n wrote nothing: a second check finds the same pending replay.
  EXPECT_EQ(Check().exit_code, kFsckClean);
}

TEST_F(FsckTest, MountedVolumeIsRefused) {
  auto fs = Filesystem::Open(dir_, {});
  ASSERT_TRUE(fs.ok());
  // Open() holds the lock; the volume is not in /proc/mounts, so bound the
  // wait by checking through a child that must give up (Busy) — here the
  // holder is this very process, which Acquire reports at once.
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckOperational);
  EXPECT_TRUE(Mentions(r, "in use"));
}

TEST_F(FsckTest, NotAVolumeIsAnOperationalError) {
  FsckReport r = Fsck(root_, {});
  EXPECT_EQ(r.exit_code, kFsckOperational);
}

}  // namespace
}  // namespace dbfs
