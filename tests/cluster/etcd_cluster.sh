#!/usr/bin/env bash
# A throwaway etcd cluster on 127.0.0.1 for tests and benchmarks.
#
#   etcd_cluster.sh start DIR [N] [--dbfs-limits]
#                                        N members (default 3); waits until all are healthy.
#                                        --dbfs-limits: the server limits a DBFS cluster volume
#                                        needs (--max-txn-ops=16384 --max-request-bytes=33554432;
#                                        docs/cluster.md), kept for restarted members
#   etcd_cluster.sh stop DIR             stops every member started under DIR (also after a
#                                        partial start); leaves DIR itself
#   etcd_cluster.sh kill-member DIR I    SIGKILLs member I (1-based)
#   etcd_cluster.sh start-member DIR I   restarts member I on its data (state "existing") and
#                                        waits until it accepts clients
#
# Ports are chosen free at start (a client and a peer port per member), so
# clusters of parallel tests never collide. Fast elections
# (--heartbeat-interval 25 --election-timeout 250): a killed leader is
# replaced in ~0.3 s. Layout of DIR:
#   env                 ETCD_ENDPOINTS=127.0.0.1:P,...  ETCD_MEMBERS=N  ETCD_ENDPOINT_<i>=...
#   members             one line per member: "<i> <client port> <peer port>"
#   flags               extra etcd flags of every member (--dbfs-limits)
#   m<i>.data/ m<i>.pid m<i>.log
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

export ETCDCTL_API=3
HEALTH_TIMEOUT=${ETCD_HEALTH_TIMEOUT:-20}

usage() {
  sed -n '2,15p' "$0" >&2
  exit 2
}

command -v etcd >/dev/null || die "etcd is not installed (tools/install-deps.sh --cluster)"

member_field() {  # member_field DIR I FIELD(2=client 3=peer)
  awk -v i="$2" -v f="$3" '$1 == i { print $f }' "$1/members"
}

initial_cluster() {
  awk '{ printf "%sm%s=http://127.0.0.1:%s", (NR > 1 ? "," : ""), $1, $3 }' "$1/members"
}

launch_member() {  # launch_member DIR I STATE
  local dir=$1 i=$2 state=$3 client peer
  client=$(member_field "$dir" "$i" 2)
  peer=$(member_field "$dir" "$i" 3)
  [[ -n $client ]] || die "no member $i in $dir/members"
  spawn "$dir/m$i.pid" "$dir/m$i.log" etcd \
    --name "m$i" --data-dir "$dir/m$i.data" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$(initial_cluster "$dir")" --initial-cluster-state "$state" \
    --initial-cluster-token "dbfs-test-$(basename "$dir")-$(member_field "$dir" 1 2)" \
    --heartbeat-interval 25 --election-timeout 250 $(cat "$dir/flags" 2>/dev/null)
}

endpoints() {
  awk '{ printf "%s127.0.0.1:%s", (NR > 1 ? "," : ""), $2 }' "$1/members"
}

healthy() {  # healthy ENDPOINTS
  etcdctl --endpoints="$1" --dial-timeout=1s --command-timeout=1s endpoint health >/dev/null 2>&1
}

# All members started under DIR are still running (one that lost a port
# race has exited).
all_running() {
  local dir=$1 f
  for f in "$dir"/m*.pid; do
    pid_of "$f" "$dir" >/dev/null || return 1
  done
}

healthy_or_dead() {  # stop polling early when a member died
  healthy "$2" || ! all_running "$1"
}

start() {
  local dir=$1 n=$2 limits=${3:-} attempt ports i
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad member count '$n'"
  [[ ! -e $dir/members ]] || die "$dir already holds a cluster (stop it first)"
  case $limits in
    "") : >"$dir/flags" ;;
    --dbfs-limits) echo "--max-txn-ops=16384 --max-request-bytes=33554432" >"$dir/flags" ;;
    *) die "unknown option '$limits'" ;;
  esac
  for attempt in 1 2 3; do
    read -r -a ports <<<"$(free_ports $((2 * n)))"
    : >"$dir/members"
    for ((i = 1; i <= n; i++)); do
      echo "$i ${ports[$((2 * i - 2))]} ${ports[$((2 * i - 1))]}" >>"$dir/members"
    done
    for ((i = 1; i <= n; i++)); do launch_member "$dir" "$i" new; done
    local eps
    eps=$(endpoints "$dir")
    if wait_until "$HEALTH_TIMEOUT" healthy_or_dead "$dir" "$eps" && all_running "$dir"; then
      {
        echo "ETCD_ENDPOINTS=$eps"
        echo "ETCD_MEMBERS=$n"
        for ((i = 1; i <= n; i++)); do echo "ETCD_ENDPOINT_$i=127.0.0.1:$(member_field "$dir" "$i" 2)"; done
      } >"$dir/env"
      return 0
    fi
    local lost_race=0
    grep -qs "address already in use" "$dir"/m*.log && lost_race=1
    stop "$dir"
    if ((!lost_race)); then
      tail -n 20 "$dir"/m*.log >&2 || true
      die "etcd cluster in $dir not healthy within ${HEALTH_TIMEOUT}s"
    fi
    rm -rf "$dir"/m*.data "$dir"/m*.log "$dir/members"
    echo "$(basename "$0"): port race lost, retrying with new ports" >&2
  done
  die "could not find free ports for etcd in 3 attempts"
}

stop() {
  local dir=$1 f
  for f in "$dir"/m*.pid; do
    [[ -e $f ]] || continue
    # etcd shuts down within milliseconds on SIGTERM; SIGKILL after 5 s.
    stop_pidfile "$f" "$dir" TERM 5
  done
  rm -f "$dir/env"
}

kill_member() {
  local dir=$1 i=$2 pid
  pid=$(pid_of "$dir/m$i.pid" "$dir") || die "member $i of $dir is not running"
  kill -KILL "$pid"
  wait_until 10 not_alive "$pid" || die "member $i (pid $pid) survived SIGKILL"
  rm -f "$dir/m$i.pid"
}

listening_or_dead() {  # listening_or_dead DIR I PORT
  (: </dev/tcp/127.0.0.1/"$3") 2>/dev/null || ! pid_of "$1/m$2.pid" "$1" >/dev/null
}

start_member() {
  local dir=$1 i=$2 client
  ! pid_of "$dir/m$i.pid" "$dir" >/dev/null || die "member $i of $dir is already running"
  launch_member "$dir" "$i" existing
  client=$(member_field "$dir" "$i" 2)
  # Wait until it accepts clients, not for quorum health: with the other
  # members down, a restarted member cannot serve a quorum read yet.
  if ! wait_until "$HEALTH_TIMEOUT" listening_or_dead "$dir" "$i" "$client" ||
     ! pid_of "$dir/m$i.pid" "$dir" >/dev/null; then
    tail -n 20 "$dir/m$i.log" >&2 || true
    die "member $i of $dir did not start within ${HEALTH_TIMEOUT}s"
  fi
}

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$(abs_dir "$2")
case $cmd in
  start)
    # A failed or interrupted start leaves nothing running.
    trap 'rc=$?; ((rc == 0)) || stop "$dir"' EXIT
    trap 'exit 143' TERM INT HUP
    start "$dir" "${3:-3}" "${4:-}" ;;
  stop) stop "$dir" ;;
  kill-member) [[ $# -eq 3 ]] || usage; kill_member "$dir" "$3" ;;
  start-member) [[ $# -eq 3 ]] || usage; start_member "$dir" "$3" ;;
  *) usage ;;
esac
