// The engine's counters (names: fs/stats.h).
#include "fs/engine.h"

namespace dbfs {

FsStats Engine::Stats() const {
  FsStats s;
  const mvcc::StoreStats st = store_->Stats();
  s.commits = st.commits;
  s.fsync_calls = fsync_calls_.load();
  s.wal_sync_requests = st.wal.sync_requests;
  s.wal_syncs = st.wal.syncs;
  s.wal_bytes = st.wal.bytes;
  s.wal_segments_created = st.wal.segments_created;
  s.wal_written_lsn = st.wal.written_lsn;
  s.wal_synced_lsn = st.wal.synced_lsn;
  s.flushes = st.flushes;
  s.gc_versions_dropped = st.gc_versions_dropped;
  s.overlay_bytes = st.overlay_bytes;
  s.lmdb_bytes = st.lmdb_bytes;
  s.visible_csn = store_->visible_csn();
  s.next_ino = store_->next_ino();
  s.tx_commits = tx_commits_.load();
  s.tx_conflicts = tx_conflicts_.load();
  s.tx_aborts = tx_aborts_.load();
  s.tx_aborts_deadlock = tx_deadlocks_.load();
  s.tx_lock_rebases = tx_rebases_.load();
  const txn::LockStats ls = tx_locks_.stats();
  s.tx_lock_acquired = ls.acquired;
  s.tx_lock_immediate = ls.immediate;
  s.tx_lock_backoffs = ls.backoffs;
  s.tx_lock_waits = ls.waits;
  s.tx_lock_deadlocks = ls.deadlocks;
  s.tx_lock_cancelled = ls.cancelled;
  s.recovery_commits_replayed = st.recovery.commits_replayed;
  s.recovery_micros = static_cast<uint64_t>(st.recovery.millis * 1000);
  const CheckpointStats cp = checkpointer_.stats();
  s.checkpoints = cp.runs;
  s.checkpoint_relocated_bytes = cp.relocated_bytes;
  s.checkpoint_segments_removed = cp.segments_removed;
  s.checkpoint_bytes_removed = cp.bytes_removed;
  const mvcc::Retention r = store_->retention();
  s.history_window_s = r.window_ns / 1000000000ull;
  s.history_horizon_csn = r.horizon;
  s.history_log_from_csn = r.log_from;
  s.history_snapshots = r.snapshots.size();
  s.history_bytes = cp.history_bytes;
  return s;
}

}  // namespace dbfs
