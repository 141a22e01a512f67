// cluster_latency: round-trip latencies of the cluster clients against real
// etcd and Ceph clusters on this machine — the numbers that drive the
// cluster store's design (docs/cluster.md). Run by bench/cluster_latency.sh.
//
//   cluster_latency [--iterations N] [--etcd-members N] [--osds N]
//                   [--etcd ENDPOINTS] [--ceph-conf PATH --pool POOL]
//
// Without --etcd / --ceph-conf it brings up its own clusters (3 etcd
// members, 1 monitor + 3 memstore OSDs) through tests/cluster/*.sh and stops
// them at the end. Prints one line per operation: median, p90, p99 and mean
// over N timed runs (after a few untimed warm-up runs), in microseconds.
// Timings are reported, never judged.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "mvcc/cluster/etcd_client.h"
#include "mvcc/cluster/rados_client.h"
#include "tests/cluster/cluster_fixture.h"

namespace {

using dbfs::Status;
using namespace dbfs::mvcc::cluster;
using Clock = std::chrono::steady_clock;

struct Options {
  int iterations = 300;
  int etcd_members = 3;
  int osds = 3;
  std::string etcd;
  std::string ceph_conf;
  std::string pool = "dbfs";
};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "cluster_latency: %s\n", msg.c_str());
  std::exit(1);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

void Report(const std::string& name, std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))]; };
  const double mean = std::accumulate(us.begin(), us.end(), 0.0) / us.size();
  std::printf("%-38s %9.0f %9.0f %9.0f %9.0f %6zu\n", name.c_str(), pct(0.5), pct(0.9), pct(0.99),
              mean, us.size());
  std::fflush(stdout);
}

// Times `op` (which gets the iteration number) n times after 5 warm-ups.
void Measure(const std::string& name, int n, const std::function<void(int)>& op) {
  for (int i = 0; i < 5; ++i) op(-1 - i);
  std::vector<double> us;
  us.reserve(n);
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    op(i);
    us.push_back(Micros(Clock::now() - t0));
  }
  Report(name, us);
}

std::unique_ptr<EtcdClient> Etcd(const std::string& endpoints) {
  EtcdOptions o;
  o.endpoints = endpoints;
  o.timeout = std::chrono::seconds(10);
  auto r = EtcdClient::Connect(o);
  Check(r.status(), "etcd connect");
  return std::move(r).value();
}

void BenchEtcd(const Options& opt, const std::string& endpoints) {
  auto client = Etcd(endpoints);
  auto other = Etcd(endpoints);
  const int n = opt.iterations;
  const std::string p = "/bench/";
  Check(client->Put(p + "k", std::string(100, 'v')).status(), "put");

  Measure("etcd Range (linearizable)", n, [&](int) { Check(client->Range(p + "k").status(), "range"); });
  RangeOptions ser;
  ser.serializable = true;
  Measure("etcd Range (serializable)", n,
          [&](int) { Check(client->Range(p + "k", ser).status(), "range"); });
  // A snapshot read at a known revision: any member, no quorum round trip.
  RangeOptions at;
  at.serializable = true;
  at.revision = client->Range(p + "k")->revision;
  Measure("etcd Range at revision (serializable)", n,
          [&](int) { Check(client->Range(p + "k", at).status(), "range"); });
  Measure("etcd Put (100 B)", n, [&](int) { Check(client->Put(p + "k", std::string(100, 'v')).status(), "put"); });

  // Commit-time validation: N mod_revision compares (the read set) and one
  // put (the write set).
  for (int ncmp : {1, 16, 64, 128}) {
    std::vector<Compare> cmps;
    for (int i = 0; i < ncmp; ++i) {
      const std::string k = p + "c" + std::to_string(i);
      auto rev = client->Put(k, "x");
      Check(rev.status(), "put");
      cmps.push_back(Compare::ModRevision(k, Compare::Op::kEqual, *rev));
    }
    TxnRequest t;
    t.compares = cmps;
    t.success.push_back(TxnOp::Put(p + "result", "y"));
    Measure("etcd Txn " + std::to_string(ncmp) + " compares + 1 put", n, [&](int) {
      auto r = client->Txn(t);
      Check(r.status(), "txn");
      if (!r->succeeded) Die("txn compare failed");
    });
  }
  {
    // etcd's default limit is 128 operations per branch: a commit that
    // validates 128 keys and writes 128.
    TxnRequest t;
    for (int i = 0; i < 128; ++i) {
      const std::string k = p + "c" + std::to_string(i);
      auto rev = client->Put(k, "x");
      Check(rev.status(), "put");
      t.compares.push_back(Compare::ModRevision(k, Compare::Op::kEqual, *rev));
      t.success.push_back(TxnOp::Put(p + "w" + std::to_string(i), std::string(100, 'w')));
    }
    Measure("etcd Txn 128 compares + 128 puts", n / 3, [&](int) {
      auto r = client->Txn(t);
      Check(r.status(), "txn");
      if (!r->succeeded) Die("txn compare failed");
    });
  }

  // Watch delivery: a put on one client until the event reaches another
  // client's watch callback.
  std::mutex mu;
  std::condition_variable cv;
  int64_t seen = 0;
  WatchOptions wo;
  auto w = client->StartWatch(p + "watched", wo, [&](const WatchBatch& b) {
    if (b.events.empty()) return;
    std::lock_guard<std::mutex> l(mu);
    seen = b.events.back().kv.mod_revision;
    cv.notify_all();
  });
  Check(w.status(), "watch");
  std::vector<double> deliver_us;
  for (int i = -5; i < n; ++i) {
    const auto t0 = Clock::now();
    auto rev = other->Put(p + "watched", std::to_string(i));
    Check(rev.status(), "put");
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, std::chrono::seconds(10), [&] { return seen >= *rev; })) Die("watch event lost");
    const auto t2 = Clock::now();
    if (i >= 0) deliver_us.push_back(Micros(t2 - t0));
  }
  Report("etcd Watch: put start -> event", deliver_us);
  (*w)->Stop();
}

