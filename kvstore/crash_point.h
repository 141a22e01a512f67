// Test crash points (like RocksDB's TEST_KILL_RANDOM, but named): with
// DBFS_TEST_CRASH_POINT=NAME or NAME:N in the environment, the process writes
// "dbfs: crash point NAME reached" to stderr and SIGKILLs itself the N-th time
// (default: the first) it passes CrashPoint("NAME"). Tests use it to crash a
// daemon at an exact step (in the middle of recovery, of a checkpoint) and to
// prove the crash landed there. Unset, a call costs one load of a bool.
#pragma once

namespace dbfs {

void CrashPointSlow(const char* name);
extern const bool kCrashPointsArmed;

inline void CrashPoint(const char* name) {
  if (kCrashPointsArmed) CrashPointSlow(name);
}

}  // namespace dbfs
