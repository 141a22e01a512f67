// History: named snapshots, points in history (times, CSNs), and the
// read-only views of old states under MNT/.dbfs (docs/ARCHITECTURE.md §11):
//
//   .dbfs/                    not listed by readdir of the root; lookups work
//   .dbfs/snapshots/NAME/...  the volume as snapshot NAME pinned it
//   .dbfs/at/POINT/...        the volume at a time or CSN of the retention window
//
// A view's inode number is bit 63 | view id << 40 | live inode number, so it
// never collides with a live inode (those stay below 2^40) and is stable while
// mounted (view ids are handed out once per view name). Every request in a
// view reads through a Transaction at the view's CSN, so old file data takes
// the normal read path; a state no longer kept reads as ENOENT.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "fs/engine.h"
#include "fs/slices.h"

namespace dbfs {

namespace {

constexpr uint64_t kHistoryBit = uint64_t{1} << 63;
constexpr int kLiveBits = 40;
constexpr uint64_t kLiveMask = (uint64_t{1} << kLiveBits) - 1;
constexpr uint64_t kMaxViews = (uint64_t{1} << (63 - kLiveBits)) - 1;
// View 0 holds the directories of .dbfs itself.
constexpr uint64_t kDotDbfs = 1, kSnapshotsDir = 2, kAtDir = 3;
constexpr std::string_view kDotDbfsName = ".dbfs";

uint64_t HIno(uint64_t view, uint64_t live) { return kHistoryBit | (view << kLiveBits) | live; }
uint64_t ViewId(uint64_t ino) { return (ino & ~kHistoryBit) >> kLiveBits; }
uint64_t LiveIno(uint64_t ino) { return ino & kLiveMask; }

Status ReadOnlyView() { return Status(Code::kErrno, "history views are read-only", EROFS); }

timespec MountTime() {
  static const timespec t = Now();
  return t;
}

Attr ControlDirAttr(uint64_t which) {
  Attr a;
  a.ino = HIno(0, which);
  a.mode = S_IFDIR | 0555;
  a.nlink = 2;
  a.atime = a.mtime = a.ctime = a.btime = MountTime();
  a.immutable = which == kDotDbfs;
  return a;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Parses "2025-01-31", "2025-01-31T12:34[:56[.frac]]" (also with a space for
// the T) with an optional "Z" or "+hh:mm"/"-hhmm". *time_ns: nanoseconds
// since the epoch (local time when no zone is given).
bool ParseIsoTime(std::string_view s, uint64_t* time_ns) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  uint64_t frac = 0;
  size_t pos = 0;
  auto num = [&](int digits, int* out) {
    if (pos + digits > s.size()) return false;
    int v = 0;
    for (int i = 0; i < digits; ++i) {
      const char ch = s[pos + i];
      if (ch < '0' || ch > '9') return false;
      v = v * 10 + (ch - '0');
    }
    *out = v;
    pos += digits;
    return true;
  };
  auto lit = [&](char ch) {
    if (pos < s.size() && s[pos] == ch) {
      ++pos;
      return true;
    }
    return false;
  };
  if (!num(4, &y) || !lit('-') || !num(2, &mo) || !lit('-') || !num(2, &d)) return false;
  if (pos < s.size()) {
    if (!lit('T') && !lit(' ') && !lit('t')) return false;
    if (!num(2, &h) || !lit(':') || !num(2, &mi)) return false;
    if (lit(':')) {
      if (!num(2, &sec)) return false;
      if (lit('.') || lit(',')) {
        int digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (digits < 9) frac = frac * 10 + (s[pos] - '0');
          ++digits;
          ++pos;
        }
        if (digits == 0) return false;
        for (; digits < 9; ++digits) frac *= 10;
      }
    }
  }
  bool zone = false;
  int64_t offset_s = 0;
  if (lit('Z') || lit('z')) {
    zone = true;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh = 0, om = 0;
    if (!num(2, &oh)) return false;
    lit(':');
    if (!num(2, &om)) return false;
    zone = true;
    offset_s = sign * (oh * 3600 + om * 60);
  }
  if (pos != s.size()) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  tm.tm_isdst = -1;
  const time_t t = zone ? timegm(&tm) - offset_s : mktime(&tm);
  if (t < 0) return false;
  *time_ns = static_cast<uint64_t>(t) * 1000000000ull + frac;
  return true;
}

// "@SECONDS[.frac]"
bool ParseEpoch(std::string_view s, uint64_t* time_ns) {
  if (s.size() < 2 || s[0] != '@') return false;
  s.remove_prefix(1);
  const size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  if (!AllDigits(whole) || whole.size() > 11) return false;
  uint64_t ns = std::stoull(std::string(whole)) * 1000000000ull;
  if (dot != std::string_view::npos) {
    std::string_view f = s.substr(dot + 1);
    if (!AllDigits(f)) return false;
    uint64_t frac = 0;
    int digits = 0;
    for (char ch : f) {
      if (digits++ < 9) frac = frac * 10 + (ch - '0');
    }
    for (; digits < 9; ++digits) frac *= 10;
    ns += frac;
  }
  *time_ns = ns;
  return true;
}

enum class PointKind { kNow, kCsn, kTime, kName };
PointKind ClassifyPoint(std::string_view p, uint64_t* value) {
  if (p == "now") return PointKind::kNow;
  if (AllDigits(p) && p.size() <= 19) {
    *value = std::stoull(std::string(p));
    return PointKind::kCsn;
  }
  if (ParseEpoch(p, value) || ParseIsoTime(p, value)) return PointKind::kTime;
  return PointKind::kName;
}

}  // namespace

bool ParsePointTime(std::string_view point, uint64_t* time_ns) {
  return ParseEpoch(point, time_ns) || ParseIsoTime(point, time_ns);
}

// ---- points in history ----

Result<std::unique_ptr<Transaction>> Engine::ReadAt(mvcc::Csn csn) {
  DBFS_ASSIGN_OR_RETURN(mvcc::Snapshot snap, store_->AcquireSnapshotAt(csn));
  return std::make_unique<Transaction>(store_.get(), std::move(snap));
}

Result<uint64_t> Engine::ResolvePoint(std::string_view point) {
  uint64_t v = 0;
  switch (ClassifyPoint(point, &v)) {
    case PointKind::kNow:
      return store_->visible_csn();
    case PointKind::kCsn: {
      const mvcc::Retention r = store_->retention();
      if (!r.Keeps(v, store_->visible_csn())) {
        return Status::NotFound(fmt::format(
            "the state at csn {} is not kept (history keeps csn {} to {} and the snapshots)", v,
            r.horizon, store_->visible_csn()));
      }
      return v;
    }
    case PointKind::kTime:
      return store_->CsnAt(v);
    case PointKind::kName: {
      DBFS_ASSIGN_OR_RETURN(auto snaps, store_->ListSnapshots());
      for (const auto& s : snaps) {
        if (s.name == point) return s.csn;
      }
      return Status::NotFound("'" + std::string(point) +
                              "' is no snapshot, CSN, time (ISO-8601, @SECONDS) or 'now'");
    }
  }
  return Status::Invalid("bad point");
}

Result<uint64_t> Engine::ResolvePath(Transaction& t, std::string_view path) {
  uint64_t ino = kRootIno;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
      ino = n.parent ? n.parent : kRootIno;
      continue;
    }
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(t, ino, part));
    if (!de) return Status::NotFound("no such file or directory: " + std::string(part));
    ino = de->first;
  }
  return ino;
}

