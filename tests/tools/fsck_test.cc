// fsck.dbfs (as the Fsck library call). One deliberately damaged volume per
// invariant: each damage is detected by a check (-n: exit 4, and the volume's
// bytes are unchanged), repaired by -y (exit 1, or left alone with exit 4
// when it cannot be repaired), and a second -n is clean. Also: clean and
// merely-unrecovered volumes pass, a mounted volume is refused, usage errors.
#include "tools/lib/fsck.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "fs/checkpoint.h"
#include "fs/filesystem.h"
#include "fs/inode_format.h"
#include "kvstore/env.h"
#include "mvcc/keys.h"
#include "mvcc/superblock.h"
#include "tests/testlib/temp_volume.h"
#include "tools/lib/mkfs.h"
#include "wal/record_format.h"

namespace dbfs {
namespace {

std::string Dump(const FsckReport& r) {
  std::ostringstream o;
  o << "exit " << r.exit_code << "\n";
  for (const auto& e : r.errors) o << "  error: " << e << "\n";
  for (const auto& e : r.fixed) o << "  fixed: " << e << "\n";
  for (const auto& e : r.warnings) o << "  warning: " << e << "\n";
  for (const auto& e : r.notes) o << "  note: " << e << "\n";
  return o.str();
}

bool Mentions(const std::vector<std::string>& lines, const std::string& what) {
  for (const auto& e : lines) {
    if (e.find(what) != std::string::npos) return true;
  }
  return false;
}

void FlipByte(const std::string& path, off_t where) {
  int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  char b;
  ASSERT_EQ(pread(fd, &b, 1, where), 1);
  b ^= 0x5a;
  ASSERT_EQ(pwrite(fd, &b, 1, where), 1);
  close(fd);
}

class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vol_ = std::make_unique<testing::TempVolume>("fsck");
    ASSERT_TRUE(vol_->ok());
    root_ = vol_->root();
    dir_ = vol_->dir();
    // A small tree: /d (dir), /d/f (file with data), /d/e (subdir), /g (file).
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
    g_ino_ = g->attr.ino;
    ASSERT_TRUE((*fs)->Release(g->attr.ino, g->fh).ok());
    ASSERT_TRUE((*fs)->Close().ok());
  }
  void TearDown() override { vol_.reset(); }

  // ---- damaging the volume behind the store's back ----

