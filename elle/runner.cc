#include "elle/runner.h"

#include "fs/runtime_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "elle/cli.h"
#include "elle/daemon.h"
#include "elle/history.h"
#include "elle/protocol.h"

namespace dbfs::elle {

namespace {

std::string KeyPath(int64_t key) { return "elle/k" + std::to_string(key); }

// The first key id no earlier run used: keys of a run are fresh files, so
// histories of consecutive runs on one volume do not see each other's appends.
int64_t FirstFreeKey(const std::string& dir) {
  int64_t next = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 2 || name[0] != 'k') continue;
    char* end = nullptr;
    const long long id = std::strtoll(name.c_str() + 1, &end, 10);
    if (end != nullptr && *end == '\0' && id >= next) next = id + 1;
  }
  ::closedir(d);
  return next;
}

std::vector<int64_t> ParseList(const std::string& s) {
  std::vector<int64_t> out;
  std::istringstream in(s);
  std::string tok;
  while (in >> tok) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(tok.c_str(), &end, 10);
    // A token that is not an integer: keep something the checker will flag
    // (an element nobody appended) rather than hiding it.
    out.push_back(errno == 0 && end != nullptr && *end == '\0' ? v : -1);
  }
  return out;
}

using SteadyClock = std::chrono::steady_clock;

// An EDN string literal.
std::string EdnString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

// The run's history file: the clients' transactions and the nemesis' ops
// (:process :nemesis, as Jepsen writes them) in one real-time order. Like
// HistoryRecorder (elle/recorder.h), which records client ops only, it
// assigns :index and a never-decreasing :time (nanoseconds since the start)
// under one mutex, in the order ops are recorded, and writes each op as one
// EDN line as it happens, so a run that dies leaves a readable prefix; a
// failed write is sticky. Thread-safe.
class Journal {
 public:
  explicit Journal(std::ostream* sink) : sink_(sink), start_(SteadyClock::now()) {}
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Records `process`'s invocation of `txn` (read results dropped: nil).
  // REQUIRES: `process` has no open invocation (else Invalid).
  Status Invoke(int64_t process, std::vector<Mop> txn) {
    for (Mop& m : txn) m.list.reset();
    std::lock_guard g(mu_);
    if (!open_.insert(process).second) {
      return Status::Invalid("process " + std::to_string(process) + " invoked twice");
    }
    return WriteClientLocked(Op::kInvoke, process, std::move(txn));
  }

  // Records the completion of `process`'s open invocation; `value` carries
  // the read results (:ok) or repeats the invocation (:fail, :info).
  Status Complete(int64_t process, Op::Type type, std::vector<Mop> value) {
    std::lock_guard g(mu_);
    if (type == Op::kInvoke || open_.erase(process) == 0) {
      return Status::Invalid("process " + std::to_string(process) + " completed nothing");
    }
    return WriteClientLocked(type, process, std::move(value));
  }

  // {:type :invoke|:info, :f :F, :value VALUE, :process :nemesis, ...}.
  Status Nemesis(Op::Type type, std::string_view f, std::string_view value_edn) {
    std::lock_guard g(mu_);
    const auto [time, index] = StampLocked();
    std::string line = "{:type :";
    line.append(TypeName(type)).append(", :f :").append(f).append(", :value ").append(value_edn);
    line.append(", :process :nemesis, :time ").append(std::to_string(time));
    line.append(", :index ").append(std::to_string(index)).push_back('}');
    return WriteLocked(line);
  }

  Status status() const {
    std::lock_guard g(mu_);
    return status_;
  }

 private:
  // REQUIRES: mu_ held.
  std::pair<int64_t, int64_t> StampLocked() {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - start_).count();
    last_time_ = std::max(last_time_, now);
    return {last_time_, next_index_};
  }
  // REQUIRES: mu_ held.
  Status WriteClientLocked(Op::Type type, int64_t process, std::vector<Mop> value) {
    Op op;
    op.type = type;
    op.process = process;
    op.value = std::move(value);
    std::tie(op.time, op.index) = StampLocked();
    return WriteLocked(ToEdn(op));
  }
  // REQUIRES: mu_ held.
  Status WriteLocked(const std::string& line) {
    if (!status_.ok()) return status_;
    *sink_ << line << '\n';
    if (!*sink_) {
      status_ = Status::IOError("writing the history failed at op " + std::to_string(next_index_));
      return status_;
    }
    ++next_index_;
    return Status::Ok();
  }

  std::ostream* const sink_;
  const SteadyClock::time_point start_;
  mutable std::mutex mu_;  // guards what follows
  int64_t next_index_ = 0;
  int64_t last_time_ = 0;
  std::set<int64_t> open_;  // processes with an open invocation
  Status status_;
};

