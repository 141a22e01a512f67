#include "wal/writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "kvstore/coding.h"
#include "kvstore/metrics.h"
#include "wal/crc32c.h"
#include "wal/reader.h"

namespace dbfs::wal {

namespace {
// fdatasync of a segment, timed for the wal_sync latency histogram.
Status SyncTimed(File& f) {
  static metrics::Histogram& h = metrics::Histogram::Named("wal_sync");
  metrics::ScopedTimer t(h);
  return f.Sync();
}
}  // namespace

namespace {

// Read handles kept open by ReadPayload; the oldest segment's is evicted first.
constexpr size_t kMaxReadHandles = 64;

std::string LsnString(Lsn l) {
  return std::to_string(LsnSegment(l)) + ":" + std::to_string(LsnOffset(l));
}

}  // namespace

Writer::Writer(FileSystem* fs, std::string dir, WriterOptions opts)
    : fs_(fs), dir_(std::move(dir)), opts_(std::move(opts)) {
  uuid_ = opts_.uuid.empty() ? std::string(kUuidSize, '\0') : opts_.uuid;
}

Writer::~Writer() = default;

Result<std::unique_ptr<Writer>> Writer::Open(FileSystem* fs, const std::string& dir,
                                             const WriterOptions& opts, Lsn end) {
  if (!opts.uuid.empty() && opts.uuid.size() != kUuidSize) {
    return Status::Invalid("WAL uuid must be " + std::to_string(kUuidSize) + " bytes, got " +
                           std::to_string(opts.uuid.size()));
  }
  if (opts.segment_size < kSegmentDataStart || opts.segment_size > kMaxSegmentSize) {
    return Status::Invalid("WAL segment_size " + std::to_string(opts.segment_size) +
                           " out of range");
  }
  std::unique_ptr<Writer> w(new Writer(fs, dir, opts));
  DBFS_RETURN_IF_ERROR(w->Recover(end));
  return w;
}

Status Writer::Recover(Lsn end) {
  const uint32_t end_seg = LsnSegment(end);
  const uint64_t end_off = LsnOffset(end);
  if ((end_off != 0 && end_off < kSegmentDataStart) || (end_seg == 0 && end_off != 0)) {
    return Status::Invalid("WAL end LSN " + LsnString(end) + " is not a record boundary");
  }
  DBFS_RETURN_IF_ERROR(fs_->CreateDir(dir_));
  // The wal directory's own entry must be durable, or a power cut could lose
  // every segment in it.
  DBFS_RETURN_IF_ERROR(fs_->SyncDir(ParentDir(dir_)));
  DBFS_ASSIGN_OR_RETURN(std::vector<uint32_t> segs, ListSegments(fs_, dir_));

  // With end_off == 0 there is no valid header at `end`: that segment is
  // recreated. Segments above the one we resume in hold only torn garbage.
  const uint32_t new_seg = end_off == 0 ? std::max<uint32_t>(end_seg, 1) : 0;
  const uint32_t keep_through = end_off == 0 ? new_seg - 1 : end_seg;
  DBFS_RETURN_IF_ERROR(RemoveSegmentsFrom(segs, keep_through + 1));
  segs.erase(std::remove_if(segs.begin(), segs.end(), [&](uint32_t s) { return s > keep_through; }),
             segs.end());

  // After a process crash, records that recovery just read may still sit only
  // in the page cache; they are made durable before new records claim
  // (synced_lsn) that they are. Only the newest remaining segment can be
  // dirty: every older one was synced completely before its successor was
  // created (RollLocked).
  Lsn prev_end = 0;
  if (end_off == 0 && !segs.empty()) {
    DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                          fs_->Open(SegmentPath(dir_, segs.back()), FileSystem::kNone));
    DBFS_RETURN_IF_ERROR(f->Sync());
    DBFS_ASSIGN_OR_RETURN(uint64_t size, f->Size());
    prev_end = MakeLsn(segs.back(), size);
  }

