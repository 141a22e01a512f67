#!/usr/bin/env python3
"""Raw-frame probe of the Elle protocol server (elle/protocol.h), used by
tests/integration/elle_test.sh. Usage: protocol_probe.py VOLUME MOUNT PORT.
Exits non-zero (with a message) on the first failed expectation."""
import os
import socket
import struct
import sys
import time

# The first argument is the mount's runtime directory (elle.sock, elle.token).
VOL, MNT, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
SOCK = os.path.join(VOL, "elle.sock")

BEGIN, COMMIT, ABORT, WRITE, READ, APPEND, AUTH = 1, 2, 3, 4, 5, 6, 7
OK, CONFLICT, NOTFOUND, BAD, DENIED, ERROR = 0, 1, 2, 3, 4, 5


def fail(msg):
    print("probe FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def frame(typ, tx=0, payload=b""):
    return struct.pack(">IBQ", 9 + len(payload), typ, tx) + payload


def path_payload(path, data=b""):
    p = path.encode()
    return struct.pack(">H", len(p)) + p + data


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_response(s):
    """(status, tx, msg, data), or None if the server closed the connection."""
    try:
        head = recv_exact(s, 4)
        if head is None:
            return None
        (n,) = struct.unpack(">I", head)
        body = recv_exact(s, n)
    except (ConnectionResetError, socket.timeout):
        return None
    if body is None:
        return None
    typ, tx = struct.unpack(">BQ", body[:9])
    if typ != 0x80:
        fail("response type %#x" % typ)
    status = body[9]
    (mlen,) = struct.unpack(">H", body[10:12])
    return status, tx, body[12:12 + mlen].decode(errors="replace"), body[12 + mlen:]


def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(SOCK)
    return s


def call(s, typ, tx=0, payload=b""):
    s.sendall(frame(typ, tx, payload))
    r = recv_response(s)
    if r is None:
        fail("connection closed on request type %d" % typ)
    return r


def expect(r, status, what):
    if r[0] != status:
        fail("%s: status %d (%s), expected %d" % (what, r[0], r[2], status))
    return r


def error_or_closed(s, what):
    r = recv_response(s)
    if r is not None and r[0] == OK:
        fail(what + ": answered ok")


def alive(what):
    s = unix()
    r = expect(call(s, READ, 0, path_payload("probe/a")), OK, "alive after " + what)
    s.close()
    return r


# --- basic transaction round trip
s = unix()
os.makedirs(os.path.join(MNT, "probe"), exist_ok=True)
tx = expect(call(s, BEGIN, 0, b"\x00"), OK, "begin")[1]
if tx == 0:
    fail("begin returned TX_ID 0")
expect(call(s, WRITE, tx, path_payload("probe/a", b"hello ")), OK, "write")
expect(call(s, APPEND, tx, path_payload("probe/a", b"world")), OK, "append")
r = expect(call(s, READ, tx, path_payload("probe/a")), OK, "read own write")
if r[3] != b"hello world":
    fail("read in tx: %r" % r[3])
if os.path.exists(os.path.join(MNT, "probe/a")):
    fail("uncommitted file visible through the mount")
r = expect(call(s, COMMIT, tx, b"\x00"), OK, "commit")
with open(os.path.join(MNT, "probe/a"), "rb") as f:
    if f.read() != b"hello world":
        fail("committed content not visible through the mount")
expect(call(s, READ, 0, path_payload("probe/missing")), NOTFOUND, "read missing")
expect(call(s, WRITE, 0, path_payload("nodir/x", b"1")), NOTFOUND, "write without parent")

# --- paths that escape or are malformed
for bad in ["../x", "/etc/passwd", "probe//a", "probe/../a", "", "probe/./a", "probe/a/"]:
    expect(call(s, READ, 0, path_payload(bad)), BAD, "path %r" % bad)
expect(call(s, READ, 0, b"\x00\x10ab"), BAD, "path length beyond payload")

# --- unknown type: error, connection stays usable
expect(call(s, 0x42, 0, b"zz"), BAD, "unknown type")
expect(call(s, READ, 0, path_payload("probe/a")), OK, "after unknown type")

# --- foreign and unknown TX_IDs
other = unix()
tx2 = expect(call(other, BEGIN, 0, b"\x00"), OK, "begin on other")[1]
expect(call(s, COMMIT, tx2, b"\x00"), BAD, "commit of a foreign TX_ID")
expect(call(s, WRITE, tx2, path_payload("probe/foreign", b"x")), BAD, "write in a foreign TX_ID")
expect(call(s, ABORT, 987654321, b""), BAD, "abort of an unknown TX_ID")
expect(call(other, ABORT, tx2, b""), OK, "abort own")
other.close()
if os.path.exists(os.path.join(MNT, "probe/foreign")):
    fail("write with a foreign TX_ID took effect")

# --- too many open transactions per connection
many = unix()
for i in range(64):
    expect(call(many, BEGIN, 0, b"\x01"), OK, "begin %d" % i)
r = call(many, BEGIN, 0, b"\x00")
if r[0] == OK:
    fail("65th open transaction accepted")
many.close()

# --- a dropped connection aborts its open transactions
d = unix()
txd = expect(call(d, BEGIN, 0, b"\x00"), OK, "begin (drop)")[1]
expect(call(d, WRITE, txd, path_payload("probe/dropped", b"x")), OK, "write (drop)")
d.close()
alive("drop")
if os.path.exists(os.path.join(MNT, "probe/dropped")):
    fail("write of a dropped connection's transaction is visible")

# --- oversize frame: error or close
o = unix()
o.sendall(struct.pack(">IBQ", 0x7FFFFFF0, READ, 0))
error_or_closed(o, "oversize frame")
o.close()
alive("oversize frame")
# --- undersize length
o = unix()
o.sendall(struct.pack(">I", 3) + b"abc")
error_or_closed(o, "undersize frame")
o.close()
alive("undersize frame")
# --- truncated frame, then hang up
t = unix()
t.sendall(struct.pack(">IBQ", 100, WRITE, 0) + b"\x00\x05pro")
t.close()
alive("truncated frame")
# --- malformed begin payload
expect(call(s, BEGIN, 0, b""), BAD, "begin without isolation")
s.close()

# --- TCP: AUTH first
tok = open(os.path.join(VOL, "elle.token")).read().strip()
c = socket.create_connection(("127.0.0.1", PORT), timeout=20)
c.sendall(frame(READ, 0, path_payload("probe/a")))
r = recv_response(c)
if r is not None and r[0] != DENIED:
    fail("TCP request without AUTH: status %d" % r[0])
if recv_response(c) is not None:
    fail("TCP connection without AUTH stayed open")
c.close()
c = socket.create_connection(("127.0.0.1", PORT), timeout=20)
r = call(c, AUTH, 0, b"not-the-token")
if r[0] != DENIED:
    fail("bad token accepted")
c.close()
c = socket.create_connection(("127.0.0.1", PORT), timeout=20)
expect(call(c, AUTH, 0, tok.encode()), OK, "auth")
r = expect(call(c, READ, 0, path_payload("probe/a")), OK, "TCP read after auth")
if r[3] != b"hello world":
    fail("TCP read: %r" % r[3])
c.close()
alive("TCP")
# --- connection cap (512): the excess is refused, the daemon keeps serving
conns = []
for i in range(530):
    for attempt in range(100):  # the accept backlog may be full for a moment
        try:
            conns.append(unix())
            break
        except OSError:
            time.sleep(0.01)
served = refused = 0
for k in conns:
    try:
        k.sendall(frame(READ, 0, path_payload("probe/a")))
        r = recv_response(k)
    except OSError:
        r = None
    if r is not None and r[0] == OK:
        served += 1
    else:
        refused += 1
for k in conns:
    k.close()
if served > 512 or refused == 0:
    fail("connection cap: %d served, %d refused" % (served, refused))
deadline = time.time() + 20
while True:
    try:
        alive("connection cap")
        break
    except SystemExit:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
print("probe ok")
