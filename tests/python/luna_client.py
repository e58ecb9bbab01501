#!/usr/bin/env python3
"""A small luna wire-protocol client, written only from docs/protocol.md.

Uses the standard library and the `msgpack` package (PyPI) and nothing else.
It can be used as a library (frame encoding and decoding, connect, send a
call, read the next frame) and as a test:

    python3 tests/python/luna_client.py HOST PORT
    LUNA_SECRET=... python3 tests/python/luna_client.py HOST PORT

talks to a luna echo service (see tests/python_client.rs) that answers every
message `msg, ...` with a message `"reply:" .. msg, ...` on the same stream,
and that handles `register, service_id` by routing that service id to the
calling stream (mgr.route). It checks every reply exactly, including int vs
float and str vs bytes, and exits 0 on success, 1 with a message on the first
mismatch.

With LUNA_SECRET set in the environment (never on the command line), every
connection first runs the cluster-secret handshake of docs/protocol.md
section 10 (standard library: hmac, hashlib, os.urandom), and the test also
checks that luna refuses a wrong secret and a client that skips the handshake.
"""

import hashlib
import hmac
import math
import os
import socket
import struct
import sys

import msgpack

# ---------------------------------------------------------------- constants

PREFIX_LEN = 4  # the body length, big-endian u32
MAX_HEADER_LEN = 32  # a body may exceed its payload by at most this many bytes
DEFAULT_PACKAGE_SIZE = 16 << 20  # luna's default largest payload

KIND_CALL = 1
KIND_FORWARD = 2
KIND_DELIVER = 3
KIND_FORWARD_ERROR = 4
KIND_CANCEL = 5
KIND_HELLO = 7
KIND_PROOF = 8
KIND_AUTH_FAILED = 9
KIND_NAMES = {1: "call", 2: "forward", 3: "deliver", 4: "forward-error", 5: "cancel"}

# The cluster-secret handshake (docs/protocol.md section 10).
AUTH_VERSION = 1
ROLE_CONNECTOR = 1
ROLE_ACCEPTOR = 2
NONCE_LEN = 32
AUTH_LABEL = b"luna-auth-v1"

MODE_TARGET = 1
MODE_MASTER = 2
MODE_RANDOM = 3
MODE_BROADCAST = 4
MODE_HASH = 5
MODE_NAMES = {1: "target", 2: "master", 3: "random", 4: "broadcast", 5: "hash"}

FLAG_REPLY = 1

FORWARD_ERRORS = {1: "no-route", 2: "send-buffer-full", 3: "connection-lost"}

U64 = (1 << 64) - 1


class ProtocolError(Exception):
    """The peer sent something that is not a luna frame, or closed early."""


class AuthError(ProtocolError):
    """The secret handshake failed: luna refused us, or its proof is wrong."""


# ----------------------------------------------------- payload (MessagePack)


def pack_message(args, single_float=False):
    """The payload of a message: ONE MessagePack array of the arguments.

    bytes go out as `bin`, str as `str` (use_bin_type=True). luna reads both
    as Lua strings. single_float=True writes floats as float32 (luna accepts
    them and answers with float64)."""
    return msgpack.packb(list(args), use_bin_type=True, use_single_float=single_float)


def unpack_message(payload):
    """The argument list of a payload. luna sends `str` for strings that are
    valid UTF-8 and `bin` (-> bytes) for the others; map keys may be ints,
    floats, bools or bytes, hence strict_map_key=False."""
    args = msgpack.unpackb(payload, raw=False, strict_map_key=False, use_list=True)
    if not isinstance(args, list):
        raise ProtocolError("payload is not an array: %r" % (args,))
    return args


# ------------------------------------------------------------------- frames


def encode_frame(kind, rest):
    """prefix (u32 BE body length) + body (kind byte + rest)."""
    body = bytes([kind]) + rest
    return struct.pack(">I", len(body)) + body


def encode_call(*args):
    """A Call frame: luna runs stream.on_call(args[0], args[1], ...)."""
    return encode_frame(KIND_CALL, pack_message(args))


def encode_route(mode, target, key=0, session=0, reply=False):
    """The route header of Forward and ForwardError frames."""
    header = struct.pack(">BBII", mode, FLAG_REPLY if reply else 0, session, target)
    if mode == MODE_HASH:
        header += struct.pack(">Q", key & U64)
    return header