  // The LMDB tables of a volume, opened before a write transaction.
  struct Tables {
    std::map<std::string, kv::Table> by_name;
    kv::Table operator()(const std::string& name) const { return by_name.at(name); }
  };
  // Runs `edit` in one LMDB write transaction on the (unmounted) volume.
  void EditLmdb(const std::function<void(kv::WriteTxn&, const Tables&)>& edit) {
    auto env = kv::Env::Open(dir_ + "/meta", {});
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    Tables tables;
    for (const char* name : {"inodes", "dirents", "extents", "xattrs", "orphans", "meta"}) {
      auto t = (*env)->OpenTable(name);
      ASSERT_TRUE(t.ok()) << name;
      tables.by_name[name] = *t;
    }
    ASSERT_TRUE((*env)
                    ->Write([&](kv::WriteTxn& w) {
                      edit(w, tables);
                      return Status::Ok();
                    })
                    .ok());
  }
  // The newest stored version key of a logical key.
  static std::string NewestVersion(kv::WriteTxn& w, kv::Table t, const std::string& logical) {
    auto c = w.NewCursor(t);
    EXPECT_TRUE(c.ok());
    auto found = (*c)->Seek(mvcc::VersionKey(logical, ~uint64_t{0}));
    EXPECT_TRUE(found.ok() && *found);
    std::string k((*c)->key());
    EXPECT_EQ(mvcc::VersionLogical(k), logical);
    return k;
  }
  // Replaces the newest stored value (tag included) of `logical`.
  void EditNewest(const char* table, const std::string& logical,
                  const std::function<void(std::string*)>& edit) {
    EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
      kv::Table t = T(table);
      std::string k = NewestVersion(w, t, logical);
      auto v = w.Get(t, k);
      ASSERT_TRUE(v.ok() && *v);
      std::string value(**v);
      edit(&value);
      ASSERT_TRUE(w.Put(t, k, value).ok());
    });
  }
  void EditInode(uint64_t ino, const std::function<void(Inode*)>& edit) {
    EditNewest("inodes", mvcc::InoKey(ino), [&](std::string* v) {
      auto n = DecodeInode(v->substr(1));
      ASSERT_TRUE(n.ok());
      edit(&*n);
      *v = std::string(1, mvcc::kTagLive) + EncodeInode(*n);
    });
  }
  void DeleteNewest(const char* table, const std::string& logical) {
    EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
      kv::Table t = T(table);
      ASSERT_TRUE(w.Delete(t, NewestVersion(w, t, logical)).ok());
    });
  }
  // Stores a live version of `logical` at csn 1 (every volume has csn 1).
  void PutLive(const char* table, const std::string& logical, const std::string& value) {
    EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
      ASSERT_TRUE(
          w.Put(T(table), mvcc::VersionKey(logical, 1), std::string(1, mvcc::kTagLive) + value)
              .ok());
    });
  }
  uint64_t Meta(std::string_view key) {
    uint64_t out = 0;
    EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
      auto v = w.Get(T(mvcc::kMetaTableName), key);
      ASSERT_TRUE(v.ok() && *v && (*v)->size() == 8);
      out = DecodeLE64((*v)->data());
    });
    return out;
  }
  SliceList Slices(uint64_t ino, uint64_t chunk) {
    SliceList l;
    EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
      kv::Table t = T("extents");
      auto v = w.Get(t, NewestVersion(w, t, mvcc::ChunkKey(ino, chunk)));
      ASSERT_TRUE(v.ok() && *v);
      auto d = DecodeSlices((*v)->substr(1));
      ASSERT_TRUE(d.ok());
      l = *d;
    });
    return l;
  }

  // ---- running fsck ----

  FsckReport Run(bool repair, bool force = false) {
    FsckOptions o;
    o.repair = repair;
    o.force = force;
    return Fsck(dir_, o);
  }
  FsckReport Check() { return Run(false); }

  // Every byte of the volume, except LMDB's reader-lock table (lock.mdb):
  // LMDB writes reader slots there for every reader, read-only ones too; it
  // is shared memory, not volume content.
  std::map<std::string, std::string> VolumeBytes() {
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = std::filesystem::relative(e.path(), dir_).string();
      if (rel == "meta/lock.mdb") continue;
      std::ifstream in(e.path(), std::ios::binary);
      out[rel] = std::string(std::istreambuf_iterator<char>(in), {});
    }
    return out;
  }
  static std::string Diff(const std::map<std::string, std::string>& a,
                          const std::map<std::string, std::string>& b) {
    std::string d;
    for (const auto& [k, v] : a) {
      auto it = b.find(k);
      if (it == b.end())
        d += " removed:" + k;
      else if (it->second != v)
        d += " changed:" + k;
    }
    for (const auto& [k, v] : b) {
      if (!a.count(k)) d += " added:" + k;
    }
    return d;
  }

  // The damage is found by -n (exit 4) without writing a byte, repaired by
  // -y (exit 1), and a second -n is clean.
  void ExpectRepaired(const std::string& what, bool force = false) {
    const auto before = VolumeBytes();
    FsckReport r = Run(false, force);
    EXPECT_EQ(r.exit_code, kFsckUncorrected) << Dump(r);
    EXPECT_TRUE(Mentions(r.errors, what)) << "no error mentions '" << what << "'\n" << Dump(r);
    EXPECT_EQ(Diff(before, VolumeBytes()), "") << "fsck -n wrote to the volume";
    r = Run(true, force);
    EXPECT_EQ(r.exit_code, kFsckCorrected) << Dump(r);
    EXPECT_TRUE(Mentions(r.fixed, what)) << Dump(r);
    r = Run(false, force);
    EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  }
  // The damage is found by -n, and -y cannot repair it: exit 4 both times,
  // and neither writes anything.
  void ExpectUncorrectable(const std::string& what) {
    const auto before = VolumeBytes();
    FsckReport r = Run(false);
    EXPECT_EQ(r.exit_code, kFsckUncorrected) << Dump(r);
    EXPECT_TRUE(Mentions(r.errors, what)) << "no error mentions '" << what << "'\n" << Dump(r);
    EXPECT_EQ(Diff(before, VolumeBytes()), "") << "fsck -n wrote to the volume";
    r = Run(true);
    EXPECT_EQ(r.exit_code, kFsckUncorrected) << Dump(r);
    EXPECT_TRUE(Mentions(r.errors, what)) << Dump(r);
    EXPECT_TRUE(r.fixed.empty()) << Dump(r);
    EXPECT_EQ(Diff(before, VolumeBytes()), "") << "fsck -y wrote to a volume it cannot repair";
  }

  // Opens the repaired volume with the filesystem and resolves a path.
  Result<Attr> LookupPath(const std::vector<std::string>& path) {
    auto fs = Filesystem::Open(dir_, {});
    if (!fs.ok()) return fs.TakeStatus();
    Caller c;
    uint64_t ino = kRootIno;
    Result<Attr> a = (*fs)->GetAttr(c, ino);
    for (const auto& name : path) {
      a = (*fs)->Lookup(c, ino, name);
      if (!a.ok()) break;
      ino = a->ino;
    }
    Status st = (*fs)->Close();
    if (!st.ok()) return st;
    return a;
  }

  std::unique_ptr<testing::TempVolume> vol_;
  std::string root_, dir_;
  uint64_t dir_ino_ = 0, file_ino_ = 0, sub_ino_ = 0, g_ino_ = 0;
};

// ---- clean volumes ----