// State shared by the client threads.
struct Shared {
  const RunOptions& o;
  Journal* journal = nullptr;
  std::atomic<int64_t> next_txn{0};
  std::atomic<int64_t> next_value{1};
  std::atomic<int64_t> ok{0}, fail{0}, info{0};
  std::atomic<bool> fatal{false};
  std::mutex mu;  // guards what follows
  std::vector<int64_t> slot_key, slot_appends;
  int64_t next_key = 0;
  std::set<int64_t> used;
  std::string fatal_msg;
  // Where transactions go: the protocol socket, or (posix) `dbfs tx run`
  // processes through the mount.
  std::string sock, mount, dbfs_exe;
  bool posix = false;
  // Client threads still running (the nemesis stops when none is).
  std::atomic<int> running{0};

  // Whether the daemon serves (false from just before a kill until the
  // remount is live): clients wait for it instead of failing to connect.
  std::mutex up_mu;
  std::condition_variable up_cv;
  bool up = true;  // guarded by up_mu

  Shared(const RunOptions& opts, int64_t first_key) : o(opts), next_key(first_key) {
    for (int i = 0; i < o.keys; ++i) {
      slot_key.push_back(next_key++);
      slot_appends.push_back(0);
    }
  }

  // A key for a micro-op: slot i with probability ~ skewed to low slots.
  int64_t PickKey(std::mt19937_64& rng, bool append) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double x = u(rng);
    size_t slot = static_cast<size_t>(std::floor(x * x * static_cast<double>(slot_key.size())));
    std::lock_guard g(mu);
    slot = std::min(slot, slot_key.size() - 1);
    const int64_t key = slot_key[slot];
    used.insert(key);
    if (append && ++slot_appends[slot] >= kAppendsPerKey) {
      slot_key[slot] = next_key++;  // retire: fresh key from now on
      slot_appends[slot] = 0;
    }
    return key;
  }

  void Fatal(const std::string& msg) {
    {
      std::lock_guard g(mu);
      if (!fatal.exchange(true)) fatal_msg = msg;
    }
    std::lock_guard g(up_mu);
    up_cv.notify_all();  // nobody waits for a remount that will not come
  }

  void SetUp(bool is_up) {
    std::lock_guard g(up_mu);
    up = is_up;
    up_cv.notify_all();
  }

  // Connects `client` to the protocol socket. Waits (bounded) while the
  // nemesis has the daemon down; the daemon may go down again between the
  // wait and the connect, hence the loop.
  Status Reconnect(proto::Client* client) {
    const auto deadline = SteadyClock::now() + (o.nemesis == "kill" ? std::chrono::seconds(180)
                                                                    : std::chrono::seconds(1));
    Status s;
    while (!fatal.load()) {
      {
        std::unique_lock lk(up_mu);
        if (!up_cv.wait_until(lk, deadline, [&] { return up || fatal.load(); })) {
          return Status::IOError("the daemon did not come back");
        }
      }
      if (fatal.load()) break;
      s = client->ConnectUnix(sock);
      if (s.ok()) return s;
      if (SteadyClock::now() >= deadline) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Status::IOError("the run is stopping");
  }
};

enum class Outcome { kOk, kFail, kInfo };