  std::shared_ptr<File> file;
  if (end_off == 0) {
    DBFS_ASSIGN_OR_RETURN(file, CreateSegment(new_seg, prev_end));
    // The header is durable before anything can claim to follow it.
    DBFS_RETURN_IF_ERROR(file->Sync());
    seg_ = new_seg;
    tail_ = kSegmentDataStart;
    stats_.segments_created = 1;
    stats_.syncs = 1;
  } else {
    if (!std::binary_search(segs.begin(), segs.end(), end_seg)) {
      return Status::Corruption("WAL segment " + SegmentPath(dir_, end_seg) +
                                " to resume writing in is missing; run fsck.dbfs");
    }
    DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                          fs_->Open(SegmentPath(dir_, end_seg), FileSystem::kNone));
    DBFS_RETURN_IF_ERROR(VerifySegmentHeader(f.get(), end_seg));
    DBFS_ASSIGN_OR_RETURN(uint64_t size, f->Size());
    if (size < end_off) {
      return Status::Corruption("WAL segment " + SegmentPath(dir_, end_seg) + " has " +
                                std::to_string(size) + " bytes, less than its end offset " +
                                std::to_string(end_off) + "; run fsck.dbfs");
    }
    // Drop the torn tail. Synced before new records can be synced after it, so
    // a power cut cannot bring the old tail back behind them.
    if (size > end_off) DBFS_RETURN_IF_ERROR(f->Truncate(end_off));
    // Bytes recovery read but nothing proves durable are written again, so the
    // sync below really covers them (see WriterOptions::unconfirmed_from).
    // Older segments were synced completely before their successor existed.
    if (opts_.unconfirmed_from < end) {
      uint64_t from = kSegmentDataStart;
      if (LsnSegment(opts_.unconfirmed_from) == end_seg) {
        from = std::max<uint64_t>(from, LsnOffset(opts_.unconfirmed_from));
      }
      std::string buf;
      for (uint64_t off = from; off < end_off;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(end_off - off, 1 << 20));
        buf.resize(n);
        size_t got = 0;
        DBFS_RETURN_IF_ERROR(f->PRead(off, buf.data(), n, &got));
        if (got != n) return Status::Corruption("WAL segment shrank while it was reopened");
        DBFS_RETURN_IF_ERROR(f->PWrite(off, buf.data(), n));
        off += n;
      }
    }
    DBFS_RETURN_IF_ERROR(f->Sync());
    file = std::move(f);
    seg_ = end_seg;
    tail_ = end_off;
  }
  tail_file_ = file;
  CacheReadHandle(seg_, file);
  {
    std::lock_guard<std::mutex> l(mu_);
    current_ = std::move(file);
    current_seg_ = seg_;
    written_ = synced_ = MakeLsn(seg_, tail_);
  }
  return Status::Ok();
}

Status Writer::RemoveSegmentsFrom(const std::vector<uint32_t>& segs, uint32_t first) {
  // Highest first, each removal made durable before the next: a power cut in
  // between never leaves a hole in the numbering (which Reader reports as
  // corruption).
  for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
    if (*it < first) break;
    spdlog::warn("WAL: removing segment {} past the end of the log", SegmentPath(dir_, *it));
    DBFS_RETURN_IF_ERROR(fs_->Remove(SegmentPath(dir_, *it)));
    DBFS_RETURN_IF_ERROR(fs_->SyncDir(dir_));
  }
  return Status::Ok();
}

Status Writer::VerifySegmentHeader(File* f, uint32_t seg) {
  char buf[kSegmentDataStart];
  size_t got = 0;
  DBFS_RETURN_IF_ERROR(f->PRead(0, buf, sizeof(buf), &got));
  const RecordHeader h = DecodeHeader(buf);
  const std::string where = SegmentPath(dir_, seg);
  if (got != sizeof(buf) || h.length != kSegmentHeaderPayloadSize ||
      h.type != static_cast<uint8_t>(RecordType::kSegmentHeader) || h.segment != seg ||
      h.lsn != MakeLsn(seg, 0) ||
      UnmaskCrc(h.masked_crc) != Crc32c(buf + kCrcCoverStart, sizeof(buf) - kCrcCoverStart)) {
    return Status::Corruption("WAL segment " + where + " has no valid header; run fsck.dbfs");
  }
  const std::string_view uuid(buf + kHeaderSize, kUuidSize);
  if (!opts_.uuid.empty() && uuid != opts_.uuid) {
    return Status::Corruption("WAL segment " + where +
                              " belongs to another volume (uuid mismatch)");
  }
  if (DecodeLE32(buf + kHeaderSize + kUuidSize) != kFormatVersion) {
    return Status::Corruption("WAL segment " + where + " has an unsupported format version");
  }
  return Status::Ok();
}

