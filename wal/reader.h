// Reader: sequential scan of the WAL for recovery and fsck. Decides, at a
// record that fails its checks, between a torn tail (normal after a crash:
// stop, report where the Writer should resume) and mid-log corruption (bytes
// that had been made durable are damaged: kCorruption). docs/wal_format.md
// states the rule.
//
// Not thread-safe; never writes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvstore/status.h"
#include "wal/file_system.h"
#include "wal/record_format.h"

namespace dbfs::wal {

struct Record {
  RecordType type = RecordType::kData;
  Lsn lsn = 0;      // first byte of the record (header)
  Lsn end_lsn = 0;  // first byte after it
  uint32_t segment = 0;
  uint64_t payload_offset = 0;  // byte offset of the payload inside the segment file
  std::string payload;          // empty for DATA records unless set_read_data(true)
};

struct ScanEnd {
  Lsn end = 0;                   // end LSN of the last valid record: where a Writer resumes
  bool torn_tail = false;        // a partial/invalid record at the tail was found and ignored
  uint64_t discarded_bytes = 0;  // bytes after `end` that are not valid records
};

// Segment numbers of the "%08u.wal" files in `dir`, ascending. Other names
// are ignored.
Result<std::vector<uint32_t>> ListSegments(FileSystem* fs, const std::string& dir);

class Reader {
 public:
  // Opens the log in `dir` to scan records with lsn >= `from` (from = 0, or
  // any LSN of segment 0: from the beginning of the oldest segment); `from`
  // must be a record boundary. `uuid`: if non-empty, segment headers must
  // carry it (else Corruption). A segment missing from the numbering (from the
  // start segment on) is Corruption.
  static Result<std::unique_ptr<Reader>> Open(FileSystem* fs, const std::string& dir, Lsn from,
                                              const std::string& uuid = "");
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Next record (segment header records are validated and skipped). Returns
  // true with *out filled; false at the end of the log (then end() is valid).
  // At a record that fails its checks (bad CRC, impossible length, wrong
  // lsn/segment field, truncated): if no later valid record (later in this
  // segment, or in a later segment) has synced_lsn > the bad record's lsn, it
  // is a torn tail: returns false, end() reports it. Otherwise the damaged
  // bytes had been durable: returns kCorruption naming the segment file and
  // offset. Errors are sticky.
  Result<bool> Next(Record* out);

  // Whether Next reads DATA payloads into Record::payload (default false: the
  // CRC is still verified, streaming the payload in chunks).
  void set_read_data(bool v) { read_data_ = v; }

  const ScanEnd& end() const { return end_; }  // valid once Next returned false

 private:
  class Segment;

  Reader(FileSystem* fs, std::string dir, std::string uuid, std::vector<uint32_t> segs, Lsn from);

  // Opens segs_[idx_] and checks its header. true: positioned at its first
  // record; false: the header was a torn tail (done_ set).
  Result<bool> EnterSegment();
  // The record at `off` of the current segment failed a check (`why`).
  Result<bool> HandleBad(uint64_t off, const std::string& why);
  // Looks from `start` in `seg` for a valid record with synced_lsn > bad.
  Result<bool> FindDurableProof(Segment* seg, uint64_t start, Lsn bad, Lsn* proof_lsn,
                                Lsn* proof_synced);
  Status Fail(Status s);

  FileSystem* const fs_;
  const std::string dir_;
  const std::string uuid_;
  const std::vector<uint32_t> segs_;  // contiguous, ascending, from the start segment on
  const Lsn from_;

  size_t idx_ = 0;                // index in segs_ of seg_
  std::unique_ptr<Segment> seg_;  // open segment, or null between segments
  uint64_t pos_ = 0;              // next record offset in seg_
  Lsn prev_segment_end_ = 0;      // MakeLsn(previous segment, its size), 0 for the first
  Lsn last_end_ = 0;              // end of the last valid record (or header)
  bool read_data_ = false;
  bool done_ = false;
  Status status_;  // sticky error
  ScanEnd end_;
  std::string header_payload_;  // scratch
};

}  // namespace dbfs::wal
