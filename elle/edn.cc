#include "elle/edn.h"

#include <cerrno>
#include <cstdlib>
#include <string>

namespace dbfs::elle::edn {
namespace {

bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ','; }

// Characters that end a token (number, keyword, symbol, character).
bool IsDelimiter(char c) {
  return IsWhitespace(c) || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}' ||
         c == '"' || c == ';';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

void AppendEscaped(const std::string& s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        out->push_back(c);
    }
  }
  out->push_back('"');
}

void Render(const Value& v, std::string* out) {
  using K = Value::Kind;
  auto seq = [&](const char* open, const char* close) {
    out->append(open);
    for (size_t i = 0; i < v.items.size(); ++i) {
      if (i) out->push_back(' ');
      Render(v.items[i], out);
    }
    out->append(close);
  };
  switch (v.kind) {
    case K::kNil:
      out->append("nil");
      break;
    case K::kBool:
      out->append(v.boolean ? "true" : "false");
      break;
    case K::kInt:
      out->append(std::to_string(v.integer));
      break;
    case K::kFloat:
      out->append(std::to_string(v.real));
      break;
    case K::kString:
      AppendEscaped(v.str, out);
      break;
    case K::kChar:
      out->append("\\").append(v.str);
      break;
    case K::kKeyword:
      out->append(":").append(v.str);
      break;
    case K::kSymbol:
      out->append(v.str);
      break;
    case K::kVector:
      seq("[", "]");
      break;
    case K::kList:
      seq("(", ")");
      break;
    case K::kSet:
      seq("#{", "}");
      break;
    case K::kMap:
      out->push_back('{');
      for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        if (i) out->append(", ");
        Render(v.items[i], out);
        out->push_back(' ');
        Render(v.items[i + 1], out);
      }
      out->push_back('}');
      break;
    case K::kTagged:
      out->append("#").append(v.str).push_back(' ');
      if (!v.items.empty()) Render(v.items[0], out);
      break;
  }
}

}  // namespace

const Value* Value::Get(std::string_view name) const {
  if (kind != Kind::kMap) return nullptr;
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    if (items[i].is_keyword(name)) return &items[i + 1];
  }
  return nullptr;
}

std::string Value::ToString() const {
  std::string out;
  Render(*this, &out);
  return out;
}

Status Reader::Error(int line, std::string_view what) const {
  return Status::Invalid("line " + std::to_string(line) + ": " + std::string(what));
}

void Reader::SkipWhitespaceAndComments() {
  while (pos_ < text_.size()) {
    char c = text_[pos_];
    if (c == '\n') {
      ++line_;
      ++pos_;
    } else if (IsWhitespace(c)) {
      ++pos_;
    } else if (c == ';') {
      while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
    } else {
      break;
    }
  }
}

Result<std::optional<Value>> Reader::Next() {
  SkipWhitespaceAndComments();
  while (pos_ + 1 < text_.size() && text_[pos_] == '#' && text_[pos_ + 1] == '_') {
    pos_ += 2;
    Value discarded;
    Status s = ReadForm(&discarded, 0);
    if (!s.ok()) return s;
    SkipWhitespaceAndComments();
  }
  if (pos_ >= text_.size()) return std::optional<Value>();
  Value v;
  Status s = ReadForm(&v, 0);
  if (!s.ok()) return s;
  return std::optional<Value>(std::move(v));
}

std::string_view Reader::TakeToken() {
  size_t start = pos_;
  // The first character is always part of the token (it may be '\' of a
  // character literal followed by a delimiter such as "\(").
  if (pos_ < text_.size()) ++pos_;
  while (pos_ < text_.size() && !IsDelimiter(text_[pos_])) ++pos_;
  return text_.substr(start, pos_ - start);
}

Status Reader::ReadForm(Value* out, int depth) {
  if (depth > kMaxDepth) return Error(line_, "nesting deeper than 512 levels");
  SkipWhitespaceAndComments();
  if (pos_ >= text_.size()) return Error(line_, "unexpected end of input, expected a value");
  out->line = line_;
  char c = text_[pos_];
  switch (c) {
    case '[':
      ++pos_;
      return ReadCollection(']', Value::Kind::kVector, out, depth);
    case '(':
      ++pos_;
      return ReadCollection(')', Value::Kind::kList, out, depth);
    case '{':
      ++pos_;
      return ReadCollection('}', Value::Kind::kMap, out, depth);
    case ']':
    case ')':
    case '}':
      return Error(line_, std::string("unexpected '") + c + "'");
    case '"':
      return ReadString(out);
    case '#': {
      if (pos_ + 1 >= text_.size()) return Error(line_, "unexpected end of input after '#'");
      char n = text_[pos_ + 1];
      if (n == '{') {
        pos_ += 2;
        return ReadCollection('}', Value::Kind::kSet, out, depth);
      }
      if (n == '_') {  // #_ discards the next form
        pos_ += 2;
        Value discarded;
        DBFS_RETURN_IF_ERROR(ReadForm(&discarded, depth + 1));
        SkipWhitespaceAndComments();
        if (pos_ >= text_.size()) return Error(line_, "nothing left after #_ discard");
        return ReadForm(out, depth);
      }
      if (IsDelimiter(n) || n == '#') return Error(line_, "malformed '#' dispatch");
      ++pos_;
      std::string_view tag = TakeToken();
      out->kind = Value::Kind::kTagged;
      out->str = std::string(tag);
      out->items.emplace_back();
      return ReadForm(&out->items.back(), depth + 1);
    }
    default:
      return ReadToken(out);
  }
}

