#include "tests/powerloss/workload.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

namespace dbfs::powerloss {

namespace {

std::string Record(uint64_t gen, uint64_t index) {
  char rec[kRecord + 1];
  snprintf(rec, sizeof rec, "gen=%012llu off=%010llu\n",
           static_cast<unsigned long long>(gen % 1000000000000ULL),
           static_cast<unsigned long long>(index % 10000000000ULL));
  return std::string(rec, kRecord);
}

bool Under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

int64_t MonotonicNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

std::vector<std::string> ListDir(const std::string& p, int* err) {
  std::vector<std::string> names;
  DIR* d = opendir(p.c_str());
  if (!d) {
    *err = errno;
    return names;
  }
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadAll(const std::string& path, int* err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return "";
  }
  std::string s;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) *err = errno;
    if (n <= 0) break;
    s.append(buf, n);
  }
  close(fd);
  return s;
}

}  // namespace

std::string Pattern(uint64_t gen, uint64_t off, size_t len) {
  std::string s;
  s.reserve(len);
  uint64_t p = off;
  while (s.size() < len) {
    uint64_t index = p / kRecord;
    size_t in = static_cast<size_t>(p % kRecord);
    size_t n = std::min(kRecord - in, len - s.size());
    s.append(Record(gen, index), in, n);
    p += n;
  }
  return s;
}

std::string Describe(const Op& op) {
  std::ostringstream o;
  o << "#" << op.index << " " << op.kind;
  if (op.kind.rfind("TX", 0) != 0) o << " " << op.a;
  if (op.kind == "RENAME") o << " -> " << op.b;
  if (op.kind == "WRITE") {
    o << " gen " << op.gen << " [" << op.off << ", " << op.off + op.len << ")"
      << (op.dsync ? " O_DSYNC" : "");
  }
  if (op.kind == "TRUNC") o << " to " << op.off;
  if (op.kind == "TXCOMMIT" && op.off) o << " durable";
  if (op.ended) {
    o << " [returned]";
  } else if (op.failed_errno) {
    o << " [failed: " << (strerrorname_np(op.failed_errno) ? strerrorname_np(op.failed_errno) : "?")
      << (op.note.empty() ? "" : ": " + op.note) << "]";
  } else {
    o << " [in flight]";
  }
  return o.str();
}

void Apply(State* s, const Op& op, std::vector<std::string>* changed) {
  auto touched = [&](const std::string& p) {
    if (changed) changed->push_back(p);
  };
  const std::string& k = op.kind;
  if (k == "MKDIR") {
    (*s)[op.a] = Node{true, ""};
    touched(op.a);
  } else if (k == "CREATE") {
    (*s)[op.a] = Node{};
    touched(op.a);
  } else if (k == "WRITE" || k == "TRUNC") {
    auto it = s->find(op.a);
    if (it == s->end() || it->second.dir) return;
    std::string& d = it->second.data;
    if (k == "TRUNC") {
      d.resize(op.off, '\0');
    } else {
      if (d.size() < op.off + op.len) d.resize(op.off + op.len, '\0');
      d.replace(op.off, op.len, Pattern(op.gen, op.off, op.len));
    }
    touched(op.a);
  } else if (k == "RENAME") {
    if (op.a == op.b) return;
    auto it = s->find(op.a);
    if (it == s->end()) return;
    Node n = it->second;
    s->erase(it);
    touched(op.a);
    if (s->count(op.b)) s->erase(op.b);  // replaced (a file, or an empty directory)
    (*s)[op.b] = n;
    touched(op.b);
    if (n.dir) {  // the subtree moves along
      std::vector<std::pair<std::string, Node>> moved;
      for (auto i = s->lower_bound(op.a + "/"); i != s->end() && Under(i->first, op.a);) {
        touched(i->first);
        moved.emplace_back(op.b + i->first.substr(op.a.size()), i->second);
        i = s->erase(i);
      }
      for (auto& [p, node] : moved) {
        touched(p);
        (*s)[p] = node;
      }
    }
  } else if (k == "UNLINK" || k == "RMDIR") {
    if (s->erase(op.a)) touched(op.a);
  }
}

