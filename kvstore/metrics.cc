#include "kvstore/metrics.h"

#include <map>
#include <memory>
#include <mutex>

namespace dbfs::metrics {

namespace {

template <typename T>
struct Registry {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<T>, std::less<>> items;  // guarded by mu

  T& Named(std::string_view name) {
    std::lock_guard g(mu);
    auto it = items.find(name);
    if (it == items.end()) it = items.emplace(std::string(name), std::make_unique<T>()).first;
    return *it->second;
  }
};

// Leaked on purpose: sites keep references until the process exits.
template <typename T>
Registry<T>& RegistryOf() {
  static auto* r = new Registry<T>();
  return *r;
}

}  // namespace

Histogram& Histogram::Named(std::string_view name) { return RegistryOf<Histogram>().Named(name); }

void Histogram::ForEach(
    const std::function<void(const std::string& name, const HistogramSnapshot&)>& fn) {
  auto& r = RegistryOf<Histogram>();
  std::lock_guard g(r.mu);
  for (const auto& [name, h] : r.items) fn(name, h->Snapshot());
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  for (size_t i = 0; i < s.buckets.size(); ++i) {
    s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  // The count is the buckets' sum, so the exposition stays consistent while
  // observations race with the snapshot.
  s.count = 0;
  for (uint64_t b : s.buckets) s.count += b;
  return s;
}

Counter& Counter::Named(std::string_view name) { return RegistryOf<Counter>().Named(name); }

void Counter::ForEach(const std::function<void(const std::string& name, uint64_t value)>& fn) {
  auto& r = RegistryOf<Counter>();
  std::lock_guard g(r.mu);
  for (const auto& [name, c] : r.items) fn(name, c->value());
}

}  // namespace dbfs::metrics