// ---- named snapshots ----

Result<SnapshotInfo> Engine::CreateSnapshot(const Caller& c, const std::string& name) {
  if (c.uid != 0) return Status(Code::kPermission, "only root may create snapshots");
  uint64_t v;
  if (name.empty() || name.size() > kNameMax || name[0] == '.' || name[0] == '@' ||
      name.find_first_of(std::string_view(":/\0 \t\n", 6)) != std::string::npos ||
      ClassifyPoint(name, &v) != PointKind::kName) {
    return Status::Invalid(
        "a snapshot name has 1 to 255 characters, does not start with '.' or '@', has no "
        "'/', ':' or spaces, and is not 'now', a number or a time");
  }
  mvcc::CommitMeta who;
  who.uid = c.uid;
  who.pid = c.pid;
  if (namer_ && c.pid > 0) who.comm = namer_(c.pid);
  DBFS_ASSIGN_OR_RETURN(mvcc::NamedSnapshot s, store_->CreateSnapshot(name, who));
  spdlog::info("snapshot '{}' created at csn {}", s.name, s.csn);
  return SnapshotInfo{s.name, s.csn, s.time_ns, s.uid, 0, 0};
}

Status Engine::DeleteSnapshot(const Caller& c, const std::string& name) {
  if (c.uid != 0) return Status(Code::kPermission, "only root may delete snapshots");
  DBFS_RETURN_IF_ERROR(store_->DeleteSnapshot(name));
  spdlog::info("snapshot '{}' deleted", name);
  Filesystem::EntryInvalidator inval;
  {
    std::lock_guard g(hot_mu_);
    inval = invalidate_entry_;
  }
  if (inval) inval({{HIno(0, kSnapshotsDir), name}});
  return Status::Ok();
}

