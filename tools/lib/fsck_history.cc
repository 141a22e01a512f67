#include "tools/lib/fsck_history.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "fs/slices.h"
#include "kvstore/coding.h"
#include "kvstore/env.h"
#include "mvcc/history_records.h"
#include "mvcc/keys.h"
#include "wal/file_system.h"
#include "wal/record_format.h"

namespace dbfs {

HistoryFindings CheckHistory(const std::string& volume_dir) {
  HistoryFindings out;
  kv::EnvOptions eo;
  eo.read_only = true;
  auto env = kv::Env::Open(volume_dir + "/meta", eo);
  if (!env.ok()) return out;  // the main pass reports it
  auto snaps_t = (*env)->OpenTable(mvcc::kSnapshotsTableName);
  auto log_t = (*env)->OpenTable(mvcc::kCommitLogTableName);
  auto meta_t = (*env)->OpenTable(mvcc::kMetaTableName);
  auto ext_t = (*env)->OpenTable(mvcc::kTableNames[static_cast<int>(mvcc::Table::kExtents)]);
  if (!snaps_t.ok() || !log_t.ok() || !meta_t.ok() || !ext_t.ok()) return out;  // format 1
  auto r = (*env)->BeginRead();
  if (!r.ok()) return out;
  uint64_t last_csn = 0, horizon = 0;
  if (auto v = (*r)->Get(*meta_t, mvcc::kMetaLastCsn); v.ok() && *v && (*v)->size() == 8) {
    last_csn = DecodeLE64((*v)->data());
  }
  if (auto v = (*r)->Get(*meta_t, mvcc::kMetaHistoryHorizon); v.ok() && *v) {
    if ((*v)->size() != 8) {
      out.errors.push_back("meta: 'history_horizon' is not 8 bytes");
    } else {
      horizon = DecodeLE64((*v)->data());
    }
  }
  std::vector<mvcc::Csn> pins;
  std::map<mvcc::Csn, std::string> pin_names;
  {
    auto c = (*r)->NewCursor(*snaps_t);
    for (auto ok = c.ok() ? (*c)->SeekFirst() : Result<bool>(false); ok.ok() && *ok; ok = (*c)->Next()) {
      auto s = mvcc::DecodeSnapshotRecord((*c)->key(), (*c)->value());
      if (!s.ok()) {
        out.errors.push_back("snapshots: " + s.status().message());
        continue;
      }
      // Versions at or before the last flushed CSN are in LMDB; a pin above
      // it can only name a commit still in the WAL (replayed at mount).
      pins.push_back(s->csn);
      pin_names[s->csn] = s->name;
    }
  }
  std::sort(pins.begin(), pins.end());
  {
    auto c = (*r)->NewCursor(*log_t);
    uint64_t n = 0, bad = 0;
    for (auto ok = c.ok() ? (*c)->SeekFirst() : Result<bool>(false); ok.ok() && *ok; ok = (*c)->Next()) {
      ++n;
      if (!mvcc::DecodeLogRecord((*c)->key(), (*c)->value()).ok()) ++bad;
    }
    if (bad) out.errors.push_back("commitlog: " + std::to_string(bad) + " entries do not decode");
    out.notes.push_back("history: " + std::to_string(pins.size()) + " snapshots, " +
                        std::to_string(n) + " commit log entries, horizon csn " +
                        std::to_string(horizon) + " (last flushed csn " +
                        std::to_string(last_csn) + ")");
  }
  // Every version that a snapshot or the window sees: its slices must lie
  // inside a WAL segment that exists.
  std::map<uint32_t, int64_t> seg_size;
  auto size_of = [&](uint32_t seg) {
    auto it = seg_size.find(seg);
    if (it != seg_size.end()) return it->second;
    struct stat st {};
    const int64_t sz = stat(wal::SegmentPath(volume_dir + "/wal", seg).c_str(), &st) == 0 ? st.st_size : -1;
    seg_size[seg] = sz;
    return sz;
  };
  auto c = (*r)->NewCursor(*ext_t);
  if (!c.ok()) return out;
  std::string key;
  mvcc::Csn newer = mvcc::kMaxCsn;  // csn of the next newer version of `key`
  uint64_t missing = 0;
  for (auto ok = (*c)->SeekFirst(); ok.ok() && *ok; ok = (*c)->Next()) {
    std::string_view k = (*c)->key(), v = (*c)->value();
    if (k.size() < mvcc::kCsnSuffix || v.empty()) continue;  // the main pass reports it
    const std::string logical(mvcc::VersionLogical(k));
    const mvcc::Csn csn = mvcc::VersionCsn(k);
    if (logical != key) {
      key = logical;
      newer = mvcc::kMaxCsn;
    }
    const mvcc::Csn succ = newer;
    newer = csn;
    if (succ == mvcc::kMaxCsn || v[0] != mvcc::kTagLive) continue;  // current: the main pass
    auto pin = std::lower_bound(pins.begin(), pins.end(), csn);
    const bool by_pin = pin != pins.end() && *pin < succ;
    if (!(succ > horizon || by_pin)) continue;  // nobody sees it
    auto l = DecodeSlices(v.substr(1));
    if (!l.ok()) {
      out.errors.push_back("extents: a version kept by history does not decode (csn " +
                           std::to_string(csn) + ")");
      continue;
    }
    for (const Slice& s : *l) {
      const int64_t sz = size_of(s.segment);
      if (sz < 0 || static_cast<uint64_t>(sz) < s.data + s.len) {
        if (missing++ < 20) {
          out.errors.push_back(
              "file data of inode " + std::to_string(GetBE64(logical.data())) + " at csn " +
              std::to_string(csn) + (by_pin ? " (snapshot '" + pin_names[*pin] + "')" : " (retention window)") +
              " is gone: WAL segment " + wal::SegmentFileName(s.segment) +
              (sz < 0 ? " is missing" : " is too short"));
        }
      }
    }
  }
  if (missing > 20) {
    out.errors.push_back(std::to_string(missing - 20) + " more slices kept by history are gone");
  }
  return out;
}

}  // namespace dbfs
