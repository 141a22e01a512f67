// fsck.dbfs: see fsck.h for the structure (passes over an in-memory model)
// and docs/fsck.md for the invariants and repairs.
#include "tools/lib/fsck.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "fs/filesystem.h"
#include "fs/inode_format.h"
#include "kvstore/env.h"
#include "mvcc/keys.h"
#include "mvcc/history_records.h"
#include "tools/lib/fsck_history.h"
#include "mvcc/redo.h"
#include "mvcc/local_store.h"
#include "mvcc/superblock.h"
#include "mvcc/volume.h"
#include "mvcc/volume_lock.h"
#include "wal/crc32c.h"
#include "wal/file_system.h"
#include "wal/reader.h"
#include "wal/record_format.h"

namespace dbfs {

namespace {

using mvcc::Csn;
using mvcc::Table;
using wal::Lsn;

// A repair round is: check-and-repair pass, then a read-only re-check. A
// repair can uncover what the damage hid (a table unreadable before), so a
// few rounds are allowed; each must make progress.
constexpr int kMaxRepairRounds = 3;
// A stored version newer than the last committed CSN is superseded by
// committing empty transactions until the CSN passes it (the store has no
// other way to write below a version): bounded, so a wild CSN is left alone.
constexpr uint64_t kMaxCsnAdvance = uint64_t{1} << 16;
// Same for a next-inode counter below the largest inode number.
constexpr uint64_t kMaxInoAdvance = uint64_t{1} << 24;
// Limits of the filesystem layer (fs/).
constexpr size_t kSymlinkMax = 4095;
constexpr size_t kXattrNameMax = 255;
constexpr size_t kXattrValueMax = 65536;
constexpr char kLostFound[] = "lost+found";

constexpr int kInodesT = static_cast<int>(Table::kInodes);
constexpr int kDirentsT = static_cast<int>(Table::kDirents);
constexpr int kExtentsT = static_cast<int>(Table::kExtents);
constexpr int kXattrsT = static_cast<int>(Table::kXattrs);
constexpr int kOrphansT = static_cast<int>(Table::kOrphans);

std::string Num(uint64_t v) { return std::to_string(v); }

std::string Octal(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof(b), "0%o", v);
  return b;
}

// What is wrong with a key of the form ino (8 bytes) | name | NUL, as the
// dirents and xattrs tables use; empty when nothing is.
std::string NamedKeyProblem(std::string_view key, size_t name_max) {
  if (key.size() < 10 || key.back() != '\0') return "not an inode number, a name and a NUL";
  const std::string_view name = key.substr(8, key.size() - 9);
  if (name.find('\0') != std::string_view::npos) return "the name contains NUL";
  if (name.size() > name_max) return "the name is longer than " + std::to_string(name_max) + " bytes";
  return "";
}

// A key for messages: printable bytes as they are, others as \xNN.
std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

std::string LsnString(Lsn l) {
  return wal::SegmentFileName(wal::LsnSegment(l)) + " offset " + Num(wal::LsnOffset(l));
}

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      return "inode of unknown type";
  }
}

bool ValidType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

timespec Now() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

// ---- progress ----

class Progress {
 public:
  explicit Progress(const FsckProgressFn& fn) : fn_(fn) {}
  void Phase(std::string phase, uint64_t total = 0) {
    phase_ = std::move(phase);
    total_ = total;
    done_ = 0;
    Emit();
  }
  void Add(uint64_t n = 1) {
    done_ += n;
    if (!fn_ || (++ticks_ & 255) != 0) return;
    if (std::chrono::steady_clock::now() - last_ >= std::chrono::milliseconds(100)) Emit();
  }

 private:
  void Emit() {
    if (!fn_) return;
    last_ = std::chrono::steady_clock::now();
    fn_(phase_, done_, total_);
  }
  const FsckProgressFn& fn_;
  std::string phase_;
  uint64_t done_ = 0, total_ = 0, ticks_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

// ---- superblock ----

struct SuperblockState {
  Superblock sb;
  bool crc_bad = false;  // every field is sane, only the stored CRC is wrong
};

// Reads the superblock; a block whose only fault is its CRC is salvaged (its
// fields decode and pass every check once the CRC is recomputed).
Result<SuperblockState> LoadSuperblock(const std::string& dir) {
  auto r = ReadSuperblock(dir);
  if (r.ok()) return SuperblockState{*r, false};
  if (r.status().code() != Code::kCorruption) return r.TakeStatus();
  auto f =
      wal::DefaultFileSystem()->Open(dir + "/" + kSuperblockFileName, wal::FileSystem::kReadOnly);
  if (!f.ok()) return r.TakeStatus();
  std::string block(kSuperblockSize + 1, '\0');
  size_t got = 0;
  if (!(*f)->PRead(0, block.data(), block.size(), &got).ok() || got != kSuperblockSize) {
    return r.TakeStatus();
  }
  block.resize(kSuperblockSize);
  EncodeLE32(block.data() + kSuperblockCrcOffset, wal::Crc32c(block.data(), kSuperblockCrcOffset));
  auto salvaged = DecodeSuperblock(block, dir);
  if (!salvaged.ok()) return r.TakeStatus();  // more than the CRC is wrong
  return SuperblockState{*salvaged, true};
}

// ---- WAL index: every record of every segment, found by walking headers ----

struct WalRec {
  uint64_t off = 0;     // header offset in the segment file
  uint32_t length = 0;  // payload bytes
  uint8_t type = 0;
  int8_t crc = -1;  // 1 verified, 0 mismatch, -1 not verified (quick check)
  uint64_t payload_off() const { return off + wal::kHeaderSize; }
};

struct WalSeg {
  uint64_t size = 0;
  bool header_ok = false;
  std::string uuid;          // from a CRC-valid segment header
  std::vector<WalRec> recs;  // ascending offsets
};

struct WalDamage {
  Lsn lsn = 0;
  std::string why;
};

struct WalIndex {
  std::map<uint32_t, WalSeg> segs;
  std::vector<WalDamage> damage;                      // bytes that are not a valid record
  std::vector<std::pair<Lsn, Csn>> commits;           // full check: CRC-valid COMMITs, log order
  std::vector<std::pair<Lsn, std::string>> bad_redo;  // full check: COMMITs that do not decode
  uint64_t bytes = 0, records = 0;

  // Where slice bytes [data, data + len) of `seg` live; empty when they are
  // inside the payload of a (CRC-valid, when verified) DATA record.
  std::string CheckRef(uint32_t seg, uint64_t data, uint32_t len, const WalRec** rec) const {
    *rec = nullptr;
    auto s = segs.find(seg);
    if (s == segs.end())
      return "WAL segment " + wal::SegmentFileName(seg) + ", which does not exist";
    const auto& recs = s->second.recs;
    auto it = std::upper_bound(recs.begin(), recs.end(), data,
                               [](uint64_t d, const WalRec& r) { return d < r.payload_off(); });
    const std::string where = wal::SegmentFileName(seg) + " offset " + Num(data);
    if (it == recs.begin()) return where + ", which is not inside a WAL record";
    --it;
    if (data + len > it->payload_off() + it->length) {
      return where + " (" + Num(len) + " bytes), which is not inside one WAL record";
    }
    if (it->type != static_cast<uint8_t>(wal::RecordType::kData)) {
      return where + ", inside a COMMIT record";
    }
    if (it->crc == 0) {
      *rec = &*it;
      return "a DATA record whose checksum does not match (" + wal::SegmentFileName(seg) +
             " offset " + Num(it->off) + ")";
    }
    return "";
  }
};

// Reads one segment file through a window; validates records like
// wal::Reader (docs/wal_format.md "Valid records") but never stops: after a
// damaged record it resynchronizes on the next record that proves itself
// (LSN field equal to its position, CRC valid), so every intact record is
// indexed even behind damage.
class SegmentScan {
 public:
  SegmentScan(wal::File* f, uint32_t number, uint64_t size) : f_(f), number_(number), size_(size) {}

  Status Read(uint64_t off, size_t n, char* dst) {
    if (n >= kWindow / 2) return Direct(off, n, dst);
    if (off < win_off_ || off + n > win_off_ + win_.size()) {
      win_.resize(static_cast<size_t>(std::min<uint64_t>(kWindow, size_ - off)));
      win_off_ = off;
      Status s = Direct(off, win_.size(), win_.data());
      if (!s.ok()) {
        win_.clear();
        return s;
      }
    }
    std::memcpy(dst, win_.data() + (off - win_off_), n);
    return Status::Ok();
  }

  // Structural checks of the header at `off`; *why empty when they pass.
  Status Header(uint64_t off, wal::RecordHeader* h, std::string* why) {
    why->clear();
    if (off + wal::kHeaderSize > size_ || off > 0xffffffffull) {
      *why = "truncated record header";
      return Status::Ok();
    }
    char buf[wal::kHeaderSize];
    DBFS_RETURN_IF_ERROR(Read(off, sizeof(buf), buf));
    *h = wal::DecodeHeader(buf);
    const auto data = static_cast<uint8_t>(wal::RecordType::kData);
    const auto commit = static_cast<uint8_t>(wal::RecordType::kCommit);
    const auto header = static_cast<uint8_t>(wal::RecordType::kSegmentHeader);
    if (h->lsn != wal::MakeLsn(number_, off)) {
      *why = "LSN field does not match the record's position";
    } else if (h->segment != number_) {
      *why = "segment field does not match the file";
    } else if (h->reserved[0] || h->reserved[1] || h->reserved[2]) {
      *why = "reserved header bytes are not zero";
    } else if (off == 0 ? h->type != header : (h->type != data && h->type != commit)) {
      *why = "bad record type " + Num(h->type);
    } else if (h->length > wal::kMaxPayloadSize || off + wal::kHeaderSize + h->length > size_) {
      *why = "record length runs past the end of the file";
    } else if (h->synced_lsn > h->lsn) {
      *why = "synced_lsn lies after the record";
    }
    return Status::Ok();
  }

