#include "mvcc/local_store.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <chrono>
#include <limits>

#include <time.h>

#include <algorithm>

#include "kvstore/crash_point.h"
#include "kvstore/metrics.h"
#include "mvcc/history_records.h"
#include "mvcc/superblock.h"
#include "wal/reader.h"

namespace dbfs::mvcc {

namespace {

std::string EncodeValue(const std::optional<std::string>& v) {
  std::string out;
  if (!v) {
    out.push_back(kTagTombstone);
    return out;
  }
  out.reserve(v->size() + 1);
  out.push_back(kTagLive);
  out.append(*v);
  return out;
}

// Largest version-key suffix: sorts after every version of a logical key
// (csn 0 is never used, so ~csn < 0xff..ff for every real version).
std::string AfterAllVersions(std::string_view logical) {
  std::string k(logical);
  k.append(kCsnSuffix, '\xff');
  return k;
}

Result<uint64_t> ReadMetaU64(kv::ReadTxn& r, kv::Table meta, std::string_view key) {
  DBFS_ASSIGN_OR_RETURN(auto v, r.Get(meta, key));
  if (!v) return uint64_t{0};
  if (v->size() != 8) return Status::Corruption("meta value " + std::string(key) + " has bad size");
  return DecodeLE64(v->data());
}

std::string LE64String(uint64_t v) {
  std::string s;
  PutLE64(&s, v);
  return s;
}

uint64_t RealtimeNs() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

// Whether a version from csn `a` to its successor's `b` (exclusive) is seen
// by one of the ascending `pins`.
bool Pinned(const std::vector<Csn>& pins, Csn a, Csn b) {
  auto it = std::lower_bound(pins.begin(), pins.end(), a);
  return it != pins.end() && *it < b;
}

// Which of the versions of one key (newest first, tombstone flags given) GC
// keeps: every version a state at csn >= `continuous` sees, those the pins
// see; then no tombstone may be the oldest kept (nothing older is left for
// it to hide).
// `complete`: these are all the versions of the key (else older ones may
// exist elsewhere, and a tombstone must stay to hide them).
std::vector<bool> KeptVersions(const std::vector<std::pair<Csn, bool>>& newest_first,
                               Csn continuous, const std::vector<Csn>& pins, bool complete = true) {
  const size_t n = newest_first.size();
  std::vector<bool> keep(n, false);
  for (size_t i = 0; i < n; ++i) {
    const Csn a = newest_first[i].first;
    const Csn b = i == 0 ? kMaxCsn : newest_first[i - 1].first;
    keep[i] = b > continuous || Pinned(pins, a, b);
  }
  if (!complete) return keep;
  for (size_t i = n; i-- > 0;) {
    if (!keep[i]) continue;
    if (!newest_first[i].second) break;  // the oldest kept is live
    keep[i] = false;                     // a tombstone hiding nothing
  }
  return keep;
}

}  // namespace

Result<std::unique_ptr<LocalStore>> LocalStore::Open(const std::string& volume_dir,
                                                     const StoreOptions& opts, VolumeLock lock) {
  std::unique_ptr<LocalStore> s(new LocalStore());
  s->dir_ = volume_dir;
  s->lock_ = std::move(lock);
  s->opts_ = opts;
  if (!s->opts_.fs) s->opts_.fs = wal::DefaultFileSystem();
  DBFS_ASSIGN_OR_RETURN(Superblock sb, ReadSuperblock(volume_dir));
  s->info_.uuid = sb.uuid;
  s->info_.chunk_size = sb.chunk_size;
  s->info_.location = volume_dir;

  kv::EnvOptions eo;
  eo.read_only = opts.read_only;
  eo.no_lock_file = opts.no_lock_file;
  eo.initial_map_size = opts.lmdb_initial_map_size;
  DBFS_ASSIGN_OR_RETURN(s->env_, kv::Env::Open(volume_dir + "/meta", eo));
  for (int i = 0; i < kNumTables; ++i) {
    DBFS_ASSIGN_OR_RETURN(s->tables_[i], s->env_->OpenTable(kTableNames[i]));
  }
  DBFS_ASSIGN_OR_RETURN(s->meta_, s->env_->OpenTable(kMetaTableName));
  if (!opts.read_only && sb.format_version < kFormatVersion) {
    // Before anything of the new format is written (superblock_format.md).
    sb.format_version = kFormatVersion;
    DBFS_RETURN_IF_ERROR(WriteSuperblock(volume_dir, sb));
    spdlog::info("volume {} upgraded to format {}", volume_dir, kFormatVersion);
  }
  // A format-1 volume opened read-only (fsck -n) has no history tables.
  for (auto [name, table] : {std::pair{kSnapshotsTableName, &s->snapshots_table_},
                             std::pair{kCommitLogTableName, &s->log_table_}}) {
    auto t = s->env_->OpenTable(name);
    if (t.ok()) {
      *table = *t;
    } else if (!(opts.read_only && t.status().code() == Code::kNotFound)) {
      return t.TakeStatus();
    }
  }
  s->window_ns_.store(opts.history_window_ns);
  DBFS_RETURN_IF_ERROR(s->LoadHistory());
  DBFS_RETURN_IF_ERROR(s->Recover());
  if (!opts.read_only) {
    s->flusher_ = std::thread([p = s.get()] { p->FlusherLoop(); });
  }
  return s;
}

LocalStore::~LocalStore() {
  Status st = Close();
  if (!st.ok()) spdlog::error("closing the store failed: {}", st.ToString());
}

Status LocalStore::LoadHistory() {
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(uint64_t horizon, ReadMetaU64(*r, meta_, kMetaHistoryHorizon));
  std::lock_guard g(snap_mu_);
  horizon_ = horizon;
  if (snapshots_table_.valid()) {
    DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(snapshots_table_));
    DBFS_ASSIGN_OR_RETURN(bool valid, c->SeekFirst());
    while (valid) {
      DBFS_ASSIGN_OR_RETURN(NamedSnapshot s, DecodeSnapshotRecord(c->key(), c->value()));
      pins_.insert(s.csn);
      named_.emplace(s.name, std::move(s));
      DBFS_ASSIGN_OR_RETURN(valid, c->Next());
    }
  }
  if (log_table_.valid()) {
    DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(log_table_));
    DBFS_ASSIGN_OR_RETURN(bool valid, c->SeekFirst());
    log_from_ = valid && c->key().size() == 8 ? GetBE64(c->key().data()) : horizon;
    DBFS_ASSIGN_OR_RETURN(valid, c->SeekLast());
    if (valid) {
      DBFS_ASSIGN_OR_RETURN(CommitRecord last, DecodeLogRecord(c->key(), c->value()));
      last_time_ns_ = last.time_ns;
    }
  }
  return Status::Ok();
}

