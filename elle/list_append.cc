#include "elle/list_append.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace dbfs::elle {
namespace {

constexpr int32_t kNone = -1;

// Anomaly types, most severe first; the order of :anomaly-types.
constexpr std::string_view kTypeOrder[] = {
    "G0",
    "G0-realtime",
    "G1a",
    "G1b",
    "G1c",
    "G1c-realtime",
    "G-single",
    "G-single-realtime",
    "G-nonadjacent",
    "G-nonadjacent-realtime",
    "G2-item",
    "G2-item-realtime",
    "dirty-update",
    "lost-update",
    "internal",
    "future-read",
    "duplicate-elements",
    "incompatible-order",
    "garbage-read",
};

int TypeRank(std::string_view type) {
  for (size_t i = 0; i < std::size(kTypeOrder); ++i) {
    if (kTypeOrder[i] == type) return static_cast<int>(i);
  }
  return static_cast<int>(std::size(kTypeOrder));
}

struct PairHash {
  size_t operator()(const std::pair<int64_t, int64_t>& p) const {
    uint64_t h = static_cast<uint64_t>(p.first) * 0x9e3779b97f4a7c15ull;
    h ^= static_cast<uint64_t>(p.second) + 0x7f4a7c159e3779b9ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return static_cast<size_t>(h);
  }
};

// A transaction: an invocation paired with its completion.
struct Txn {
  Op::Type type = Op::kInfo;
  const Op* invoke = nullptr;    // nullptr: a completion with no invocation
  const Op* complete = nullptr;  // nullptr: never completed (indeterminate)
  const std::vector<Mop>* mops = nullptr;
  size_t invoke_pos = 0;  // positions in the history (real-time order)
  size_t complete_pos = 0;

  // The op that stands for this transaction in reports (Elle shows completions).
  const Op& shown() const { return complete != nullptr ? *complete : *invoke; }
  bool in_graph() const { return type == Op::kOk || type == Op::kInfo; }
};

// What we know about one appended (or merely observed) element of a key.
struct Element {
  int32_t writer = kNone;        // txn that appended it
  bool intermediate = false;     // the writer appended to the key again later
  int32_t pos = -1;              // position in the key's version order; -1: unobserved
  std::vector<int32_t> readers;  // txns whose read of the key ended with it
};

struct KeyState {
  std::vector<std::pair<int32_t, int32_t>> reads;  // (txn, mop) with a known result
  const std::vector<int64_t>* longest = nullptr;
  int32_t longest_txn = kNone;  // the read that saw it: txn and mop index
  int32_t longest_mop = -1;
  std::vector<int64_t> order;         // distinct elements of the longest read
  std::vector<int32_t> init_readers;  // txns that read the empty list
};

std::string EdnList(const std::vector<int64_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(' ');
    out.append(std::to_string(v[i]));
  }
  out.push_back(']');
  return out;
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out.append("\\n");
      continue;
    }
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string OpName(const Op& op) { return "op " + std::to_string(op.index); }

class Checker {
 public:
  Checker(const History& history, const CheckOptions& options)
      : history_(history), options_(options) {}

  Result<CheckResult> Run() {
    DBFS_RETURN_IF_ERROR(PairOps());
    DBFS_RETURN_IF_ERROR(IndexAppends());
    IndexReads();
    FindReadAnomalies();
    FindInternal();
    FindDirtyUpdates();
    FindLostUpdates();
    BuildGraph();
    FindCycles();
    return Finish();
  }

 private:
  // --- Pairing -------------------------------------------------------------

  Status PairOps() {
    std::unordered_map<int64_t, int32_t> open;  // process -> txn
    txns_.reserve(history_.size() / 2 + 1);
    for (size_t i = 0; i < history_.size(); ++i) {
      const Op& op = history_[i];
      auto it = open.find(op.process);
      if (op.type == Op::kInvoke) {
        if (it != open.end()) {
          return Status::Invalid(
              "op " + std::to_string(op.index) + ": process " + std::to_string(op.process) +
              " invoked a transaction while op " +
              std::to_string(txns_[static_cast<size_t>(it->second)].invoke->index) +
              " was still open (each process must alternate :invoke and a completion)");
        }
        Txn t;
        t.invoke = &op;
        t.mops = &op.value;
        t.invoke_pos = t.complete_pos = i;
        open.emplace(op.process, static_cast<int32_t>(txns_.size()));
        txns_.push_back(t);
        continue;
      }
      if (it == open.end()) {
        // A completion without an invocation, as in Elle's own examples:
        // an instantaneous transaction.
        Txn t;
        t.type = op.type;
        t.complete = &op;
        t.mops = &op.value;
        t.invoke_pos = t.complete_pos = i;
        txns_.push_back(t);
        continue;
      }
      Txn& t = txns_[static_cast<size_t>(it->second)];
      t.type = op.type;
      t.complete = &op;
      t.complete_pos = i;
      // :ok carries the read results; :fail and :info usually repeat the
      // invocation (reads nil), and may omit the value altogether.
      if (op.type == Op::kOk || !op.value.empty()) t.mops = &op.value;
      open.erase(it);
    }
    // Invocations still open at the end are indeterminate (:info), as Jepsen
    // treats them.
    for (const Txn& t : txns_) {
      switch (t.type) {
        case Op::kOk:
          ++stats_.ok;
          break;
        case Op::kFail:
          ++stats_.fail;
          break;
        default:
          ++stats_.info;
          break;
      }
    }
    stats_.ops = static_cast<int64_t>(history_.size());
    return Status::Ok();
  }

