#include "elle/cli.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "elle/edn.h"
#include "elle/history.h"

namespace dbfs::elle {
namespace {

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// The whole report, explanation comments included, reads as one EDN map.
void ExpectOneEdnMap(const std::string& report, bool valid) {
  edn::Reader reader(report);
  auto form = reader.Next();
  ASSERT_TRUE(form.ok()) << form.status().ToString();
  ASSERT_TRUE(form->has_value());
  const edn::Value* v = (*form)->Get("valid?");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->kind, edn::Value::Kind::kBool);
  EXPECT_EQ(v->boolean, valid);
  ASSERT_NE((*form)->Get("anomalies"), nullptr);
  auto rest = reader.Next();
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  EXPECT_FALSE(rest->has_value());
}

TEST(RunCheck, ValidHistoryExitsZero) {
  const std::string path = WriteTemp("elle_cli_valid.edn", R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :ok, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 0, :time 3, :index 2}
{:type :ok, :f :txn, :value [[:r 1 [1]]], :process 0, :time 4, :index 3}
)");
  std::ostringstream out, err;
  EXPECT_EQ(RunCheck(path, /*realtime=*/true, out, err), kCheckValid);
  EXPECT_EQ(out.str().rfind("{:valid? true\n", 0), 0u) << out.str();
  EXPECT_NE(out.str().find(":realtime? true"), std::string::npos);
  EXPECT_NE(out.str().find(";; VALID: no anomalies in 2 transactions"), std::string::npos)
      << out.str();
  EXPECT_TRUE(err.str().empty());
  ExpectOneEdnMap(out.str(), /*valid=*/true);
}

TEST(RunCheck, AnomaliesExitOneAndAreExplained) {
  const std::string path = WriteTemp("elle_cli_gsingle.edn", R"(
{:type :invoke, :f :txn, :value [[:append 1 1]], :process 0, :time 1, :index 0}
{:type :ok, :f :txn, :value [[:append 1 1]], :process 0, :time 2, :index 1}
{:type :invoke, :f :txn, :value [[:r 1 nil]], :process 1, :time 3, :index 2}
{:type :ok, :f :txn, :value [[:r 1 []]], :process 1, :time 4, :index 3}
)");
  std::ostringstream out, err;
  // Serializable without realtime order...
  EXPECT_EQ(RunCheck(path, /*realtime=*/false, out, err), kCheckValid) << out.str();
  // ...but the read missed an append that had already completed.
  std::ostringstream out2;
  EXPECT_EQ(RunCheck(path, /*realtime=*/true, out2, err), kCheckAnomalies);
  const std::string s = out2.str();
  EXPECT_EQ(s.rfind("{:valid? false\n :anomaly-types [:G-single-realtime]", 0), 0u) << s;
  EXPECT_NE(s.find(":anomaly-counts {:G-single-realtime 1}"), std::string::npos) << s;
  EXPECT_NE(s.find(";; G-single-realtime #0 (1 found)"), std::string::npos) << s;
  EXPECT_NE(s.find(";;   - However,"), std::string::npos) << s;
  EXPECT_NE(s.find("a contradiction!"), std::string::npos) << s;
  ExpectOneEdnMap(s, /*valid=*/false);
}

TEST(RunCheck, UnreadableInputExitsTwo) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCheck(::testing::TempDir() + "/no-such-history.edn", false, out, err),
            kCheckUnreadable);
  EXPECT_NE(err.str().find("no-such-history.edn"), std::string::npos) << err.str();

  const std::string bad =
      WriteTemp("elle_cli_bad.edn", "{:type :ok, :value [[:append 1 1]]}\n{:type\n");
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCheck(bad, false, out2, err2), kCheckUnreadable);
  EXPECT_NE(err2.str().find("line 2"), std::string::npos) << err2.str();
  EXPECT_TRUE(out2.str().empty());

  const std::string dup = WriteTemp("elle_cli_dup.edn",
                                    "{:type :ok, :value [[:append 1 1]]}\n"
                                    "{:type :ok, :value [[:append 1 1]]}\n");
  std::ostringstream out3, err3;
  EXPECT_EQ(RunCheck(dup, false, out3, err3), kCheckUnreadable);
  EXPECT_NE(err3.str().find("twice"), std::string::npos) << err3.str();
}

}  // namespace
}  // namespace dbfs::elle
