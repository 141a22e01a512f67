#!/usr/bin/env bash
# A throwaway Ceph cluster on 127.0.0.1 for tests and benchmarks: one
# monitor, N memstore OSDs (data in RAM), no manager, auth none.
#
#   ceph_cluster.sh start DIR [N_OSDS]  N OSDs (default 3); waits until a first write succeeds
#   ceph_cluster.sh stop DIR            stops every daemon started under DIR (also after a
#                                       partial start); leaves DIR itself
#   ceph_cluster.sh kill-osd DIR I      SIGKILLs OSD I (0-based)
#   ceph_cluster.sh start-osd DIR I     restarts OSD I and waits until the monitor has it up
#
# Auth is none (no keyrings to hand around; the cluster is reachable from
# 127.0.0.1 only and lives for one test). Settings for a fast, small
# cluster: paxos propose interval 0.1 s (bring-up in ~2-3 s instead of ~6),
# memstore OSDs, pool size = OSD count (up to 3), 8 PGs without autoscale,
# replicas spread over OSDs rather than hosts (chooseleaf type 0), disk-space
# guards at 2 %/1 % free, and no manager (its absence is not a health error
# for a day). Layout of DIR:
#   env          CEPH_CONF=DIR/ceph.conf  CEPH_POOL=dbfs  CEPH_OSDS=N  CEPH_MON=127.0.0.1:PORT
#   ceph.conf    for clients and daemons
#   mon.a/ osd.<i>/ run/ log/   daemon data, sockets, logs
#   mon.a.pid osd.<i>.pid
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

POOL=${CEPH_TEST_POOL:-dbfs}
START_TIMEOUT=${CEPH_START_TIMEOUT:-60}

usage() {
  sed -n '2,10p' "$0" >&2
  exit 2
}

for tool in ceph-mon ceph-osd ceph-authtool monmaptool; do
  command -v "$tool" >/dev/null || die "$tool is not installed (tools/install-deps.sh --cluster)"
done

# admin DIR SECONDS COMMAND ARGS...: monitor commands through the Python
# librados binding, all in one connection (the ceph CLI spends ~0.6 s
# starting up per call; a bring-up needs a dozen calls). Every wait is bounded
# by SECONDS; failures go to stderr with a non-zero exit.
#   new-osds N            registers N OSDs, prints "<id> <uuid>" per line
#   ready N POOL          waits for N OSDs up, creates POOL, waits for a first write
#   osd-up ID             waits until OSD ID is up
admin() {
  /usr/bin/python3 - "$@" <<'PY'
import json, sys, time, uuid
import rados

conf, seconds, cmd, args = sys.argv[1] + "/ceph.conf", float(sys.argv[2]), sys.argv[3], sys.argv[4:]
deadline = time.monotonic() + seconds

def fail(msg):
    sys.stderr.write("ceph_cluster.sh: %s\n" % msg)
    sys.exit(1)

def left():
    return max(1.0, deadline - time.monotonic())

cluster = rados.Rados(conffile=conf)
for opt in ("rados_mon_op_timeout", "rados_osd_op_timeout", "client_mount_timeout"):
    cluster.conf_set(opt, "5")
while True:
    try:
        cluster.connect(timeout=int(left()))
        break
    except rados.Error as e:
        if time.monotonic() >= deadline:
            fail("no monitor answered within %.0f s: %s" % (seconds, e))
        time.sleep(0.05)

def mon(prefix, **kw):
    kw.update(prefix=prefix, format="json")
    ret, out, err = cluster.mon_command(json.dumps(kw), b"", timeout=int(left()))
    if ret != 0:
        fail("%s: %s (%d)" % (prefix, err, ret))
    return json.loads(out) if out else None

def wait(what, pred):
    while not pred():
        if time.monotonic() >= deadline:
            fail("%s: not within %.0f s" % (what, seconds))
        time.sleep(0.05)

if cmd == "new-osds":
    for _ in range(int(args[0])):
        u = str(uuid.uuid4())
        print(mon("osd new", uuid=u)["osdid"], u)
elif cmd == "ready":
    n, pool = int(args[0]), args[1]
    wait("%d OSDs up" % n, lambda: mon("osd stat")["num_up_osds"] == n)
    mon("osd pool create", pool=pool, pg_num=8, pgp_num=8, pool_type="replicated")
    mon("osd pool application enable", pool=pool, app="rados")
    # The PGs peer in the background; the first write that succeeds says
    # the pool is usable (each try gives up after rados_osd_op_timeout).
    io = cluster.open_ioctx(pool)
    def wrote():
        try:
            io.write_full("dbfs-probe", b"probe")
            return True
        except rados.Error:
            return False
    wait("first write to pool " + pool, wrote)
    io.remove_object("dbfs-probe")
    io.close()
elif cmd == "osd-up":
    i = int(args[0])
    wait("osd.%d up" % i,
         lambda: any(o["osd"] == i and o["up"] == 1 for o in mon("osd dump")["osds"]))
else:
    fail("unknown admin command " + cmd)
cluster.shutdown()
PY
}

