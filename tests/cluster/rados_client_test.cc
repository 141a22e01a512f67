// RadosClient against one real Ceph cluster (1 monitor, 3 memstore OSDs) on
// 127.0.0.1, shared by every test here (each keeps to its own object-name
// prefix).
#include "mvcc/cluster/rados_client.h"

#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <thread>

#include "tests/cluster/cluster_fixture.h"

namespace dbfs::mvcc::cluster {
namespace {

using dbfs::testing::SharedCeph;
using std::chrono::seconds;

[[maybe_unused]] ::testing::Environment* const kCeph =
    ::testing::AddGlobalTestEnvironment(new SharedCeph(3));

// Bytes that differ at every offset, so a misplaced read shows.
std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

class RadosClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(SharedCeph::cluster(), nullptr) << "no Ceph cluster";
    RadosOptions o;
    o.pool = SharedCeph::cluster()->pool();
    o.conf_path = SharedCeph::cluster()->conf_path();
    o.timeout = seconds(10);
    auto r = RadosClient::Connect(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    client_ = std::move(r).value();
    prefix_ = dbfs::testing::TestPrefix();
  }
  void TearDown() override {
    if (HasFailure() && SharedCeph::cluster()) std::cerr << SharedCeph::cluster()->Logs();
  }
  std::string Oid(const std::string& name) const { return prefix_ + name; }

  std::unique_ptr<RadosClient> client_;
  std::string prefix_;
};

TEST_F(RadosClientTest, WriteReadStatRemoveRoundTrip) {
  const std::string oid = Oid("obj");
  const std::string data = Pattern(100000, 1);
  struct timespec before;
  clock_gettime(CLOCK_REALTIME, &before);
  ASSERT_TRUE(client_->WriteFull(oid, data).ok());

  auto all = client_->Read(oid, 0, data.size());
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, data);
  auto mid = client_->Read(oid, 4096, 1000);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(*mid, data.substr(4096, 1000));
  auto tail = client_->Read(oid, data.size() - 10, 4096);  // short read at the end
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(*tail, data.substr(data.size() - 10));
  auto past = client_->Read(oid, data.size() + 5, 100);
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->empty());
  auto none = client_->Read(oid, 0, 0);  // nothing, not "the whole object"
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  auto st = client_->Stat(oid);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->size, data.size());
  EXPECT_GE(st->mtime.tv_sec, before.tv_sec - 5);  // the OSD's clock is this machine's
  EXPECT_LE(st->mtime.tv_sec, before.tv_sec + 60);

  // A write past the end extends the object, zero-filling the hole.
  ASSERT_TRUE(client_->Write(oid, "tail", data.size() + 100).ok());
  EXPECT_EQ(client_->Stat(oid)->size, data.size() + 104);
  auto hole = client_->Read(oid, data.size(), 104);
  ASSERT_TRUE(hole.ok());
  EXPECT_EQ(*hole, std::string(100, '\0') + "tail");
  // An overwrite in the middle leaves the rest alone.
  ASSERT_TRUE(client_->Write(oid, "XYZ", 10).ok());
  EXPECT_EQ(*client_->Read(oid, 8, 7), data.substr(8, 2) + "XYZ" + data.substr(13, 2));

  // WriteFull replaces everything, shrinking the object.
  ASSERT_TRUE(client_->WriteFull(oid, "small").ok());
  EXPECT_EQ(client_->Stat(oid)->size, 5u);
  EXPECT_EQ(*client_->Read(oid, 0, 100), "small");

  ASSERT_TRUE(client_->Remove(oid).ok());
  EXPECT_EQ(client_->Read(oid, 0, 10).status().code(), Code::kNotFound);
  EXPECT_EQ(client_->Read(oid, 0, 0).status().code(), Code::kNotFound);
  EXPECT_EQ(client_->Stat(oid).status().code(), Code::kNotFound);
  const Status again = client_->Remove(oid);
  EXPECT_EQ(again.code(), Code::kNotFound);
  EXPECT_NE(again.message().find(oid), std::string::npos) << again.ToString();
}

