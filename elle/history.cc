#include "elle/history.h"

#include <cerrno>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "elle/edn.h"

namespace dbfs::elle {
namespace {

void AppendMop(const Mop& mop, std::string* out) {
  out->append(mop.f == Mop::kAppend ? "[:append " : "[:r ");
  out->append(std::to_string(mop.key));
  out->push_back(' ');
  if (mop.f == Mop::kAppend) {
    out->append(std::to_string(mop.value));
  } else if (!mop.list) {
    out->append("nil");
  } else {
    out->push_back('[');
    for (size_t i = 0; i < mop.list->size(); ++i) {
      if (i) out->push_back(' ');
      out->append(std::to_string((*mop.list)[i]));
    }
    out->push_back(']');
  }
  out->push_back(']');
}

void AppendTxn(const std::vector<Mop>& txn, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < txn.size(); ++i) {
    if (i) out->push_back(' ');
    AppendMop(txn[i], out);
  }
  out->push_back(']');
}

Status At(const edn::Value& v, std::string_view what) {
  return Status::Invalid("line " + std::to_string(v.line) + ": " + std::string(what));
}

Status ParseMop(const edn::Value& v, Mop* mop) {
  if (!v.is_sequence() || v.items.size() != 3) {
    return At(v, "expected a micro-op like [:append 3 7] or [:r 5 [1 2]], got " + v.ToString());
  }
  const edn::Value& f = v.items[0];
  const edn::Value& k = v.items[1];
  const edn::Value& x = v.items[2];
  if (!k.is_int()) {
    return At(k, "micro-op keys must be integers, got " + k.ToString());
  }
  mop->key = k.integer;
  if (f.is_keyword("append")) {
    if (!x.is_int()) return At(x, "appended elements must be integers, got " + x.ToString());
    mop->f = Mop::kAppend;
    mop->value = x.integer;
    return Status::Ok();
  }
  if (f.is_keyword("r")) {
    mop->f = Mop::kRead;
    if (x.is_nil()) {
      mop->list.reset();
      return Status::Ok();
    }
    if (!x.is_sequence()) return At(x, "a read returns nil or a list, got " + x.ToString());
    mop->list.emplace();
    mop->list->reserve(x.items.size());
    for (const edn::Value& e : x.items) {
      if (!e.is_int()) return At(e, "list elements must be integers, got " + e.ToString());
      mop->list->push_back(e.integer);
    }
    return Status::Ok();
  }
  return At(f, "unsupported micro-op " + f.ToString() +
                   " (the list-append checker knows :append and :r)");
}

// Converts one op map. Returns false in *client when the op is not a client
// op (its :process is not an integer, e.g. :nemesis) and is to be skipped.
Status ParseOp(const edn::Value& m, int64_t ordinal, Op* op, bool* client) {
  if (m.kind != edn::Value::Kind::kMap) {
    return At(m, "expected an operation map {:type ..., :value ...}, got " + m.ToString());
  }
  const edn::Value* process = m.Get("process");
  *client = true;
  if (process == nullptr) {
    op->process = kNoProcess;
  } else if (process->is_int()) {
    op->process = process->integer;
  } else {
    *client = false;  // :nemesis and friends
    return Status::Ok();
  }
  const edn::Value* type = m.Get("type");
  if (type == nullptr) return At(m, "operation has no :type");
  if (type->is_keyword("invoke")) {
    op->type = Op::kInvoke;
  } else if (type->is_keyword("ok")) {
    op->type = Op::kOk;
  } else if (type->is_keyword("fail")) {
    op->type = Op::kFail;
  } else if (type->is_keyword("info")) {
    op->type = Op::kInfo;
  } else {
    return At(*type, "unknown :type " + type->ToString() + " (expected :invoke :ok :fail :info)");
  }
  if (const edn::Value* f = m.Get("f"); f != nullptr && !f->is_keyword("txn")) {
    return At(*f, "unsupported :f " + f->ToString() + " (list-append histories use :f :txn)");
  }
  const edn::Value* time = m.Get("time");
  if (time != nullptr && !time->is_nil()) {
    if (!time->is_int()) return At(*time, ":time must be an integer, got " + time->ToString());
    op->time = time->integer;
  }
  const edn::Value* index = m.Get("index");
  if (index != nullptr && !index->is_nil()) {
    if (!index->is_int()) return At(*index, ":index must be an integer, got " + index->ToString());
    op->index = index->integer;
  } else {
    op->index = ordinal;
  }
  const edn::Value* value = m.Get("value");
  if (value != nullptr && !value->is_nil()) {
    if (!value->is_sequence()) {
      return At(*value, ":value must be a vector of micro-ops, got " + value->ToString());
    }
    op->value.resize(value->items.size());
    for (size_t i = 0; i < value->items.size(); ++i) {
      DBFS_RETURN_IF_ERROR(ParseMop(value->items[i], &op->value[i]));
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view TypeName(Op::Type type) {
  switch (type) {
    case Op::kInvoke:
      return "invoke";
    case Op::kOk:
      return "ok";
    case Op::kFail:
      return "fail";
    case Op::kInfo:
      return "info";
  }
  return "?";
}

std::string ToEdn(const Mop& mop) {
  std::string out;
  AppendMop(mop, &out);
  return out;
}

std::string ToEdn(const std::vector<Mop>& txn) {
  std::string out;
  AppendTxn(txn, &out);
  return out;
}

std::string ToEdn(const Op& op) {
  std::string out;
  out.reserve(96);
  out.append("{:type :").append(TypeName(op.type)).append(", :f :txn, :value ");
  AppendTxn(op.value, &out);
  out.append(", :process ");
  out.append(op.process == kNoProcess ? "nil" : std::to_string(op.process));
  out.append(", :time ").append(std::to_string(op.time));
  out.append(", :index ").append(std::to_string(op.index)).push_back('}');
  return out;
}

void WriteHistory(const History& history, std::ostream& out) {
  for (const Op& op : history) out << ToEdn(op) << '\n';
}

Status WriteHistoryFile(const History& history, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return Status::FromErrno(errno, "open " + path);
  WriteHistory(history, out);
  out.flush();
  if (!out) return Status::IOError("write " + path);
  return Status::Ok();
}

Result<History> ParseHistory(std::string_view text, ParseStats* stats) {
  edn::Reader reader(text);
  History history;
  ParseStats local;
  int64_t ordinal = 0;
  auto add = [&](const edn::Value& m) -> Status {
    Op op;
    bool client = false;
    DBFS_RETURN_IF_ERROR(ParseOp(m, ordinal++, &op, &client));
    if (client) {
      history.push_back(std::move(op));
      ++local.ops;
    } else {
      ++local.skipped;
    }
    return Status::Ok();
  };
  while (true) {
    auto form = reader.Next();
    if (!form.ok()) return form.TakeStatus();
    if (!form->has_value()) break;
    const edn::Value& v = **form;
    if (v.is_sequence()) {
      // A whole history as one vector (or list) of ops.
      for (const edn::Value& m : v.items) DBFS_RETURN_IF_ERROR(add(m));
    } else {
      DBFS_RETURN_IF_ERROR(add(v));
    }
  }
  if (stats != nullptr) *stats = local;
  return history;
}

Result<History> ReadHistoryFile(const std::string& path, ParseStats* stats) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::FromErrno(errno, "open " + path);
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) return Status::IOError("read " + path);
    text = std::move(buf).str();
  }
  return ParseHistory(text, stats);
}

}  // namespace dbfs::elle
