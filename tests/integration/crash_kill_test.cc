// Crash test: a workload of creates, whole-file writes, fsyncs, renames over
// existing files, mkdirs and unlinks runs on the mount while the daemon is
// SIGKILLed at a random moment. After clearing the dead mount, fsck -n must
// be clean, and after remounting, the tree must be exactly the state after
// some prefix of the workload's operations (DESIGN §1), where the prefix
// includes every completed rename and everything made durable by a
// completed fsync; no file may mix the content of two writes.
//
// The workload journals every operation to a file OUTSIDE the mount (B = begun,
// E = ended, F = failed), fdatasync'ing it, before and after the syscall.
//
// Environment: DBFS_CRASH_ROUNDS (default 20), DBFS_CRASH_SYNC_ROUNDS (rounds
// of the -o sync variant, default 6), DBFS_CRASH_SEED, DBFS_CRASH_MAX_DELAY_MS
// (longest run before the kill, default 2500), DBFS_CRASH_STRICT=1 (also
// require every completed operation to survive a daemon kill).
// bench/crash_kill.sh runs this test with many rounds.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

using std::chrono::milliseconds;

long EnvLong(const char* name, long def) {
  const char* v = getenv(name);
  return (v && *v) ? strtol(v, nullptr, 10) : def;
}

// ---- content with a generation marker ----
// 32-byte records "gen=%012llu off=%010u\n"; a partial last record is a prefix
// of the full one. Every byte depends on the generation, so a file mixing two
// writes is detected.
constexpr size_t kRecord = 32;

std::string Content(uint64_t gen, size_t size) {
  std::string s;
  s.reserve(size + kRecord);
  char rec[kRecord + 1];
  for (size_t off = 0; off < size; off += kRecord) {
    snprintf(rec, sizeof rec, "gen=%012llu off=%010u\n", static_cast<unsigned long long>(gen),
             static_cast<unsigned>(off / kRecord));
    s.append(rec, kRecord);
  }
  s.resize(size);
  return s;
}

// ---- the model ----
struct Node {
  bool dir = false;
  int64_t gen = -1;  // -1: empty file
  size_t size = 0;
  bool torn = false;
  std::string detail;  // for torn files: what was found
  bool operator==(const Node& o) const {
    return dir == o.dir && gen == o.gen && size == o.size && torn == o.torn;
  }
};
using State = std::map<std::string, Node>;  // relative path -> node

Node DirNode() {
  Node n;
  n.dir = true;
  return n;
}

std::string Describe(const Node& n) {
  if (n.dir) return "dir";
  if (n.torn) return "TORN file (" + n.detail + ")";
  if (n.gen < 0) return "empty file";
  return "file gen " + std::to_string(n.gen) + " size " + std::to_string(n.size);
}

struct Op {
  int index = 0;
  std::string kind;  // MKDIR CREATE WRITE FSYNC RENAME FSYNCDIR UNLINK
  std::string a, b;  // paths relative to the round dir
  uint64_t gen = 0;
  size_t size = 0;
  bool ended = false;
  int failed_errno = 0;  // F record
};

std::string Parent(const std::string& rel) {
  auto p = rel.rfind('/');
  return p == std::string::npos ? "." : rel.substr(0, p);
}

void Apply(State* s, const Op& op) {
  if (op.kind == "MKDIR") {
    (*s)[op.a] = DirNode();
  } else if (op.kind == "CREATE") {
    (*s)[op.a] = Node{};
  } else if (op.kind == "WRITE") {
    Node n;
    n.gen = static_cast<int64_t>(op.gen);
    n.size = op.size;
    (*s)[op.a] = n;
  } else if (op.kind == "RENAME") {
    auto it = s->find(op.a);
    if (it == s->end()) return;  // cannot happen for a well-formed journal
    Node n = it->second;
    s->erase(it);
    (*s)[op.b] = n;
    if (n.dir) {  // the subtree moves along
      std::string from = op.a + "/", to = op.b + "/";
      std::vector<std::pair<std::string, Node>> moved;
      for (auto i = s->lower_bound(from); i != s->end() && i->first.rfind(from, 0) == 0;) {
        moved.emplace_back(to + i->first.substr(from.size()), i->second);
        i = s->erase(i);
      }
      for (auto& [k, v] : moved) (*s)[k] = v;
    }
  } else if (op.kind == "UNLINK" || op.kind == "RMDIR") {
    s->erase(op.a);
  }
}