Result<std::vector<SnapshotInfo>> Engine::ListSnapshots(bool with_space) {
  DBFS_ASSIGN_OR_RETURN(auto snaps, store_->ListSnapshots());
  std::vector<SnapshotInfo> out;
  for (const auto& s : snaps) out.push_back(SnapshotInfo{s.name, s.csn, s.time_ns, s.uid, 0, 0});
  mvcc::SegmentedData* data = store_->segmented_data();
  if (!with_space || out.empty() || data == nullptr) return out;
  // USED: slices only one snapshot's state refers to (no other snapshot, not
  // the window, not the current state); REFER: every slice its state refers to.
  const mvcc::Retention ret = store_->retention();
  using SliceId = std::tuple<uint32_t, uint64_t, uint32_t>;
  DBFS_RETURN_IF_ERROR(data->ForEachKey(
      Table::kExtents, [&](std::string_view, const std::vector<mvcc::Version>& versions) -> Status {
        // Holder of each slice: the snapshot index holding it alone, -1 for
        // several (or the window / current state).
        std::map<SliceId, std::pair<int, uint32_t>> holder;
        for (size_t i = 0; i < versions.size(); ++i) {
          if (!versions[i].value) continue;
          const mvcc::Csn a = versions[i].csn;
          const mvcc::Csn b = i + 1 < versions.size() ? versions[i + 1].csn : mvcc::kMaxCsn;
          std::vector<int> holders;
          for (size_t k = 0; k < out.size(); ++k) {
            if (out[k].csn >= a && out[k].csn < b) holders.push_back(static_cast<int>(k));
          }
          const bool live = b > ret.horizon;
          if (holders.empty() && !live) continue;
          DBFS_ASSIGN_OR_RETURN(SliceList l, DecodeSlices(*versions[i].value));
          for (const Slice& s : l) {
            for (int k : holders) out[k].refer_bytes += s.len;
            const SliceId id{s.segment, s.data, s.len};
            const int h = !live && holders.size() == 1 ? holders[0] : -1;
            auto [it, fresh] = holder.emplace(id, std::make_pair(h, s.len));
            if (!fresh && it->second.first != h) it->second.first = -1;
          }
        }
        for (const auto& [id, h] : holder) {
          if (h.first >= 0) out[h.first].used_bytes += h.second;
        }
        return Status::Ok();
      }));
  return out;
}

// ---- the views under .dbfs ----

Result<uint64_t> Engine::ViewFor(std::string key, const View& v) {
  std::lock_guard g(views_mu_);
  auto it = view_ids_.find(key);
  if (it != view_ids_.end()) return it->second;
  if (views_.size() >= kMaxViews) return Status(Code::kNoSpace, "too many history views");
  views_.push_back(v);
  const uint64_t id = views_.size();
  view_ids_.emplace(std::move(key), id);
  return id;
}

Result<Engine::View> Engine::ViewOf(uint64_t ino) {
  const uint64_t id = ViewId(ino);
  std::lock_guard g(views_mu_);
  if (id == 0 || id > views_.size()) return Status::NotFound("no such history view");
  return views_[id - 1];
}

Result<Attr> Engine::ViewAttr(uint64_t view, Transaction& t, uint64_t live) {
  if (live > kLiveMask) return Status(Code::kErrno, "inode number too large for a view", EOVERFLOW);
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, live));
  Attr a = ToAttr(HIno(view, live), n);
  a.immutable = true;
  return a;
}