void LocalStore::RememberCommit(Csn csn, uint64_t time_ns, const CommitMeta& meta,
                                const std::vector<Write>& writes) {
  CommitRecord r;
  r.csn = csn;
  r.time_ns = time_ns;
  r.meta = meta;
  r.keys.reserve(writes.size());
  for (const Write& w : writes) r.keys.push_back(KeyRef{w.table, w.key});
  std::lock_guard g(recent_mu_);
  recent_.emplace(csn, std::move(r));
}

Status LocalStore::Recover() {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t applied = 0, last = 0, next_ino = 0;
  {
    DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
    DBFS_ASSIGN_OR_RETURN(applied, ReadMetaU64(*r, meta_, kMetaAppliedLsn));
    DBFS_ASSIGN_OR_RETURN(last, ReadMetaU64(*r, meta_, kMetaLastCsn));
    DBFS_ASSIGN_OR_RETURN(next_ino, ReadMetaU64(*r, meta_, kMetaNextIno));
  }
  last_csn_ = last;
  last_lsn_ = applied;
  flushed_csn_ = last;
  applied_lsn_.store(applied, std::memory_order_release);
  uint64_t max_ino = next_ino > 0 ? next_ino - 1 : 1;

  const std::string wal_dir = dir_ + "/wal";
  DBFS_ASSIGN_OR_RETURN(auto reader, wal::Reader::Open(opts_.fs, wal_dir, applied, info_.uuid));
  reader->set_read_data(false);
  wal::Record rec;
  while (true) {
    DBFS_ASSIGN_OR_RETURN(bool more, reader->Next(&rec));
    if (!more) break;
    ++recovery_.records_replayed;
    if (rec.type != wal::RecordType::kCommit) continue;
    DBFS_ASSIGN_OR_RETURN(Redo redo, DecodeRedo(rec.payload));
    if (redo.csn <= last_csn_) continue;  // already in LMDB (replay is idempotent)
    if (redo.csn != last_csn_ + 1) {
      return Status::Corruption("WAL commit sequence jumps from csn " + std::to_string(last_csn_) +
                                " to " + std::to_string(redo.csn) + "; run fsck.dbfs");
    }
    if (redo.max_ino > max_ino) max_ino = redo.max_ino;
    // Format-1 records carry no time: they get the replay's (kept monotonic).
    last_time_ns_ = std::max(redo.time_ns, redo.has_meta ? last_time_ns_ : last_time_ns_ + 1);
    if (last_time_ns_ == 1) last_time_ns_ = RealtimeNs();
    RememberCommit(redo.csn, last_time_ns_, redo.meta, redo.writes);
    overlay_.Publish(&redo.writes, redo.csn);
    last_csn_ = redo.csn;
    last_lsn_ = rec.end_lsn;
    ++recovery_.commits_replayed;
    CrashPoint("recovery.replay");  // tests: a crash in the middle of the replay
  }
  const wal::ScanEnd end = reader->end();  // a copy: the reader goes away next
  recovery_.torn_tail = end.torn_tail;
  recovery_.bytes_discarded = end.discarded_bytes;
  reader.reset();
  visible_csn_.store(last_csn_, std::memory_order_release);
  next_ino_.store(std::max<uint64_t>(max_ino + 1, 2));

  if (!opts_.read_only) {
    wal::WriterOptions wo;
    wo.segment_size = opts_.segment_size;
    wo.uuid = info_.uuid;
    wo.unconfirmed_from = applied;
    DBFS_ASSIGN_OR_RETURN(wal_, wal::Writer::Open(opts_.fs, wal_dir, wo, end.end));
    if (recovery_.commits_replayed > 0) {
      std::lock_guard g(flush_mu_);
      DBFS_RETURN_IF_ERROR(FlushLocked());
    }
  }
  recovery_.millis =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (recovery_.commits_replayed > 0 || recovery_.torn_tail) {
    spdlog::info(
        "recovery: replayed {} commits ({} records) past LSN {:#x}, discarded {} torn bytes, "
        "{:.1f} ms",
        recovery_.commits_replayed, recovery_.records_replayed, applied,
        recovery_.bytes_discarded, recovery_.millis);
  } else {
    spdlog::debug("recovery: nothing to replay ({:.1f} ms)", recovery_.millis);
  }
  return Status::Ok();
}

Status LocalStore::Close() {
  if (closed_) return Status::Ok();
  {
    std::lock_guard g(bg_mu_);
    stop_ = true;
  }
  bg_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  closed_ = true;
  if (opts_.read_only || !wal_) return Status::Ok();
  Status st = health();
  if (!st.ok()) return st;
  {
    std::lock_guard g(flush_mu_);
    DBFS_RETURN_IF_ERROR(FlushLocked());
  }
  // LMDB commits are synced (no MDB_NOSYNC), so after the flush the WAL holds
  // nothing recovery needs; sync it anyway so every acknowledged byte of file
  // data referenced from LMDB is durable before a clean unmount returns.
  return wal_->SyncAll();
}

void LocalStore::TEST_Abandon() {
  {
    std::lock_guard g(bg_mu_);
    stop_ = true;
  }
  bg_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  closed_ = true;
}

Result<int> LocalStore::TEST_LmdbVersions(Table t, std::string_view key) {
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(VersionKey(key, std::numeric_limits<Csn>::max())));
  int n = 0;
  while (valid && c->key().size() == key.size() + kCsnSuffix && VersionLogical(c->key()) == key) {
    ++n;
    DBFS_ASSIGN_OR_RETURN(valid, c->Next());
  }
  return n;
}

Csn LocalStore::RegisterSnapshot() {
  std::lock_guard g(snap_mu_);
  Csn c = visible_csn_.load(std::memory_order_acquire);
  ++active_snaps_[c];
  return c;
}