def encode_forward(mode, target, payload, key=0, session=0, reply=False):
    """A Forward frame around an already packed payload."""
    return encode_frame(KIND_FORWARD, encode_route(mode, target, key, session, reply) + payload)


def encode_hello(role, nonce):
    """A Hello frame: version 1, our role, a fresh 32-byte nonce."""
    return encode_frame(KIND_HELLO, bytes([AUTH_VERSION, role]) + nonce)


def auth_tag(secret, role, connector_nonce, acceptor_nonce):
    """HMAC-SHA256(secret, "luna-auth-v1" || role || connector nonce || acceptor nonce)."""
    message = AUTH_LABEL + bytes([role]) + connector_nonce + acceptor_nonce
    return hmac.new(secret, message, hashlib.sha256).digest()


def encode_proof(tag):
    """A Proof frame."""
    return encode_frame(KIND_PROOF, tag)


def fnv1a64(data):
    """The hash luna uses for string keys of forward_hash."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & U64
    return value


def hash_key(key):
    """The u64 key of a Hash forward: FNV-1a of a string's bytes (UTF-8 for
    str), an integer's two's-complement bits."""
    if isinstance(key, str):
        return fnv1a64(key.encode("utf-8"))
    if isinstance(key, bytes):
        return fnv1a64(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return key & U64
    raise TypeError("a hash key is an integer or a string")


def service_id(group, index):
    """group << 16 | index; group 1..255, index 1..65535."""
    return group << 16 | index


def parse_route(rest):
    """(route dict, remaining bytes) from the bytes after the kind (and error code)."""
    if len(rest) < 10:
        raise ProtocolError("short route header")
    mode, flags, session, target = struct.unpack(">BBII", rest[:10])
    route = {"mode": MODE_NAMES.get(mode, mode), "reply": bool(flags & FLAG_REPLY),
             "session": session, "target": target, "key": 0}
    if mode == MODE_HASH:
        if len(rest) < 18:
            raise ProtocolError("short route header")
        (route["key"],) = struct.unpack(">Q", rest[10:18])
        return route, rest[18:]
    return route, rest[10:]


def decode_body(body):
    """A frame body as a dict: kind name, plus payload/route/error/session."""
    if not body:
        raise ProtocolError("empty frame")
    kind, rest = body[0], body[1:]
    if kind in (KIND_CALL, KIND_DELIVER):
        return {"kind": KIND_NAMES[kind], "payload": rest}
    if kind == KIND_FORWARD:
        route, payload = parse_route(rest)
        return {"kind": "forward", "route": route, "payload": payload}
    if kind == KIND_FORWARD_ERROR:
        if not rest:
            raise ProtocolError("short header")
        route, payload = parse_route(rest[1:])
        return {"kind": "forward-error", "error": FORWARD_ERRORS.get(rest[0], rest[0]),
                "route": route, "payload": payload}
    if kind == KIND_CANCEL:
        if len(rest) < 4:
            raise ProtocolError("short header")
        return {"kind": "cancel", "session": struct.unpack(">I", rest[:4])[0]}
    raise ProtocolError("unknown frame kind %d" % kind)


# --------------------------------------------------------------- connection


class Connection:
    """One TCP connection to a luna process."""

    def __init__(self, host, port, timeout=10.0, max_payload=DEFAULT_PACKAGE_SIZE, secret=None):
        """secret (bytes): run the cluster-secret handshake first."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.max_payload = max_payload
        if secret is not None:
            self.authenticate(secret)

    def authenticate(self, secret):
        """The connector's side of the handshake: our Hello, luna's Hello,
        our Proof, luna's Proof (checked in constant time). Raises AuthError."""
        nonce = os.urandom(NONCE_LEN)
        self.send_raw(encode_hello(ROLE_CONNECTOR, nonce))
        body = self.read_body()
        if body[0] == KIND_AUTH_FAILED:
            raise AuthError("luna refused us: %s" % body[1:].decode("utf-8", "replace"))
        if body[0] != KIND_HELLO or len(body) != 3 + NONCE_LEN or body[1] != AUTH_VERSION \
                or body[2] != ROLE_ACCEPTOR:
            raise AuthError("expected luna's Hello, got %s" % body.hex())
        peer_nonce = body[3:]
        self.send_raw(encode_proof(auth_tag(secret, ROLE_CONNECTOR, nonce, peer_nonce)))
        body = self.read_body()
        if body[0] == KIND_AUTH_FAILED:
            raise AuthError("luna refused our proof: %s" % body[1:].decode("utf-8", "replace"))
        if body[0] != KIND_PROOF or len(body) != 33:
            raise AuthError("expected luna's Proof, got %s" % body.hex())
        if not hmac.compare_digest(body[1:], auth_tag(secret, ROLE_ACCEPTOR, nonce, peer_nonce)):
            raise AuthError("luna's proof is wrong (a different secret?)")

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        """Sends one Call frame (a one-way message, like luna's stream.call)."""
        self.sock.sendall(encode_call(*args))

    def _read_exact(self, count):
        chunks = []
        while count:
            chunk = self.sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ProtocolError("connection closed by luna")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def read_body(self):
        """The body of the next frame: read 4 bytes, then that many."""
        (length,) = struct.unpack(">I", self._read_exact(PREFIX_LEN))
        if length == 0 or length > self.max_payload + MAX_HEADER_LEN:
            raise ProtocolError("bad frame length %d" % length)
        return self._read_exact(length)

    def read_frame(self):
        return decode_body(self.read_body())

    def read_call_payload(self):
        """The raw payload of the next frame, which must be a Call."""
        frame = self.read_frame()
        if frame["kind"] != "call":
            raise ProtocolError("expected a call frame, got %r" % (frame,))
        return frame["payload"]

    def read_call(self):
        """The argument list of the next frame, which must be a Call."""
        return unpack_message(self.read_call_payload())

    def wait_closed(self):
        """True once luna closes the connection (EOF), False on timeout."""
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