void Replayer::Step(const Op& op, std::vector<std::string>* changed) {
  if (op.kind == "TXBEGIN") {
    in_tx_ = true;
    held_.clear();
  } else if (op.kind == "TXABORT") {
    in_tx_ = false;
    held_.clear();
  } else if (op.kind == "TXCOMMIT") {
    in_tx_ = false;
    for (const Op& o : held_) Apply(s_, o, changed);
    held_.clear();
  } else if (in_tx_) {
    held_.push_back(op);
  } else {
    Apply(s_, op, changed);
  }
}

State StateAfter(const std::vector<Op>& ops, int k) {
  State s;
  Replayer r(&s);
  for (int i = 0; i < k && i < static_cast<int>(ops.size()); ++i) r.Step(ops[i], nullptr);
  return s;
}

std::vector<Op> ParseJournal(const std::string& path, std::string* error) {
  std::vector<Op> ops;
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // partial last line
    std::istringstream ls(text.substr(pos, nl - pos));
    pos = nl + 1;
    std::string tag;
    int idx = -1;
    ls >> tag >> idx;
    if (tag == "B") {
      Op op;
      op.index = idx;
      int dsync = 0;
      ls >> op.kind >> op.a >> op.b >> op.off >> op.len >> op.gen >> dsync;
      op.dsync = dsync != 0;
      if (op.a == "-") op.a.clear();
      if (op.b == "-") op.b.clear();
      if (!ls || idx != static_cast<int>(ops.size())) {
        *error += "bad journal line at op " + std::to_string(ops.size()) + "\n";
        return ops;
      }
      ops.push_back(op);
    } else if (tag == "E" && idx >= 0 && idx < static_cast<int>(ops.size())) {
      ops[idx].ended = true;
    } else if (tag == "F" && idx >= 0 && idx < static_cast<int>(ops.size())) {
      ls >> ops[idx].failed_errno >> ops[idx].failed_at_ns;
    } else if (tag == "N" && idx >= 0 && idx < static_cast<int>(ops.size())) {
      std::getline(ls, ops[idx].note);
      if (!ops[idx].note.empty() && ops[idx].note[0] == ' ') ops[idx].note.erase(0, 1);
    } else {
      *error += "bad journal tag " + tag + "\n";
      return ops;
    }
  }
  return ops;
}

State Observe(const std::string& root, std::string* error) {
  State s;
  struct stat st;
  if (lstat(root.c_str(), &st) != 0) {
    if (errno != ENOENT) *error += "lstat " + root + ": " + strerror(errno) + "\n";
    return s;
  }
  s["."] = Node{true, ""};
  std::vector<std::string> stack = {"."};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string full = rel == "." ? root : root + "/" + rel;
    int err = 0;
    for (const std::string& name : ListDir(full, &err)) {
      std::string crel = rel == "." ? name : rel + "/" + name;
      std::string cfull = root + "/" + crel;
      if (lstat(cfull.c_str(), &st) != 0) {
        *error += "lstat " + crel + ": " + strerror(errno) + "\n";
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        s[crel] = Node{true, ""};
        stack.push_back(crel);
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        *error += crel + ": unexpected file type\n";
        continue;
      }
      int rerr = 0;
      Node n;
      n.data = ReadAll(cfull, &rerr);
      if (rerr) *error += "read " + crel + ": " + strerror(rerr) + "\n";
      if (n.data.size() != static_cast<size_t>(st.st_size)) {
        *error += crel + ": stat says " + std::to_string(st.st_size) + " bytes, read " +
                  std::to_string(n.data.size()) + "\n";
      }
      s[crel] = n;
    }
    if (err) *error += "readdir " + rel + ": " + strerror(err) + "\n";
  }
  return s;
}

std::string DescribeContent(const std::string& data) {
  if (data.empty()) return "empty";
  // Runs of records: "gen G" (exact), "zeros", or "other".
  std::ostringstream o;
  o << data.size() << " bytes:";
  std::string cur;
  size_t start = 0;
  auto flush = [&](size_t end) {
    if (!cur.empty()) o << " [" << start << "," << end << ")=" << cur;
  };
  for (size_t off = 0; off < data.size(); off += kRecord) {
    std::string rec = data.substr(off, kRecord);
    std::string what;
    if (rec.find_first_not_of('\0') == std::string::npos) {
      what = "zeros";
    } else if (rec.compare(0, 4, "gen=") == 0 && rec.size() >= 16) {
      uint64_t g = strtoull(rec.substr(4, 12).c_str(), nullptr, 10);
      what = Record(g, off / kRecord).compare(0, rec.size(), rec) == 0 ? "gen " + std::to_string(g)
                                                                       : "mixed";
    } else {
      what = "mixed";
    }
    if (what != cur) {
      flush(off);
      cur = what;
      start = off;
    }
  }
  flush(data.size());
  return o.str();
}