// Under snap_mu_, like the flusher's horizon move: a state retained now stays
// retained while the registration lasts.
Status LocalStore::RegisterSnapshotAt(Csn csn) {
  std::lock_guard g(snap_mu_);
  const Csn visible = visible_csn_.load(std::memory_order_acquire);
  if (csn > visible) return Status::NotFound("csn " + std::to_string(csn) + " is in the future");
  if (csn < horizon_ && pins_.count(csn) == 0) {
    return Status::NotFound("the state at csn " + std::to_string(csn) +
                            " is no longer kept (history starts at csn " +
                            std::to_string(horizon_) + ")");
  }
  ++active_snaps_[csn];
  return Status::Ok();
}

void LocalStore::ReleaseSnapshot(Csn csn) {
  std::lock_guard g(snap_mu_);
  auto it = active_snaps_.find(csn);
  if (it != active_snaps_.end() && --it->second == 0) active_snaps_.erase(it);
}

Csn LocalStore::MinActiveSnapshot() {
  std::lock_guard g(snap_mu_);
  return active_snaps_.empty() ? std::numeric_limits<Csn>::max() : active_snaps_.begin()->first;
}

Result<std::optional<std::string>> LocalStore::Get(Csn snap, Table t, std::string_view key) {
  std::string value;
  switch (overlay_.Get(t, key, snap, &value)) {
    case Overlay::Lookup::kLive: return std::optional<std::string>(std::move(value));
    case Overlay::Lookup::kTombstone: return std::optional<std::string>();
    case Overlay::Lookup::kAbsent: break;
  }
  // Only now open LMDB: see the ordering rule in overlay.h.
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool found, c->Seek(VersionKey(key, snap)));
  if (!found || c->key().size() != key.size() + kCsnSuffix || VersionLogical(c->key()) != key) {
    return std::optional<std::string>();
  }
  std::string_view v = c->value();
  if (v.empty()) return Status::Corruption("empty versioned value");
  if (v[0] == kTagTombstone) return std::optional<std::string>();
  return std::optional<std::string>(std::string(v.substr(1)));
}

Result<Csn> LocalStore::NewestCsn(Table t, std::string_view key) {
  Csn c = overlay_.NewestCsn(t, key);
  if (c != 0) return c;
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto cur, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool found, cur->Seek(VersionKey(key, std::numeric_limits<Csn>::max())));
  if (!found || cur->key().size() != key.size() + kCsnSuffix || VersionLogical(cur->key()) != key) {
    return Csn{0};
  }
  return VersionCsn(cur->key());
}

Result<std::optional<std::string>> LocalStore::ChangedSince(Table t, std::string_view begin,
                                                      std::string_view end, Csn snap) {
  if (auto k = overlay_.FirstNewerThan(t, begin, end, snap)) return k;
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(begin));
  while (valid) {
    std::string_view k = c->key();
    if (k.size() < kCsnSuffix) return Status::Corruption("short versioned key");
    std::string_view logical = VersionLogical(k);
    if (!end.empty() && logical >= end) break;
    // The versions of a key just below `begin` (begin = key + "\0") sort
    // after `begin` itself: skip them.
    if (logical < begin) {
      DBFS_ASSIGN_OR_RETURN(valid, c->Seek(AfterAllVersions(logical)));
      continue;
    }
    // The first version met of a logical key is its newest.
    if (VersionCsn(k) > snap) return std::optional<std::string>(std::string(logical));
    DBFS_ASSIGN_OR_RETURN(valid, c->Seek(AfterAllVersions(logical)));
  }
  return std::optional<std::string>();
}

Status LocalStore::Scan(Csn snap, Table t, std::string_view begin, std::string_view end,
                   const std::function<bool(std::string_view, std::string_view)>& fn) {
  std::map<std::string, std::optional<std::string>> ov;
  overlay_.Range(t, begin, end, snap, &ov);
  // Only now open LMDB: see the ordering rule in overlay.h.
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(begin));

  // Positions the cursor on the visible version of the next logical key.
  std::string_view lkey, lval;
  bool lvalid = false;
  auto advance_lmdb = [&](bool* ok_out) -> Status {
    lvalid = false;
    while (valid) {
      std::string_view k = c->key();
      if (k.size() < kCsnSuffix) return Status::Corruption("short versioned key");
      std::string_view logical = VersionLogical(k);
      if (!end.empty() && logical >= end) {
        valid = false;
        break;
      }
      if (VersionCsn(k) > snap) {
        std::string lk(logical);
        DBFS_ASSIGN_OR_RETURN(valid, c->Seek(VersionKey(lk, snap)));
        if (!valid) break;
        if (VersionLogical(c->key()) != lk || c->key().size() != lk.size() + kCsnSuffix) continue;
      }
      lkey = VersionLogical(c->key());
      lval = c->value();
      if (lval.empty()) return Status::Corruption("empty versioned value");
      lvalid = true;
      break;
    }
    *ok_out = lvalid;
    return Status::Ok();
  };
  auto skip_lmdb = [&]() -> Status {
    std::string after = AfterAllVersions(lkey);
    DBFS_ASSIGN_OR_RETURN(valid, c->Seek(after));
    return Status::Ok();
  };

  bool have = false;
  DBFS_RETURN_IF_ERROR(advance_lmdb(&have));
  auto oit = ov.begin();
  while (oit != ov.end() || lvalid) {
    int cmp;
    if (oit == ov.end()) cmp = 1;
    else if (!lvalid) cmp = -1;
    else cmp = std::string_view(oit->first).compare(lkey);
    if (cmp <= 0) {
      // The overlay's version is newer than anything LMDB has for the key.
      if (oit->second && !fn(oit->first, *oit->second)) return Status::Ok();
      if (cmp == 0) {
        DBFS_RETURN_IF_ERROR(skip_lmdb());
        DBFS_RETURN_IF_ERROR(advance_lmdb(&have));
      }
      ++oit;
    } else {
      if (lval[0] == kTagLive && !fn(lkey, lval.substr(1))) return Status::Ok();
      DBFS_RETURN_IF_ERROR(skip_lmdb());
      DBFS_RETURN_IF_ERROR(advance_lmdb(&have));
    }
  }
  return Status::Ok();
}

Result<DataRef> LocalStore::AppendData(std::string_view bytes) {
  if (!wal_) return Status::ReadOnly("volume opened read-only");
  DBFS_RETURN_IF_ERROR(health());
  auto r = wal_->Append(wal::RecordType::kData, bytes);
  if (!r.ok()) {
    // A full disk is not an I/O error: the writer gave the space back and
    // stays usable, so the volume works again once space is freed.
    if (r.status().code() != Code::kNoSpace) SetFailed(r.status());
    return r.TakeStatus();
  }
  return DataRef{r->segment, r->payload_offset, static_cast<uint32_t>(bytes.size())};
}

