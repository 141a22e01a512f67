// The daemon's metrics in the two exposition formats: Prometheus text
// (format 0.0.4; dbfs stats --prometheus, -o metrics_port=) and JSON (dbfs
// stats --json). Input: the "name value" counters of `dbfs stats` and the
// number of open transactions; the latency histograms and byte counters come
// from kvstore/metrics.h. docs/metrics.md lists every metric.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dbfs::fuse {

using NamedValues = std::vector<std::pair<std::string, uint64_t>>;

// Parses `dbfs stats` text ("name value" lines).
NamedValues ParseStatsText(const std::string& text);

std::string PrometheusText(const NamedValues& stats, uint64_t open_transactions);
std::string MetricsJson(const NamedValues& stats, uint64_t open_transactions);

}  // namespace dbfs::fuse