Result<std::shared_ptr<File>> Writer::CreateSegment(uint32_t seg, Lsn synced_lsn) {
  const std::string path = SegmentPath(dir_, seg);
  DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, fs_->Open(path, FileSystem::kCreate));
  // A leftover file with this number can only hold garbage of a failed roll.
  DBFS_RETURN_IF_ERROR(f->Truncate(0));
  // Header record, payload {uuid[16], u32 LE format version}.
  char rec[kSegmentDataStart];
  EncodeHeaderFields(rec, RecordType::kSegmentHeader, kSegmentHeaderPayloadSize, seg,
                     MakeLsn(seg, 0), synced_lsn);
  std::copy_n(uuid_.data(), kUuidSize, rec + kHeaderSize);
  EncodeLE32(rec + kHeaderSize + kUuidSize, kFormatVersion);
  EncodeLE32(rec + kCrcOffset, MaskCrc(Crc32c(rec + kCrcCoverStart, sizeof(rec) - kCrcCoverStart)));
  DBFS_RETURN_IF_ERROR(f->PWrite(0, rec, sizeof(rec)));
  // The entry must be durable before any record in the file can be reported
  // durable, or a power cut after a successful SyncTo could lose the file.
  DBFS_RETURN_IF_ERROR(fs_->SyncDir(dir_));
  return std::shared_ptr<File>(std::move(f));
}

Result<AppendResult> Writer::Append(RecordType type, std::string_view payload) {
  return AppendPieces(type, &payload, 1);
}

Result<AppendResult> Writer::AppendV(RecordType type, const std::vector<std::string_view>& pieces) {
  return AppendPieces(type, pieces.data(), pieces.size());
}

Result<AppendResult> Writer::AppendPieces(RecordType type, const std::string_view* pieces,
                                          size_t count) {
  if (type != RecordType::kData && type != RecordType::kCommit) {
    return Status::Invalid("WAL Append: only DATA and COMMIT records can be appended");
  }
  uint64_t len = 0;
  for (size_t i = 0; i < count; ++i) len += pieces[i].size();
  if (len > kMaxPayloadSize) {
    return Status::Invalid("WAL record payload of " + std::to_string(len) + " bytes exceeds " +
                           std::to_string(kMaxPayloadSize));
  }
  const uint64_t rec_size = kHeaderSize + len;
  // The payload's CRC is computed before taking the lock, so concurrent
  // appenders checksum in parallel; the header is folded in under the lock.
  uint32_t payload_crc = 0;
  for (size_t i = 0; i < count; ++i) {
    payload_crc = Crc32cExtend(payload_crc, pieces[i].data(), pieces[i].size());
  }

  std::lock_guard<std::mutex> append_lock(append_mu_);
  Lsn synced;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.ok()) return FailedEarlierLocked();
    synced = synced_;
  }
  if (tail_ > kSegmentDataStart && tail_ + rec_size > opts_.segment_size) {
    DBFS_RETURN_IF_ERROR(RollLocked());
    std::lock_guard<std::mutex> l(mu_);
    synced = synced_;
  }

  // Header bytes [4, 32), CRC over them and the payload, then the masked CRC.
  const Lsn lsn = MakeLsn(seg_, tail_);
  EncodeHeaderFields(header_, type, static_cast<uint32_t>(len), seg_, lsn, synced);
  const uint32_t header_crc = Crc32c(header_ + kCrcCoverStart, kHeaderSize - kCrcCoverStart);
  EncodeLE32(header_ + kCrcOffset, MaskCrc(Crc32cCombine(header_crc, payload_crc, len)));

  iov_.clear();
  iov_.emplace_back(header_, kHeaderSize);
  iov_.insert(iov_.end(), pieces, pieces + count);
  Status s = tail_file_->PWriteV(tail_, iov_.data(), iov_.size());
  if (!s.ok() && s.code() == Code::kNoSpace) {
    // A full disk refuses the write before anything about it is known to be
    // durable (no sync covered it): give back whatever part of the record
    // made it, and leave the tail where it was. The next append writes
    // there again; recovery would treat any leftover as a torn tail anyway.
    Status cut = tail_file_->Truncate(tail_);
    if (!cut.ok()) return Poison(std::move(cut));
    return s;
  }
  if (!s.ok()) return Poison(std::move(s));

  AppendResult r;
  r.lsn = lsn;
  r.end_lsn = MakeLsn(seg_, tail_ + rec_size);
  r.segment = seg_;
  r.payload_offset = tail_ + kHeaderSize;
  tail_ += rec_size;
  {
    std::lock_guard<std::mutex> l(mu_);
    written_ = r.end_lsn;
    ++stats_.appends;
    stats_.bytes += rec_size;
  }
  return r;
}

