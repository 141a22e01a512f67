// The power-cut workload, its journal, the model of the tree it builds, and
// the oracle that judges what survived a cut (docs/powerloss.md).
//
// The workload runs in a forked child on a DBFS mount. Before each operation
// it appends "B ..." to a journal outside every mount, and after it "E i" (it
// returned) or "F i errno time" (it failed; the child then exits); each line
// is fdatasync'ed. Operations are sequential, so at most the last begun one
// was in flight at the cut.
//
// Explicit transactions (docs/ARCHITECTURE.md §8), when the mount offers
// them: TXBEGIN, some operations, then TXCOMMIT (`off` = 1: ":durable") or
// TXABORT. The operations inside take effect together at the commit, and an
// fsync or O_DSYNC write inside makes the commit durable (it syncs nothing
// by itself).
//
// File content marks every byte with the write that put it there: the byte
// at offset p written by generation g is byte p % 32 of the 32-byte record
// "gen=%012g off=%010(p/32)\n". A file mixing two writes, or holding a write
// at the wrong place, matches no state of the model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dbfs::powerloss {

constexpr size_t kRecord = 32;

// The bytes [off, off + len) as written by generation gen.
std::string Pattern(uint64_t gen, uint64_t off, size_t len);

// ---- the model ----

struct Node {
  bool dir = false;
  std::string data;  // files only
  bool operator==(const Node& o) const { return dir == o.dir && data == o.data; }
};
// Paths relative to the workload root; "." is the root itself.
using State = std::map<std::string, Node>;

struct Op {
  int index = 0;
  // MKDIR CREATE WRITE TRUNC FSYNC FDATASYNC FSYNCDIR RENAME UNLINK RMDIR,
  // TXBEGIN TXCOMMIT TXABORT
  std::string kind;
  std::string a, b;
  uint64_t off = 0;    // WRITE: offset; TRUNC: new size; TXCOMMIT: 1 if ":durable"
  uint64_t len = 0;    // WRITE
  uint64_t gen = 0;    // WRITE
  bool dsync = false;  // WRITE through an O_DSYNC descriptor: durable when it returns
  bool ended = false;
  int failed_errno = 0;
  int64_t failed_at_ns = 0;  // CLOCK_MONOTONIC of the failure
  std::string note;          // e.g. the reply of a failed commit
};

std::string Describe(const Op& op);

// Applies op; appends every path whose node changed (or appeared or went) to
// *changed when non-null. Ops that do not apply (a missing source) change
// nothing, and so do the TX* markers (see Replayer).
void Apply(State* s, const Op& op, std::vector<std::string>* changed);

// Replays a journal in order: operations inside a transaction are held back
// and applied together at its TXCOMMIT (dropped at TXABORT).
class Replayer {
 public:
  explicit Replayer(State* s) : s_(s) {}
  void Step(const Op& op, std::vector<std::string>* changed);
  bool in_tx() const { return in_tx_; }

 private:
  State* s_;
  bool in_tx_ = false;
  std::vector<Op> held_;
};

// The state after the first k operations.
State StateAfter(const std::vector<Op>& ops, int k);

// Complete lines only: a partial last line was never followed by its syscall.
std::vector<Op> ParseJournal(const std::string& path, std::string* error);

// ---- observation and judgement ----

// The tree under root (empty if root does not exist). *error gets anything
// that could not be read or was inconsistent (stat size vs bytes read).
State Observe(const std::string& root, std::string* error);

// Describes file content: which generation holds which records.
std::string DescribeContent(const std::string& data);

struct Verdict {
  bool ok = false;
  std::string message;  // why not, with details
  int begun = 0;        // ops in the journal
  int completed = 0;    // ops that returned
  int required = 0;     // smallest prefix the durability promises allow
  std::string required_by;
  int matched = -1;  // largest prefix whose state equals the observed one
};

// DBFS's contract (docs/ARCHITECTURE.md §4-5, §8): the surviving tree is the
// state after some prefix of the operations, and that prefix holds every
// operation that completed before a successful fsync/fdatasync/directory
// fsync (DBFS syncs its whole log), every O_DSYNC write that returned, every
// transaction commit that returned and was durable (":durable", or an fsync
// or O_DSYNC write inside it), and with `sync_mount` (-o sync) every
// operation or commit that returned.
Verdict Judge(const State& seen, const std::vector<Op>& ops, bool sync_mount);

// Differences between two states, one line per path.
std::string Diff(const State& want, const State& got);

// ---- the workload ----

// Runs operations on root (a directory in a DBFS mount's root directory)
// until one fails (then exits 0) or it is killed.
[[noreturn]] void RunWorkload(const std::string& root, const std::string& journal, uint64_t seed);

}  // namespace dbfs::powerloss
