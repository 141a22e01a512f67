// Checkpoint (fs/checkpoint.h): WAL space comes back, file contents never
// change, and transactions or readers that began before a relocation are
// neither broken nor aborted by it. Small (1 MiB) WAL segments so that a few
// MiB of writes span many.
#include "fs/checkpoint.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "fs/filesystem.h"
#include "tools/lib/fsck.h"
#include "tests/testlib/temp_volume.h"
#include "tools/lib/mkfs.h"

namespace dbfs {
namespace {

constexpr uint64_t kSeg = 1 << 20;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vol_ = std::make_unique<testing::TempVolume>("cp");
    ASSERT_TRUE(vol_->ok());
    root_ = vol_->root();
    dir_ = vol_->dir();
    opts_.wal_segment_bytes = kSeg;
    opts_.checkpoint_bytes = 0;  // no background checkpoints: the test decides
    opts_.checkpoint_interval_s = 0;
    opts_.checkpoint_barrier_ms = 300;
    Open();
  }
  void TearDown() override {
    fs_.reset();
    vol_.reset();
  }
  void Open() {
    auto f = Filesystem::Open(dir_, opts_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    fs_ = std::move(f).value();
  }
  void Crash() {
    fs_->TEST_Abandon();
    fs_.reset();
    Open();
  }

  // Runs a checkpoint; returns its report as name -> value.
  std::map<std::string, uint64_t> Checkpoint() {
    auto r = fs_->Checkpoint();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::map<std::string, uint64_t> rep;
    std::istringstream in(r.ok() ? r->ToString() : "");
    std::string k;
    uint64_t v;
    while (in >> k >> v) rep[k] = v;
    return rep;
  }
  // The WAL's segment files: name -> size.
  std::map<std::string, uint64_t> WalFiles() {
    std::map<std::string, uint64_t> m;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/wal")) {
      m[e.path().filename().string()] = e.file_size();
    }
    return m;
  }
  uint64_t WalBytes() {
    uint64_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/wal")) n += e.file_size();
    return n;
  }

  uint64_t Create(const Caller& c, const std::string& name) {
    auto cr = fs_->Create(c, kRootIno, name, 0644, O_RDWR);
    EXPECT_TRUE(cr.ok()) << cr.status().ToString();
    EXPECT_TRUE(fs_->Release(cr->attr.ino, cr->fh).ok());
    return cr->attr.ino;
  }
  void WriteAt(const Caller& c, uint64_t ino, uint64_t off, const std::string& data) {
    auto o = fs_->Open(c, ino, O_WRONLY);
    ASSERT_TRUE(o.ok()) << o.status().ToString();
    auto w = fs_->Write(c, ino, *o, off, data.data(), data.size());
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    EXPECT_TRUE(fs_->Release(ino, *o).ok());
  }
  std::string ReadAll(const Caller& c, uint64_t ino) {
    auto a = fs_->GetAttr(c, ino);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    auto o = fs_->Open(c, ino, O_RDONLY);
    EXPECT_TRUE(o.ok());
    std::string buf(a.ok() ? a->size : 0, '\0');
    auto n = fs_->Read(c, ino, *o, 0, buf.size(), buf.data());
    EXPECT_TRUE(n.ok());
    buf.resize(n.ok() ? *n : 0);
    EXPECT_TRUE(fs_->Release(ino, *o).ok());
    return buf;
  }
  static std::string Bytes(size_t n, std::mt19937_64& rng) {
    std::string s(n, '\0');
    for (auto& ch : s) ch = static_cast<char>('a' + rng() % 26);
    return s;
  }
  Caller InTx(uint64_t id) {
    Caller c;
    c.tx = id;
    return c;
  }

  std::unique_ptr<testing::TempVolume> vol_;
  std::string root_, dir_;
  FsOptions opts_;
  std::unique_ptr<Filesystem> fs_;
  Caller c_;
};