Status Writer::RollLocked() {
  // The completed segment is made durable before its successor exists: a
  // reader that finds segment N+1 may then trust that segment N is complete,
  // so a power cut can never leave a silent hole at the end of segment N.
  Status s = SyncTimed(*tail_file_);
  if (!s.ok()) {
    return Poison(Status::IOError(
        "WAL fdatasync of " + SegmentPath(dir_, seg_) + " failed: " + s.message(), s.ToErrno()));
  }
  Lsn synced;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.syncs;
    synced_ = std::max(synced_, MakeLsn(seg_, tail_));
    synced = synced_;
    sync_cv_.notify_all();
  }
  const uint32_t next = seg_ + 1;
  if (next == 0) return Poison(Status::NoSpace("WAL segment numbers exhausted"));
  Result<std::shared_ptr<File>> f = CreateSegment(next, synced);
  if (!f.ok() && f.status().code() == Code::kNoSpace) {
    // No room for the next segment: nothing refers to it yet. Remove what
    // was made of it (best effort: a leftover is truncated by the next try)
    // and keep appending to this one once space is back.
    fs_->Remove(SegmentPath(dir_, next)).IgnoreError();
    return f.TakeStatus();
  }
  if (!f.ok()) return Poison(f.TakeStatus());
  seg_ = next;
  tail_ = kSegmentDataStart;
  tail_file_ = *f;
  CacheReadHandle(seg_, tail_file_);
  std::lock_guard<std::mutex> l(mu_);
  current_ = tail_file_;
  current_seg_ = seg_;
  written_ = MakeLsn(seg_, tail_);
  ++stats_.segments_created;
  return Status::Ok();
}

Status Writer::Poison(Status s) {
  std::lock_guard<std::mutex> l(mu_);
  if (error_.ok()) {
    spdlog::error("WAL {}: {}; the log accepts no more writes", dir_, s.message());
    error_ = s;
  }
  sync_cv_.notify_all();
  return s;
}

Status Writer::FailedEarlierLocked() const {
  return Status::ReadOnly("WAL failed earlier: " + error_.message());
}

Status Writer::SyncTo(Lsn upto) {
  std::unique_lock<std::mutex> l(mu_);
  ++stats_.sync_requests;
  // Callers that were already waiting when the error happened get it as is;
  // everyone after that is told the log went read-only.
  if (!error_.ok()) return FailedEarlierLocked();
  upto = std::min(upto, written_);
  while (true) {
    if (!error_.ok()) return error_;
    if (synced_ >= upto) return Status::Ok();
    if (sync_running_) {
      sync_cv_.wait(l);
      continue;
    }
    // Become the leader: sync everything written so far for every waiter.
    // Completed segments were synced when they were rolled, so the current
    // one is all that can be dirty.
    sync_running_ = true;
    const Lsn target = written_;
    const std::shared_ptr<File> file = current_;
    const uint32_t seg = current_seg_;
    l.unlock();
    Status s = SyncTimed(*file);
    l.lock();
    sync_running_ = false;
    ++stats_.syncs;
    if (s.ok()) {
      synced_ = std::max(synced_, target);
    } else if (error_.ok()) {
      error_ = Status::IOError(
          "WAL fdatasync of " + SegmentPath(dir_, seg) + " failed: " + s.message(), s.ToErrno());
      spdlog::error("WAL {}: {}; the log accepts no more writes", dir_, error_.message());
    }
    sync_cv_.notify_all();
  }
}

