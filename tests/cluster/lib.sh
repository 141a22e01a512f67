# Shared helpers of etcd_cluster.sh and ceph_cluster.sh (sourced, not run).
#
# Daemons are started detached (setsid, stdio to a log), their pid written to
# a pid file in the cluster's directory, and stopped by that pid only. Pid 1
# on these machines reaps killed orphans lazily, so "alive" means: /proc/PID
# exists and is not a zombie. Before signalling a pid we check that its
# command line names the cluster's directory, so a recycled pid is never hit.

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# pid_alive PID: running (not gone, not a zombie).
pid_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# pid_of PIDFILE DIR: prints the pid if the file names a live process whose
# command line mentions DIR; fails otherwise.
pid_of() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

# wait_until SECONDS CMD...: polls CMD every 50 ms until it succeeds (0) or
# SECONDS pass (1).
wait_until() {
  local limit=$(($(now_ms) + $1 * 1000))
  shift
  while true; do
    "$@" && return 0
    (($(now_ms) >= limit)) && return 1
    sleep 0.05
  done
}

not_alive() { ! pid_alive "$1"; }

# stop_pidfile PIDFILE DIR SIGNAL GRACE_SECONDS: sends SIGNAL, waits up to
# GRACE for the process to go, then SIGKILLs it; removes the pid file.
stop_pidfile() {
  local file=$1 dir=$2 sig=$3 grace=$4 pid
  if pid=$(pid_of "$file" "$dir"); then
    kill "-$sig" "$pid" 2>/dev/null || true
    if ! wait_until "$grace" not_alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_until 10 not_alive "$pid" || echo "$(basename "$0"): pid $pid survived SIGKILL" >&2
    fi
  fi
  rm -f "$file"
}

# spawn PIDFILE LOG CMD...: starts CMD detached from us (own session, stdio
# to LOG) and records its pid.
spawn() {
  local pidfile=$1 log=$2
  shift 2
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
}

# free_ports N: N distinct TCP ports free on 127.0.0.1 right now (the kernel
# picks them; a daemon that loses a race for one fails to start, and the
# caller retries with new ports).
free_ports() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# abs_dir DIR: creates DIR and prints its absolute path.
abs_dir() {
  mkdir -p "$1" && (cd "$1" && pwd)
}