TEST_F(FsckTest, CleanVolumeIsClean) {
  const auto before = VolumeBytes();
  FsckReport r = Check();
  for (const auto& e : r.errors) ADD_FAILURE() << e;
  EXPECT_EQ(r.exit_code, kFsckClean);
  EXPECT_EQ(r.inodes, 5u);
  EXPECT_EQ(r.dirents, 4u);
  EXPECT_EQ(r.extents, 1u);
  EXPECT_EQ(r.live_bytes, 5u);  // "hello"
  EXPECT_TRUE(r.was_clean);
  EXPECT_FALSE(r.full_check);  // a clean volume gets the quick check
  EXPECT_TRUE(r.warnings.empty()) << Dump(r);
  // -f verifies every WAL record; -y on a clean volume writes nothing.
  r = Run(false, /*force=*/true);
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_TRUE(r.full_check);
  r = Run(true, true);
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_EQ(Diff(before, VolumeBytes()), "");
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
  const auto before = VolumeBytes();
  FsckReport r = Check();
  for (const auto& e : r.errors) ADD_FAILURE() << e;
  EXPECT_EQ(r.exit_code, kFsckClean);
  EXPECT_EQ(r.inodes, 6u);
  EXPECT_EQ(r.commits_replayed, 2u);
  EXPECT_FALSE(r.was_clean);
  EXPECT_TRUE(r.full_check);  // not clean: every WAL checksum is verified
  EXPECT_TRUE(Mentions(r.notes, "pending replay")) << Dump(r);
  // -n wrote nothing: a second check finds the same pending replay.
  EXPECT_EQ(Diff(before, VolumeBytes()), "");
  EXPECT_EQ(Check().commits_replayed, 2u);
  // -y recovers (housekeeping, not an error): exit 0, nothing left to replay.
  r = Run(true);
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  r = Check();
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_EQ(r.commits_replayed, 0u);
  EXPECT_TRUE(r.was_clean);
  EXPECT_TRUE(LookupPath({"moved"}).ok());
}

TEST_F(FsckTest, PendingOrphansAreReclaimedNotReported) {
  uint64_t ino = 0;
  {
    auto fs = Filesystem::Open(dir_, {});
    ASSERT_TRUE(fs.ok());
    Caller c;
    auto h = (*fs)->Create(c, kRootIno, "h", 0644, O_RDWR);
    ASSERT_TRUE(h.ok());
    ino = h->attr.ino;
    ASSERT_TRUE((*fs)->Write(c, ino, h->fh, 0, "data", 4).ok());
    ASSERT_TRUE((*fs)->Unlink(c, kRootIno, "h").ok());  // still open
    ASSERT_TRUE((*fs)->SyncAll(c).ok());
    (*fs)->TEST_Abandon();
  }
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_EQ(r.orphans, 1u);
  EXPECT_TRUE(Mentions(r.notes, "pending reclamation")) << Dump(r);
  r = Run(true);
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_TRUE(Mentions(r.notes, "reclaimed 1 unlinked inodes")) << Dump(r);
  r = Check();
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_EQ(r.orphans, 0u);
  EXPECT_EQ(r.inodes, 5u);
  EXPECT_EQ(r.live_bytes, 5u);
}

// ---- superblock ----

TEST_F(FsckTest, SuperblockChecksumMismatchIsRepaired) {
  FlipByte(dir_ + "/superblock", kSuperblockCrcOffset);
  ASSERT_FALSE(ReadSuperblock(dir_).ok());
  ExpectRepaired("superblock checksum mismatch");
  EXPECT_TRUE(ReadSuperblock(dir_).ok());
}

TEST_F(FsckTest, SuperblockWithImpossibleGeometryIsUncorrectable) {
  auto sb = ReadSuperblock(dir_);
  ASSERT_TRUE(sb.ok());
  sb->chunk_size = 3000;  // not a power of two, but a valid CRC
  std::ofstream(dir_ + "/superblock", std::ios::binary | std::ios::trunc) << EncodeSuperblock(*sb);
  ExpectUncorrectable("invalid chunk size");
}

TEST_F(FsckTest, NotAVolumeIsAnOperationalError) {
  FsckReport r = Fsck(root_, {});
  EXPECT_EQ(r.exit_code, kFsckOperational);
  EXPECT_TRUE(Mentions(r.errors, "not a DBFS volume")) << Dump(r);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/lock"));
}

// ---- LMDB: readable, key encodings, versions ----

TEST_F(FsckTest, UnreadableLmdbIsUncorrectable) {
  // Both LMDB meta pages (the first two pages) destroyed.
  {
    std::fstream f(dir_ + "/meta/data.mdb", std::ios::in | std::ios::out | std::ios::binary);
    const std::string zeros(2 * 4096, '\0');
    f.write(zeros.data(), zeros.size());
  }
  ExpectUncorrectable("LMDB environment in meta/ cannot be opened");
}

TEST_F(FsckTest, KeyWithoutVersionSuffixIsUncorrectable) {
  EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
    ASSERT_TRUE(w.Put(T("xattrs"), "abc", std::string(1, mvcc::kTagLive)).ok());
  });
  ExpectUncorrectable("has no version suffix");
}

TEST_F(FsckTest, PartialRepairExitsFive) {
  // One problem -y cannot repair, one it can: fsck(8) adds the bits.
  EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
    ASSERT_TRUE(w.Put(T("xattrs"), "abc", std::string(1, mvcc::kTagLive)).ok());
  });
  EditInode(file_ino_, [](Inode* n) { n->nlink = 3; });
  FsckReport r = Run(true);
  EXPECT_EQ(r.exit_code, kFsckCorrected | kFsckUncorrected) << Dump(r);
  EXPECT_TRUE(Mentions(r.fixed, "link count 3, expected 1")) << Dump(r);
  EXPECT_TRUE(Mentions(r.errors, "has no version suffix")) << Dump(r);
  r = Check();
  EXPECT_EQ(r.exit_code, kFsckUncorrected) << Dump(r);
  EXPECT_EQ(r.errors.size(), 1u) << Dump(r);
}

