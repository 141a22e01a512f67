#!/bin/bash
# Usage: bench/run.sh [--quick | --smoke] [--disk] [--io-uring auto|on|off] [--bin DIR] [--reps N] [--out DIR] [--only W,...]
#
# Side-by-side benchmark of three targets over the same backing directory:
#   dbfs         mkfs.dbfs + dbfs-mount of a volume inside the backing directory
#   passthrough  the backing directory through mergerfs (cache.files=off)
#   direct       the backing directory itself
# The backing directory is a fresh tmpfs (software cost only) or, with
# --disk, a temporary directory under /var/tmp. For every workload the
# targets are run alternately (dbfs passthrough direct dbfs ...) R times and
# the median is reported. Results: a table on stdout, bench/results/TS.csv and
# bench/results/TS.png (the DBFS / passthrough ratios; > 1 means DBFS is faster).
#
#   --quick   scaled-down sizes, 1-3 repetitions (a few minutes)
#   --smoke   tiny sizes, 1 repetition (CI: checks that the suite works)
#   --disk    backing directory on disk (/var/tmp) instead of tmpfs
#   --io-uring M  DBFS's FUSE transport: dbfs-mount -o io_uring=M (default
#             off, as the daemon's); `on` turns the fuse module's enable_uring on first. The
#             header says which transport served (the daemon's log).
#   --bin D   directory holding mkfs.dbfs, dbfs-mount, dbfs (default: build/bin,
#             else build-bench/bin of this repository)
#   --reps N  override the number of repetitions
#   --out D   results directory (default bench/results)
#   --only W  run only these workload groups (comma-separated: meta1 meta8
#             small8 small32 seq rand git make tx recovery), e.g. --only tx
#
# Needs root (tmpfs mount, drop_caches, allow_other). Installs mergerfs, fio
# and gnuplot-nox with apt-get when missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
MODE=full DISK=0 BIN="" REPS_OVERRIDE="" OUT="$REPO/bench/results" ONLY="" URING=off
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --smoke) MODE=smoke ;;
    --disk) DISK=1 ;;
    --io-uring) URING=$2; shift ;;
    --bin) BIN=$2; shift ;;
    --reps) REPS_OVERRIDE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --only) ONLY=",$2,"; shift ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 2; }
case "$URING" in auto | on | off) ;; *) echo "run.sh: --io-uring takes auto, on or off" >&2; exit 2 ;; esac
if [ "$URING" = on ] && [ -e /sys/module/fuse/parameters/enable_uring ]; then
  echo Y >/sys/module/fuse/parameters/enable_uring
fi

if [ -z "$BIN" ]; then
  for d in "$REPO/build/bin" "$REPO/build-bench/bin"; do
    if [ -x "$d/mkfs.dbfs" ] && [ -x "$d/dbfs-mount" ] && [ -x "$d/dbfs" ]; then BIN=$d; break; fi
  done
fi
for b in mkfs.dbfs dbfs-mount dbfs; do
  [ -x "$BIN/$b" ] || { echo "run.sh: $BIN/$b not found; build first (cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2) or pass --bin" >&2; exit 2; }
done
BIN=$(cd "$BIN" && pwd)

# ---------------------------------------------------------------- tools
missing=()
for p in mergerfs fio gnuplot-nox fuse3 git make gcc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 2; }

