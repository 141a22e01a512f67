#include "wal/reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "kvstore/coding.h"
#include "wal/crc32c.h"

namespace dbfs::wal {
namespace {

constexpr size_t kWindowSize = 256 << 10;  // buffered reads of headers and small payloads
constexpr size_t kChunkSize = 1 << 20;     // streamed CRC and forward scans

std::string LsnString(Lsn l) {
  return std::to_string(LsnSegment(l)) + ":" + std::to_string(LsnOffset(l));
}

enum class PayloadMode { kKeepAll, kKeepNonData, kDiscard };

}  // namespace

Result<std::vector<uint32_t>> ListSegments(FileSystem* fs, const std::string& dir) {
  DBFS_ASSIGN_OR_RETURN(std::vector<std::string> names, fs->ListDir(dir));
  std::vector<uint32_t> segs;
  for (const std::string& name : names) {
    uint32_t seg;
    if (ParseSegmentFileName(name, &seg)) segs.push_back(seg);
  }
  std::sort(segs.begin(), segs.end());
  return segs;
}

// One open segment file with a read window, and the record checks.
class Reader::Segment {
 public:
  static Result<std::unique_ptr<Segment>> Open(FileSystem* fs, std::string path, uint32_t number) {
    DBFS_ASSIGN_OR_RETURN(std::unique_ptr<File> f, fs->Open(path, FileSystem::kReadOnly));
    DBFS_ASSIGN_OR_RETURN(uint64_t size, f->Size());
    return std::unique_ptr<Segment>(new Segment(std::move(f), std::move(path), number, size));
  }

  uint32_t number() const { return number_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Reads [off, off + n), which lies inside the file.
  Status Read(uint64_t off, size_t n, char* dst) {
    if (n >= kWindowSize / 2) return ReadDirect(off, n, dst);
    if (off < window_off_ || off + n > window_off_ + window_.size()) {
      window_.resize(static_cast<size_t>(std::min<uint64_t>(kWindowSize, size_ - off)));
      window_off_ = off;
      Status s = ReadDirect(off, window_.size(), window_.data());
      if (!s.ok()) {
        window_.clear();
        return s;
      }
    }
    std::memcpy(dst, window_.data() + (off - window_off_), n);
    return Status::Ok();
  }

  // Checks the record at `off`. Returns ok with `why` empty when it is valid,
  // with `why` naming the failed check when not; non-ok only for I/O errors.
  Status Parse(uint64_t off, PayloadMode mode, RecordHeader* h, std::string* payload,
               std::string* why) {
    why->clear();
    if (off + kHeaderSize > size_) {
      *why = "truncated record header";
      return Status::Ok();
    }
    char buf[kHeaderSize];
    DBFS_RETURN_IF_ERROR(Read(off, kHeaderSize, buf));
    *h = DecodeHeader(buf);
    const uint8_t want_type = static_cast<uint8_t>(RecordType::kSegmentHeader);
    if (h->lsn != MakeLsn(number_, off)) {
      *why = "LSN field " + LsnString(h->lsn) + " does not match the record's position";
    } else if (h->segment != number_) {
      *why = "segment field " + std::to_string(h->segment) + " does not match the file";
    } else if (h->reserved[0] != 0 || h->reserved[1] != 0 || h->reserved[2] != 0) {
      *why = "reserved header bytes are not zero";
    } else if (off == 0 ? h->type != want_type
                        : h->type != static_cast<uint8_t>(RecordType::kData) &&
                              h->type != static_cast<uint8_t>(RecordType::kCommit)) {
      *why = "bad record type " + std::to_string(h->type);
    } else if (h->length > kMaxPayloadSize || off + kHeaderSize + h->length > size_) {
      *why = "record length " + std::to_string(h->length) + " runs past the end of the file";
    } else if (h->synced_lsn > h->lsn) {
      *why = "synced_lsn " + LsnString(h->synced_lsn) + " lies after the record";
    }
    if (!why->empty()) return Status::Ok();

    uint32_t crc = Crc32c(buf + kCrcCoverStart, kHeaderSize - kCrcCoverStart);
    const uint64_t payload_off = off + kHeaderSize;
    const bool keep =
        mode == PayloadMode::kKeepAll ||
        (mode == PayloadMode::kKeepNonData && h->type != static_cast<uint8_t>(RecordType::kData));
    if (keep) {
      payload->resize(h->length);
      DBFS_RETURN_IF_ERROR(Read(payload_off, h->length, payload->data()));
      crc = Crc32cExtend(crc, payload->data(), payload->size());
    } else {
      payload->clear();
      for (uint64_t done = 0; done < h->length;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkSize, h->length - done));
        scratch_.resize(n);
        DBFS_RETURN_IF_ERROR(Read(payload_off + done, n, scratch_.data()));
        crc = Crc32cExtend(crc, scratch_.data(), n);
        done += n;
      }
    }
    if (UnmaskCrc(h->masked_crc) != crc) *why = "checksum mismatch";
    return Status::Ok();
  }

