// Writer: appends records to the segmented WAL and makes them durable with
// group commit. docs/wal_format.md describes the format and the rules.
//
// Thread-safe: Append/AppendV, SyncTo/SyncAll, ReadPayload and
// RemoveSegmentsBefore may be called concurrently from any thread.
//
// Errors are sticky (never retry an fsync and report success): after a failed
// write, fdatasync or segment roll the writer never writes again; the failing
// call (and the SyncTo callers that were waiting when it failed) get the
// original error, every later Append/SyncTo gets kReadOnly "WAL failed
// earlier: ...". ReadPayload keeps working.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"
#include "wal/file_system.h"
#include "wal/record_format.h"

namespace dbfs::wal {

struct WriterOptions {
  // Roll to a new segment once a record would take a segment past this.
  // Must be in [kSegmentDataStart, kMaxSegmentSize].
  uint64_t segment_size = 64ull << 20;
  // 16 bytes volume uuid written into segment headers (empty: all zeros, and
  // the header of an existing segment is not checked against it).
  std::string uuid;
  // Log bytes from here to `end` (in the segment Open resumes in) that
  // recovery read back but nothing proves durable: after a failed fdatasync
  // Linux keeps the lost pages readable and marks them clean, so a restarted
  // daemon reads them and a plain fdatasync writes nothing. Open writes them
  // again before its sync ("fsyncgate"). Default: none. The store passes its
  // applied LSN (everything before it was synced before LMDB referred to it).
  Lsn unconfirmed_from = ~Lsn{0};
};

struct AppendResult {
  Lsn lsn;      // first byte of the record (header)
  Lsn end_lsn;  // first byte after the record
  // Where the payload bytes live, for later reads with ReadPayload.
  uint32_t segment;
  uint64_t payload_offset;  // byte offset of the payload inside the segment file
};

struct WriterStats {
  uint64_t appends = 0;           // records appended (DATA and COMMIT)
  uint64_t bytes = 0;             // bytes appended, headers included
  uint64_t sync_requests = 0;     // SyncTo calls
  uint64_t syncs = 0;             // fdatasync calls on segments (group commit + roll)
  uint64_t segments_created = 0;  // segment files created (at Open and by rolls)
};

class Writer {
 public:
  // Opens the log in `dir` (created if missing) for appending at `end`: the
  // end LSN of the last valid record as found by Reader (ScanEnd::end).
  // LsnOffset(end) == 0 means "no valid segment header there": every segment
  // numbered >= max(1, LsnSegment(end)) is removed and that segment is created
  // fresh; so MakeLsn(0, 0) on an empty log creates segment 1. Otherwise the
  // segment LsnSegment(end) is truncated at `end` (drops a torn tail) and every
  // segment numbered higher is removed (they can only hold torn garbage).
  // The newest remaining segment is then fdatasync'ed (older ones were synced
  // when they were completed), so records appended later may claim
  // (synced_lsn) that everything before `end` is durable.
  static Result<std::unique_ptr<Writer>> Open(FileSystem* fs, const std::string& dir,
                                              const WriterOptions& opts, Lsn end);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Appends one record (handed to the OS, NOT durable). type is kData or
  // kCommit; payload at most kMaxPayloadSize. Appends are serialized and
  // written sequentially at the tail, so log order == call order. Rolls to a
  // new segment first when the record would take the current one past
  // segment_size (a record never spans segments; a record bigger than
  // segment_size gets a segment of its own).
  Result<AppendResult> Append(RecordType type, std::string_view payload);
  // Same, the payload given as pieces (concatenated).
  Result<AppendResult> AppendV(RecordType type, const std::vector<std::string_view>& pieces);

  // Group commit: returns once every byte before `upto` is durable (an `upto`
  // past written_lsn() is clamped to it). Concurrent callers share one
  // fdatasync: a leader syncs up to the current written end for everyone
  // waiting, the others wait for it.
  Status SyncTo(Lsn upto);
  Status SyncAll();  // SyncTo(written_lsn())

  Lsn written_lsn() const;  // end of the last appended record (or of the segment header)
  Lsn synced_lsn() const;   // every byte before it is durable
  WriterStats stats() const;

  // Reads n bytes at `offset` inside the payload at (segment, payload_offset)
  // (as returned by Append or Reader). Works for every segment still on disk;
  // read handles are cached. A read past the end of the segment is Corruption.
  Status ReadPayload(uint32_t segment, uint64_t payload_offset, uint64_t offset, size_t n,
                     char* out);

  // Checkpoint: removes the segment files numbered below `segment`, oldest
  // first. REQUIRES: segment <= the segment being written (else Invalid).
  Status RemoveSegmentsBefore(uint32_t segment);
  // Checkpoint: removes one segment file below the one being written (else
  // Invalid), leaving a hole in the numbering (Reader allows holes only
  // below its start LSN). The caller guarantees nothing refers to it.
  Status RemoveSegment(uint32_t segment);
  uint32_t current_segment() const;

 private:
  Writer(FileSystem* fs, std::string dir, WriterOptions opts);

  Status Recover(Lsn end);
  Status RemoveSegmentsFrom(const std::vector<uint32_t>& segs, uint32_t first);
  // Creates segment `seg` holding only its header record. Not synced; the
  // directory entry is.
  Result<std::shared_ptr<File>> CreateSegment(uint32_t seg, Lsn synced_lsn);
  Status VerifySegmentHeader(File* f, uint32_t seg);
  Result<AppendResult> AppendPieces(RecordType type, const std::string_view* pieces, size_t count);
  // REQUIRES: append_mu_ held.
  Status RollLocked();
  // Records `s` as the sticky error (if none yet) and wakes SyncTo waiters.
  Status Poison(Status s);
  Status FailedEarlierLocked() const;  // REQUIRES: mu_ held, error_ set
  Result<std::shared_ptr<File>> ReadHandle(uint32_t segment);
  void CacheReadHandle(uint32_t segment, std::shared_ptr<File> f);

  FileSystem* const fs_;
  const std::string dir_;
  const WriterOptions opts_;
  std::string uuid_;  // exactly kUuidSize bytes

  // Lock order: append_mu_ -> mu_ -> cache_mu_. remove_mu_ is taken before
  // mu_ and cache_mu_ and never together with append_mu_.

  // Serializes appends and segment rolls; held during the pwrite.
  std::mutex append_mu_;
  uint32_t seg_ = 0;                   // segment being appended to, guarded by append_mu_
  uint64_t tail_ = 0;                  // its size, guarded by append_mu_
  std::shared_ptr<File> tail_file_;    // guarded by append_mu_
  std::vector<std::string_view> iov_;  // reused per append, guarded by append_mu_
  char header_[kHeaderSize];           // reused per append, guarded by append_mu_

  // Sync state and sticky error.
  mutable std::mutex mu_;
  std::condition_variable sync_cv_;  // signalled when a sync round ends or error_ is set
  Lsn written_ = 0;                  // guarded by mu_
  Lsn synced_ = 0;                   // guarded by mu_
  uint32_t current_seg_ = 0;         // == seg_, readable under mu_
  std::shared_ptr<File> current_;    // == tail_file_, readable under mu_
  bool sync_running_ = false;        // a leader is in fdatasync, guarded by mu_
  Status error_;                     // sticky, guarded by mu_
  WriterStats stats_;                // guarded by mu_

  // Read handles by segment number.
  std::mutex cache_mu_;
  std::map<uint32_t, std::shared_ptr<File>> read_cache_;  // guarded by cache_mu_

  std::mutex remove_mu_;  // serializes RemoveSegmentsBefore
};

}  // namespace dbfs::wal
