// The test harnesses are code the other tests trust: test them too.
#include "tests/testlib/test_file_systems.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "tests/wal/wal_test_util.h"

namespace dbfs::wal::testing {
namespace {

std::string Read(FileSystem* fs, const std::string& path) {
  auto r = ReadFileToString(fs, path);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "<error>";
}

void Append(File* f, const std::string& data) {
  auto size = f->Size();
  ASSERT_TRUE(size.ok());
  ASSERT_OK(f->PWrite(*size, data.data(), data.size()));
}

TEST(MemFileSystemTest, DropUnsyncedLosesExactlyUnsyncedBytes) {
  MemFileSystem fs;
  ASSERT_OK(fs.CreateDir("/d"));
  auto f = fs.Open("/d/a", FileSystem::kCreate);
  ASSERT_TRUE(f.ok());
  ASSERT_OK(fs.SyncDir("/d"));
  Append(f->get(), "synced-1|");
  ASSERT_OK((*f)->Sync());
  Append(f->get(), "synced-2|");
  ASSERT_OK((*f)->Sync());
  Append(f->get(), "not synced");
  EXPECT_EQ(fs.UnsyncedBytes(), 10u);
  EXPECT_EQ(Read(&fs, "/d/a"), "synced-1|synced-2|not synced");

  fs.DropUnsynced();
  EXPECT_EQ(Read(&fs, "/d/a"), "synced-1|synced-2|");
  EXPECT_EQ(fs.UnsyncedBytes(), 0u);
  // The old handle sees the reverted file and keeps working.
  auto size = (*f)->Size();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 18u);

  // Overwrites and truncations revert too.
  ASSERT_OK((*f)->PWrite(0, "XX", 2));
  ASSERT_OK((*f)->Truncate(5));
  fs.DropUnsynced();
  EXPECT_EQ(Read(&fs, "/d/a"), "synced-1|synced-2|");
}

TEST(MemFileSystemTest, DirectoryEntriesNeedSyncDir) {
  MemFileSystem fs;
  ASSERT_OK(fs.CreateDir("/d"));
  {
    auto f = fs.Open("/d/new", FileSystem::kCreate);
    ASSERT_TRUE(f.ok());
    ASSERT_OK((*f)->PWrite(0, "abc", 3));
    ASSERT_OK((*f)->Sync());  // data synced, entry not
  }
  fs.DropUnsynced();
  EXPECT_FALSE(fs.Exists("/d/new"));

  {
    auto f = fs.Open("/d/kept", FileSystem::kCreate);
    ASSERT_TRUE(f.ok());
    ASSERT_OK(fs.SyncDir("/d"));           // entry durable
    ASSERT_OK((*f)->PWrite(0, "abc", 3));  // data not synced
  }
  fs.DropUnsynced();
  ASSERT_TRUE(fs.Exists("/d/kept"));
  EXPECT_EQ(Read(&fs, "/d/kept"), "");

  // A removal without SyncDir is undone, with the file's synced content.
  {
    auto f = fs.Open("/d/kept", FileSystem::kNone);
    ASSERT_TRUE(f.ok());
    ASSERT_OK((*f)->PWrite(0, "xyz", 3));
    ASSERT_OK((*f)->Sync());
  }
  ASSERT_OK(fs.Remove("/d/kept"));
  EXPECT_FALSE(fs.Exists("/d/kept"));
  fs.DropUnsynced();
  ASSERT_TRUE(fs.Exists("/d/kept"));
  EXPECT_EQ(Read(&fs, "/d/kept"), "xyz");

  ASSERT_OK(fs.Remove("/d/kept"));
  ASSERT_OK(fs.SyncDir("/d"));
  fs.DropUnsynced();
  EXPECT_FALSE(fs.Exists("/d/kept"));
}

TEST(MemFileSystemTest, NamespaceBasics) {
  MemFileSystem fs;
  EXPECT_EQ(fs.Open("/nodir/f", FileSystem::kCreate).status().code(), Code::kNotFound);
  ASSERT_OK(fs.CreateDir("/d/"));
  ASSERT_OK(fs.CreateDir("/d"));  // exists: ok
  EXPECT_EQ(fs.Open("/d/f", FileSystem::kNone).status().code(), Code::kNotFound);
  ASSERT_TRUE(fs.Open("//d//f", FileSystem::kCreate).ok());
  ASSERT_OK(fs.CreateDir("/d/sub"));
  auto names = fs.ListDir("/d");
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"f", "sub"}));
  auto ro = fs.Open("/d/f", FileSystem::kReadOnly);
  ASSERT_TRUE(ro.ok());
  EXPECT_FALSE((*ro)->PWrite(0, "x", 1).ok());
  EXPECT_EQ(fs.Remove("/d/missing").code(), Code::kNotFound);
  EXPECT_EQ(fs.ListDir("/missing").status().code(), Code::kNotFound);
}

