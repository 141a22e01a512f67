// The history of a list-append test, in Jepsen/Elle's model, and its EDN form.
//
// A history is a sequence of operations in real-time order. Each transaction
// appears twice: an :invoke when a client starts it, and a completion by the
// same process — :ok (it committed), :fail (it certainly did not take effect)
// or :info (unknown; the process never invokes again). The value of a
// transaction is a vector of micro-operations over integer keys (lists):
//
//   [:append k v]   append the unique element v to list k
//   [:r k nil]      read list k; nil in the invocation, the list ([1 2]) in :ok
//
// One operation per line, exactly as Jepsen writes history.edn and as Elle
// (and elle-cli) read it:
//
//   {:type :invoke, :f :txn, :value [[:append 3 7] [:r 5 nil]], :process 12, :time 123456, :index
//   0}
//   {:type :ok, :f :txn, :value [[:append 3 7] [:r 5 [1 2]]], :process 12, :time 234567, :index 1}
//
// The reader accepts what Jepsen tools write beyond that: extra keys, commas or
// no commas, one op per line or a single top-level vector of ops, non-client
// ops (:process :nemesis) which it skips, and ops without :time or :index.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::elle {

// A micro-operation of a transaction.
struct Mop {
  enum F : uint8_t { kAppend, kRead };

  F f = kRead;
  int64_t key = 0;
  int64_t value = 0;                         // the appended element (kAppend only)
  std::optional<std::vector<int64_t>> list;  // read result (kRead); nullopt = nil

  static Mop Append(int64_t key, int64_t value) { return Mop{kAppend, key, value, std::nullopt}; }
  static Mop Read(int64_t key) { return Mop{kRead, key, 0, std::nullopt}; }
  static Mop Read(int64_t key, std::vector<int64_t> list) {
    return Mop{kRead, key, 0, std::move(list)};
  }

  bool operator==(const Mop&) const = default;
};

// Process of an op read from a history without a :process key.
inline constexpr int64_t kNoProcess = std::numeric_limits<int64_t>::min();

struct Op {
  enum Type : uint8_t { kInvoke, kOk, kFail, kInfo };

  Type type = kInvoke;
  int64_t process = 0;
  int64_t time = 0;   // nanoseconds since the test started (monotonic)
  int64_t index = 0;  // position in the history
  std::vector<Mop> value;

  bool operator==(const Op&) const = default;
};

using History = std::vector<Op>;

std::string_view TypeName(Op::Type type);  // "invoke", "ok", "fail", "info"

// EDN text of one micro-op: [:append 3 7], [:r 5 nil], [:r 5 [1 2]].
std::string ToEdn(const Mop& mop);
// EDN text of one op on one line (no trailing newline), keys in Elle's order.
std::string ToEdn(const Op& op);
// EDN of a transaction value: [[:append 3 7] [:r 5 nil]].
std::string ToEdn(const std::vector<Mop>& txn);

// Writes one op per line.
void WriteHistory(const History& history, std::ostream& out);
Status WriteHistoryFile(const History& history, const std::string& path);

struct ParseStats {
  int64_t ops = 0;      // client ops returned
  int64_t skipped = 0;  // non-client ops (e.g. :process :nemesis) ignored
};

// Parses an EDN history. Errors name the line: Invalid("line 12: ...").
Result<History> ParseHistory(std::string_view text, ParseStats* stats = nullptr);
// Reads and parses a file; "-" reads standard input.
Result<History> ReadHistoryFile(const std::string& path, ParseStats* stats = nullptr);

}  // namespace dbfs::elle