Status LocalStore::ReadData(const DataRef& ref, uint64_t off, size_t n, char* out) {
  if (off + n > ref.length) return Status::Corruption("read past the end of a data record");
  if (wal_) return wal_->ReadPayload(ref.segment, ref.offset, off, n, out);
  // Read-only (fsck): open the segment directly.
  char name[32];
  snprintf(name, sizeof(name), "/%08u.wal", ref.segment);
  DBFS_ASSIGN_OR_RETURN(auto f, opts_.fs->Open(dir_ + "/wal" + name, wal::FileSystem::kReadOnly));
  size_t got = 0;
  DBFS_RETURN_IF_ERROR(f->PRead(ref.offset + off, out, n, &got));
  if (got != n) return Status::Corruption("data record extends past the end of its WAL segment");
  return Status::Ok();
}

// Runs under commit_mu_: nothing commits between the checks and the
// publication that follows them.
Status LocalStore::Validate(const ValidationSet& v, Conflict* conflict) {
  const Csn snap = v.snapshot;
  // Whether `key` has a committed version newer than the snapshot that is
  // not benign.
  auto changed = [&](Table t, std::string_view key) -> Result<bool> {
    DBFS_ASSIGN_OR_RETURN(Csn newest, NewestCsn(t, key));
    if (newest <= snap) return false;
    if (v.benign) {
      DBFS_ASSIGN_OR_RETURN(auto before, Get(snap, t, key));
      DBFS_ASSIGN_OR_RETURN(auto after, Get(kMaxCsn, t, key));
      if (before && after && v.benign(t, *before, *after)) return false;
    }
    return true;
  };
  auto refuse = [&](Conflict::Kind kind, Table t, std::string_view key, const char* what) {
    if (conflict) *conflict = Conflict{kind, KeyRef{t, std::string(key)}};
    return Status::Conflict(what);
  };
  for (const KeyRef& k : v.write_keys) {
    DBFS_ASSIGN_OR_RETURN(bool c, changed(k.table, k.key));
    if (c) return refuse(Conflict::Kind::kWrite, k.table, k.key, "write-write conflict");
  }
  // Ranges before keys: a phantom names the entry that appeared, which is a
  // more useful message than the directory record that changed with it.
  for (const RangeRef& r : v.read_ranges) {
    std::string from = r.begin;
    for (;;) {
      DBFS_ASSIGN_OR_RETURN(auto k, ChangedSince(r.table, from, r.end, snap));
      if (!k) break;
      // A benign change of a key that existed before and after (a checkpoint
      // moving file data) is not a phantom; look past it.
      DBFS_ASSIGN_OR_RETURN(bool c, changed(r.table, *k));
      if (c) {
        return refuse(Conflict::Kind::kPhantom, r.table, *k,
                      "phantom: a range read by the transaction changed");
      }
      from = *k;
      from.push_back('\0');
    }
  }
  for (const KeyRef& k : v.read_keys) {
    DBFS_ASSIGN_OR_RETURN(bool c, changed(k.table, k.key));
    if (c) return refuse(Conflict::Kind::kRead, k.table, k.key, "read-write conflict");
  }
  return Status::Ok();
}

Result<CommitResult> LocalStore::Commit(CommitRequest req, Conflict* conflict) {
  if (!wal_) return Status::ReadOnly("volume opened read-only");
  static metrics::Histogram& latency = metrics::Histogram::Named("commit");
  metrics::ScopedTimer timer(latency);
  DBFS_RETURN_IF_ERROR(health());
  std::vector<Write>& writes = req.writes;
  // Without merges the redo is known now: encode it outside the mutex.
  std::string redo;
  if (req.merges.empty()) redo = EncodeRedo(0, next_ino_.load(), writes, req.meta);
  CommitResult res;
  wal::Lsn end_lsn = 0;
  {
    std::lock_guard g(commit_mu_);
    if (req.validation) DBFS_RETURN_IF_ERROR(Validate(*req.validation, conflict));
    if (!req.merges.empty()) {
      for (Merge& m : req.merges) {
        DBFS_ASSIGN_OR_RETURN(auto latest, Get(kMaxCsn, m.table, m.key));
        auto merged = m.fn(latest);
        if (!merged.ok()) {
          if (conflict && merged.status().code() == Code::kConflict) {
            *conflict = Conflict{Conflict::Kind::kMerge, KeyRef{m.table, m.key}};
          }
          return merged.TakeStatus();
        }
        writes.push_back(Write{m.table, std::move(m.key), std::move(*merged)});
      }
      redo = EncodeRedo(0, next_ino_.load(), writes, req.meta);
    }
    res.csn = last_csn_ + 1;
    PatchRedoCsn(&redo, res.csn);
    // Commit times never decrease with the CSN (CsnAt searches by time), even
    // if the clock steps back.
    const uint64_t time_ns = std::max(RealtimeNs(), last_time_ns_ + 1);
    PatchRedoTime(&redo, time_ns);
    auto a = wal_->Append(wal::RecordType::kCommit, redo);
    if (!a.ok()) {
      // ENOSPC: nothing was committed (the writer gave the space back).
      if (a.status().code() != Code::kNoSpace) SetFailed(a.status());
      return a.TakeStatus();
    }
    end_lsn = a->end_lsn;
    last_time_ns_ = time_ns;
    RememberCommit(res.csn, time_ns, req.meta, writes);
    overlay_.Publish(&writes, res.csn);
    last_csn_ = res.csn;
    last_lsn_ = end_lsn;
    visible_csn_.store(res.csn, std::memory_order_release);
  }
  commits_.fetch_add(1, std::memory_order_relaxed);
  if (overlay_.bytes() > opts_.flush_overlay_bytes) bg_cv_.notify_one();
  if (req.durable) DBFS_RETURN_IF_ERROR(SyncTo(end_lsn));
  return res;
}

Status LocalStore::SyncTo(wal::Lsn lsn) {
  if (!wal_) return Status::ReadOnly("volume opened read-only");
  Status st = wal_->SyncTo(lsn);
  if (!st.ok()) SetFailed(st);
  return st;
}

Status LocalStore::SyncAll() {
  if (!wal_) return Status::Ok();
  Status st = wal_->SyncAll();
  if (!st.ok()) SetFailed(st);
  return st;
}

