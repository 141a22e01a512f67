#!/bin/bash
# make -j2 of a small C project on a DBFS mount; incremental rebuilds rely on
# correct mtimes.
source "$(dirname "$0")/lib.sh"
require make cc
dbfs_setup

P=$MNT/proj
N=10
gen_c_project "$P" $N
want=$(c_project_expected $N)

log "make -j2"
make -C "$P" -j2 >>"$LOG" 2>&1 || die "make -j2 failed"
[ "$("$P/prog")" = "$want" ] || die "program output: $("$P/prog"), want $want"
make -C "$P" -q || die "make -q: tree not up to date right after a build (mtimes?)"

log "incremental rebuild"
now_after() { [ "$(date +%s)" -gt "$1" ]; }
# Bounded wait for the next second, so the edit's mtime is newer than the
# objects' even with coarse timestamps.
wait_until 3 now_after "$(date +%s)"
sed -i 's/return helper3(3);/return helper3(3) + 1000;/' "$P/src/module3.c"
make -C "$P" -q && die "make -q: edit of module3.c not noticed"
before=$(stat -c %Y.%y "$P/obj/module1.o")
make -C "$P" -j2 >"$T/rebuild.log" 2>&1 || die "incremental make failed"
cat "$T/rebuild.log" >>"$LOG"
grep -q -- "-o obj/module3.o" "$T/rebuild.log" || die "module3.o was not rebuilt"
grep -q -- "-o obj/module1.o" "$T/rebuild.log" && die "module1.o was rebuilt needlessly"
[ "$(stat -c %Y.%y "$P/obj/module1.o")" = "$before" ] || die "module1.o changed"
want2=$(c_project_expected $N | awk -F= '{print "total=" $2 + 1000}')
[ "$("$P/prog")" = "$want2" ] || die "after rebuild: $("$P/prog"), want $want2"

log "clean + rebuild, remount, run"
make -C "$P" clean >>"$LOG" 2>&1
[ ! -e "$P/obj" ] || die "make clean left obj/"
make -C "$P" -j2 >>"$LOG" 2>&1 || die "make -j2 after clean failed"
dbfs_remount
[ "$("$P/prog")" = "$want2" ] || die "after remount: $("$P/prog")"
make -C "$P" -q || die "make -q after remount: not up to date"
dbfs_unmount
fsck_clean
dbfs_pass