TEST_F(FsckTest, MalformedLogicalKeyIsRemoved) {
  // A directory entry key without its terminating NUL.
  PutLive("dirents", mvcc::InoKey(kRootIno) + "zz", EncodeDirent(g_ino_, S_IFREG));
  ExpectRepaired("malformed key");
}

TEST_F(FsckTest, DamagedVersionTagIsRewritten) {
  EditNewest("dirents", mvcc::NameKey(kRootIno, "g"), [](std::string* v) { (*v)[0] = 7; });
  ExpectRepaired("invalid tag 7");
  // The store reads any tag but 0 as live: the entry is kept.
  EXPECT_TRUE(LookupPath({"g"}).ok());
}

TEST_F(FsckTest, VersionNewerThanLastCsnIsSuperseded) {
  const uint64_t last = Meta(mvcc::kMetaLastCsn);
  EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
    kv::Table t = T("inodes");
    const std::string k = NewestVersion(w, t, mvcc::InoKey(g_ino_));
    auto v = w.Get(t, k);
    ASSERT_TRUE(v.ok() && *v);
    const std::string value(**v);
    ASSERT_TRUE(w.Delete(t, k).ok());
    ASSERT_TRUE(w.Put(t, mvcc::VersionKey(mvcc::InoKey(g_ino_), last + 5), value).ok());
  });
  ExpectRepaired("is newer than the last committed csn");
  // The misnumbered version was the only copy of the inode: it was kept.
  auto a = LookupPath({"g"});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ino, g_ino_);
}

TEST_F(FsckTest, NextInodeCounterBelowLargestInodeIsRaised) {
  EditLmdb([&](kv::WriteTxn& w, const Tables& T) {
    std::string two;
    PutLE64(&two, 2);
    ASSERT_TRUE(w.Put(T(mvcc::kMetaTableName), mvcc::kMetaNextIno, two).ok());
  });
  ExpectRepaired("next inode number counter 2 is not above the largest inode number");
  // A new file gets a fresh number.
  auto fs = Filesystem::Open(dir_, {});
  ASSERT_TRUE(fs.ok());
  Caller c;
  auto h = (*fs)->Mknod(c, kRootIno, "h", S_IFREG | 0644, 0);
  ASSERT_TRUE(h.ok());
  EXPECT_GT(h->ino, g_ino_);
  ASSERT_TRUE((*fs)->Close().ok());
}

// ---- inodes and directory entries ----

TEST_F(FsckTest, MissingRootIsRecreated) {
  DeleteNewest("inodes", mvcc::InoKey(kRootIno));
  ExpectRepaired("root directory (inode 1) is missing");
  EXPECT_TRUE(LookupPath({"d", "f"}).ok());
}

TEST_F(FsckTest, MalformedInodeRecordIsRemoved) {
  EditNewest("inodes", mvcc::InoKey(g_ino_), [](std::string* v) { v->resize(20); });
  ExpectRepaired("malformed inode record");
  EXPECT_FALSE(LookupPath({"g"}).ok());  // its entry dangled and was dropped
}

TEST_F(FsckTest, DanglingEntryIsDropped) {
  DeleteNewest("inodes", mvcc::InoKey(file_ino_));
  ExpectRepaired("points to missing inode");
  auto a = LookupPath({"d", "f"});
  EXPECT_EQ(a.status().code(), Code::kNotFound);
}

TEST_F(FsckTest, EntryTypeMismatchIsCorrected) {
  EditNewest("dirents", mvcc::NameKey(kRootIno, "g"), [&](std::string* v) {
    *v = std::string(1, mvcc::kTagLive) + EncodeDirent(g_ino_, S_IFDIR);
  });
  ExpectRepaired("does not match inode");
}

TEST_F(FsckTest, WrongLinkCountIsCorrected) {
  EditInode(file_ino_, [](Inode* n) { n->nlink = 3; });
  ExpectRepaired("link count 3, expected 1");
  auto a = LookupPath({"d", "f"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->nlink, 1u);
}

TEST_F(FsckTest, WrongDirectoryLinkCountIsCorrected) {
  EditInode(dir_ino_, [](Inode* n) { n->nlink = 7; });
  ExpectRepaired("directory link count 7, expected 3");
}

TEST_F(FsckTest, SecondEntryForDirectoryIsRemoved) {
  PutLive("dirents", mvcc::NameKey(kRootIno, "d2"), EncodeDirent(dir_ino_, S_IFDIR));
  ExpectRepaired("a second entry for directory");
  EXPECT_TRUE(LookupPath({"d", "e"}).ok());
  EXPECT_FALSE(LookupPath({"d2"}).ok());
}

TEST_F(FsckTest, WrongParentOfDirectoryIsCorrected) {
  EditInode(sub_ino_, [](Inode* n) { n->parent = kRootIno; });
  ExpectRepaired("'..' says 1 but it lives in " + std::to_string(dir_ino_));
}

TEST_F(FsckTest, SymlinkTargetOnAFileIsCleared) {
  EditInode(g_ino_, [](Inode* n) { n->target = "/etc"; });
  ExpectRepaired("carries a symlink target");
}

// ---- tree: connected and acyclic ----

TEST_F(FsckTest, UnreachableDirectoryIsMovedToLostFound) {
  DeleteNewest("dirents", mvcc::NameKey(kRootIno, "d"));
  ExpectRepaired("directory is not reachable from the root");
  const std::string name = "#" + std::to_string(dir_ino_);
  auto a = LookupPath({"lost+found", name, "f"});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ino, file_ino_);
  EXPECT_TRUE(LookupPath({"lost+found", name, "e"}).ok());
}