Status LocalStore::Flush() {
  if (!wal_) return Status::Ok();
  std::lock_guard g(flush_mu_);
  return FlushLocked();
}

// Keeps the LMDB versions of `key` that the policy keeps (KeptVersions) and
// deletes the others. *pending: registered snapshots keep more than history
// alone would; the key is visited again by the next flush.
Status LocalStore::GcKey(kv::WriteTxn& w, Table t, std::string_view key, const GcPolicy& p,
                         bool* pending) {
  const kv::Table tbl = tables_[static_cast<int>(t)];
  std::vector<std::pair<Csn, bool>> versions;  // newest first: csn, tombstone
  DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(tbl));
  const std::string first = VersionKey(key, kMaxCsn);
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(first));
  while (valid && c->key().size() == key.size() + kCsnSuffix && VersionLogical(c->key()) == key) {
    versions.emplace_back(VersionCsn(c->key()), !c->value().empty() && c->value()[0] == kTagTombstone);
    DBFS_ASSIGN_OR_RETURN(valid, c->Next());
  }
  const std::vector<bool> keep = KeptVersions(versions, p.continuous, p.pins);
  size_t kept = 0;
  for (bool k : keep) kept += k;
  if (kept < versions.size()) {
    // Delete walking the same versions again: a cursor delete stays where
    // it is, a keyed delete would search the tree anew.
    DBFS_ASSIGN_OR_RETURN(valid, c->Seek(first));
    for (size_t i = 0; i < versions.size() && valid; ++i) {
      if (c->key().size() != key.size() + kCsnSuffix || VersionLogical(c->key()) != key ||
          VersionCsn(c->key()) != versions[i].first) {
        return Status::Corruption("version chain changed under garbage collection");
      }
      if (keep[i]) {
        DBFS_ASSIGN_OR_RETURN(valid, c->Next());
        continue;
      }
      DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
      gc_dropped_.fetch_add(1, std::memory_order_relaxed);
      valid = c->Valid();
    }
  }
  *pending = false;
  if (p.without_readers > p.continuous && kept > 1) {
    size_t later = 0;
    for (bool k : KeptVersions(versions, p.without_readers, p.pins)) later += k;
    *pending = later < kept;
  }
  return Status::Ok();
}

Status LocalStore::GcKeys(kv::WriteTxn& w, const GcPolicy& p,
                          const std::set<std::pair<int, std::string>>& keys,
                          std::set<std::pair<int, std::string>>* pending) {
  for (const auto& [i, key] : keys) {
    bool again = false;
    DBFS_RETURN_IF_ERROR(GcKey(w, static_cast<Table>(i), key, p, &again));
    if (again) pending->emplace(i, key);
  }
  return Status::Ok();
}

Status LocalStore::LoggedKeys(kv::WriteTxn& w, Csn from, Csn to,
                              std::set<std::pair<int, std::string>>* out) {
  if (!log_table_.valid() || to <= from) return Status::Ok();
  DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(log_table_));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(LogKey(from + 1)));
  while (valid) {
    DBFS_ASSIGN_OR_RETURN(CommitRecord r, DecodeLogRecord(c->key(), c->value()));
    if (r.csn > to) break;
    for (KeyRef& k : r.keys) out->emplace(static_cast<int>(k.table), std::move(k.key));
    DBFS_ASSIGN_OR_RETURN(valid, c->Next());
  }
  return Status::Ok();
}

Result<Csn> LocalStore::LoggedCsnAtOrBefore(uint64_t time_ns) {
  {
    std::lock_guard g(recent_mu_);
    if (!recent_.empty() && recent_.begin()->second.time_ns <= time_ns) {
      Csn best = 0;
      for (const auto& [csn, r] : recent_) {
        if (r.time_ns > time_ns) break;
        best = csn;
      }
      return best;
    }
  }
  // Only now LMDB (the flusher writes it before trimming recent_).
  if (!log_table_.valid()) return Csn{0};
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(log_table_));
  auto at = [&]() -> Result<std::pair<Csn, uint64_t>> {
    DBFS_ASSIGN_OR_RETURN(CommitRecord rec, DecodeLogRecord(c->key(), c->value()));
    return std::make_pair(rec.csn, rec.time_ns);
  };
  DBFS_ASSIGN_OR_RETURN(bool valid, c->SeekFirst());
  if (!valid) return Csn{0};
  DBFS_ASSIGN_OR_RETURN(auto first, at());
  if (first.second > time_ns) return Csn{0};
  DBFS_ASSIGN_OR_RETURN(valid, c->SeekLast());
  DBFS_ASSIGN_OR_RETURN(auto last, at());
  if (last.second <= time_ns) return last.first;
  // Binary search by CSN (times never decrease with it): lo is a logged CSN
  // at or before the time; every entry at hi or above is after it.
  Csn lo = first.first, hi = last.first;
  while (hi - lo > 1) {
    const Csn mid = lo + (hi - lo) / 2;
    DBFS_ASSIGN_OR_RETURN(valid, c->Seek(LogKey(mid)));
    DBFS_ASSIGN_OR_RETURN(auto e, at());
    if (e.first >= hi || e.second > time_ns) {
      hi = mid;
    } else {
      lo = e.first;
    }
  }
  return lo;
}

