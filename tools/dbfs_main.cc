// dbfs — the user's tool for a mounted DBFS volume.
//   dbfs tx run [--mount MNT] [--isolation serializable|snapshot] [--lock] [--retries N] [--durable] -- CMD...
//   eval "$(dbfs tx begin [--lock])"; ...; dbfs tx commit | dbfs tx abort;  dbfs tx status
//   dbfs stats [--mount MNT] [--json|--prometheus];  dbfs top [--mount MNT] [--interval S] [--iterations N|--once]
//   dbfs checkpoint [--mount MNT]
//   dbfs snapshot create|delete NAME; dbfs snapshot list [--json]
//   dbfs log [PATH] [--since T] [--limit N] [--json] [--all]
//   dbfs diff FROM [TO] [PATH] [--stat] [--json];  dbfs tx diff [ID] [PATH] [--stat]
//   dbfs restore PATH --at POINT [--keep];  dbfs rollback SNAPSHOT [--keep];  dbfs revert CSN [--keep]
//   dbfs tx run --keep -- CMD;  dbfs tx commit|abort [ID]
//   dbfs elle check FILE [--realtime];  dbfs elle run --mount MNT [--volume VOL --nemesis kill] ...
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <future>
#include <thread>
#include <cstdio>
#include <iostream>
#include <cstdlib>
#include <string>
#include <vector>

#include "elle/cli.h"
#include "elle/runner.h"
#include "fuse/control.h"
#include "libdbfs/dbfs.h"
#include "tools/lib/control.h"
#include "tools/lib/history_cli.h"
#include "tools/lib/top.h"

