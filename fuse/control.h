// The control channel: how the `dbfs` tool talks to the daemon serving a
// mount. Commands are reads of virtual xattrs ("dbfs.*") of the mount's root
// directory, so the daemon learns the caller's pid and uid from the request
// itself — no socket, no credentials protocol. They are never listed and
// cannot be set. The client reads with one large buffer: a size probe would
// run a command twice.
//
//   dbfs.stats                                        "name value" lines
//   dbfs.stats.json, dbfs.stats.prometheus            with latency histograms (docs/metrics.md)
//   dbfs.checkpoint                                   (root only) the report, "name value" lines
//   dbfs.tx.begin:PID[:serializable|snapshot][:lock][:cmd=CMD]  -> "ID"; binds PID's process tree
//   dbfs.tx.commit:ID[:durable]                       -> "ok CSN" | "conflict PATH" | "deadlock
//   WHY" dbfs.tx.abort:ID                                  -> "ok" | "deadlock WHY" (a victim
//   before) dbfs.tx.status                                    -> one line per open transaction
//
//   dbfs.more:TOKEN                                   the next page of a long reply
//   history commands (snapshots, diff, log, undo, tx keep): fuse/history_control.h
//
// ControlChannel parses a request and calls the typed engine API
// (fs/filesystem.h); binding processes to transactions is the adapter's
// (fuse/tx_binding.h). Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "fs/filesystem.h"
#include "fuse/tx_binding.h"
#include "kvstore/status.h"

namespace dbfs::fuse {

inline constexpr std::string_view kControlPrefix = "dbfs.";
inline constexpr std::string_view kStatsXattr = "dbfs.stats";
// The same counters with the latency histograms (fuse/metrics_export.h).
inline constexpr std::string_view kStatsJsonXattr = "dbfs.stats.json";
inline constexpr std::string_view kStatsPrometheusXattr = "dbfs.stats.prometheus";
inline constexpr std::string_view kCheckpointXattr = "dbfs.checkpoint";
inline constexpr std::string_view kTxStatusXattr = "dbfs.tx.status";
inline constexpr std::string_view kTxBeginPrefix = "dbfs.tx.begin:";
inline constexpr std::string_view kTxCommitPrefix = "dbfs.tx.commit:";
inline constexpr std::string_view kTxAbortPrefix = "dbfs.tx.abort:";
inline constexpr std::string_view kMorePrefix = "dbfs.more:";
// A paged reply (more follows) starts with this byte, the token and '\n'.
inline constexpr char kMoreMarker = '\x01';
inline constexpr size_t kMaxPage = 60000;

class ControlChannel {
 public:
  // Appends more "name value" lines to `dbfs stats` (the adapter's lock
  // manager counters).
  using ExtraStats = std::function<void(std::string* text)>;
  // `fs` and `bindings` must outlive the channel.
  ControlChannel(Filesystem* fs, TxBindings* bindings, ExtraStats extra = nullptr)
      : fs_(fs), bindings_(bindings), extra_(std::move(extra)) {}

  // Whether a getxattr of `name` on inode `ino` is a control request.
  static bool IsControl(uint64_t ino, std::string_view name) {
    return ino == kRootIno && name.starts_with(kControlPrefix);
  }
  // Runs the request `name` for caller `c` (c.tx: the caller's transaction,
  // as the bindings resolved it). kNoData for an unknown command.
  Result<std::string> Handle(const Caller& c, std::string_view name);
  // The metrics in Prometheus text format (also served by -o metrics_port=).
  std::string Prometheus();

 private:
  std::string Stats();
  std::string TxStatus();
  Result<std::string> Begin(const Caller& c, std::string_view args);
  Result<std::string> Commit(const Caller& c, std::string_view args);
  Result<std::string> Abort(const Caller& c, std::string_view args);
  Result<std::string> Page(const Caller& c, std::string reply);
  Result<std::string> More(const Caller& c, std::string_view token);

  struct Pending {
    uint32_t uid = 0;
    std::string text;
    size_t sent = 0;
    std::chrono::steady_clock::time_point created;
  };
  std::mutex pages_mu_;
  std::map<std::string, Pending> pages_;  // guarded by pages_mu_

  Filesystem* const fs_;
  TxBindings* const bindings_;
  const ExtraStats extra_;
};

}  // namespace dbfs::fuse
