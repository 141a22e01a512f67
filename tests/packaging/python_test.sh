#!/usr/bin/env bash
# The dbfs Python module (python/dbfs) against a real mount: python_test.py.
# DBFS_PYTHONPATH: where the module is (default: the source tree's python/;
# the package test runs it against the installed one with DBFS_PYTHONPATH=).
source "$(dirname "$0")/../integration/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require python3
dbfs_setup
PYTHONPATH=${DBFS_PYTHONPATH-$DBFS_SOURCE_DIR/python} python3 \
  "$(dirname "$0")/python_test.py" "$MNT" || die "python_test.py failed"
dbfs_pass
