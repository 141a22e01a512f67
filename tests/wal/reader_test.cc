// Record framing, recovery scans, torn tails versus corruption.
#include "wal/reader.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/wal/wal_test_util.h"
#include "wal/writer.h"

namespace dbfs::wal::testing {
namespace {

struct Appended {
  AppendResult r;
  RecordType type;
  std::string payload;
};

class ReaderTest : public WalTest {
 protected:
  // Appends one record and remembers it.
  void Add(Writer* w, RecordType type, std::string payload) {
    auto r = w->Append(type, payload);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    log_.push_back({*r, type, std::move(payload)});
  }

  void AddRandom(Writer* w, std::mt19937_64* rng, int n, size_t max_size) {
    for (int i = 0; i < n; ++i) {
      const RecordType type = ((*rng)() & 1) ? RecordType::kData : RecordType::kCommit;
      Add(w, type, RandomBytes(rng, (*rng)() % (max_size + 1)));
    }
  }

  // The scan returned exactly log_[0, n), with DATA payloads when read_data.
  void ExpectRecords(const Scan& s, size_t n, bool read_data = true) {
    ASSERT_EQ(s.records.size(), n);
    for (size_t i = 0; i < n; ++i) {
      const Record& got = s.records[i];
      const Appended& want = log_[i];
      ASSERT_EQ(got.type, want.type) << i;
      ASSERT_EQ(got.lsn, want.r.lsn) << i;
      ASSERT_EQ(got.end_lsn, want.r.end_lsn) << i;
      ASSERT_EQ(got.segment, want.r.segment) << i;
      ASSERT_EQ(got.payload_offset, want.r.payload_offset) << i;
      if (read_data || want.type != RecordType::kData) {
        ASSERT_EQ(got.payload, want.payload) << i;
      } else {
        ASSERT_TRUE(got.payload.empty()) << i;
      }
    }
  }

  std::vector<Appended> log_;
};

TEST_P(ReaderTest, EmptyDirectoryIsAnEmptyLog) {
  ASSERT_OK(fs()->CreateDir(dir()));
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  EXPECT_TRUE(s.records.empty());
  EXPECT_EQ(s.end.end, 0u);
  EXPECT_FALSE(s.end.torn_tail);
}

TEST_P(ReaderTest, NewLogHasOneSegmentAndNoRecords) {
  auto w = OpenWriter(fs(), Options(), MakeLsn(0, 0));
  ASSERT_TRUE(w);
  EXPECT_TRUE(fs()->Exists(SegPath(1)));
  EXPECT_EQ(w->written_lsn(), MakeLsn(1, kSegmentDataStart));
  EXPECT_EQ(w->synced_lsn(), MakeLsn(1, kSegmentDataStart));
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  EXPECT_TRUE(s.records.empty());
  EXPECT_EQ(s.end.end, MakeLsn(1, kSegmentDataStart));
  EXPECT_FALSE(s.end.torn_tail);
}

// Many records of random sizes, 0 bytes to 2 MiB, across several segment
// rolls, read back with and without DATA payloads.
TEST_P(ReaderTest, RoundTripAcrossSegmentRolls) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto w = OpenWriter(fs(), Options(3 << 20), 0);
  ASSERT_TRUE(w);
  Add(w.get(), RecordType::kData, "");
  Add(w.get(), RecordType::kCommit, "");
  Add(w.get(), RecordType::kData, RandomBytes(&rng, 2 << 20));
  for (int i = 0; i < 40; ++i) {
    const size_t size = (rng() % 4 == 0) ? rng() % ((2 << 20) + 1) : rng() % 5000;
    Add(w.get(), (rng() & 1) ? RecordType::kData : RecordType::kCommit, RandomBytes(&rng, size));
  }
  // Three 2 MiB records in a row cannot share 3 MiB segments: whatever the
  // random sizes above were, the log rolls at least four times.
  Add(w.get(), RecordType::kData, RandomBytes(&rng, 2 << 20));
  Add(w.get(), RecordType::kData, RandomBytes(&rng, 2 << 20));
  Add(w.get(), RecordType::kCommit, RandomBytes(&rng, 2 << 20));
  EXPECT_GE(w->stats().segments_created, 4u);
  EXPECT_EQ(w->stats().appends, log_.size());
  // Log order == call order; a record never spans segments.
  for (size_t i = 1; i < log_.size(); ++i) {
    ASSERT_LT(log_[i - 1].r.lsn, log_[i].r.lsn);
    ASSERT_LE(log_[i - 1].r.end_lsn, log_[i].r.lsn);
  }
  for (const Appended& a : log_) {
    ASSERT_EQ(LsnSegment(a.r.lsn), LsnSegment(a.r.end_lsn));
    ASSERT_EQ(a.r.segment, LsnSegment(a.r.lsn));
    ASSERT_EQ(a.r.payload_offset, LsnOffset(a.r.lsn) + kHeaderSize);
    ASSERT_EQ(LsnOffset(a.r.end_lsn), a.r.payload_offset + a.payload.size());
  }
  EXPECT_EQ(w->written_lsn(), log_.back().r.end_lsn);

  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ExpectRecords(s, log_.size());
  EXPECT_EQ(s.end.end, log_.back().r.end_lsn);
  EXPECT_FALSE(s.end.torn_tail);
  EXPECT_EQ(s.end.discarded_bytes, 0u);

