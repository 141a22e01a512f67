// Diffs and the commit log (docs/ARCHITECTURE.md §11.4). A diff between two
// states never walks the tree: the keys that changed between them come from
// the commit log (or, for an open transaction, its write set), and only the
// inodes and entries they name are compared and given paths — in each state,
// by walking up from the inode (a directory's parent is exact; a file's name
// is found in the changed entries or in its parent hint's directory).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "fs/engine.h"
#include "fs/slices.h"

namespace dbfs {

namespace {

using KeySet = std::set<std::pair<int, std::string>>;

// Reads one state without touching a transaction's read set.
struct StateReader {
  explicit StateReader(Transaction* txn) : t(txn) {}
  Transaction* t = nullptr;
  std::map<uint64_t, std::optional<Inode>> inodes;
  std::map<uint64_t, std::map<uint64_t, std::string>> names;  // dir -> child -> a name
  std::map<uint64_t, std::pair<uint64_t, std::string>> known;  // ino -> an entry naming it

  Result<std::optional<Inode>> Get(uint64_t ino) {
    auto it = inodes.find(ino);
    if (it != inodes.end()) return it->second;
    DBFS_ASSIGN_OR_RETURN(auto v, t->GetUntracked(Table::kInodes, InoKey(ino)));
    std::optional<Inode> n;
    if (v) {
      DBFS_ASSIGN_OR_RETURN(Inode d, DecodeInode(*v));
      n = std::move(d);
    }
    inodes.emplace(ino, n);
    return n;
  }
  Result<std::optional<uint64_t>> Entry(uint64_t parent, std::string_view name) {
    DBFS_ASSIGN_OR_RETURN(auto v, t->GetUntracked(Table::kDirents, NameKey(parent, name)));
    if (!v) return std::optional<uint64_t>();
    uint64_t child;
    uint32_t type;
    if (!DecodeDirent(*v, &child, &type)) return Status::Corruption("malformed directory entry");
    return std::optional<uint64_t>(child);
  }
  // A name of `ino` in directory `dir` ("" if none), scanning it once.
  Result<std::string> NameIn(uint64_t dir, uint64_t ino) {
    auto it = names.find(dir);
    if (it == names.end()) {
      std::map<uint64_t, std::string> m;
      DBFS_RETURN_IF_ERROR(t->ScanUntracked(Table::kDirents, InoKey(dir), InoKey(dir + 1),
                                            [&](std::string_view k, std::string_view v) {
                                              uint64_t child;
                                              uint32_t type;
                                              if (k.size() >= 10 && DecodeDirent(v, &child, &type)) {
                                                m.emplace(child, std::string(k.substr(8, k.size() - 9)));
                                              }
                                              return true;
                                            }));
      it = names.emplace(dir, std::move(m)).first;
    }
    auto c = it->second.find(ino);
    return c == it->second.end() ? std::string() : c->second;
  }
  // "/a/b" ("" when the inode has no path in this state).
  Result<std::string> Path(uint64_t ino) {
    std::string path;
    for (int depth = 0; ino != kRootIno; ++depth) {
      if (depth > 4096) return std::string();
      DBFS_ASSIGN_OR_RETURN(auto n, Get(ino));
      if (!n || n->nlink == 0) return std::string();
      uint64_t parent = n->parent ? n->parent : kRootIno;
      std::string name;
      auto k = known.find(ino);
      if (k != known.end()) {
        parent = k->second.first;
        name = k->second.second;
      } else {
        DBFS_ASSIGN_OR_RETURN(name, NameIn(parent, ino));
      }
      if (name.empty()) return std::string();
      path = "/" + name + path;
      ino = parent;
    }
    return path.empty() ? std::string("/") : path;
  }
  // Whether caller `c` could learn that `path` exists in this state: search
  // permission on every directory above it and read permission on its
  // parent, as walking and listing the tree would let it. Only the caller's
  // primary group counts (its supplementary groups are not known here), so
  // the answer errs towards hiding.
  Result<bool> Visible(std::string_view path, const Caller& c) {
    if (c.uid == 0) return true;
    auto permits = [&](const Inode& n, uint32_t want) {
      const int shift = c.uid == n.uid ? 6 : c.gid == n.gid ? 3 : 0;
      return ((n.mode >> shift) & want) == want;
    };
    uint64_t dir = kRootIno;
    size_t i = path.starts_with('/') ? 1 : 0;
    for (int depth = 0; depth <= 4096; ++depth) {
      DBFS_ASSIGN_OR_RETURN(auto n, Get(dir));
      if (!n || !n->IsDir()) return false;
      const size_t j = path.find('/', i);
      const bool parent = j == std::string_view::npos;
      if (!permits(*n, parent ? 05 : 01)) return false;
      if (parent) return true;
      DBFS_ASSIGN_OR_RETURN(auto child, Entry(dir, path.substr(i, j - i)));
      if (!child) return false;
      dir = *child;
      i = j + 1;
    }
    return false;
  }
};

using SliceId = std::tuple<uint32_t, uint64_t, uint32_t, uint32_t>;
std::set<SliceId> SlicesOf(const std::optional<std::string>& v) {
  std::set<SliceId> out;
  if (!v) return out;
  auto l = DecodeSlices(*v);
  if (!l.ok()) return out;
  for (const Slice& s : *l) out.emplace(s.segment, s.data, s.len, s.off);
  return out;
}

bool Under(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (path.size() < prefix.size() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

std::string NormalizePath(std::string_view p) {
  std::string out;
  size_t i = 0;
  while (i < p.size()) {
    while (i < p.size() && p[i] == '/') ++i;
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view part = p.substr(i, j - i);
    if (!part.empty() && part != ".") out += "/" + std::string(part);
    i = j;
  }
  return out;
}

// Only the attributes a user changes (not atime, not ctime alone).
bool SameAttributes(const Inode& a, const Inode& b) {
  return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.rdev == b.rdev &&
         a.target == b.target && TimeLE(a.mtime, b.mtime) && TimeLE(b.mtime, a.mtime);
}

// The changes between state `a` and state `b`, given every key that changed.
Result<std::vector<Change>> DiffStates(StateReader& a, StateReader& b, const KeySet& keys,
                                       std::string_view filter) {
  std::set<uint64_t> touched, data, entry_parents;
  std::map<uint64_t, std::vector<std::pair<uint64_t, std::string>>> gone, came;
  for (const auto& [t, key] : keys) {
    if (key.size() < 8) continue;
    const uint64_t ino = GetBE64(key.data());
    switch (static_cast<Table>(t)) {
      case Table::kDirents: {
        const std::string name = key.size() > 9 ? key.substr(8, key.size() - 9) : "";
        DBFS_ASSIGN_OR_RETURN(auto ea, a.Entry(ino, name));
        DBFS_ASSIGN_OR_RETURN(auto eb, b.Entry(ino, name));
        if (ea == eb) break;
        entry_parents.insert(ino);
        if (ea) {
          gone[*ea].emplace_back(ino, name);
          a.known.try_emplace(*ea, ino, name);
        }
        if (eb) {
          came[*eb].emplace_back(ino, name);
          b.known.try_emplace(*eb, ino, name);
        }
        break;
      }
      case Table::kInodes:
      case Table::kXattrs:
        touched.insert(ino);
        break;
      case Table::kExtents:
        touched.insert(ino);
        data.insert(ino);
        break;
      default:
        break;
    }
  }
  std::vector<Change> out;
  std::set<uint64_t> reported;
  auto emit = [&](Change c) {
    if (!Under(c.path, filter) && !(c.kind == Change::Kind::kRenamed && Under(c.new_path, filter))) {
      return;
    }
    out.push_back(std::move(c));
  };
  auto written = [&](uint64_t ino) -> Result<uint64_t> {
    uint64_t bytes = 0;
    for (const auto& [t, key] : keys) {
      if (static_cast<Table>(t) != Table::kExtents || key.size() != 16 || GetBE64(key.data()) != ino) {
        continue;
      }
      DBFS_ASSIGN_OR_RETURN(auto va, a.t->GetUntracked(Table::kExtents, key));
      DBFS_ASSIGN_OR_RETURN(auto vb, b.t->GetUntracked(Table::kExtents, key));
      const auto sa = SlicesOf(va);
      for (const SliceId& s : SlicesOf(vb)) {
        if (!sa.count(s)) bytes += std::get<2>(s);
      }
    }
    return bytes;
  };
  std::set<uint64_t> named;
  for (const auto& m : {gone, came}) {
    for (const auto& [ino, entries] : m) named.insert(ino);
  }
  for (uint64_t ino : named) {
    DBFS_ASSIGN_OR_RETURN(auto na, a.Get(ino));
    DBFS_ASSIGN_OR_RETURN(auto nb, b.Get(ino));
    DBFS_ASSIGN_OR_RETURN(std::string pa, a.Path(ino));
    DBFS_ASSIGN_OR_RETURN(std::string pb, b.Path(ino));
    Change c;
    c.dir = (na && na->IsDir()) || (nb && nb->IsDir());
    c.size_before = na && !pa.empty() ? na->size : 0;
    c.size_after = nb && !pb.empty() ? nb->size : 0;
    reported.insert(ino);
    if (pa.empty() && pb.empty()) continue;  // created and removed in between
    if (pa.empty()) {
      c.kind = Change::Kind::kAdded;
      c.path = pb;
      if (!c.dir) {
        DBFS_ASSIGN_OR_RETURN(c.bytes_written, written(ino));
      }
      emit(std::move(c));
      continue;
    }
    if (pb.empty()) {
      c.kind = Change::Kind::kRemoved;
      c.path = pa;
      emit(std::move(c));
      continue;
    }
    if (pa != pb) {
      Change r = c;
      r.kind = Change::Kind::kRenamed;
      r.path = pa;
      r.new_path = pb;
      emit(std::move(r));
    }
    reported.erase(ino);  // its contents may have changed too
  }
  for (uint64_t ino : touched) {
    if (reported.count(ino)) continue;
    DBFS_ASSIGN_OR_RETURN(auto na, a.Get(ino));
    DBFS_ASSIGN_OR_RETURN(auto nb, b.Get(ino));
    if (!na || !nb) continue;  // created or removed: reported through its entries
    DBFS_ASSIGN_OR_RETURN(std::string pb, b.Path(ino));
    if (pb.empty()) continue;
    Change c;
    c.dir = nb->IsDir();
    c.path = pb;
    c.size_before = na->size;
    c.size_after = nb->size;
    if (!c.dir) {
      DBFS_ASSIGN_OR_RETURN(c.bytes_written, written(ino));
    }
    const bool content = na->size != nb->size || c.bytes_written > 0 ||
                         (data.count(ino) > 0 && c.dir == false && c.bytes_written > 0);
    bool attrs = !SameAttributes(*na, *nb);
    if (!attrs && !content) {
      // xattrs
      for (const auto& [t, key] : keys) {
        if (static_cast<Table>(t) != Table::kXattrs || GetBE64(key.data()) != ino) continue;
        DBFS_ASSIGN_OR_RETURN(auto va, a.t->GetUntracked(Table::kXattrs, key));
        DBFS_ASSIGN_OR_RETURN(auto vb, b.t->GetUntracked(Table::kXattrs, key));
        if (va != vb) attrs = true;
      }
    }
    // A directory whose record changed only because entries in it did.
    if (c.dir && entry_parents.count(ino) && na->mode == nb->mode && na->uid == nb->uid &&
        na->gid == nb->gid) {
      continue;
    }
    if (content) {
      c.kind = Change::Kind::kModified;
    } else if (attrs) {
      c.kind = Change::Kind::kAttributes;
    } else {
      continue;
    }
    emit(std::move(c));
  }
  // A path whose file was replaced by another (rename over, remove and
  // create) is reported as modified, as a path-by-path comparison sees it.
  std::map<std::string, size_t> removed_at;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].kind == Change::Kind::kRemoved && !out[i].dir) removed_at[out[i].path] = i;
  }
  std::vector<bool> drop(out.size(), false);
  for (Change& ch : out) {
    if (ch.kind != Change::Kind::kAdded || ch.dir) continue;
    auto it = removed_at.find(ch.path);
    if (it == removed_at.end()) continue;
    ch.kind = Change::Kind::kModified;
    ch.size_before = out[it->second].size_before;
    drop[it->second] = true;
  }
  std::vector<Change> merged;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!drop[i]) merged.push_back(std::move(out[i]));
  }
  std::sort(merged.begin(), merged.end(), [](const Change& x, const Change& y) {
    return std::tie(x.path, x.kind) < std::tie(y.path, y.kind);
  });
  return merged;
}