# ------------------------------------------------------------ exact checks


class Mismatch(Exception):
    pass


def kind_of(value):
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    for python_type, name in ((int, "int"), (float, "float"), (str, "str"), (bytes, "bytes"),
                              (list, "list"), (dict, "dict")):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def same_key(a, b):
    return kind_of(a) == kind_of(b) and a == b


def check_same(expected, actual, path="reply"):
    """Raises Mismatch unless actual equals expected with the same types
    everywhere (1 is not 1.0, True is not 1, "a" is not b"a")."""
    ek, ak = kind_of(expected), kind_of(actual)
    if ek != ak:
        raise Mismatch("%s: expected %s %s, got %s %s" % (path, ek, short(expected), ak, short(actual)))
    if ek == "float":
        if math.isnan(expected) and math.isnan(actual):
            return
        if struct.pack(">d", expected) != struct.pack(">d", actual):
            raise Mismatch("%s: expected float %r, got %r" % (path, expected, actual))
    elif ek == "list":
        if len(expected) != len(actual):
            raise Mismatch("%s: expected %d elements, got %d: %s" % (path, len(expected), len(actual), short(actual)))
        for at, (e, a) in enumerate(zip(expected, actual)):
            check_same(e, a, "%s[%d]" % (path, at))
    elif ek == "dict":
        if len(expected) != len(actual):
            raise Mismatch("%s: expected %d entries, got %d: %s" % (path, len(expected), len(actual), short(actual)))
        for key, value in expected.items():
            match = [k for k in actual if same_key(k, key)]
            if not match:
                raise Mismatch("%s: key %s (%s) missing in %s" % (path, short(key), kind_of(key), short(actual)))
            check_same(value, actual[match[0]], "%s[%r]" % (path, key))
    elif expected != actual:
        raise Mismatch("%s: expected %s, got %s" % (path, short(expected), short(actual)))


def short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


# ---------------------------------------------------------------- the test

# docs/protocol.md, "Worked examples": the Call frame of ("echo", 1, "hello")
# and the Forward frame of forward_hash(2, "a", "echo", 1, "hello").
DOC_CALL_FRAME = bytes.fromhex("0000000e 01 93 a4 6563686f 01 a5 68656c6c6f".replace(" ", ""))
DOC_FORWARD_HASH_FRAME = bytes.fromhex(
    "00000020 02 05 00 00000000 00000002 af63dc4c8601ec8c 93 a4 6563686f 01 a5 68656c6c6f".replace(" ", ""))


def nested_lists(depth):
    value = [depth]
    for level in range(depth - 1, 0, -1):
        value = [level, value]
    return value