  Scan lean = ScanLog(fs(), dir(), 0, kUuid, /*read_data=*/false);
  ASSERT_OK(lean.status);
  ExpectRecords(lean, log_.size(), /*read_data=*/false);

  // No uuid given: not checked.
  Scan any = ScanLog(fs(), dir(), 0, "");
  ASSERT_OK(any.status);
  EXPECT_EQ(any.records.size(), log_.size());
}

TEST_P(ReaderTest, RecordBiggerThanASegmentGetsOneOfItsOwn) {
  auto w = OpenWriter(fs(), Options(64 << 10), 0);
  ASSERT_TRUE(w);
  std::mt19937_64 rng(1);
  Add(w.get(), RecordType::kData, RandomBytes(&rng, 1000));
  Add(w.get(), RecordType::kData, RandomBytes(&rng, 200 << 10));
  Add(w.get(), RecordType::kCommit, RandomBytes(&rng, 1000));
  EXPECT_EQ(log_[0].r.segment, 1u);
  EXPECT_EQ(log_[1].r.segment, 2u);
  EXPECT_EQ(log_[1].r.lsn, MakeLsn(2, kSegmentDataStart));
  EXPECT_EQ(log_[2].r.segment, 3u);
  EXPECT_EQ(w->stats().segments_created, 3u);
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ExpectRecords(s, 3);
}

TEST_P(ReaderTest, AppendVConcatenatesPieces) {
  auto w = OpenWriter(fs(), Options(), 0);
  ASSERT_TRUE(w);
  auto r = w->AppendV(RecordType::kCommit, {"ab", "", "cde", std::string(5000, 'x')});
  ASSERT_TRUE(r.ok());
  log_.push_back({*r, RecordType::kCommit, "abcde" + std::string(5000, 'x')});
  auto empty = w->AppendV(RecordType::kData, {});
  ASSERT_TRUE(empty.ok());
  log_.push_back({*empty, RecordType::kData, ""});
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ExpectRecords(s, 2);
}

TEST_P(ReaderTest, ReopenAtScanEndAndAppendMore) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 4; ++round) {
    Scan before = ScanLog(fs(), dir());
    Lsn end = 0;
    if (round > 0) {
      ASSERT_OK(before.status);
      ExpectRecords(before, log_.size());
      end = before.end.end;
    }
    auto w = OpenWriter(fs(), Options(16 << 10), end);
    ASSERT_TRUE(w);
    if (round > 0) {
      EXPECT_EQ(w->written_lsn(), end);
    }
    AddRandom(w.get(), &rng, 20, 3000);
    if (round % 2 == 0) ASSERT_OK(w->SyncAll());
  }
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ExpectRecords(s, log_.size());
  EXPECT_FALSE(s.end.torn_tail);
}