namespace {

constexpr int kExitConflict = 75;  // EX_TEMPFAIL: the commit lost a conflict

int Fail(const std::string& what) {
  std::fprintf(stderr, "dbfs: %s\n", what.c_str());
  return 1;
}

std::string MountOrDefault(const std::string& mount) {
  if (!mount.empty()) return mount;
  auto m = dbfs::FindDbfsMount(".");
  return m.ok() ? *m : std::string();
}

// A libdbfs transaction handle, freed on scope exit.
struct TxHandle {
  dbfs_tx* tx = nullptr;
  TxHandle() = default;
  TxHandle(const TxHandle&) = delete;
  TxHandle& operator=(const TxHandle&) = delete;
  ~TxHandle() { dbfs_tx_free(tx); }
};

unsigned BeginFlags(const std::string& isolation, bool lock) {
  return (isolation == "snapshot" ? DBFS_TX_SNAPSHOT : 0u) | (lock ? DBFS_TX_LOCK : 0u);
}

std::string LibError(int rc, const dbfs_tx* tx = nullptr) {
  std::string m = rc == DBFS_ESYSTEM ? std::string(strerror(errno)) : dbfs_strerror(rc);
  if (tx != nullptr && *dbfs_tx_detail(tx) != '\0' && rc != DBFS_ESYSTEM) {
    m += std::string(" (") + dbfs_tx_detail(tx) + ")";
  }
  return m;
}

// After a commit or abort: the transaction was a deadlock victim (--lock),
// which counts as a conflict (exit 75), or lost a conflict.
int ReportConflict(int rc, const dbfs_tx* tx) {
  if (rc == DBFS_EDEADLOCK) {
    std::fprintf(stderr, "dbfs: transaction rolled back: %s\n", dbfs_tx_detail(tx));
  } else {
    std::fprintf(stderr, "dbfs: transaction rolled back: conflict on %s\n", dbfs_tx_detail(tx));
  }
  return kExitConflict;
}

// Runs argv in a child bound to a new transaction; commits if it exits 0.
int TxRun(const std::string& mount, const std::string& isolation, bool lock, int retries,
          bool durable, bool keep, const std::vector<std::string>& cmd) {
  std::vector<char*> argv;
  for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (int attempt = 0;; ++attempt) {
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) return Fail("pipe failed");
    pid_t child = fork();
    if (child < 0) return Fail("fork failed");
    if (child == 0) {
      // Wait until the parent has bound the transaction to this pid.
      close(go[1]);
      char b;
      if (read(go[0], &b, 1) != 1) _exit(127);
      execvp(argv[0], argv.data());
      std::fprintf(stderr, "dbfs: cannot run %s: %s\n", argv[0], strerror(errno));
      _exit(127);
    }
    close(go[0]);
    std::string line;
    for (const auto& a : cmd) line += (line.empty() ? "" : " ") + a;
    TxHandle h;
    const int began =
        dbfs_tx_begin_pid(mount.c_str(), child, BeginFlags(isolation, lock), line.c_str(), &h.tx);
    if (began != DBFS_OK) {
      kill(child, SIGKILL);
      close(go[1]);
      waitpid(child, nullptr, 0);
      return Fail("cannot begin a transaction on " + mount + ": " + LibError(began));
    }
    if (write(go[1], "g", 1) != 1) {
      kill(child, SIGKILL);
    }
    close(go[1]);
    // The child is left unreaped (WNOWAIT) until the transaction has ended:
    // the daemon aborts a transaction whose root process is gone, and a
    // zombie still counts as there.
    siginfo_t si{};
    while (waitid(P_PID, child, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    auto reap = [child] {
      while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
      }
    };
    const bool exited = si.si_code == CLD_EXITED;
    const bool success = exited && si.si_status == 0;
    if (!success) {
      const int r = dbfs_tx_abort(h.tx);
      reap();
      if (r != DBFS_OK && r != DBFS_EDEADLOCK) {
        std::fprintf(stderr, "dbfs: abort failed: %s\n", LibError(r, h.tx).c_str());
      }
      // CMD most likely failed because its transaction was a deadlock victim.
      if (r == DBFS_EDEADLOCK) {
        if (attempt < retries) continue;
        return ReportConflict(r, h.tx);
      }
      return exited ? si.si_status : 128 + si.si_status;
    }
    if (keep) {
      // Left open for review: dbfs tx diff / commit / abort ID.
      const int rc = dbfs::cli::KeepTx(mount, dbfs_tx_id(h.tx));
      reap();
      return rc;
    }
    const int r = dbfs_tx_commit(h.tx, durable ? DBFS_TX_DURABLE : 0u);
    reap();
    if (r == DBFS_OK) return 0;
    if (r == DBFS_ECONFLICT || r == DBFS_EDEADLOCK) {
      if (attempt < retries) continue;
      return ReportConflict(r, h.tx);
    }
    return Fail("commit failed: " + LibError(r, h.tx));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dbfs: work with a mounted DBFS volume"};
  app.require_subcommand(1);
  std::string mount;

  auto* stats = app.add_subcommand("stats", "show the daemon's counters (commits, syncs, WAL, GC)");
  stats->add_option("--mount,-m", mount, "DBFS mount point (default: the one containing .)");
  bool stats_json = false, stats_prometheus = false;
  stats->add_flag("--json", stats_json,
                  "one JSON object: the counters, open transactions, conflicts by reason and "
                  "latency histograms per operation kind (docs/metrics.md)");
  stats->add_flag("--prometheus", stats_prometheus,
                  "the Prometheus text format that -o metrics_port= serves")
      ->excludes("--json");

  dbfs::cli::TopOptions top_options;
  bool top_once = false;
  auto* top = app.add_subcommand(
      "top", "live view of a busy volume: operations/s and latencies per operation kind, "
             "transactions, conflicts, lock waits, I/O, WAL and space");
  top->add_option("--mount,-m", mount, "DBFS mount point (default: the one containing .)");
  top->add_option("--interval,-i", top_options.interval_s, "seconds between refreshes (default 1)")
      ->check(CLI::Range(0.05, 3600.0));
  top->add_option("--iterations,-n", top_options.iterations,
                  "refreshes before exiting (default: until interrupted on a terminal, 1 "
                  "otherwise)")
      ->check(CLI::NonNegativeNumber);
  top->add_flag("--once", top_once, "print one table (after one interval) and exit");

  auto* checkpoint = app.add_subcommand(
      "checkpoint", "flush to LMDB, move live file data out of old WAL segments and delete the "
                    "segments nothing needs (root only); prints what it did");
  checkpoint->add_option("--mount,-m", mount, "DBFS mount point (default: the one containing .)");

  auto* tx = app.add_subcommand("tx", "multi-file transactions");
  tx->require_subcommand(1);
  std::string isolation = "serializable";
  int retries = 0;
  bool durable = false;
  bool lock = false;
  const char* lock_help =
      "pessimistic mode: the transaction takes an exclusive lock on every file it reads or "
      "writes and every directory it changes, held until it ends, so conflicting --lock "
      "transactions wait for each other instead of failing at commit; a deadlock between them "
      "rolls one back (exit 75, 'deadlock'; --retries re-runs it). Processes outside any "
      "transaction never wait for these locks: if one changes what the transaction used, the "
      "commit still fails (exit 75)";
  std::vector<std::string> cmd;
  auto* run = tx->add_subcommand("run", "run CMD and its children as one transaction");
  run->footer(
      "Exit status: 0 when CMD exited 0 and the commit succeeded; CMD's own status when it failed "
      "(the transaction is rolled back); 75 when the transaction lost a conflict or, with --lock, "
      "was a deadlock victim (rolled back; a one-line message on stderr).");
  run->add_option("--mount,-m", mount, "DBFS mount point (default: the one containing .)");
  run->add_option("--isolation", isolation, "serializable (default) or snapshot")
      ->check(CLI::IsMember({"serializable", "snapshot"}));
  run->add_flag("--lock", lock, lock_help);
  run->add_option("--retries", retries, "re-run CMD up to N times after a conflict or deadlock")->check(CLI::NonNegativeNumber);
  run->add_flag("--durable", durable, "make the commit durable before returning");
  bool keep = false;
  run->add_flag("--keep", keep,
                "when CMD exits 0, leave the transaction open (bound to no process) and print its "
                "id, for dbfs tx diff ID, dbfs tx commit ID or dbfs tx abort ID");
  run->add_option("CMD", cmd, "command and arguments (after --)")->required();
  std::string id;
  auto* begin = tx->add_subcommand("begin", "bind the calling shell to a new transaction: eval \"$(dbfs tx begin)\"");
  begin->add_option("--mount,-m", mount, "DBFS mount point (default: the one containing .)");
  begin->add_option("--isolation", isolation, "serializable (default) or snapshot")
      ->check(CLI::IsMember({"serializable", "snapshot"}));
  begin->add_flag("--lock", lock, lock_help);
  auto* commit = tx->add_subcommand("commit", "commit the shell's transaction ($DBFS_TX) or ID");
  commit->add_option("--mount,-m", mount, "DBFS mount point");
  commit->add_option("--id,ID", id, "transaction id (default: $DBFS_TX)");
  commit->add_flag("--durable", durable, "make the commit durable before returning");
  auto* abort_cmd = tx->add_subcommand("abort", "roll back the shell's transaction ($DBFS_TX)");
  abort_cmd->add_option("--mount,-m", mount, "DBFS mount point");
  abort_cmd->add_option("--id,ID", id, "transaction id (default: $DBFS_TX)");
  bool stat = false, json = false;
  std::string path;
  auto* txdiff = tx->add_subcommand("diff", "show what an open transaction ($DBFS_TX or ID) changed");
  txdiff->add_option("--mount,-m", mount, "DBFS mount point");
  txdiff->add_option("ID", id, "transaction id (default: $DBFS_TX)");
  txdiff->add_option("PATH", path, "only changes under PATH");
  txdiff->add_flag("--stat", stat, "sizes and bytes written");

  // ---- history ----
  std::string name, from, to, at;
  auto* snapshot = app.add_subcommand("snapshot", "named snapshots (instant, read-only under MNT/.dbfs/snapshots)");
  snapshot->require_subcommand(1);
  auto* screate = snapshot->add_subcommand("create", "snapshot the volume now (root)");
  screate->add_option("NAME", name, "snapshot name")->required();
  screate->add_option("--mount,-m", mount, "DBFS mount point");
  auto* sdelete = snapshot->add_subcommand("delete", "delete a snapshot (root)");
  sdelete->add_option("NAME", name, "snapshot name")->required();
  sdelete->add_option("--mount,-m", mount, "DBFS mount point");
  auto* slist = snapshot->add_subcommand("list", "list snapshots: CSN, time, USED (only it holds), REFER");
  slist->add_option("--mount,-m", mount, "DBFS mount point");
  slist->add_flag("--json", json, "JSON output");
  dbfs::cli::LogArgs log_args;
  auto* log = app.add_subcommand("log", "the commits that changed the volume or PATH, newest first");
  log->add_option("PATH", log_args.path, "only commits that changed PATH (or below it)");
  log->add_option("--since", log_args.since, "only commits at or after this time (ISO-8601, @SECONDS)");
  log->add_option("--limit", log_args.limit, "at most N commits");
  log->add_flag("--json", log_args.json, "JSON output");
  log->add_flag("--all", log_args.all, "also the daemon's own commits (atime, reclamation, checkpoints)");
  log->add_option("--mount,-m", mount, "DBFS mount point");
  std::vector<std::string> diff_args;
  auto* diff = app.add_subcommand(
      "diff", "changed paths between FROM and TO (default now): + added, - removed, M modified, "
              "R old -> new; FROM/TO are snapshot names, CSNs, times (ISO-8601, @SECONDS) or now");
  diff->add_option("FROM [TO] [PATH]", diff_args, "points and an optional path")->required()->expected(1, 3);
  diff->add_flag("--stat", stat, "sizes and bytes written");
  diff->add_flag("--json", json, "JSON output");
  diff->add_option("--mount,-m", mount, "DBFS mount point");
  bool undo_keep = false;
  auto* restore = app.add_subcommand("restore", "put PATH (a file or a tree) back as it was at POINT, as one transaction (root)");
  restore->add_option("PATH", path, "file or directory")->required();
  restore->add_option("--at", at, "snapshot name, CSN, time or now")->required();
  restore->add_flag("--keep", undo_keep, "leave the transaction open for review; prints its id");
  restore->add_option("--mount,-m", mount, "DBFS mount point");
  auto* rollback = app.add_subcommand("rollback", "make the whole volume what SNAPSHOT holds, as one transaction (root; the history in between stays)");
  rollback->add_option("SNAPSHOT", name, "snapshot name")->required();
  rollback->add_flag("--keep", undo_keep, "leave the transaction open for review; prints its id");
  rollback->add_option("--mount,-m", mount, "DBFS mount point");
  std::string csn;
  auto* revert = app.add_subcommand("revert", "undo one past commit, if nothing after it touched the same keys (root)");
  revert->add_option("CSN", csn, "the commit (see dbfs log)")->required();
  revert->add_flag("--keep", undo_keep, "leave the transaction open for review; prints its id");
  revert->add_option("--mount,-m", mount, "DBFS mount point");
  auto* status = tx->add_subcommand("status", "list the open transactions of a mount");
  status->add_option("--mount,-m", mount, "DBFS mount point");

  auto* elle = app.add_subcommand("elle", "Elle isolation checking");
  elle->require_subcommand(1);
  std::string history;
  bool realtime = false;
  auto* check = elle->add_subcommand("check", "check a list-append history (EDN): exit 0 valid, 1 anomalies, 2 unreadable");
  check->add_option("FILE", history, "history file in Elle's EDN format ('-' for stdin)")->required();
  check->add_flag("--realtime", realtime, "also require real-time order (strict serializability)");
  dbfs::elle::RunOptions elle_run;
  auto* erun = elle->add_subcommand("run", "run a list-append workload over the Elle protocol, record and check it: exit 0 valid, 1 anomalies, 2 error");
  erun->add_option("--mount,-m", elle_run.mount, "DBFS mount point")->required();
  erun->add_option("--clients", elle_run.clients, "concurrent clients (default 10)")->check(CLI::PositiveNumber);
  erun->add_option("--ops", elle_run.ops, "transactions in total (default 1000)")->check(CLI::PositiveNumber);
  erun->add_option("--keys", elle_run.keys, "active keys (default 8)")->check(CLI::PositiveNumber);
  erun->add_option("--max-txn-len", elle_run.max_txn_len, "micro-ops per transaction, at most (default 4)")->check(CLI::PositiveNumber);
  erun->add_option("--via", elle_run.via, "protocol (default) or posix")->check(CLI::IsMember({"protocol", "posix"}));
  erun->add_option("--out", elle_run.out, "history file (EDN; default history.edn)");
  erun->add_option("--seed", elle_run.seed, "random seed (default 1)");
  std::string elle_isolation = "serializable";
  erun->add_option("--isolation", elle_isolation, "serializable (default) or snapshot")
      ->check(CLI::IsMember({"serializable", "snapshot"}));
  erun->add_flag("--durable", elle_run.durable, "durable commits");
  erun->add_flag("--pipeline", elle_run.pipeline,
                 "send each transaction as one pipelined batch (BEGIN with an alias, ops, COMMIT)");
  erun->add_flag("--realtime", elle_run.realtime,
                 "check strict serializability: a lost acknowledged commit is an anomaly "
                 "(implied by --nemesis kill --durable)");
  erun->add_option("--volume", elle_run.volume,
                   "mount this volume at --mount for the run and unmount it after (needed by --nemesis)");
  erun->add_option("--mount-bin", elle_run.mount_bin, "dbfs-mount to use (default: next to dbfs, else $PATH)");
  erun->add_option("--mount-opts", elle_run.mount_opts, "dbfs-mount -o options of the runner's mounts");
  erun->add_option("--daemon-log", elle_run.daemon_log, "the daemon's output (default: OUT.daemon.log)");
  erun->add_option("--nemesis", elle_run.nemesis,
                   "none (default) or kill: SIGKILL the daemon and remount the volume during the run")
      ->check(CLI::IsMember({"none", "kill"}));
  erun->add_option("--kills", elle_run.kills, "kills by --nemesis kill (default 3)")->check(CLI::NonNegativeNumber);
  erun->add_option("--kill-interval", elle_run.kill_interval,
                   "seconds between kills (default 0: spread the kills evenly over the transactions)")
      ->check(CLI::NonNegativeNumber);

  auto* version = app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);

  if (*check) return dbfs::elle::RunCheck(history, realtime, std::cout, std::cerr);
  if (*erun) {
    elle_run.serializable = elle_isolation == "serializable";
    return dbfs::elle::RunWorkload(elle_run, std::cout, std::cerr);
  }
  if (*version) {
    std::printf("dbfs 0.1.0 (format 1)\n");
    return 0;
  }
  if (mount.empty() && getenv("DBFS_TX_MOUNT") && (*commit || *abort_cmd || *txdiff)) {
    mount = getenv("DBFS_TX_MOUNT");
  }
  // A command about a path defaults to the mount holding that path (its
  // nearest existing ancestor: the path itself may be gone).
  std::string path_arg = *restore ? path : *log ? log_args.path : "";
  if (*diff && diff_args.size() == 3) path_arg = diff_args[2];
  if (mount.empty() && !path_arg.empty()) {
    std::string p = path_arg;
    while (!p.empty() && access(p.c_str(), F_OK) != 0) {
      const size_t slash = p.find_last_of('/');
      p = slash == std::string::npos ? "" : slash == 0 ? "/" : p.substr(0, slash);
    }
    auto m = dbfs::FindDbfsMount(p.empty() ? "." : p);
    if (m.ok()) mount = *m;
  }
  mount = MountOrDefault(mount);
  if (mount.empty()) return Fail("not inside a DBFS mount; use --mount MNT");
  auto request = [&](const std::string& c) -> int {
    auto r = dbfs::ControlRequest(mount, c);
    if (!r.ok()) return Fail(r.status().ToString());
    std::fwrite(r->data(), 1, r->size(), stdout);
    return 0;
  };
  if (*stats) {
    return request(std::string(stats_json         ? dbfs::fuse::kStatsJsonXattr
                               : stats_prometheus ? dbfs::fuse::kStatsPrometheusXattr
                                                  : dbfs::fuse::kStatsXattr));
  }
  if (*top) {
    top_options.terminal = isatty(STDOUT_FILENO) != 0;
    if (top_once) top_options.iterations = 1;
    if (top_options.iterations == 0 && !top_options.terminal) top_options.iterations = 1;
    return dbfs::cli::Top(mount, top_options);
  }
  if (*checkpoint) {
    // A checkpoint may take a while: on a terminal, show that it runs (one
    // self-overwriting line on stderr); in a pipe, print only the report.
    if (!isatty(STDERR_FILENO)) return request(std::string(dbfs::fuse::kCheckpointXattr));
    std::promise<dbfs::Result<std::string>> done;
    auto reply = done.get_future();
    std::thread worker([&] { done.set_value(dbfs::ControlRequest(mount, std::string(dbfs::fuse::kCheckpointXattr))); });
    const auto start = std::chrono::steady_clock::now();
    while (reply.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      std::fprintf(stderr, "\r\033[Kdbfs checkpoint: running, %.1f s",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    worker.join();
    std::fprintf(stderr, "\r\033[K");
    auto r = reply.get();
    if (!r.ok()) return Fail(r.status().ToString());
    std::fwrite(r->data(), 1, r->size(), stdout);
    return 0;
  }
  if (*status) return request("dbfs.tx.status");
  if (*run) return TxRun(mount, isolation, lock, retries, durable, keep, cmd);
  if (*screate) return dbfs::cli::SnapshotCreate(mount, name);
  if (*sdelete) return dbfs::cli::SnapshotDelete(mount, name);
  if (*slist) return dbfs::cli::SnapshotList(mount, json);
  if (*log) return dbfs::cli::Log(mount, log_args);
  if (*diff) {
    // FROM [TO] [PATH]: a third argument is the path; with two, the second
    // is a path when it names something in the mount, else TO.
    std::string d_to = "now", d_path;
    if (diff_args.size() == 3) {
      d_to = diff_args[1];
      d_path = diff_args[2];
    } else if (diff_args.size() == 2) {
      if (diff_args[1].find('/') != std::string::npos || access(diff_args[1].c_str(), F_OK) == 0) {
        d_path = diff_args[1];
      } else {
        d_to = diff_args[1];
      }
    }
    return dbfs::cli::Diff(mount, diff_args[0], d_to, d_path, stat, json);
  }
  if (*restore) return dbfs::cli::Restore(mount, path, at, undo_keep);
  if (*rollback) return dbfs::cli::Rollback(mount, name, undo_keep);
  if (*revert) return dbfs::cli::Revert(mount, csn, undo_keep);
  if (*begin) {
    // The transaction belongs to the shell that evals our output: our parent.
    TxHandle h;
    const int rc =
        dbfs_tx_begin_pid(mount.c_str(), getppid(), BeginFlags(isolation, lock), nullptr, &h.tx);
    if (rc != DBFS_OK) return Fail("cannot begin: " + LibError(rc));
    std::printf("export DBFS_TX=%s DBFS_TX_MOUNT='%s'\n", dbfs_tx_id(h.tx), dbfs_tx_mount(h.tx));
    return 0;
  }
  if (id.empty() && getenv("DBFS_TX")) id = getenv("DBFS_TX");
  if (id.empty()) return Fail("no transaction: give --id or run eval \"$(dbfs tx begin)\" first");
  if (*txdiff) return dbfs::cli::TxDiff(mount, id, path, stat);
  TxHandle h;
  if (int rc = dbfs_tx_open(mount.c_str(), id.c_str(), &h.tx); rc != DBFS_OK) {
    return Fail("transaction " + id + ": " + LibError(rc));
  }
  if (*commit) {
    const int r = dbfs_tx_commit(h.tx, durable ? DBFS_TX_DURABLE : 0u);
    if (r == DBFS_ECONFLICT || r == DBFS_EDEADLOCK) return ReportConflict(r, h.tx);
    if (r != DBFS_OK) return Fail("commit failed: " + LibError(r, h.tx));
    return 0;
  }
  if (*abort_cmd) {
    const int r = dbfs_tx_abort(h.tx);
    if (r == DBFS_EDEADLOCK) {
      std::fprintf(stderr, "dbfs: the transaction had already been rolled back: %s\n",
                   dbfs_tx_detail(h.tx));
    } else if (r != DBFS_OK) {
      return Fail("abort failed: " + LibError(r, h.tx));
    }
    return 0;
  }
  return 16;
}
