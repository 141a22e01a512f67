"""Transactions on a DBFS mount for Python programs.

    import dbfs

    with dbfs.transaction("/mnt/dbfs") as tx:      # binds this process (and children)
        open("/mnt/dbfs/a", "w").write("1")
        open("/mnt/dbfs/b", "w").write("2")
    # committed here; an exception inside the block aborts instead and
    # propagates; a lost conflict raises dbfs.Conflict (nothing was changed).

    def move_money():
        ...
    dbfs.run_transaction("/mnt/dbfs", move_money, attempts=5)   # retried on conflict

    @dbfs.retry_on_conflict("/mnt/dbfs")
    def step(): ...

Pure Python over the mount's control channel (getxattr of "dbfs.*" names on
the mount's root; see dbfs(7)), the same one `dbfs tx` and libdbfs use. The
transaction is bound to the calling process exactly as `dbfs tx begin` binds
its shell: every thread of this process and every child started from now on
is inside it.
"""

import ctypes
import ctypes.util
import errno as _errno
import os

__all__ = [
    "Error", "Conflict", "NotDbfs", "NoTransaction", "Transaction", "transaction",
    "run_transaction", "retry_on_conflict", "find_mount", "status", "stats", "control",
]

_REPLY_BUFFER = 1 << 20
_MORE_MARKER = "\x01"


class Error(Exception):
    """A DBFS request failed. `errno` is set for system errors."""

    def __init__(self, message, errno=None):
        super().__init__(message)
        self.errno = errno


class Conflict(Error):
    """The transaction lost a conflict (or, with lock=True, was a deadlock
    victim) and was rolled back: nothing it did remains; run it again.
    `detail` is the path the conflict was on (or the deadlock's reason)."""

    def __init__(self, message, detail="", deadlock=False):
        super().__init__(message)
        self.detail = detail
        self.deadlock = deadlock


class NotDbfs(Error):
    """The path is not inside a DBFS mount."""


class NoTransaction(Error):
    """No such open transaction (it ended, timed out, or its root process died)."""


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t


def _request_once(mount, command):
    # One getxattr with a large buffer: a size probe (as os.getxattr makes)
    # would run the command twice.
    buf = ctypes.create_string_buffer(_REPLY_BUFFER)
    n = _libc.getxattr(os.fsencode(mount), command.encode(), buf, _REPLY_BUFFER)
    if n < 0:
        err = ctypes.get_errno()
        if err in (_errno.ENODATA, _errno.EOPNOTSUPP):
            raise NotDbfs(f"{mount} is not a DBFS mount (or the daemon does not know {command})",
                          err)
        if err == _errno.ENOENT:
            raise NoTransaction(f"{command}: no such transaction or process", err)
        raise Error(f"{mount}: {command}: {os.strerror(err)}", err)
    return buf.raw[:n].decode("utf-8", "surrogateescape")


def control(mount, command):
    """A raw control-channel request, e.g. control(mnt, "dbfs.stats")."""
    reply = _request_once(mount, command)
    out = []
    while reply.startswith(_MORE_MARKER):
        token, _, page = reply[1:].partition("\n")
        out.append(page)
        reply = _request_once(mount, "dbfs.more:" + token)
    out.append(reply)
    return "".join(out)


def _unescape_mountinfo(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and all(c in "01234567" for c in s[i + 1:i + 4]):
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def find_mount(path="."):
    """The mount point of the DBFS mount containing `path`."""
    where = os.path.realpath(path)
    best = ""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            head, sep, tail = line.partition(" - ")
            if not sep or tail.split()[0] != "fuse.dbfs":
                continue
            mnt = _unescape_mountinfo(head.split()[4])
            prefix = mnt if mnt == "/" else mnt + "/"
            if (where == mnt or where.startswith(prefix)) and len(mnt) > len(best):
                best = mnt
    if not best:
        raise NotDbfs(f"{path} is not inside a DBFS mount")
    return best


def _escape_field(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ch in ":\x7f":
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


class Transaction:
    """An explicit transaction; use dbfs.transaction() to make one."""

    def __init__(self, mount, tx_id, durable=False):
        self.mount = mount
        self.id = tx_id
        self.durable = durable  # what leaving a `with` block commits with
        self.csn = None  # the commit's CSN, once committed
        self.open = True

    @classmethod
    def begin(cls, path=".", isolation="serializable", lock=False, pid=None, command=None):
        if isolation not in ("serializable", "snapshot"):
            raise ValueError("isolation must be 'serializable' or 'snapshot'")
        mount = find_mount(path)
        c = f"dbfs.tx.begin:{pid or os.getpid()}:{isolation}" + (":lock" if lock else "")
        if command:
            c += ":cmd=" + _escape_field(command[:120])
        return cls(mount, control(mount, c).strip())

    def _end(self, command):
        self.open = False
        reply = control(self.mount, command)
        if reply.startswith("ok"):
            return reply[3:].strip()
        if reply.startswith("conflict "):
            raise Conflict(f"transaction {self.id} rolled back: conflict on {reply[9:]}",
                           reply[9:])
        if reply.startswith("deadlock "):
            raise Conflict(f"transaction {self.id} rolled back: {reply[9:]}", reply[9:],
                           deadlock=True)
        raise Error(f"unexpected reply from the daemon: {reply!r}")

    def commit(self, durable=False):
        """Commits; raises Conflict if the transaction lost (rolled back)."""
        self.csn = self._end(f"dbfs.tx.commit:{self.id}" + (":durable" if durable else ""))
        return self.csn

    def abort(self):
        """Rolls back (also fine after a deadlock already rolled it back)."""
        try:
            self._end(f"dbfs.tx.abort:{self.id}")
        except Conflict:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.open:
            return False
        if exc_type is None:
            self.commit(durable=self.durable)
        else:
            self.abort()
        return False


def transaction(path=".", isolation="serializable", lock=False, durable=False):
    """`with dbfs.transaction(mount) as tx:` — commit on leaving the block,
    abort on an exception. Raises Conflict when the commit loses."""
    tx = Transaction.begin(path, isolation=isolation, lock=lock)
    tx.durable = durable
    return tx


def run_transaction(path, fn, *args, attempts=5, isolation="serializable", lock=False,
                    durable=False, **kwargs):
    """Runs fn(*args, **kwargs) in a transaction and commits; runs it again
    after a conflict, up to `attempts` times in all. Returns fn's result.
    The last Conflict propagates when every attempt lost."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction(path, isolation=isolation, lock=lock, durable=durable):
                result = fn(*args, **kwargs)
            return result
        except Conflict:
            if attempt == attempts:
                raise
    raise ValueError("attempts must be at least 1")


def retry_on_conflict(path, attempts=5, **options):
    """Decorator: the function runs as a transaction, retried on conflict."""
    def wrap(fn):
        def run(*args, **kwargs):
            return run_transaction(path, fn, *args, attempts=attempts, **options, **kwargs)
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        return run
    return wrap


def status(path="."):
    """The open transactions, one line each (as `dbfs tx status`)."""
    return control(find_mount(path), "dbfs.tx.status")


def stats(path="."):
    """The daemon's counters as a dict (name -> int)."""
    out = {}
    for line in control(find_mount(path), "dbfs.stats").splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[name] = int(value)
    return out