// The space test in miniature: write, overwrite everything randomly
// three times, delete half; a checkpoint brings the WAL to at most 1.5x the
// live bytes (plus the two segments it may not touch: the one being written
// and the one recovery starts in), and every byte reads back the same, also
// after a crash and through fsck.
TEST_F(CheckpointTest, SpaceComesBackAndDataStaysTheSame) {
  std::mt19937_64 rng(42);
  constexpr int kFiles = 8;
  constexpr size_t kSize = 512 << 10;
  std::map<uint64_t, std::string> model;
  for (int i = 0; i < kFiles; ++i) {
    uint64_t ino = Create(c_, "f" + std::to_string(i));
    model[ino] = Bytes(kSize, rng);
    WriteAt(c_, ino, 0, model[ino]);
  }
  for (int pass = 0; pass < 3; ++pass) {
    for (auto& [ino, data] : model) {
      for (size_t done = 0; done < kSize;) {
        const size_t len = 4096 + rng() % (60 << 10);
        const size_t off = rng() % kSize;
        const size_t n = std::min(len, kSize - off);
        std::string piece = Bytes(n, rng);
        WriteAt(c_, ino, off, piece);
        data.replace(off, n, piece);
        done += n;
      }
    }
  }
  for (int i = 0; i < kFiles; i += 2) {
    auto l = fs_->Lookup(c_, kRootIno, "f" + std::to_string(i));
    ASSERT_TRUE(l.ok());
    model.erase(l->ino);
    fs_->Forget(l->ino, 2);  // Create's and Lookup's references: no orphan
    ASSERT_TRUE(fs_->Unlink(c_, kRootIno, "f" + std::to_string(i)).ok());
  }
  const uint64_t live = model.size() * kSize;
  const uint64_t before = WalBytes();
  ASSERT_GT(before, 4 * live) << "the workload should have filled the WAL with dead data";

  const auto files_before = WalFiles();
  auto rep = Checkpoint();
  EXPECT_EQ(live, rep["live_bytes"]);
  EXPECT_GT(rep["segments_removed"], 0u);
  // The report matches the directory: exactly segments_removed files of the
  // ones there before are gone, holding bytes_removed bytes; the files that
  // are new are the ones relocation appended to.
  {
    const auto files_after = WalFiles();
    uint64_t gone = 0, gone_bytes = 0;
    for (const auto& [name, size] : files_before) {
      if (!files_after.count(name)) ++gone, gone_bytes += size;
    }
    EXPECT_EQ(gone, rep["segments_removed"]);
    EXPECT_EQ(gone_bytes, rep["bytes_removed"]);
    EXPECT_EQ(files_before.size(), rep["segments_before"]);
    EXPECT_EQ(files_after.size(), rep["segments_after"]);
  }
  EXPECT_EQ(0u, rep["barrier_timed_out"]);
  const uint64_t after = WalBytes();
  EXPECT_EQ(after, rep["bytes_after"]);
  EXPECT_LE(after, live * 3 / 2 + 2 * kSeg)
      << "WAL " << after << " bytes for " << live << " live bytes (was " << before << ")";

  for (const auto& [ino, data] : model) EXPECT_EQ(data, ReadAll(c_, ino)) << "inode " << ino;
  Crash();
  for (const auto& [ino, data] : model) EXPECT_EQ(data, ReadAll(c_, ino)) << "after a crash";
  // A second checkpoint finds nothing more worth moving.
  rep = Checkpoint();
  EXPECT_LE(rep["relocated_bytes"], 2 * kSeg);
  fs_.reset();
  FsckReport f = Fsck(dir_, {});
  for (const auto& e : f.errors) ADD_FAILURE() << "fsck: " << e;
  EXPECT_EQ(kFsckClean, f.exit_code);
  Open();
  for (const auto& [ino, data] : model) EXPECT_EQ(data, ReadAll(c_, ino)) << "after a remount";
}