// The changes a non-root caller may see (StateReader::Visible): a rename
// of which only one side is visible shows as that side's removal or
// addition.
Result<std::vector<Change>> OnlyVisible(std::vector<Change> in, StateReader& a, StateReader& b,
                                        const Caller& c) {
  if (c.uid == 0) return in;
  std::vector<Change> out;
  for (Change& ch : in) {
    bool ok = false;
    if (ch.kind == Change::Kind::kRemoved) {
      DBFS_ASSIGN_OR_RETURN(ok, a.Visible(ch.path, c));
    } else if (ch.kind == Change::Kind::kRenamed) {
      DBFS_ASSIGN_OR_RETURN(bool from, a.Visible(ch.path, c));
      DBFS_ASSIGN_OR_RETURN(bool to, b.Visible(ch.new_path, c));
      ok = from || to;
      if (from != to) {
        ch.kind = from ? Change::Kind::kRemoved : Change::Kind::kAdded;
        if (to) ch.path = std::move(ch.new_path);
        ch.new_path.clear();
      }
    } else {
      DBFS_ASSIGN_OR_RETURN(ok, b.Visible(ch.path, c));
    }
    if (ok) out.push_back(std::move(ch));
  }
  return out;
}

}  // namespace

Result<std::vector<Change>> Engine::Diff(const Caller& c, uint64_t from, uint64_t to,
                                         std::string_view path) {
  if (from > to) std::swap(from, to);
  DBFS_ASSIGN_OR_RETURN(auto ta, ReadAt(from));
  DBFS_ASSIGN_OR_RETURN(auto tb, ReadAt(to));
  KeySet keys;
  DBFS_RETURN_IF_ERROR(store_->ScanCommits(from, to, false, [&](const mvcc::CommitRecord& r) {
    // Relocations and atime updates change no content a diff shows.
    if (r.meta.flags & (mvcc::kCommitSameContent | mvcc::kCommitAtime)) return true;
    for (const auto& k : r.keys) keys.emplace(static_cast<int>(k.table), k.key);
    return true;
  }));
  if (store_->retention().log_from > from + 1 && from != to) {
    return Status::NotFound("the commit log no longer covers csn " + std::to_string(from));
  }
  StateReader a(ta.get()), b(tb.get());
  DBFS_ASSIGN_OR_RETURN(auto changes, DiffStates(a, b, keys, NormalizePath(path)));
  return OnlyVisible(std::move(changes), a, b, c);
}