TEST_P(ReaderTest, ReaderFromAMiddleLsn) {
  std::mt19937_64 rng(3);
  auto w = OpenWriter(fs(), Options(8 << 10), 0);
  ASSERT_TRUE(w);
  AddRandom(w.get(), &rng, 60, 1000);
  ASSERT_GE(w->stats().segments_created, 3u);
  for (size_t k : {size_t{0}, size_t{1}, size_t{17}, size_t{59}}) {
    Scan s = ScanLog(fs(), dir(), log_[k].r.lsn);
    ASSERT_OK(s.status);
    ASSERT_EQ(s.records.size(), log_.size() - k);
    EXPECT_EQ(s.records.front().lsn, log_[k].r.lsn);
    EXPECT_EQ(s.records.back().payload, log_.back().payload);
  }
  Scan at_end = ScanLog(fs(), dir(), log_.back().r.end_lsn);
  ASSERT_OK(at_end.status);
  EXPECT_TRUE(at_end.records.empty());
  EXPECT_EQ(at_end.end.end, log_.back().r.end_lsn);
  // Past the end of the log: the start segment is missing.
  Scan missing =
      ScanLog(fs(), dir(), MakeLsn(LsnSegment(log_.back().r.lsn) + 1, kSegmentDataStart));
  EXPECT_EQ(missing.status.code(), Code::kCorruption);
}

// Truncating the last record at every byte boundary of its last 100 bytes:
// the earlier records come back and the scan stops cleanly with a torn tail,
// and a Writer opened at that end continues the log.
TEST_P(ReaderTest, TornTailAtEveryByteOfTheLastRecord) {
  std::mt19937_64 rng(11);
  {
    auto w = OpenWriter(fs(), Options(), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 10, 500);
    Add(w.get(), RecordType::kCommit, RandomBytes(&rng, 60));  // 92 bytes with its header
    ASSERT_OK(w->SyncAll());
  }
  const std::string path = SegPath(1);
  auto whole = ReadFileToString(fs(), path);
  ASSERT_TRUE(whole.ok());
  const uint64_t size = whole->size();
  ASSERT_EQ(size, LsnOffset(log_.back().r.end_lsn));
  for (uint64_t cut = size - 1; cut >= size - 100; --cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    TruncateFile(fs(), path, cut);
    size_t complete = 0;
    while (complete < log_.size() && LsnOffset(log_[complete].r.end_lsn) <= cut) ++complete;
    const uint64_t end_off =
        complete == 0 ? kSegmentDataStart : LsnOffset(log_[complete - 1].r.end_lsn);
    Scan s = ScanLog(fs(), dir());
    ASSERT_OK(s.status);
    ExpectRecords(s, complete);
    EXPECT_EQ(s.end.end, MakeLsn(1, end_off));
    EXPECT_EQ(s.end.torn_tail, cut != end_off);
    EXPECT_EQ(s.end.discarded_bytes, cut - end_off);
  }
  // Resume at the end found and append: the log is clean again.
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  const size_t kept = s.records.size();
  log_.resize(kept);
  auto w = OpenWriter(fs(), Options(), s.end.end);
  ASSERT_TRUE(w);
  AddRandom(w.get(), &rng, 5, 500);
  Scan after = ScanLog(fs(), dir());
  ASSERT_OK(after.status);
  ExpectRecords(after, log_.size());
  EXPECT_FALSE(after.end.torn_tail);
}