  // CRC of the record at `off` (header `h` already passed Header()). Keeps
  // the payload in *payload when `keep`.
  Status Crc(uint64_t off, const wal::RecordHeader& h, bool keep, std::string* payload, bool* ok) {
    char buf[wal::kHeaderSize];
    DBFS_RETURN_IF_ERROR(Read(off, sizeof(buf), buf));
    uint32_t crc = wal::Crc32c(buf + wal::kCrcCoverStart, wal::kHeaderSize - wal::kCrcCoverStart);
    const uint64_t p = off + wal::kHeaderSize;
    if (keep) {
      payload->resize(h.length);
      DBFS_RETURN_IF_ERROR(Read(p, h.length, payload->data()));
      crc = wal::Crc32cExtend(crc, payload->data(), payload->size());
    } else {
      for (uint64_t done = 0; done < h.length;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, h.length - done));
        scratch_.resize(n);
        DBFS_RETURN_IF_ERROR(Read(p + done, n, scratch_.data()));
        crc = wal::Crc32cExtend(crc, scratch_.data(), n);
        done += n;
      }
    }
    *ok = wal::UnmaskCrc(h.masked_crc) == crc;
    return Status::Ok();
  }

  // The first offset >= `from` where a valid DATA/COMMIT record with a
  // matching CRC starts, or the file size if there is none.
  Status Resync(uint64_t from, uint64_t* next) {
    std::string block, payload, why;
    wal::RecordHeader h;
    uint64_t off = std::max<uint64_t>(from, wal::kSegmentDataStart);
    while (off + wal::kHeaderSize <= size_ && off <= 0xffffffffull) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, size_ - off));
      block.resize(want);
      DBFS_RETURN_IF_ERROR(Direct(off, want, block.data()));
      const size_t limit = want - wal::kHeaderSize + 1;
      for (size_t i = 0; i < limit; ++i) {
        const uint64_t cand = off + i;
        if (cand > 0xffffffffull) break;
        if (DecodeLE64(block.data() + i + wal::kLsnOffset) != wal::MakeLsn(number_, cand)) continue;
        DBFS_RETURN_IF_ERROR(Header(cand, &h, &why));
        if (!why.empty()) continue;
        bool ok = false;
        DBFS_RETURN_IF_ERROR(Crc(cand, h, false, &payload, &ok));
        if (ok) {
          *next = cand;
          return Status::Ok();
        }
      }
      off += limit;
    }
    *next = size_;
    return Status::Ok();
  }

 private:
  static constexpr size_t kWindow = 256 << 10;
  static constexpr size_t kChunk = 1 << 20;

  Status Direct(uint64_t off, size_t n, char* dst) {
    size_t got = 0;
    DBFS_RETURN_IF_ERROR(f_->PRead(off, dst, n, &got));
    if (got != n) return Status::IOError("WAL segment shrank while fsck read it");
    return Status::Ok();
  }

  wal::File* f_;
  const uint32_t number_;
  const uint64_t size_;
  std::string win_;
  uint64_t win_off_ = 0;
  std::string scratch_;
};

// Indexes segment `number`. `verify`: compute every record's CRC (and decode
// COMMIT payloads); otherwise only headers are read.
Status IndexSegment(const std::string& wal_dir, uint32_t number, bool verify, Progress& prog,
                    WalIndex* idx) {
  DBFS_ASSIGN_OR_RETURN(auto f, wal::DefaultFileSystem()->Open(wal::SegmentPath(wal_dir, number),
                                                               wal::FileSystem::kReadOnly));
  DBFS_ASSIGN_OR_RETURN(uint64_t size, f->Size());
  WalSeg& seg = idx->segs[number];
  seg.size = size;
  idx->bytes += size;
  SegmentScan s(f.get(), number, size);
  wal::RecordHeader h;
  std::string why, payload;
  uint64_t off = wal::kSegmentDataStart;
  DBFS_RETURN_IF_ERROR(s.Header(0, &h, &why));
  if (why.empty()) {
    bool ok = false;
    DBFS_RETURN_IF_ERROR(s.Crc(0, h, true, &payload, &ok));
    if (!ok) {
      why = "checksum mismatch";
    } else if (payload.size() != wal::kSegmentHeaderPayloadSize ||
               DecodeLE32(payload.data() + wal::kUuidSize) != wal::kFormatVersion) {
      why = "unsupported format version";
    } else if (h.length + wal::kHeaderSize != wal::kSegmentDataStart) {
      why = "bad length";
    } else {
      seg.header_ok = true;
      seg.uuid = payload.substr(0, wal::kUuidSize);
    }
  }
  if (!why.empty()) {
    idx->damage.push_back({wal::MakeLsn(number, 0), "segment header: " + why});
    DBFS_RETURN_IF_ERROR(s.Resync(1, &off));
  }
  while (off < size) {
    DBFS_RETURN_IF_ERROR(s.Header(off, &h, &why));
    if (!why.empty()) {
      idx->damage.push_back({wal::MakeLsn(number, std::min<uint64_t>(off, 0xffffffffull)), why});
      uint64_t next = size;
      DBFS_RETURN_IF_ERROR(s.Resync(off + 1, &next));
      prog.Add(next - off);
      off = next;
      continue;
    }
    WalRec r{off, h.length, h.type, -1};
    uint64_t next = off + wal::kHeaderSize + h.length;
    if (verify) {
      const bool commit = h.type == static_cast<uint8_t>(wal::RecordType::kCommit);
      bool ok = false;
      DBFS_RETURN_IF_ERROR(s.Crc(off, h, commit, &payload, &ok));
      r.crc = ok ? 1 : 0;
      if (ok && commit) {
        auto redo = mvcc::DecodeRedo(payload);
        if (redo.ok())
          idx->commits.emplace_back(h.lsn, redo->csn);
        else
          idx->bad_redo.emplace_back(h.lsn, redo.status().ToString());
      }
      // The length field may be what is damaged: continue at the next record
      // that proves itself (for a damaged payload that is right after it).
      if (!ok) DBFS_RETURN_IF_ERROR(s.Resync(off + 1, &next));
    }
    seg.recs.push_back(r);
    ++idx->records;
    prog.Add(next - off);
    off = next;
  }
  return Status::Ok();
}

// ---- raw LMDB contents ----

// What the raw scan learned about one logical key of a versioned table.
struct RawKey {
  // The value the store shows (nullopt: absent — a tombstone, a damaged
  // newest version, or no usable version).
  std::optional<std::string> value;
  bool rewrite = false;  // some stored version is damaged or out of range
  Csn future = 0;        // largest stored csn above meta's last_csn
  // Scan state.
  Csn best = 0;  // csn of the newest in-range version (0: none yet)
  Csn adopt_csn = 0;  // newest usable out-of-range version, the fallback
  bool have_adopt = false;
  std::optional<std::string> adopt_value;
};

struct RawTable {
  bool readable = false;
  std::map<std::string, RawKey> keys;
};

// A damaged stored version, reported once the replay told how far the CSN
// will be (fixable iff a bounded CSN advance gets past it).
struct VersionProblem {
  std::string msg;
  Csn future = 0;
};

// ---- the pass ----

struct Finding {
  std::string msg;
  bool fixable = true;
};

struct Dirent {
  uint64_t parent = 0;
  std::string name;
  uint64_t child = 0;
  uint32_t type = 0;
};

class Pass {
 public:
  Pass(std::string dir, const SuperblockState& sbs, const FsckOptions& o, bool repair,
       Progress& prog)
      : dir_(std::move(dir)),
        sbs_(sbs),
        opts_(o),
        repair_(repair),
        prog_(prog),
        chunk_(sbs.sb.chunk_size) {}

  // Runs every check (and, in a repair pass, commits the repairs).
  void Run();
  // Checks the state of `store` at snapshot `snap` instead of a volume
  // directory (a cluster volume, check only): no LMDB, no WAL; file data is
  // checked by reading it back through the store.
  void RunOnStore(mvcc::Store* store, Csn snap);
  // The model and every check on it (after the tables are read).
  void RunChecks();

  std::vector<Finding> errors;
  std::vector<std::string> warnings, notes;
  std::string operational;    // non-empty: the pass could not run (exit 8)
  std::string blocked;        // non-empty: a repair pass found it could not repair
  bool housekeeping = false;  // replay or orphan reclamation a repair pass would do
  bool repaired = false;      // a repair pass completed (its fixable errors are fixed)
  bool committed = false;     // ... and committed a transaction
  bool superblock_written = false;
  bool clean = false, full = false;
  uint64_t versions = 0, replayed = 0, live_bytes = 0;
  WalIndex wal;

  size_t inode_count() const { return inodes_.size(); }
  size_t dirent_count() const { return dirents_.size(); }
  size_t extent_count() const { return extents_.size(); }
  size_t xattr_count() const { return xattrs_.size(); }
  size_t orphan_count() const { return orphans_.size(); }

 private:
  // A problem the repair cannot fix.
  void Error(std::string problem) { errors.push_back({std::move(problem), false}); }
  // A problem and what the repair does about it (`action`, past tense).
  // The message says it was done in a repair pass, that -y would do it in a
  // check.
  void Fix(std::string problem, const std::string& action) {
    problem += repair_ ? "; " + action : " (-y: " + action + ")";
    errors.push_back({std::move(problem), true});
  }
  // Fix when `action` is non-empty, else Error.
  void Problem(std::string problem, const std::string& action) {
    if (action.empty())
      Error(std::move(problem));
    else
      Fix(std::move(problem), action);
  }
  void Dirty(int t, std::string key) { dirty_.emplace(t, std::move(key)); }