TEST(MemFileSystemTest, RandomCrashModesKeepPartsOfTheUnsyncedData) {
  const std::string synced(10000, 's');
  const std::string unsynced(20000, 'u');
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    for (auto mode : {MemFileSystem::CrashMode::kKeepRandomPrefix,
                      MemFileSystem::CrashMode::kKeepRandomPages}) {
      MemFileSystem fs;
      auto f = fs.Open("/f", FileSystem::kCreate);
      ASSERT_TRUE(f.ok());
      ASSERT_OK(fs.SyncDir("/"));
      ASSERT_OK((*f)->PWrite(0, synced.data(), synced.size()));
      ASSERT_OK((*f)->Sync());
      ASSERT_OK((*f)->PWrite(synced.size(), unsynced.data(), unsynced.size()));
      fs.DropUnsynced(mode, seed);
      const std::string got = Read(&fs, "/f");
      // Synced bytes always survive.
      ASSERT_GE(got.size(), synced.size());
      ASSERT_EQ(got.substr(0, synced.size()), synced);
      ASSERT_LE(got.size(), synced.size() + unsynced.size());
      const std::string tail = got.substr(synced.size());
      if (mode == MemFileSystem::CrashMode::kKeepRandomPrefix) {
        EXPECT_EQ(tail, unsynced.substr(0, tail.size()));
      } else {
        EXPECT_TRUE(got.size() == synced.size() || got.size() == synced.size() + unsynced.size());
        // Every 4 KiB page is all new data or all zeros (the last synced page
        // is shared with new data, so compare page by page of the file).
        for (size_t p = 0; p < got.size(); p += 4096) {
          const std::string page = got.substr(p, 4096);
          std::string as_new = (synced + unsynced).substr(p, page.size());
          std::string as_old = p < synced.size() ? synced.substr(p, page.size()) : "";
          as_old.resize(page.size(), '\0');
          EXPECT_TRUE(page == as_new || page == as_old) << "page at " << p;
        }
      }
      // Deterministic for a seed.
      MemFileSystem fs2;
      auto f2 = fs2.Open("/f", FileSystem::kCreate);
      ASSERT_TRUE(f2.ok());
      ASSERT_OK(fs2.SyncDir("/"));
      ASSERT_OK((*f2)->PWrite(0, synced.data(), synced.size()));
      ASSERT_OK((*f2)->Sync());
      ASSERT_OK((*f2)->PWrite(synced.size(), unsynced.data(), unsynced.size()));
      fs2.DropUnsynced(mode, seed);
      EXPECT_EQ(Read(&fs2, "/f"), got);
    }
  }
}

TEST(FaultInjectionFileSystemTest, FailsTheKthOperationOfAKind) {
  MemFileSystem mem;
  FaultInjectionFileSystem fs(&mem);
  auto f = fs.Open("/f", FileSystem::kCreate);
  ASSERT_TRUE(f.ok());
  fs.FailAfter(FaultInjectionFileSystem::OpKind::kWrite, 3);
  ASSERT_OK((*f)->PWrite(0, "a", 1));
  ASSERT_OK((*f)->Sync());  // other kinds do not count toward the fault
  ASSERT_OK((*f)->PWrite(1, "b", 1));
  Status s = (*f)->PWrite(2, "c", 1);
  EXPECT_EQ(s.code(), Code::kIOError);
  EXPECT_NE(s.message().find("injected"), std::string::npos);
  ASSERT_OK((*f)->PWrite(2, "c", 1));  // one-shot
  EXPECT_EQ(Read(&mem, "/f"), "abc");
  EXPECT_EQ(fs.count(FaultInjectionFileSystem::OpKind::kWrite), 4u);
  EXPECT_EQ(fs.count(FaultInjectionFileSystem::OpKind::kSync), 1u);
  EXPECT_EQ(fs.injected(), 1u);

  fs.FailAfter(FaultInjectionFileSystem::OpKind::kSync, 1, ENOSPC, /*persistent=*/true);
  EXPECT_EQ((*f)->Sync().code(), Code::kNoSpace);
  EXPECT_EQ((*f)->Sync().code(), Code::kNoSpace);
  EXPECT_EQ(fs.SyncDir("/").code(), Code::kNoSpace);
  fs.ClearFaults();
  ASSERT_OK((*f)->Sync());

  fs.FailAfter(FaultInjectionFileSystem::OpKind::kAny, 2);
  char buf[4];
  size_t got = 0;
  ASSERT_OK((*f)->PRead(0, buf, 3, &got));
  EXPECT_EQ(fs.Open("/f", FileSystem::kNone).status().code(), Code::kIOError);
  EXPECT_GE(fs.count(FaultInjectionFileSystem::OpKind::kAny), 10u);
}