  // A read's result if we know it: :ok reads (nil = the empty list) and the
  // non-nil reads of :info transactions. Failed transactions read nothing.
  const std::vector<int64_t>* KnownRead(const Txn& t, const Mop& mop) const {
    if (mop.f != Mop::kRead) return nullptr;
    if (t.type == Op::kOk) return mop.list ? &*mop.list : &kEmpty;
    if (t.type == Op::kInfo && t.complete != nullptr && mop.list) return &*mop.list;
    return nullptr;
  }

  // --- Indexes ---------------------------------------------------------------

  Status IndexAppends() {
    for (int32_t ti = 0; ti < static_cast<int32_t>(txns_.size()); ++ti) {
      const Txn& t = txns_[static_cast<size_t>(ti)];
      std::vector<std::pair<int64_t, int64_t>> last;  // key -> last element, this txn
      const auto& mops = *t.mops;
      for (int32_t mi = 0; mi < static_cast<int32_t>(mops.size()); ++mi) {
        const Mop& m = mops[static_cast<size_t>(mi)];
        if (m.f != Mop::kAppend) continue;
        Element& e = elements_[{m.key, m.value}];
        if (e.writer != kNone) {
          return Status::Invalid("element " + std::to_string(m.value) + " was appended to key " +
                                 std::to_string(m.key) + " twice (" +
                                 OpName(txns_[static_cast<size_t>(e.writer)].shown()) + " and " +
                                 OpName(t.shown()) +
                                 "); list-append needs every append to be unique");
        }
        e.writer = ti;
        auto it =
            std::find_if(last.begin(), last.end(), [&](const auto& p) { return p.first == m.key; });
        if (it == last.end()) {
          last.emplace_back(m.key, m.value);
        } else {
          elements_[{m.key, it->second}].intermediate = true;
          it->second = m.value;
        }
        keys_[m.key];  // every appended key is a key of the history
      }
    }
    return Status::Ok();
  }

  void IndexReads() {
    for (int32_t ti = 0; ti < static_cast<int32_t>(txns_.size()); ++ti) {
      const Txn& t = txns_[static_cast<size_t>(ti)];
      const auto& mops = *t.mops;
      for (int32_t mi = 0; mi < static_cast<int32_t>(mops.size()); ++mi) {
        const Mop& m = mops[static_cast<size_t>(mi)];
        const std::vector<int64_t>* list = KnownRead(t, m);
        if (list == nullptr) continue;
        KeyState& k = keys_[m.key];
        k.reads.emplace_back(ti, mi);
        if (k.longest == nullptr || list->size() > k.longest->size()) {
          k.longest = list;
          k.longest_txn = ti;
          k.longest_mop = mi;
        }
        if (list->empty()) {
          k.init_readers.push_back(ti);
        } else {
          elements_[{m.key, list->back()}].readers.push_back(ti);
        }
      }
    }
    stats_.keys = static_cast<int64_t>(keys_.size());
    sorted_keys_.reserve(keys_.size());
    for (auto& [key, k] : keys_) sorted_keys_.push_back(key);
    std::sort(sorted_keys_.begin(), sorted_keys_.end());
    // The version order of each key: the distinct elements of its longest read.
    for (int64_t key : sorted_keys_) {
      KeyState& k = keys_[key];
      if (k.longest == nullptr) continue;
      for (int64_t x : *k.longest) {
        Element& e = elements_[{key, x}];
        if (e.pos != -1) continue;  // a duplicate; reported separately
        e.pos = static_cast<int32_t>(k.order.size());
        k.order.push_back(x);
      }
    }
  }

  // --- Anomalies visible in single reads ------------------------------------