  bool ScanLmdb();
  void Replay();
  bool IndexWal();
  void WalChecks();
  bool OpenStore();
  void DecodeModel();
  void CheckInodes();
  void CheckRoot();
  void CheckDirents();
  void CheckDirectoryNames();
  void CheckOrphanList();
  void CheckTree();
  void CheckParents();
  void CheckLinkCounts();
  void CheckExtents();
  // Whether WAL bytes [off, off + len) of segment `seg` are all zero (false
  // when they cannot be read).
  bool BytesAreZeros(uint32_t seg, uint64_t off, uint32_t len);
  // RunOnStore: "" when the slice's bytes read back, else what is wrong.
  std::string StoreRef(const Slice& s);
  void CheckXattrs();
  void ReclaimOrphans();
  void Commit();

  std::string Who(uint64_t ino);
  std::string Entry(const Dirent& d) {
    return "entry '" + d.name + "' in directory " + Who(d.parent);
  }
  uint64_t NewIno() { return repair_ ? store_->AllocateIno() : next_ino_++; }
  void SetInode(uint64_t ino, const Inode& n) {
    inodes_[ino] = n;
    Dirty(kInodesT, mvcc::InoKey(ino));
  }
  void PutDirent(const Dirent& d) {
    std::string k = mvcc::NameKey(d.parent, d.name);
    dirents_[k] = d;
    Dirty(kDirentsT, std::move(k));
  }
  void EraseDirent(const std::string& key) {
    dirents_.erase(key);
    Dirty(kDirentsT, key);
  }
  void EraseInode(uint64_t ino);
  bool IsDir(uint64_t ino) const {
    auto it = inodes_.find(ino);
    return it != inodes_.end() && it->second.IsDir();
  }
  // Entries naming each inode, by child (recomputed from dirents_).
  std::unordered_map<uint64_t, std::vector<const Dirent*>> EntriesByChild() const;
  // /lost+found's inode, created if missing; 0 if it cannot be (the name is
  // taken by something else, or there is no root directory).
  uint64_t LostFound();
  // Links `ino` into /lost+found as "#ino". REQUIRES: LostFound() != 0.
  void Connect(uint64_t ino);

  const std::string dir_;
  const SuperblockState& sbs_;
  const FsckOptions& opts_;
  const bool repair_;
  Progress& prog_;
  const uint32_t chunk_;

  // Raw LMDB and meta.
  RawTable raw_[mvcc::kNumTables];
  std::vector<VersionProblem> version_problems_;
  uint64_t applied_lsn_ = 0, last_csn_ = 0, meta_next_ino_ = 0;
  bool meta_missing_ = false;
  bool ino_raised_ = false;  // the store's counter was raised: a commit must persist it
  // After replay.
  Csn visible_csn_ = 0;
  uint64_t next_ino_ = 2;  // as the store computes it after recovery
  Lsn trusted_end_ = 0;    // the log before this LSN was read by replay (or applied)
  bool replay_ok_ = true;

  std::unique_ptr<mvcc::LocalStore> store_;  // repair pass only
  mvcc::Store* source_ = nullptr;            // RunOnStore: the store checked
  Csn source_snap_ = 0;

  // The model.
  std::map<uint64_t, Inode> inodes_;
  std::map<std::string, Dirent> dirents_;
  std::map<std::string, SliceList> extents_;
  std::map<std::string, std::string> xattrs_;
  std::set<uint64_t> orphans_;
  std::set<std::pair<int, std::string>> dirty_;  // keys whose repaired state must be committed
  bool root_ok_ = true;
  uint64_t lost_found_ = 0;
  bool lost_found_failed_ = false;
  std::set<std::pair<uint32_t, uint64_t>> referenced_bad_;  // damaged DATA records files point to

  // For messages: the first name of each inode, from the stored entries.
  std::unordered_map<uint64_t, std::pair<uint64_t, std::string>> first_name_;
};

std::string Pass::Who(uint64_t ino) {
  std::string s = "inode " + Num(ino);
  if (ino == kRootIno) return s + " (/)";
  std::vector<const std::string*> parts;
  uint64_t x = ino;
  for (int depth = 0; depth < 64 && x != kRootIno; ++depth) {
    auto it = first_name_.find(x);
    if (it == first_name_.end()) return s;
    parts.push_back(&it->second.second);
    x = it->second.first;
  }
  if (x != kRootIno) return s;
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path += "/" + **it;
  return s + " (" + path + ")";
}

// Reads every LMDB table raw. Returns false when nothing further can be
// checked (the environment or the meta table is unreadable).
bool Pass::ScanLmdb() {
  prog_.Phase("reading LMDB");
  kv::EnvOptions eo;
  eo.read_only = true;  // MDB_RDONLY: never writes data.mdb
  auto env = kv::Env::Open(dir_ + "/meta", eo);
  if (!env.ok()) {
    Error("LMDB environment in meta/ cannot be opened: " + env.status().ToString());
    return false;
  }
  auto meta = (*env)->OpenTable(mvcc::kMetaTableName);
  if (!meta.ok()) {
    Error("LMDB table 'meta' cannot be opened: " + meta.status().ToString());
    return false;
  }
  {
    auto r = (*env)->BeginRead();
    if (!r.ok()) {
      operational = "LMDB: " + r.status().ToString();
      return false;
    }
    struct Field {
      std::string_view name;
      uint64_t* out;
    } fields[] = {{mvcc::kMetaAppliedLsn, &applied_lsn_},
                  {mvcc::kMetaLastCsn, &last_csn_},
                  {mvcc::kMetaNextIno, &meta_next_ino_}};
    for (const auto& f : fields) {
      auto v = (*r)->Get(*meta, f.name);
      if (!v.ok()) {
        Error("LMDB table 'meta' cannot be read: " + v.status().ToString());
        return false;
      }
      if (!*v) {
        // The store reads a missing counter as 0 and writes all three at
        // every flush, so the repair commit restores it.
        Fix("meta: '" + std::string(f.name) + "' is missing", "rewritten");
        meta_missing_ = true;
      } else if ((*v)->size() != 8) {
        // The store refuses to open; only rewriting LMDB directly could help.
        Error("meta: '" + std::string(f.name) + "' has " + Num((*v)->size()) +
              " bytes instead of 8 (the volume cannot be opened)");
        return false;
      } else {
        *f.out = DecodeLE64((*v)->data());
      }
    }
    auto c = (*r)->NewCursor(*meta);
    if (c.ok()) {
      auto ok = (*c)->SeekFirst();
      while (ok.ok() && *ok) {
        std::string_view k = (*c)->key();
        if (k != mvcc::kMetaAppliedLsn && k != mvcc::kMetaLastCsn && k != mvcc::kMetaNextIno &&
            k != mvcc::kMetaHistoryHorizon) {
          warnings.push_back("meta: unknown key '" + Printable(k) + "'");
        }
        ok = (*c)->Next();
      }
    }
  }

  for (int t = 0; t < mvcc::kNumTables; ++t) {
    const std::string name = mvcc::kTableNames[t];
    RawTable& rt = raw_[t];
    auto table = (*env)->OpenTable(name);
    if (!table.ok()) {
      if (table.status().code() == Code::kNotFound) {
        // LocalStore::Open (read-write) creates a missing table, empty.
        Fix("LMDB table '" + name + "' is missing", "created empty");
        rt.readable = true;
      } else {
        Error("LMDB table '" + name + "' cannot be opened: " + table.status().ToString());
      }
      continue;
    }
    auto r = (*env)->BeginRead();
    if (!r.ok()) {
      operational = "LMDB: " + r.status().ToString();
      return false;
    }
    auto c = (*r)->NewCursor(*table);
    Result<bool> ok = c.ok() ? (*c)->SeekFirst() : Result<bool>(c.status());
    while (ok.ok() && *ok) {
      prog_.Add();
      ++versions;
      std::string_view k = (*c)->key();
      std::string_view v = (*c)->value();
      if (k.size() < mvcc::kCsnSuffix) {
        // The store's scans stop at such a key ("short versioned key"), and
        // no commit can produce or delete it.
        Error(name + ": stored key '" + Printable(k) + "' of " + Num(k.size()) +
              " bytes has no version suffix (the table cannot be read through the store)");
        ok = (*c)->Next();
        continue;
      }
      const std::string logical(mvcc::VersionLogical(k));
      const Csn csn = mvcc::VersionCsn(k);
      RawKey& rk = rt.keys[logical];
      const std::string what = name + " key '" + Printable(logical) + "'";
      // Decode the version: live value, tombstone, or damaged.
      std::optional<std::string> val;
      bool usable = true;
      if (v.empty()) {
        version_problems_.push_back({what + ": version " + Num(csn) + " has an empty value", 0});
        usable = false;
      } else if (v[0] == mvcc::kTagTombstone) {
        if (v.size() != 1) {
          version_problems_.push_back(
              {what + ": tombstone version " + Num(csn) + " carries a value", 0});
        }
      } else {
        if (v[0] != mvcc::kTagLive) {
          // The store reads any tag but 0 as live.
          version_problems_.push_back({what + ": version " + Num(csn) + " has the invalid tag " +
                                           Num(static_cast<uint8_t>(v[0])),
                                       0});
        }
        val = std::string(v.substr(1));
      }
      if (v.empty() || (v[0] != mvcc::kTagLive && v[0] != mvcc::kTagTombstone) ||
          (v[0] == mvcc::kTagTombstone && v.size() != 1)) {
        rk.rewrite = true;
      }
      const bool in_range = csn >= 1 && csn <= last_csn_;
      if (!in_range) {
        rk.rewrite = true;
        if (csn == 0) {
          version_problems_.push_back({what + ": version with csn 0 (CSNs start at 1)", 0});
        } else {
          version_problems_.push_back({what + ": version " + Num(csn) +
                                           " is newer than the last committed csn " +
                                           Num(last_csn_) + " (meta)",
                                       csn});
          rk.future = std::max(rk.future, csn);
        }
        // Kept as a fallback: the only copy of the key may be misnumbered.
        if (usable && (!rk.have_adopt || csn > rk.adopt_csn)) {
          rk.have_adopt = true;
          rk.adopt_csn = csn;
          rk.adopt_value = val;
        }
      } else if (csn > rk.best) {
        // The newest in-range version is what the store shows. A damaged one
        // makes the key absent (never resurrect an older version).
        rk.best = csn;
        rk.value = usable ? val : std::nullopt;
      }
      ok = (*c)->Next();
    }
    if (!ok.ok()) {
      Error("LMDB table '" + name + "' cannot be read: " + ok.status().ToString());
      continue;
    }
    rt.readable = true;
    for (auto& [key, rk] : rt.keys) {
      if (rk.best == 0 && rk.have_adopt) {
        rk.value = rk.adopt_value;
      }
    }
  }
  return true;
}