// A serializable transaction that read a file before a checkpoint moved the
// file's data commits: the move is not a change of what it read.
TEST_F(CheckpointTest, RelocationDoesNotAbortATransactionThatReadTheFile) {
  std::mt19937_64 rng(7);
  const uint64_t a = Create(c_, "a");
  const std::string content = Bytes(300 << 10, rng);
  WriteAt(c_, a, 0, content);
  // Dead data after it, so that a's segment is worth emptying.
  const uint64_t junk = Create(c_, "junk");
  for (int i = 0; i < 6; ++i) WriteAt(c_, junk, 0, Bytes(600 << 10, rng));
  fs_->Forget(junk, 1);  // Create's reference: no orphan
  ASSERT_TRUE(fs_->Unlink(c_, kRootIno, "junk").ok());

  auto id = fs_->BeginTx(c_, TxOptions{});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  const Caller t = InTx(*id);
  EXPECT_EQ(content, ReadAll(t, a));
  const uint64_t b = Create(t, "b");
  WriteAt(t, b, 0, "written inside");

  // The transaction's snapshot is older than the relocation: the checkpoint
  // moves a's data but must leave the old segment for later.
  auto rep = Checkpoint();
  EXPECT_GE(rep["relocated_bytes"], content.size());
  EXPECT_EQ(1u, rep["barrier_timed_out"]);

  auto commit = fs_->CommitTx(c_, *id, /*durable=*/false);
  ASSERT_TRUE(commit.ok()) << commit.status().ToString();
  EXPECT_EQ(TxOutcome::Kind::kCommitted, commit->kind) << commit->detail;
  EXPECT_EQ(content, ReadAll(c_, a));
  EXPECT_EQ("written inside", ReadAll(c_, b));

  // Now nothing old is left open: the old segments go.
  rep = Checkpoint();
  EXPECT_EQ(0u, rep["barrier_timed_out"]);
  EXPECT_GT(rep["segments_removed"], 0u);
  Crash();
  EXPECT_EQ(content, ReadAll(c_, a));
}

// A transaction open across a checkpoint keeps the data it wrote before:
// its slices point into a segment that the committed state does not
// reference yet, which the checkpoint must not delete.
TEST_F(CheckpointTest, OpenTransactionKeepsTheSegmentsOfItsData) {
  std::mt19937_64 rng(9);
  auto id = fs_->BeginTx(c_, TxOptions{});
  ASSERT_TRUE(id.ok());
  const Caller t = InTx(*id);
  const uint64_t x = Create(t, "x");
  const std::string content = Bytes(700 << 10, rng);
  WriteAt(t, x, 0, content);
  // Roll several segments past it with data that dies at once.
  const uint64_t junk = Create(c_, "junk");
  for (int i = 0; i < 5; ++i) WriteAt(c_, junk, 0, Bytes(900 << 10, rng));
  fs_->Forget(junk, 1);  // Create's reference: no orphan
  ASSERT_TRUE(fs_->Unlink(c_, kRootIno, "junk").ok());

  Checkpoint();
  auto commit = fs_->CommitTx(c_, *id, /*durable=*/true);
  ASSERT_TRUE(commit.ok()) << commit.status().ToString();
  EXPECT_EQ(TxOutcome::Kind::kCommitted, commit->kind) << commit->detail;
  EXPECT_EQ(content, ReadAll(c_, x));
  Checkpoint();
  EXPECT_EQ(content, ReadAll(c_, x));
  Crash();
  EXPECT_EQ(content, ReadAll(c_, x));
}

// Aborted transactions leave dead data in the WAL; a checkpoint gives it back.
TEST_F(CheckpointTest, AbortedTransactionsSpaceComesBack) {
  std::mt19937_64 rng(11);
  auto id = fs_->BeginTx(c_, TxOptions{.serializable = false});
  ASSERT_TRUE(id.ok());
  const Caller t = InTx(*id);
  const uint64_t x = Create(t, "x");
  for (int i = 0; i < 4; ++i) WriteAt(t, x, static_cast<uint64_t>(i) << 20, Bytes(1 << 20, rng));
  ASSERT_TRUE(fs_->AbortTx(c_, *id).ok());
  // Roll past it.
  const uint64_t y = Create(c_, "y");
  const std::string keep = Bytes(1200 << 10, rng);
  WriteAt(c_, y, 0, keep);
  const uint64_t before = WalBytes();
  auto rep = Checkpoint();
  EXPECT_GE(rep["bytes_removed"], 4u << 20) << "the aborted transaction's 4 MiB stayed";
  EXPECT_LT(WalBytes(), before);
  EXPECT_EQ(keep, ReadAll(c_, y));
  Crash();
  EXPECT_EQ(keep, ReadAll(c_, y));
}

}  // namespace
}  // namespace dbfs
