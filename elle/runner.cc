#include "elle/runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <ostream>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "elle/cli.h"
#include "elle/protocol.h"
#include "elle/recorder.h"

namespace dbfs::elle {

namespace {

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

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

// State shared by the client threads.
struct Shared {
  const RunOptions& o;
  HistoryRecorder* rec;
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
    std::lock_guard g(mu);
    if (!fatal.exchange(true)) fatal_msg = msg;
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
      r = client->Call(proto::kAppendFile, tx, proto::PathPayload(KeyPath(m.key), std::to_string(m.value) + " "));
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

Status Connect(proto::Client* client, const std::string& sock) {
  Status s;
  for (int attempt = 0; attempt < 50; ++attempt) {
    s = client->ConnectUnix(sock);
    if (s.ok()) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return s;
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
             Status* fatal) {
  if (sh->posix) return RunTxnPosix(*sh, txn, why);
  if (!client->connected()) {
    if (Status s = Connect(client, sh->sock); !s.ok()) {
      *fatal = Status::IOError("cannot connect to " + sh->sock + ": " + s.ToString());
      return Outcome::kFail;
    }
  }
  return RunTxn(client, sh->o.serializable, sh->o.durable, txn, why);
}

void ClientThread(Shared* sh, int index) {
  std::mt19937_64 rng(sh->o.seed * 1000003 + static_cast<uint64_t>(index));
  int64_t process = index;
  proto::Client client;
  std::uniform_int_distribution<int> len_dist(1, std::max(1, sh->o.max_txn_len));
  std::bernoulli_distribution is_append(0.5);
  while (!sh->fatal.load() && sh->next_txn.fetch_add(1) < sh->o.ops) {
    std::vector<Mop> txn;
    const int n = len_dist(rng);
    for (int i = 0; i < n; ++i) {
      const bool append = is_append(rng);
      const int64_t key = sh->PickKey(rng, append);
      txn.push_back(append ? Mop::Append(key, sh->next_value.fetch_add(1)) : Mop::Read(key));
    }
    if (auto idx = sh->rec->Invoke(process, txn); !idx.ok()) {
      sh->Fatal("recording: " + idx.status().ToString());
      return;
    }
    std::string why;
    Status fatal;
    const Outcome out = Exec(sh, &client, &txn, &why, &fatal);
    if (!fatal.ok()) {
      (void)sh->rec->Complete(process, Op::kFail);
      sh->Fatal(fatal.ToString());
      return;
    }
    Result<int64_t> done = Status::Ok();
    switch (out) {
      case Outcome::kOk:
        sh->ok.fetch_add(1);
        done = sh->rec->Complete(process, Op::kOk, txn);
        break;
      case Outcome::kFail:
        sh->fail.fetch_add(1);
        done = sh->rec->Complete(process, Op::kFail);
        break;
      case Outcome::kInfo:
        sh->info.fetch_add(1);
        done = sh->rec->Complete(process, Op::kInfo);
        process += sh->o.clients;  // a process never invokes after :info
        client.Close();
        break;
    }
    if (!done.ok()) {
      sh->Fatal("recording: " + done.status().ToString());
      return;
    }
  }
}

// Reads every key ever used, in read-only transactions, retried on conflict.
Status FinalReads(Shared* sh, int64_t process) {
  std::vector<int64_t> keys(sh->used.begin(), sh->used.end());
  proto::Client client;
  for (size_t i = 0; i < keys.size();) {
    const size_t n = std::min<size_t>(32, keys.size() - i);
    bool done = false;
    for (int attempt = 0; attempt < 20 && !done; ++attempt) {
      std::vector<Mop> txn;
      for (size_t j = 0; j < n; ++j) txn.push_back(Mop::Read(keys[i + j]));
      DBFS_RETURN_IF_ERROR(sh->rec->Invoke(process, txn).status());
      std::string why;
      Status fatal;
      const Outcome out = Exec(sh, &client, &txn, &why, &fatal);
      if (!fatal.ok()) {
        (void)sh->rec->Complete(process, Op::kFail);
        return fatal;
      }
      if (out == Outcome::kOk) {
        sh->ok.fetch_add(1);
        DBFS_RETURN_IF_ERROR(sh->rec->Complete(process, Op::kOk, txn).status());
        done = true;
      } else if (out == Outcome::kFail) {
        sh->fail.fetch_add(1);
        DBFS_RETURN_IF_ERROR(sh->rec->Complete(process, Op::kFail).status());
      } else {
        sh->info.fetch_add(1);
        DBFS_RETURN_IF_ERROR(sh->rec->Complete(process, Op::kInfo).status());
        ++process;
        client.Close();
      }
    }
    if (!done) return Status::IOError("final reads keep failing");
    i += n;
  }
  return Status::Ok();
}

}  // namespace

std::string VolumeOfMount(const std::string& mount) {
  std::ifstream in("/proc/mounts");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string src, mp, type;
    if (!(f >> src >> mp >> type)) continue;
    if (Unescape(mp) != mount) continue;
    src = Unescape(src);
    if (src.rfind("dbfs:", 0) == 0) found = src.substr(5);  // the last mount wins
  }
  return found;
}

int RunWorkload(const RunOptions& o, std::ostream& out, std::ostream& err) {
  if (o.via != "protocol" && o.via != "posix") {
    err << "dbfs elle run: --via must be protocol or posix\n";
    return kCheckUnreadable;
  }
  if (o.clients < 1 || o.ops < 1 || o.keys < 1 || o.max_txn_len < 1) {
    err << "dbfs elle run: --clients, --ops, --keys and --max-txn-len must be >= 1\n";
    return kCheckUnreadable;
  }
  std::string sock = o.socket;
  char* real = realpath(o.mount.c_str(), nullptr);
  if (real == nullptr) {
    err << "dbfs elle run: " << o.mount << ": " << std::strerror(errno) << "\n";
    return kCheckUnreadable;
  }
  const std::string mount(real);
  free(real);
  if (sock.empty() && o.via == "protocol") {
    const std::string volume = VolumeOfMount(mount);
    if (volume.empty()) {
      err << "dbfs elle run: " << mount << " is not a DBFS mount\n";
      return kCheckUnreadable;
    }
    sock = volume + "/elle.sock";
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
  HistoryRecorder::Options ro;
  ro.sink = &file;
  ro.keep_in_memory = false;
  HistoryRecorder rec(std::move(ro));
  Shared sh(o, FirstFreeKey(mount + "/elle"));
  sh.rec = &rec;

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  sh.sock = sock;
  sh.mount = mount;
  sh.posix = o.via == "posix";
  {
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    sh.dbfs_exe = n > 0 ? std::string(exe, static_cast<size_t>(n)) : "dbfs";
  }
  for (int i = 0; i < o.clients; ++i) threads.emplace_back(ClientThread, &sh, i);
  for (auto& t : threads) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (sh.fatal.load()) {
    err << "dbfs elle run: " << sh.fatal_msg << "\n";
    return kCheckUnreadable;
  }
  const int64_t workload_ok = sh.ok.load();
  if (Status s = FinalReads(&sh, int64_t{1} << 40); !s.ok()) {
    err << "dbfs elle run: final reads: " << s.ToString() << "\n";
    return kCheckUnreadable;
  }
  file.flush();
  if (!file || !rec.sink_status().ok()) {
    err << "dbfs elle run: writing " << o.out << " failed\n";
    return kCheckUnreadable;
  }
  file.close();
  out << "elle run: " << o.clients << " clients, " << o.ops << " transactions, " << sh.used.size()
      << " keys, history " << o.out << "\n";
  out << "committed " << workload_ok << ", aborted " << sh.fail.load() << ", unknown (info) "
      << sh.info.load() << ", " << static_cast<int64_t>(static_cast<double>(workload_ok) / secs)
      << " commits/s over " << secs << " s\n";
  return RunCheck(o.out, /*realtime=*/false, out, err);
}

}  // namespace dbfs::elle