// Replays the COMMIT records past the applied LSN into the raw tables, as
// Store::Recover does (same reader, same rules), without writing anything.
void Pass::Replay() {
  prog_.Phase("replaying the WAL");
  Csn last = last_csn_;
  uint64_t max_ino = meta_next_ino_ > 0 ? meta_next_ino_ - 1 : 1;
  trusted_end_ = applied_lsn_;
  auto reader =
      wal::Reader::Open(wal::DefaultFileSystem(), dir_ + "/wal", applied_lsn_, sbs_.sb.uuid);
  if (!reader.ok()) {
    Error("WAL: recovery cannot start (the mount refuses this volume): " +
          reader.status().ToString());
    replay_ok_ = false;
  } else {
    (*reader)->set_read_data(false);
    wal::Record rec;
    while (true) {
      auto more = (*reader)->Next(&rec);
      if (!more.ok()) {
        Error("WAL: " + more.status().ToString() + " (the mount refuses this volume)");
        replay_ok_ = false;
        break;
      }
      if (!*more) break;
      prog_.Add();
      if (rec.type != wal::RecordType::kCommit) continue;
      auto redo = mvcc::DecodeRedo(rec.payload);
      if (!redo.ok()) {
        Error("WAL: COMMIT record at " + LsnString(rec.lsn) +
              " does not decode: " + redo.status().ToString() + " (the mount refuses this volume)");
        replay_ok_ = false;
        break;
      }
      if (redo->csn <= last) continue;  // already in LMDB
      if (redo->csn != last + 1) {
        Error("WAL: commit sequence jumps from csn " + Num(last) + " to " + Num(redo->csn) +
              " at " + LsnString(rec.lsn) + " (the mount refuses this volume)");
        replay_ok_ = false;
        break;
      }
      for (auto& w : redo->writes) {
        const int t = static_cast<int>(w.table);
        if (t < 0 || t >= mvcc::kNumTables) continue;  // DecodeRedo rejects these
        raw_[t].keys[w.key].value = std::move(w.value);
      }
      max_ino = std::max(max_ino, redo->max_ino);
      last = redo->csn;
      ++replayed;
      trusted_end_ = rec.end_lsn;
    }
    if (replay_ok_) {
      trusted_end_ = (*reader)->end().end;
      if ((*reader)->end().torn_tail) {
        notes.push_back("WAL has a torn tail of " + Num((*reader)->end().discarded_bytes) +
                        " bytes (normal after a crash; recovery discards it)");
        housekeeping = true;
      }
    }
  }
  if (replayed > 0) {
    notes.push_back(Num(replayed) +
                    " committed operations are pending replay (the volume was not cleanly "
                    "unmounted)");
    housekeeping = true;
  }
  visible_csn_ = last;
  next_ino_ = std::max<uint64_t>(max_ino + 1, 2);
  clean = replay_ok_ && replayed == 0 && !housekeeping;
}

bool Pass::IndexWal() {
  const std::string wal_dir = dir_ + "/wal";
  auto segs = wal::ListSegments(wal::DefaultFileSystem(), wal_dir);
  if (!segs.ok()) {
    Error("WAL directory cannot be listed: " + segs.status().ToString());
    return false;
  }
  uint64_t total = 0;
  for (uint32_t s : *segs) {
    struct stat st {};
    if (stat(wal::SegmentPath(wal_dir, s).c_str(), &st) == 0) total += st.st_size;
  }
  prog_.Phase(full ? "verifying WAL checksums" : "indexing the WAL", total);
  for (size_t i = 0; i < segs->size(); ++i) {
    const uint32_t s = (*segs)[i];
    // Holes in the numbering below the applied LSN are normal: a checkpoint
    // deletes segments nothing references, in any order (data pointing into
    // a missing segment is reported with the slices). Above it, the replay
    // has reported them (Reader::Open refuses holes after its start).
    Status st = IndexSegment(wal_dir, s, full, prog_, &wal);
    if (!st.ok()) {
      operational = "reading WAL segment " + wal::SegmentFileName(s) + ": " + st.ToString();
      return false;
    }
  }
  return true;
}

// Damage in the WAL that nothing depends on, and the CSN order of COMMITs.
void Pass::WalChecks() {
  for (const auto& [num, seg] : wal.segs) {
    if (seg.header_ok && seg.uuid != sbs_.sb.uuid) {
      const std::string msg =
          "WAL segment " + wal::SegmentFileName(num) + " belongs to another volume (uuid mismatch)";
      if (wal::MakeLsn(num, seg.size) <= trusted_end_)
        warnings.push_back(msg + "; nothing reads it");
    }
  }
  for (const auto& d : wal.damage) {
    if (d.lsn >= trusted_end_) continue;  // torn tail, or reported by the replay
    warnings.push_back("WAL " + LsnString(d.lsn) + ": " + d.why +
                       " (already applied; no file data points there)");
  }
  for (const auto& [num, seg] : wal.segs) {
    for (const WalRec& r : seg.recs) {
      if (r.crc != 0 || wal::MakeLsn(num, r.off) >= trusted_end_) continue;
      if (r.type == static_cast<uint8_t>(wal::RecordType::kCommit)) {
        warnings.push_back(
            "WAL " + LsnString(wal::MakeLsn(num, r.off)) +
            ": COMMIT record fails its checksum (already applied, never read again)");
      } else if (!referenced_bad_.count({num, r.off})) {
        warnings.push_back("WAL " + LsnString(wal::MakeLsn(num, r.off)) +
                           ": DATA record fails its checksum (no file data points into it)");
      }
    }
  }
  for (const auto& [lsn, why] : wal.bad_redo) {
    if (lsn < trusted_end_ && lsn < applied_lsn_) {
      warnings.push_back("WAL " + LsnString(lsn) +
                         ": COMMIT record does not decode (already applied): " + why);
    }
  }
  // CSNs increase by one along the log, except across segments a checkpoint
  // deleted: it deletes old segments nothing refers to any more, also
  // between segments it keeps (one still holding live data), and their
  // COMMITs were all applied to LMDB. So a jump is normal where a segment
  // between the two COMMITs is missing and every CSN skipped is at or below
  // LMDB's last csn; anywhere else commits are missing or out of order.
  Csn prev = 0;
  Lsn prev_lsn = 0;
  auto segment_missing_between = [&](Lsn a, Lsn b) {
    for (uint32_t s = wal::LsnSegment(a) + 1; s < wal::LsnSegment(b); ++s) {
      if (!wal.segs.count(s)) return true;
    }
    return false;
  };
  for (const auto& [lsn, csn] : wal.commits) {
    if (lsn >= trusted_end_) break;
    if (lsn < applied_lsn_ && csn > last_csn_) {
      Error("WAL " + LsnString(lsn) + ": COMMIT csn " + Num(csn) +
            " lies before the applied LSN, but LMDB's last csn is " + Num(last_csn_) +
            ": recovery will never replay it (its changes are lost)");
    }
    const bool deleted_gap =
        csn > prev && csn - 1 <= last_csn_ && segment_missing_between(prev_lsn, lsn);
    if (prev != 0 && csn != prev + 1 && !deleted_gap) {
      warnings.push_back("WAL " + LsnString(lsn) + ": COMMIT csn " + Num(csn) + " follows csn " +
                         Num(prev) + " (CSNs must increase by one)");
    }
    prev = csn;
    prev_lsn = lsn;
  }
}

bool Pass::OpenStore() {
  mvcc::StoreOptions so;  // read-write: recovery replays and flushes, as a mount would
  auto s = mvcc::LocalStore::Open(dir_, so);
  if (!s.ok()) {
    blocked = "the volume cannot be opened for repair: " + s.status().ToString();
    return false;
  }
  store_ = std::move(*s);
  if (store_->visible_csn() != visible_csn_) {
    // fsck's model would not be what the repair transaction applies to.
    operational = "the store recovered to csn " + Num(store_->visible_csn()) +
                  " but fsck's replay to csn " + Num(visible_csn_) + "; nothing was repaired";
    store_->Close().IgnoreError();
    store_.reset();
    return false;
  }
  return true;
}

