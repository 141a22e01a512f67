"""The dbfs Python module against a real mount (run by python_test.sh with
the mount point as argv[1]): commit, abort on exception, children inside the
transaction, conflicts with the path, the retry helper, errors."""
import os
import subprocess
import sys
import unittest

import dbfs

MNT = sys.argv.pop(1)


def read(name):
    with open(os.path.join(MNT, name)) as f:
        return f.read()


def write(name, data):
    with open(os.path.join(MNT, name), "w") as f:
        f.write(data)


class OutsideWriter:
    """A process outside our transaction (reparented by a double fork, so the
    bound test process is not its ancestor) that writes when told."""

    def __init__(self, name, data):
        go_r, self.go = os.pipe()
        self.done, done_w = os.pipe()
        mid = os.fork()
        if mid == 0:
            if os.fork() == 0:
                os.close(self.go)
                os.close(self.done)
                ok = b"n"
                if os.read(go_r, 1):
                    try:
                        write(name, data)
                        ok = b"y"
                    finally:
                        os.write(done_w, ok)
                os._exit(0)
            os._exit(0)
        os.waitpid(mid, 0)
        os.close(go_r)
        os.close(done_w)

    def finish(self):
        os.write(self.go, b"g")
        ok = os.read(self.done, 1) == b"y"
        os.close(self.go)
        os.close(self.done)
        return ok


class PythonModule(unittest.TestCase):
    def test_with_block_commits_what_the_process_and_children_did(self):
        write("f", "old")
        with dbfs.transaction(MNT) as tx:
            write("f", "new")
            subprocess.run(["sh", "-c", f"echo child > {MNT}/by-child"], check=True)
            self.assertIn(f"tx {tx.id} pid {os.getpid()}", dbfs.status(MNT))
            with self.assertRaises(dbfs.Error):  # one transaction per process tree
                dbfs.transaction(MNT)
        self.assertTrue(int(tx.csn) > 0)
        self.assertEqual(read("f"), "new")
        self.assertEqual(read("by-child"), "child\n")
        self.assertEqual(dbfs.status(MNT), "")

    def test_an_exception_aborts(self):
        with self.assertRaises(KeyError):
            with dbfs.transaction(MNT, isolation="snapshot", durable=True):
                write("gone", "x")
                os.mkdir(os.path.join(MNT, "gone-dir"))
                raise KeyError("boom")
        self.assertFalse(os.path.exists(os.path.join(MNT, "gone")))
        self.assertFalse(os.path.exists(os.path.join(MNT, "gone-dir")))

    def test_a_lost_conflict_raises_conflict_with_the_path(self):
        write("balance", "100")
        other = OutsideWriter("balance", "50")
        with self.assertRaises(dbfs.Conflict) as cm:
            with dbfs.transaction(MNT):
                self.assertEqual(read("balance"), "100")
                write("audit", "saw 100")
                self.assertTrue(other.finish())
        self.assertEqual(cm.exception.detail, "/balance")
        self.assertFalse(os.path.exists(os.path.join(MNT, "audit")))
        self.assertEqual(read("balance"), "50")

    def test_run_transaction_retries_after_a_conflict(self):
        write("counter", "0")
        attempts = []
        other = OutsideWriter("counter", "10")

        def increment(step):
            attempts.append(1)
            n = int(read("counter"))
            write("counter", str(n + step))
            if len(attempts) == 1:
                self.assertTrue(other.finish())
            return n + step

        self.assertEqual(dbfs.run_transaction(MNT, increment, 1, attempts=3), 11)
        self.assertEqual(len(attempts), 2)
        self.assertEqual(read("counter"), "11")

        @dbfs.retry_on_conflict(MNT, attempts=2)
        def always_loses():
            spoiler = OutsideWriter("counter", "0")
            read("counter")
            write("other", "x")
            self.assertTrue(spoiler.finish())

        with self.assertRaises(dbfs.Conflict):
            always_loses()

    def test_errors(self):
        with self.assertRaises(dbfs.NotDbfs):
            dbfs.transaction("/")
        with self.assertRaises(ValueError):
            dbfs.transaction(MNT, isolation="chaos")
        tx = dbfs.Transaction(dbfs.find_mount(MNT + "/."), "987654321")
        with self.assertRaises(dbfs.NoTransaction):
            tx.commit()
        self.assertGreater(dbfs.stats(MNT)["commits"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
