// The body of `dbfs elle run`: a list-append workload over the Elle protocol
// (elle/protocol.h) against a mounted DBFS volume, recorded as an Elle history
// and checked with our checker (elle/cli.h). With via "posix", each
// transaction is instead a `dbfs tx run -- sh -c ...` process working through
// the mount (printf >> to append, cat to read).
//
// Keys are files MNT/elle/k<ID>; an append adds "<value> " to the file, a read
// parses the file as a list of integers. Each client thread has its own
// connection (the volume's Unix socket, VOLUME/elle.sock, found through
// /proc/mounts) and runs transactions of 1..max_txn_len micro-ops over a
// skewed choice among `keys` active keys; a key is retired after
// kAppendsPerKey appends and replaced by a fresh one. The run ends with a read
// of every key ever used.
//
// With `volume` set, the runner mounts the volume itself (elle/daemon.h:
// `dbfs-mount VOLUME MNT -f -o MOUNT_OPTS`) and unmounts it at the end. The
// kill nemesis needs that, since it restarts the daemon: `kills` times during
// the run it records {:type :invoke, :f :kill, :process :nemesis}, SIGKILLs
// the daemon, clears the stale mount, records the :info completion, then
// remounts the volume with the same command (:f :start). A transaction whose
// COMMIT_TX got no answer is :info (it may or may not have committed); one
// that lost its connection before committing is :fail (a dropped connection
// and a restart both abort it). Clients wait for the remount, reconnect and
// go on; a client that saw :info continues as a new process.
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
  // Protocol clients send each transaction as one pipelined batch (BEGIN_TX
  // with an alias, its micro-ops, COMMIT_TX in one write) and then read the
  // answers, instead of one round trip per request. A transaction whose batch
  // was sent but whose COMMIT_TX got no answer is :info (it may have committed).
  bool pipeline = false;
  // Socket to use instead of the one found from the mount (tests).
  std::string socket;
  // Check strict serializability (realtime order): then an acknowledged
  // commit that later reads miss is an anomaly. Implied by nemesis "kill"
  // with durable commits.
  bool realtime = false;

  // The runner's own mount (elle/daemon.h): when `volume` is set, the runner
  // mounts it at `mount` (which must not be a mount point) and unmounts it at
  // the end.
  std::string volume;
  std::string mount_bin;   // dbfs-mount; default: next to this executable, else $PATH
  std::string mount_opts;  // its -o list, e.g. "allow_other,elle_port=7000"
  std::string daemon_log;  // the daemon's output; default: OUT.daemon.log

  // Faults: "none" or "kill" (needs `volume` and via "protocol").
  std::string nemesis = "none";
  int kills = 3;
  // Seconds between kills; 0 spreads them evenly over the run: the k-th
  // kill once k/(kills+1) of the transactions have started.
  double kill_interval = 0;
};

// Runs the workload, writes the history to options.out, checks it and prints
// the verdict with committed/aborted/info counts and commits/s to `out`.
// Returns 0 valid, 1 anomalies, 2 when the run or the check could not be done.
int RunWorkload(const RunOptions& options, std::ostream& out, std::ostream& err);

// The volume directory of the DBFS mount at `mount` (/proc/mounts source
// "dbfs:VOLUME"), or "" if it is not one.
std::string VolumeOfMount(const std::string& mount);

}  // namespace dbfs::elle