void Pass::DecodeModel() {
  prog_.Phase("decoding records");
  // Names for messages first (from whatever decodes).
  for (const auto& [key, rk] : raw_[kDirentsT].keys) {
    uint64_t child;
    uint32_t type;
    if (!rk.value || key.size() < 10 || key.back() != '\0') continue;
    if (!DecodeDirent(*rk.value, &child, &type)) continue;
    first_name_.try_emplace(child, GetBE64(key.data()), key.substr(8, key.size() - 9));
  }
  // Damaged versions: the key is rewritten with what the store shows.
  for (const auto& vp : version_problems_) {
    const bool fixable = vp.future == 0 || vp.future <= visible_csn_ + kMaxCsnAdvance;
    Problem(vp.msg + (fixable ? "" : " (too far ahead to supersede)"),
            fixable ? "the key rewritten" : "");
  }
  for (int t = 0; t < mvcc::kNumTables; ++t) {
    for (const auto& [key, rk] : raw_[t].keys) {
      if (rk.rewrite && (rk.future == 0 || rk.future <= visible_csn_ + kMaxCsnAdvance))
        Dirty(t, key);
    }
  }

  for (const auto& [key, rk] : raw_[kInodesT].keys) {
    prog_.Add();
    if (!rk.value) continue;
    if (key.size() != 8) {
      Fix("inodes: malformed key '" + Printable(key) + "' (not 8 bytes)", "removed");
      Dirty(kInodesT, key);
      continue;
    }
    const uint64_t ino = GetBE64(key.data());
    if (ino == 0) {
      Fix("inodes: inode number 0 is invalid", "removed");
      Dirty(kInodesT, key);
      continue;
    }
    auto n = DecodeInode(*rk.value);
    if (!n.ok()) {
      Fix(Who(ino) + ": malformed inode record", "removed");
      Dirty(kInodesT, key);
      continue;
    }
    if (EncodeInode(*n) != *rk.value) {
      Fix(Who(ino) + ": inode record has non-zero padding", "rewritten");
      Dirty(kInodesT, key);
    }
    inodes_.emplace(ino, std::move(*n));
  }

  for (const auto& [key, rk] : raw_[kDirentsT].keys) {
    prog_.Add();
    if (!rk.value) continue;
    std::string why = NamedKeyProblem(key, kNameMax);
    if (why.empty()) {
      std::string_view name = std::string_view(key).substr(8, key.size() - 9);
      if (name.find('/') != std::string_view::npos)
        why = "the name contains '/'";
      else if (name == "." || name == "..")
        why = "the name is '.' or '..'";
    }
    if (!why.empty()) {
      Fix("directory entries: malformed key '" + Printable(key) + "' (" + why + ")", "removed");
      Dirty(kDirentsT, key);
      continue;
    }
    Dirent d;
    d.parent = GetBE64(key.data());
    d.name = key.substr(8, key.size() - 9);
    if (!DecodeDirent(*rk.value, &d.child, &d.type)) {
      Fix(Entry(d) + ": malformed value", "removed");
      Dirty(kDirentsT, key);
      continue;
    }
    dirents_.emplace(key, std::move(d));
  }

  for (const auto& [key, rk] : raw_[kExtentsT].keys) {
    prog_.Add();
    if (!rk.value) continue;
    if (key.size() != 16) {
      Fix("extents: malformed key '" + Printable(key) + "' (not 16 bytes)", "removed");
      Dirty(kExtentsT, key);
      continue;
    }
    auto l = DecodeSlices(*rk.value);
    if (!l.ok()) {
      Fix(Who(GetBE64(key.data())) + " chunk " + Num(GetBE64(key.data() + 8)) +
              ": malformed slice list",
          "removed (the chunk reads as zeros)");
      Dirty(kExtentsT, key);
      continue;
    }
    extents_.emplace(key, std::move(*l));
  }

  for (const auto& [key, rk] : raw_[kXattrsT].keys) {
    prog_.Add();
    if (!rk.value) continue;
    const std::string why = NamedKeyProblem(key, kXattrNameMax);
    if (!why.empty()) {
      Fix("xattrs: malformed key '" + Printable(key) + "' (" + why + ")", "removed");
      Dirty(kXattrsT, key);
      continue;
    }
    xattrs_.emplace(key, *rk.value);
  }

  for (const auto& [key, rk] : raw_[kOrphansT].keys) {
    prog_.Add();
    if (!rk.value) continue;
    if (key.size() != 8) {
      Fix("orphans: malformed key '" + Printable(key) + "' (not 8 bytes)", "removed");
      Dirty(kOrphansT, key);
      continue;
    }
    if (!rk.value->empty()) {
      Fix("orphan entry of " + Who(GetBE64(key.data())) + " carries a value", "rewritten");
      Dirty(kOrphansT, key);
    }
    orphans_.insert(GetBE64(key.data()));
  }
}

void Pass::EraseInode(uint64_t ino) {
  inodes_.erase(ino);
  Dirty(kInodesT, mvcc::InoKey(ino));
}

void Pass::CheckInodes() {
  prog_.Phase("checking inodes", inodes_.size());
  uint64_t max_ino = 0;
  for (auto it = inodes_.begin(); it != inodes_.end();) {
    prog_.Add();
    const uint64_t ino = it->first;
    Inode& n = it->second;
    if (!ValidType(n.mode)) {
      Fix(Who(ino) + ": invalid file type " + Octal(n.mode & S_IFMT), "inode removed");
      Dirty(kInodesT, mvcc::InoKey(ino));
      it = inodes_.erase(it);
      continue;
    }
    if (S_ISLNK(n.mode)) {
      if (n.target.empty() || n.target.size() > kSymlinkMax) {
        Fix(Who(ino) + ": symlink target of " + Num(n.target.size()) + " bytes is invalid",
            "inode removed");
        Dirty(kInodesT, mvcc::InoKey(ino));
        it = inodes_.erase(it);
        continue;
      }
    } else if (!n.target.empty()) {
      Fix(Who(ino) + ": a " + TypeName(n.mode) + " carries a symlink target", "cleared");
      n.target.clear();
      Dirty(kInodesT, mvcc::InoKey(ino));
    }
    max_ino = std::max(max_ino, ino);
    ++it;
  }
  // Inode numbers are never reused: the counter must be above all of them,
  // or a new file would overwrite an existing inode.
  const uint64_t next = repair_ ? store_->next_ino() : next_ino_;
  if (next <= max_ino) {
    const bool fixable = max_ino + 1 - next <= kMaxInoAdvance;
    Problem("next inode number counter " + Num(next) + " is not above the largest inode number " +
                Num(max_ino),
            fixable ? "raised" : "");
    if (fixable) {
      if (repair_) {
        while (store_->next_ino() <= max_ino) store_->AllocateIno();
        ino_raised_ = true;
      }
      next_ino_ = max_ino + 1;
    }
  }
}

void Pass::CheckRoot() {
  auto r = inodes_.find(kRootIno);
  if (r == inodes_.end()) {
    Fix("root directory (inode 1) is missing or not a directory", "a new one created");
    Inode n;
    n.mode = S_IFDIR | 0755;
    n.nlink = 2;
    n.parent = kRootIno;
    n.atime = n.mtime = n.ctime = n.btime = Now();
    SetInode(kRootIno, n);
  } else if (!r->second.IsDir()) {
    Error("root directory (inode 1) is missing or not a directory: inode 1 is a " +
          std::string(TypeName(r->second.mode)));
    root_ok_ = false;
  }
}

void Pass::CheckDirents() {
  prog_.Phase("checking directory entries", dirents_.size());
  for (auto it = dirents_.begin(); it != dirents_.end();) {
    prog_.Add();
    Dirent& d = it->second;
    const std::string where = Entry(d);
    auto p = inodes_.find(d.parent);
    std::string why;
    if (p == inodes_.end() || !p->second.IsDir()) {
      why = ": parent is not a live directory";
    } else if (!inodes_.count(d.child)) {
      why = ": points to missing inode " + Num(d.child);
    } else if (d.child == kRootIno) {
      why = ": names the root directory";
    }
    if (!why.empty()) {
      Fix(where + why, "entry removed");
      Dirty(kDirentsT, it->first);
      it = dirents_.erase(it);
      continue;
    }
    const uint32_t type = inodes_.at(d.child).mode & S_IFMT;
    if (d.type != type) {
      Fix(where + ": type " + Octal(d.type) + " does not match inode " + Num(d.child) + " (" +
              TypeName(type) + ")",
          "corrected");
      d.type = type;
      Dirty(kDirentsT, it->first);
    }
    ++it;
  }
}

std::unordered_map<uint64_t, std::vector<const Dirent*>> Pass::EntriesByChild() const {
  std::unordered_map<uint64_t, std::vector<const Dirent*>> m;
  for (const auto& [k, d] : dirents_) m[d.child].push_back(&d);
  return m;
}

// A directory has exactly one entry (its parent's); hard links to
// directories would let the tree have cycles and two '..'.
void Pass::CheckDirectoryNames() {
  auto by_child = EntriesByChild();
  for (auto& [child, ds] : by_child) {
    if (ds.size() < 2 || !IsDir(child)) continue;
    const Dirent* keep = ds.front();
    for (const Dirent* d : ds) {
      if (d->parent == inodes_.at(child).parent) {
        keep = d;
        break;
      }
    }
    std::vector<std::string> drop;
    for (const Dirent* d : ds) {
      if (d == keep) continue;
      Fix(Entry(*d) + ": a second entry for directory " + Who(child) + " (kept '" + keep->name +
              "' in directory " + Num(keep->parent) + ")",
          "entry removed");
      drop.push_back(mvcc::NameKey(d->parent, d->name));
    }
    for (const auto& k : drop) EraseDirent(k);
  }
}

void Pass::CheckOrphanList() {
  auto by_child = EntriesByChild();
  for (auto it = orphans_.begin(); it != orphans_.end();) {
    const uint64_t ino = *it;
    std::string why;
    if (!inodes_.count(ino))
      why = "orphan list names missing inode " + Num(ino);
    else if (ino == kRootIno)
      why = "the root directory is on the orphan list";
    else if (by_child.count(ino))
      why = Who(ino) + ": is on the orphan list but still linked";
    if (!why.empty()) {
      Fix(why, "orphan entry removed");
      Dirty(kOrphansT, mvcc::InoKey(ino));
      it = orphans_.erase(it);
      continue;
    }
    ++it;
  }
}