namespace {
std::string DescribeNode(const Node* n) {
  if (!n) return "absent";
  if (n->dir) return "directory";
  return "file " + DescribeContent(n->data);
}
}  // namespace

std::string Diff(const State& want, const State& got) {
  std::ostringstream o;
  std::set<std::string> paths;
  for (auto& [p, n] : want) paths.insert(p);
  for (auto& [p, n] : got) paths.insert(p);
  for (const std::string& p : paths) {
    auto w = want.find(p);
    auto g = got.find(p);
    const Node* wn = w == want.end() ? nullptr : &w->second;
    const Node* gn = g == got.end() ? nullptr : &g->second;
    if (wn && gn && *wn == *gn) continue;
    o << "  " << p << ": expected " << DescribeNode(wn) << "; found " << DescribeNode(gn) << "\n";
  }
  return o.str();
}

Verdict Judge(const State& seen, const std::vector<Op>& ops, bool sync_mount) {
  Verdict v;
  const int n = static_cast<int>(ops.size());
  v.begun = n;
  v.required_by = "nothing";
  bool in_tx = false, tx_durable = false;
  for (int j = 0; j < n; ++j) {
    const Op& o = ops[j];
    const bool sync_op = o.kind == "FSYNC" || o.kind == "FDATASYNC" || o.kind == "FSYNCDIR" ||
                         (o.kind == "WRITE" && o.dsync);
    if (o.kind == "TXBEGIN") {
      in_tx = true;
      tx_durable = false;
    } else if (in_tx && sync_op && o.ended) {
      tx_durable = true;  // inside a transaction it only marks the commit durable
    }
    if (!o.ended) continue;
    ++v.completed;
    int need = 0;
    std::string why;
    if (o.kind == "TXCOMMIT" || o.kind == "TXABORT") {
      bool durable = o.kind == "TXCOMMIT" && (o.off || tx_durable || sync_mount);
      in_tx = false;
      if (durable) {
        need = j + 1;
        why = Describe(o) + (o.off ? "" : tx_durable ? " (fsync inside)" : " on a -o sync mount");
      }
    } else if (in_tx || o.kind == "TXBEGIN") {
      // Nothing inside a transaction is committed before its TXCOMMIT.
    } else if (o.kind == "FSYNC" || o.kind == "FDATASYNC" || o.kind == "FSYNCDIR") {
      need = j;  // DBFS syncs the whole log: everything before the fsync
      why = Describe(o);
    } else if (o.kind == "WRITE" && o.dsync) {
      need = j + 1;
      why = Describe(o);
    } else if (sync_mount) {
      need = j + 1;
      why = Describe(o) + " on a -o sync mount";
    }
    if (need > v.required) {
      v.required = need;
      v.required_by = why;
    }
  }
  // Walk the prefixes, keeping the set of paths where the model differs from
  // what was seen; a prefix matches when that set is empty.
  State cur;
  Replayer replay(&cur);
  std::set<std::string> bad;
  for (auto& [p, node] : seen) bad.insert(p);
  auto update = [&](const std::string& p) {
    auto a = cur.find(p);
    auto b = seen.find(p);
    bool eq = (a == cur.end()) ? b == seen.end() : (b != seen.end() && a->second == b->second);
    if (eq) {
      bad.erase(p);
    } else {
      bad.insert(p);
    }
  };
  std::vector<int> matches;
  // A write that survived only up to a 4 KiB page boundary (the kernel sends
  // a write(2) that starts inside an uncached page as two FUSE requests).
  int split_at = -1;
  uint64_t split_end = 0;
  int closest = 0;
  size_t closest_bad = SIZE_MAX;
  std::vector<std::string> changed;
  for (int k = 0; k <= n; ++k) {
    if (bad.empty()) matches.push_back(k);
    if (k >= v.required - 1 && bad.size() <= closest_bad) {
      closest_bad = bad.size();
      closest = k;
    }
    if (k == n) break;
    const Op& o = ops[k];
    uint64_t boundary = (o.off / 4096 + 1) * 4096;
    if (split_at < 0 && !replay.in_tx() && o.kind == "WRITE" && o.off % 4096 != 0 &&
        o.off + o.len > boundary && (bad.empty() || (bad.size() == 1 && *bad.begin() == o.a))) {
      Op part = o;
      part.len = boundary - o.off;
      State one;
      auto it = cur.find(o.a);
      if (it != cur.end()) one[o.a] = it->second;
      Apply(&one, part, nullptr);
      auto got = seen.find(o.a);
      if (got != seen.end() && one.count(o.a) && one[o.a] == got->second) {
        split_at = k;
        split_end = boundary;
      }
    }
    changed.clear();
    replay.Step(ops[k], &changed);
    for (const std::string& p : changed) update(p);
  }
  auto state_at = [&](int k) { return StateAfter(ops, k); };
  std::ostringstream o;
  if (!matches.empty() && matches.back() >= v.required) {
    v.ok = true;
    v.matched = matches.back();
    return v;
  }
  if (!matches.empty()) {
    v.matched = matches.back();
    o << "LOST DURABLE OPERATIONS: the tree is the state after the first " << v.matched << " of "
      << n << " operations, but at least " << v.required << " were acknowledged durable (by "
      << v.required_by << "). Missing acknowledged operations:\n";
    for (int i = v.matched; i < v.required; ++i) o << "  " << Describe(ops[i]) << "\n";
    o << "Differences from the required state:\n" << Diff(state_at(v.required), seen);
  } else {
    o << "NOT PREFIX-CONSISTENT: the tree is not the state after any prefix of the " << n
      << " operations (" << v.completed << " returned; at least " << v.required << " required, by "
      << v.required_by << ").\n"
      << "Closest prefix: " << closest << " operations; differences:\n"
      << Diff(state_at(closest), seen);
    if (split_at >= 0) {
      o << "DIAGNOSIS: the tree is exactly the state after " << split_at
        << " operations plus the part of " << Describe(ops[split_at]) << " below offset "
        << split_end << " (a 4 KiB page boundary): that one write(2) was applied in two "
        << "pieces, so it was not atomic (the kernel sends a write that starts inside an "
        << "uncached page as two FUSE WRITE requests, ending the first at the page boundary).\n";
    }
  }
  o << "Operations around it:\n";
  int from = std::max(0, std::min(closest, v.matched < 0 ? closest : v.matched) - 6);
  for (int i = from; i < n && i < std::max(closest, v.required) + 6; ++i) {
    o << "  " << Describe(ops[i]) << "\n";
  }
  v.message = o.str();
  return v;
}