Status Reader::ReadCollection(char close, Value::Kind kind, Value* out, int depth) {
  const int start_line = out->line;
  out->kind = kind;
  while (true) {
    SkipWhitespaceAndComments();
    if (pos_ >= text_.size()) {
      const char* what = kind == Value::Kind::kMap    ? "map"
                         : kind == Value::Kind::kSet  ? "set"
                         : kind == Value::Kind::kList ? "list"
                                                      : "vector";
      return Error(line_, std::string("unexpected end of input: unterminated ") + what +
                              " opened on line " + std::to_string(start_line));
    }
    char c = text_[pos_];
    if (c == close) {
      ++pos_;
      break;
    }
    if (c == ']' || c == ')' || c == '}') {
      return Error(line_, std::string("unexpected '") + c + "', expected '" + close +
                              "' to close the collection opened on line " +
                              std::to_string(start_line));
    }
    if (c == '#' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '_') {
      pos_ += 2;
      Value discarded;
      DBFS_RETURN_IF_ERROR(ReadForm(&discarded, depth + 1));
      continue;
    }
    out->items.emplace_back();
    DBFS_RETURN_IF_ERROR(ReadForm(&out->items.back(), depth + 1));
  }
  if (kind == Value::Kind::kMap && out->items.size() % 2 != 0) {
    return Error(start_line, "map has a key without a value");
  }
  return Status::Ok();
}

Status Reader::ReadString(Value* out) {
  const int start_line = line_;
  ++pos_;  // opening quote
  out->kind = Value::Kind::kString;
  while (true) {
    if (pos_ >= text_.size()) {
      return Error(start_line, "unterminated string");
    }
    char c = text_[pos_++];
    if (c == '"') return Status::Ok();
    if (c == '\n') ++line_;
    if (c != '\\') {
      out->str.push_back(c);
      continue;
    }
    if (pos_ >= text_.size()) return Error(start_line, "unterminated string");
    char e = text_[pos_++];
    switch (e) {
      case 'n':
        out->str.push_back('\n');
        break;
      case 't':
        out->str.push_back('\t');
        break;
      case 'r':
        out->str.push_back('\r');
        break;
      case '"':
        out->str.push_back('"');
        break;
      case '\\':
        out->str.push_back('\\');
        break;
      case 'u':
        // Unicode escapes are kept verbatim: histories only carry them in
        // free-text fields (:error messages) that nothing interprets.
        out->str.append("\\u");
        break;
      default:
        return Error(line_, std::string("unknown string escape '\\") + e + "'");
    }
  }
}

Status Reader::ReadToken(Value* out) {
  const int line = line_;
  std::string_view tok = TakeToken();
  if (tok.empty()) return Error(line, "empty token");
  char c0 = tok[0];
  if (c0 == '\\') {
    if (tok.size() < 2) return Error(line, "empty character literal");
    out->kind = Value::Kind::kChar;
    out->str = std::string(tok.substr(1));
    return Status::Ok();
  }
  if (c0 == ':') {
    if (tok.size() < 2) return Error(line, "empty keyword ':'");
    out->kind = Value::Kind::kKeyword;
    out->str = std::string(tok.substr(1));
    return Status::Ok();
  }
  bool numeric = IsDigit(c0) || ((c0 == '-' || c0 == '+') && tok.size() > 1 && IsDigit(tok[1]));
  if (numeric && tok.size() <= 18) {
    // Fast path for the common case, plain decimal integers that cannot
    // overflow (histories are mostly long lists of them).
    const bool negative = c0 == '-';
    size_t i = (c0 == '-' || c0 == '+') ? 1 : 0;
    int64_t n = 0;
    while (i < tok.size() && IsDigit(tok[i])) n = n * 10 + (tok[i++] - '0');
    if (i == tok.size()) {
      out->kind = Value::Kind::kInt;
      out->integer = negative ? -n : n;
      return Status::Ok();
    }
  }
  if (numeric) {
    std::string s(tok);
    bool is_float = s.find_first_of(".eE") != std::string::npos || s.back() == 'M';
    if (s.back() == 'N' || s.back() == 'M') s.pop_back();
    char* end = nullptr;
    errno = 0;
    if (is_float) {
      out->kind = Value::Kind::kFloat;
      out->real = std::strtod(s.c_str(), &end);
    } else {
      out->kind = Value::Kind::kInt;
      out->integer = std::strtoll(s.c_str(), &end, 10);
      if (errno == ERANGE) {
        return Error(line, "integer " + std::string(tok) + " does not fit in 64 bits");
      }
    }
    if (end == nullptr || *end != '\0') {
      return Error(line, "malformed number '" + std::string(tok) + "'");
    }
    return Status::Ok();
  }
  if (tok == "nil") {
    out->kind = Value::Kind::kNil;
  } else if (tok == "true" || tok == "false") {
    out->kind = Value::Kind::kBool;
    out->boolean = tok == "true";
  } else {
    out->kind = Value::Kind::kSymbol;
    out->str = std::string(tok);
  }
  return Status::Ok();
}

}  // namespace dbfs::elle::edn