uint64_t Pass::LostFound() {
  if (lost_found_ != 0 || lost_found_failed_) return lost_found_;
  const std::string key = mvcc::NameKey(kRootIno, kLostFound);
  auto it = dirents_.find(key);
  if (it != dirents_.end()) {
    auto n = inodes_.find(it->second.child);
    if (n != inodes_.end() && n->second.IsDir()) return lost_found_ = it->second.child;
    lost_found_failed_ = true;  // "/lost+found" is not a directory: leave it to the user
    return 0;
  }
  if (!root_ok_) {
    lost_found_failed_ = true;
    return 0;
  }
  const uint64_t ino = NewIno();
  Inode n;
  n.mode = S_IFDIR | 0700;
  n.nlink = 2;
  n.parent = kRootIno;
  n.atime = n.mtime = n.ctime = n.btime = Now();
  SetInode(ino, n);
  PutDirent(Dirent{kRootIno, kLostFound, ino, S_IFDIR});
  Inode& root = inodes_.at(kRootIno);
  ++root.nlink;
  root.mtime = root.ctime = n.mtime;
  Dirty(kInodesT, mvcc::InoKey(kRootIno));
  notes.push_back(std::string(repair_ ? "created" : "would create") + " /lost+found (inode " +
                  Num(ino) + ")");
  return lost_found_ = ino;
}

void Pass::Connect(uint64_t ino) {
  const uint64_t lf = lost_found_;
  std::string name = "#" + Num(ino);
  for (int i = 1; dirents_.count(mvcc::NameKey(lf, name)); ++i)
    name = "#" + Num(ino) + "." + Num(i);
  Inode& n = inodes_.at(ino);
  PutDirent(Dirent{lf, name, ino, n.mode & S_IFMT});
  if (n.IsDir()) {
    n.parent = lf;
    Dirty(kInodesT, mvcc::InoKey(ino));
    ++inodes_.at(lf).nlink;
    Dirty(kInodesT, mvcc::InoKey(lf));
  }
  // The message paths name the inode by its new home from now on.
  first_name_[ino] = {lf, name};
  first_name_.try_emplace(lf, kRootIno, kLostFound);
}

// Every directory reachable from the root, without cycles; every other inode
// named by at least one entry, or a pending orphan.
void Pass::CheckTree() {
  if (!root_ok_) return;
  prog_.Phase("checking the directory tree", inodes_.size());
  std::unordered_map<uint64_t, std::vector<uint64_t>> kids;  // directory -> children
  std::unordered_map<uint64_t, uint64_t> dir_parent;         // directory -> the one naming it
  auto rebuild = [&] {
    kids.clear();
    dir_parent.clear();
    for (const auto& [k, d] : dirents_) {
      kids[d.parent].push_back(d.child);
      if (IsDir(d.child)) dir_parent[d.child] = d.parent;
    }
  };
  rebuild();
  std::set<uint64_t> visited;
  auto walk = [&](uint64_t from) {
    std::deque<uint64_t> todo{from};
    visited.insert(from);
    while (!todo.empty()) {
      const uint64_t d = todo.front();
      todo.pop_front();
      prog_.Add();
      auto k = kids.find(d);
      if (k == kids.end()) continue;
      for (uint64_t c : k->second) {
        if (visited.insert(c).second) todo.push_back(c);
      }
    }
  };
  walk(kRootIno);

  // Directories first: connecting one makes its whole subtree reachable.
  std::vector<uint64_t> dirs;
  for (const auto& [ino, n] : inodes_) {
    if (n.IsDir() && !visited.count(ino)) dirs.push_back(ino);
  }
  for (uint64_t d : dirs) {
    if (visited.count(d)) continue;
    const Inode& n = inodes_.at(d);
    if (!dir_parent.count(d) && kids[d].empty() && n.nlink == 0) {
      if (orphans_.count(d)) continue;  // removed while open: pending reclamation
      Fix(Who(d) + ": removed directory not on the orphan list", "added (it is reclaimed)");
      orphans_.insert(d);
      Dirty(kOrphansT, mvcc::InoKey(d));
      continue;
    }
    // Climb to the top of the detached subtree, or around a cycle.
    uint64_t x = d;
    bool cycle = false;
    std::set<uint64_t> chain{d};
    while (true) {
      auto p = dir_parent.find(x);
      if (p == dir_parent.end()) break;
      if (!chain.insert(p->second).second) {
        x = p->second;
        cycle = true;
        break;
      }
      x = p->second;
    }
    const bool fixable = LostFound() != 0;
    if (cycle) {
      const uint64_t parent = dir_parent[x];
      std::string name;
      for (const auto& [k, e] : dirents_) {
        if (e.child == x) name = e.name;
      }
      Problem("directory cycle: " + Who(x) + " is its own ancestor, not reachable from the root",
              fixable ? "its entry '" + name + "' in directory " + Num(parent) +
                            " removed, moved to /lost+found"
                      : "");
      if (!fixable) continue;
      EraseDirent(mvcc::NameKey(parent, name));
    } else {
      Problem(Who(x) + ": directory is not reachable from the root directory (no entry names it)",
              fixable ? "moved to /lost+found" : "");
      if (!fixable) continue;
    }
    if (orphans_.erase(x)) Dirty(kOrphansT, mvcc::InoKey(x));
    Connect(x);
    rebuild();
    if (lost_found_ && !visited.count(lost_found_)) visited.insert(lost_found_);
    walk(x);
  }

  // Then everything else: named by an entry somewhere, or a pending orphan.
  auto by_child = EntriesByChild();
  std::vector<uint64_t> todo;
  for (const auto& [ino, n] : inodes_) {
    if (!n.IsDir() && ino != kRootIno && !by_child.count(ino)) todo.push_back(ino);
  }
  for (uint64_t ino : todo) {
    const Inode& n = inodes_.at(ino);
    const bool orphan = orphans_.count(ino) > 0;
    if (orphan && n.nlink == 0) continue;  // unlinked while open: pending reclamation
    if (n.nlink == 0) {
      Fix(Who(ino) + ": unlinked inode not on the orphan list", "added (it is reclaimed)");
      orphans_.insert(ino);
      Dirty(kOrphansT, mvcc::InoKey(ino));
      continue;
    }
    const bool fixable = LostFound() != 0;
    if (orphan) {
      Problem(Who(ino) + ": on the orphan list with link count " + Num(n.nlink) +
                  " but no entry names it",
              fixable ? "moved to /lost+found" : "");
    } else {
      Problem(Who(ino) + ": not reachable from the root directory (no entry names it)",
              fixable ? "moved to /lost+found" : "");
    }
    if (!fixable) continue;
    if (orphans_.erase(ino)) Dirty(kOrphansT, mvcc::InoKey(ino));
    Connect(ino);
  }
}

// '..' of a directory is its parent field: it must name the directory whose
// entry names it.
void Pass::CheckParents() {
  for (const auto& [k, d] : dirents_) {
    if (!IsDir(d.child)) continue;
    Inode& n = inodes_.at(d.child);
    if (n.parent == d.parent) continue;
    Fix(Who(d.child) + ": '..' says " + Num(n.parent) + " but it lives in " + Num(d.parent) + "",
        "corrected");
    n.parent = d.parent;
    Dirty(kInodesT, mvcc::InoKey(d.child));
  }
  auto r = inodes_.find(kRootIno);
  if (r != inodes_.end() && r->second.IsDir() && r->second.parent != kRootIno) {
    Fix("root directory: '..' says " + Num(r->second.parent) + " instead of 1", "corrected");
    r->second.parent = kRootIno;
    Dirty(kInodesT, mvcc::InoKey(kRootIno));
  }
}

void Pass::CheckLinkCounts() {
  std::unordered_map<uint64_t, uint64_t> entries, subdirs;
  for (const auto& [k, d] : dirents_) {
    ++entries[d.child];
    if (IsDir(d.child)) ++subdirs[d.parent];
  }
  for (auto& [ino, n] : inodes_) {
    uint64_t want;
    if (orphans_.count(ino) && !entries.count(ino))
      want = 0;  // pending orphan
    else if (n.IsDir())
      want = 2 + subdirs[ino];
    else
      want = entries[ino];
    if (n.nlink == want) continue;
    Fix(Who(ino) + ": " + (n.IsDir() ? "directory link count " : "link count ") + Num(n.nlink) +
            ", expected " + Num(want),
        "corrected");
    n.nlink = want;
    Dirty(kInodesT, mvcc::InoKey(ino));
  }
}

bool Pass::BytesAreZeros(uint32_t seg, uint64_t off, uint32_t len) {
  if (source_) {
    std::string buf(len, '\0');
    mvcc::DataRef ref{seg, off, len};
    return source_->ReadData(ref, 0, len, buf.data()).ok() &&
           buf.find_first_not_of('\0') == std::string::npos;
  }
  auto f = wal::DefaultFileSystem()->Open(wal::SegmentPath(dir_ + "/wal", seg),
                                          wal::FileSystem::kReadOnly);
  if (!f.ok()) return false;
  std::string buf(std::min<uint32_t>(len, 1 << 20), '\0');
  for (uint32_t done = 0; done < len;) {
    const size_t n = std::min<size_t>(buf.size(), len - done);
    size_t got = 0;
    if (!(*f)->PRead(off + done, buf.data(), n, &got).ok() || got != n) return false;
    if (buf.find_first_not_of('\0', 0) < n) return false;
    done += static_cast<uint32_t>(n);
  }
  return true;
}