# ---------------------------------------------------------------- sizes
case $MODE in
  full)  REPS=5; META_N=100000; SMALL_N=8000; SEQ_MB=2048; RAND_MB=512; RAND_IO_MB=256; RANDSYNC_IO_MB=16
         CFILES=30; TX_N1=500; TX_N16=50; TX_N64=30; TX_N256=8; REC_MB=1024; REC_FILES=20000; REC_REPS=5; TMPFS_SIZE=12g
         PROTO_OPS=20000 ;;
  quick) REPS=3; META_N=5000; SMALL_N=1000; SEQ_MB=256; RAND_MB=64; RAND_IO_MB=32; RANDSYNC_IO_MB=4
         CFILES=30; TX_N1=100; TX_N16=10; TX_N64=4; TX_N256=1; REC_MB=128; REC_FILES=2000; REC_REPS=2; TMPFS_SIZE=3g
         PROTO_OPS=5000 ;;
  smoke) REPS=1; META_N=200; SMALL_N=64; SEQ_MB=8; RAND_MB=8; RAND_IO_MB=2; RANDSYNC_IO_MB=1
         CFILES=4; TX_N1=5; TX_N16=2; TX_N64=1; TX_N256=1; REC_MB=8; REC_FILES=50; REC_REPS=1; TMPFS_SIZE=1g
         PROTO_OPS=300 ;;
esac
if [ -n "$REPS_OVERRIDE" ]; then REPS=$REPS_OVERRIDE; REC_REPS=$REPS_OVERRIDE; fi
# Expensive workloads (real programs) get at most 2 repetitions in quick mode.
HEAVY_REPS=$REPS; [ "$MODE" = quick ] && HEAVY_REPS=2

# ---------------------------------------------------------------- setup / teardown
if [ $DISK = 1 ]; then TMP=$(mktemp -d /var/tmp/dbfs-bench.XXXXXX); else TMP=$(mktemp -d /tmp/dbfs-bench.XXXXXX); fi
BACK=$TMP/backing
VOL=$BACK/dbfs-vol PLAIN=$BACK/plain
MNT_DBFS=$TMP/mnt-dbfs MNT_PT=$TMP/mnt-pt
RAW=$TMP/raw.csv LOG=$TMP/log
DBFS_PID="" PT_PID="" TMPFS_MOUNTED=0
mkdir -p "$BACK" "$MNT_DBFS" "$MNT_PT" "$LOG"

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

