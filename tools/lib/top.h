// dbfs top: a live view of a busy volume for an operator — operations per
// second and latencies per operation kind, open transactions, commits,
// conflicts, lock waits, bytes, WAL and space — from the daemon's
// Prometheus metrics (dbfs.stats.prometheus), sampled every interval.
#pragma once

#include <string>

namespace dbfs::cli {

struct TopOptions {
  double interval_s = 1.0;
  // Tables to print; 0: until interrupted. A terminal redraws one screen;
  // otherwise each table is printed after the other.
  int iterations = 0;
  bool terminal = false;
};

int Top(const std::string& mount, const TopOptions& o);

}  // namespace dbfs::cli