UNICODE = "héllo wörld ✓ Ωμέγα 日本語 🎉 \u0000 end"
BIG_TEXT = ("luna✓ 0123456789 " * 60000)[: 1 << 20]  # ~1 MiB of UTF-8 text
BIG_BYTES = bytes(range(256)) * 4096  # exactly 1 MiB, not UTF-8
NESTED = {
    "name": "luna",
    "list": [1, 2.5, "three", [4, [5, {"six": 6}]], True, False],
    "int keys": {1: "one", 2: "two", 10: "ten"},
    "zero and negative keys": {0: "zero", -1: "minus one", 1: "one"},
    "float key": {0.5: "half"},
    "flags": {"on": True, "off": False},
    "text": UNICODE,
    "blob": b"\xff\xfe\x00\x80",
}

# (what is sent after the message name, what must come back after "reply:<name>")
ROUND_TRIPS = [
    ("scalars", [None, True, False, 0, 1, -1], None),
    ("integer edges", [127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 63 - 1,
                       -32, -33, -128, -129, -32768, -32769, -2 ** 31, -2 ** 31 - 1, -2 ** 63], None),
    # Lua integers are i64: a uint64 above i64::MAX wraps to its two's complement.
    ("uint64 wraps", [2 ** 63, 2 ** 64 - 1], [-2 ** 63, -1]),
    ("floats", [1.0, -0.0, 0.5, 2.0 ** 53, 1e300, -1e-300, float("inf"), float("-inf"), float("nan"),
                3.141592653589793], None),
    ("nil in the argument list", [None, 1, None, "x", None, None], None),
    ("only nil", [None], None),
    ("strings", ["", "plain ascii", UNICODE, "a\x00b"], None),
    # bin that is valid UTF-8 comes back as str; any other bytes come back as bin.
    ("bytes", [b"\xff\xfe\x00not utf-8\x80", b"valid utf-8 \xe2\x9c\x93", b""],
     [b"\xff\xfe\x00not utf-8\x80", "valid utf-8 \u2713", ""]),
    ("nested", [NESTED, [NESTED, [NESTED]]], None),
    ("deepest nesting (32 tables)", [nested_lists(32)], None),
    # The empty table is written as a map with 0 entries.
    ("empty containers", [[], {}, {"inner": []}, [[1], []]], [{}, {}, {"inner": {}}, [[1], {}]]),
    # A Lua table cannot hold a nil value: the entry is gone.
    ("nil map value", [{"a": None, "b": 1}], [{"b": 1}]),
    # A map whose keys are exactly 1..n is a Lua sequence: it comes back as an array.
    ("map with keys 1..n", [{1: "a", 2: "b", 3: "c"}], [["a", "b", "c"]]),
    # Lua turns an integral float key into an integer key.
    ("float keys", [{2.0: "two", 0.5: "half"}], [{2: "two", 0.5: "half"}]),
    # nil inside a nested array leaves a hole: [1, nil, 3] has rawlen 3 but 2 pairs,
    # so it is written as a map; a trailing nil just shortens the sequence.
    ("nil inside nested arrays", [[1, None, 3], [1, None]], [{1: 1, 3: 3}, [1]]),
    # Keys 1, 2, 4 and "x": four pairs and a border of 4, but not a sequence.
    ("holed map with an extra key", [{1: "a", 2: "b", 4: "d", "x": 1}], None),
    ("big text", [BIG_TEXT], None),
    ("big bytes", [BIG_BYTES], None),
]


def expect_reply(conn, name, expected_args):
    reply = conn.read_call()
    check_same(["reply:" + name] + list(expected_args), reply, "reply to %r" % name)


def check_round_trips(conn):
    for name, sent, back in ROUND_TRIPS:
        conn.call(name, *sent)
        expect_reply(conn, name, sent if back is None else back)
        print("ok   %s" % name)