// Index of the last op before `j` that changed path p's content/existence.
int LastChangeOf(const std::vector<Op>& ops, int j, const std::string& p) {
  for (int i = j - 1; i >= 0; --i) {
    const Op& o = ops[i];
    if ((o.kind == "WRITE" || o.kind == "CREATE" || o.kind == "MKDIR" || o.kind == "UNLINK" ||
         o.kind == "RMDIR") &&
        o.a == p) {
      return i;
    }
    if (o.kind == "RENAME" && (o.a == p || o.b == p)) return i;
  }
  return -1;
}

// Index of the last op before `j` that changed entries of directory d.
int LastChangeIn(const std::vector<Op>& ops, int j, const std::string& d) {
  for (int i = j - 1; i >= 0; --i) {
    const Op& o = ops[i];
    if (o.kind == "FSYNC" || o.kind == "FSYNCDIR" || o.kind == "WRITE") continue;
    if (Parent(o.a) == d) return i;
    if (o.kind == "RENAME" && Parent(o.b) == d) return i;
  }
  return -1;
}

std::vector<Op> ParseJournal(const std::string& path) {
  std::vector<Op> ops;
  std::string text = ReadFile(path);
  std::istringstream in(text);
  std::string line;
  // Only complete lines count: a SIGKILLed writer may leave a partial one,
  // and the syscall of a partially journaled op never started.
  size_t consumed = 0;
  while (std::getline(in, line)) {
    consumed += line.size() + 1;
    if (consumed > text.size()) break;  // no trailing newline: partial
    std::istringstream ls(line);
    std::string tag;
    int idx;
    ls >> tag >> idx;
    if (tag == "B") {
      Op op;
      op.index = idx;
      ls >> op.kind;
      if (op.kind == "WRITE") {
        ls >> op.a >> op.gen >> op.size;
      } else if (op.kind == "RENAME") {
        ls >> op.a >> op.b;
      } else {
        ls >> op.a;
      }
      if (static_cast<int>(ops.size()) != idx) {
        ADD_FAILURE() << "journal out of order at " << line;
        return ops;
      }
      ops.push_back(op);
    } else if (tag == "E" && idx < static_cast<int>(ops.size())) {
      ops[idx].ended = true;
    } else if (tag == "F" && idx < static_cast<int>(ops.size())) {
      ls >> ops[idx].failed_errno;
    }
  }
  return ops;
}