Status LocalStore::FlushLocked() {
  static metrics::Histogram& latency = metrics::Histogram::Named("lmdb_flush");
  metrics::ScopedTimer timer(latency);
  Csn upto;
  wal::Lsn upto_lsn;
  {
    std::lock_guard g(commit_mu_);
    upto = last_csn_;
    upto_lsn = last_lsn_;
  }
  // The horizon of continuous history: the state at the start of the window
  // (the last commit at or before now - window), or only the latest state.
  const uint64_t window = window_ns_.load();
  Csn candidate = upto;
  if (window > 0) {
    const uint64_t now = RealtimeNs();
    DBFS_ASSIGN_OR_RETURN(candidate, LoggedCsnAtOrBefore(now > window ? now - window : 0));
    candidate = std::min(candidate, upto);
  }
  GcPolicy policy;
  Csn old_horizon, new_horizon, cut;
  {
    std::lock_guard g(snap_mu_);
    old_horizon = horizon_;
    horizon_ = std::max(horizon_, candidate);
    new_horizon = horizon_;
    const Csn readers = active_snaps_.empty() ? kMaxCsn : active_snaps_.begin()->first;
    policy.without_readers = std::min(new_horizon, upto);
    policy.continuous = std::min(readers, policy.without_readers);
    policy.pins.assign(pins_.begin(), pins_.end());
    // Log entries from here on are kept: diffs between retained states (and
    // registered snapshots) need them, and deleting a snapshot finds the keys
    // to collect in them. The entry at the horizon itself gives its time.
    cut = policy.continuous;
    if (!pins_.empty()) cut = std::min(cut, *pins_.begin());
    log_from_ = std::max(log_from_, cut);
    cut = log_from_;
  }
  if (upto == flushed_csn_ && gc_pending_.empty() && new_horizon == old_horizon) {
    return Status::Ok();
  }
  // tests: a crash with commits in the WAL that LMDB does not have yet.
  if (upto > flushed_csn_) CrashPoint("flush");

  // Write-ahead rule: LMDB may only reference what the WAL holds durably —
  // its slices point into DATA records, and applied_lsn must never lie past
  // the durable end of the log (a power cut would otherwise lose data LMDB
  // refers to, or leave the log shorter than the applied LSN).
  DBFS_RETURN_IF_ERROR(SyncTo(upto_lsn));

  std::vector<std::pair<std::string, Chain>> collected[kNumTables];
  for (int i = 0; i < kNumTables; ++i) overlay_.CollectUpTo(static_cast<Table>(i), upto, &collected[i]);
  std::vector<CommitRecord> logged;
  {
    std::lock_guard g(recent_mu_);
    for (auto it = recent_.begin(); it != recent_.end() && it->first <= upto; ++it) {
      if (it->first >= cut) logged.push_back(it->second);
    }
  }

  std::set<std::pair<int, std::string>> pending;
  Status st = env_->Write([&](kv::WriteTxn& w) -> Status {
    pending.clear();
    std::vector<std::pair<Csn, bool>> newest_first;
    for (int i = 0; i < kNumTables; ++i) {
      const kv::Table tbl = tables_[i];
      for (const auto& [key, chain] : collected[i]) {
        // Write the versions GC would keep (the rest would be deleted at once),
        // then collect the key's older versions in LMDB.
        newest_first.clear();
        for (size_t j = chain.size(); j-- > 0;) newest_first.emplace_back(chain[j].csn, !chain[j].value);
        const std::vector<bool> keep =
            KeptVersions(newest_first, policy.continuous, policy.pins, /*complete=*/false);
        for (size_t j = 0; j < chain.size(); ++j) {
          if (!keep[chain.size() - 1 - j]) continue;
          DBFS_RETURN_IF_ERROR(w.Put(tbl, VersionKey(key, chain[j].csn), EncodeValue(chain[j].value)));
        }
        bool again = false;
        DBFS_RETURN_IF_ERROR(GcKey(w, static_cast<Table>(i), key, policy, &again));
        if (again) pending.emplace(i, key);
      }
    }
    // Keys collected again for other reasons (a GC twice is harmless: the
    // second finds nothing to drop).
    std::set<std::pair<int, std::string>> visit(gc_pending_.begin(), gc_pending_.end());
    // States the window no longer covers: the versions their commits
    // superseded may go (the commit log names the keys).
    if (new_horizon > old_horizon) {
      DBFS_RETURN_IF_ERROR(LoggedKeys(w, old_horizon, std::min(new_horizon, flushed_csn_), &visit));
    }
    DBFS_RETURN_IF_ERROR(GcKeys(w, policy, visit, &pending));
    if (log_table_.valid()) {
      for (const CommitRecord& r : logged) {
        DBFS_RETURN_IF_ERROR(w.Put(log_table_, LogKey(r.csn), EncodeLogRecord(r)));
      }
      DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(log_table_));
      DBFS_ASSIGN_OR_RETURN(bool valid, c->SeekFirst());
      while (valid && c->key().size() == 8 && GetBE64(c->key().data()) < cut) {
        DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
        valid = c->Valid();
      }
    }
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaHistoryHorizon, LE64String(new_horizon)));
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaAppliedLsn, LE64String(upto_lsn)));
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaLastCsn, LE64String(upto)));
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaNextIno, LE64String(next_ino_.load())));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  // LMDB now holds everything up to `upto`; only now may the overlay forget it.
  for (int i = 0; i < kNumTables; ++i) overlay_.TrimUpTo(static_cast<Table>(i), collected[i], upto);
  {
    std::lock_guard g(recent_mu_);
    recent_.erase(recent_.begin(), recent_.upper_bound(upto));
  }
  gc_pending_ = std::move(pending);
  flushed_csn_ = upto;
  applied_lsn_.store(upto_lsn, std::memory_order_release);
  flushes_.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

// ---- history ----

Result<NamedSnapshot> LocalStore::CreateSnapshot(const std::string& name, const CommitMeta& who) {
  if (!wal_) return Status::ReadOnly("volume opened read-only");
  DBFS_RETURN_IF_ERROR(health());
  if (name.empty() || name.size() > kSnapshotNameMax ||
      name.find_first_of(std::string_view("\0/", 2)) != std::string::npos) {
    return Status::Invalid("a snapshot name has 1 to 255 bytes, without '/' or NUL");
  }
  std::lock_guard h(history_mu_);
  NamedSnapshot snap;
  snap.name = name;
  snap.uid = who.uid;
  snap.time_ns = RealtimeNs();
  wal::Lsn lsn;
  {
    // Pinned before anything else: GC keeps what the current state sees from
    // this moment on (no flush can collect a version the newest state sees).
    std::lock_guard g(snap_mu_);
    if (named_.count(name)) return Status::Exists("snapshot '" + name + "' exists");
    snap.csn = visible_csn_.load(std::memory_order_acquire);
    named_.emplace(name, snap);
    pins_.insert(snap.csn);
  }
  {
    std::lock_guard g(commit_mu_);
    lsn = last_lsn_;
  }
  auto unpin = [&] {
    std::lock_guard g(snap_mu_);
    named_.erase(name);
    pins_.erase(pins_.find(snap.csn));
  };
  // The record names a CSN: that commit must survive any crash the record
  // survives, or recovery could give the CSN to different changes.
  Status st = SyncTo(lsn);
  if (st.ok()) {
    st = env_->Write([&](kv::WriteTxn& w) {
      return w.Put(snapshots_table_, name, EncodeSnapshotRecord(snap));
    });
  }
  if (!st.ok()) {
    unpin();
    return st;
  }
  return snap;
}