Status Writer::SyncAll() { return SyncTo(written_lsn()); }

Lsn Writer::written_lsn() const {
  std::lock_guard<std::mutex> l(mu_);
  return written_;
}

Lsn Writer::synced_lsn() const {
  std::lock_guard<std::mutex> l(mu_);
  return synced_;
}

WriterStats Writer::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void Writer::CacheReadHandle(uint32_t segment, std::shared_ptr<File> f) {
  std::lock_guard<std::mutex> l(cache_mu_);
  if (read_cache_.size() >= kMaxReadHandles && !read_cache_.count(segment)) {
    read_cache_.erase(read_cache_.begin());
  }
  read_cache_[segment] = std::move(f);
}

Result<std::shared_ptr<File>> Writer::ReadHandle(uint32_t segment) {
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    auto it = read_cache_.find(segment);
    if (it != read_cache_.end()) return it->second;
  }
  DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                        fs_->Open(SegmentPath(dir_, segment), FileSystem::kReadOnly));
  std::shared_ptr<File> shared(std::move(f));
  CacheReadHandle(segment, shared);
  return shared;
}

Status Writer::ReadPayload(uint32_t segment, uint64_t payload_offset, uint64_t offset, size_t n,
                           char* out) {
  if (n == 0) return Status::Ok();
  DBFS_ASSIGN_OR_RETURN(std::shared_ptr<File> f, ReadHandle(segment));
  size_t got = 0;
  DBFS_RETURN_IF_ERROR(f->PRead(payload_offset + offset, out, n, &got));
  if (got != n) {
    return Status::Corruption("WAL segment " + SegmentPath(dir_, segment) + " ends before offset " +
                              std::to_string(payload_offset + offset + n) +
                              " of a payload read; run fsck.dbfs");
  }
  return Status::Ok();
}

uint32_t Writer::current_segment() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_seg_;
}

Status Writer::RemoveSegment(uint32_t segment) {
  std::lock_guard<std::mutex> remove_lock(remove_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (segment >= current_seg_) {
      return Status::Invalid("WAL RemoveSegment(" + std::to_string(segment) +
                             ") would remove the segment being written (" +
                             std::to_string(current_seg_) + ") or a later one");
    }
  }
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    read_cache_.erase(segment);
  }
  DBFS_RETURN_IF_ERROR(fs_->Remove(SegmentPath(dir_, segment)));
  return fs_->SyncDir(dir_);
}

Status Writer::RemoveSegmentsBefore(uint32_t segment) {
  std::lock_guard<std::mutex> remove_lock(remove_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (segment > current_seg_) {
      return Status::Invalid("WAL RemoveSegmentsBefore(" + std::to_string(segment) +
                             ") would remove the segment being written (" +
                             std::to_string(current_seg_) + ")");
    }
  }
  DBFS_ASSIGN_OR_RETURN(std::vector<uint32_t> segs, ListSegments(fs_, dir_));
  for (uint32_t s : segs) {  // ascending
    if (s >= segment) break;
    {
      std::lock_guard<std::mutex> l(cache_mu_);
      read_cache_.erase(s);
    }
    DBFS_RETURN_IF_ERROR(fs_->Remove(SegmentPath(dir_, s)));
    // Oldest first, each removal durable before the next: a power cut never
    // leaves a hole in the numbering, which Reader reports as corruption.
    DBFS_RETURN_IF_ERROR(fs_->SyncDir(dir_));
  }
  return Status::Ok();
}

}  // namespace dbfs::wal