write_conf() {  # write_conf DIR N MON_V2_PORT MON_V1_PORT
  local dir=$1 n=$2 p2=$3 p1=$4 size
  size=$((n < 3 ? n : 3))
  cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $(cat "$dir/fsid")
mon host = [v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon data = $dir/\$name
osd data = $dir/\$name
keyring = $dir/keyring
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = $size
osd pool default min size = $(((size + 1) / 2))
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
paxos propose interval = 0.1
mon data avail warn = 2
mon data avail crit = 1
mon mgr mkfs grace = 86400
ms async op threads = 1
osd op num shards = 1
osd op num threads per shard = 2
osd memory target = 939524096
osd memory cache min = 33554432
CONF
}

all_running() {
  local f
  for f in "$dir"/mon.*.pid "$dir"/osd.*.pid; do
    [[ -e $f ]] || continue
    pid_of "$f" "$dir" >/dev/null || return 1
  done
}

# step WHAT CMD...: runs one bring-up step; on failure shows the logs and
# fails (stop() still cleans up: the caller's trap or the fixture calls it).
step() {
  local what=$1
  shift
  if ! "$@" || ! all_running; then
    tail -n 15 "$dir"/log/*.log "$dir"/*.out 2>/dev/null >&2 || true
    die "$what failed ($dir)"
  fi
}

mon_listening_or_dead() {  # mon_listening_or_dead PORT
  (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null || ! pid_of "$dir/mon.a.pid" "$dir" >/dev/null
}

launch_osd() {  # launch_osd ID
  spawn "$dir/osd.$1.pid" "$dir/osd.$1.out" ceph-osd -f -c "$dir/ceph.conf" -i "$1"
}

start() {
  local n=$1 ports i uuid id
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad OSD count '$n'"
  [[ ! -e $dir/ceph.conf ]] || die "$dir already holds a cluster (stop it first)"
  mkdir -p "$dir/run" "$dir/log"
  cat /proc/sys/kernel/random/uuid >"$dir/fsid"
  local attempt
  for attempt in 1 2 3; do
    read -r -a ports <<<"$(free_ports 2)"
    write_conf "$dir" "$n" "${ports[0]}" "${ports[1]}"
    monmaptool --create --clobber --fsid "$(cat "$dir/fsid")" \
      --addv a "[v2:127.0.0.1:${ports[0]},v1:127.0.0.1:${ports[1]}]" "$dir/monmap" >/dev/null
    [[ -e $dir/keyring ]] ||
      ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
      >"$dir/mon.a.out" 2>&1 || { cat "$dir/mon.a.out" >&2; die "ceph-mon --mkfs failed"; }
    spawn "$dir/mon.a.pid" "$dir/mon.a.out" ceph-mon -f -c "$dir/ceph.conf" -i a
    wait_until 10 mon_listening_or_dead "${ports[0]}" || step "monitor start" false
    pid_of "$dir/mon.a.pid" "$dir" >/dev/null && break
    # Lost the race for a port that was free a moment ago: new ports.
    grep -qs "Address already in use" "$dir/mon.a.out" "$dir/log/mon.a.log" ||
      step "monitor start" false
    rm -rf "$dir/mon.a" "$dir/mon.a.pid" "$dir/log/mon.a.log"
    ((attempt < 3)) || die "could not find free ports for the monitor in 3 attempts"
  done

  local osds
  osds=$(admin "$dir" "$START_TIMEOUT" new-osds "$n") || step "registering $n OSDs" false
  local mkfs_pids=()
  while read -r id uuid; do
    mkdir -p "$dir/osd.$id"
    # mkfs of all OSDs in parallel (each takes ~0.5 s).
    ceph-osd -c "$dir/ceph.conf" -i "$id" --mkfs --osd-uuid "$uuid" >"$dir/osd.$id.out" 2>&1 &
    mkfs_pids+=($!)
  done <<<"$osds"
  for i in "${!mkfs_pids[@]}"; do
    wait "${mkfs_pids[$i]}" || step "ceph-osd --mkfs of osd.$i" false
  done
  for ((i = 0; i < n; i++)); do launch_osd "$i"; done
  step "$n OSDs up, pool $POOL, first write" admin "$dir" "$START_TIMEOUT" ready "$n" "$POOL"
  {
    echo "CEPH_CONF=$dir/ceph.conf"
    echo "CEPH_POOL=$POOL"
    echo "CEPH_OSDS=$n"
    echo "CEPH_MON=127.0.0.1:${ports[0]}"
  } >"$dir/env"
}

stop() {
  local f
  # The cluster is disposable (memstore keeps data in RAM): SIGKILL is the
  # fast stop (SIGTERM would make each OSD write its RAM store to disk).
  for f in "$dir"/osd.*.pid "$dir"/mon.*.pid; do
    [[ -e $f ]] || continue
    stop_pidfile "$f" "$dir" KILL 10
  done
  rm -f "$dir/env"
}

kill_osd() {
  local i=$1 pid
  pid=$(pid_of "$dir/osd.$i.pid" "$dir") || die "osd.$i of $dir is not running"
  kill -KILL "$pid"
  wait_until 10 not_alive "$pid" || die "osd.$i (pid $pid) survived SIGKILL"
  rm -f "$dir/osd.$i.pid"
}

start_osd() {
  local i=$1
  [[ -d $dir/osd.$i ]] || die "no osd.$i in $dir"
  ! pid_of "$dir/osd.$i.pid" "$dir" >/dev/null || die "osd.$i of $dir is already running"
  launch_osd "$i"
  step "osd.$i up" admin "$dir" "$START_TIMEOUT" osd-up "$i"
}

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$(abs_dir "$2")
case $cmd in
  start)
    # A failed or interrupted start leaves nothing running.
    trap 'rc=$?; ((rc == 0)) || stop' EXIT
    trap 'exit 143' TERM INT HUP
    start "${3:-3}" ;;
  stop) stop ;;
  kill-osd) [[ $# -eq 3 ]] || usage; kill_osd "$3" ;;
  start-osd) [[ $# -eq 3 ]] || usage; start_osd "$3" ;;
  *) usage ;;
esac
