// The names of the engine's counters (FsStats), in the order `dbfs stats`
// prints them: the one place that names them.
#pragma once

#include <cstdint>
#include <string_view>

#include "fs/filesystem.h"

namespace dbfs {

template <typename Fn>  // void(std::string_view name, uint64_t value)
void ForEachCounter(const FsStats& s, Fn&& fn) {
  fn("commits", s.commits);
  fn("fsync_calls", s.fsync_calls);
  fn("wal_sync_requests", s.wal_sync_requests);
  fn("wal_syncs", s.wal_syncs);
  fn("wal_bytes", s.wal_bytes);
  fn("wal_segments_created", s.wal_segments_created);
  fn("wal_written_lsn", s.wal_written_lsn);
  fn("wal_synced_lsn", s.wal_synced_lsn);
  fn("flushes", s.flushes);
  fn("gc_versions_dropped", s.gc_versions_dropped);
  fn("overlay_bytes", s.overlay_bytes);
  fn("lmdb_bytes", s.lmdb_bytes);
  fn("visible_csn", s.visible_csn);
  fn("next_ino", s.next_ino);
  fn("tx_commits", s.tx_commits);
  fn("tx_conflicts", s.tx_conflicts);
  fn("tx_aborts", s.tx_aborts);
  fn("tx_aborts_deadlock", s.tx_aborts_deadlock);
  fn("tx_lock_rebases", s.tx_lock_rebases);
  fn("tx_lock_acquired", s.tx_lock_acquired);
  fn("tx_lock_immediate", s.tx_lock_immediate);
  fn("tx_lock_backoffs", s.tx_lock_backoffs);
  fn("tx_lock_waits", s.tx_lock_waits);
  fn("tx_lock_deadlocks", s.tx_lock_deadlocks);
  fn("tx_lock_cancelled", s.tx_lock_cancelled);
  fn("recovery_commits_replayed", s.recovery_commits_replayed);
  fn("recovery_micros", s.recovery_micros);
  fn("checkpoints", s.checkpoints);
  fn("checkpoint_relocated_bytes", s.checkpoint_relocated_bytes);
  fn("checkpoint_segments_removed", s.checkpoint_segments_removed);
  fn("checkpoint_bytes_removed", s.checkpoint_bytes_removed);
  fn("history_window_seconds", s.history_window_s);
  fn("history_horizon_csn", s.history_horizon_csn);
  fn("history_log_from_csn", s.history_log_from_csn);
  fn("history_snapshots", s.history_snapshots);
  fn("history_bytes", s.history_bytes);
}

}  // namespace dbfs