// ---- the workload ----

namespace {

class Workload {
 public:
  Workload(std::string root, const std::string& journal, uint64_t seed)
      : root_(std::move(root)), rng_(seed) {
    jfd_ = open(journal.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    // How often this run syncs: often (little is un-synced at the cut),
    // sometimes, or rarely (long un-synced tails; DBFS's own background
    // flushes are then what makes things durable).
    // Explicit transactions (a harmless status query). A DBFS mount always
    // has them: a failing query is a broken harness or daemon, not a reason
    // to run without transactions, so it stops the workload (exit 6; the
    // harness reports it). EIO: the cut came first; the first operation
    // fails as after any cut. POWERLOSS_NO_TX=1 runs without transactions on
    // purpose (`powerloss_test --workload` on another file system).
    mount_ = root_.substr(0, root_.rfind('/'));
    const char* no_tx = getenv("POWERLOSS_NO_TX");
    if (!(no_tx && std::string(no_tx) == "1")) {
      char buf[4096];
      if (getxattr(mount_.c_str(), "dbfs.tx.status", buf, sizeof buf) < 0 && errno != EIO) {
        fprintf(stderr,
                     "workload: the transaction status query on %s failed: %s (not a DBFS "
                     "mount? POWERLOSS_NO_TX=1 runs without transactions)\n",
                     mount_.c_str(), strerror(errno));
        _exit(6);
      }
      tx_ok_ = true;
    }
    static constexpr int kSyncLevels[] = {100, 25, 4};
    sync_pct_ = kSyncLevels[R(3)];
    // Steers clear of the DBFS bugs this test found (docs/powerloss.md), to
    // look for others: slot writes start at 4 KiB boundaries, no orphan is
    // written or closed inside a transaction, no transaction aborts, none
    // syncs inside, and only one that changed something commits ":durable".
    const char* avoid = getenv("POWERLOSS_AVOID_KNOWN_BUGS");
    avoid_known_ = avoid && std::string(avoid) == "1";
  }

  [[noreturn]] void Run() {
    if (jfd_ < 0) _exit(3);
    Op mk;
    mk.kind = "MKDIR";
    mk.a = ".";
    Do(mk);
    for (;;) Step();
  }

 private:
  std::string P(const std::string& rel) const { return rel == "." ? root_ : root_ + "/" + rel; }

  void Journal(const std::string& line) {
    std::string l = line + "\n";
    if (write(jfd_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(4);
    // The journal must be at least as durable as the operations it vouches for.
    if (fdatasync(jfd_) != 0) _exit(5);
  }

  // Journals B, runs the op, journals E (or F, then exits), updates the model.
  void Do(Op op) {
    op.index = next_++;
    std::ostringstream b;
    b << "B " << op.index << " " << op.kind << " " << (op.a.empty() ? "-" : op.a) << " "
      << (op.b.empty() ? "-" : op.b) << " " << op.off << " " << op.len << " " << op.gen << " "
      << (op.dsync ? 1 : 0);
    Journal(b.str());
    note_.clear();
    int err = Exec(op);
    if (!note_.empty()) Journal("N " + std::to_string(op.index) + " " + note_);
    if (err != 0) {
      Journal("F " + std::to_string(op.index) + " " + std::to_string(err) + " " +
              std::to_string(MonotonicNs()));
      _exit(0);
    }
    Journal("E " + std::to_string(op.index));
    Apply(&model_, op, nullptr);
  }

  int Exec(const Op& op) {
    const std::string& k = op.kind;
    if (k == "MKDIR") return mkdir(P(op.a).c_str(), 0755) == 0 ? 0 : errno;
    if (k == "CREATE") {
      int fd = open(P(op.a).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) return errno;
      return close(fd) == 0 ? 0 : errno;
    }
    if (k == "WRITE") {
      // One pwrite of <= 32 KiB: one FUSE write, which DBFS applies atomically.
      int fd = open(P(op.a).c_str(), O_WRONLY | O_CLOEXEC | (op.dsync ? O_DSYNC : 0));
      if (fd < 0) return errno;
      std::string c = Pattern(op.gen, op.off, op.len);
      ssize_t w = pwrite(fd, c.data(), c.size(), static_cast<off_t>(op.off));
      int err = w == static_cast<ssize_t>(c.size()) ? 0 : (w < 0 ? errno : EIO);
      if (close(fd) != 0 && err == 0) err = errno;
      return err;
    }
    if (k == "TRUNC") return truncate(P(op.a).c_str(), static_cast<off_t>(op.off)) == 0 ? 0 : errno;
    if (k == "FSYNC" || k == "FDATASYNC" || k == "FSYNCDIR") {
      int fd =
          open(P(op.a).c_str(), (k == "FSYNCDIR" ? O_RDONLY | O_DIRECTORY : O_WRONLY) | O_CLOEXEC);
      if (fd < 0) return errno;
      int r = k == "FDATASYNC" ? fdatasync(fd) : fsync(fd);
      int err = r == 0 ? 0 : errno;
      close(fd);
      return err;
    }
    if (k == "RENAME") return rename(P(op.a).c_str(), P(op.b).c_str()) == 0 ? 0 : errno;
    if (k == "UNLINK") return unlink(P(op.a).c_str()) == 0 ? 0 : errno;
    if (k == "RMDIR") return rmdir(P(op.a).c_str()) == 0 ? 0 : errno;
    if (k == "TXBEGIN" || k == "TXCOMMIT" || k == "TXABORT") {
      std::string cmd = k == "TXBEGIN"
                            ? "dbfs.tx.begin:" + std::to_string(getpid()) + ":serializable"
                        : k == "TXCOMMIT" ? "dbfs.tx.commit:" + tx_id_ + (op.off ? ":durable" : "")
                                          : "dbfs.tx.abort:" + tx_id_;
      // One getxattr with a large buffer: a size probe would run the command twice.
      std::string reply(65536, '\0');
      ssize_t r = getxattr(mount_.c_str(), cmd.c_str(), reply.data(), reply.size());
      if (r < 0) return errno;
      reply.resize(static_cast<size_t>(r));
      if (k == "TXBEGIN") {
        tx_id_ = reply;
        return tx_id_.empty() ? EPROTO : 0;
      }
      // A single writer never conflicts: "conflict PATH" is a failure.
      if (reply.rfind("ok", 0) == 0) return 0;
      for (char& c : reply) {
        if (c == '\n') c = ' ';
      }
      note_ = reply;
      return EBADE;
    }
    return EINVAL;
  }

  uint64_t R(uint64_t n) { return n ? rng_() % n : 0; }
  // A sync decision that would be taken with probability pct% at full sync level.
  bool SyncChance(int pct) {
    bool yes = static_cast<int>(R(10000)) < pct * sync_pct_;
    return yes && !(avoid_known_ && in_tx_);
  }

  bool IsFile(const std::string& p) const {
    auto it = model_.find(p);
    return it != model_.end() && !it->second.dir;
  }
  size_t SizeOf(const std::string& p) const {
    auto it = model_.find(p);
    return it == model_.end() ? 0 : it->second.data.size();
  }
  std::vector<std::string> Dirs() const {
    std::vector<std::string> d;
    for (auto& [p, n] : model_) {
      if (n.dir) d.push_back(p);
    }
    return d;
  }
  std::vector<std::string> Files(const std::string& prefix) const {
    std::vector<std::string> f;
    for (auto& [p, n] : model_) {
      std::string name = p.substr(p.rfind('/') + 1);
      if (!n.dir && name.rfind(prefix, 0) == 0) f.push_back(p);
    }
    return f;
  }
  bool Empty(const std::string& dir) const {
    auto it = model_.lower_bound(dir + "/");
    return it == model_.end() || !Under(it->first, dir);
  }
  std::string Join(const std::string& dir, const std::string& name) const {
    return dir == "." ? name : dir + "/" + name;
  }

  // Offsets and lengths: sometimes record-aligned, sometimes not, mostly small.
  uint64_t Len() {
    uint64_t len = R(2) ? 1 + R(4096) : 1 + R(32 * 1024);
    if (R(2)) len = std::max<uint64_t>(kRecord, len / kRecord * kRecord);
    return len;
  }

  void Write(const std::string& path, uint64_t off, uint64_t len, bool dsync) {
    Op op;
    op.kind = "WRITE";
    op.a = path;
    op.off = off;
    op.len = len;
    op.gen = ++gen_;
    op.dsync = dsync;
    Do(op);
  }
  void Simple(const std::string& kind, const std::string& a, const std::string& b = "",
              uint64_t off = 0) {
    Op op;
    op.kind = kind;
    op.a = a;
    op.b = b;
    op.off = off;
    Do(op);
  }

  // Keeps an fd on a file so that it becomes an orphan when unlinked/replaced.
  void Hold(const std::string& rel) {
    if (avoid_known_ && in_tx_) return;
    int fd = open(P(rel).c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) held_.push_back(fd);
    if (held_.size() > 4) {
      close(held_.front());
      held_.erase(held_.begin());
    }
  }

  // A transaction of 1-6 random operations, committed (sometimes durably) or
  // aborted. The model follows the workload's own view inside it and goes
  // back at an abort.
  void Transaction() {
    Simple("TXBEGIN", "");
    State before = model_;
    in_tx_ = true;
    for (uint64_t i = 1 + R(6); i > 0; --i) Step();
    in_tx_ = false;
    if (R(7) == 0 && !avoid_known_) {
      Simple("TXABORT", "");
      model_ = before;
    } else {
      bool durable = R(5) == 0 && !(avoid_known_ && model_ == before);
      Simple("TXCOMMIT", "", "", durable ? 1 : 0);
    }
  }

  void Step() {
    if (tx_ok_ && !in_tx_ && R(100) < 6) {
      Transaction();
      return;
    }
    uint64_t p = R(100);
    std::vector<std::string> dirs = Dirs();
    std::string dir = R(2) ? "." : dirs[R(dirs.size())];
    if (p < 24) {  // write a slot file in place: overwrite, append, or past the end
      std::string s = "s" + std::to_string(R(kSlots));
      if (!IsFile(s)) Simple("CREATE", s);
      uint64_t size = SizeOf(s);
      uint64_t off = R(3) == 0 ? size : R(size + 1);
      if (R(2)) off = off / kRecord * kRecord;
      if (off > 48 * 1024) off = R(1024);
      if (avoid_known_) off = off / 4096 * 4096;
      Write(s, off, Len(), SyncChance(8));
    } else if (p < 30) {  // truncate a slot: shrink or grow
      std::string s = "s" + std::to_string(R(kSlots));
      if (IsFile(s)) Simple("TRUNC", s, "", R(2) ? R(SizeOf(s) + 1) : R(40 * 1024));
    } else if (p < 40) {  // fsync / fdatasync a slot
      std::string s = "s" + std::to_string(R(kSlots));
      if (IsFile(s) && SyncChance(100)) Simple(R(2) ? "FSYNC" : "FDATASYNC", s);
    } else if (p < 58) {  // atomic replace: tmp, write, [fsync], rename over a target, [fsync dir]
      std::string tmp = Join(dir, "t" + std::to_string(gen_ + 1));
      std::string target = "r" + std::to_string(R(kTargets));
      Simple("CREATE", tmp);
      Write(tmp, 0, Len(), false);
      if (SyncChance(70)) Simple("FSYNC", tmp);
      if (IsFile(target) && R(4) == 0) Hold(target);  // replaced while open
      Simple("RENAME", tmp, target);
      if (SyncChance(50)) Simple("FSYNCDIR", ".");
    } else if (p < 63) {  // mkdir
      Simple("MKDIR", Join(dir, "d" + std::to_string(dir_counter_++)));
    } else if (p < 66) {  // rmdir of an empty directory
      std::string d = dirs[R(dirs.size())];
      if (d != "." && Empty(d)) Simple("RMDIR", d);
    } else if (p < 70) {  // rename a directory (with its subtree) to a new name
      std::string from = dirs[R(dirs.size())];
      if (from == "." || dir == from || Under(dir, from)) return;
      Simple("RENAME", from, Join(dir, "d" + std::to_string(dir_counter_++)));
    } else if (p < 74) {  // a plain file in a directory
      std::string f = Join(dir, "n" + std::to_string(gen_ + 1));
      Simple("CREATE", f);
      Write(f, 0, Len(), false);
    } else if (p < 79) {  // unlink a file, sometimes while holding it open
      std::vector<std::string> files = Files("r");
      for (auto& f : Files("n")) files.push_back(f);
      if (files.empty()) return;
      std::string victim = files[R(files.size())];
      if (R(2)) Hold(victim);
      Simple("UNLINK", victim);
    } else if (p < 86) {  // rename a file onto another name, maybe an existing one
      std::vector<std::string> files = Files("r");
      for (auto& f : Files("n")) files.push_back(f);
      if (files.empty()) return;
      std::string from = files[R(files.size())];
      std::string to =
          R(2) ? "r" + std::to_string(R(kTargets)) : Join(dir, "n" + std::to_string(++gen_));
      if (to != from) {
        auto it = model_.find(to);
        if (it == model_.end() || !it->second.dir) Simple("RENAME", from, to);
      }
    } else if (p < 90) {  // write to an unlinked-but-open file (invisible)
      if (held_.empty() || (avoid_known_ && in_tx_)) return;
      const int fd = held_[R(held_.size())];
      // Only if it is unlinked: an unlink inside a transaction that aborted
      // left the held file linked, and junk in it would be visible.
      struct stat st;
      if (fstat(fd, &st) != 0 || st.st_nlink != 0) return;
      std::string junk = Pattern(0, 0, 4096 + R(60000));
      ssize_t ignored = pwrite(fd, junk.data(), junk.size(), R(100000));
      (void)ignored;  // may fail after the cut; the next op notices
    } else if (SyncChance(100)) {
      Simple("FSYNCDIR", dir);
    }
  }

  static constexpr int kSlots = 6;
  static constexpr int kTargets = 4;
  std::string root_;
  std::mt19937_64 rng_;
  int jfd_ = -1;
  int next_ = 0;
  uint64_t gen_ = 0;
  int dir_counter_ = 0;
  int sync_pct_ = 100;
  std::string mount_;  // the DBFS mount: its root takes the control xattrs
  bool tx_ok_ = false, in_tx_ = false;
  std::string tx_id_;
  std::string note_;          // journaled with the op (N line)
  bool avoid_known_ = false;  // POWERLOSS_AVOID_KNOWN_BUGS=1
  State model_;
  std::vector<int> held_;
};

}  // namespace

void RunWorkload(const std::string& root, const std::string& journal, uint64_t seed) {
  Workload(root, journal, seed).Run();
}

}  // namespace dbfs::powerloss