Result<std::vector<Change>> Engine::TxDiff(const Caller& c, uint64_t id, std::string_view path) {
  std::shared_ptr<ExplicitTx> tx = TxById(id);
  if (!tx) return Status::NotFound("no open transaction " + std::to_string(id));
  if (c.uid != 0 && c.uid != tx->uid) return Status(Code::kPermission, "not your transaction");
  std::lock_guard lock(tx->mu);
  if (tx->done || !tx->txn) {
    return Status(Code::kConflict, "transaction has ended (" + tx->end_reason + ")");
  }
  DBFS_ASSIGN_OR_RETURN(auto base, ReadAt(tx->txn->snapshot()));
  KeySet keys;
  tx->txn->ForEachWrite(
      [&](Table t, std::string_view k) { keys.emplace(static_cast<int>(t), std::string(k)); });
  StateReader a(base.get()), b(tx->txn.get());
  return DiffStates(a, b, keys, NormalizePath(path));
}

Result<std::vector<LogEntry>> Engine::Log(const Caller& c, const LogQuery& q) {
  const std::string filter = NormalizePath(q.path);
  const mvcc::Retention ret = store_->retention();
  const mvcc::Csn visible = store_->visible_csn();
  std::vector<LogEntry> out;
  Status inner;
  DBFS_RETURN_IF_ERROR(store_->ScanCommits(0, mvcc::kMaxCsn, true, [&](const mvcc::CommitRecord& r) {
    if (r.time_ns != 0 && r.time_ns < q.since_ns) return false;
    if (!q.all && (r.meta.flags & mvcc::kCommitInternal)) return true;
    if (r.keys.empty()) return true;
    LogEntry e{r.csn, r.time_ns, r.meta.uid, r.meta.pid, r.meta.comm, r.meta.tx, r.meta.tx_cmd,
               r.meta.flags, {}};
    KeySet keys;
    for (const auto& k : r.keys) keys.emplace(static_cast<int>(k.table), k.key);
    if (ret.Keeps(r.csn - 1, visible) && ret.Keeps(r.csn, visible)) {
      auto ta = ReadAt(r.csn - 1);
      auto tb = ReadAt(r.csn);
      if (ta.ok() && tb.ok()) {
        StateReader a(ta->get()), b(tb->get());
        auto ch = DiffStates(a, b, keys, filter);
        if (ch.ok()) ch = OnlyVisible(std::move(*ch), a, b, c);
        if (!ch.ok()) {
          inner = ch.status();
          return false;
        }
        e.changes = std::move(*ch);
      }
    } else if (filter.empty()) {
      // Outside the kept states: name what it touched as it is now.
      auto now = std::make_unique<Transaction>(store_.get());
      StateReader s(now.get());
      std::set<uint64_t> inos;
      for (const auto& [t, key] : keys) {
        if (key.size() >= 8) inos.insert(GetBE64(key.data()));
      }
      for (uint64_t ino : inos) {
        auto p = s.Path(ino);
        if (c.uid != 0) {
          // Unnamed or hidden inodes tell other users nothing.
          if (!p.ok() || p->empty()) continue;
          auto v = s.Visible(*p, c);
          if (!v.ok() || !*v) continue;
        }
        Change ch;
        ch.kind = Change::Kind::kModified;
        ch.path = p.ok() && !p->empty() ? *p : "<inode " + std::to_string(ino) + ">";
        e.changes.push_back(std::move(ch));
      }
    }
    // A non-root caller sees only commits that changed something it may see.
    if ((!filter.empty() || c.uid != 0) && e.changes.empty()) return true;
    out.push_back(std::move(e));
    return q.limit == 0 || out.size() < q.limit;
  }));
  DBFS_RETURN_IF_ERROR(inner);
  return out;
}

}  // namespace dbfs
