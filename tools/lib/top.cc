#include "tools/lib/top.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "tools/lib/control.h"

namespace dbfs::cli {

namespace {

struct OpSample {
  double count = 0;
  double sum_s = 0;
  std::map<double, double> buckets;  // le -> cumulative count (+Inf as infinity)
};

struct Sample {
  std::chrono::steady_clock::time_point at;
  std::map<std::string, double> values;  // unlabelled metrics
  std::map<std::string, double> conflicts;
  std::map<std::string, OpSample> ops;
};

// The value of label `key` in `{a="x",b="y"}`.
std::string Label(const std::string& labels, const std::string& key) {
  const std::string k = key + "=\"";
  const size_t p = labels.find(k);
  if (p == std::string::npos) return "";
  const size_t end = labels.find('"', p + k.size());
  return labels.substr(p + k.size(), end - p - k.size());
}

Result<Sample> Take(const std::string& mount) {
  DBFS_ASSIGN_OR_RETURN(std::string text, ControlRequest(mount, "dbfs.stats.prometheus"));
  Sample s;
  s.at = std::chrono::steady_clock::now();
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    const double v = std::strtod(line.c_str() + sp + 1, nullptr);
    std::string name = line.substr(0, sp), labels;
    if (const size_t brace = name.find('{'); brace != std::string::npos) {
      labels = name.substr(brace);
      name.resize(brace);
    }
    if (labels.empty()) {
      s.values[name] = v;
    } else if (name == "dbfs_conflicts_total") {
      s.conflicts[Label(labels, "reason")] = v;
    } else if (name.starts_with("dbfs_latency_seconds_")) {
      OpSample& op = s.ops[Label(labels, "op")];
      if (name == "dbfs_latency_seconds_count") {
        op.count = v;
      } else if (name == "dbfs_latency_seconds_sum") {
        op.sum_s = v;
      } else {
        const std::string le = Label(labels, "le");
        op.buckets[le == "+Inf" ? 1e300 : std::strtod(le.c_str(), nullptr)] = v;
      }
    }
  }
  return s;
}

// The bucket bound below which a fraction q of the interval's observations fell.
double Quantile(const OpSample& now, const OpSample* before, double q) {
  const double total = now.count - (before ? before->count : 0);
  if (total <= 0) return 0;
  for (const auto& [le, cum] : now.buckets) {
    double prev = 0;
    if (before) {
      auto it = before->buckets.find(le);
      if (it != before->buckets.end()) prev = it->second;
    }
    if (cum - prev >= q * total) return le;
  }
  return 0;
}

std::string Ms(double s) {
  if (s >= 1e299) return ">10s";
  return fmt::format("{:.3f}", s * 1e3);
}

std::string Bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string Render(const std::string& mount, const Sample& now, const Sample& before) {
  const double dt =
      std::max(1e-9, std::chrono::duration<double>(now.at - before.at).count());
  auto rate = [&](const std::string& name) {
    auto a = now.values.find(name);
    auto b = before.values.find(name);
    if (a == now.values.end()) return 0.0;
    return (a->second - (b == before.values.end() ? 0 : b->second)) / dt;
  };
  auto value = [&](const std::string& name) {
    auto a = now.values.find(name);
    return a == now.values.end() ? 0.0 : a->second;
  };
  const std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof(when), "%H:%M:%S", std::localtime(&t));
  std::string out = fmt::format("dbfs top  {}  {}  (every {:.1f} s)\n", mount, when, dt);
  out += fmt::format(
      "transactions: {:.0f} open  commits/s {:.1f}  tx commits/s {:.1f}  aborts/s {:.1f}  lock "
      "waits/s {:.1f}\n",
      value("dbfs_open_transactions"), rate("dbfs_commits_total"), rate("dbfs_tx_commits_total"),
      rate("dbfs_tx_aborts_total"), rate("dbfs_tx_lock_waits_total"));
  out += "conflicts/s:";
  for (const auto& [reason, v] : now.conflicts) {
    auto b = before.conflicts.find(reason);
    out += fmt::format(" {} {:.1f}", reason, (v - (b == before.conflicts.end() ? 0 : b->second)) / dt);
  }
  out += fmt::format("  (total {:.0f})\n", value("dbfs_tx_conflicts_total"));
  out += fmt::format("io: read {}/s  written {}/s  WAL {}/s  syncs/s {:.1f}\n",
                     Bytes(rate("dbfs_fuse_read_bytes_total")),
                     Bytes(rate("dbfs_fuse_write_bytes_total")), Bytes(rate("dbfs_wal_bytes_total")),
                     rate("dbfs_wal_syncs_total"));
  out += fmt::format("space: WAL written {}  LMDB {}  overlay {}  history {}  checkpoints {:.0f}\n",
                     Bytes(value("dbfs_wal_bytes_total")), Bytes(value("dbfs_lmdb_bytes")),
                     Bytes(value("dbfs_overlay_bytes")), Bytes(value("dbfs_history_bytes")),
                     value("dbfs_checkpoints_total"));
  struct Row {
    std::string op;
    double ops = 0, mean = 0, p99 = 0, total = 0;
  };
  std::vector<Row> rows;
  for (const auto& [op, s] : now.ops) {
    auto b = before.ops.find(op);
    const OpSample* prev = b == before.ops.end() ? nullptr : &b->second;
    const double n = s.count - (prev ? prev->count : 0);
    const double sum = s.sum_s - (prev ? prev->sum_s : 0);
    if (s.count == 0) continue;
    rows.push_back({op, n / dt, n > 0 ? sum / n : 0, Quantile(s, prev, 0.99), s.count});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.ops != b.ops ? a.ops > b.ops : a.total > b.total;
  });
  out += fmt::format("\n{:<22} {:>10} {:>11} {:>11} {:>12}\n", "OPERATION", "OPS/S", "MEAN ms",
                     "P99 ms", "TOTAL");
  for (const Row& r : rows) {
    out += fmt::format("{:<22} {:>10.1f} {:>11} {:>11} {:>12.0f}\n", r.op, r.ops,
                       r.ops > 0 ? Ms(r.mean) : "-", r.ops > 0 ? "<" + Ms(r.p99) : "-", r.total);
  }
  return out;
}

}  // namespace

int Top(const std::string& mount, const TopOptions& o) {
  auto first = Take(mount);
  if (!first.ok()) {
    std::fprintf(stderr, "dbfs top: %s\n", first.status().ToString().c_str());
    return 1;
  }
  Sample before = std::move(first).value();
  const auto interval = std::chrono::duration<double>(o.interval_s);
  for (int i = 0; o.iterations == 0 || i < o.iterations; ++i) {
    std::this_thread::sleep_for(interval);
    auto now = Take(mount);
    if (!now.ok()) {
      std::fprintf(stderr, "dbfs top: %s\n", now.status().ToString().c_str());
      return 1;
    }
    const std::string table = Render(mount, *now, before);
    if (o.terminal) {
      std::fputs("\033[H\033[2J", stdout);  // home, clear: redraw in place
    } else if (i > 0) {
      std::fputs("\n", stdout);
    }
    std::fputs(table.c_str(), stdout);
    std::fflush(stdout);
    before = std::move(now).value();
  }
  return 0;
}

}  // namespace dbfs::cli