TEST_F(RadosClientTest, EmptyObjectExists) {
  ASSERT_TRUE(client_->WriteFull(Oid("empty"), "").ok());
  auto st = client_->Stat(Oid("empty"));
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->size, 0u);
  EXPECT_TRUE(client_->Read(Oid("empty"), 0, 10)->empty());
}

TEST_F(RadosClientTest, ListObjectsByPrefix) {
  for (const char* name : {"list/b", "list/a", "list/c/d", "other"}) {
    ASSERT_TRUE(client_->WriteFull(Oid(name), name).ok());
  }
  auto r = client_->ListObjects(Oid("list/"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (std::vector<std::string>{Oid("list/a"), Oid("list/b"), Oid("list/c/d")}));
  auto none = client_->ListObjects(Oid("nothing-here/"));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(client_->Remove(Oid("list/b")).ok());
  EXPECT_EQ(client_->ListObjects(Oid("list/"))->size(), 2u);
}

TEST_F(RadosClientTest, BatchIssuesManyOperationsAtOnce) {
  constexpr int kObjects = 32;
  constexpr size_t kSize = 64 * 1024;
  {
    RadosBatch batch(*client_);
    for (int i = 0; i < kObjects; ++i) batch.WriteFull(Oid("b" + std::to_string(i)), Pattern(kSize, i));
    EXPECT_EQ(batch.pending(), static_cast<size_t>(kObjects));
    ASSERT_TRUE(batch.Wait().ok());
    EXPECT_EQ(batch.pending(), 0u);
  }
  std::vector<std::string> got(kObjects);
  RadosBatch reads(*client_);
  for (int i = 0; i < kObjects; ++i) reads.Read(Oid("b" + std::to_string(i)), 0, kSize + 100, &got[i]);
  std::string partial;
  reads.Read(Oid("b0"), kSize - 3, 10, &partial);
  ASSERT_TRUE(reads.Wait().ok());
  for (int i = 0; i < kObjects; ++i) EXPECT_EQ(got[i], Pattern(kSize, i)) << "object " << i;
  EXPECT_EQ(partial, Pattern(kSize, 0).substr(kSize - 3));

  // The first failure is reported, naming its object; the others still ran.
  RadosBatch mixed(*client_);
  std::string missing_out;
  mixed.Write(Oid("b0"), "patch", 0);
  mixed.Read(Oid("no-such-object"), 0, 10, &missing_out);
  mixed.Remove(Oid("b1"));
  const Status s = mixed.Wait();
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("no-such-object"), std::string::npos) << s.ToString();
  EXPECT_EQ(client_->Read(Oid("b0"), 0, 5).value(), "patch");
  EXPECT_EQ(client_->Stat(Oid("b1")).status().code(), Code::kNotFound);
}

TEST_F(RadosClientTest, ConcurrentWritesFromManyThreads) {
  constexpr int kThreads = 8, kPerThread = 8;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string oid = Oid("t" + std::to_string(t) + "-" + std::to_string(i));
        const std::string data = Pattern(16 * 1024 + i, t * 100 + i);
        if (!client_->WriteFull(oid, data).ok()) ++failures;
        auto r = client_->Read(oid, 0, data.size());
        if (!r.ok() || *r != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(client_->ListObjects(Oid("t"))->size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(RadosClientTest, ConnectErrorsAreClear) {
  RadosOptions o;
  o.conf_path = SharedCeph::cluster()->conf_path();
  o.pool = "no-such-pool";
  o.timeout = seconds(5);
  auto r = RadosClient::Connect(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("no-such-pool"), std::string::npos) << r.status().ToString();

  o.pool = SharedCeph::cluster()->pool();
  o.conf_path = "/nonexistent/ceph.conf";
  r = RadosClient::Connect(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/ceph.conf"), std::string::npos)
      << r.status().ToString();

  o.conf_path = SharedCeph::cluster()->conf_path();
  o.pool = "";
  EXPECT_EQ(RadosClient::Connect(o).status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace dbfs::mvcc::cluster