// Runs one transaction over `client`, filling in read results.
Outcome RunTxn(proto::Client* client, bool serializable, bool durable, std::vector<Mop>* txn,
               std::string* why) {
  auto r = client->Call(proto::kBeginTx, 0, std::string(1, serializable ? '\0' : '\1'));
  if (!r.ok()) {
    *why = r.status().message();
    return Outcome::kFail;  // a dropped connection aborts whatever began
  }
  if (r->status != proto::kOk) {
    *why = "begin: " + r->msg;
    return Outcome::kFail;
  }
  const uint64_t tx = r->tx;
  for (Mop& m : *txn) {
    if (m.f == Mop::kAppend) {
      r = client->Call(proto::kAppendFile, tx,
                       proto::PathPayload(KeyPath(m.key), std::to_string(m.value) + " "));
    } else {
      r = client->Call(proto::kReadFile, tx, proto::PathPayload(KeyPath(m.key)));
    }
    if (!r.ok()) {
      *why = r.status().message();
      return Outcome::kFail;
    }
    if (m.f == Mop::kRead && (r->status == proto::kOk || r->status == proto::kNotFound)) {
      m.list = r->status == proto::kOk ? ParseList(r->data) : std::vector<int64_t>{};
      continue;
    }
    if (r->status != proto::kOk) {
      *why = r->msg;
      (void)client->Call(proto::kAbortTx, tx, "");
      return Outcome::kFail;
    }
  }
  r = client->Call(proto::kCommitTx, tx, std::string(1, durable ? '\1' : '\0'));
  if (!r.ok()) {
    *why = r.status().message();
    return Outcome::kInfo;  // the commit may or may not have happened
  }
  if (r->status == proto::kOk) return Outcome::kOk;
  *why = r->msg;
  if (r->status == proto::kConflict || r->status == proto::kBadRequest) return Outcome::kFail;
  return Outcome::kInfo;
}