def check_exact_bytes(conn):
    """luna writes the smallest MessagePack encodings, floats as float64: for
    values without maps its reply payload equals what msgpack-python packs."""
    args = [1, -1, 200, 70000, 2 ** 40, -2 ** 40, 1.0, "hello", "x" * 40, b"\xff", None, True,
            [1, [2, 3]], "y" * 70000]
    conn.call("bytes", *args)
    payload = conn.read_call_payload()
    wanted = pack_message(["reply:bytes"] + args)
    if payload != wanted:
        raise Mismatch("reply payload bytes differ:\n  expected %s\n  got      %s"
                       % (short(wanted.hex()), short(payload.hex())))
    # The worked example of docs/protocol.md, and luna's answer to it.
    if encode_call("echo", 1, "hello") != DOC_CALL_FRAME:
        raise Mismatch("encode_call disagrees with the documented example")
    conn.send_raw(DOC_CALL_FRAME)
    payload = conn.read_call_payload()
    if payload != bytes.fromhex("93 aa 7265706c793a6563686f 01 a5 68656c6c6f".replace(" ", "")):
        raise Mismatch("reply to the documented example: %s" % payload.hex())
    print("ok   exact bytes")


def check_float32(conn):
    """float32 is accepted and arrives as a Lua float; luna answers with float64."""
    payload = pack_message(["f32", 1.5, 1.0, -0.25], single_float=True)
    if b"\xca" not in payload:
        raise Mismatch("msgpack did not write float32")
    conn.send_raw(encode_frame(KIND_CALL, payload))
    payload = conn.read_call_payload()
    if payload != pack_message(["reply:f32", 1.5, 1.0, -0.25]):
        raise Mismatch("float32 reply: %s" % payload.hex())
    print("ok   float32 in, float64 out")


def check_argument_limit(conn):
    """8000 values in one message is the most luna accepts."""
    args = list(range(7999))
    conn.call("many", *args)
    expect_reply(conn, "many", args)
    print("ok   8000 arguments")


def check_pipelining(conn):
    """Many frames in one write; replies come back in order."""
    batch = b"".join(encode_call("seq", n, "x" * (n % 50)) for n in range(200))
    conn.send_raw(batch)
    for n in range(200):
        expect_reply(conn, "seq", [n, "x" * (n % 50)])
    # A frame split across many writes is reassembled.
    frame = encode_call("split", UNICODE, list(range(100)))
    for at in range(0, len(frame), 7):
        conn.send_raw(frame[at:at + 7])
    expect_reply(conn, "split", [UNICODE, list(range(100))])
    print("ok   pipelining and split frames")


def check_forwarding(host, port, conn, secret):
    """Forward frames: the luna process routes them with its route table."""
    nodes = [Connection(host, port, secret=secret), Connection(host, port, secret=secret)]
    ids = [service_id(2, 1), service_id(2, 2)]
    try:
        for node, sid in zip(nodes, ids):
            node.call("register", sid)
            check_same(["registered", sid], node.read_call(), "register reply")

        # Target: the payload is delivered byte for byte as a Deliver frame.
        payload = pack_message(["to 2.2", {"k": [1, 2.0]}, None, b"\xff"])
        conn.send_raw(encode_forward(MODE_TARGET, ids[1], payload))
        frame = nodes[1].read_frame()
        if frame["kind"] != "deliver" or frame["payload"] != payload:
            raise Mismatch("forward target: expected deliver of %s, got %r" % (payload.hex(), frame))

        # Hash: key % 2 over the nodes sorted by service id.
        if DOC_FORWARD_HASH_FRAME != encode_forward(MODE_HASH, 2, pack_message(["echo", 1, "hello"]),
                                                    key=hash_key("a")):
            raise Mismatch("encode_forward disagrees with the documented example")
        keys = ["a", "alpha", "beta", "gamma", "player:42", "", UNICODE, 0, 1, 7, -1, -2, 2 ** 40 + 1]
        for key in keys:
            payload = pack_message(["hashed", key])
            conn.send_raw(encode_forward(MODE_HASH, 2, payload, key=hash_key(key)))
            node = nodes[hash_key(key) % len(nodes)]
            frame = node.read_frame()
            if frame["kind"] != "deliver" or frame["payload"] != payload:
                raise Mismatch("forward hash %r: expected deliver of %s, got %r" % (key, payload.hex(), frame))
        # Broadcast reaches both; it also proves no hashed message went to the wrong node.
        payload = pack_message(["everyone"])
        conn.send_raw(encode_forward(MODE_BROADCAST, 2, payload))
        for node in nodes:
            frame = node.read_frame()
            if frame["kind"] != "deliver" or frame["payload"] != payload:
                raise Mismatch("forward broadcast: expected deliver of %s, got %r" % (payload.hex(), frame))

        # Master with no explicit master: the first node in id order.
        payload = pack_message(["to the master"])
        conn.send_raw(encode_forward(MODE_MASTER, 2, payload))
        frame = nodes[0].read_frame()
        if frame["kind"] != "deliver" or frame["payload"] != payload:
            raise Mismatch("forward master: got %r" % (frame,))

        # An empty group: the sender gets a ForwardError with its route and payload back.
        payload = pack_message(["nobody", 1])
        conn.send_raw(encode_forward(MODE_HASH, 3, payload, key=hash_key("k"), session=9))
        frame = conn.read_frame()
        wanted = {"kind": "forward-error", "error": "no-route", "payload": payload,
                  "route": {"mode": "hash", "reply": False, "session": 9, "target": 3, "key": hash_key("k")}}
        if frame != wanted:
            raise Mismatch("forward to an empty group: expected %r, got %r" % (wanted, frame))
        print("ok   forward target, hash, broadcast, master, no-route")
    finally:
        for node in nodes:
            node.close()


