#include "fuse/metrics_export.h"

#include <fmt/format.h>

#include <set>
#include <sstream>
#include <string_view>

#include "kvstore/metrics.h"

namespace dbfs::fuse {

namespace {

// `dbfs stats` values that are levels, not running totals.
bool IsGauge(std::string_view name) {
  static const std::set<std::string_view> kGauges = {
      "overlay_bytes", "lmdb_bytes", "visible_csn", "next_ino", "recovery_commits_replayed",
      "recovery_micros", "history_window_seconds", "history_horizon_csn",
      "history_log_from_csn", "history_snapshots", "history_bytes"};
  return kGauges.contains(name) || name.ends_with("_held") || name.ends_with("_waiting");
}

uint64_t ValueOf(const NamedValues& stats, std::string_view name) {
  for (const auto& [n, v] : stats) {
    if (n == name) return v;
  }
  return 0;
}

std::string Seconds(uint64_t ns) { return fmt::format("{:g}", static_cast<double>(ns) / 1e9); }

// Conflicts by reason: a serializable/snapshot validation failure at
// commit, or a --lock deadlock victim.
NamedValues ConflictsByReason(const NamedValues& stats) {
  return {{"validation", ValueOf(stats, "tx_conflicts")},
          {"deadlock", ValueOf(stats, "tx_aborts_deadlock")}};
}

}  // namespace

NamedValues ParseStatsText(const std::string& text) {
  NamedValues out;
  std::istringstream in(text);
  std::string name;
  uint64_t value = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    if (l >> name >> value) out.emplace_back(name, value);
  }
  return out;
}

std::string PrometheusText(const NamedValues& stats, uint64_t open_transactions) {
  std::string out;
  for (const auto& [name, value] : stats) {
    const bool gauge = IsGauge(name);
    const std::string metric = "dbfs_" + name + (gauge ? "" : "_total");
    out += fmt::format("# TYPE {} {}\n{} {}\n", metric, gauge ? "gauge" : "counter", metric, value);
  }
  out += fmt::format("# TYPE dbfs_open_transactions gauge\ndbfs_open_transactions {}\n",
                     open_transactions);
  out += "# TYPE dbfs_conflicts_total counter\n";
  for (const auto& [reason, value] : ConflictsByReason(stats)) {
    out += fmt::format("dbfs_conflicts_total{{reason=\"{}\"}} {}\n", reason, value);
  }
  metrics::Counter::ForEach([&](const std::string& name, uint64_t value) {
    out += fmt::format("# TYPE dbfs_{0}_total counter\ndbfs_{0}_total {1}\n", name, value);
  });
  out += "# HELP dbfs_latency_seconds time per operation kind (op)\n"
         "# TYPE dbfs_latency_seconds histogram\n";
  metrics::Histogram::ForEach([&](const std::string& op, const metrics::HistogramSnapshot& h) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.buckets.size(); ++i) {
      cumulative += h.buckets[i];
      const std::string le =
          i < metrics::kBucketBoundsNs.size() ? Seconds(metrics::kBucketBoundsNs[i]) : "+Inf";
      out += fmt::format("dbfs_latency_seconds_bucket{{op=\"{}\",le=\"{}\"}} {}\n", op, le,
                         cumulative);
    }
    out += fmt::format("dbfs_latency_seconds_sum{{op=\"{}\"}} {}\n", op, Seconds(h.sum_ns));
    out += fmt::format("dbfs_latency_seconds_count{{op=\"{}\"}} {}\n", op, h.count);
  });
  return out;
}

std::string MetricsJson(const NamedValues& stats, uint64_t open_transactions) {
  std::string out = "{\"counters\":{";
  bool first = true;
  auto sep = [&first] {
    const char* s = first ? "" : ",";
    first = false;
    return s;
  };
  for (const auto& [name, value] : stats) out += fmt::format("{}\"{}\":{}", sep(), name, value);
  metrics::Counter::ForEach(
      [&](const std::string& name, uint64_t value) { out += fmt::format("{}\"{}\":{}", sep(), name, value); });
  out += fmt::format("}},\"open_transactions\":{},\"conflicts\":{{", open_transactions);
  first = true;
  for (const auto& [reason, value] : ConflictsByReason(stats)) {
    out += fmt::format("{}\"{}\":{}", sep(), reason, value);
  }
  out += "},\"latency\":{";
  first = true;
  metrics::Histogram::ForEach([&](const std::string& op, const metrics::HistogramSnapshot& h) {
    out += fmt::format("{}\"{}\":{{\"count\":{},\"sum_seconds\":{},\"buckets\":[", sep(), op,
                       h.count, Seconds(h.sum_ns));
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.buckets.size(); ++i) {
      cumulative += h.buckets[i];
      const std::string le =
          i < metrics::kBucketBoundsNs.size() ? Seconds(metrics::kBucketBoundsNs[i]) : "\"+Inf\"";
      out += fmt::format("{}{{\"le\":{},\"count\":{}}}", i == 0 ? "" : ",", le, cumulative);
    }
    out += "]}";
  });
  out += "}}\n";
  return out;
}

}  // namespace dbfs::fuse