TEST_P(ReaderTest, GarbageOrZerosAfterTheTailAreATornTail) {
  std::mt19937_64 rng(5);
  {
    auto w = OpenWriter(fs(), Options(), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 10, 2000);
    ASSERT_OK(w->SyncAll());  // everything synced, garbage comes after
  }
  const std::string path = SegPath(1);
  const uint64_t size = FileSize(fs(), path);
  const std::vector<std::string> tails = {std::string(4096, '\0'), RandomBytes(&rng, 1000),
                                          std::string(1, '\x01'), RandomBytes(&rng, 100000)};
  for (const std::string& tail : tails) {
    TruncateFile(fs(), path, size);
    WriteAt(fs(), path, size, tail);
    Scan s = ScanLog(fs(), dir());
    ASSERT_OK(s.status);
    ExpectRecords(s, log_.size());
    EXPECT_TRUE(s.end.torn_tail);
    EXPECT_EQ(s.end.end, log_.back().r.end_lsn);
    EXPECT_EQ(s.end.discarded_bytes, tail.size());
  }
  // A Writer resuming there drops the garbage.
  auto w = OpenWriter(fs(), Options(), log_.back().r.end_lsn);
  ASSERT_TRUE(w);
  EXPECT_EQ(FileSize(fs(), path), size);
}

// A damaged record followed by records appended after a SyncTo had made it
// durable: that is corruption, not a torn tail.
TEST_P(ReaderTest, MidLogCorruptionAfterSyncIsCorruption) {
  std::mt19937_64 rng(9);
  {
    auto w = OpenWriter(fs(), Options(), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 10, 300);
    ASSERT_OK(w->SyncTo(log_.back().r.end_lsn));
    AddRandom(w.get(), &rng, 10, 300);
  }
  const std::string path = SegPath(1);
  const auto original = ReadFileToString(fs(), path);
  ASSERT_TRUE(original.ok());
  const Appended& victim = log_[3];
  const uint64_t rec_off = LsnOffset(victim.r.lsn);
  const std::vector<uint64_t> offsets = {
      rec_off + kCrcOffset,           rec_off + kLengthOffset,
      rec_off + kTypeOffset,          rec_off + kLsnOffset,
      rec_off + kSyncedLsnOffset + 7, victim.r.payload_offset + victim.payload.size() / 2};
  for (uint64_t off : offsets) {
    SCOPED_TRACE("flipped byte at " + std::to_string(off));
    ASSERT_OK(WriteStringToFile(fs(), path, *original));
    FlipByte(fs(), path, off);
    Scan s = ScanLog(fs(), dir());
    EXPECT_EQ(s.status.code(), Code::kCorruption) << s.status.ToString();
    EXPECT_NE(s.status.message().find("00000001.wal"), std::string::npos) << s.status.ToString();
    EXPECT_NE(s.status.message().find("offset " + std::to_string(rec_off)), std::string::npos)
        << s.status.ToString();
    EXPECT_NE(s.status.message().find("fsck.dbfs"), std::string::npos);
    ExpectRecords(s, 3);  // the records before it were returned
  }
}

// The same damage in a record that no later record claims was durable is a
// torn tail: after a power cut, unsynced bytes may be anything.
TEST_P(ReaderTest, DamageNotCoveredBySyncIsATornTail) {
  std::mt19937_64 rng(9);
  {
    auto w = OpenWriter(fs(), Options(), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 20, 300);  // never synced
  }
  FlipByte(fs(), SegPath(1), log_[3].r.payload_offset);
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ExpectRecords(s, 3);
  EXPECT_TRUE(s.end.torn_tail);
  EXPECT_EQ(s.end.end, log_[3].r.lsn);
  EXPECT_EQ(s.end.discarded_bytes, LsnOffset(log_.back().r.end_lsn) - LsnOffset(log_[3].r.lsn));
}