// File data: each chunk's slices are sorted, non-overlapping, inside the
// chunk and the file size (or zeros past it: a reservation), and point into
// a DATA record of the WAL (whose
// CRC matches, in a full check). alloc_bytes is the sum of the slices.
void Pass::CheckExtents() {
  prog_.Phase("checking file data", extents_.size());
  std::unordered_map<uint64_t, uint64_t> alloc;
  for (auto it = extents_.begin(); it != extents_.end();) {
    prog_.Add();
    const uint64_t ino = GetBE64(it->first.data());
    const uint64_t chunk = GetBE64(it->first.data() + 8);
    const std::string where = Who(ino) + " chunk " + Num(chunk);
    auto n = inodes_.find(ino);
    std::string why;
    if (n == inodes_.end())
      why = "data of missing inode " + Num(ino) + " (chunk " + Num(chunk) + ")";
    else if (!n->second.IsReg())
      why = where + ": a " + std::string(TypeName(n->second.mode)) + " has file data";
    else if (it->second.empty())
      why = where + ": empty slice list";
    if (!why.empty()) {
      Fix(why, "removed");
      Dirty(kExtentsT, it->first);
      it = extents_.erase(it);
      continue;
    }
    const uint64_t size = n->second.size;
    SliceList l = it->second;
    if (!std::is_sorted(l.begin(), l.end(),
                        [](const Slice& a, const Slice& b) { return a.off < b.off; })) {
      Fix(where + ": slices are not sorted", "sorted");
      std::stable_sort(l.begin(), l.end(),
                       [](const Slice& a, const Slice& b) { return a.off < b.off; });
    }
    const bool chunk_ok = chunk < kMaxFileSize / chunk_;
    const uint64_t base = chunk_ok ? chunk * chunk_ : kMaxFileSize;
    SliceList out;
    uint32_t prev_end = 0;
    for (Slice s : l) {
      auto range = [&] {
        return "bytes [" + Num(base + s.off) + ", " + Num(base + s.off + s.len) + ")";
      };
      if (s.len == 0) {
        Fix(where + ": empty slice", "removed");
        continue;
      }
      if (uint64_t{s.off} + s.len > chunk_) {
        Fix(where + ": slice at offset " + Num(s.off) + " of " + Num(s.len) +
                " bytes runs past the chunk size " + Num(chunk_),
            "removed");
        continue;
      }
      if (s.off < prev_end) {
        const uint32_t cut = prev_end - s.off;
        if (cut >= s.len) {
          Fix(where + ": " + range() + " are covered by an earlier slice", "removed");
          continue;
        }
        Fix(where + ": " + range() + " overlap an earlier slice", "trimmed");
        s.off += cut;
        s.data += cut;
        s.len -= cut;
      }
      const WalRec* bad = nullptr;
      std::string ref = source_ ? StoreRef(s) : wal.CheckRef(s.segment, s.data, s.len, &bad);
      if (!ref.empty()) {
        if (bad) referenced_bad_.insert({s.segment, bad->off});
        Fix(where + ": " + range() + " point to " + ref, "removed (they read as zeros)");
        continue;
      }
      // Zeros past the file size are a reservation (fallocate KEEP_SIZE,
      // like ext4's blocks past EOF): legal. Other bytes there are not.
      if (base + s.end() > size) {
        const uint64_t keep = base + s.off >= size ? 0 : size - base - s.off;
        if (!BytesAreZeros(s.segment, s.data + keep, s.len - static_cast<uint32_t>(keep))) {
          if (keep == 0) {
            Fix(where + ": " + range() + " lie beyond the file size " + Num(size), "removed");
            continue;
          }
          Fix(where + ": " + range() + " run past the file size " + Num(size), "trimmed");
          s.len = static_cast<uint32_t>(keep);
        }
      }
      out.push_back(s);
      prev_end = s.end();
    }
    const bool changed =
        out.size() != it->second.size() ||
        !std::equal(out.begin(), out.end(), it->second.begin(), [](const Slice& a, const Slice& b) {
          return a.off == b.off && a.len == b.len && a.segment == b.segment && a.data == b.data;
        });
    for (const Slice& s : out) alloc[ino] += s.len;
    if (changed) Dirty(kExtentsT, it->first);
    if (out.empty()) {
      it = extents_.erase(it);
      continue;
    }
    it->second = std::move(out);
    ++it;
  }
  for (auto& [ino, n] : inodes_) {
    const uint64_t want = alloc.count(ino) ? alloc[ino] : 0;
    if (n.alloc == want) continue;
    Fix(Who(ino) + ": space accounting says " + Num(n.alloc) + " bytes of data, its slices hold " +
            Num(want),
        "corrected");
    n.alloc = want;
    Dirty(kInodesT, mvcc::InoKey(ino));
  }
  live_bytes = 0;
  for (const auto& [ino, bytes] : alloc) live_bytes += bytes;
}

void Pass::CheckXattrs() {
  for (auto it = xattrs_.begin(); it != xattrs_.end();) {
    const uint64_t ino = GetBE64(it->first.data());
    const std::string name = it->first.substr(8, it->first.size() - 9);
    std::string why;
    if (!inodes_.count(ino))
      why = "xattr '" + name + "' of missing inode " + Num(ino);
    else if (it->second.size() > kXattrValueMax)
      why = Who(ino) + ": xattr '" + name + "' value of " + Num(it->second.size()) +
            " bytes exceeds 64 KiB";
    if (!why.empty()) {
      Fix(why, "removed");
      Dirty(kXattrsT, it->first);
      it = xattrs_.erase(it);
      continue;
    }
    ++it;
  }
}

// Unlinked inodes nobody can reference any more (nothing is mounted):
// what the mount would reclaim. Not an error.
void Pass::ReclaimOrphans() {
  std::vector<uint64_t> pending;
  for (uint64_t ino : orphans_) {
    auto n = inodes_.find(ino);
    if (n != inodes_.end() && n->second.nlink == 0) pending.push_back(ino);
  }
  if (pending.empty()) return;
  housekeeping = true;
  if (!repair_) {
    notes.push_back(Num(pending.size()) +
                    " unlinked inodes are pending reclamation (done at mount, or by fsck.dbfs -y)");
    return;
  }
  for (uint64_t ino : pending) {
    EraseInode(ino);
    orphans_.erase(ino);
    Dirty(kOrphansT, mvcc::InoKey(ino));
    const std::string lo = mvcc::InoPrefixBegin(ino), hi = mvcc::InoPrefixEnd(ino);
    for (auto it = extents_.lower_bound(lo); it != extents_.end() && it->first < hi;) {
      Dirty(kExtentsT, it->first);
      it = extents_.erase(it);
    }
    for (auto it = xattrs_.lower_bound(lo); it != xattrs_.end() && it->first < hi;) {
      Dirty(kXattrsT, it->first);
      it = xattrs_.erase(it);
    }
  }
  notes.push_back("reclaimed " + Num(pending.size()) + " unlinked inodes");
}

// Commits the repaired state of every dirty key as one transaction.
void Pass::Commit() {
  if (!store_) return;
  prog_.Phase("committing repairs", dirty_.size());
  Csn target = 0;
  for (const auto& [t, key] : dirty_) {
    auto it = raw_[t].keys.find(key);
    if (it != raw_[t].keys.end()) target = std::max(target, it->second.future);
  }
  std::vector<mvcc::Write> writes;
  for (const auto& [t, key] : dirty_) {
    mvcc::Write w{static_cast<Table>(t), key, std::nullopt};
    switch (t) {
      case kInodesT:
        if (key.size() == 8) {
          auto n = inodes_.find(GetBE64(key.data()));
          if (n != inodes_.end()) w.value = EncodeInode(n->second);
        }
        break;
      case kDirentsT: {
        auto d = dirents_.find(key);
        if (d != dirents_.end()) w.value = EncodeDirent(d->second.child, d->second.type);
        break;
      }
      case kExtentsT: {
        auto e = extents_.find(key);
        if (e != extents_.end() && !e->second.empty()) w.value = EncodeSlices(e->second);
        break;
      }
      case kXattrsT: {
        auto x = xattrs_.find(key);
        if (x != xattrs_.end()) w.value = x->second;
        break;
      }
      case kOrphansT:
        if (key.size() == 8 && orphans_.count(GetBE64(key.data()))) w.value = std::string();
        break;
    }
    writes.push_back(std::move(w));
  }
  Status st;
  // The meta counters are written by the flush of a commit (even an empty
  // one): a missing counter or a raised next inode number needs one.
  if (!writes.empty() || meta_missing_ || ino_raised_) {
    // A stored version above the CSN would still win over the repair: let the
    // CSN pass it first (empty commits), so the repair supersedes it and the
    // flush's GC drops it.
    while (st.ok() && store_->visible_csn() < target) st = store_->Commit({}, false).status();
    if (st.ok()) st = store_->Commit(std::move(writes), /*durable=*/true).status();
    if (st.ok()) committed = true;
  }
  // Flush so LMDB holds the repair and GC drops the superseded versions.
  if (st.ok()) st = store_->Flush();
  Status closed = store_->Close();
  if (st.ok()) st = closed;
  store_.reset();
  if (!st.ok()) operational = "committing the repairs failed: " + st.ToString();
}

void Pass::Run() {
  // 1. LMDB, raw.
  if (!ScanLmdb()) return;
  // 2. Pending commits, as recovery replays them.
  Replay();
  full = opts_.force || !clean;
  // 3. WAL records.
  if (!IndexWal()) return;
  // 4. Superblock: repairable when the WAL segment headers confirm its uuid.
  if (sbs_.crc_bad) {
    size_t confirmed = 0, contradicted = 0;
    for (const auto& [num, seg] : wal.segs) {
      if (!seg.header_ok) continue;
      (seg.uuid == sbs_.sb.uuid ? confirmed : contradicted)++;
    }
    const bool fixable = confirmed > 0 && contradicted == 0;
    Problem(std::string("superblock checksum mismatch (its fields are consistent") +
                (fixable ? " and the WAL confirms its uuid)"
                         : ", but the WAL does not confirm its uuid)"),
            fixable ? "rewritten" : "");
    if (repair_) {
      if (!fixable) {
        blocked = "the superblock cannot be repaired, so the volume cannot be opened";
        return;
      }
      Status st = WriteSuperblock(dir_, sbs_.sb);
      if (!st.ok()) {
        operational = "rewriting the superblock failed: " + st.ToString();
        return;
      }
      superblock_written = true;
    }
  }
  // 5. The model. Checking (let alone repairing) the namespace with a table
  //    missing from it would condemn everything that table names.
  for (int t = 0; t < mvcc::kNumTables; ++t) {
    if (raw_[t].readable) continue;
    if (repair_) {
      blocked = std::string("LMDB table '") + mvcc::kTableNames[t] +
                "' cannot be read; repairing on partial information could destroy data";
    } else {
      Error(std::string("the namespace and file data were not checked: LMDB table '") +
            mvcc::kTableNames[t] + "' cannot be read");
    }
    return;
  }
  if (repair_ && !OpenStore()) return;
  RunChecks();
  WalChecks();
  ReclaimOrphans();
  if (repair_) {
    Commit();
    repaired = operational.empty();
  }
}