TEST_F(FsckTest, UnreachableFileIsMovedToLostFound) {
  DeleteNewest("dirents", mvcc::NameKey(kRootIno, "g"));
  ExpectRepaired("not reachable from the root directory");
  auto a = LookupPath({"lost+found", "#" + std::to_string(g_ino_)});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ino, g_ino_);
}

TEST_F(FsckTest, DirectoryCycleIsBroken) {
  // /d is detached and /d/e names /d: d -> e -> d.
  DeleteNewest("dirents", mvcc::NameKey(kRootIno, "d"));
  PutLive("dirents", mvcc::NameKey(sub_ino_, "loop"), EncodeDirent(dir_ino_, S_IFDIR));
  ExpectRepaired("directory cycle");
  // Some member of the cycle is in /lost+found now and the rest under it.
  auto fs = Filesystem::Open(dir_, {});
  ASSERT_TRUE(fs.ok());
  Caller c;
  auto lf = (*fs)->Lookup(c, kRootIno, "lost+found");
  ASSERT_TRUE(lf.ok());
  auto viad = (*fs)->Lookup(c, lf->ino, "#" + std::to_string(dir_ino_));
  auto viae = (*fs)->Lookup(c, lf->ino, "#" + std::to_string(sub_ino_));
  EXPECT_NE(viad.ok(), viae.ok());
  ASSERT_TRUE((*fs)->Close().ok());
}

// ---- orphan list ----

TEST_F(FsckTest, OrphanEntryOfLinkedInodeIsRemoved) {
  PutLive("orphans", mvcc::InoKey(file_ino_), "");
  ExpectRepaired("is on the orphan list but still linked");
  EXPECT_TRUE(LookupPath({"d", "f"}).ok());  // the mount would have destroyed it
}

TEST_F(FsckTest, RootOnTheOrphanListIsRemovedFromIt) {
  PutLive("orphans", mvcc::InoKey(kRootIno), "");
  ExpectRepaired("the root directory is on the orphan list");
  EXPECT_TRUE(LookupPath({"d", "f"}).ok());  // and was not reclaimed
}

TEST_F(FsckTest, OrphanEntryOfMissingInodeIsRemoved) {
  PutLive("orphans", mvcc::InoKey(9999), "");
  ExpectRepaired("orphan list names missing inode 9999");
}

TEST_F(FsckTest, UnlinkedInodeNotOnOrphanListIsReclaimed) {
  DeleteNewest("dirents", mvcc::NameKey(kRootIno, "g"));
  EditInode(g_ino_, [](Inode* n) { n->nlink = 0; });
  ExpectRepaired("unlinked inode not on the orphan list");
  FsckReport r = Check();
  EXPECT_EQ(r.inodes, 4u);  // reclaimed
  EXPECT_EQ(r.orphans, 0u);
}

// ---- file data and space accounting ----