// Damage in an early segment, proved durable by a record in a later segment.
TEST_P(ReaderTest, CorruptionProvedByALaterSegment) {
  std::mt19937_64 rng(13);
  {
    auto w = OpenWriter(fs(), Options(4 << 10), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 60, 500);
    ASSERT_GE(w->stats().segments_created, 3u);
  }
  // Segment 1 was synced when it was rolled; its successor's header says so.
  FlipByte(fs(), SegPath(1), log_[1].r.payload_offset);
  Scan s = ScanLog(fs(), dir());
  EXPECT_EQ(s.status.code(), Code::kCorruption) << s.status.ToString();
  EXPECT_NE(s.status.message().find("00000001.wal"), std::string::npos) << s.status.ToString();
}

// A completed segment that lost its tail at a record boundary: the next
// segment's header says it had been durable.
TEST_P(ReaderTest, LostTailOfACompletedSegmentIsCorruption) {
  std::mt19937_64 rng(17);
  {
    auto w = OpenWriter(fs(), Options(4 << 10), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 30, 500);
  }
  size_t last_in_1 = 0;
  while (log_[last_in_1 + 1].r.segment == 1) ++last_in_1;
  ASSERT_GT(last_in_1, 0u);
  TruncateFile(fs(), SegPath(1), LsnOffset(log_[last_in_1].r.lsn));
  Scan s = ScanLog(fs(), dir());
  EXPECT_EQ(s.status.code(), Code::kCorruption) << s.status.ToString();
}

// A hole after the recovery start is lost log; a full scan (from 0, as fsck
// reads) passes over holes, which checkpoints leave below the applied LSN.
TEST_P(ReaderTest, MissingSegmentAfterTheStartIsCorruptionButHolesBelowItAreNot) {
  std::mt19937_64 rng(19);
  {
    auto w = OpenWriter(fs(), Options(4 << 10), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 100, 500);
    ASSERT_GE(w->stats().segments_created, 5u);
  }
  const Scan whole = ScanLog(fs(), dir());
  ASSERT_OK(whole.status);
  ASSERT_OK(fs()->Remove(SegPath(2)));
  Scan from1 = ScanLog(fs(), dir(), MakeLsn(1, kSegmentDataStart));
  EXPECT_EQ(from1.status.code(), Code::kCorruption);
  EXPECT_NE(from1.status.message().find("00000002.wal"), std::string::npos) << from1.status.ToString();
  // From segment 3 on, nothing is missing.
  Scan from3 = ScanLog(fs(), dir(), MakeLsn(3, kSegmentDataStart));
  EXPECT_OK(from3.status);
  EXPECT_EQ(whole.end.end, from3.end.end);
  // A full scan reads segment 1, then 3 onwards, to the same end.
  Scan all = ScanLog(fs(), dir());
  EXPECT_OK(all.status);
  EXPECT_EQ(whole.end.end, all.end.end);
  EXPECT_LT(all.records.size(), whole.records.size());
  // A hole after a later start is still found.
  ASSERT_OK(fs()->Remove(SegPath(4)));
  from3 = ScanLog(fs(), dir(), MakeLsn(3, kSegmentDataStart));
  EXPECT_EQ(from3.status.code(), Code::kCorruption);
}

TEST_P(ReaderTest, UuidMismatchIsCorruption) {
  {
    auto w = OpenWriter(fs(), Options(), 0);
    ASSERT_TRUE(w);
    Add(w.get(), RecordType::kCommit, "x");
  }
  Scan s = ScanLog(fs(), dir(), 0, "fedcba9876543210");
  EXPECT_EQ(s.status.code(), Code::kCorruption);
  EXPECT_NE(s.status.message().find("uuid"), std::string::npos);
  ASSERT_OK(ScanLog(fs(), dir(), 0, kUuid).status);
  // A Writer with another uuid refuses to continue this log.
  WriterOptions other = Options();
  other.uuid = "fedcba9876543210";
  auto w = Writer::Open(fs(), dir(), other, log_.back().r.end_lsn);
  EXPECT_EQ(w.status().code(), Code::kCorruption);
}

