#include "mvcc/local_store.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <chrono>
#include <limits>

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
    overlay_.Publish(&redo.writes, redo.csn);
    last_csn_ = redo.csn;
    last_lsn_ = rec.end_lsn;
    ++recovery_.commits_replayed;
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
  DBFS_RETURN_IF_ERROR(health());
  std::vector<Write>& writes = req.writes;
  // Without merges the redo is known now: encode it outside the mutex.
  std::string redo;
  if (req.merges.empty()) redo = EncodeRedo(0, next_ino_.load(), writes);
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
      redo = EncodeRedo(0, next_ino_.load(), writes);
    }
    res.csn = last_csn_ + 1;
    PatchRedoCsn(&redo, res.csn);
    auto a = wal_->Append(wal::RecordType::kCommit, redo);
    if (!a.ok()) {
      // ENOSPC: nothing was committed (the writer gave the space back).
      if (a.status().code() != Code::kNoSpace) SetFailed(a.status());
      return a.TakeStatus();
    }
    end_lsn = a->end_lsn;
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

// Keeps, of the LMDB versions of `key`, the newest one visible to
// `min_active` and everything newer; a kept-oldest tombstone is dropped too.
// *done: only one version (or none) is left, nothing more to collect later.
Status LocalStore::GcKey(kv::WriteTxn& w, Table t, std::string_view key, Csn min_active, bool* done) {
  DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(tables_[static_cast<int>(t)]));
  DBFS_ASSIGN_OR_RETURN(bool valid, c->Seek(VersionKey(key, std::numeric_limits<Csn>::max())));
  int kept = 0;
  bool base_seen = false;
  while (valid && c->key().size() == key.size() + kCsnSuffix && VersionLogical(c->key()) == key) {
    Csn csn = VersionCsn(c->key());
    if (csn > min_active) {
      ++kept;
      DBFS_ASSIGN_OR_RETURN(valid, c->Next());
      continue;
    }
    if (!base_seen) {
      base_seen = true;
      // The base version: what every active snapshot at or below the newer
      // versions sees. A tombstone base with nothing newer can go entirely.
      if (c->value().size() >= 1 && c->value()[0] == kTagTombstone && kept == 0) {
        DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
        gc_dropped_.fetch_add(1, std::memory_order_relaxed);
        valid = c->Valid();
        continue;
      }
      ++kept;
      DBFS_ASSIGN_OR_RETURN(valid, c->Next());
      continue;
    }
    DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
    gc_dropped_.fetch_add(1, std::memory_order_relaxed);
    valid = c->Valid();
  }
  *done = kept <= 1;
  return Status::Ok();
}

Status LocalStore::FlushLocked() {
  Csn upto;
  wal::Lsn upto_lsn;
  {
    std::lock_guard g(commit_mu_);
    upto = last_csn_;
    upto_lsn = last_lsn_;
  }
  if (upto == flushed_csn_ && gc_pending_.empty()) return Status::Ok();
  const Csn min_active = std::min(MinActiveSnapshot(), upto);

  // Write-ahead rule: LMDB may only reference what the WAL holds durably —
  // its slices point into DATA records, and applied_lsn must never lie past
  // the durable end of the log (a power cut would otherwise lose data LMDB
  // refers to, or leave the log shorter than the applied LSN).
  DBFS_RETURN_IF_ERROR(SyncTo(upto_lsn));

  std::vector<std::pair<std::string, Chain>> collected[kNumTables];
  for (int i = 0; i < kNumTables; ++i) overlay_.CollectUpTo(static_cast<Table>(i), upto, &collected[i]);

  std::set<std::pair<int, std::string>> pending;
  Status st = env_->Write([&](kv::WriteTxn& w) -> Status {
    pending.clear();
    for (int i = 0; i < kNumTables; ++i) {
      const kv::Table tbl = tables_[i];
      for (const auto& [key, chain] : collected[i]) {
        // Write every version a snapshot may still need: the newest one at or
        // below min_active (the base) and all newer ones.
        size_t first = 0;
        for (size_t j = 0; j < chain.size(); ++j) {
          if (chain[j].csn <= min_active) first = j;
        }
        for (size_t j = first; j < chain.size(); ++j) {
          DBFS_RETURN_IF_ERROR(w.Put(tbl, VersionKey(key, chain[j].csn), EncodeValue(chain[j].value)));
        }
        bool done = false;
        DBFS_RETURN_IF_ERROR(GcKey(w, static_cast<Table>(i), key, min_active, &done));
        if (!done) pending.emplace(i, key);
      }
    }
    for (const auto& [i, key] : gc_pending_) {
      bool done = false;
      DBFS_RETURN_IF_ERROR(GcKey(w, static_cast<Table>(i), key, min_active, &done));
      if (!done) pending.emplace(i, key);
    }
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaAppliedLsn, LE64String(upto_lsn)));
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaLastCsn, LE64String(upto)));
    DBFS_RETURN_IF_ERROR(w.Put(meta_, kMetaNextIno, LE64String(next_ino_.load())));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  // LMDB now holds everything up to `upto`; only now may the overlay forget it.
  for (int i = 0; i < kNumTables; ++i) overlay_.TrimUpTo(static_cast<Table>(i), collected[i], upto);
  gc_pending_ = std::move(pending);
  flushed_csn_ = upto;
  applied_lsn_.store(upto_lsn, std::memory_order_release);
  flushes_.fetch_add(1, std::memory_order_relaxed);
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
  }
  s.recovery = recovery_;
  return s;
}

}  // namespace dbfs::mvcc