TEST_F(FsckTest, SliceIntoMissingSegmentIsDropped) {
  EditNewest("extents", mvcc::ChunkKey(file_ino_, 0), [](std::string* v) {
    auto l = DecodeSlices(v->substr(1));
    ASSERT_TRUE(l.ok() && l->size() == 1);
    (*l)[0].segment = 9;
    *v = std::string(1, mvcc::kTagLive) + EncodeSlices(*l);
  });
  ExpectRepaired("which does not exist");
  auto a = LookupPath({"d", "f"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, 5u);  // the size stays; the bytes read as zeros
  EXPECT_EQ(a->blocks, 0u);
}

TEST_F(FsckTest, SliceOutsideEveryRecordIsDropped) {
  EditNewest("extents", mvcc::ChunkKey(file_ino_, 0), [](std::string* v) {
    auto l = DecodeSlices(v->substr(1));
    ASSERT_TRUE(l.ok() && l->size() == 1);
    (*l)[0].data = 10;  // inside the segment header
    *v = std::string(1, mvcc::kTagLive) + EncodeSlices(*l);
  });
  ExpectRepaired("which is not inside a WAL record");
}

TEST_F(FsckTest, DataChecksumMismatchIsFoundByTheFullCheck) {
  const SliceList l = Slices(file_ino_, 0);
  ASSERT_EQ(l.size(), 1u);
  FlipByte(wal::SegmentPath(dir_ + "/wal", l[0].segment), static_cast<off_t>(l[0].data + 1));
  // The quick check of a clean volume does not read file data.
  FsckReport r = Check();
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_FALSE(r.full_check);
  ExpectRepaired("checksum does not match", /*force=*/true);
  // Nothing points into the damaged record any more: harmless, but said.
  r = Run(false, true);
  EXPECT_TRUE(Mentions(r.warnings, "DATA record fails its checksum")) << Dump(r);
}

TEST_F(FsckTest, SpaceAccountingIsRebuilt) {
  EditInode(file_ino_, [](Inode* n) { n->alloc = 999; });
  ExpectRepaired("space accounting says 999 bytes of data, its slices hold 5");
  auto a = LookupPath({"d", "f"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->blocks, 1u);
}

TEST_F(FsckTest, DataBeyondFileSizeIsCut) {
  EditInode(file_ino_, [](Inode* n) { n->size = 2; });
  ExpectRepaired("run past the file size 2");
  FsckReport r = Check();
  EXPECT_EQ(r.live_bytes, 2u);
}

TEST_F(FsckTest, DataOfMissingInodeIsRemoved) {
  SliceList l = Slices(file_ino_, 0);
  PutLive("extents", mvcc::ChunkKey(9999, 0), EncodeSlices(l));
  ExpectRepaired("data of missing inode 9999");
}

TEST_F(FsckTest, DataOfADirectoryIsRemoved) {
  SliceList l = Slices(file_ino_, 0);
  PutLive("extents", mvcc::ChunkKey(dir_ino_, 0), EncodeSlices(l));
  ExpectRepaired("a directory has file data");
}

TEST_F(FsckTest, XattrOfMissingInodeIsRemoved) {
  PutLive("xattrs", mvcc::NameKey(9999, "user.x"), "v");
  ExpectRepaired("xattr 'user.x' of missing inode 9999");
}

// ---- no false alarms ----

// Everything the filesystem does leaves a volume fsck finds clean (full
// check, no warnings), after a clean unmount and after a crash. The seed is
// fixed, so a failure reproduces.
TEST_F(FsckTest, RandomWorkloadLeavesAConsistentVolume) {
  for (const bool crash : {false, true}) {
    SCOPED_TRACE(crash ? "after a crash" : "after a clean unmount");
    std::mt19937_64 rng(crash ? 2 : 1);
    auto fs = Filesystem::Open(dir_, {});
    ASSERT_TRUE(fs.ok());
    Filesystem& f = **fs;
    Caller c;
    std::vector<uint64_t> dirs{kRootIno, dir_ino_, sub_ino_};
    struct Open {
      uint64_t ino, fh;
    };
    std::vector<Open> open;
    auto name = [&] { return "n" + std::to_string(rng() % 24); };
    auto dir = [&] { return dirs[rng() % dirs.size()]; };
    // A random existing non-directory, if the draw finds one.
    auto file = [&]() -> uint64_t {
      auto a = f.Lookup(c, dir(), name());
      return a.ok() && S_ISREG(a->mode) ? a->ino : 0;
    };
    std::string data(80000, '\0');
    for (auto& ch : data) ch = static_cast<char>(rng());
    for (int i = 0; i < 600; ++i) {
      const uint64_t off = rng() % (3u << 20);
      const size_t len = 1 + rng() % 70000;
      switch (rng() % 14) {
        case 0:
        case 1: {
          // O_EXCL: without it Create opens whatever has the name, even a
          // symlink, and Write then gives the symlink file data (a bug of
          // the filesystem layer that fsck reports; not what this tests).
          auto h = f.Create(c, dir(), name(), 0644, O_RDWR | O_EXCL);
          if (h.ok()) open.push_back({h->attr.ino, h->fh});
          break;
        }
        case 2:
        case 3:
          if (!open.empty()) {
            const Open& o = open[rng() % open.size()];
            f.Write(c, o.ino, o.fh, off, data.data(), len).status().IgnoreError();
          }
          break;
        case 4:
          if (uint64_t ino = file()) {
            SetAttrIn in;
            in.valid = SetAttrIn::kSize;
            in.size = rng() % 2 ? off : off / 64;
            f.SetAttr(c, ino, in).status().IgnoreError();
          }
          break;
        case 5:
          if (!open.empty()) {
            const Open& o = open[rng() % open.size()];
            f.Fallocate(c, o.ino, o.fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off / 2, len)
                .IgnoreError();
          }
          break;
        case 6:
          if (uint64_t ino = file()) f.Link(c, ino, dir(), name()).status().IgnoreError();
          break;
        case 7:
          f.Unlink(c, dir(), name()).IgnoreError();
          break;  // open ones become orphans
        case 8:
          f.Rename(c, dir(), name(), dir(), name(), 0).IgnoreError();
          break;
        case 9: {
          auto d = f.Mkdir(c, dir(), "d" + std::to_string(rng() % 8), 0755);
          if (d.ok()) dirs.push_back(d->ino);
          break;
        }
        case 10:
          f.Rmdir(c, dir(), "d" + std::to_string(rng() % 8)).IgnoreError();
          break;
        case 11:
          f.Rename(c, dir(), "d" + std::to_string(rng() % 8), dir(),
                   "d" + std::to_string(rng() % 8), 0)
              .IgnoreError();
          break;
        case 12:
          if (uint64_t ino = file()) {
            if (rng() % 3)
              f.SetXattr(c, ino, "user.a" + std::to_string(rng() % 3), "v", 0).IgnoreError();
            else
              f.RemoveXattr(c, ino, "user.a0").IgnoreError();
          }
          break;
        case 13:
          if (!open.empty()) {
            // Many small overwrites of one chunk: compaction.
            const Open& o = open[rng() % open.size()];
            for (int k = 0; k < 40; ++k) {
              f.Write(c, o.ino, o.fh, (rng() % 4096) * 7, data.data() + k, 5)
                  .status()
                  .IgnoreError();
            }
          } else {
            f.Symlink(c, dir(), name(), "target").status().IgnoreError();
          }
          break;
      }
      if (open.size() > 6) {
        f.Release(open.front().ino, open.front().fh).IgnoreError();
        open.erase(open.begin());
      }
    }
    if (crash) {
      ASSERT_TRUE(f.SyncAll(c).ok());
      f.TEST_Abandon();  // open unlinked files stay on the orphan list
    } else {
      for (const Open& o : open) f.Release(o.ino, o.fh).IgnoreError();
      ASSERT_TRUE(f.Close().ok());
    }
    fs->reset();
    FsckReport r = Run(false, /*force=*/true);
    EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
    EXPECT_TRUE(r.warnings.empty()) << Dump(r);
    EXPECT_GT(r.live_bytes, 0u);
    r = Run(true);
    EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
    r = Run(false, true);
    EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
    EXPECT_EQ(r.orphans, 0u);
  }
}

// ---- WAL ----

// A checkpoint empties and deletes old segments whose data is garbage while
// an older, mostly live segment stays: the COMMITs of the deleted segments
// (all applied) are gone, so the CSNs in the WAL jump across the hole. That
// is a healthy volume: the full check must print no warning (it used to say
// "COMMIT csn X follows csn Y (CSNs must increase by one)").
TEST(FsckWalTest, CheckpointThatDeletesMiddleSegmentsLeavesNoWarning) {
  testing::TempVolume vol("fsck-hole");
  ASSERT_TRUE(vol.ok());
  FsOptions o;
  o.wal_segment_bytes = 1 << 20;
  {
    auto fs = Filesystem::Open(vol.dir(), o);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    Caller c;
    // Segment 1: nearly all live data, so no checkpoint relocates it.
    auto keep = (*fs)->Create(c, kRootIno, "keep", 0644, O_RDWR);
    ASSERT_TRUE(keep.ok());
    const std::string live(900000, 'k');
    ASSERT_TRUE((*fs)->Write(c, keep->attr.ino, keep->fh, 0, live.data(), live.size()).ok());
    ASSERT_TRUE((*fs)->Release(keep->attr.ino, keep->fh).ok());
    // Segments 2..: many small commits whose data is overwritten (garbage).
    auto f = (*fs)->Create(c, kRootIno, "churn", 0644, O_RDWR);
    ASSERT_TRUE(f.ok());
    const std::string chunk(40000, 'c');
    for (int i = 0; i < 120; ++i) {
      ASSERT_TRUE((*fs)->Write(c, f->attr.ino, f->fh, 0, chunk.data(), chunk.size()).ok());
    }
    ASSERT_TRUE((*fs)->Release(f->attr.ino, f->fh).ok());
    auto cp = (*fs)->Checkpoint();
    ASSERT_TRUE(cp.ok()) << cp.status().ToString();
    ASSERT_GE(cp->segments_removed, 2u) << cp->ToString();
    ASSERT_TRUE((*fs)->Close().ok());
  }
  // The situation under test: segment 1 kept, a later one deleted.
  ASSERT_TRUE(std::filesystem::exists(wal::SegmentPath(vol.dir() + "/wal", 1)));
  ASSERT_FALSE(std::filesystem::exists(wal::SegmentPath(vol.dir() + "/wal", 2)));
  FsckOptions fo;
  fo.force = true;
  FsckReport r = Fsck(vol.dir(), fo);
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_TRUE(r.warnings.empty()) << Dump(r);
}


TEST_F(FsckTest, MidLogCorruptionInThePendingLogIsUncorrectable) {
  {
    auto fs = Filesystem::Open(dir_, {});
    ASSERT_TRUE(fs.ok());
    Caller c;
    ASSERT_TRUE((*fs)->Mkdir(c, kRootIno, "one", 0755).ok());
    ASSERT_TRUE((*fs)->SyncAll(c).ok());
    ASSERT_TRUE((*fs)->Mkdir(c, kRootIno, "two", 0755).ok());  // its record proves "one" durable
    ASSERT_TRUE((*fs)->SyncAll(c).ok());
    (*fs)->TEST_Abandon();
  }
  const wal::Lsn applied = Meta(mvcc::kMetaAppliedLsn);
  FlipByte(wal::SegmentPath(dir_ + "/wal", wal::LsnSegment(applied)),
           static_cast<off_t>(wal::LsnOffset(applied) + wal::kHeaderSize + 4));
  ExpectUncorrectable("the mount refuses this volume");
}

TEST_F(FsckTest, DamageInAnAppliedCommitIsOnlyAWarning) {
  // The first record of segment 1 (mkfs's commit) was applied long ago;
  // recovery never reads it again.
  FlipByte(dir_ + "/wal/00000001.wal", 100);
  FsckReport r = Run(false, /*force=*/true);
  EXPECT_EQ(r.exit_code, kFsckClean) << Dump(r);
  EXPECT_TRUE(Mentions(r.warnings, "COMMIT record fails its checksum")) << Dump(r);
}

// ---- the tool ----

TEST_F(FsckTest, MountedVolumeIsRefused) {
  auto fs = Filesystem::Open(dir_, {});
  ASSERT_TRUE(fs.ok());
  // Open() holds the volume lock (the volume is not in /proc/mounts, and the
  // holder is this very process, so the refusal is immediate).
  for (bool repair : {false, true}) {
    FsckReport r = Run(repair);
    EXPECT_EQ(r.exit_code, kFsckOperational) << Dump(r);
    EXPECT_TRUE(Mentions(r.errors, "in use")) << Dump(r);
  }
  ASSERT_TRUE((*fs)->Close().ok());
  fs->reset();  // releases the volume lock
  EXPECT_EQ(Check().exit_code, kFsckClean);
}

TEST_F(FsckTest, ProgressIsReported) {
  std::vector<std::string> phases;
  FsckOptions o;
  o.progress = [&](std::string_view phase, uint64_t, uint64_t) {
    if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
  };
  EXPECT_EQ(Fsck(dir_, o).exit_code, kFsckClean);
  EXPECT_NE(std::find(phases.begin(), phases.end(), "checking directory entries"), phases.end());
  EXPECT_NE(std::find(phases.begin(), phases.end(), "checking file data"), phases.end());
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.back(), "done");
}

TEST(FsckCommandLineTest, UsageErrorsExit16) {
  auto parse = [](std::vector<const char*> args) {
    args.insert(args.begin(), "fsck.dbfs");
    return ParseFsckCommandLine(static_cast<int>(args.size()), args.data());
  };
  EXPECT_EQ(parse({}).exit_code, kFsckUsage);                  // no volume
  EXPECT_EQ(parse({"-n", "-y", "/v"}).exit_code, kFsckUsage);  // contradictory
  EXPECT_EQ(parse({"-x", "/v"}).exit_code, kFsckUsage);        // unknown flag
  EXPECT_EQ(parse({"/v", "/w"}).exit_code, kFsckUsage);        // two volumes
  EXPECT_EQ(parse({"--help"}).exit_code, 0);
  auto ok = parse({"-y", "-f", "/v"});
  EXPECT_EQ(ok.exit_code, -1);
  EXPECT_EQ(ok.volume, "/v");
  EXPECT_TRUE(ok.options.repair);
  EXPECT_TRUE(ok.options.force);
  auto check = parse({"/v"});
  EXPECT_EQ(check.exit_code, -1);
  EXPECT_FALSE(check.options.repair);  // no flag: check only
}

}  // namespace
}  // namespace dbfs