 private:
  Segment(std::unique_ptr<File> f, std::string path, uint32_t number, uint64_t size)
      : file_(std::move(f)), path_(std::move(path)), number_(number), size_(size) {}

  Status ReadDirect(uint64_t off, size_t n, char* dst) {
    size_t got = 0;
    DBFS_RETURN_IF_ERROR(file_->PRead(off, dst, n, &got));
    if (got != n) {
      return Status::IOError("WAL segment " + path_ + " shrank while it was being read");
    }
    return Status::Ok();
  }

  const std::unique_ptr<File> file_;
  const std::string path_;
  const uint32_t number_;
  const uint64_t size_;  // as of Open: the log is not written while it is scanned
  std::string window_;   // bytes [window_off_, window_off_ + window_.size())
  uint64_t window_off_ = 0;
  std::string scratch_;
};

Reader::Reader(FileSystem* fs, std::string dir, std::string uuid, std::vector<uint32_t> segs,
               Lsn from)
    : fs_(fs), dir_(std::move(dir)), uuid_(std::move(uuid)), segs_(std::move(segs)), from_(from) {
  if (LsnSegment(from_) != 0) {
    last_end_ = from_;
  } else if (!segs_.empty()) {
    last_end_ = MakeLsn(segs_.front(), 0);
  }
}

Reader::~Reader() = default;

Result<std::unique_ptr<Reader>> Reader::Open(FileSystem* fs, const std::string& dir, Lsn from,
                                             const std::string& uuid) {
  if (!uuid.empty() && uuid.size() != kUuidSize) {
    return Status::Invalid("WAL uuid must be " + std::to_string(kUuidSize) + " bytes");
  }
  const uint32_t start = LsnSegment(from);
  if (start == 0) {
    from = 0;
  } else if (LsnOffset(from) != 0 && LsnOffset(from) < kSegmentDataStart) {
    return Status::Invalid("WAL start LSN " + LsnString(from) + " is not a record boundary");
  }
  DBFS_ASSIGN_OR_RETURN(std::vector<uint32_t> segs, ListSegments(fs, dir));
  if (start != 0) {
    segs.erase(segs.begin(), std::lower_bound(segs.begin(), segs.end(), start));
    if (segs.empty() || segs.front() != start) {
      return Status::Corruption("WAL segment " + SegmentPath(dir, start) +
                                ", which holds the recovery start LSN " + LsnString(from) +
                                ", is missing; run fsck.dbfs");
    }
  }
  // From a nonzero start (recovery) every segment must follow the one before:
  // a hole there is lost log. From 0 (fsck reading everything on disk) holes
  // are normal: a checkpoint deletes old segments that nothing references,
  // in any order.
  for (size_t i = 1; start != 0 && i < segs.size(); ++i) {
    if (segs[i] != segs[i - 1] + 1) {
      return Status::Corruption("WAL segment " + SegmentPath(dir, segs[i - 1] + 1) +
                                " is missing between " + SegmentFileName(segs[i - 1]) + " and " +
                                SegmentFileName(segs[i]) + "; run fsck.dbfs");
    }
  }
  return std::unique_ptr<Reader>(new Reader(fs, dir, uuid, std::move(segs), from));
}