  static bool IsPrefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
  }

  std::string ReadText(const Txn& t, const Mop& m) const {
    return OpName(t.shown()) + " (process " + ProcessText(t.shown()) + ") read key " +
           std::to_string(m.key) + " = " + (m.list ? EdnList(*m.list) : std::string("nil"));
  }

  static std::string ProcessText(const Op& op) {
    return op.process == kNoProcess ? std::string("nil") : std::to_string(op.process);
  }

  void FindReadAnomalies() {
    for (int64_t key : sorted_keys_) {
      KeyState& k = keys_[key];
      if (k.longest == nullptr) continue;
      const bool longest_has_dups = k.order.size() != k.longest->size();
      bool incompatible_reported = false;
      // Positions of the version order already covered by an earlier read,
      // so each aborted or garbage element is reported once, at its first
      // reader, instead of once per later read.
      size_t covered_ok = 0, covered_any = 0;
      for (const auto& [ti, mi] : k.reads) {
        const Txn& t = txns_[static_cast<size_t>(ti)];
        const Mop& m = (*t.mops)[static_cast<size_t>(mi)];
        const std::vector<int64_t>& list = *KnownRead(t, m);
        const bool prefix = IsPrefix(list, *k.longest);
        if (!prefix && !incompatible_reported) {
          incompatible_reported = true;
          Anomaly a;
          a.type = "incompatible-order";
          a.ops = {t.shown().index, txns_[static_cast<size_t>(k.longest_txn)].shown().index};
          a.edn = "{:key " + std::to_string(key) + ", :values [" + EdnList(list) + " " +
                  EdnList(*k.longest) + "]}";
          const Txn& lt = txns_[static_cast<size_t>(k.longest_txn)];
          a.explanation = "Key " + std::to_string(key) + ": " + ReadText(t, m) + ", but " +
                          ReadText(lt, (*lt.mops)[static_cast<size_t>(k.longest_mop)]) +
                          ". Neither is a prefix of the other, so no single order of appends "
                          "explains both.";
          Add(std::move(a));
        }
        if (!prefix || longest_has_dups) CheckDuplicates(t, m, list);
        // Which elements does this read show for the first time?
        std::vector<int64_t> fresh_any, fresh_ok;
        if (prefix) {
          for (size_t p = covered_any; p < list.size(); ++p) fresh_any.push_back(list[p]);
          covered_any = std::max(covered_any, list.size());
          if (t.type == Op::kOk) {
            for (size_t p = covered_ok; p < list.size(); ++p) fresh_ok.push_back(list[p]);
            covered_ok = std::max(covered_ok, list.size());
          }
        } else {
          fresh_any = list;
          if (t.type == Op::kOk) fresh_ok = list;
        }
        for (int64_t x : fresh_any) {
          auto it = elements_.find({key, x});
          if (it != elements_.end() && it->second.writer != kNone) continue;
          if (!garbage_seen_.insert({key, x}).second) continue;
          Anomaly a;
          a.type = "garbage-read";
          a.ops = {t.shown().index};
          a.edn = "{:op " + ToEdn(t.shown()) + ", :mop " + ToEdn(m) + ", :element " +
                  std::to_string(x) + "}";
          a.explanation = ReadText(t, m) + ", but no transaction ever appended " +
                          std::to_string(x) + " to key " + std::to_string(key) + ".";
          Add(std::move(a));
        }
        for (int64_t x : fresh_ok) {
          auto it = elements_.find({key, x});
          if (it == elements_.end() || it->second.writer == kNone) continue;
          const Txn& w = txns_[static_cast<size_t>(it->second.writer)];
          if (w.type != Op::kFail) continue;
          if (!aborted_seen_.insert({key, x}).second) continue;
          Anomaly a;
          a.type = "G1a";
          a.ops = {t.shown().index, w.shown().index};
          a.edn = "{:op " + ToEdn(t.shown()) + ", :mop " + ToEdn(m) + ", :writer " +
                  ToEdn(w.shown()) + ", :element " + std::to_string(x) + "}";
          a.explanation = "Aborted read: " + ReadText(t, m) + ", which includes element " +
                          std::to_string(x) + ", appended by " + OpName(w.shown()) +
                          ", a transaction that failed:\n  " + ToEdn(w.shown());
          Add(std::move(a));
        }
        // G1b: the read ends at an element its writer later overwrote (appended
        // after) in the same transaction. Reading one's own is fine.
        if (t.type == Op::kOk && !list.empty()) {
          auto it = elements_.find({key, list.back()});
          if (it != elements_.end() && it->second.writer != kNone && it->second.intermediate &&
              it->second.writer != ti) {
            const Txn& w = txns_[static_cast<size_t>(it->second.writer)];
            Anomaly a;
            a.type = "G1b";
            a.ops = {t.shown().index, w.shown().index};
            a.edn = "{:op " + ToEdn(t.shown()) + ", :mop " + ToEdn(m) + ", :writer " +
                    ToEdn(w.shown()) + ", :element " + std::to_string(list.back()) + "}";
            a.explanation = "Intermediate read: " + ReadText(t, m) + ", ending at element " +
                            std::to_string(list.back()) + ", but " + OpName(w.shown()) +
                            " appended more to key " + std::to_string(key) +
                            " after it in the same transaction:\n  " + ToEdn(w.shown());
            Add(std::move(a));
          }
        }
      }
    }
  }

  void CheckDuplicates(const Txn& t, const Mop& m, const std::vector<int64_t>& list) {
    std::unordered_map<int64_t, int> counts;
    for (int64_t x : list) ++counts[x];
    std::vector<std::pair<int64_t, int>> dups;
    for (const auto& [x, n] : counts) {
      if (n > 1) dups.emplace_back(x, n);
    }
    if (dups.empty()) return;
    std::sort(dups.begin(), dups.end());
    Anomaly a;
    a.type = "duplicate-elements";
    a.ops = {t.shown().index};
    std::string d = "{";
    std::string text;
    for (size_t i = 0; i < dups.size(); ++i) {
      if (i) {
        d.append(", ");
        text.append(", ");
      }
      d.append(std::to_string(dups[i].first) + " " + std::to_string(dups[i].second));
      text.append(std::to_string(dups[i].first) + " (" + std::to_string(dups[i].second) +
                  " times)");
    }
    d.push_back('}');
    a.edn = "{:op " + ToEdn(t.shown()) + ", :mop " + ToEdn(m) + ", :duplicates " + d + "}";
    a.explanation =
        ReadText(t, m) + ", which contains " + text + ", though every element is appended once.";
    Add(std::move(a));
  }

  // --- Anomalies inside one transaction --------------------------------------

  // Elle's internal consistency (Cerone et al.'s INT axiom): a read must agree
  // with the transaction's own earlier reads and appends of that key. When the
  // transaction appended before it ever read, only the suffix is known.
  void FindInternal() {
    struct Expect {
      int64_t key;
      bool prefix_known;
      std::vector<int64_t> list;  // whole list, or the known suffix
    };
    for (const Txn& t : txns_) {
      if (t.type != Op::kOk) continue;
      const auto& mops = *t.mops;
      std::vector<Expect> state;
      bool reported = false;
      for (size_t mi = 0; mi < mops.size(); ++mi) {
        const Mop& m = mops[mi];
        auto it = std::find_if(state.begin(), state.end(),
                               [&](const Expect& e) { return e.key == m.key; });
        if (m.f == Mop::kAppend) {
          if (it == state.end()) {
            state.push_back(Expect{m.key, false, {m.value}});
          } else {
            it->list.push_back(m.value);
          }
          // future-read: an earlier read of this txn already showed this element.
          for (size_t r = 0; r < mi; ++r) {
            const Mop& rm = mops[r];
            if (rm.f != Mop::kRead || rm.key != m.key || !rm.list) continue;
            if (std::find(rm.list->begin(), rm.list->end(), m.value) == rm.list->end()) continue;
            Anomaly a;
            a.type = "future-read";
            a.ops = {t.shown().index};
            a.edn = "{:op " + ToEdn(t.shown()) + ", :mop " + ToEdn(rm) + ", :element " +
                    std::to_string(m.value) + "}";
            a.explanation = ReadText(t, rm) + ", which already contains element " +
                            std::to_string(m.value) + " that the same transaction appends later.";
            Add(std::move(a));
            break;
          }
          continue;
        }
        const std::vector<int64_t>& seen = m.list ? *m.list : kEmpty;
        if (it != state.end() && !reported) {
          bool ok;
          std::string expected;
          if (it->prefix_known) {
            ok = seen == it->list;
            expected = EdnList(it->list);
          } else {
            ok = seen.size() >= it->list.size() &&
                 std::equal(it->list.begin(), it->list.end(),
                            seen.end() - static_cast<std::ptrdiff_t>(it->list.size()));
            expected =
                "[..." + (it->list.empty() ? std::string() : " ") + EdnList(it->list).substr(1);
          }
          if (!ok) {
            reported = true;
            Anomaly a;
            a.type = "internal";
            a.ops = {t.shown().index};
            a.edn =
                "{:op " + ToEdn(t.shown()) + ", :mop " + ToEdn(m) + ", :expected " + expected + "}";
            a.explanation = ReadText(t, m) + ", but its own earlier reads and appends of key " +
                            std::to_string(m.key) + " imply " + expected + ".";
            Add(std::move(a));
          }
        }
        if (it == state.end()) {
          state.push_back(Expect{m.key, true, seen});
        } else {
          it->prefix_known = true;
          it->list = seen;
        }
      }
    }
  }

  // --- Anomalies of the version order ----------------------------------------

  // dirty-update: in a key's version order, a committed append directly
  // follows (possibly through indeterminate ones) an append of a failed txn:
  // committed state was built on aborted state.
  void FindDirtyUpdates() {
    for (int64_t key : sorted_keys_) {
      const KeyState& k = keys_[key];
      Op::Type prev_type = Op::kOk;  // the initial state is committed
      int32_t prev_writer = kNone;
      std::vector<int64_t> values;
      for (int64_t x : k.order) {
        const Element& e = elements_[{key, x}];
        if (e.writer == kNone) continue;  // garbage; reported elsewhere
        const Txn& w = txns_[static_cast<size_t>(e.writer)];
        if (w.type == Op::kInfo) {
          if (prev_type == Op::kFail) values.push_back(x);
          continue;  // can't say; keep the last definite writer
        }
        if (w.type == Op::kFail) {
          if (prev_type != Op::kFail) {  // a run of aborted state starts here
            values.clear();
            prev_writer = e.writer;
          }
          values.push_back(x);
          prev_type = Op::kFail;
          continue;
        }
        // w committed.
        if (prev_type == Op::kFail) {
          const std::string below = EdnList(values);
          values.push_back(x);
          const Txn& f = txns_[static_cast<size_t>(prev_writer)];
          Anomaly a;
          a.type = "dirty-update";
          a.ops = {f.shown().index, w.shown().index};
          a.edn = "{:key " + std::to_string(key) + ", :values " + EdnList(values) + ", :txns [" +
                  ToEdn(f.shown()) + " ... " + ToEdn(w.shown()) + "]}";
          a.explanation = "Key " + std::to_string(key) + ": committed " + OpName(w.shown()) +
                          " appended " + std::to_string(x) + " on top of " + below +
                          ", state that begins with failed " + OpName(f.shown()) +
                          "'s append: aborted state became committed.";
          Add(std::move(a));
        }
        prev_type = Op::kOk;
        prev_writer = e.writer;
        values.clear();
      }
    }
  }

  // lost-update (Elle's definition): two committed transactions read the same
  // state of a key and both appended to it; one of the updates is lost.
  void FindLostUpdates() {
    struct Group {
      std::vector<int32_t> txns;
      const std::vector<int64_t>* value;
    };
    // (key, length, last element) identifies the state read; reads that are
    // not prefixes of one order are already incompatible-order.
    std::map<std::tuple<int64_t, size_t, int64_t>, Group> groups;
    for (int32_t ti = 0; ti < static_cast<int32_t>(txns_.size()); ++ti) {
      const Txn& t = txns_[static_cast<size_t>(ti)];
      if (t.type != Op::kOk) continue;
      std::vector<std::pair<int64_t, const std::vector<int64_t>*>> first_read;
      std::vector<int64_t> written;
      for (const Mop& m : *t.mops) {
        auto r = std::find_if(first_read.begin(), first_read.end(),
                              [&](const auto& p) { return p.first == m.key; });
        if (m.f == Mop::kRead) {
          if (r == first_read.end() &&
              std::find(written.begin(), written.end(), m.key) == written.end()) {
            first_read.emplace_back(m.key, m.list ? &*m.list : &kEmpty);
          }
          continue;
        }
        if (std::find(written.begin(), written.end(), m.key) != written.end()) continue;
        written.push_back(m.key);
        if (r == first_read.end()) continue;
        const std::vector<int64_t>& v = *r->second;
        Group& g = groups[{m.key, v.size(), v.empty() ? 0 : v.back()}];
        g.value = &v;
        g.txns.push_back(ti);
      }
    }
    for (const auto& [id, g] : groups) {
      if (g.txns.size() < 2) continue;
      const int64_t key = std::get<0>(id);
      Anomaly a;
      a.type = "lost-update";
      std::string ops;
      std::string names;
      for (size_t i = 0; i < g.txns.size(); ++i) {
        const Op& op = txns_[static_cast<size_t>(g.txns[i])].shown();
        a.ops.push_back(op.index);
        if (i) {
          ops.push_back(' ');
          names.append(i + 1 == g.txns.size() ? " and " : ", ");
        }
        ops.append(ToEdn(op));
        names.append(OpName(op));
      }
      a.edn = "{:key " + std::to_string(key) + ", :value " + EdnList(*g.value) + ", :txns [" + ops +
              "]}";
      const bool two = g.txns.size() == 2;
      a.explanation = names + (two ? " both" : " all") + " read key " + std::to_string(key) +
                      " = " + EdnList(*g.value) + " and then appended to it, and " +
                      (two ? "both committed: each overwrote the state the other had read."
                           : "all committed: each overwrote a state the others had read.");
      Add(std::move(a));
    }
  }

  // --- Dependency graph ------------------------------------------------------

  void BuildGraph() {
    graph_.emplace(static_cast<int32_t>(txns_.size()));
    DepGraph& g = *graph_;
    for (int32_t ti = 0; ti < static_cast<int32_t>(txns_.size()); ++ti) {
      const Txn& t = txns_[static_cast<size_t>(ti)];
      if (!t.in_graph()) continue;
      for (const Mop& m : *t.mops) {
        if (m.f == Mop::kRead) {
          const std::vector<int64_t>* list = KnownRead(t, m);
          if (list == nullptr || list->empty()) continue;
          // wr: the writer of the last element we saw precedes us.
          auto it = elements_.find({m.key, list->back()});
          if (it == elements_.end()) continue;
          const int32_t w = it->second.writer;
          if (w == kNone || w == ti || !txns_[static_cast<size_t>(w)].in_graph()) continue;
          g.Add(w, Edge{ti, Rel::kWR, false, m.key, list->back(), 0});
          continue;
        }
        // An append: find the element just before it in the version order.
        // An element never read comes after every observed one.
        const KeyState& k = keys_[m.key];
        const Element& self = elements_[{m.key, m.value}];
        bool prev_init;
        int64_t prev = 0;
        if (self.pos >= 0) {
          prev_init = self.pos == 0;
          if (!prev_init) prev = k.order[static_cast<size_t>(self.pos - 1)];
        } else {
          prev_init = k.order.empty();
          if (!prev_init) prev = k.order.back();
        }
        const std::vector<int32_t>* readers = &k.init_readers;
        if (!prev_init) {
          const Element& p = elements_[{m.key, prev}];
          readers = &p.readers;
          // ww: the writer of the previous element precedes us.
          if (p.writer != kNone && p.writer != ti &&
              txns_[static_cast<size_t>(p.writer)].in_graph()) {
            g.Add(p.writer, Edge{ti, Rel::kWW, false, m.key, prev, m.value});
          }
        }
        // rw: whoever read the previous state did not see our append.
        for (int32_t r : *readers) {
          if (r == ti) continue;
          g.Add(r, Edge{ti, Rel::kRW, prev_init, m.key, prev, m.value});
        }
      }
    }
    if (options_.realtime) AddRealtimeEdges();
    g.Finalize();
    stats_.ww_edges = g.edge_count(Rel::kWW);
    stats_.wr_edges = g.edge_count(Rel::kWR);
    stats_.rw_edges = g.edge_count(Rel::kRW);
    stats_.realtime_edges = g.edge_count(Rel::kRealtime);
  }

  // T1 -> T2 when T1 completed (:ok) before T2 was invoked, as a transitive
  // reduction: each invocation links from the "frontier" of completions not
  // already implied by a later completion.
  void AddRealtimeEdges() {
    struct Event {
      size_t pos;
      int kind;  // 0 = invoke, 1 = complete: an instantaneous txn invokes first
      int32_t txn;
    };
    std::vector<Event> events;
    for (int32_t ti = 0; ti < static_cast<int32_t>(txns_.size()); ++ti) {
      const Txn& t = txns_[static_cast<size_t>(ti)];
      if (!t.in_graph()) continue;
      events.push_back(Event{t.invoke_pos, 0, ti});
      if (t.type == Op::kOk) events.push_back(Event{t.complete_pos, 1, ti});
    }
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      return std::pair(a.pos, a.kind) < std::pair(b.pos, b.kind);
    });
    std::vector<int32_t> frontier;
    std::vector<char> in_frontier(txns_.size(), 0);
    std::unordered_map<int32_t, std::vector<int32_t>> preds;
    for (const Event& ev : events) {
      if (ev.kind == 0) {
        for (int32_t p : frontier) {
          graph_->Add(p, Edge{ev.txn, Rel::kRealtime, false, 0, 0, 0});
        }
        if (txns_[static_cast<size_t>(ev.txn)].type == Op::kOk) preds[ev.txn] = frontier;
        continue;
      }
      auto it = preds.find(ev.txn);
      if (it != preds.end()) {
        for (int32_t p : it->second) in_frontier[static_cast<size_t>(p)] = 0;
        preds.erase(it);
      }
      frontier.erase(
          std::remove_if(frontier.begin(), frontier.end(),
                         [&](int32_t p) { return !in_frontier[static_cast<size_t>(p)]; }),
          frontier.end());
      frontier.push_back(ev.txn);
      in_frontier[static_cast<size_t>(ev.txn)] = 1;
    }
  }

  // --- Cycles ----------------------------------------------------------------

  const Components& ComponentsOf(uint8_t mask) {
    auto it = components_.find(mask);
    if (it == components_.end()) {
      it = components_.emplace(mask, StronglyConnected(*graph_, mask)).first;
    }
    return it->second;
  }

  // Members of each non-trivial component, in node order.
  static std::vector<std::vector<int32_t>> Members(const Components& c) {
    std::vector<int32_t> slot(c.size.size(), -1);
    std::vector<std::vector<int32_t>> out;
    for (int32_t v = 0; v < static_cast<int32_t>(c.id.size()); ++v) {
      const int32_t id = c.id[static_cast<size_t>(v)];
      if (!c.nontrivial(id)) continue;
      if (slot[static_cast<size_t>(id)] < 0) {
        slot[static_cast<size_t>(id)] = static_cast<int32_t>(out.size());
        out.emplace_back();
      }
      out[static_cast<size_t>(slot[static_cast<size_t>(id)])].push_back(v);
    }
    return out;
  }

  struct Target {
    const char* type;        // the anomaly searched for (G2 may turn out G-nonadjacent)
    uint8_t component_mask;  // search within components of this subgraph
    Rel start;               // first edge of the cycle
    CycleSpec spec;
    uint8_t reach_mask;  // subgraph for pruning (0: none)
  };

  // Elle's implications between cycle anomalies (elle.consistency-model,
  // transitively closed): once a strongly connected component is known to
  // contain the key, searching it for a value adds nothing. G0 does not imply
  // G-single (it is merely worse), so both are searched for.
  static bool Implied(const std::set<std::string>& found, std::string_view type) {
    static const std::map<std::string_view, std::vector<std::string_view>> kImplies = {
        {"G0", {"G1c", "G0-realtime", "G1c-realtime"}},
        {"G1c", {"G1c-realtime"}},
        {"G0-realtime", {"G1c-realtime"}},
        {"G-single",
         {"G-nonadjacent", "G2-item", "G-single-realtime", "G-nonadjacent-realtime",
          "G2-item-realtime"}},
        {"G-nonadjacent", {"G2-item", "G-nonadjacent-realtime", "G2-item-realtime"}},
        {"G2-item", {"G2-item-realtime"}},
        {"G-single-realtime", {"G-nonadjacent-realtime", "G2-item-realtime"}},
        {"G-nonadjacent-realtime", {"G2-item-realtime"}},
    };
    for (const std::string& f : found) {
      if (f == type) return true;
      auto it = kImplies.find(f);
      if (it == kImplies.end()) continue;
      for (std::string_view implied : it->second) {
        if (implied == type) return true;
      }
    }
    return false;
  }

  // Like Elle: for every strongly connected component of the whole graph,
  // search for each cycle anomaly from the most severe down, skipping those
  // already implied by what the component is known to contain, and report
  // one (shortest-found) cycle per anomaly type and component.
  void FindCycles() {
    const uint8_t base = kWWBit | kWRBit | kRWBit;
    const uint8_t full = options_.realtime ? (base | kRealtimeBit) : base;
    std::vector<Target> targets = {
        {"G0", kWWBit, Rel::kWW, CycleSpec{kWWBit, 0, 0, false, false, nullptr}, 0},
        {"G1c", kWWBit | kWRBit, Rel::kWR, CycleSpec{kWWBit | kWRBit, 0, 0, true, false, nullptr},
         0},
        {"G-single", base, Rel::kRW, CycleSpec{base, 1, 1, false, false, nullptr}, kWWBit | kWRBit},
        {"G2-item", base, Rel::kRW, CycleSpec{base, 2, 2, false, false, nullptr}, 0},
    };
    if (options_.realtime) {
      const uint8_t wwrt = kWWBit | kRealtimeBit;
      const uint8_t wwwrrt = kWWBit | kWRBit | kRealtimeBit;
      targets.push_back(
          {"G0-realtime", wwrt, Rel::kRealtime, CycleSpec{wwrt, 0, 0, false, true, nullptr}, 0});
      targets.push_back({"G1c-realtime", wwwrrt, Rel::kRealtime,
                         CycleSpec{wwwrrt, 0, 0, true, true, nullptr}, 0});
      targets.push_back({"G-single-realtime", full, Rel::kRW,
                         CycleSpec{full, 1, 1, false, true, nullptr}, wwwrrt});
      targets.push_back(
          {"G2-item-realtime", full, Rel::kRW, CycleSpec{full, 2, 2, false, true, nullptr}, 0});
    }

    const Components& whole = ComponentsOf(full);
    for (size_t c = 0; c < whole.size.size(); ++c) {
      if (!whole.nontrivial(static_cast<int32_t>(c))) continue;
      ++stats_.nontrivial_sccs;
      stats_.largest_scc = std::max<int64_t>(stats_.largest_scc, whole.size[c]);
    }
    if (stats_.nontrivial_sccs == 0) return;  // acyclic: nothing to search
    // Anomaly types found so far in each component of the whole graph.
    std::vector<std::set<std::string>> found(whole.size.size());

    CycleSearcher searcher(*graph_);
    for (Target& target : targets) {
      const Components& comps = ComponentsOf(target.component_mask);
      if (target.reach_mask != 0) target.spec.reach_ids = &ComponentsOf(target.reach_mask).id;
      for (const std::vector<int32_t>& members : Members(comps)) {
        // A component of a subgraph lies inside one component of the whole.
        auto& found_here = found[static_cast<size_t>(whole.id[static_cast<size_t>(members[0])])];
        if (Implied(found_here, target.type)) continue;
        int64_t budget = options_.search_budget;
        bool done = false;
        for (size_t i = 0; i < members.size() && !done; ++i) {
          const int32_t u = members[i];
          for (const Edge& e : graph_->out(u)) {
            if (e.rel != target.start) continue;
            if (comps.id[static_cast<size_t>(e.to)] != comps.id[static_cast<size_t>(u)]) continue;
            auto cycle = searcher.Find(u, e, target.spec, comps.id, &budget);
            if (cycle) {
              found_here.insert(Record(*cycle));
              done = true;
            } else if (budget <= 0) {
              stats_.search_truncated = true;
              done = true;
            }
            if (done) break;
          }
        }
      }
    }
    // Every non-trivial component holds some cycle; if the targeted searches
    // found none (out of budget), report whichever cycle a plain search finds.
    for (const std::vector<int32_t>& members : Members(whole)) {
      if (!found[static_cast<size_t>(whole.id[static_cast<size_t>(members[0])])].empty()) continue;
      bool recorded = false;
      for (size_t i = 0; i < members.size() && !recorded; ++i) {
        const int32_t v = members[i];
        for (const Edge& e : graph_->out(v)) {
          if ((RelBit(e.rel) & full) == 0) continue;
          if (whole.id[static_cast<size_t>(e.to)] != whole.id[static_cast<size_t>(v)]) continue;
          int64_t unlimited = std::numeric_limits<int64_t>::max();
          auto cycle = searcher.Find(v, e, CycleSpec{full, 0, 2, false, false, nullptr}, whole.id,
                                     &unlimited);
          if (cycle) {
            Record(*cycle);
            recorded = true;
            break;
          }
        }
      }
    }
  }

  // Names a cycle after Adya/Elle by the edges it needs, records it (unless
  // the same cycle was recorded before) and returns its type.
  std::string Record(const std::vector<CycleStep>& cycle) {
    int rw = 0, wr = 0, rt = 0;
    bool adjacent_rw = false;
    const size_t n = cycle.size();
    for (size_t i = 0; i < n; ++i) {
      const Rel r = cycle[i].edge->rel;
      rw += r == Rel::kRW;
      wr += r == Rel::kWR;
      rt += r == Rel::kRealtime;
      if (r == Rel::kRW && cycle[(i + 1) % n].edge->rel == Rel::kRW) adjacent_rw = true;
    }
    std::string type = rw == 1  ? "G-single"
                       : rw > 1 ? (adjacent_rw ? "G2-item" : "G-nonadjacent")
                       : wr > 0 ? "G1c"
                                : "G0";
    if (rt > 0) type += "-realtime";

    // Canonical form (rotation starting at the smallest node) for dedup.
    size_t start = 0;
    for (size_t i = 1; i < n; ++i) {
      if (cycle[i].from < cycle[start].from) start = i;
    }
    std::vector<int32_t> canon;
    for (size_t i = 0; i < n; ++i) canon.push_back(cycle[(start + i) % n].from);
    if (!seen_cycles_.insert({type, canon}).second) return type;

    Anomaly a;
    a.type = type;
    std::string ops = "[";
    std::string steps = "[";
    std::string summary;
    std::string let = "Let:\n";
    std::string then = "Then:\n";
    auto name = [](size_t i) { return "T" + std::to_string(i + 1); };
    for (size_t i = 0; i < n; ++i) {
      const Txn& from = txns_[static_cast<size_t>(cycle[i].from)];
      const Edge& e = *cycle[i].edge;
      const Txn& to = txns_[static_cast<size_t>(e.to)];
      const std::string a_name = name(i);
      const std::string b_name = name((i + 1) % n);
      a.ops.push_back(from.shown().index);
      a.steps.push_back(CycleStepInfo{e.rel, from.shown().index, to.shown().index, e.key,
                                      e.from_init, e.value, e.value2});
      ops.append(ToEdn(from.shown())).push_back(' ');
      let.append("  " + a_name + " = " + ToEdn(from.shown()) + "\n");
      if (i) steps.push_back(' ');
      const std::string k = std::to_string(e.key);
      std::string because;
      switch (e.rel) {
        case Rel::kWW:
          steps.append("{:type :ww, :key " + k + ", :value " + std::to_string(e.value) +
                       ", :value' " + std::to_string(e.value2) + "}");
          because = b_name + " appended " + std::to_string(e.value2) + " after " + a_name +
                    " appended " + std::to_string(e.value) + " to " + k;
          summary.append(a_name + " -ww(key " + k + ")-> ");
          break;
        case Rel::kWR:
          steps.append("{:type :wr, :key " + k + ", :value " + std::to_string(e.value) + "}");
          because = b_name + " observed " + a_name + "'s append of " + std::to_string(e.value) +
                    " to key " + k;
          summary.append(a_name + " -wr(key " + k + ")-> ");
          break;
        case Rel::kRW:
          steps.append(
              "{:type :rw, :key " + k + ", :value " +
              (e.from_init ? std::string(":elle.list-append/init") : std::to_string(e.value)) +
              ", :value' " + std::to_string(e.value2) + "}");
          because = e.from_init
                        ? a_name + " observed the initial (nil) state of " + k + ", which " +
                              b_name + " created by appending " + std::to_string(e.value2)
                        : a_name + " did not observe " + b_name + "'s append of " +
                              std::to_string(e.value2) + " to " + k;
          summary.append(a_name + " -rw(key " + k + ")-> ");
          break;
        case Rel::kRealtime:
          steps.append("{:type :realtime, :a-index " + std::to_string(from.shown().index) +
                       ", :b-index " +
                       std::to_string(to.invoke ? to.invoke->index : to.shown().index) + "}");
          because = a_name + " completed (op " + std::to_string(from.shown().index) +
                    ") before the invocation of " + b_name + " (op " +
                    std::to_string(to.invoke ? to.invoke->index : to.shown().index) + ")";
          summary.append(a_name + " -realtime-> ");
          break;
      }
      if (i + 1 < n) {
        then.append("  - " + a_name + " < " + b_name + ", because " + because + ".\n");
      } else {
        then.append("  - However, " + a_name + " < " + b_name + ", because " + because +
                    ": a contradiction!");
      }
    }
    ops.append(ToEdn(txns_[static_cast<size_t>(cycle[0].from)].shown())).push_back(']');
    steps.push_back(']');
    summary.append(name(0));
    a.edn = "{:type :" + type + ", :cycle " + ops + ", :steps " + steps + ", :summary " +
            Quote(summary) + "}";
    a.explanation = summary + "\n" + let + "\n" + then;
    Add(std::move(a));
    return type;
  }

  // --- Result ----------------------------------------------------------------

  void Add(Anomaly a) {
    ++result_.counts[a.type];
    auto& examples = result_.anomalies[a.type];
    if (examples.size() < options_.max_examples) examples.push_back(std::move(a));
  }

  Result<CheckResult> Finish() {
    for (const auto& [type, n] : result_.counts) result_.anomaly_types.push_back(type);
    std::stable_sort(
        result_.anomaly_types.begin(), result_.anomaly_types.end(),
        [](const std::string& a, const std::string& b) { return TypeRank(a) < TypeRank(b); });
    result_.valid = result_.anomaly_types.empty();
    result_.stats = stats_;
    return std::move(result_);
  }

  static const std::vector<int64_t> kEmpty;

  const History& history_;
  const CheckOptions& options_;
  std::vector<Txn> txns_;
  std::unordered_map<std::pair<int64_t, int64_t>, Element, PairHash> elements_;
  std::unordered_map<int64_t, KeyState> keys_;
  std::vector<int64_t> sorted_keys_;
  std::set<std::pair<int64_t, int64_t>> garbage_seen_, aborted_seen_;
  std::optional<DepGraph> graph_;
  std::map<uint8_t, Components> components_;
  std::set<std::pair<std::string, std::vector<int32_t>>> seen_cycles_;
  CheckStats stats_;
  CheckResult result_;
};

const std::vector<int64_t> Checker::kEmpty;

}  // namespace

Result<CheckResult> CheckListAppend(const History& history, const CheckOptions& options) {
  Checker checker(history, options);
  return checker.Run();
}

}  // namespace dbfs::elle