Status LocalStore::DeleteSnapshot(const std::string& name) {
  if (!wal_) return Status::ReadOnly("volume opened read-only");
  DBFS_RETURN_IF_ERROR(health());
  std::lock_guard h(history_mu_);
  // Under flush_mu_: the collection below and the flusher's are not interleaved.
  std::lock_guard f(flush_mu_);
  NamedSnapshot snap;
  GcPolicy policy;
  Csn until, cut;
  {
    std::lock_guard g(snap_mu_);
    auto it = named_.find(name);
    if (it == named_.end()) return Status::NotFound("no snapshot '" + name + "'");
    snap = it->second;
    named_.erase(it);
    pins_.erase(pins_.find(snap.csn));
    const Csn readers = active_snaps_.empty() ? kMaxCsn : active_snaps_.begin()->first;
    policy.without_readers = std::min(horizon_, flushed_csn_);
    policy.continuous = std::min(readers, policy.without_readers);
    policy.pins.assign(pins_.begin(), pins_.end());
    // Versions only this snapshot kept were superseded after it, before the
    // next pin or the horizon (later ones are kept anyway).
    auto next = pins_.upper_bound(snap.csn);
    until = std::min(policy.continuous, next == pins_.end() ? kMaxCsn : *next);
    cut = policy.continuous;
    if (!pins_.empty()) cut = std::min(cut, *pins_.begin());
    log_from_ = std::max(log_from_, cut);
    cut = log_from_;
  }
  std::set<std::pair<int, std::string>> pending;
  Status st = env_->Write([&](kv::WriteTxn& w) -> Status {
    pending.clear();
    DBFS_RETURN_IF_ERROR(w.Delete(snapshots_table_, name));
    std::set<std::pair<int, std::string>> visit;
    DBFS_RETURN_IF_ERROR(LoggedKeys(w, snap.csn, std::min(until, flushed_csn_), &visit));
    DBFS_RETURN_IF_ERROR(GcKeys(w, policy, visit, &pending));
    DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(log_table_));
    DBFS_ASSIGN_OR_RETURN(bool valid, c->SeekFirst());
    while (valid && c->key().size() == 8 && GetBE64(c->key().data()) < cut) {
      DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
      valid = c->Valid();
    }
    return Status::Ok();
  });
  if (!st.ok()) {
    std::lock_guard g(snap_mu_);
    named_.emplace(name, snap);
    pins_.insert(snap.csn);
    return st;
  }
  gc_pending_.insert(pending.begin(), pending.end());
  return Status::Ok();
}

Result<std::vector<NamedSnapshot>> LocalStore::ListSnapshots() {
  std::lock_guard g(snap_mu_);
  std::vector<NamedSnapshot> out;
  for (const auto& [name, s] : named_) out.push_back(s);
  std::sort(out.begin(), out.end(), [](const NamedSnapshot& a, const NamedSnapshot& b) {
    return a.csn != b.csn ? a.csn < b.csn : a.name < b.name;
  });
  return out;
}

void LocalStore::SetHistoryWindow(uint64_t window_ns) {
  // The next periodic flush moves the horizon (waking the flusher here would
  // flush right after every open).
  window_ns_.store(window_ns);
}

Retention LocalStore::retention() {
  Retention r;
  r.window_ns = window_ns_.load();
  std::lock_guard g(snap_mu_);
  r.horizon = horizon_;
  r.log_from = log_from_;
  for (const auto& [name, s] : named_) r.snapshots.push_back(s);
  std::sort(r.snapshots.begin(), r.snapshots.end(),
            [](const NamedSnapshot& a, const NamedSnapshot& b) { return a.csn < b.csn; });
  return r;
}

Result<Csn> LocalStore::CsnAt(uint64_t time_ns) {
  Csn visible;
  uint64_t last_time;
  {
    std::lock_guard g(commit_mu_);
    visible = last_csn_;
    last_time = last_time_ns_;
  }
  Csn csn = visible;
  if (time_ns < last_time) {
    DBFS_ASSIGN_OR_RETURN(csn, LoggedCsnAtOrBefore(time_ns));
    if (csn == 0) return Status::NotFound("no retained state is that old");
  }
  std::lock_guard g(snap_mu_);
  if (csn < horizon_ && pins_.count(csn) == 0) {
    return Status::NotFound("the state at that time (csn " + std::to_string(csn) +
                            ") is no longer kept");
  }
  return csn;
}

Status LocalStore::ScanCommits(Csn from, Csn to, bool newest_first,
                               const std::function<bool(const CommitRecord&)>& fn) {
  std::vector<CommitRecord> mem;
  {
    std::lock_guard g(recent_mu_);
    for (auto it = recent_.upper_bound(from); it != recent_.end() && it->first <= to; ++it) {
      mem.push_back(it->second);
    }
  }
  // Unflushed entries are the newest ones (a contiguous tail); LMDB has the
  // rest, and maybe some of these too while a flush is trimming them.
  const Csn lmdb_to = mem.empty() ? to : mem.front().csn - 1;
  if (newest_first) {
    for (auto it = mem.rbegin(); it != mem.rend(); ++it) {
      if (!fn(*it)) return Status::Ok();
    }
  }
  if (log_table_.valid() && lmdb_to > from) {
    DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
    DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(log_table_));
    bool valid;
    if (newest_first) {
      DBFS_ASSIGN_OR_RETURN(valid, c->Seek(LogKey(lmdb_to == kMaxCsn ? lmdb_to : lmdb_to + 1)));
      if (valid) {
        DBFS_ASSIGN_OR_RETURN(valid, c->Prev());
      } else {
        DBFS_ASSIGN_OR_RETURN(valid, c->SeekLast());
      }
    } else {
      DBFS_ASSIGN_OR_RETURN(valid, c->Seek(LogKey(from + 1)));
    }
    while (valid) {
      DBFS_ASSIGN_OR_RETURN(CommitRecord rec, DecodeLogRecord(c->key(), c->value()));
      if (rec.csn <= from || rec.csn > lmdb_to) break;
      if (!fn(rec)) return Status::Ok();
      DBFS_ASSIGN_OR_RETURN(valid, newest_first ? c->Prev() : c->Next());
    }
  }
  if (!newest_first) {
    for (const CommitRecord& rec : mem) {
      if (!fn(rec)) return Status::Ok();
    }
  }
  return Status::Ok();
}

