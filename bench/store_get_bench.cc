// Micro-benchmark of point reads that reach LMDB: mvcc::Store::Get (overlay
// miss, so every Get opens a kv::ReadTxn) and kv::Env::BeginRead + Get.
// Built and run by bench/store_get_bench.sh (not part of the CMake tree).
//
//   store_get_bench store|env [--keys N] [--gets N] [--threads T]
//
// Loads N keys (default 10,000; inode-sized values), flushes them into LMDB,
// then does --gets point reads (default 200,000) of keys in a fixed
// pseudo-random order, in RunStoreGets / RunEnvGets: the functions to give
// callgrind's --toggle-collect, so only the reads are counted. With
// --threads T > 1 the reads are split over T threads (wall time only; under
// callgrind use 1). Prints the wall time per read; the temporary volume is
// removed at the end.
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvstore/env.h"
#include "kvstore/key_codec.h"
#include "mvcc/local_store.h"
#include "mvcc/superblock.h"

namespace dbfs::bench {
namespace {

constexpr size_t kValueSize = 128;  // about an inode record

std::string Key(uint64_t i) { return kv::KeyBuilder().U64(i + 2).Take(); }

void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "store_get_bench: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

// The i-th key read: a fixed permutation-like walk over the key space.
inline uint64_t Pick(uint64_t i, uint64_t keys) { return (i * 7919 + 13) % keys; }

__attribute__((noinline)) uint64_t RunStoreGets(mvcc::Store* store, mvcc::Csn snap,
                                                const std::vector<std::string>* keys,
                                                uint64_t first, uint64_t n) {
  uint64_t found = 0;
  for (uint64_t i = first; i < first + n; ++i) {
    auto r = store->Get(snap, mvcc::Table::kInodes, (*keys)[Pick(i, keys->size())]);
    if (!r.ok()) Die("Store::Get", r.status());
    found += r->has_value() ? 1 : 0;
  }
  return found;
}

__attribute__((noinline)) uint64_t RunEnvGets(kv::Env* env, kv::Table t,
                                              const std::vector<std::string>* keys, uint64_t first,
                                              uint64_t n) {
  uint64_t found = 0;
  for (uint64_t i = first; i < first + n; ++i) {
    auto txn = env->BeginRead();
    if (!txn.ok()) Die("BeginRead", txn.status());
    auto v = (*txn)->Get(t, (*keys)[Pick(i, keys->size())]);
    if (!v.ok()) Die("ReadTxn::Get", v.status());
    found += v->has_value() ? 1 : 0;
  }
  return found;
}

// Runs fn(first, n) over `gets` reads split across `threads` threads;
// returns the number found and the wall seconds.
template <typename Fn>
std::pair<uint64_t, double> Timed(uint64_t gets, int threads, Fn fn) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<uint64_t> found(threads, 0);
  std::vector<std::thread> ts;
  const uint64_t per = gets / threads;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] { found[t] = fn(t * per, t == threads - 1 ? gets - t * per : per); });
  }
  for (auto& t : ts) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t total = 0;
  for (uint64_t f : found) total += f;
  return {total, s};
}

int Main(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "store") != 0 && std::strcmp(argv[1], "env") != 0)) {
    std::fprintf(stderr, "usage: store_get_bench store|env [--keys N] [--gets N] [--threads T]\n");
    return 2;
  }
  const bool store_mode = std::strcmp(argv[1], "store") == 0;
  uint64_t nkeys = 10000, gets = 200000;
  int threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--keys") == 0)
      nkeys = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--gets") == 0)
      gets = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--threads") == 0)
      threads = std::atoi(argv[i + 1]);
    else
      return std::fprintf(stderr, "unknown option %s\n", argv[i]), 2;
  }
  if (nkeys == 0 || threads < 1) return 2;

  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/dbfs-store-get-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return std::perror("mkdtemp"), 1;
  const std::string dir = tmpl;
  ::mkdir((dir + "/meta").c_str(), 0700);
  ::mkdir((dir + "/wal").c_str(), 0700);

  std::vector<std::string> keys;
  for (uint64_t i = 0; i < nkeys; ++i) keys.push_back(Key(i));
  const std::string value(kValueSize, 'v');
  uint64_t found = 0;
  double secs = 0;

  if (store_mode) {
    if (Status s = WriteSuperblock(dir, NewSuperblock()); !s.ok()) Die("mkfs", s);
    mvcc::StoreOptions o;
    o.flush_interval_ms = 1000000;  // flush only when asked
    auto opened = mvcc::LocalStore::Open(dir, o);
    if (!opened.ok()) Die("LocalStore::Open", opened.status());
    std::unique_ptr<mvcc::LocalStore> store = std::move(opened).value();
    for (uint64_t i = 0; i < nkeys; i += 1000) {
      std::vector<mvcc::Write> w;
      for (uint64_t j = i; j < std::min(nkeys, i + 1000); ++j) {
        w.push_back({mvcc::Table::kInodes, keys[j], value});
      }
      if (auto c = store->Commit(std::move(w), false); !c.ok()) Die("Commit", c.status());
    }
    // Empty the overlay: every Get below goes to LMDB.
    if (Status s = store->Flush(); !s.ok()) Die("Flush", s);
    mvcc::Snapshot snap = store->AcquireSnapshot();
    std::tie(found, secs) = Timed(gets, threads, [&](uint64_t first, uint64_t n) {
      return RunStoreGets(store.get(), snap.csn(), &keys, first, n);
    });
    if (Status s = store->Close(); !s.ok()) Die("Close", s);
  } else {
    auto opened = kv::Env::Open(dir + "/meta", kv::EnvOptions{});
    if (!opened.ok()) Die("Env::Open", opened.status());
    std::unique_ptr<kv::Env> env = std::move(opened).value();
    auto t = env->OpenTable("t");
    if (!t.ok()) Die("OpenTable", t.status());
    Status s = env->Write([&](kv::WriteTxn& w) -> Status {
      for (const std::string& k : keys) DBFS_RETURN_IF_ERROR(w.Put(*t, k, value));
      return Status::Ok();
    });
    if (!s.ok()) Die("Write", s);
    std::tie(found, secs) = Timed(gets, threads, [&](uint64_t first, uint64_t n) {
      return RunEnvGets(env.get(), *t, &keys, first, n);
    });
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (found != gets) {
    std::fprintf(stderr, "store_get_bench: found %llu of %llu keys\n",
                 static_cast<unsigned long long>(found), static_cast<unsigned long long>(gets));
    return 1;
  }
  std::printf("%s: %llu keys, %llu gets, %d thread(s): %.3f s, %.0f ns/get\n", argv[1],
              static_cast<unsigned long long>(nkeys), static_cast<unsigned long long>(gets),
              threads, secs, secs * 1e9 / static_cast<double>(gets));
  return 0;
}

}  // namespace
}  // namespace dbfs::bench

int main(int argc, char** argv) { return dbfs::bench::Main(argc, argv); }
