// Process-wide latency histograms and byte counters for the daemon's
// metrics (dbfs stats --json / --prometheus, -o metrics_port=; every metric
// is listed in docs/metrics.md). A site names its histogram once and keeps
// the reference:
//
//   static metrics::Histogram& h = metrics::Histogram::Named("wal_sync");
//   metrics::ScopedTimer t(h);   // observes the scope's duration
//
// Recording is a few relaxed atomic adds (no lock); registration takes a
// mutex once per name. A daemon serves one volume, so process-wide is
// per-volume there; in-process tests that open several volumes share them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace dbfs::metrics {

// Upper bounds of the buckets in nanoseconds (Prometheus "le"), then +Inf.
inline constexpr std::array<uint64_t, 14> kBucketBoundsNs = {
    10'000,      25'000,      50'000,      100'000,       250'000,       500'000,      1'000'000,
    2'500'000,   5'000'000,   10'000'000,  25'000'000,    100'000'000,   1'000'000'000, 10'000'000'000};

struct HistogramSnapshot {
  std::array<uint64_t, kBucketBoundsNs.size() + 1> buckets{};  // not cumulative; last: +Inf
  uint64_t count = 0;
  uint64_t sum_ns = 0;
};

class Histogram {
 public:
  // The histogram called `name` (created on first use; lives forever).
  static Histogram& Named(std::string_view name);
  // Every histogram, in name order.
  static void ForEach(const std::function<void(const std::string& name, const HistogramSnapshot&)>& fn);

  void Observe(std::chrono::nanoseconds d) {
    const uint64_t ns = d.count() < 0 ? 0 : static_cast<uint64_t>(d.count());
    size_t i = 0;
    while (i < kBucketBoundsNs.size() && ns > kBucketBoundsNs[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }
  HistogramSnapshot Snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kBucketBoundsNs.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// A monotonic counter (bytes read and written through FUSE).
class Counter {
 public:
  static Counter& Named(std::string_view name);
  static void ForEach(const std::function<void(const std::string& name, uint64_t value)>& fn);
  void Add(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& h) : h_(h), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() { h_.Observe(std::chrono::steady_clock::now() - start_); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Histogram& h_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace dbfs::metrics