Result<std::vector<std::pair<uint32_t, uint64_t>>> LocalStore::Segments() {
  const std::string wal_dir = dir_ + "/wal";
  DBFS_ASSIGN_OR_RETURN(std::vector<uint32_t> segs, wal::ListSegments(opts_.fs, wal_dir));
  std::vector<std::pair<uint32_t, uint64_t>> out;
  out.reserve(segs.size());
  for (uint32_t s : segs) {
    char name[32];
    snprintf(name, sizeof(name), "/%08u.wal", s);
    auto f = opts_.fs->Open(wal_dir + name, wal::FileSystem::kReadOnly);
    if (!f.ok()) {
      if (f.status().code() == Code::kNotFound) continue;  // removed meanwhile
      return f.TakeStatus();
    }
    DBFS_ASSIGN_OR_RETURN(uint64_t size, (*f)->Size());
    out.emplace_back(s, size);
  }
  return out;
}

Status LocalStore::RemoveSegment(uint32_t segment) {
  if (!wal_) return Status::ReadOnly("volume opened read-only");
  DBFS_RETURN_IF_ERROR(health());
  if (segment >= wal::LsnSegment(applied_lsn())) {
    return Status::Invalid("WAL segment " + std::to_string(segment) +
                           " still holds records recovery would replay");
  }
  return wal_->RemoveSegment(segment);
}

Status LocalStore::ForEachVersion(
    Table t, const std::function<void(std::string_view, Csn, std::optional<std::string_view>)>& fn) {
  // Overlay first, then LMDB (the ordering rule in overlay.h): a version
  // trimmed from the overlay in between is in the LMDB transaction.
  std::vector<std::pair<std::string, Chain>> ov;
  overlay_.CollectUpTo(t, kMaxCsn, &ov);
  for (const auto& [key, chain] : ov) {
    for (const auto& v : chain) {
      fn(key, v.csn, v.value ? std::optional<std::string_view>(*v.value) : std::nullopt);
    }
  }
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(""));
  while (valid) {
    std::string_view k = c->key(), v = c->value();
    if (k.size() < kCsnSuffix || v.empty()) return Status::Corruption("malformed versioned entry");
    fn(VersionLogical(k), VersionCsn(k),
       v[0] == kTagTombstone ? std::nullopt : std::optional<std::string_view>(v.substr(1)));
    DBFS_ASSIGN_OR_RETURN(valid, c->Next());
  }
  return Status::Ok();
}

Status LocalStore::ForEachKey(
    Table t,
    const std::function<Status(std::string_view, const std::vector<Version>&)>& fn) {
  // Overlay first, then LMDB (the ordering rule in overlay.h); a version in
  // both (a flush in between) is visited once.
  std::vector<std::pair<std::string, Chain>> ov;
  overlay_.CollectUpTo(t, kMaxCsn, &ov);
  size_t oi = 0;
  DBFS_ASSIGN_OR_RETURN(auto r, env_->BeginRead());
  DBFS_ASSIGN_OR_RETURN(auto c, r->NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->SeekFirst());
  std::vector<Version> versions;
  while (valid || oi < ov.size()) {
    std::string key;
    versions.clear();
    const bool from_lmdb =
        valid && (oi == ov.size() || VersionLogical(c->key()) <= std::string_view(ov[oi].first));
    if (from_lmdb) {
      key = std::string(VersionLogical(c->key()));
      while (valid && c->key().size() == key.size() + kCsnSuffix && VersionLogical(c->key()) == key) {
        std::string_view v = c->value();
        if (v.empty()) return Status::Corruption("empty versioned value");
        versions.push_back(Version{VersionCsn(c->key()), v[0] == kTagTombstone
                                                             ? std::nullopt
                                                             : std::optional<std::string>(v.substr(1))});
        DBFS_ASSIGN_OR_RETURN(valid, c->Next());
      }
      std::reverse(versions.begin(), versions.end());
    } else {
      key = ov[oi].first;
    }
    if (oi < ov.size() && ov[oi].first == key) {
      for (Version& v : ov[oi].second) {
        if (versions.empty() || v.csn > versions.back().csn) versions.push_back(std::move(v));
      }
      ++oi;
    }
    DBFS_RETURN_IF_ERROR(fn(key, versions));
  }
  return Status::Ok();
}

void LocalStore::FlusherLoop() {
  std::unique_lock lock(bg_mu_);
  while (!stop_) {
    bg_cv_.wait_for(lock, std::chrono::milliseconds(opts_.flush_interval_ms));
    if (stop_) break;
    lock.unlock();
    {
      std::lock_guard g(flush_mu_);
      Status st = FlushLocked();
      if (!st.ok()) spdlog::error("background flush failed (will retry): {}", st.ToString());
    }
    lock.lock();
  }
}

void LocalStore::SetFailed(const Status& s) {
  std::lock_guard g(fail_mu_);
  if (failed_.ok()) {
    spdlog::critical("I/O error, volume is now read-only until remounted: {}", s.ToString());
    failed_ = Status::ReadOnly("volume is read-only after an earlier I/O error: " + s.ToString());
  }
}

Result<Space> LocalStore::StatSpace() {
  struct statvfs v;
  if (statvfs(dir_.c_str(), &v) != 0) return Status::FromErrno(errno, "statvfs " + dir_);
  const uint64_t unit = v.f_frsize ? v.f_frsize : v.f_bsize;
  return Space{v.f_blocks * unit, v.f_bfree * unit, v.f_bavail * unit};
}

Status LocalStore::health() const {
  std::lock_guard g(fail_mu_);
  return failed_;
}

StoreStats LocalStore::Stats() const {
  StoreStats s;
  s.commits = commits_.load();
  s.flushes = flushes_.load();
  s.gc_versions_dropped = gc_dropped_.load();
  s.overlay_bytes = overlay_.bytes();
  s.lmdb_bytes = env_ ? env_->used_bytes() : 0;
  if (wal_) {
    const wal::WriterStats w = wal_->stats();
    s.wal = WalStats{w.appends, w.bytes, w.syncs, w.sync_requests, w.segments_created};
    // synced first: read in the other order, a sync in between could make
    // the pair claim more than was durable at either moment.
    s.wal.synced_lsn = wal_->synced_lsn();
    s.wal.written_lsn = wal_->written_lsn();
  }
  s.recovery = recovery_;
  return s;
}

}  // namespace dbfs::mvcc