Status Reader::Fail(Status s) {
  status_ = std::move(s);
  return status_;
}

Result<bool> Reader::Next(Record* out) {
  if (!status_.ok()) return status_;
  if (done_) return false;
  while (true) {
    if (!seg_) {
      if (idx_ >= segs_.size()) {  // no segments at all
        end_.end = last_end_;
        done_ = true;
        return false;
      }
      DBFS_ASSIGN_OR_RETURN(bool positioned, EnterSegment());
      if (!positioned) return false;
    }
    if (pos_ == seg_->size()) {
      if (idx_ + 1 < segs_.size()) {
        // Across a hole (segments a checkpoint deleted) nothing links the two.
        prev_segment_end_ =
            segs_[idx_ + 1] == seg_->number() + 1 ? MakeLsn(seg_->number(), pos_) : 0;
        seg_.reset();
        ++idx_;
        continue;
      }
      end_.end = last_end_;
      done_ = true;
      return false;
    }
    RecordHeader h;
    std::string why;
    Status s = seg_->Parse(pos_, read_data_ ? PayloadMode::kKeepAll : PayloadMode::kKeepNonData, &h,
                           &out->payload, &why);
    if (!s.ok()) return Fail(std::move(s));
    if (!why.empty()) return HandleBad(pos_, why);
    out->type = static_cast<RecordType>(h.type);
    out->lsn = h.lsn;
    out->segment = seg_->number();
    out->payload_offset = pos_ + kHeaderSize;
    pos_ += kHeaderSize + h.length;
    out->end_lsn = MakeLsn(seg_->number(), pos_);
    last_end_ = out->end_lsn;
    return true;
  }
}

Result<bool> Reader::EnterSegment() {
  const uint32_t number = segs_[idx_];
  Result<std::unique_ptr<Segment>> opened = Segment::Open(fs_, SegmentPath(dir_, number), number);
  if (!opened.ok()) return Fail(opened.TakeStatus());
  seg_ = std::move(*opened);
  const bool start_segment = LsnSegment(from_) == number;
  if (start_segment && LsnOffset(from_) > seg_->size()) {
    return Fail(Status::Corruption(
        "WAL segment " + seg_->path() + " has " + std::to_string(seg_->size()) +
        " bytes, it ends before the recovery start LSN " + LsnString(from_) + "; run fsck.dbfs"));
  }
  RecordHeader h;
  std::string why;
  Status s = seg_->Parse(0, PayloadMode::kKeepAll, &h, &header_payload_, &why);
  if (!s.ok()) return Fail(std::move(s));
  if (!why.empty()) return HandleBad(0, "segment header: " + why);

  // A CRC-valid header in the right place: anything wrong now is not a torn
  // write but a wrong or damaged file.
  const std::string where = "WAL segment " + seg_->path();
  if (header_payload_.size() != kSegmentHeaderPayloadSize ||
      DecodeLE32(header_payload_.data() + kUuidSize) != kFormatVersion) {
    return Fail(Status::Corruption(where + " has an unsupported format version"));
  }
  if (!uuid_.empty() && header_payload_.compare(0, kUuidSize, uuid_) != 0) {
    return Fail(
        Status::Corruption(where + " belongs to another volume (uuid mismatch); run fsck.dbfs"));
  }
  // The writer syncs a segment completely before it creates the next one and
  // records that in the next header's synced_lsn: if the previous segment is
  // shorter, durable bytes at its end were lost.
  if (prev_segment_end_ != 0 && h.synced_lsn > prev_segment_end_) {
    return Fail(
        Status::Corruption("WAL segment " + SegmentPath(dir_, LsnSegment(prev_segment_end_)) +
                           " ends at offset " + std::to_string(LsnOffset(prev_segment_end_)) +
                           " but " + seg_->path() + " says the log was durable up to LSN " +
                           LsnString(h.synced_lsn) + ": its tail was lost; run fsck.dbfs"));
  }
  pos_ = kSegmentDataStart;
  if (start_segment && LsnOffset(from_) > pos_) pos_ = LsnOffset(from_);
  last_end_ = MakeLsn(number, pos_);
  return true;
}