// Runs one transaction over `client` as one pipelined batch: BEGIN_TX with
// the alias `alias`, the micro-ops, COMMIT_TX, in one write; then reads the
// answers in order. A failed micro-op aborts the transaction in the server,
// so its COMMIT_TX answers conflict: the outcome is the commit's.
Outcome RunTxnPipelined(proto::Client* client, bool serializable, bool durable, uint64_t alias,
                        std::vector<Mop>* txn, std::string* why) {
  std::string batch = proto::EncodeFrame(proto::kBeginTx, alias, std::string(1, serializable ? '\0' : '\1'));
  for (const Mop& m : *txn) {
    batch += m.f == Mop::kAppend
                 ? proto::EncodeFrame(proto::kAppendFile, alias,
                                      proto::PathPayload(KeyPath(m.key), std::to_string(m.value) + " "))
                 : proto::EncodeFrame(proto::kReadFile, alias, proto::PathPayload(KeyPath(m.key)));
  }
  batch += proto::EncodeFrame(proto::kCommitTx, alias, std::string(1, durable ? '\1' : '\0'));
  if (Status s = client->Send(batch); !s.ok()) {
    // Not all of it was sent, so the COMMIT_TX (last) was not: a truncated
    // frame and a dropped connection abort the transaction.
    *why = s.message();
    return Outcome::kFail;
  }
  // From here on the whole batch may have been executed: without the commit's
  // answer the outcome is unknown.
  bool op_failed = false;
  auto r = client->Receive();
  if (!r.ok()) {
    *why = r.status().message();
    return Outcome::kInfo;
  }
  if (r->status != proto::kOk) {
    *why = "begin: " + r->msg;
    op_failed = true;
  }
  for (Mop& m : *txn) {
    r = client->Receive();
    if (!r.ok()) {
      *why = r.status().message();
      return Outcome::kInfo;
    }
    if (m.f == Mop::kRead && (r->status == proto::kOk || r->status == proto::kNotFound)) {
      m.list = r->status == proto::kOk ? ParseList(r->data) : std::vector<int64_t>{};
      continue;
    }
    if (r->status != proto::kOk && !op_failed) {
      *why = r->msg;
      op_failed = true;
    }
  }
  r = client->Receive();
  if (!r.ok()) {
    *why = r.status().message();
    return Outcome::kInfo;
  }
  if (r->status == proto::kOk) {
    // The server never commits a transaction with a failed operation; if it
    // did, what took effect is unknown.
    return op_failed ? Outcome::kInfo : Outcome::kOk;
  }
  if (!op_failed) *why = r->msg;
  if (r->status == proto::kConflict || r->status == proto::kBadRequest) return Outcome::kFail;
  return Outcome::kInfo;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

extern "C" char** environ;

// Runs the transaction as `dbfs tx run --mount MNT -- sh -c SCRIPT`: appends
// with printf >>, reads with cat, one "R <list>" line per read on stdout.
Outcome RunTxnPosix(const Shared& sh, std::vector<Mop>* txn, std::string* why) {
  std::string script;
  for (const Mop& m : *txn) {
    const std::string f = ShellQuote(sh.mount + "/" + KeyPath(m.key));
    if (m.f == Mop::kAppend) {
      script += "printf '%s ' " + std::to_string(m.value) + " >> " + f + " || exit 3\n";
    } else {
      script += "printf 'R '; if [ -e " + f + " ]; then cat " + f + " || exit 3; fi; echo\n";
    }
  }
  std::vector<std::string> args = {sh.dbfs_exe, "tx",  "run",  "--mount", sh.mount, "--isolation",
                                   sh.o.serializable ? "serializable" : "snapshot"};
  if (sh.o.durable) args.push_back("--durable");
  for (const char* a : {"--", "/bin/sh", "-c"}) args.push_back(a);
  args.push_back(script);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    *why = "pipe failed";
    return Outcome::kFail;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  // Conflicts are expected; their messages would only drown the verdict.
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, sh.dbfs_exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    *why = std::string("spawn: ") + std::strerror(rc);
    return Outcome::kFail;
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (code == 75 || code == 3) {
    *why = code == 75 ? "conflict" : "operation failed";
    return Outcome::kFail;  // rolled back
  }
  if (code != 0) {
    *why = "dbfs tx run exited " + std::to_string(code);
    return Outcome::kInfo;
  }
  std::istringstream lines(text);
  std::string line;
  for (Mop& m : *txn) {
    if (m.f != Mop::kRead) continue;
    if (!std::getline(lines, line) || line.rfind("R ", 0) != 0) {
      *why = "committed, but its reads were not printed";
      return Outcome::kInfo;
    }
    m.list = ParseList(line.substr(2));
  }
  return Outcome::kOk;
}

// One transaction by the configured route. Sets *fatal when the run cannot go on.
Outcome Exec(Shared* sh, proto::Client* client, std::vector<Mop>* txn, std::string* why,
             Status* fatal, uint64_t* alias) {
  if (sh->posix) return RunTxnPosix(*sh, txn, why);
  if (!client->connected()) {
    if (Status s = sh->Reconnect(client); !s.ok()) {
      *fatal = Status::IOError("cannot connect to " + sh->sock + ": " + s.ToString());
      return Outcome::kFail;
    }
  }
  if (sh->o.pipeline) {
    // Aliases only need to be unique among the connection's open transactions
    // (none here); a fresh one per transaction keeps server messages clear.
    if (++*alias == 0) ++*alias;
    return RunTxnPipelined(client, sh->o.serializable, sh->o.durable, *alias, txn, why);
  }
  return RunTxn(client, sh->o.serializable, sh->o.durable, txn, why);
}

// Records the outcome of `process`'s transaction; :fail and :info repeat the
// invocation (`invoked`), :ok carries the reads (`txn`).
Status Record(Shared* sh, int64_t process, Outcome out, const std::vector<Mop>& invoked,
              std::vector<Mop> txn) {
  switch (out) {
    case Outcome::kOk:
      sh->ok.fetch_add(1);
      return sh->journal->Complete(process, Op::kOk, std::move(txn));
    case Outcome::kFail:
      sh->fail.fetch_add(1);
      return sh->journal->Complete(process, Op::kFail, invoked);
    case Outcome::kInfo:
      sh->info.fetch_add(1);
      return sh->journal->Complete(process, Op::kInfo, invoked);
  }
  return Status::Invalid("unknown outcome");
}

void ClientThread(Shared* sh, int index) {
  struct Exit {
    Shared* sh;
    ~Exit() { sh->running.fetch_sub(1); }
  } exit_guard{sh};
  std::mt19937_64 rng(sh->o.seed * 1000003 + static_cast<uint64_t>(index));
  int64_t process = index;
  proto::Client client;
  uint64_t alias = 0;
  std::uniform_int_distribution<int> len_dist(1, std::max(1, sh->o.max_txn_len));
  std::bernoulli_distribution is_append(0.5);
  while (!sh->fatal.load() && sh->next_txn.fetch_add(1) < sh->o.ops) {
    // Connect before invoking: no transaction is started against a daemon
    // the nemesis has taken down.
    if (!sh->posix && !client.connected()) {
      if (Status s = sh->Reconnect(&client); !s.ok()) {
        sh->Fatal("cannot connect to " + sh->sock + ": " + s.ToString());
        return;
      }
    }
    std::vector<Mop> txn;
    const int n = len_dist(rng);
    for (int i = 0; i < n; ++i) {
      const bool append = is_append(rng);
      const int64_t key = sh->PickKey(rng, append);
      txn.push_back(append ? Mop::Append(key, sh->next_value.fetch_add(1)) : Mop::Read(key));
    }
    const std::vector<Mop> invoked = txn;
    if (Status s = sh->journal->Invoke(process, txn); !s.ok()) {
      sh->Fatal("recording: " + s.ToString());
      return;
    }
    std::string why;
    Status fatal;
    const Outcome out = Exec(sh, &client, &txn, &why, &fatal, &alias);
    if (!fatal.ok()) {
      (void)sh->journal->Complete(process, Op::kFail, invoked);
      sh->Fatal(fatal.ToString());
      return;
    }
    if (Status s = Record(sh, process, out, invoked, std::move(txn)); !s.ok()) {
      sh->Fatal("recording: " + s.ToString());
      return;
    }
    if (out == Outcome::kInfo) {
      process += sh->o.clients;  // a process never invokes after :info
      client.Close();
    }
  }
}

// Reads every key ever used, in read-only transactions, retried on conflict.
Status FinalReads(Shared* sh, int64_t process) {
  std::vector<int64_t> keys(sh->used.begin(), sh->used.end());
  proto::Client client;
  uint64_t alias = 0;
  for (size_t i = 0; i < keys.size();) {
    const size_t n = std::min<size_t>(32, keys.size() - i);
    bool done = false;
    for (int attempt = 0; attempt < 20 && !done; ++attempt) {
      std::vector<Mop> txn;
      for (size_t j = 0; j < n; ++j) txn.push_back(Mop::Read(keys[i + j]));
      const std::vector<Mop> invoked = txn;
      DBFS_RETURN_IF_ERROR(sh->journal->Invoke(process, txn));
      std::string why;
      Status fatal;
      const Outcome out = Exec(sh, &client, &txn, &why, &fatal, &alias);
      if (!fatal.ok()) {
        (void)sh->journal->Complete(process, Op::kFail, invoked);
        return fatal;
      }
      DBFS_RETURN_IF_ERROR(Record(sh, process, out, invoked, std::move(txn)));
      done = out == Outcome::kOk;
      if (out == Outcome::kInfo) {
        ++process;
        client.Close();
      }
    }
    if (!done) return Status::IOError("final reads keep failing");
    i += n;
  }
  return Status::Ok();
}

struct NemesisStats {
  int kills = 0;
  double longest_restart_s = 0;  // from the SIGKILL to a live mount
};

// One round of the kill nemesis: SIGKILL the daemon, clear the stale mount,
// remount the volume with the same command. Each step is recorded as Jepsen
// records a nemesis (:invoke, then :info: it is never certain what a fault did).
Status KillAndRestart(Shared* sh, Daemon* daemon, NemesisStats* stats) {
  const auto t0 = SteadyClock::now();
  sh->SetUp(false);
  DBFS_RETURN_IF_ERROR(sh->journal->Nemesis(Op::kInvoke, "kill", "nil"));
  const pid_t killed = daemon->pid();
  Status s = daemon->Kill();
  const std::string killed_value =
      s.ok() ? "{:pid " + std::to_string(killed) + ", :signal :SIGKILL}" : EdnString(s.ToString());
  DBFS_RETURN_IF_ERROR(sh->journal->Nemesis(Op::kInfo, "kill", killed_value));
  DBFS_RETURN_IF_ERROR(s);
  ++stats->kills;
  DBFS_RETURN_IF_ERROR(sh->journal->Nemesis(Op::kInvoke, "start", "nil"));
  const auto t1 = SteadyClock::now();
  s = daemon->Start();
  const auto t2 = SteadyClock::now();
  const auto ms = [](auto d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  const std::string started_value = s.ok() ? "{:pid " + std::to_string(daemon->pid()) +
                                                  ", :mount-ms " + ms(t2 - t1) + ", :down-ms " +
                                                  ms(t2 - t0) + "}"
                                            : EdnString(s.ToString());
  DBFS_RETURN_IF_ERROR(sh->journal->Nemesis(Op::kInfo, "start", started_value));
  DBFS_RETURN_IF_ERROR(s);
  stats->longest_restart_s =
      std::max(stats->longest_restart_s, std::chrono::duration<double>(t2 - t0).count());
  sh->SetUp(true);
  return Status::Ok();
}

// The kill nemesis, on the calling (main) thread, until the clients finish:
// the k-th kill at start + k * interval, or once k/(kills+1) of the
// transactions have started.
void RunKillNemesis(Shared* sh, Daemon* daemon, SteadyClock::time_point start,
                    NemesisStats* stats) {
  const RunOptions& o = sh->o;
  for (int k = 1; k <= o.kills; ++k) {
    const auto when = start + std::chrono::duration_cast<SteadyClock::duration>(
                                  std::chrono::duration<double>(o.kill_interval * k));
    const int64_t after = o.ops * k / (o.kills + 1);
    bool due = false;
    while (!sh->fatal.load() && sh->running.load() > 0) {
      due = o.kill_interval > 0 ? SteadyClock::now() >= when : sh->next_txn.load() >= after;
      if (due) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!due || sh->fatal.load()) return;
    if (Status s = KillAndRestart(sh, daemon, stats); !s.ok()) {
      sh->Fatal("nemesis: " + s.ToString());
      return;
    }
  }
}

}  // namespace

std::string VolumeOfMount(const std::string& mount) {
  const std::string src = MountSource(mount);
  return src.rfind("dbfs:", 0) == 0 ? src.substr(5) : std::string();
}

namespace {

std::string RealPath(const std::string& path, std::ostream& err) {
  char* real = realpath(path.c_str(), nullptr);
  if (real == nullptr) {
    err << "dbfs elle run: " << path << ": " << std::strerror(errno) << "\n";
    return "";
  }
  std::string out(real);
  free(real);
  return out;
}

std::string SelfExe() {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  return n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string();
}

// dbfs-mount next to this executable (the build tree, an install), else $PATH.
std::string DefaultMountBin() {
  const std::string self = SelfExe();
  const size_t slash = self.rfind('/');
  if (slash != std::string::npos) {
    const std::string sibling = self.substr(0, slash + 1) + "dbfs-mount";
    if (::access(sibling.c_str(), X_OK) == 0) return sibling;
  }
  return FindExecutable("dbfs-mount");
}

}  // namespace

int RunWorkload(const RunOptions& o, std::ostream& out, std::ostream& err) {
  if (o.via != "protocol" && o.via != "posix") {
    err << "dbfs elle run: --via must be protocol or posix\n";
    return kCheckUnreadable;
  }
  if (o.clients < 1 || o.ops < 1 || o.keys < 1 || o.max_txn_len < 1) {
    err << "dbfs elle run: --clients, --ops, --keys and --max-txn-len must be >= 1\n";
    return kCheckUnreadable;
  }
  const bool kill_nemesis = o.nemesis == "kill";
  if (o.nemesis != "none" && !kill_nemesis) {
    err << "dbfs elle run: --nemesis must be none or kill\n";
    return kCheckUnreadable;
  }
  if (kill_nemesis && (o.volume.empty() || o.via != "protocol")) {
    err << "dbfs elle run: --nemesis kill restarts the daemon: it needs --volume (the runner "
           "mounts it at --mount) and --via protocol\n";
    return kCheckUnreadable;
  }
  if (o.kills < 0 || !(o.kill_interval >= 0)) {
    err << "dbfs elle run: --kills and --kill-interval must be >= 0\n";
    return kCheckUnreadable;
  }
  const std::string mount = RealPath(o.mount, err);
  if (mount.empty()) return kCheckUnreadable;

  // The runner's own mount, stopped by ~Daemon on every early return.
  std::optional<Daemon> daemon;
  std::string volume;
  if (!o.volume.empty()) {
    volume = RealPath(o.volume, err);
    if (volume.empty()) return kCheckUnreadable;
    DaemonOptions d;
    d.mount_bin = o.mount_bin.empty() ? DefaultMountBin() : FindExecutable(o.mount_bin);
    if (d.mount_bin.empty()) {
      err << "dbfs elle run: dbfs-mount not found (give --mount-bin)\n";
      return kCheckUnreadable;
    }
    d.volume = volume;
    d.mount = mount;
    d.options = o.mount_opts;
    d.log = o.daemon_log.empty() ? o.out + ".daemon.log" : o.daemon_log;
    if (IsMountPoint(mount)) {
      err << "dbfs elle run: " << mount << " is already a mount point; with --volume the runner "
          << "mounts the volume itself\n";
      return kCheckUnreadable;
    }
    daemon.emplace(std::move(d));
    if (Status s = daemon->Start(); !s.ok()) {
      err << "dbfs elle run: mounting " << volume << ": " << s.ToString() << "\n";
      return kCheckUnreadable;
    }
  } else {
    volume = VolumeOfMount(mount);
  }
  if (kill_nemesis && !o.durable) {
    err << "dbfs elle run: note: without --durable, acknowledged commits need not survive a "
           "kill; checking them only with --realtime\n";
  }
  std::string sock = o.socket;
  if (sock.empty() && o.via == "protocol") {
    if (volume.empty()) {
      err << "dbfs elle run: " << mount << " is not a DBFS mount\n";
      return kCheckUnreadable;
    }
    sock = DefaultRuntimeDir(volume) + "/elle.sock";
  }
  if (::mkdir((mount + "/elle").c_str(), 0755) != 0 && errno != EEXIST) {
    err << "dbfs elle run: mkdir " << mount << "/elle: " << std::strerror(errno) << "\n";
    return kCheckUnreadable;
  }
  std::ofstream file(o.out, std::ios::trunc);
  if (!file) {
    err << "dbfs elle run: cannot write " << o.out << "\n";
    return kCheckUnreadable;
  }
  Journal journal(&file);
  Shared sh(o, FirstFreeKey(mount + "/elle"));
  sh.journal = &journal;
  sh.sock = sock;
  sh.mount = mount;
  sh.posix = o.via == "posix";
  sh.dbfs_exe = SelfExe();
  if (sh.dbfs_exe.empty()) sh.dbfs_exe = "dbfs";

  const auto start = SteadyClock::now();
  std::vector<std::thread> threads;
  sh.running.store(o.clients);
  for (int i = 0; i < o.clients; ++i) threads.emplace_back(ClientThread, &sh, i);
  // The nemesis runs on this thread: the daemon's PR_SET_PDEATHSIG is tied
  // to the thread that forked it (elle/daemon.h).
  NemesisStats nemesis;
  if (kill_nemesis) RunKillNemesis(&sh, &*daemon, start, &nemesis);
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(SteadyClock::now() - start).count();
  if (sh.fatal.load()) {
    err << "dbfs elle run: " << sh.fatal_msg << "\n";
    return kCheckUnreadable;
  }
  const int64_t committed = sh.ok.load(), aborted = sh.fail.load(), info = sh.info.load();
  if (Status s = FinalReads(&sh, int64_t{1} << 40); !s.ok()) {
    err << "dbfs elle run: final reads: " << s.ToString() << "\n";
    return kCheckUnreadable;
  }
  file.flush();
  if (!file || !journal.status().ok()) {
    err << "dbfs elle run: writing " << o.out << " failed\n";
    return kCheckUnreadable;
  }
  file.close();
  Status stopped;
  if (daemon) stopped = daemon->Stop();
  out << "elle run: " << o.clients << " clients, " << o.ops << " transactions, " << sh.used.size()
      << " keys, history " << o.out << "\n";
  out << "committed " << committed << ", aborted " << aborted << ", unknown (info) " << info << ", "
      << static_cast<int64_t>(static_cast<double>(committed) / secs) << " commits/s over " << secs
      << " s\n";
  if (kill_nemesis) {
    out << "nemesis: " << nemesis.kills << " kills (SIGKILL, remount), longest outage "
        << nemesis.longest_restart_s << " s\n";
  }
  const bool realtime = o.realtime || (kill_nemesis && o.durable);
  const int rc = RunCheck(o.out, realtime, out, err);
  if (!stopped.ok()) {
    err << "dbfs elle run: unmounting " << mount << ": " << stopped.ToString() << "\n";
    return kCheckUnreadable;
  }
  return rc;
}

}  // namespace dbfs::elle