TEST(FaultInjectionFileSystemTest, SyncHookRunsBeforeEverySync) {
  MemFileSystem mem;
  FaultInjectionFileSystem fs(&mem);
  int calls = 0;
  fs.SetSyncHook([&] { ++calls; });
  auto f = fs.Open("/f", FileSystem::kCreate);
  ASSERT_TRUE(f.ok());
  ASSERT_OK((*f)->Sync());
  fs.FailAfter(FaultInjectionFileSystem::OpKind::kSync, 1);
  EXPECT_FALSE((*f)->Sync().ok());
  EXPECT_EQ(calls, 2);
  fs.SetSyncHook(nullptr);
  ASSERT_OK((*f)->Sync());
  EXPECT_EQ(calls, 2);
}

class FileSystemContractTest : public WalTest {};

TEST_P(FileSystemContractTest, FileOperations) {
  FileSystem* fs = this->fs();
  ASSERT_OK(fs->CreateDir(dir()));
  ASSERT_OK(fs->CreateDir(dir()));
  const std::string path = dir() + "/f";
  EXPECT_FALSE(fs->Exists(path));
  EXPECT_EQ(fs->Open(path, FileSystem::kNone).status().code(), Code::kNotFound);
  auto f = fs->Open(path, FileSystem::kCreate);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(fs->Exists(path));
  ASSERT_OK((*f)->PWrite(0, "hello", 5));
  const std::string_view pieces[] = {" ", "", "world", "!"};
  ASSERT_OK((*f)->PWriteV(5, pieces, 4));
  ASSERT_OK((*f)->Sync());
  ASSERT_OK(fs->SyncDir(dir()));
  auto size = (*f)->Size();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 12u);
  char buf[32];
  size_t got = 0;
  ASSERT_OK((*f)->PRead(6, buf, sizeof(buf), &got));  // short only at EOF
  EXPECT_EQ(std::string(buf, got), "world!");
  ASSERT_OK((*f)->PRead(100, buf, 4, &got));
  EXPECT_EQ(got, 0u);
  ASSERT_OK((*f)->Truncate(5));
  EXPECT_EQ(Read(fs, path), "hello");

  auto ro = fs->Open(path, FileSystem::kReadOnly);
  ASSERT_TRUE(ro.ok());
  EXPECT_FALSE((*ro)->PWrite(0, "x", 1).ok());

  auto names = fs->ListDir(dir());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"f"});
  ASSERT_OK(fs->Remove(path));
  EXPECT_FALSE(fs->Exists(path));
  EXPECT_EQ(fs->Remove(path).code(), Code::kNotFound);
  EXPECT_EQ(fs->ListDir(dir() + "/missing").status().code(), Code::kNotFound);
}

TEST_P(FileSystemContractTest, ManyPiecesInOneWrite) {
  ASSERT_OK(fs()->CreateDir(dir()));
  auto f = fs()->Open(dir() + "/f", FileSystem::kCreate);
  ASSERT_TRUE(f.ok());
  std::vector<std::string> owned;
  std::string expect;
  for (int i = 0; i < 3000; ++i) {  // more than IOV_MAX pieces
    owned.push_back(std::to_string(i) + ",");
    expect += owned.back();
  }
  std::vector<std::string_view> pieces(owned.begin(), owned.end());
  ASSERT_OK((*f)->PWriteV(0, pieces.data(), pieces.size()));
  EXPECT_EQ(Read(fs(), dir() + "/f"), expect);
}

INSTANTIATE_TEST_SUITE_P(Backends, FileSystemContractTest,
                         ::testing::Values(Backend::kMem, Backend::kPosix), BackendName);

TEST(ParentDirTest, Cases) {
  EXPECT_EQ(ParentDir("/a/b/c"), "/a/b");
  EXPECT_EQ(ParentDir("/a/b/"), "/a");
  EXPECT_EQ(ParentDir("/a"), "/");
  EXPECT_EQ(ParentDir("a"), ".");
  EXPECT_EQ(ParentDir("a/b"), "a");
}

TEST(DefaultFileSystemTest, IsASingleton) { EXPECT_EQ(DefaultFileSystem(), DefaultFileSystem()); }

}  // namespace
}  // namespace dbfs::wal::testing
