// Checkpointer: gives back the WAL space that file data no longer needs
// (stores whose data space is a segmented log: mvcc::SegmentedData).
//
// File data lives in WAL DATA records (slices of the extents table point into
// them), so the WAL only shrinks when whole segments stop being referenced. A
// checkpoint (docs/ARCHITECTURE.md §5.4):
//   1. flushes the overlay into LMDB, so recovery needs no segment below the
//      applied LSN's;
//   2. measures, from the extents at one snapshot, the live bytes of every
//      older segment, and picks as victims those less than `live_threshold`
//      full;
//   3. relocates the live slices of the victims to the head of the log: per
//      chunk, one new DATA record and a commit of the chunk's new slice list,
//      validated against the snapshot (a chunk changed meanwhile is skipped —
//      its slices moved anyway, or the next checkpoint moves them);
//   4. waits until no snapshot older than the relocations is left (a reader or
//      transaction that began before may still follow the old slices), flushes
//      again (GC drops the old versions) and deletes every segment below the
//      applied one that no stored version of any extent refers to.
// Relocation never changes what a file reads; explicit transactions treat it
// as a benign change (ExtentsReadTheSame).
//
// Thread-safe; one checkpoint runs at a time. Background runs are triggered by
// WAL growth and by time (Start).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "kvstore/status.h"
#include "mvcc/store.h"

namespace dbfs {

struct CheckpointOptions {
  // A segment whose live bytes are below this fraction of its size is
  // emptied by relocation. 2/3 keeps the WAL within 1.5x the live data.
  double live_threshold = 2.0 / 3.0;
  // How long to wait for older snapshots to end before leaving the victims
  // for the next checkpoint.
  std::chrono::milliseconds barrier_wait{5000};
  // Relocated bytes per commit (a chunk is never split).
  uint64_t batch_bytes = 8ull << 20;
};

struct CheckpointReport {
  uint64_t segments_before = 0, bytes_before = 0;
  uint64_t segments_after = 0, bytes_after = 0;
  uint64_t live_bytes = 0;  // file data the extents reference
  uint64_t victims = 0;
  uint64_t relocated_chunks = 0, relocated_bytes = 0;
  uint64_t skipped_chunks = 0;  // changed while relocating: left for later
  uint64_t segments_removed = 0, bytes_removed = 0;
  bool barrier_timed_out = false;  // an old snapshot kept the victims alive
  // The disk filled while relocating: what was relocated so far counts and
  // the segments it emptied were removed; a later checkpoint goes on.
  bool stopped_no_space = false;
  // File data only old versions that history keeps (snapshots, the retention
  // window) hold, not the current state: what deleting all history would
  // free (slices counted once per chunk).
  uint64_t history_bytes = 0;
  double millis = 0;
  std::string ToString() const;
};

struct CheckpointStats {
  uint64_t runs = 0;
  uint64_t relocated_bytes = 0;
  uint64_t segments_removed = 0;
  uint64_t bytes_removed = 0;
  uint64_t history_bytes = 0;  // as measured by the last run
};

class Checkpointer {
 public:
  explicit Checkpointer(mvcc::Store* store, CheckpointOptions options = {});
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Runs one checkpoint now (waits for a running one to end first).
  Result<CheckpointReport> Run();

  // Background checkpoints: after `every_bytes` of WAL appended since the
  // last one (0: never by size), and every `interval` if anything was
  // appended (zero: never by time). Stop() ends them; idempotent.
  void Start(uint64_t every_bytes, std::chrono::seconds interval);
  void Stop();

  CheckpointStats stats() const;

 private:
  Result<CheckpointReport> RunLocked();
  void Loop(uint64_t every_bytes, std::chrono::seconds interval);

  mvcc::Store* const store_;
  const CheckpointOptions options_;
  std::mutex run_mu_;  // one checkpoint at a time

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;      // guarded by mu_
  CheckpointStats stats_;  // guarded by mu_
  std::thread thread_;
};

// Whether two encodings of one extent chunk read the same bytes (a relocation
// moves slices without changing them). Reads the data of slices that differ.
bool ExtentsReadTheSame(mvcc::Store* store, std::string_view before, std::string_view after);

}  // namespace dbfs