void BenchRados(const Options& opt, const std::string& conf, const std::string& pool) {
  RadosOptions o;
  o.conf_path = conf;
  o.pool = pool;
  o.timeout = std::chrono::seconds(10);
  const auto t0 = Clock::now();
  auto r = RadosClient::Connect(o);
  Check(r.status(), "rados connect");
  std::printf("%-38s %9.0f\n", "RADOS connect (once)", Micros(Clock::now() - t0));
  auto& rados = **r;
  const int n = opt.iterations;
  for (size_t size : {size_t{4096}, size_t{1} << 20}) {
    const std::string data(size, 'd');
    const std::string label = size == 4096 ? "4 KiB" : "1 MiB";
    // Distinct names over a small ring: new objects, bounded memory.
    Measure("RADOS write_full " + label, n, [&](int i) {
      Check(rados.WriteFull("bench-" + label + "-" + std::to_string((i + 64) % 32), data), "write");
    });
    Measure("RADOS read " + label, n, [&](int i) {
      auto got = rados.Read("bench-" + label + "-" + std::to_string((i + 64) % 32), 0, size);
      Check(got.status(), "read");
      if (got->size() != size) Die("short read");
    });
  }
  Measure("RADOS stat", n, [&](int) { Check(rados.Stat("bench-4 KiB-0").status(), "stat"); });
  // Parallel data writes: 16 x 64 KiB issued together (one 1 MiB file's
  // worth in chunks) against one 1 MiB write_full above.
  const std::string chunk(64 * 1024, 'c');
  Measure("RADOS 16 x 64 KiB write_full, batch", n / 3, [&](int i) {
    RadosBatch b(rados);
    for (int j = 0; j < 16; ++j) b.WriteFull("bench-par-" + std::to_string(((i + 64) % 8) * 16 + j), chunk);
    Check(b.Wait(), "batch");
  });
  auto names = rados.ListObjects("bench-");
  Check(names.status(), "list");
  RadosBatch cleanup(rados);
  for (const auto& name : *names) cleanup.Remove(name);
  Check(cleanup.Wait(), "cleanup");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--iterations") {
      opt.iterations = std::max(10, std::atoi(next().c_str()));
    } else if (a == "--etcd-members") {
      opt.etcd_members = std::atoi(next().c_str());
    } else if (a == "--osds") {
      opt.osds = std::atoi(next().c_str());
    } else if (a == "--etcd") {
      opt.etcd = next();
    } else if (a == "--ceph-conf") {
      opt.ceph_conf = next();
    } else if (a == "--pool") {
      opt.pool = next();
    } else {
      Die("unknown argument " + a + " (see the comment at the top of bench/cluster_latency.cc)");
    }
  }
  std::unique_ptr<dbfs::testing::EtcdCluster> etcd;
  std::unique_ptr<dbfs::testing::CephCluster> ceph;
  std::string error;
  if (opt.etcd.empty()) {
    etcd = dbfs::testing::EtcdCluster::Start(opt.etcd_members, &error);
    if (!etcd) Die("etcd cluster: " + error);
    opt.etcd = etcd->endpoints();
  }
  if (opt.ceph_conf.empty()) {
    ceph = dbfs::testing::CephCluster::Start(opt.osds, &error);
    if (!ceph) Die("Ceph cluster: " + error);
    opt.ceph_conf = ceph->conf_path();
    opt.pool = ceph->pool();
  }
  std::printf("%-38s %9s %9s %9s %9s %6s\n", "operation (microseconds)", "median", "p90", "p99",
              "mean", "n");
  BenchEtcd(opt, opt.etcd);
  BenchRados(opt, opt.ceph_conf, opt.pool);
  return 0;
}