namespace dbfs {
namespace {

// History (docs/fsck.md "History"): a snapshot's old file data must still be
// in the WAL. With its segment gone, fsck names the snapshot.
TEST(FsckHistoryTest, SnapshotDataThatIsGoneIsAnError) {
  testing::TempVolume vol("fsck-history");
  ASSERT_TRUE(vol.ok());
  FsOptions o;
  o.wal_segment_bytes = 1 << 20;
  uint64_t ino = 0;
  {
    auto fs = Filesystem::Open(vol.dir(), o);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    Caller c;
    auto f = (*fs)->Create(c, kRootIno, "f", 0644, O_RDWR);
    ASSERT_TRUE(f.ok());
    ino = f->attr.ino;
    const std::string old(600000, 'o');
    ASSERT_TRUE((*fs)->Write(c, ino, f->fh, 0, old.data(), old.size()).ok());
    ASSERT_TRUE((*fs)->CreateSnapshot(c, "s1").ok());
    const std::string fresh(600000, 'n');
    // Two more segments of new data: the snapshot's data stays in the first.
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE((*fs)->Write(c, ino, f->fh, 0, fresh.data(), fresh.size()).ok());
    }
    ASSERT_TRUE((*fs)->Release(ino, f->fh).ok());
    auto cp = (*fs)->Checkpoint();
    ASSERT_TRUE(cp.ok());
    EXPECT_GE(cp->history_bytes, old.size());  // the snapshot holds the old data
    ASSERT_TRUE((*fs)->Close().ok());
  }
  FsckOptions fo;
  fo.force = true;
  FsckReport r = Fsck(vol.dir(), fo);
  EXPECT_EQ(r.exit_code, kFsckClean);
  for (const auto& e : r.errors) ADD_FAILURE() << e;
  // The checkpoint kept segment 1: the snapshot refers to it.
  ASSERT_EQ(::unlink(wal::SegmentPath(vol.dir() + "/wal", 1).c_str()), 0);
  r = Fsck(vol.dir(), fo);
  EXPECT_NE(r.exit_code & kFsckUncorrected, 0);
  bool named = false;
  for (const auto& e : r.errors) named |= e.find("snapshot 's1'") != std::string::npos;
  EXPECT_TRUE(named) << "no error names the snapshot";
}

}  // namespace
}  // namespace dbfs