// ---- the workload (runs in a forked child until killed) ----
class Workload {
 public:
  Workload(std::string root, std::string journal, uint64_t seed)
      : root_(std::move(root)), rng_(seed) {
    jfd_ = open(journal.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }

  [[noreturn]] void Run() {
    if (jfd_ < 0) _exit(3);
    Do("MKDIR", ".", "", 0, 0);  // the round dir itself (relative "." = root_)
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

  // Journals B, runs the op, journals E (or F and exits).
  void Do(const std::string& kind, const std::string& a, const std::string& b, uint64_t gen,
          size_t size) {
    int n = next_++;
    std::string begin = "B " + std::to_string(n) + " " + kind + " " + a;
    if (kind == "WRITE") begin += " " + std::to_string(gen) + " " + std::to_string(size);
    if (kind == "RENAME") begin += " " + b;
    Journal(begin);
    int err = Exec(kind, a, b, gen, size);
    if (err != 0) {
      Journal("F " + std::to_string(n) + " " + std::to_string(err));
      _exit(0);
    }
    Journal("E " + std::to_string(n));
  }

  int Exec(const std::string& kind, const std::string& a, const std::string& b, uint64_t gen,
           size_t size) {
    if (kind == "MKDIR") return mkdir(P(a).c_str(), 0755) == 0 ? 0 : errno;
    if (kind == "CREATE") {
      int fd = open(P(a).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) return errno;
      return close(fd) == 0 ? 0 : errno;
    }
    if (kind == "WRITE") {
      // One pwrite of <= 32 KiB at offset 0 replaces the whole content: one
      // FUSE write, which DBFS must apply atomically.
      int fd = open(P(a).c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return errno;
      std::string c = Content(gen, size);
      ssize_t w = pwrite(fd, c.data(), c.size(), 0);
      int err = w == static_cast<ssize_t>(c.size()) ? 0 : (w < 0 ? errno : EIO);
      if (close(fd) != 0 && err == 0) err = errno;
      return err;
    }
    if (kind == "FSYNC" || kind == "FSYNCDIR") {
      int fd =
          open(P(a).c_str(), (kind == "FSYNC" ? O_WRONLY : O_RDONLY | O_DIRECTORY) | O_CLOEXEC);
      if (fd < 0) return errno;
      int err = fsync(fd) == 0 ? 0 : errno;
      close(fd);
      return err;
    }
    if (kind == "RENAME") return rename(P(a).c_str(), P(b).c_str()) == 0 ? 0 : errno;
    if (kind == "UNLINK") return unlink(P(a).c_str()) == 0 ? 0 : errno;
    if (kind == "RMDIR") return rmdir(P(a).c_str()) == 0 ? 0 : errno;
    return EINVAL;
  }

  void Step() {
    uint64_t p = rng_() % 100;
    if (p < 28) {  // overwrite a slot file in place (fixed size per slot)
      int s = rng_() % kSlots;
      std::string name = "s" + std::to_string(s);
      if (!slot_size_[s]) {
        slot_size_[s] = 512 + rng_() % (32 * 1024 - 512);
        Do("CREATE", name, "", 0, 0);
      }
      Do("WRITE", name, "", ++gen_, slot_size_[s]);
    } else if (p < 40) {  // fsync a slot file
      int s = rng_() % kSlots;
      if (slot_size_[s]) Do("FSYNC", "s" + std::to_string(s), "", 0, 0);
    } else if (p < 66) {  // atomic replace: tmp, write, [fsync], rename over target
      int t = rng_() % kTargets;
      uint64_t g = ++gen_;
      std::string dir = RandomDir();
      std::string tmp = (dir == "." ? "" : dir + "/") + "tmp" + std::to_string(g);
      std::string target = "r" + std::to_string(t);
      Do("CREATE", tmp, "", 0, 0);
      Do("WRITE", tmp, "", g, 512 + rng_() % (32 * 1024 - 512));
      if (rng_() % 10 < 7) Do("FSYNC", tmp, "", 0, 0);
      if (targets_.count(target) && rng_() % 4 == 0) Hold(target);  // replaced while open
      Do("RENAME", tmp, target, 0, 0);
      targets_.insert(target);
      if (rng_() % 2) Do("FSYNCDIR", ".", "", 0, 0);
    } else if (p < 72) {  // mkdir, at the top or one level down
      std::string parent = RandomDir();
      if (parent.find('/') != std::string::npos) return;
      std::string d = (parent == "." ? "" : parent + "/") + "d" + std::to_string(dir_counter_++);
      Do("MKDIR", d, "", 0, 0);
      dirs_.push_back(d);
    } else if (p < 76) {  // rmdir of a leaf directory
      if (dirs_.empty()) return;
      size_t i = rng_() % dirs_.size();
      if (HasSubdirs(dirs_[i])) return;
      std::string d = dirs_[i];
      dirs_.erase(dirs_.begin() + i);
      Do("RMDIR", d, "", 0, 0);
    } else if (p < 80) {  // rename a directory (with its subtree) to a new name
      if (dirs_.empty()) return;
      std::string from = dirs_[rng_() % dirs_.size()];
      std::string parent = ".";
      if (!HasSubdirs(from) && rng_() % 2) {
        std::string cand = dirs_[rng_() % dirs_.size()];
        if (cand.find('/') == std::string::npos && cand != from) parent = cand;
      }
      std::string to = (parent == "." ? "" : parent + "/") + "d" + std::to_string(dir_counter_++);
      for (auto& d : dirs_) {
        if (d == from) {
          d = to;
        } else if (d.rfind(from + "/", 0) == 0) {
          d = to + d.substr(from.size());
        }
      }
      Do("RENAME", from, to, 0, 0);
    } else if (p < 85) {  // unlink a target, sometimes while holding it open
      if (targets_.empty()) return;
      auto it = targets_.begin();
      std::advance(it, rng_() % targets_.size());
      std::string victim = *it;
      targets_.erase(it);
      if (rng_() % 2) Hold(victim);
      Do("UNLINK", victim, "", 0, 0);
    } else if (p < 90) {  // rename a target onto another (maybe existing) one
      if (targets_.empty()) return;
      auto it = targets_.begin();
      std::advance(it, rng_() % targets_.size());
      std::string from = *it;
      std::string to = "r" + std::to_string(rng_() % kTargets);
      if (to == from) return;
      targets_.erase(from);
      targets_.insert(to);
      Do("RENAME", from, to, 0, 0);
    } else if (p < 94) {  // write to an unlinked-but-open file (invisible)
      if (held_.empty()) return;
      std::string junk = Content(0, 4096 + rng_() % 60000);
      ssize_t ignored =
          pwrite(held_[rng_() % held_.size()], junk.data(), junk.size(), rng_() % 100000);
      (void)ignored;  // may fail once the daemon is gone; the next op notices
    } else {
      std::string d = RandomDir();
      Do("FSYNCDIR", d, "", 0, 0);
    }
  }

  // Keeps an fd on `rel` so that it becomes an orphan when unlinked/replaced.
  void Hold(const std::string& rel) {
    int fd = open(P(rel).c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) held_.push_back(fd);
    if (held_.size() > 4) {
      close(held_.front());
      held_.erase(held_.begin());
    }
  }

  bool HasSubdirs(const std::string& d) const {
    for (auto& x : dirs_) {
      if (x.rfind(d + "/", 0) == 0) return true;
    }
    return false;
  }

  std::string RandomDir() {
    if (dirs_.empty() || rng_() % 2) return ".";
    return dirs_[rng_() % dirs_.size()];
  }

  static constexpr int kSlots = 6;
  static constexpr int kTargets = 4;
  std::string root_;
  std::mt19937_64 rng_;
  int jfd_ = -1;
  int next_ = 0;
  uint64_t gen_ = 0;
  int dir_counter_ = 0;
  size_t slot_size_[kSlots] = {};
  std::set<std::string> targets_;
  std::vector<std::string> dirs_;
  std::vector<int> held_;  // fds of unlinked files (orphans)
};

// ---- observing the tree ----
State Observe(const std::string& root, bool* ok) {
  State s;
  *ok = true;
  struct stat st;
  if (lstat(root.c_str(), &st) != 0) return s;  // the round dir itself may be missing
  s["."] = DirNode();
  std::vector<std::string> stack = {"."};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string full = rel == "." ? root : root + "/" + rel;
    for (const std::string& name : ListDir(full)) {
      std::string crel = rel == "." ? name : rel + "/" + name;
      std::string cfull = root + "/" + crel;
      if (lstat(cfull.c_str(), &st) != 0) {
        ADD_FAILURE() << "lstat " << cfull << ": " << ErrName(errno);
        *ok = false;
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        s[crel] = DirNode();
        stack.push_back(crel);
        continue;
      }
      Node n;
      std::string c = ReadFile(cfull);
      if (c.size() != static_cast<size_t>(st.st_size)) {
        n.torn = true;
        n.detail = "read " + std::to_string(c.size()) + " bytes of " + std::to_string(st.st_size);
      } else if (!c.empty()) {
        n.size = c.size();
        n.gen = c.size() >= 16 ? strtoll(c.substr(4, 12).c_str(), nullptr, 10) : -2;
        if (n.gen < 0 || c != Content(n.gen, c.size())) {
          n.torn = true;
          std::set<std::string> gens;
          for (size_t off = 0; off + 16 <= c.size(); off += kRecord) {
            gens.insert(c.substr(off, 4) == "gen=" ? c.substr(off + 4, 12) : "<garbage>");
          }
          n.detail = "size " + std::to_string(c.size()) + ", generations seen:";
          for (auto& g : gens) n.detail += " " + g;
        }
      }
      s[crel] = n;
    }
  }
  return s;
}

std::string Diff(const State& want, const State& got) {
  std::ostringstream o;
  for (auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) {
      o << "  missing " << k << " (want " << Describe(v) << ")\n";
    } else if (!(it->second == v)) {
      o << "  " << k << ": want " << Describe(v) << ", got " << Describe(it->second) << "\n";
    }
  }
  for (auto& [k, v] : got) {
    if (!want.count(k)) o << "  unexpected " << k << ": " << Describe(v) << "\n";
  }
  return o.str();
}

struct RoundResult {
  int begun = 0, completed = 0, matched_prefix = -1, required_prefix = 0;
};

// Checks an observed state against every prefix of the journal.
::testing::AssertionResult CheckState(const State& seen_in, const std::vector<Op>& ops, bool strict,
                                      RoundResult* rr, bool partial_inflight_write_ok = false) {
  State seen = seen_in;
  // Plain-dir mode kills the writer itself, and the kernel may then leave a
  // write(2) partially done; count such a file as fully written. (DBFS gets no
  // such allowance: there the daemon dies, and one FUSE write is atomic.)
  if (partial_inflight_write_ok && !ops.empty() && !ops.back().ended &&
      ops.back().kind == "WRITE") {
    auto it = seen.find(ops.back().a);
    if (it != seen.end() && !it->second.dir &&
        (it->second.torn || (it->second.gen == static_cast<int64_t>(ops.back().gen) &&
                             it->second.size < ops.back().size))) {
      it->second = Node{};
      it->second.gen = static_cast<int64_t>(ops.back().gen);
      it->second.size = ops.back().size;
    }
  }
  int n = static_cast<int>(ops.size());
  int completed = 0;
  for (const Op& o : ops) completed += o.ended;
  rr->begun = n;
  rr->completed = completed;
  // The smallest prefix the contract allows. Ops are sequential, so only
  // the last begun op can be in flight; all others ended.
  int kmin = 0;
  std::string why = "nothing";
  for (int j = 0; j < n; ++j) {
    const Op& o = ops[j];
    if (!o.ended) continue;
    int need = -1;
    std::string reason;
    if (o.kind == "RENAME") {
      need = j;
      reason = "completed rename #" + std::to_string(j) + " " + o.a + " -> " + o.b;
    } else if (o.kind == "FSYNC") {
      need = LastChangeOf(ops, j, o.a);
      reason = "fsync #" + std::to_string(j) + " of " + o.a;
    } else if (o.kind == "FSYNCDIR") {
      need = LastChangeIn(ops, j, o.a);
      reason = "fsync of dir #" + std::to_string(j) + " " + o.a;
    } else if (strict) {
      need = j;
      reason = "completed op #" + std::to_string(j) + " (strict)";
    }
    if (need + 1 > kmin) {
      kmin = need + 1;
      why = reason;
    }
  }
  rr->required_prefix = kmin;
  // States after each prefix.
  std::vector<State> states(n + 1);
  for (int k = 1; k <= n; ++k) {
    states[k] = states[k - 1];
    Apply(&states[k], ops[k - 1]);
  }
  for (int k = n; k >= 0; --k) {
    if (states[k] == seen) {
      rr->matched_prefix = k;
      if (k < kmin) {
        return ::testing::AssertionFailure()
               << "state is the prefix of " << k << " ops, but at least " << kmin
               << " are required by " << why << " (" << n << " begun, " << completed
               << " completed); lost ops:\n"
               << [&] {
                    std::ostringstream o;
                    for (int i = k; i < kmin; ++i) {
                      o << "  #" << i << " " << ops[i].kind << " " << ops[i].a << " " << ops[i].b
                        << (ops[i].kind == "WRITE" ? " gen " + std::to_string(ops[i].gen) : "")
                        << "\n";
                    }
                    return o.str();
                  }();
      }
      return ::testing::AssertionSuccess();
    }
  }
  // No prefix matches: show the closest candidates.
  std::ostringstream o;
  o << "observed state is not the state after any prefix of the " << n << " begun ops ("
    << completed << " completed, required prefix >= " << kmin << " because of " << why << ")\n";
  for (auto& [k, v] : seen) {
    if (v.torn) o << "TORN: " << k << ": " << v.detail << "\n";
  }
  int best = -1;
  size_t best_len = SIZE_MAX;
  for (int k = std::max(0, kmin - 1); k <= n; ++k) {
    size_t len = Diff(states[k], seen).size();
    if (len < best_len) {
      best_len = len;
      best = k;
    }
  }
  if (n + 1 - std::max(0, kmin - 1) <= 4) {
    for (int k = std::max(0, kmin - 1); k <= n; ++k) {
      o << "prefix " << k << ", differences:\n" << Diff(states[k], seen);
    }
  } else if (best >= 0) {
    o << "closest prefix " << best << ", differences:\n" << Diff(states[best], seen);
  }
  o << "last ops:\n";
  for (int i = std::max(0, n - 8); i < n; ++i) {
    o << "  #" << i << " " << ops[i].kind << " " << ops[i].a << " " << ops[i].b
      << (ops[i].kind == "WRITE" ? " gen " + std::to_string(ops[i].gen) : "")
      << (ops[i].ended          ? " [ended]"
          : ops[i].failed_errno ? " [failed]"
                                : " [in flight]")
      << "\n";
  }
  return ::testing::AssertionFailure() << o.str();
}

::testing::AssertionResult CheckRound(const std::string& root, const std::vector<Op>& ops,
                                      bool strict, bool plain, RoundResult* rr) {
  bool ok;
  State seen = Observe(root, &ok);
  if (!ok) return ::testing::AssertionFailure() << "could not observe " << root;
  return CheckState(seen, ops, strict, rr, plain);
}

std::string MakeJournalDir() {
  // /dev/shm makes the journal's fdatasync cheap; it is outside the mount
  // either way, and survives the daemon's death.
  char tmpl[] = "/dev/shm/dbfs-crash-XXXXXX";
  if (mkdtemp(tmpl)) return tmpl;
  char tmpl2[] = "/tmp/dbfs-crash-XXXXXX";
  if (mkdtemp(tmpl2)) return tmpl2;
  return "";
}

// The oracle itself must catch lost renames, lost fsync'ed writes, prefix
// violations, torn files and stray entries (no mount needed).
TEST(CrashOracle, CatchesViolations) {
  auto op = [](std::string kind, std::string a, std::string b = "", uint64_t gen = 0,
               size_t size = 0, bool ended = true) {
    Op o;
    o.kind = kind;
    o.a = a;
    o.b = b;
    o.gen = gen;
    o.size = size;
    o.ended = ended;
    return o;
  };
  std::vector<Op> ops = {
      op("MKDIR", "."),                        // 0
      op("CREATE", "s0"),                      // 1
      op("WRITE", "s0", "", 1, 1000),          // 2
      op("FSYNC", "s0"),                       // 3: s0 gen 1 durable -> prefix >= 3
      op("CREATE", "tmp2"),                    // 4
      op("WRITE", "tmp2", "", 2, 600),         // 5
      op("RENAME", "tmp2", "r0"),              // 6: completed rename -> prefix >= 7
      op("WRITE", "s0", "", 3, 1000),          // 7
      op("CREATE", "tmp4"),                    // 8
      op("WRITE", "tmp4", "", 4, 700, false),  // 9: in flight
  };
  for (size_t i = 0; i < ops.size(); ++i) ops[i].index = static_cast<int>(i);
  std::vector<State> st(ops.size() + 1);
  for (size_t k = 1; k <= ops.size(); ++k) {
    st[k] = st[k - 1];
    Apply(&st[k], ops[k - 1]);
  }
  RoundResult rr;
  for (size_t k = 0; k <= ops.size(); ++k) {
    EXPECT_EQ(k >= 7, static_cast<bool>(CheckState(st[k], ops, false, &rr))) << "prefix " << k;
    EXPECT_EQ(k >= 9, static_cast<bool>(CheckState(st[k], ops, true, &rr)))
        << "strict, prefix " << k;
  }
  // Torn file.
  State torn = st[10];
  torn["s0"].torn = true;
  torn["s0"].detail = "test";
  EXPECT_FALSE(CheckState(torn, ops, false, &rr));
  // Stray entry.
  State stray = st[10];
  stray["zzz"] = Node{};
  EXPECT_FALSE(CheckState(stray, ops, false, &rr));
  // An older write visible together with later operations: no prefix.
  State mixed = st[10];
  mixed["s0"].gen = 1;
  EXPECT_FALSE(CheckState(mixed, ops, false, &rr));
  // Lost fsync'ed data even though the rest is there.
  State lost = st[10];
  lost["s0"].gen = -1;
  lost["s0"].size = 0;
  EXPECT_FALSE(CheckState(lost, ops, false, &rr));
  // A later fsync raises the bar: fsync of s0 after op 7 needs prefix >= 8.
  std::vector<Op> ops2(ops.begin(), ops.begin() + 8);
  ops2.push_back(op("FSYNC", "s0"));
  ops2.back().index = 8;
  EXPECT_FALSE(CheckState(st[7], ops2, false, &rr));
  EXPECT_TRUE(CheckState(st[8], ops2, false, &rr));
  // fsync of a directory covers its entries: FSYNCDIR "." after CREATE tmp4.
  std::vector<Op> ops3(ops.begin(), ops.begin() + 9);
  ops3.push_back(op("FSYNCDIR", "."));
  ops3.back().index = 9;
  EXPECT_FALSE(CheckState(st[8], ops3, false, &rr));
  EXPECT_TRUE(CheckState(st[9], ops3, false, &rr));
  // Content check of the on-disk format.
  std::string c = Content(42, 100);
  EXPECT_EQ(100u, c.size());
  EXPECT_EQ("gen=000000000042 off=0000000000\n", c.substr(0, 32));
}

// Runs `rounds` crash rounds on one volume mounted with `opts`. With
// `strict`, every completed operation must survive (right for -o sync).
void RunCrashRounds(const std::string& opts, int rounds, bool strict) {
  if (geteuid() != 0) GTEST_SKIP() << "integration tests run as root";
  const long max_delay = EnvLong("DBFS_CRASH_MAX_DELAY_MS", 2500);
  const uint64_t seed = static_cast<uint64_t>(EnvLong(
      "DBFS_CRASH_SEED",
      static_cast<long>(std::chrono::steady_clock::now().time_since_epoch().count() & 0x7fffffff)));
  std::cout << "crash test (-o " << opts << "): " << rounds << " rounds, seed " << seed
            << " (rerun with DBFS_CRASH_SEED=" << seed << ")" << (strict ? ", strict" : "")
            << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("DBFS_CRASH_SEED=" + std::to_string(seed));

  umask(022);
  std::string err;
  auto vol = MountedVolume::Create(opts, &err);
  ASSERT_TRUE(vol != nullptr) << err;
  std::string jdir = MakeJournalDir();
  ASSERT_FALSE(jdir.empty());
  struct Cleanup {
    std::string jdir;
    ~Cleanup() { RemoveTree(jdir); }
  } cleanup{jdir};
  if (!vol->plain()) {
    ASSERT_FALSE(ToolPath("fsck.dbfs").empty()) << "fsck.dbfs not built";
  }
  auto run_fsck = [&](const std::string& when) { return vol->FsckClean(when); };

  std::mt19937_64 rng(seed);
  std::map<int, State> snapshots;  // verified state of earlier rounds
  long total_begun = 0, total_completed = 0, lost_completed = 0, inflight_applied = 0;
  auto round_dir = [&](int r) { return vol->path("round" + std::to_string(r)); };

  for (int r = 0; r < rounds && !::testing::Test::HasFailure(); ++r) {
    SCOPED_TRACE("round " + std::to_string(r));
    std::string journal = jdir + "/journal." + std::to_string(r);
    uint64_t wseed = rng();
    // Mostly short runs (many rounds), some long ones (bigger histories,
    // background flushes in progress at the kill).
    long delay = rng() % 10 < 7
                     ? 20 + static_cast<long>(rng() % 680)
                     : 700 + static_cast<long>(rng() % std::max<long>(1, max_delay - 700));
    std::string root = round_dir(r);
    pid_t wpid = fork();
    ASSERT_GE(wpid, 0);
    if (wpid == 0) {
      Workload(root, journal, wseed).Run();
    }
    // Kill at a random moment (the delay is the randomized crash point, not
    // a wait for anything). Stop early if the workload died by itself.
    int wstatus = 0;
    bool workload_exited = WaitPid(wpid, milliseconds(delay), &wstatus);
    if (!vol->plain()) kill(vol->daemon_pid(), SIGKILL);
    if (!workload_exited) {
      kill(wpid, SIGKILL);
      ASSERT_TRUE(WaitPid(wpid, milliseconds(30000), &wstatus)) << "workload did not die";
    }
    ASSERT_TRUE(vol->Kill9());
    std::vector<Op> ops = ParseJournal(journal);
    if (!ops.empty() && ops.back().failed_errno) {
      int e = ops.back().failed_errno;
      if (vol->plain() || (e != ENOTCONN && e != ECONNABORTED && e != EIO)) {
        ADD_FAILURE() << "workload op #" << ops.back().index << " " << ops.back().kind << " "
                      << ops.back().a << " failed with " << ErrName(e) << " before the crash";
      }
    }
    if (workload_exited && ops.empty()) {
      ADD_FAILURE() << "workload exited early, status " << wstatus;
    }

    ASSERT_TRUE(run_fsck("after SIGKILL in round " + std::to_string(r)));
    if (r % 3 == 1) {
      // Crash during start-up too (at a random moment, which may or may not
      // fall inside the WAL replay: CrashKill.CrashInTheMiddleOfRecovery
      // proves that case), then recover for real.
      ASSERT_TRUE(vol->KillDuringMount(milliseconds(rng() % 30)));
      ASSERT_TRUE(run_fsck("after SIGKILL during start-up in round " + std::to_string(r)));
    }
    ASSERT_TRUE(vol->Mount()) << vol->Log();

    RoundResult rr;
    EXPECT_TRUE(CheckRound(root, ops, strict || vol->plain(), vol->plain(), &rr))
        << "round " << r << " (workload seed " << wseed << ", kill after " << delay << " ms)";
    total_begun += rr.begun;
    total_completed += rr.completed;
    if (rr.matched_prefix >= 0) {
      if (rr.matched_prefix < rr.completed) lost_completed += rr.completed - rr.matched_prefix;
      if (rr.matched_prefix > rr.completed) ++inflight_applied;
    }
    // Earlier rounds must be untouched by this crash and recovery.
    for (auto& [pr, want] : snapshots) {
      if (pr < r - 3 && pr % 7 != r % 7) continue;  // sample older rounds
      bool ok;
      State got = Observe(round_dir(pr), &ok);
      EXPECT_TRUE(got == want) << "round " << pr << " changed after crash " << r << ":\n"
                               << Diff(want, got);
    }
    bool ok;
    snapshots[r] = Observe(root, &ok);
    // Keep the volume bounded in long runs: remove old rounds (which also
    // puts unlink/rmdir into the recovered history).
    if (snapshots.size() > 10) {
      int oldest = snapshots.begin()->first;
      RemoveTree(round_dir(oldest));
      EXPECT_FALSE(Exists(round_dir(oldest))) << "could not remove " << round_dir(oldest);
      snapshots.erase(oldest);
    }
  }

  // Finally: clean unmount, fsck, and everything still there after a mount.
  if (!::testing::Test::HasFailure()) {
    ASSERT_TRUE(vol->Unmount());
    ASSERT_TRUE(run_fsck("after the final clean unmount"));
    ASSERT_TRUE(vol->Mount());
    for (auto& [pr, want] : snapshots) {
      bool ok;
      State got = Observe(round_dir(pr), &ok);
      EXPECT_TRUE(got == want) << "round " << pr << " changed after clean remount:\n"
                               << Diff(want, got);
    }
  }
  std::cout << "crash test: " << rounds << " rounds, " << total_begun << " ops begun, "
            << total_completed << " completed, " << lost_completed
            << " completed-but-not-durable ops lost, " << inflight_applied
            << " in-flight ops applied" << std::endl;
  if (::testing::Test::HasFailure() && !vol->plain()) {
    std::cout << "---- daemon log (tail) ----\n" << vol->Log(16 * 1024) << "\n";
  }
  if (vol->mounted()) {
    EXPECT_TRUE(vol->Unmount());
  }
}

// A crash in the middle of recovery, shown to be there: the daemon crashes
// at its first flush (crash point "flush"), so the commits since the mount
// are only in the WAL; the next daemon crashes after replaying the first of
// them (crash point "recovery.replay", its log line proves it), the one
// after that recovers. Every file whose creation returned is intact, and
// fsck -n -f is clean (the fixture's strict check). No timing involved.
TEST(CrashKill, CrashInTheMiddleOfRecovery) {
  if (geteuid() != 0) GTEST_SKIP() << "integration tests run as root";
  std::string err;
  auto vol = MountedVolume::Create(MountedVolume::DefaultOptions(), &err);
  ASSERT_TRUE(vol != nullptr) << err;
  if (vol->plain()) GTEST_SKIP() << "needs a daemon";
  ASSERT_TRUE(vol->Unmount());
  vol->set_crash_point("flush");
  ASSERT_TRUE(vol->Mount());
  vol->set_crash_point("");
  // Files until a write fails: the daemon is gone (bounded by a count).
  int acked = 0;
  for (int i = 0; i < 100000; ++i) {
    const std::string content = "file " + std::to_string(i) + "\n";
    if (!WriteFile(vol->path("f" + std::to_string(i)), content)) break;
    acked = i + 1;
  }
  ASSERT_TRUE(vol->AwaitCrashPoint("flush", std::chrono::seconds(60))) << vol->Log();
  ASSERT_TRUE(vol->CrashDuringMount("recovery.replay:1")) << vol->Log();
  ASSERT_TRUE(vol->Mount()) << vol->Log();
  int bad = 0;
  for (int i = 0; i < acked; ++i) {
    const std::string want = "file " + std::to_string(i) + "\n";
    if (ReadFile(vol->path("f" + std::to_string(i))) != want && ++bad <= 5) {
      ADD_FAILURE() << "f" << i << " lost or damaged after the crashes";
    }
  }
  EXPECT_EQ(bad, 0) << "of " << acked << " acknowledged files";
  ASSERT_TRUE(vol->Unmount());
  EXPECT_TRUE(vol->FsckClean("after a crash in the middle of recovery"));
}

TEST(CrashKill, RandomKillsKeepCompletedAndDurableOps) {
  RunCrashRounds(MountedVolume::DefaultOptions(),
                 static_cast<int>(EnvLong("DBFS_CRASH_ROUNDS", 20)),
                 EnvLong("DBFS_CRASH_STRICT", 0) == 1);
}

// -o sync: every operation is durable before it returns, so every completed
// operation must survive the kill.
TEST(CrashKill, SyncMountKeepsEveryCompletedOp) {
  RunCrashRounds(MountedVolume::DefaultOptions() + ",sync",
                 static_cast<int>(EnvLong("DBFS_CRASH_SYNC_ROUNDS", 6)), true);
}

}  // namespace
}  // namespace dbfs::testing