Result<Attr> Engine::HLookup(const Caller& c, uint64_t parent, std::string_view name) {
  (void)c;
  if (parent == kRootIno && name == kDotDbfsName) return ControlDirAttr(kDotDbfs);
  const uint64_t view = ViewId(parent), live = LiveIno(parent);
  if (view == 0) {
    if (name == ".") return ControlDirAttr(live);
    if (live == kDotDbfs) {
      if (name == "snapshots") return ControlDirAttr(kSnapshotsDir);
      if (name == "at") return ControlDirAttr(kAtDir);
      return Status::NotFound("no such entry in .dbfs");
    }
    if (name == "..") return ControlDirAttr(kDotDbfs);
    View v;
    v.name = std::string(name);
    std::string key;
    if (live == kSnapshotsDir) {
      DBFS_ASSIGN_OR_RETURN(auto snaps, store_->ListSnapshots());
      auto it = std::find_if(snaps.begin(), snaps.end(),
                             [&](const mvcc::NamedSnapshot& s) { return s.name == name; });
      if (it == snaps.end()) return Status::NotFound("no snapshot '" + std::string(name) + "'");
      v.csn = it->csn;
      v.snapshot = true;
      key = fmt::format("s:{}:{}", name, v.csn);
    } else if (live == kAtDir) {
      uint64_t value;
      if (ClassifyPoint(name, &value) == PointKind::kName) {
        return Status::NotFound("not a time or CSN: " + std::string(name));
      }
      DBFS_ASSIGN_OR_RETURN(v.csn, ResolvePoint(name));
      key = name == "now" ? fmt::format("a:now:{}", v.csn) : "a:" + std::string(name);
    } else {
      return Status::NotFound("no such entry");
    }
    DBFS_ASSIGN_OR_RETURN(uint64_t id, ViewFor(std::move(key), v));
    DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
    DBFS_ASSIGN_OR_RETURN(Attr a, ViewAttr(id, *t, kRootIno));
    a.immutable = v.snapshot;  // at/now names a new state each time
    return a;
  }
  DBFS_ASSIGN_OR_RETURN(View v, ViewOf(parent));
  DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
  uint64_t child;
  if (name == ".") {
    child = live;
  } else if (name == "..") {
    if (live == kRootIno) return ControlDirAttr(v.snapshot ? kSnapshotsDir : kAtDir);
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(*t, live));
    child = n.parent ? n.parent : kRootIno;
  } else {
    DBFS_ASSIGN_OR_RETURN(auto de, LoadDirent(*t, live, name));
    if (!de) return Status::NotFound("no such entry");
    child = de->first;
  }
  return ViewAttr(view, *t, child);
}

Result<Attr> Engine::HGetAttr(uint64_t ino) {
  if (ViewId(ino) == 0) {
    const uint64_t live = LiveIno(ino);
    if (live < kDotDbfs || live > kAtDir) return Status::NotFound("no such history inode");
    return ControlDirAttr(live);
  }
  DBFS_ASSIGN_OR_RETURN(View v, ViewOf(ino));
  DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
  return ViewAttr(ViewId(ino), *t, LiveIno(ino));
}

Result<std::string> Engine::HReadlink(uint64_t ino) {
  if (ViewId(ino) == 0) return Status::Invalid("not a symlink");
  DBFS_ASSIGN_OR_RETURN(View v, ViewOf(ino));
  DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(*t, LiveIno(ino)));
  if (!S_ISLNK(n.mode)) return Status::Invalid("not a symlink");
  return n.target;
}

Result<uint64_t> Engine::HOpen(uint64_t ino, int flags, uint64_t* size) {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) return ReadOnlyView();
  DBFS_ASSIGN_OR_RETURN(Attr a, HGetAttr(ino));
  if (size) *size = a.size;
  return 0;  // reads need no state: the inode number names view and file
}

Result<size_t> Engine::HRead(uint64_t ino, uint64_t off, size_t size, char* buf) {
  DBFS_ASSIGN_OR_RETURN(View v, ViewOf(ino));
  DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(*t, LiveIno(ino)));
  if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
  if (off >= n.size || size == 0) return size_t{0};
  const size_t len = static_cast<size_t>(std::min<uint64_t>(size, n.size - off));
  DBFS_RETURN_IF_ERROR(ReadRange(*t, LiveIno(ino), off, len, buf));
  return len;
}

