// The body of `dbfs elle run`: a list-append workload over the Elle protocol
// (elle/protocol.h) against a mounted DBFS volume, recorded as an Elle history
// (elle/recorder.h) and checked with our checker (elle/cli.h). With via
// "posix", each transaction is instead a `dbfs tx run -- sh -c ...` process
// working through the mount (printf >> to append, cat to read).
//
// Keys are files MNT/elle/k<ID>; an append adds "<value> " to the file, a read
// parses the file as a list of integers. Each client thread has its own
// connection (the volume's Unix socket, VOLUME/elle.sock, found through
// /proc/mounts) and runs transactions of 1..max_txn_len micro-ops over a
// skewed choice among `keys` active keys; a key is retired after
// kAppendsPerKey appends and replaced by a fresh one. The run ends with a read
// of every key ever used.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace dbfs::elle {

inline constexpr int kAppendsPerKey = 200;

struct RunOptions {
  std::string mount;
  int clients = 10;
  int64_t ops = 1000;  // transactions, over all clients
  int keys = 8;        // active keys at any time
  int max_txn_len = 4;
  std::string via = "protocol";
  std::string out = "history.edn";
  uint64_t seed = 1;
  bool serializable = true;  // false: snapshot isolation
  bool durable = false;      // durable commits (COMMIT_TX flag bit0 / dbfs tx run --durable)
  // Socket to use instead of the one found from the mount (tests).
  std::string socket;
};

// Runs the workload, writes the history to options.out, checks it and prints
// the verdict with committed/aborted counts and commits/s to `out`. Returns
// 0 valid, 1 anomalies, 2 when the run or the check could not be done.
int RunWorkload(const RunOptions& options, std::ostream& out, std::ostream& err);

// The volume directory of the DBFS mount at `mount` (/proc/mounts source
// "dbfs:VOLUME"), or "" if it is not one.
std::string VolumeOfMount(const std::string& mount);

}  // namespace dbfs::elle
