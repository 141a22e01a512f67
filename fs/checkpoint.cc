#include "fs/checkpoint.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "fs/inode_format.h"
#include "kvstore/crash_point.h"
#include "kvstore/metrics.h"

namespace dbfs {

namespace {

using mvcc::Table;

struct Chunk {
  std::string key;
  SliceList slices;
  uint64_t bytes = 0;  // live bytes of the chunk
};

// The bytes a slice list reads over [lo, hi), and which of them are data.
Status Materialize(mvcc::Store* store, const SliceList& l, uint32_t lo, uint32_t hi,
                   std::string* bytes, std::string* covered) {
  bytes->assign(hi - lo, '\0');
  covered->assign(hi - lo, '\0');
  for (const Slice& s : l) {
    if (s.off < lo || s.end() > hi) return Status::Invalid("slice outside the range");
    DBFS_RETURN_IF_ERROR(store->ReadData(mvcc::DataRef{s.segment, s.data, s.len}, 0, s.len,
                                         bytes->data() + (s.off - lo)));
    std::fill(covered->begin() + (s.off - lo), covered->begin() + (s.end() - lo), '\1');
  }
  return Status::Ok();
}

}  // namespace

bool ExtentsReadTheSame(mvcc::Store* store, std::string_view before, std::string_view after) {
  auto a = DecodeSlices(before), b = DecodeSlices(after);
  if (!a.ok() || !b.ok()) return false;
  if (a->empty() || b->empty()) return a->empty() && b->empty();
  const uint32_t lo = std::min(a->front().off, b->front().off);
  const uint32_t hi = std::max(a->back().end(), b->back().end());
  std::string ab, bb, ac, bc;
  if (!Materialize(store, *a, lo, hi, &ab, &ac).ok()) return false;
  if (!Materialize(store, *b, lo, hi, &bb, &bc).ok()) return false;
  return ac == bc && ab == bb;
}

std::string CheckpointReport::ToString() const {
  std::string s;
  auto line = [&](const char* k, uint64_t v) {
    s += std::string(k) + " " + std::to_string(v) + "\n";
  };
  line("segments_before", segments_before);
  line("bytes_before", bytes_before);
  line("live_bytes", live_bytes);
  line("victims", victims);
  line("relocated_chunks", relocated_chunks);
  line("relocated_bytes", relocated_bytes);
  line("skipped_chunks", skipped_chunks);
  line("segments_removed", segments_removed);
  line("bytes_removed", bytes_removed);
  line("segments_after", segments_after);
  line("bytes_after", bytes_after);
  line("barrier_timed_out", barrier_timed_out ? 1 : 0);
  line("stopped_no_space", stopped_no_space ? 1 : 0);
  line("history_bytes", history_bytes);
  s += "millis " + std::to_string(static_cast<uint64_t>(millis)) + "\n";
  return s;
}

Checkpointer::Checkpointer(mvcc::Store* store, CheckpointOptions options)
    : store_(store), options_(options) {}

Checkpointer::~Checkpointer() { Stop(); }

CheckpointStats Checkpointer::stats() const {
  std::lock_guard g(mu_);
  return stats_;
}

void Checkpointer::Start(uint64_t every_bytes, std::chrono::seconds interval) {
  if (every_bytes == 0 && interval.count() == 0) return;
  {
    std::lock_guard g(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this, every_bytes, interval] { Loop(every_bytes, interval); });
}

void Checkpointer::Stop() {
  {
    std::lock_guard g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Checkpointer::Loop(uint64_t every_bytes, std::chrono::seconds interval) {
  uint64_t last_bytes = store_->Stats().wal.bytes;
  auto last_time = std::chrono::steady_clock::now();
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_; })) {
    const uint64_t bytes = store_->Stats().wal.bytes;
    const auto now = std::chrono::steady_clock::now();
    const bool by_size = every_bytes != 0 && bytes - last_bytes >= every_bytes;
    const bool by_time =
        interval.count() != 0 && bytes != last_bytes && now - last_time >= interval;
    if (!by_size && !by_time) continue;
    lk.unlock();
    auto r = Run();
    if (!r.ok()) {
      spdlog::error("background checkpoint failed (will retry): {}", r.status().ToString());
    }
    // Our own relocations count as appended bytes; start after them.
    last_bytes = store_->Stats().wal.bytes;
    last_time = std::chrono::steady_clock::now();
    lk.lock();
  }
}