Result<uint64_t> Engine::HLseek(uint64_t ino, uint64_t off, int whence) {
  DBFS_ASSIGN_OR_RETURN(Attr a, HGetAttr(ino));
  if (off >= a.size) return Status(Code::kErrno, "past the end", ENXIO);
  // Holes read as zeros; a view reports its files as one data range.
  return whence == SEEK_DATA ? off : a.size;
}

Result<uint64_t> Engine::HOpenDir(uint64_t ino) {
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->dir = true;
  const uint64_t view = ViewId(ino), live = LiveIno(ino);
  if (view == 0) {
    h->entries.push_back(DirEntry{".", ino, S_IFDIR});
    h->entries.push_back(
        DirEntry{"..", live == kDotDbfs ? kRootIno : HIno(0, kDotDbfs), S_IFDIR});
    if (live == kDotDbfs) {
      h->entries.push_back(DirEntry{"snapshots", HIno(0, kSnapshotsDir), S_IFDIR});
      h->entries.push_back(DirEntry{"at", HIno(0, kAtDir), S_IFDIR});
    } else if (live == kSnapshotsDir) {
      DBFS_ASSIGN_OR_RETURN(auto snaps, store_->ListSnapshots());
      for (const auto& s : snaps) {
        View v{s.name, s.csn, true};
        DBFS_ASSIGN_OR_RETURN(uint64_t id, ViewFor(fmt::format("s:{}:{}", s.name, s.csn), v));
        h->entries.push_back(DirEntry{s.name, HIno(id, kRootIno), S_IFDIR});
      }
    } else if (live != kAtDir) {
      return Status::NotFound("no such history inode");
    }
  } else {
    DBFS_ASSIGN_OR_RETURN(View v, ViewOf(ino));
    DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(*t, live));
    if (!n.IsDir()) return Status(Code::kNotDir, "not a directory");
    h->entries.push_back(DirEntry{".", ino, S_IFDIR});
    h->entries.push_back(DirEntry{
        "..", live == kRootIno ? HIno(0, v.snapshot ? kSnapshotsDir : kAtDir)
                               : HIno(view, n.parent ? n.parent : kRootIno),
        S_IFDIR});
    Status bad;
    DBFS_RETURN_IF_ERROR(t->Scan(Table::kDirents, InoKey(live), InoKey(live + 1),
                                 [&](std::string_view k, std::string_view val) {
                                   DirEntry e;
                                   if (k.size() < 10 || !DecodeDirent(val, &e.ino, &e.type)) {
                                     bad = Status::Corruption("malformed directory entry");
                                     return false;
                                   }
                                   e.ino = HIno(view, e.ino);
                                   e.name = std::string(k.substr(8, k.size() - 9));
                                   h->entries.push_back(std::move(e));
                                   return true;
                                 }));
    DBFS_RETURN_IF_ERROR(bad);
  }
  std::lock_guard g(handles_mu_);
  const uint64_t fh = next_fh_++;
  handles_.emplace(fh, std::move(h));
  return fh;
}

Result<std::string> Engine::HGetXattr(uint64_t ino, std::string_view name) {
  if (ViewId(ino) == 0) return Status(Code::kNoData, "no such attribute");
  DBFS_ASSIGN_OR_RETURN(View v, ViewOf(ino));
  DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
  DBFS_ASSIGN_OR_RETURN(auto val, t->Get(Table::kXattrs, NameKey(LiveIno(ino), name)));
  if (!val) return Status(Code::kNoData, "no such attribute");
  return *val;
}

Result<std::string> Engine::HListXattr(uint64_t ino) {
  std::string out;
  if (ViewId(ino) == 0) return out;
  DBFS_ASSIGN_OR_RETURN(View v, ViewOf(ino));
  DBFS_ASSIGN_OR_RETURN(auto t, ReadAt(v.csn));
  const uint64_t live = LiveIno(ino);
  DBFS_RETURN_IF_ERROR(t->Scan(Table::kXattrs, InoKey(live), InoKey(live + 1),
                               [&](std::string_view k, std::string_view) {
                                 out.append(k.substr(8, k.size() - 9));
                                 out.push_back('\0');
                                 return true;
                               }));
  return out;
}

}  // namespace dbfs