std::string Pass::StoreRef(const Slice& s) {
  std::string buf(s.len, '\0');
  Status st = source_->ReadData(mvcc::DataRef{s.segment, s.data, s.len}, 0, s.len, buf.data());
  if (st.ok()) return "";
  return "data that cannot be read (segment " + Num(s.segment) + " offset " + Num(s.data) + ": " +
         st.ToString() + ")";
}

void Pass::RunOnStore(mvcc::Store* store, Csn snap) {
  source_ = store;
  source_snap_ = snap;
  full = clean = true;
  prog_.Phase("reading the tables");
  for (int t = 0; t < mvcc::kNumTables; ++t) {
    Status st = store->Scan(snap, static_cast<Table>(t), "", "",
                            [&](std::string_view k, std::string_view v) {
                              raw_[t].keys[std::string(k)].value = std::string(v);
                              ++versions;
                              return true;
                            });
    if (!st.ok()) {
      operational = std::string("reading table '") + mvcc::kTableNames[t] + "': " + st.ToString();
      return;
    }
    raw_[t].readable = true;
  }
  visible_csn_ = snap;
  next_ino_ = store->next_ino();  // read after the snapshot: above all of its inodes
  RunChecks();
  ReclaimOrphans();
}

void Pass::RunChecks() {
  DecodeModel();
  CheckInodes();
  CheckRoot();
  CheckDirents();
  CheckDirectoryNames();
  CheckOrphanList();
  CheckTree();
  CheckParents();
  CheckLinkCounts();
  CheckExtents();
  CheckXattrs();
}

bool HasFixable(const Pass& p) {
  for (const auto& e : p.errors) {
    if (e.fixable) return true;
  }
  return false;
}

void AppendNew(std::vector<std::string>* to, const std::vector<std::string>& from) {
  for (const auto& s : from) {
    if (std::find(to->begin(), to->end(), s) == to->end()) to->push_back(s);
  }
}

}  // namespace

namespace {

// The model's sizes into the report.
void CopyCounts(const Pass& p, FsckReport* rep) {
  rep->inodes = p.inode_count();
  rep->dirents = p.dirent_count();
  rep->extents = p.extent_count();
  rep->xattrs = p.xattr_count();
  rep->orphans = p.orphan_count();
  rep->live_bytes = p.live_bytes;
}

// A cluster volume (docs/cluster.md): checked at one snapshot revision of a
// read-only store, also while mounts are live (the store's session keeps
// that revision from being compacted).
FsckReport FsckClusterVolume(const std::string& spec, const FsckOptions& options) {
  FsckReport rep;
  Progress prog(options.progress);
  auto fail = [&](int code, std::string msg) {
    rep.errors.push_back(std::move(msg));
    rep.exit_code = code;
    return rep;
  };
  if (options.repair) {
    return fail(kFsckOperational, spec + ": repairing (-y) a cluster volume is not supported yet; "
                                         "fsck.dbfs -n checks it");
  }
  prog.Phase("opening the cluster volume");
  mvcc::OpenVolumeOptions o;
  o.local.read_only = true;
  auto store = mvcc::OpenVolume(spec, o);
  if (!store.ok()) {
    return fail(store.status().code() == Code::kCorruption ? kFsckUncorrected : kFsckOperational,
                store.status().ToString());
  }
  SuperblockState sbs;
  sbs.sb.uuid = (*store)->info().uuid;
  sbs.sb.chunk_size = (*store)->info().chunk_size;
  mvcc::Snapshot snap = (*store)->AcquireSnapshot();
  Pass p(spec, sbs, options, false, prog);
  p.RunOnStore(store->get(), snap.csn());
  prog.Phase("done");
  for (const auto& e : p.errors) rep.errors.push_back(e.msg);
  rep.warnings = p.warnings;
  rep.notes = p.notes;
  rep.notes.push_back("checked the state at revision " + Num(snap.csn()));
  rep.full_check = rep.was_clean = true;
  CopyCounts(p, &rep);
  if (!p.operational.empty()) return fail(kFsckOperational, p.operational);
  rep.exit_code = rep.errors.empty() ? kFsckClean : kFsckUncorrected;
  return rep;
}

}  // namespace

FsckReport Fsck(const std::string& volume_dir, const FsckOptions& options) {
  if (mvcc::IsClusterVolume(volume_dir)) return FsckClusterVolume(volume_dir, options);
  FsckReport rep;
  Progress prog(options.progress);
  auto fail = [&](int code, std::string msg) {
    rep.errors.push_back(std::move(msg));
    rep.exit_code = code;
    return rep;
  };

  prog.Phase("reading the superblock");
  auto sbs = LoadSuperblock(volume_dir);
  if (!sbs.ok()) {
    // Damage beyond the CRC (impossible geometry) is the volume's fault;
    // anything else means this is not a volume we can check.
    return fail(sbs.status().code() == Code::kCorruption ? kFsckUncorrected : kFsckOperational,
                sbs.status().ToString());
  }

  // A mounted volume is in flux; checking it would report false damage, and
  // repairing it would corrupt it.
  if (VolumeLock::IsMounted(volume_dir)) {
    return fail(kFsckOperational, volume_dir +
                                      " is mounted; unmount it first (fsck.dbfs never checks or "
                                      "repairs a mounted volume)");
  }
  auto lock = VolumeLock::AcquireWhenUnmounted(volume_dir, "fsck.dbfs");
  if (!lock.ok()) return fail(kFsckOperational, lock.status().ToString());

  auto last = std::make_unique<Pass>(volume_dir, *sbs, options, false, prog);
  last->Run();
  rep.was_clean = last->clean;
  rep.full_check = last->full;
  std::vector<std::string> notes = last->notes;
  std::string blocked;
  if (options.repair && last->operational.empty() && (HasFixable(*last) || last->housekeeping)) {
    notes.clear();
    SuperblockState current = *sbs;
    for (int round = 0; round < kMaxRepairRounds; ++round) {
      Pass fix(volume_dir, current, options, true, prog);
      fix.Run();
      AppendNew(&notes, fix.notes);
      if (!fix.operational.empty()) {
        last->operational = fix.operational;
        break;
      }
      if (!fix.repaired) {
        blocked = fix.blocked;
        break;
      }
      for (const auto& e : fix.errors) {
        if (e.fixable) rep.fixed.push_back(e.msg);
      }
      if (fix.superblock_written) {
        auto reread = LoadSuperblock(volume_dir);
        if (reread.ok()) current = *reread;
      }
      auto recheck = std::make_unique<Pass>(volume_dir, current, options, false, prog);
      recheck->Run();
      last = std::move(recheck);
      AppendNew(&notes, last->notes);
      // Another round only if this one changed something and left fixable
      // problems behind (a repair may uncover what damage hid).
      if (!last->operational.empty() || !HasFixable(*last)) break;
      if (!fix.committed && !fix.superblock_written) break;
    }
  }
  prog.Phase("done");

  Pass& p = *last;
  for (const auto& e : p.errors) rep.errors.push_back(e.msg);
  if (!blocked.empty()) rep.errors.push_back("cannot repair: " + blocked);
  rep.warnings = p.warnings;
  rep.notes = std::move(notes);
  CopyCounts(p, &rep);
  rep.lmdb_versions = p.versions;
  rep.wal_segments = p.wal.segs.size();
  rep.wal_records = p.wal.records;
  rep.wal_bytes = p.wal.bytes;
  rep.commits_replayed = p.replayed;
  if (!p.operational.empty()) {
    rep.errors.push_back(p.operational);
    rep.exit_code = kFsckOperational;
    return rep;
  }
  {
    // History (tools/lib/fsck_history.h): reported, never repaired.
    HistoryFindings h = CheckHistory(volume_dir);
    for (auto& e : h.errors) rep.errors.push_back(std::move(e));
    for (auto& n : h.notes) rep.notes.push_back(std::move(n));
  }
  rep.exit_code = (rep.errors.empty() ? kFsckClean : kFsckUncorrected) |
                  (rep.fixed.empty() ? 0 : kFsckCorrected);
  return rep;
}

FsckCommandLine ParseFsckCommandLine(int argc, const char* const* argv) {
  FsckCommandLine cl;
  CLI::App app{
      "fsck.dbfs: check and repair a DBFS volume (it must not be mounted).\n"
      "Exit status (fsck(8)): 0 clean, 1 errors corrected, 4 errors left "
      "uncorrected, 8 operational error, 16 usage error.",
      "fsck.dbfs"};
  bool no = false, yes = false;
  app.add_option("VOLUME", cl.volume, "volume directory")->required();
  app.add_flag("-n", no, "check only, never write to the volume (the default)");
  app.add_flag("-y", yes, "repair every problem that can be repaired, then check again");
  // fsck(8) -A and boot scripts pass -a or -p ("repair what is safe").
  app.add_flag("-p,-a", yes, "the same as -y (what fsck(8) passes for automatic repair)");
  app.add_flag("-f", cl.options.force,
               "full check even of a clean volume (verify the CRC of every WAL record)");
  app.add_flag("-v", cl.options.verbose, "print notes and statistics");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    cl.exit_code = 0;
    cl.message = app.help();
    return cl;
  } catch (const CLI::ParseError& e) {
    cl.exit_code = kFsckUsage;
    cl.message = std::string(e.what()) + "\nRun with --help for more information.";
    return cl;
  }
  if (no && yes) {
    cl.exit_code = kFsckUsage;
    cl.message = "-n and -y exclude each other";
    return cl;
  }
  cl.options.repair = yes;
  return cl;
}

}  // namespace dbfs
