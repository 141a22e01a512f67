#include "elle/history.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include "elle/edn.h"

namespace dbfs::elle {
namespace {

Op MakeOp(Op::Type type, int64_t process, int64_t time, int64_t index, std::vector<Mop> value) {
  Op op;
  op.type = type;
  op.process = process;
  op.time = time;
  op.index = index;
  op.value = std::move(value);
  return op;
}

TEST(EdnWriter, WritesElleFormatExactly) {
  Op invoke = MakeOp(Op::kInvoke, 12, 123456, 0, {Mop::Append(3, 7), Mop::Read(5)});
  EXPECT_EQ(ToEdn(invoke),
            "{:type :invoke, :f :txn, :value [[:append 3 7] [:r 5 nil]], :process 12, "
            ":time 123456, :index 0}");
  Op ok = MakeOp(Op::kOk, 12, 234567, 1, {Mop::Append(3, 7), Mop::Read(5, {1, 2})});
  EXPECT_EQ(ToEdn(ok),
            "{:type :ok, :f :txn, :value [[:append 3 7] [:r 5 [1 2]]], :process 12, "
            ":time 234567, :index 1}");
  EXPECT_EQ(ToEdn(Mop::Read(5, {})), "[:r 5 []]");
  EXPECT_EQ(ToEdn(MakeOp(Op::kFail, -1, 0, 2, {})),
            "{:type :fail, :f :txn, :value [], :process -1, :time 0, :index 2}");
  EXPECT_EQ(TypeName(Op::kInfo), "info");
}

TEST(EdnWriter, RoundTrip) {
  History h;
  h.push_back(MakeOp(Op::kInvoke, 0, 10, 0, {Mop::Append(1, 1), Mop::Read(2)}));
  h.push_back(MakeOp(Op::kInvoke, 1, 11, 1, {Mop::Read(1)}));
  h.push_back(MakeOp(Op::kOk, 0, 12, 2, {Mop::Append(1, 1), Mop::Read(2, {})}));
  h.push_back(MakeOp(Op::kInfo, 1, 13, 3, {Mop::Read(1)}));
  h.push_back(MakeOp(Op::kInvoke, 2, 14, 4, {Mop::Append(-5, -9)}));
  h.push_back(MakeOp(Op::kFail, 2, 15, 5, {Mop::Append(-5, -9)}));
  h.push_back(MakeOp(Op::kInvoke, 3, 16, 6, {Mop::Read(1)}));
  h.push_back(
      MakeOp(Op::kOk, 3, 9'000'000'000'000, 7, {Mop::Read(1, {1, INT64_MAX, INT64_MIN + 1})}));
  std::ostringstream out;
  WriteHistory(h, out);
  ParseStats stats;
  auto back = ParseHistory(out.str(), &stats);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, h);
  EXPECT_EQ(stats.ops, 8);
  EXPECT_EQ(stats.skipped, 0);
  // One op per line.
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 8);
}

