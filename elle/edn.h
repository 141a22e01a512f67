// A small reader for EDN (https://github.com/edn-format/edn), the format of
// Jepsen and Elle histories.
//
// It reads the whole language a history can contain — nil, booleans, integers,
// floats, strings, characters, keywords, symbols, vectors, lists, maps, sets,
// tagged values (#inst "..."), comments and #_ discards — into a generic Value
// tree. The history layer (elle/history.h) then picks out the subset it
// understands, so unknown keys and exotic values are tolerated, not rejected.
//
// Every Value remembers the line it started on, so errors found later (a
// missing :type, a micro-op of the wrong shape) can still name a line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::elle::edn {

struct Value {
  enum class Kind : uint8_t {
    kNil,
    kBool,
    kInt,
    kFloat,
    kString,
    kChar,
    kKeyword,  // str holds the name without the leading ':'
    kSymbol,
    kVector,
    kList,
    kMap,  // items holds k0 v0 k1 v1 ...
    kSet,
    kTagged,  // str holds the tag without '#', items[0] the tagged value
  };

  Kind kind = Kind::kNil;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string str;
  std::vector<Value> items;
  int line = 0;

  bool is_nil() const { return kind == Kind::kNil; }
  bool is_int() const { return kind == Kind::kInt; }
  bool is_keyword(std::string_view name) const { return kind == Kind::kKeyword && str == name; }
  // Vectors and lists both read as sequences ([1 2] and (1 2)).
  bool is_sequence() const { return kind == Kind::kVector || kind == Kind::kList; }

  // For a map: the value of keyword key `name`, or nullptr if absent.
  const Value* Get(std::string_view name) const;

  // EDN text of this value (for error messages; canonical spacing).
  std::string ToString() const;
};

// Reads successive top-level forms from a text buffer. Not thread-safe; the
// buffer must outlive the Reader.
class Reader {
 public:
  explicit Reader(std::string_view text) : text_(text) {}

  // The next top-level form, or nullopt at end of input. A syntax error
  // returns Invalid("line N: ..."); the reader is then unusable.
  Result<std::optional<Value>> Next();

  // Line of the current position (1-based).
  int line() const { return line_; }

 private:
  // Deep nesting is answered with an error, not a stack overflow.
  static constexpr int kMaxDepth = 512;

  Status Error(int line, std::string_view what) const;
  void SkipWhitespaceAndComments();
  Status ReadForm(Value* out, int depth);
  Status ReadCollection(char close, Value::Kind kind, Value* out, int depth);
  Status ReadString(Value* out);
  Status ReadToken(Value* out);
  std::string_view TakeToken();

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace dbfs::elle::edn