stop_pid() { # PID: wait up to 10 s for it to exit, then SIGKILL it
  local pid=$1 i
  [ -n "$pid" ] || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

unmount_fuse() { # MNT PID
  if is_mounted "$1"; then fusermount3 -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true; fi
  stop_pid "$2"
  if is_mounted "$1"; then umount -l "$1" 2>/dev/null || true; fi
}

cleanup() {
  local rc=$?
  set +e
  unmount_fuse "$MNT_DBFS" "$DBFS_PID"; DBFS_PID=""
  unmount_fuse "$MNT_PT" "$PT_PID"; PT_PID=""
  if [ $TMPFS_MOUNTED = 1 ]; then umount "$BACK" 2>/dev/null || umount -l "$BACK"; fi
  if [ $rc != 0 ] && [ -d "$LOG" ]; then
    echo "run.sh: failed (rc $rc); last daemon log lines:" >&2
    tail -n 20 "$LOG"/*.log 2>/dev/null >&2
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ $DISK = 0 ]; then
  mount -t tmpfs -o size="$TMPFS_SIZE",mode=0755 dbfs-bench "$BACK"
  TMPFS_MOUNTED=1
fi
mkdir -p "$PLAIN"
BACKING_FS=$(findmnt -n -o FSTYPE --target "$BACK" 2>/dev/null || stat -f -c %T "$BACK")

wait_mounted() { # MNT PID
  local i
  for i in $(seq 300); do
    is_mounted "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "run.sh: daemon for $1 exited" >&2; return 1; }
    sleep 0.02
  done
  echo "run.sh: $1 did not appear in /proc/mounts" >&2
  return 1
}

dbfs_start() { # mount an existing volume in the foreground (pid known), wait until live
  "$BIN/dbfs-mount" "$VOL" "$MNT_DBFS" -f -o "io_uring=$URING" >>"$LOG/dbfs.log" 2>&1 &
  DBFS_PID=$!
  wait_mounted "$MNT_DBFS" "$DBFS_PID"
}
dbfs_fresh() { # new volume + mount (frees the backing space of the previous workload)
  unmount_fuse "$MNT_DBFS" "$DBFS_PID"; DBFS_PID=""
  rm -rf "$VOL"
  "$BIN/mkfs.dbfs" "$VOL" >>"$LOG/dbfs.log" 2>&1
  dbfs_start
}
pt_start() {
  mergerfs -f -o cache.files=off,allow_other,minfreespace=0 "$PLAIN" "$MNT_PT" >>"$LOG/mergerfs.log" 2>&1 &
  PT_PID=$!
  wait_mounted "$MNT_PT" "$PT_PID"
}

target_dir() {
  case $1 in dbfs) echo "$MNT_DBFS" ;; passthrough) echo "$MNT_PT" ;; direct) echo "$PLAIN" ;; esac
}

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.6f}')" "$1" "$2"; }
div() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }

# record WORKLOAD TARGET REP VALUE UNIT BETTER(higher|lower)
# Progress (each measurement as it is taken) only on a terminal: in a pipe
# or a log the run stays quiet until the table (the CSV keeps every value).
PROGRESS=0
[ -t 2 ] && PROGRESS=1
record() {
  echo "$1,$2,$3,$4,$5,$6" >>"$RAW"
  [ "$PROGRESS" = 1 ] && printf '  %-22s %-12s rep %-2s %14s %s\n' "$1" "$2" "$3" "$4" "$5" >&2
  return 0
}

drop_caches() { sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# ---------------------------------------------------------------- helpers built at run time
HELPER=$TMP/bench_helper
cc -O2 -pthread "$REPO/bench/bench_helper.c" -o "$HELPER"

# A local git repository with this project's history (outside the backing fs).
GITSRC=$TMP/src.git
if git -C "$REPO" rev-parse HEAD >/dev/null 2>&1; then
  git clone -q --bare --no-hardlinks "$REPO" "$GITSRC"
else # not a git checkout: make a small repository from the sources
  git init -q "$TMP/gitinit" && cp -r "$REPO"/{kvstore,wal,mvcc,txn} "$TMP/gitinit/" &&
    git -C "$TMP/gitinit" add -A && git -C "$TMP/gitinit" -c user.name=b -c user.email=b@b commit -qm init &&
    git clone -q --bare "$TMP/gitinit" "$GITSRC"
fi
GIT_OLD=$(git -C "$GITSRC" rev-list --max-parents=0 HEAD | tail -1)

# A small generated C project, as a tarball.
make_cproject() {
  local d=$TMP/cproj/proj i j
  mkdir -p "$d"
  {
    echo "CFLAGS ?= -O2"
    echo "SRCS := \$(wildcard *.c)"
    echo "OBJS := \$(SRCS:.c=.o)"
    echo "prog: \$(OBJS)"
    printf '\t$(CC) -o $@ $(OBJS)\n'
    echo "%.o: %.c common.h"
    printf '\t$(CC) $(CFLAGS) -c -o $@ $<\n'
  } >"$d/Makefile"
  { echo "#include <stdio.h>"; echo "#include <string.h>"; echo "#include <stdlib.h>"
    for i in $(seq "$CFILES"); do echo "long unit$i(long x);"; done; } >"$d/common.h"
  for i in $(seq "$CFILES"); do
    {
      echo '#include "common.h"'
      for j in $(seq 15); do
        echo "static long f${j}(long x) { long s = x; for (int k = 0; k < $j; ++k) { s = s * 31 + k; if (s % 7 == 3) s ^= (s >> 3); } char b[64]; snprintf(b, sizeof b, \"%ld\", s); return s + (long)strlen(b); }"
      done
      printf 'long unit%d(long x) { long s = 0;' "$i"
      for j in $(seq 15); do printf ' s += f%d(x + %d);' "$j" "$j"; done
      echo ' return s; }'
    } >"$d/unit$i.c"
  done
  { echo '#include "common.h"'; printf 'int main(void) { long s = 0;'
    for i in $(seq "$CFILES"); do printf ' s += unit%d(%d);' "$i" "$i"; done
    echo ' printf("%ld\n", s); return 0; }'; } >"$d/main.c"
  tar -C "$TMP/cproj" -cf "$TMP/cproj.tar" proj
}
make_cproject

# ---------------------------------------------------------------- workloads
# Each wl_* function runs one repetition on one target: wl_X TARGET REP.
# It creates and removes its own work directory, and records its rows.

wl_meta() { # THREADS TARGET REP
  local th=$1 t=$2 r=$3 d s
  d=$(target_dir "$t")/meta$th-$r
  mkdir "$d"
  s=$("$HELPER" create "$d" "$META_N" "$th"); record "create_${th}t" "$t" "$r" "$(div "$META_N" "$s")" ops/s higher
  s=$("$HELPER" stat "$d" "$META_N" "$th"); record "stat_${th}t" "$t" "$r" "$(div "$META_N" "$s")" ops/s higher
  if [ "$th" = 1 ]; then
    local t0 t1 n
    drop_caches
    t0=$(now); n=$(ls -f "$d" | wc -l); t1=$(now)
    [ "$n" -ge "$META_N" ] || { echo "run.sh: readdir of $d gave $n entries" >&2; return 1; }
    record readdir "$t" "$r" "$(div "$n" "$(elapsed "$t0" "$t1")")" entries/s higher
  fi
  s=$("$HELPER" rename "$d" "$META_N" "$th"); record "rename_${th}t" "$t" "$r" "$(div "$META_N" "$s")" ops/s higher
  s=$("$HELPER" unlink "$d" "$META_N" "$th"); record "unlink_${th}t" "$t" "$r" "$(div "$META_N" "$s")" ops/s higher
  rmdir "$d"
}
wl_meta1() { wl_meta 1 "$@"; }
wl_meta8() { wl_meta 8 "$@"; }

wl_smallfsync() { # THREADS TARGET REP
  local th=$1 t=$2 r=$3 d s
  d=$(target_dir "$t")/small$th-$r
  mkdir "$d"
  s=$("$HELPER" fsync "$d" "$SMALL_N" "$th")
  record "fsync_4k_${th}t" "$t" "$r" "$(div "$SMALL_N" "$s")" files/s higher
  rm -rf "$d"
}
wl_small8() { wl_smallfsync 8 "$@"; }
wl_small32() { wl_smallfsync 32 "$@"; }

fio_json() { # NAME OUTFILE ARGS...: runs fio, prints "bw_MiBps iops" of the job
  local name=$1 out=$2; shift 2
  fio --name="$name" --ioengine=psync --fallocate=none --output-format=json --output="$out" "$@" >/dev/null
  python3 - "$out" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
rw = j["write"] if j["write"]["io_bytes"] > 0 else j["read"]
print(f'{rw["bw_bytes"] / 1048576:.1f} {rw["iops"]:.0f}')
EOF
}

wl_seq() {
  local t=$1 r=$2 d res
  d=$(target_dir "$t")/seq-$r
  mkdir "$d"
  res=$(fio_json seqwrite "$TMP/fio.json" --filename="$d/f" --rw=write --bs=1M --size=${SEQ_MB}M --end_fsync=1)
  record seq_write_1M "$t" "$r" "${res% *}" MiB/s higher
  drop_caches
  res=$(fio_json seqread "$TMP/fio.json" --filename="$d/f" --rw=read --bs=1M --size=${SEQ_MB}M)
  record seq_read_1M "$t" "$r" "${res% *}" MiB/s higher
  rm -rf "$d"
}

wl_rand() {
  local t=$1 r=$2 d res common
  d=$(target_dir "$t")/rand-$r
  mkdir "$d"
  common=(--filename="$d/f" --bs=4k --size="${RAND_MB}M" --randrepeat=1)
  # lay the file out first (sequentially), so the random phases measure only themselves
  fio_json layout "$TMP/fio.json" --filename="$d/f" --rw=write --bs=1M --size=${RAND_MB}M >/dev/null
  drop_caches
  res=$(fio_json randread "$TMP/fio.json" "${common[@]}" --rw=randread --io_size=${RAND_IO_MB}M)
  record rand_read_4k "$t" "$r" "${res#* }" IOPS higher
  res=$(fio_json randwrite "$TMP/fio.json" "${common[@]}" --rw=randwrite --io_size=${RAND_IO_MB}M)
  record rand_write_4k "$t" "$r" "${res#* }" IOPS higher
  res=$(fio_json randwritesync "$TMP/fio.json" "${common[@]}" --rw=randwrite --fsync=1 --io_size=${RANDSYNC_IO_MB}M)
  record rand_write_4k_fsync "$t" "$r" "${res#* }" IOPS higher
  rm -rf "$d"
}

wl_git() {
  local t=$1 r=$2 d t0 t1
  d=$(target_dir "$t")/git-$r
  t0=$(now); git clone -q --no-hardlinks "$GITSRC" "$d"; t1=$(now)
  record git_clone "$t" "$r" "$(elapsed "$t0" "$t1")" s lower
  t0=$(now); git -C "$d" checkout -q "$GIT_OLD"; git -C "$d" checkout -q -; t1=$(now)
  record git_checkout "$t" "$r" "$(elapsed "$t0" "$t1")" s lower
  rm -rf "$d"
}

wl_make() {
  local t=$1 r=$2 d t0 t1
  d=$(target_dir "$t")/make-$r
  mkdir "$d"
  t0=$(now); tar -C "$d" -xf "$TMP/cproj.tar"; make -s -C "$d/proj" -j2 >/dev/null; t1=$(now)
  [ -x "$d/proj/prog" ] || { echo "run.sh: make produced no program" >&2; return 1; }
  record untar_make_j2 "$t" "$r" "$(elapsed "$t0" "$t1")" s lower
  rm -rf "$d"
}

tx_clients() { # CLIENTS PER_CLIENT REP: prints commits/s
  local c=$1 n=$2 r=$3 base=$MNT_DBFS/tx-$1-$3 t0 t1 pids=() i fails=0
  for i in $(seq "$c"); do mkdir -p "$base/c$i"; done
  t0=$(now)
  for i in $(seq "$c"); do
    (
      cd "$base/c$i"
      for k in $(seq "$n"); do
        "$BIN/dbfs" tx run --retries 5 -- sh -c "echo $k > a$k; echo $k > b$k" || exit 1
      done
    ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || fails=$((fails + 1)); done
  t1=$(now)
  [ $fails = 0 ] || { echo "run.sh: $fails transaction clients failed" >&2; return 1; }
  div "$((c * n))" "$(elapsed "$t0" "$t1")"
  rm -rf "$base"
}
# Small transactions through the protocol (the daemon's Unix socket), one
# write per transaction (--pipeline): PROTO_OPS one-append transactions over
# many keys (few conflicts), checked by the Elle checker. Prints commits/s.
proto_clients() { # CLIENTS REP
  local out=$TMP/proto-$1-$2
  "$BIN/dbfs" elle run --mount "$MNT_DBFS" --pipeline --clients "$1" --ops "$PROTO_OPS" \
    --keys 5000 --max-txn-len 1 --seed "$2" --out "$out.edn" >"$out.txt" 2>&1 ||
    { echo "run.sh: dbfs elle run failed:" >&2; tail -5 "$out.txt" >&2; return 1; }
  sed -n 's/.*, \([0-9.]*\) commits\/s.*/\1/p' "$out.txt" | head -1
  rm -f "$out.edn" "$out.txt"
}
wl_tx() {
  local t=$1 r=$2 c
  [ "$t" = dbfs ] || return 0
  record tx_commits_1c "$t" "$r" "$(tx_clients 1 "$TX_N1" "$r")" commits/s higher
  record tx_commits_16c "$t" "$r" "$(tx_clients 16 "$TX_N16" "$r")" commits/s higher
  record tx_commits_64c "$t" "$r" "$(tx_clients 64 "$TX_N64" "$r")" commits/s higher
  record tx_commits_256c "$t" "$r" "$(tx_clients 256 "$TX_N256" "$r")" commits/s higher
  for c in 1 16 64 256; do
    record "proto_commits_${c}c" "$t" "$r" "$(proto_clients "$c" "$r")" commits/s higher
  done
}

wl_recovery() {
  local t=$1 r=$2 t0 t1 us i
  [ "$t" = dbfs ] || return 0
  dbfs_fresh
  # Write a lot without unmounting: big files in 1 MiB writes and many small files.
  mkdir "$MNT_DBFS/rec"
  for i in 1 2 3 4; do
    dd if=/dev/urandom of="$MNT_DBFS/rec/big$i" bs=1M count=$((REC_MB / 4)) status=none
  done
  "$HELPER" fsync "$MNT_DBFS/rec" "$REC_FILES" 8 >/dev/null
  # Crash: SIGKILL the daemon, clear the dead mount.
  kill -9 "$DBFS_PID"; wait "$DBFS_PID" 2>/dev/null || true; DBFS_PID=""
  fusermount3 -u "$MNT_DBFS" 2>/dev/null || umount -l "$MNT_DBFS"
  t0=$(now); dbfs_start; t1=$(now)
  record recovery_mount "$t" "$r" "$(elapsed "$t0" "$t1")" s lower
  us=$("$BIN/dbfs" stats --mount "$MNT_DBFS" | awk '/recovery_micros/ { gsub(/[^0-9]/, "", $NF); print $NF }')
  record recovery_replay "$t" "$r" "$(python3 -c "print(f'{int(\"${us:-0}\") / 1e6:.6f}')")" s lower
  [ "$(ls "$MNT_DBFS/rec" | wc -l)" -ge 4 ] || { echo "run.sh: files lost after recovery" >&2; return 1; }
}

# run_workload FUNC REPS TARGETS...: alternate the targets, fresh DBFS volume first
run_workload() {
  local fn=$1 reps=$2 r t; shift 2
  if [ -n "$ONLY" ] && [[ $ONLY != *",${fn#wl_},"* ]]; then return 0; fi
  echo "== $fn" >&2
  dbfs_fresh
  for r in $(seq "$reps"); do
    for t in "$@"; do "$fn" "$t" "$r"; done
  done
}

# ---------------------------------------------------------------- run
TS=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
CSV=$OUT/$TS.csv PNG=$OUT/$TS.png
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
HEADER="DBFS benchmark $TS ($MODE mode, $REPS reps): nproc=$(nproc) ($CPU), $(free -g | awk '/Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), backing fs $BACKING_FS ($([ $DISK = 1 ] && echo "disk, $(df --output=source "$BACK" | tail -1)" || echo tmpfs)), mergerfs $(mergerfs --version 2>&1 | awk '{ print $NF; exit }'), fio $(fio --version)"
echo "$HEADER" >&2
: >"$RAW"
pt_start
ALL=(dbfs passthrough direct)
START=$SECONDS
run_workload wl_meta1 "$REPS" "${ALL[@]}"
run_workload wl_meta8 "$REPS" "${ALL[@]}"
run_workload wl_small8 "$REPS" "${ALL[@]}"
run_workload wl_small32 "$REPS" "${ALL[@]}"
run_workload wl_seq "$REPS" "${ALL[@]}"
run_workload wl_rand "$REPS" "${ALL[@]}"
run_workload wl_git "$HEAVY_REPS" "${ALL[@]}"
run_workload wl_make "$HEAVY_REPS" "${ALL[@]}"
run_workload wl_tx "$REPS" dbfs
run_workload wl_recovery "$REC_REPS" dbfs
echo "run.sh: workloads took $((SECONDS - START)) s" >&2
# Which transport the DBFS daemons served (dbfs-mount's log line).
TRANSPORT=$(grep -o 'fuse: transport [^ ]*' "$LOG/dbfs.log" 2>/dev/null | sort | uniq -c | sed 's/fuse: transport //' | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
HEADER="$HEADER, DBFS io_uring=$URING (served: ${TRANSPORT:-unknown})"

# ---------------------------------------------------------------- report
python3 - "$RAW" "$CSV" "$TMP/ratios.dat" "$HEADER" <<'EOF'
import csv, statistics, sys
raw, out_csv, dat, header = sys.argv[1:5]
rows, order = {}, []
for w, t, r, v, unit, better in csv.reader(open(raw)):
    if w not in order:
        order.append(w)
    rows.setdefault((w, t), {"unit": unit, "better": better, "vals": []})["vals"].append(float(v))
targets = ["dbfs", "passthrough", "direct"]
def ratio(w):
    d, p = rows.get((w, "dbfs")), rows.get((w, "passthrough"))
    if not d or not p:
        return None
    dm, pm = statistics.median(d["vals"]), statistics.median(p["vals"])
    if d["better"] == "higher":
        return dm / pm if pm else None
    return pm / dm if dm else None
def fmt(x):
    return f"{x:,.3f}" if x < 10 else f"{x:,.0f}"
print(header)
print()
print("Medians; ratio = DBFS / passthrough, oriented so that > 1 means DBFS is faster")
print("(for throughputs dbfs/passthrough, for times passthrough/dbfs).")
print()
print("| workload | unit | DBFS | passthrough | direct | ratio DBFS÷passthrough (>1 = DBFS faster) |")
print("|---|---|---:|---:|---:|---:|")
with open(out_csv, "w", newline="") as f, open(dat, "w") as g:
    cw = csv.writer(f)
    cw.writerow(["workload", "target", "unit", "better", "median", "reps", "values", "ratio_dbfs_vs_passthrough"])
    for w in order:
        cells = []
        rt = ratio(w)
        unit = next(rows[(w, t)]["unit"] for t in targets if (w, t) in rows)
        better = next(rows[(w, t)]["better"] for t in targets if (w, t) in rows)
        for t in targets:
            e = rows.get((w, t))
            if not e:
                cells.append("—")
                continue
            m = statistics.median(e["vals"])
            cells.append(fmt(m))
            cw.writerow([w, t, e["unit"], e["better"], f"{m:.6g}", len(e["vals"]),
                         " ".join(f"{v:.6g}" for v in e["vals"]),
                         f"{rt:.3f}" if (rt is not None and t == "dbfs") else ""])
        unit_s = f"{unit} ({'higher' if better == 'higher' else 'lower'} is better)"
        print(f"| {w} | {unit_s} | {' | '.join(cells)} | {f'{rt:.2f}×' if rt is not None else '— (DBFS only)'} |")
        if rt is not None:
            g.write(f"{w} {rt:.4f}\n")
EOF
echo
echo "CSV: $CSV"
if [ -s "$TMP/ratios.dat" ]; then
  gnuplot <<EOF
set terminal pngcairo size 1200,600 noenhanced font ",10"
set output "$PNG"
set title "DBFS ÷ passthrough FUSE (mergerfs) over $BACKING_FS, $MODE run $TS — > 1 means DBFS is faster"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set yrange [0:*]
set grid ytics
set xtics rotate by -45
set ylabel "ratio (higher is better for DBFS)"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "red" dt 2
plot "$TMP/ratios.dat" using 2:xtic(1) notitle lc rgb "#4477aa"
EOF
  echo "Chart: $PNG"
fi