def check_garbage_elsewhere(host, port, conn, secret):
    """A connection that sends a malformed frame is closed; the others go on."""
    bad = Connection(host, port, timeout=5.0, secret=secret)
    try:
        bad.send_raw(b"\x00\x00\x00\x05\x01\xc1\xc1\xc1\xc1")
        if not bad.wait_closed():
            raise Mismatch("luna did not close the connection that sent a malformed frame")
    finally:
        bad.close()
    conn.call("still there?", 1, 2.0)
    expect_reply(conn, "still there?", [1, 2.0])
    print("ok   garbage on another connection")


def frames_until_closed(conn):
    """The kinds of the frames luna sends until it closes the connection."""
    kinds = []
    while True:
        try:
            kinds.append(conn.read_body()[0])
        except ProtocolError:
            return kinds
        except (socket.timeout, TimeoutError):
            raise Mismatch("luna did not close the connection; frames so far: %r" % kinds)
        except ConnectionResetError:
            return kinds


def check_refusals(host, port, secret, conn):
    """A wrong secret and a client that skips the handshake are refused and
    closed; the authenticated connection goes on."""
    wrong = Connection(host, port, timeout=5.0)
    try:
        try:
            wrong.authenticate(secret + b"-but-wrong")
            raise Mismatch("luna accepted a wrong secret")
        except AuthError as error:
            if "proof is wrong" not in str(error) and "refused" not in str(error):
                raise
        # luna checks our proof too: it says why, then closes.
        kinds = frames_until_closed(wrong)
        if kinds not in ([], [KIND_AUTH_FAILED]):
            raise Mismatch("after a wrong proof luna sent frames of kinds %r" % kinds)
    finally:
        wrong.close()

    plain = Connection(host, port, timeout=5.0)
    try:
        plain.call("register", service_id(2, 9))
        plain.call("echo", "without a handshake")
        # luna's Hello, then its refusal, and no answer at all.
        kinds = frames_until_closed(plain)
        if kinds != [KIND_HELLO, KIND_AUTH_FAILED]:
            raise Mismatch("a client without the handshake got frames of kinds %r" % kinds)
    finally:
        plain.close()
    conn.call("after the refusals", 1)
    expect_reply(conn, "after the refusals", [1])
    print("ok   wrong secret and no handshake refused")


def main(argv):
    if len(argv) != 3:
        print("usage: [LUNA_SECRET=...] %s HOST PORT" % argv[0], file=sys.stderr)
        return 2
    host, port = argv[1], int(argv[2])
    secret = os.environ.get("LUNA_SECRET")
    secret = secret.encode("utf-8") if secret else None
    try:
        conn = Connection(host, port, secret=secret)
        if secret is not None:
            print("ok   secret handshake")
        check_exact_bytes(conn)
        check_round_trips(conn)
        check_float32(conn)
        check_argument_limit(conn)
        check_pipelining(conn)
        check_forwarding(host, port, conn, secret)
        check_garbage_elsewhere(host, port, conn, secret)
        if secret is not None:
            check_refusals(host, port, secret, conn)
        conn.close()
    except Mismatch as error:
        print("MISMATCH: %s" % error, file=sys.stderr)
        return 1
    except (ProtocolError, OSError) as error:
        print("FAILED: %s: %s" % (type(error).__name__, error), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