// A crash while creating a segment leaves an empty or torn newest segment:
// a torn tail, and the Writer removes it.
TEST_P(ReaderTest, TornNewestSegmentHeader) {
  std::mt19937_64 rng(23);
  {
    auto w = OpenWriter(fs(), Options(4 << 10), 0);
    ASSERT_TRUE(w);
    AddRandom(w.get(), &rng, 30, 500);
    ASSERT_GE(w->stats().segments_created, 2u);
  }
  auto segs = ListSegments(fs(), dir());
  ASSERT_TRUE(segs.ok());
  const uint32_t last = segs->back();
  while (!log_.empty() && log_.back().r.segment == last) log_.pop_back();
  const Lsn end = log_.back().r.end_lsn;
  for (uint64_t keep : {uint64_t{0}, uint64_t{10}, kSegmentDataStart - 1}) {
    TruncateFile(fs(), SegPath(last), keep);
    Scan s = ScanLog(fs(), dir());
    ASSERT_OK(s.status);
    ExpectRecords(s, log_.size());
    EXPECT_TRUE(s.end.torn_tail);
    EXPECT_EQ(s.end.end, end);
    EXPECT_EQ(s.end.discarded_bytes, keep);
  }
  auto w = OpenWriter(fs(), Options(4 << 10), end);
  ASSERT_TRUE(w);
  EXPECT_FALSE(fs()->Exists(SegPath(last)));
  Add(w.get(), RecordType::kCommit, RandomBytes(&rng, 5000));  // rolls into `last` again
  EXPECT_EQ(log_.back().r.segment, last);
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  ExpectRecords(s, log_.size());
}

// The only segment's header is torn (crash right after creating the log).
TEST_P(ReaderTest, TornFirstSegmentHeader) {
  {
    auto w = OpenWriter(fs(), Options(), 0);
    ASSERT_TRUE(w);
  }
  TruncateFile(fs(), SegPath(1), 7);
  Scan s = ScanLog(fs(), dir());
  ASSERT_OK(s.status);
  EXPECT_TRUE(s.end.torn_tail);
  EXPECT_EQ(LsnOffset(s.end.end), 0u);
  auto w = OpenWriter(fs(), Options(), s.end.end);
  ASSERT_TRUE(w);
  Add(w.get(), RecordType::kCommit, "again");
  Scan after = ScanLog(fs(), dir());
  ASSERT_OK(after.status);
  ExpectRecords(after, 1);
  EXPECT_EQ(log_[0].r.segment, 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReaderTest, ::testing::Values(Backend::kMem, Backend::kPosix),
                         BackendName);

TEST(SegmentFileNameTest, RoundTrip) {
  EXPECT_EQ(SegmentFileName(1), "00000001.wal");
  EXPECT_EQ(SegmentFileName(4294967295u), "4294967295.wal");
  uint32_t seg = 0;
  EXPECT_TRUE(ParseSegmentFileName("00000042.wal", &seg));
  EXPECT_EQ(seg, 42u);
  EXPECT_TRUE(ParseSegmentFileName("4294967295.wal", &seg));
  EXPECT_EQ(seg, 4294967295u);
  for (const char* bad : {"00000000.wal", "0000001.wal", "000000001.wal", "0000000a.wal",
                          "00000001.wal.tmp", "00000001.log", "superblock"}) {
    EXPECT_FALSE(ParseSegmentFileName(bad, &seg)) << bad;
  }
}

TEST(LsnTest, Parts) {
  const Lsn l = MakeLsn(7, 123456);
  EXPECT_EQ(LsnSegment(l), 7u);
  EXPECT_EQ(LsnOffset(l), 123456u);
  EXPECT_LT(MakeLsn(1, 0xffffffffull), MakeLsn(2, 0));
}

}  // namespace
}  // namespace dbfs::wal::testing