Result<CheckpointReport> Checkpointer::Run() {
  std::lock_guard g(run_mu_);
  static metrics::Histogram& latency = metrics::Histogram::Named("checkpoint");
  metrics::ScopedTimer timer(latency);
  auto r = RunLocked();
  if (r.ok()) {
    std::lock_guard s(mu_);
    ++stats_.runs;
    stats_.relocated_bytes += r->relocated_bytes;
    stats_.segments_removed += r->segments_removed;
    stats_.bytes_removed += r->bytes_removed;
    stats_.history_bytes = r->history_bytes;
  }
  return r;
}

Result<CheckpointReport> Checkpointer::RunLocked() {
  const auto t0 = std::chrono::steady_clock::now();
  CheckpointReport rep;
  // A full disk may refuse LMDB's pages: go on with the segments already
  // below the applied LSN (the flush only widens the candidates).
  if (Status f = store_->Flush(); !f.ok()) {
    if (f.code() != Code::kNoSpace) return f;
    rep.stopped_no_space = true;
  }
  // A store whose data space is not a log has nothing to compact here.
  mvcc::SegmentedData* const log = store_->segmented_data();
  if (log == nullptr) return rep;
  DBFS_ASSIGN_OR_RETURN(auto segments, log->Segments());
  for (const auto& [seg, size] : segments) {
    ++rep.segments_before;
    rep.bytes_before += size;
  }
  // Only segments below both of these can go: the one being written, and the
  // one recovery starts replaying in.
  auto limit = [&] { return std::min(log->current_segment(), log->recovery_segment()); };

  // 1. Live bytes per segment, and the chunks with slices in old segments.
  std::map<uint32_t, uint64_t> live;
  std::vector<Chunk> old_chunks;
  mvcc::Csn barrier;
  // Fixed first: segments below it are sealed, so whatever a writer put in
  // them (committed or not) was appended before this moment. An empty marker
  // commit then makes every snapshot of such a writer older than the barrier
  // below, so the barrier waits for it; writers that begin later append at
  // or above this limit.
  const uint32_t scan_limit = limit();
  {
    mvcc::CommitRequest marker;
    marker.meta.flags = mvcc::kCommitInternal | mvcc::kCommitSameContent;
    DBFS_RETURN_IF_ERROR(store_->Commit(std::move(marker)).status());
  }
  {
    mvcc::Snapshot snap = store_->AcquireSnapshot();
    const uint32_t lim = scan_limit;
    Status bad;
    DBFS_RETURN_IF_ERROR(store_->Scan(
        snap.csn(), Table::kExtents, "", "", [&](std::string_view key, std::string_view value) {
          auto l = DecodeSlices(value);
          if (!l.ok()) {
            bad = l.status();
            return false;
          }
          bool old = false;
          uint64_t bytes = 0;
          for (const Slice& s : *l) {
            live[s.segment] += s.len;
            bytes += s.len;
            old |= s.segment < lim;
          }
          rep.live_bytes += bytes;
          if (old) old_chunks.push_back(Chunk{std::string(key), std::move(*l), bytes});
          return true;
        }));
    DBFS_RETURN_IF_ERROR(bad);

    // Segments that old versions history keeps (snapshots, the retention
    // window) refer to cannot go while they are kept: relocating the current
    // data out of them would only add a copy. Measured on the way: the file
    // data only those old versions hold (`history_bytes`).
    std::set<uint32_t> pinned;
    {
      const mvcc::Retention ret = store_->retention();
      std::vector<mvcc::Csn> pins;
      for (const auto& p : ret.snapshots) pins.push_back(p.csn);
      std::sort(pins.begin(), pins.end());
      auto kept = [&](mvcc::Csn a, mvcc::Csn b) {
        auto it = std::lower_bound(pins.begin(), pins.end(), a);
        return b > ret.horizon || (it != pins.end() && *it < b);
      };
      using SliceId = std::tuple<uint32_t, uint64_t, uint32_t>;
      DBFS_RETURN_IF_ERROR(log->ForEachKey(
          Table::kExtents,
          [&](std::string_view, const std::vector<mvcc::Version>& versions) -> Status {
            if (versions.size() < 2) return Status::Ok();
            std::set<SliceId> current, counted;
            if (versions.back().value) {
              DBFS_ASSIGN_OR_RETURN(SliceList l, DecodeSlices(*versions.back().value));
              for (const Slice& s : l) current.emplace(s.segment, s.data, s.len);
            }
            for (size_t i = 0; i + 1 < versions.size(); ++i) {
              if (!versions[i].value || !kept(versions[i].csn, versions[i + 1].csn)) continue;
              DBFS_ASSIGN_OR_RETURN(SliceList l, DecodeSlices(*versions[i].value));
              for (const Slice& s : l) {
                pinned.insert(s.segment);
                const SliceId id{s.segment, s.data, s.len};
                if (!current.count(id) && counted.insert(id).second) rep.history_bytes += s.len;
              }
            }
            return Status::Ok();
          }));
    }

    // 2. Victims: old segments less than live_threshold full, that no
    // version history keeps refers to.
    std::set<uint32_t> victims;
    for (const auto& [seg, size] : segments) {
      if (seg >= lim) break;
      if (pinned.count(seg)) continue;
      const uint64_t capacity = size > log->header_bytes() ? size - log->header_bytes() : 0;
      if (static_cast<double>(live[seg]) <
          options_.live_threshold * static_cast<double>(capacity)) {
        victims.insert(seg);
      }
    }
    rep.victims = victims.size();
    // Emptiest victims first, each victim's chunks together: on a full disk
    // relocation may stop early, and every victim finished by then frees a
    // whole segment for at most its live bytes of new log.
    auto rank = [&](const Chunk& c) {
      std::pair<uint64_t, uint32_t> r{UINT64_MAX, UINT32_MAX};
      for (const Slice& s : c.slices) {
        if (victims.count(s.segment)) r = std::min(r, std::make_pair(live[s.segment], s.segment));
      }
      return r;
    };
    std::stable_sort(old_chunks.begin(), old_chunks.end(),
                     [&](const Chunk& a, const Chunk& b) { return rank(a) < rank(b); });

    // 3. Relocate the chunks that touch a victim: each chunk's slices (all of
    // them: it costs little more and merges neighbours) into one DATA record.
    std::vector<mvcc::Write> batch;
    std::vector<std::string> batch_keys;
    uint64_t batch_bytes = 0;
    auto commit_batch = [&]() -> Status {
      if (batch.empty()) return Status::Ok();
      // A chunk a writer changed since the snapshot is a conflict.
      mvcc::CommitRequest req;
      req.meta.flags = mvcc::kCommitInternal | mvcc::kCommitSameContent;
      mvcc::ValidationSet& v = req.validation.emplace();
      v.snapshot = snap.csn();
      for (auto& k : batch_keys)
        v.write_keys.push_back(mvcc::KeyRef{Table::kExtents, std::move(k)});
      req.writes = std::move(batch);
      const size_t n = req.writes.size();
      auto r = store_->Commit(std::move(req));
      batch.clear();
      batch_keys.clear();
      batch_bytes = 0;
      if (r.ok()) {
        CrashPoint("checkpoint.relocate");  // tests: crash after a relocation commit
        return Status::Ok();
      }
      if (r.status().code() == Code::kNoSpace) {
        // Not committed: these chunks keep their old slices.
        rep.stopped_no_space = true;
        rep.skipped_chunks += n;
        return Status::Ok();
      }
      if (r.status().code() != Code::kConflict) return r.TakeStatus();
      rep.skipped_chunks += n;  // a writer got there first; next time
      return Status::Ok();
    };
    for (Chunk& c : old_chunks) {
      if (rep.stopped_no_space) break;
      bool hit = false;
      for (const Slice& s : c.slices) hit |= victims.count(s.segment) > 0;
      if (!hit) continue;
      std::string payload(c.bytes, '\0');
      uint64_t pos = 0;
      for (const Slice& s : c.slices) {
        DBFS_RETURN_IF_ERROR(store_->ReadData(mvcc::DataRef{s.segment, s.data, s.len}, 0, s.len,
                                              payload.data() + pos));
        pos += s.len;
      }
      Result<mvcc::DataRef> appended = store_->AppendData(payload);
      if (!appended.ok() && appended.status().code() == Code::kNoSpace) {
        rep.stopped_no_space = true;
        break;
      }
      DBFS_ASSIGN_OR_RETURN(mvcc::DataRef ref, std::move(appended));
      SliceList moved;
      pos = 0;
      for (const Slice& s : c.slices) {
        if (!moved.empty() && moved.back().end() == s.off) {
          moved.back().len += s.len;
        } else {
          moved.push_back(Slice{s.off, s.len, ref.segment, ref.offset + pos});
        }
        pos += s.len;
      }
      batch.push_back(mvcc::Write{Table::kExtents, c.key, EncodeSlices(moved)});
      batch_keys.push_back(c.key);
      batch_bytes += c.bytes;
      ++rep.relocated_chunks;
      rep.relocated_bytes += c.bytes;
      if (batch_bytes >= options_.batch_bytes) DBFS_RETURN_IF_ERROR(commit_batch());
    }
    DBFS_RETURN_IF_ERROR(commit_batch());
    rep.relocated_chunks -= std::min(rep.relocated_chunks, rep.skipped_chunks);
    barrier = store_->visible_csn();
  }

  // 4. Readers and transactions that began before the relocations may still
  // follow the old slices, and a writer that read a chunk before may commit it
  // with the old slices again: wait for all of them.
  const auto deadline = std::chrono::steady_clock::now() + options_.barrier_wait;
  while (store_->MinActiveSnapshot() < barrier) {
    if (std::chrono::steady_clock::now() >= deadline) {
      rep.barrier_timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!rep.barrier_timed_out) {
    CrashPoint("checkpoint.barrier");  // tests: crash after the snapshot barrier
    // The relocations reach LMDB (WAL synced first) and GC drops the versions
    // no snapshot can see any more; then every stored version counts. On a
    // full disk the flush may fail: still safe to go on, since unflushed
    // versions are in the overlay, which ForEachVersion counts too, and the
    // candidates are below the segment recovery starts in.
    Status flushed = store_->Flush();
    if (!flushed.ok() && flushed.code() != Code::kNoSpace) return flushed;
    if (!flushed.ok()) rep.stopped_no_space = true;
    std::set<uint32_t> referenced;
    Status bad;
    DBFS_RETURN_IF_ERROR(log->ForEachVersion(
        Table::kExtents, [&](std::string_view, mvcc::Csn, std::optional<std::string_view> v) {
          if (!v) return;
          auto l = DecodeSlices(*v);
          if (!l.ok()) {
            bad = l.status();
            return;
          }
          for (const Slice& s : *l) referenced.insert(s.segment);
        }));
    DBFS_RETURN_IF_ERROR(bad);
    const uint32_t lim = std::min(scan_limit, limit());
    for (const auto& [seg, size] : segments) {
      if (seg >= lim) break;
      if (referenced.count(seg)) continue;
      DBFS_RETURN_IF_ERROR(log->RemoveSegment(seg));
      ++rep.segments_removed;
      rep.bytes_removed += size;
      CrashPoint("checkpoint.remove");  // tests: crash between segment removals
    }
  }
  DBFS_ASSIGN_OR_RETURN(auto after, log->Segments());
  for (const auto& [seg, size] : after) {
    ++rep.segments_after;
    rep.bytes_after += size;
  }
  rep.millis =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (rep.segments_removed > 0 || rep.relocated_bytes > 0) {
    spdlog::info(
        "checkpoint: {} live bytes; relocated {} bytes in {} chunks, removed {} WAL segments "
        "({} bytes); WAL now {} bytes in {} segments ({:.0f} ms)",
        rep.live_bytes, rep.relocated_bytes, rep.relocated_chunks, rep.segments_removed,
        rep.bytes_removed, rep.bytes_after, rep.segments_after, rep.millis);
  } else {
    spdlog::debug("checkpoint: nothing to reclaim ({:.0f} ms)", rep.millis);
  }
  if (rep.barrier_timed_out) {
    spdlog::info(
        "checkpoint: a snapshot older than the relocations is still open; segments are "
        "removed by a later checkpoint");
  }
  if (rep.stopped_no_space) {
    spdlog::warn("checkpoint: the disk is full; stopped early after removing {} segments (a later "
                 "checkpoint goes on)",
                 rep.segments_removed);
  }
  return rep;
}

}  // namespace dbfs
