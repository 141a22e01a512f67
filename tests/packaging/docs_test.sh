#!/usr/bin/env bash
# The man pages and the bash completion cover what the programs accept:
# every subcommand `dbfs --help` lists (and each one's subcommands) is in
# dbfs(1) and completes; every -o option `dbfs-mount --list-options` names
# (the table the parser's error message uses) is in dbfs-mount(8) and
# completes after -o; each man page is well-formed roff (man --warnings
# when man-db is installed, else groff).
source "$(dirname "$0")/../integration/lib.sh"
SRC=$DBFS_SOURCE_DIR
MAN=$SRC/docs/man
COMPLETION=$SRC/dist/bash-completion/dbfs
DBFS=$DBFS_BIN_DIR/dbfs
fails=0
bad() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# The subcommands in a CLI11 help text: the lines under "SUBCOMMANDS:".
subcommands() {
  "$@" --help | awk 'toupper($0) ~ /^SUBCOMMANDS:/ { on = 1; next } on && /^[^ ]/ { on = 0 } on && NF { print $1 }'
}

# complete_words WORDS...: what _dbfs offers for the last (empty) word.
complete_words() {
  bash -c '
    source "$1"; shift
    COMP_WORDS=("$@" ""); COMP_CWORD=$#; COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    _dbfs; printf "%s\n" "${COMPREPLY[@]}"' sh "$COMPLETION" "$@"
}

top=$(subcommands "$DBFS")
[ "$(echo "$top" | wc -w)" -ge 10 ] || die "dbfs --help lists too few subcommands: $top"
for sub in $top; do
  grep -Eq "^\.(B|BR) $sub( |$)" "$MAN/dbfs.1" ||
    bad "dbfs.1 does not document 'dbfs $sub'"
  # (Captured first: grep -q closing the pipe early would fail it under pipefail.)
  offered=$(complete_words dbfs)
  grep -qx "$sub" <<<"$offered" || bad "completion does not offer 'dbfs $sub'"
  for subsub in $(subcommands "$DBFS" "$sub"); do
    grep -Eq "^\.B $sub $subsub( |$)" "$MAN/dbfs.1" || bad "dbfs.1 does not document 'dbfs $sub $subsub'"
    offered=$(complete_words dbfs "$sub")
    grep -qx "$subsub" <<<"$offered" ||
      bad "completion does not offer 'dbfs $sub $subsub'"
  done
done

opts=$("$DBFS_BIN_DIR/dbfs-mount" --list-options)
[ "$(echo "$opts" | wc -l)" -ge 20 ] || die "dbfs-mount --list-options lists too few: $opts"
# The list is what the parser accepts: an unknown option's error names it.
err=$("$DBFS_BIN_DIR/dbfs-mount" /nonexistent /nonexistent -o no_such_option 2>&1 || true)
for o in $opts; do
  case "$err" in *"$o"*) ;; *) bad "the unknown-option error does not list $o: $err" ;; esac
  name=${o%=}
  # Documented as ".B name", ".BI name= ARG" or in a ".BR a ", " b" list.
  grep -Eq "^\.(B|BI|BR) (.*[\" ])?$name(=| |\"|,|$)" "$MAN/dbfs-mount.8" ||
    bad "dbfs-mount.8 does not document -o $o"
  got=$(PATH=$DBFS_BIN_DIR:$PATH bash -c '
    source "$1"
    COMP_WORDS=(dbfs-mount v m -o "$2"); COMP_CWORD=4
    _dbfs_mount; printf "%s\n" "${COMPREPLY[@]}"' sh "$COMPLETION" "noatime,${name:0:3}" \
    2>/dev/null | sed "s/^/x/")
  grep -qx "xnoatime,$o" <<<"$got" || bad "completion of -o noatime,${name:0:3} lacks $o"
done

# Each page renders without warnings.
for page in "$MAN"/*.[0-9]; do
  if command -v man >/dev/null 2>&1; then
    w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null || true)
  elif command -v groff >/dev/null 2>&1; then
    w=$(groff -man -ww -z "$page" 2>&1 || true)
  else
    w=""
  fi
  [ -z "$w" ] || bad "$(basename "$page"): $w"
done
# The pages the install rules name all exist.
for page in dbfs.1 dbfs-mount.8 mkfs.dbfs.8 fsck.dbfs.8 dbfs.7 libdbfs.3; do
  [ -s "$MAN/$page" ] || bad "missing man page $page"
done

((fails == 0)) || die "$fails documentation gaps"
log "PASS"
