// RadosClient when OSDs die: each test owns a fresh Ceph cluster (1 monitor,
// 3 memstore OSDs, pool size 3, min_size 2), brought up in ~3 s.
#include <gtest/gtest.h>

#include <chrono>

#include "mvcc/cluster/rados_client.h"
#include "tests/cluster/cluster_fixture.h"

namespace dbfs::mvcc::cluster {
namespace {

using dbfs::testing::CephCluster;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class RadosFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = CephCluster::Start(3, &error);
    ASSERT_NE(cluster_, nullptr) << error;
  }
  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  }
  std::unique_ptr<RadosClient> Connect(milliseconds timeout) {
    RadosOptions o;
    o.pool = cluster_->pool();
    o.conf_path = cluster_->conf_path();
    o.timeout = timeout;
    auto r = RadosClient::Connect(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  std::unique_ptr<CephCluster> cluster_;
};

TEST_F(RadosFaultTest, KillingOneOsdLeavesWritesWorking) {
  auto client = Connect(seconds(10));
  ASSERT_NE(client, nullptr);
  // One object per PG, or near enough: 8 PGs, 32 names.
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(client->WriteFull("before" + std::to_string(i), "b").ok());

  ASSERT_TRUE(cluster_->KillOsd(1));
  // Every write succeeds (the PGs of the dead OSD re-peer on the other two
  // within the op timeout); none is lost.
  const auto t0 = Clock::now();
  for (int i = 0; i < 32; ++i) {
    const Status s = client->WriteFull("after" + std::to_string(i), "a" + std::to_string(i));
    ASSERT_TRUE(s.ok()) << "write " << i << ": " << s.ToString();
  }
  std::cerr << "32 writes with osd.1 killed: "
            << std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count() << " ms\n";
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(client->Read("before" + std::to_string(i), 0, 10).value(), "b");
    EXPECT_EQ(client->Read("after" + std::to_string(i), 0, 10).value(), "a" + std::to_string(i));
  }

  ASSERT_TRUE(cluster_->StartOsd(1));
  ASSERT_TRUE(client->WriteFull("restarted", "r").ok());
  EXPECT_EQ(client->Read("restarted", 0, 10).value(), "r");
}

TEST_F(RadosFaultTest, AllOsdsDownFailsWithinTheOpTimeout) {
  const milliseconds timeout{2000};
  auto client = Connect(timeout);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->WriteFull("x", "1").ok());
  for (int i = 0; i < cluster_->osds(); ++i) ASSERT_TRUE(cluster_->KillOsd(i));

  auto t0 = Clock::now();
  const Status w = client->WriteFull("y", "2");
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.code(), Code::kIOError) << w.ToString();
  EXPECT_EQ(w.ToErrno(), EIO);
  EXPECT_LE(took, 3 * timeout) << "write took " << took.count() << " ms";
  std::cerr << "write with every OSD down failed after " << took.count() << " ms: " << w.ToString()
            << "\n";

  t0 = Clock::now();
  const Status r = client->Read("x", 0, 1).status();
  took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  EXPECT_EQ(r.code(), Code::kIOError) << r.ToString();
  EXPECT_LE(took, 3 * timeout) << "read took " << took.count() << " ms";

  // Concurrent writes fail the same way, each bounded.
  t0 = Clock::now();
  RadosBatch batch(*client);
  for (int i = 0; i < 8; ++i) batch.WriteFull("z" + std::to_string(i), "3");
  const Status b = batch.Wait();
  took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  EXPECT_EQ(b.code(), Code::kIOError) << b.ToString();
  EXPECT_LE(took, 3 * timeout) << "batch took " << took.count() << " ms";
}

}  // namespace
}  // namespace dbfs::mvcc::cluster