TEST(EdnReader, ToleratesJepsenExtras) {
  // No commas, extra keys, nemesis ops, a string with a brace, comments,
  // discards, a tagged value, maps as :error, a list instead of a vector.
  auto h = ParseHistory(R"(
; a Jepsen history
{:index 0 :time 5 :type :invoke :process 0 :f :txn :value [[:append 1 2]]}
{:type :info, :f :start-partition, :process :nemesis, :value nil, :index 1}
{:type :ok :process 0 :f :txn :value ([:append 1 2]) :index 2 :time 9
 :error {:msg "}weird{" :at #inst "2024-01-01T00:00:00Z"} #_ :ignored-key #_ 1 :extra #{1 2}}
{:type :invoke, :process 1, :value [[:r 1 nil]], :index 3}
{:type :ok, :process 1, :value [[:r 1 [2]]], :index 4, :time 1.5e3}
)");
  ASSERT_FALSE(h.ok());  // a float :time is not accepted...
  EXPECT_NE(h.status().message().find("line 8: :time must be an integer"), std::string::npos)
      << h.status().message();
  ParseStats stats;
  auto h2 = ParseHistory(R"(
; a Jepsen history
{:index 0 :time 5 :type :invoke :process 0 :f :txn :value [[:append 1 2]]}
{:type :info, :f :start-partition, :process :nemesis, :value nil, :index 1}
{:type :ok :process 0 :f :txn :value ([:append 1 2]) :index 2 :time 9
 :error {:msg "}weird{" :at #inst "2024-01-01T00:00:00Z"} #_ :ignored-key #_ 1 :extra #{1 2}}
{:type :invoke, :process 1, :value [[:r 1 nil]], :index 3}
{:type :ok, :process 1, :value [[:r 1 [2]]], :index 4}
)",
                         &stats);
  ASSERT_TRUE(h2.ok()) << h2.status().ToString();
  ASSERT_EQ(h2->size(), 4u);
  EXPECT_EQ(stats.skipped, 1);
  EXPECT_EQ((*h2)[1].type, Op::kOk);
  EXPECT_EQ((*h2)[1].index, 2);
  EXPECT_EQ((*h2)[1].time, 9);
  EXPECT_EQ((*h2)[3].value[0], Mop::Read(1, {2}));
}

TEST(EdnReader, AcceptsASingleVectorHistoryWithoutIndexOrProcess) {
  auto h = ParseHistory("[{:type :ok, :value [[:append :1 1]]}]");
  ASSERT_FALSE(h.ok());  // keyword keys are not our model
  EXPECT_NE(h.status().message().find("keys must be integers"), std::string::npos);

  h = ParseHistory("[{:type :ok, :value [[:append 1 1]]},\n {:type :ok, :value [[:r 1 [1]]]}]");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->size(), 2u);
  EXPECT_EQ((*h)[0].process, kNoProcess);
  EXPECT_EQ((*h)[1].index, 1);  // positional when :index is absent
  EXPECT_NE(ToEdn((*h)[0]).find(":process nil"), std::string::npos);
}

struct BadCase {
  const char* text;
  const char* expected;  // substring of the error, including the line
};

TEST(EdnReader, ErrorsNameTheLine) {
  const BadCase cases[] = {
      {"{:type :ok, :value [[:append 1 1]]}\n{:type :ok, :value [[:r 1 [1]]}\n",
       "line 2: unexpected '}', expected ']'"},
      {"{:type :ok, :value [[:append 1 1]]}\n\n{:type :ok, :value [[:r 1 [1]]]",
       "line 3: unexpected end of input: unterminated map opened on line 3"},
      {"{:type :ok\n :value [[:append 1 x]]}", "line 2: appended elements must be integers"},
      {"{:type :ok, :value [[:w 1 1]]}", "line 1: unsupported micro-op :w"},
      {"{:type :ok, :value [[:append 1]]}", "line 1: expected a micro-op"},
      {"{:type :done, :value []}", "line 1: unknown :type :done"},
      {"{:value []}", "line 1: operation has no :type"},
      {"\n\n{:type :ok, :f :read, :value []}", "line 3: unsupported :f :read"},
      {"{:type :ok, :value [[:r 1 [1 2}", "line 1: unexpected '}'"},
      {"{:type :ok :value}", "line 1: map has a key without a value"},
      {"{:type :ok, :value [[:append 1 99999999999999999999]]}", "does not fit in 64 bits"},
      {"{:type :ok, :value [[:append 1 1x]]}", "malformed number '1x'"},
      {"\"unterminated", "line 1: unterminated string"},
      {":ok", "expected an operation map"},
      {"]", "line 1: unexpected ']'"},
      {"{:type :ok, :value [[:r 1 [1 2]]], :index :later}", ":index must be an integer"},
  };
  for (const BadCase& c : cases) {
    auto h = ParseHistory(c.text);
    ASSERT_FALSE(h.ok()) << c.text;
    EXPECT_EQ(h.status().code(), Code::kInvalid);
    EXPECT_NE(h.status().message().find(c.expected), std::string::npos)
        << "input: " << c.text << "\nerror: " << h.status().message();
  }
}

TEST(EdnReader, DeepNestingIsAnErrorNotACrash) {
  std::string deep(100000, '[');
  auto h = ParseHistory(deep);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("nesting"), std::string::npos) << h.status().message();
}

TEST(EdnReader, GenericValues) {
  edn::Reader r(R"(nil true false -42 +7 3.5 "a\"b\n" \c :kw sym ns/sym [1 (2) #{3}] {:a 1} #t 5 ; c
  #_ skipped 9)");
  std::vector<std::string> seen;
  while (true) {
    auto v = r.Next();
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    if (!v->has_value()) break;
    seen.push_back((*v)->ToString());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"nil", "true", "false", "-42", "7", "3.500000",
                                            "\"a\\\"b\\n\"", "\\c", ":kw", "sym", "ns/sym",
                                            "[1 (2) #{3}]", "{:a 1}", "#t 5", "9"}));
}

TEST(HistoryFile, WriteAndReadBack) {
  History h;
  h.push_back(MakeOp(Op::kInvoke, 0, 1, 0, {Mop::Append(1, 1)}));
  h.push_back(MakeOp(Op::kOk, 0, 2, 1, {Mop::Append(1, 1)}));
  const std::string path = ::testing::TempDir() + "/elle_history_test.edn";
  ASSERT_TRUE(WriteHistoryFile(h, path).ok());
  auto back = ReadHistoryFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, h);
  auto missing = ReadHistoryFile(path + ".does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace dbfs::elle
