// Helpers shared by the etcd client tests and the latency bench.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mvcc/cluster/etcd_client.h"

namespace dbfs::testing {

// Connects to `endpoints`; records a failure and returns null if it cannot.
inline std::unique_ptr<mvcc::cluster::EtcdClient> ConnectEtcd(
    const std::string& endpoints, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  mvcc::cluster::EtcdOptions o;
  o.endpoints = endpoints;
  o.timeout = timeout;
  auto r = mvcc::cluster::EtcdClient::Connect(o);
  if (!r.ok()) {
    ADD_FAILURE() << "connect " << endpoints << ": " << r.status().ToString();
    return nullptr;
  }
  return std::move(r).value();
}

// Collects what a watch delivers, for the test thread to wait on.
class WatchCollector {
 public:
  mvcc::cluster::WatchCallback Callback() {
    return [this](const mvcc::cluster::WatchBatch& b) {
      std::lock_guard<std::mutex> l(mu_);
      batches_.push_back(b);
      for (const auto& e : b.events) events_.push_back(e);
      cv_.notify_all();
    };
  }
  // Waits (bounded) until at least n events arrived.
  bool WaitEvents(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return events_.size() >= n; });
  }
  // Waits (bounded) until a batch of this kind arrived.
  bool WaitKind(mvcc::cluster::WatchBatch::Kind kind,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] {
      for (const auto& b : batches_) {
        if (b.kind == kind) return true;
      }
      return false;
    });
  }
  std::vector<mvcc::cluster::WatchBatch::Event> events() const {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  std::vector<mvcc::cluster::WatchBatch> batches() const {
    std::lock_guard<std::mutex> l(mu_);
    return batches_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<mvcc::cluster::WatchBatch> batches_;
  std::vector<mvcc::cluster::WatchBatch::Event> events_;
};

}  // namespace dbfs::testing