Result<bool> Reader::HandleBad(uint64_t off, const std::string& why) {
  const Lsn bad = MakeLsn(seg_->number(), off);
  Lsn proof = 0, proof_synced = 0;
  Result<bool> found = FindDurableProof(seg_.get(), off + 1, bad, &proof, &proof_synced);
  if (!found.ok()) return Fail(found.TakeStatus());
  uint64_t later_bytes = 0;
  for (size_t i = idx_ + 1; !*found && i < segs_.size(); ++i) {
    Result<std::unique_ptr<Segment>> later =
        Segment::Open(fs_, SegmentPath(dir_, segs_[i]), segs_[i]);
    if (!later.ok()) return Fail(later.TakeStatus());
    later_bytes += (*later)->size();
    found = FindDurableProof(later->get(), 0, bad, &proof, &proof_synced);
    if (!found.ok()) return Fail(found.TakeStatus());
  }
  if (*found) {
    return Fail(Status::Corruption(
        "WAL corruption in " + seg_->path() + " at offset " + std::to_string(off) + ": " + why +
        "; the valid record at LSN " + LsnString(proof) + " (" +
        SegmentFileName(LsnSegment(proof)) + " offset " + std::to_string(LsnOffset(proof)) +
        "), written later, says the log had been durable up to LSN " + LsnString(proof_synced) +
        ", so these bytes had been synced. Run fsck.dbfs"));
  }
  end_.end = last_end_;
  end_.torn_tail = true;
  const uint64_t kept = LsnSegment(last_end_) == seg_->number() ? LsnOffset(last_end_) : 0;
  end_.discarded_bytes = seg_->size() - kept + later_bytes;
  spdlog::warn("WAL: torn tail in {} at offset {} ({}); {} bytes after LSN {} discarded",
               seg_->path(), off, why, end_.discarded_bytes, LsnString(end_.end));
  done_ = true;
  return false;
}

Result<bool> Reader::FindDurableProof(Segment* seg, uint64_t start, Lsn bad, Lsn* proof_lsn,
                                      Lsn* proof_synced) {
  // Records are not aligned, so every byte offset is a candidate; the LSN
  // field must equal the candidate's own LSN, which rejects almost every
  // offset before the CRC is computed.
  std::string chunk, payload, why;
  RecordHeader h;
  uint64_t off = start;
  while (off + kHeaderSize <= seg->size()) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunkSize, seg->size() - off));
    chunk.resize(want);
    DBFS_RETURN_IF_ERROR(seg->Read(off, want, chunk.data()));
    const size_t limit = want - kHeaderSize + 1;  // candidates [off, off + limit)
    uint64_t next = off + limit;
    const Lsn base = MakeLsn(seg->number(), off);
    for (size_t p = 0; p < limit; ++p) {
      if (DecodeLE64(chunk.data() + p + kLsnOffset) != base + p) continue;
      DBFS_RETURN_IF_ERROR(seg->Parse(off + p, PayloadMode::kDiscard, &h, &payload, &why));
      if (!why.empty()) continue;
      if (h.synced_lsn > bad) {
        *proof_lsn = h.lsn;
        *proof_synced = h.synced_lsn;
        return true;
      }
      next = off + p + kHeaderSize + h.length;  // skip the valid record
      break;
    }
    off = next;
  }
  return false;
}

}  // namespace dbfs::wal
