"""Hostile and broken clients over raw sockets. After every attack the server
must still serve an ordinary client (assert_alive)."""

import random
import socket
import ssl
import threading
import time
import uuid

import pytest

import pstharness as h
from pstharness import RawClient, assert_alive

SENDER = "sender@client.test"

SLOW_TIMEOUT = 10
SLACK = 8  # seconds allowed beyond a timeout (ASan, loaded CI machines)

LIMITED_USERS = dict(h.DEFAULT_USERS, dave="dave-Secret-4", erin="erin-Secret-5",
                     frank="frank-Secret-6")


@pytest.fixture(scope="module")
def limited(make_module_server):
    """A server with small limits: 64 KiB messages, 5 recipients, 5 errors."""
    return make_module_server(overrides={"smtpd": {
        "message_size_limit": "64k",
        "max_recipients": "5",
        "max_errors": "5",
    }}, users=LIMITED_USERS, name="limited")


@pytest.fixture(scope="module")
def slow(make_module_server):
    """A server with the shortest timeouts the config allows (10 s)."""
    return make_module_server(overrides={"smtpd": {
        "command_timeout": str(SLOW_TIMEOUT),
        "data_timeout": str(SLOW_TIMEOUT),
    }}, name="slow")


def session(port, tls=False, ehlo=True):
    c = RawClient.connect(port, tls=tls)
    c.expect(220)
    if ehlo:
        c.ehlo()
    return c


def start_data(c, rcpts=("alice@localhost",), sender=SENDER):
    c.cmd("MAIL FROM:<%s>" % sender, expect=250)
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, expect=250)
    c.cmd("DATA", expect=354)


def closed_or_reply(c, timeout=10):
    """(code, lines) of the next reply, or (None, []) if the server hung up."""
    c.sock.settimeout(timeout)
    try:
        return c.reply()
    except (ConnectionError, ssl.SSLError, OSError):
        return None, []


# --------------------------------------------------------------------------
# Over-long lines


def test_overlong_command_line_500_552(server):
    with session(server.smtp_port) as c:
        code, lines = c.cmd(b"MAIL FROM:<" + b"a" * 3000 + b"@client.test>")
        assert code == 500 and lines[-1].startswith(b"500 5.5.2"), lines
        # Either the session goes on in a sane state, or the server hung up.
        code, lines = closed_or_reply_after(c, b"NOOP\r\n")
        assert code in (None, 250), lines
    assert_alive(server)


def closed_or_reply_after(c, data):
    try:
        c.send(data)
    except OSError:
        return None, []
    return closed_or_reply(c)


def test_overlong_line_at_exact_limit(server):
    """command_line_limit counts CRLF: 2048 bytes in all is not "too long", 2049 is."""
    with session(server.smtp_port) as c:
        base = b"NOOP "
        ok = base + b"x" * (2048 - len(base) - 2)
        code, lines = c.cmd(ok)
        assert not lines[-1].startswith(b"500 5.5.2"), lines
        code, lines = c.cmd(ok + b"y")
        assert code == 500 and lines[-1].startswith(b"500 5.5.2"), lines
        c.cmd("NOOP", expect=250)
    assert_alive(server)


def test_megabytes_without_newline(server):
    """8 MiB of 'A' with no line end: the server must answer 500 or hang up, not buffer forever."""
    c = session(server.smtp_port)
    errors = []

    def pump():
        try:
            chunk = b"A" * 65536
            for _ in range(128):
                c.sock.sendall(chunk)
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    code, lines = closed_or_reply(c, timeout=30)
    assert code in (None, 500, 421), lines
    t.join(60)
    c.close()
    assert_alive(server)


def test_long_data_line_is_not_silently_changed(server, token):
    """A 5000-byte body line: rejected with 5xx, or delivered exactly (never cut or wrapped)."""
    long_line = b"".join(b"%04d " % i for i in range(1000))
    msg = h.message(token, body=b"before\r\n" + long_line + b"\r\nafter\r\n")
    with session(server.smtp_port) as c:
        start_data(c)
        c.send(h.data_payload(msg))
        code, lines = c.reply()
        assert code == 250 or 500 <= code < 600, lines
        c.cmd("NOOP", expect=250)
    if code == 250:
        h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)
    else:
        server.assert_not_delivered("alice", token)
    assert_alive(server)


# --------------------------------------------------------------------------
# NUL bytes, bare CR / LF


@pytest.mark.parametrize("line", [
    b"EHLO client\0.test",
    b"MAIL FROM:<a\0b@client.test>",
    b"\0\0\0\0",
    b"NOOP\0",
])
def test_nul_in_command_rejected(server, line):
    with session(server.smtp_port) as c:
        code, lines = c.cmd(line)
        assert 500 <= code < 600, lines
    assert_alive(server)


def test_nul_in_rcpt_never_truncates_to_valid_user(server):
    with session(server.smtp_port) as c:
        c.cmd("MAIL FROM:<%s>" % SENDER, expect=250)
        code, lines = c.cmd(b"RCPT TO:<alice@localhost\0@other.example>")
        assert 500 <= code < 600, lines
        code, lines = c.cmd(b"RCPT TO:<alice\0evil@localhost>")
        assert 500 <= code < 600, lines


@pytest.mark.parametrize("name,body", [
    ("bare-lf", b"line one\nline two\r\n"),
    ("bare-cr", b"line one\rline two\r\n"),
    ("nul", b"line one\0 with a NUL\r\n"),
    ("lf-dot-lf", b"line\n.\nafter\r\n"),
    ("cr-dot-cr", b"line\r.\rafter\r\n"),
])
def test_bad_bytes_in_data_rejected_at_end(server, token, name, body):
    msg = h.message(token, body=body)
    with session(server.smtp_port) as c:
        start_data(c)
        c.send(msg + b"\r\n.\r\n")
        code, lines = c.reply()
        assert 500 <= code < 600, "%s accepted: %r" % (name, lines)
        c.cmd("NOOP", expect=250)
        c.cmd("QUIT", expect=221)
    server.assert_not_delivered("alice", token)
    assert_alive(server)


@pytest.mark.parametrize("end", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r",
                                 b"\r\n\x00.\r\n"])
def test_smtp_smuggling_variants(server, token, end):
    """A fake end of data followed by a second transaction must not deliver that transaction."""
    smuggled = "smuggled" + uuid.uuid4().hex
    first = h.message(token, body=b"innocent\r\n")
    evil = (b"MAIL FROM:<admin@postern.test>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n" +
            h.message(smuggled, sender="admin@postern.test", to="bob@localhost"))
    with session(server.smtp_port) as c:
        start_data(c)
        c.send(first.rstrip(b"\r\n") + end + evil + b"\r\n.\r\nQUIT\r\n")
        replies = []
        while True:
            code, lines = closed_or_reply(c, timeout=5)
            if code is None:
                break
            replies.append((code, lines))
        codes = [r[0] for r in replies]
        assert codes and 500 <= codes[0] < 600, "data with bare CR/LF/NUL got %r" % replies
        assert 354 not in codes, "smuggled DATA command was run: %r" % replies
    server.assert_not_delivered("bob", smuggled, wait=1.5)
    assert_alive(server)


# --------------------------------------------------------------------------
# Dot-stuffing, byte exact


DOT_BODIES = {
    "dots": b".\r\n..\r\n...\r\n. \r\n.\t\r\n.x\r\n..x\r\nend\r\n",
    "first-line-dot": None,  # filled below: the DATA starts with a dot line
    "dot-then-space-lines": b"a\r\n .\r\n.. .\r\n\r\n.\r\n\r\n",
    "trailing-dot-line": b"text\r\n.",
}


@pytest.mark.parametrize("name", ["dots", "dot-then-space-lines", "trailing-dot-line"])
def test_dot_stuffing_byte_exact(server, token, name):
    msg = h.message(token, body=DOT_BODIES[name])
    with session(server.smtp_port) as c:
        start_data(c)
        c.send(h.data_payload(msg))
        c.expect(250)
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_data_starting_with_dot(server, token):
    msg = b"..leading: dot line as first line of data\r\n" + h.message(token)
    with session(server.smtp_port) as c:
        start_data(c)
        c.send(h.data_payload(msg))
        c.expect(250)
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_dot_stuffing_split_across_writes(server, token):
    """Send the data one byte per write so that CRLF, dots and the final CRLF.CRLF
    are cut at every possible point."""
    msg = h.message(token, body=b".a\r\n..\r\n.\r\nx.\r\n\r\n..\r\n")
    payload = h.data_payload(msg)
    with session(server.smtp_port) as c:
        start_data(c)
        for i in range(len(payload)):
            c.send(payload[i:i + 1])
            if i % 7 == 0:
                time.sleep(0.002)
        c.expect(250)
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_final_dot_split_with_pause(server, token):
    msg = h.message(token)
    with session(server.smtp_port) as c:
        start_data(c)
        c.send(msg[:-2] + b"\r")
        time.sleep(0.3)
        c.send(b"\n.")
        time.sleep(0.3)
        c.send(b"\r")
        time.sleep(0.3)
        c.send(b"\n")
        c.expect(250)
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_empty_message(server):
    """DATA followed at once by the final dot: accepted (and delivered as just the
    trace headers) or refused with 5xx - but answered either way."""
    with session(server.smtp_port) as c:
        c.cmd("MAIL FROM:<empty@client.test>", expect=250)
        c.cmd("RCPT TO:<carol@localhost>", expect=250)
        c.cmd("DATA", expect=354)
        before = set(server.maildir("carol"))
        code, lines = c.cmd(".")
        assert code == 250 or 500 <= code < 600, lines
        c.cmd("NOOP", expect=250)
    if code == 250:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = set(server.maildir("carol")) - before
            if new:
                break
            time.sleep(0.05)
        assert new, "empty message acknowledged but never delivered"
        content = server.maildir("carol")[new.pop()]
        h.check_delivered(content, "empty@client.test", "carol@localhost", b"")


def test_connection_lost_mid_data_delivers_nothing(server, token):
    msg = h.message(token, body=b"partial body that never ends\r\n" * 50)
    c = session(server.smtp_port)
    start_data(c)
    c.send(msg)
    c.sock.shutdown(socket.SHUT_WR)
    c.read_until_closed(timeout=10)
    c.close()
    server.assert_not_delivered("alice", token, wait=2)
    assert_alive(server)


# --------------------------------------------------------------------------
# Pipelining abuse


def test_thousand_pipelined_noops(server):
    with session(server.smtp_port) as c:
        c.send(b"NOOP\r\n" * 1000 + b"QUIT\r\n")
        for i in range(1000):
            code, lines = c.reply()
            assert code == 250, (i, lines)
        c.expect(221)
    assert_alive(server)


def test_pipelined_flood_without_reading(server):
    """200,000 NOOPs sent while the client reads nothing: the server must push back
    (stop reading) or hang up - and survive."""
    c = session(server.smtp_port)
    n = 200000
    sent = []

    def pump():
        try:
            c.sock.sendall(b"NOOP\r\n" * n)
            sent.append(True)
        except OSError:
            pass

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    time.sleep(3)
    got = 0
    closed = False
    c.sock.settimeout(30)
    try:
        while got < n:
            code, _ = c.reply()
            assert code == 250
            got += 1
    except (ConnectionError, OSError):
        closed = True
    t.join(30)
    c.close()
    assert got == n or closed, "only %d of %d replies and no hang-up" % (got, n)
    assert_alive(server)


def test_starttls_command_injection(server):
    """CVE-2011-0411 style: plaintext pipelined after STARTTLS must be thrown away."""
    c = session(server.smtp_port)
    try:
        c.send(b"STARTTLS\r\nRSET\r\n")
        code, lines = c.reply()
        assert code == 220, lines
        assert c.buf == b"", "server answered the injected command in plaintext: %r" % c.buf
        time.sleep(0.3)
        c.sock.setblocking(False)
        try:
            early = c.sock.recv(4096, socket.MSG_PEEK)
        except BlockingIOError:
            early = None
        c.sock.setblocking(True)
        c.sock.settimeout(10)
        assert not early or early[:1] == b"\x15", (
            "server answered the injected command in plaintext: %r" % early)
        if early == b"":
            return  # hung up: a fine answer
        try:
            c.sock = h.client_tls_context().wrap_socket(c.sock)
        except (ssl.SSLError, OSError):
            return  # hanging up is a fine answer
        code, lines = closed_or_reply_after(c, b"EHLO client.test\r\n")
        if code is None:
            return
        assert code == 250 and len(lines) > 1 and any(b"AUTH" in ln for ln in lines), (
            "first reply inside TLS is not the EHLO reply (injected RSET ran?): %r" % lines)
    finally:
        c.close()
    assert_alive(server)


def test_pipelined_body_without_waiting_for_354(server, token):
    msg = h.message(token)
    with session(server.smtp_port) as c:
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n" % SENDER.encode() +
               h.data_payload(msg) + b"QUIT\r\n")
        codes = []
        while True:
            code, lines = closed_or_reply(c)
            if code is None:
                break
            codes.append(code)
        assert codes[:3] == [250, 250, 354], codes
    if codes == [250, 250, 354, 250, 221]:
        h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)
    assert_alive(server)


def test_early_talker(server):
    c = RawClient.connect(server.smtp_port)
    try:
        c.send(b"EHLO early.client.test\r\n")
        code, lines = closed_or_reply(c)
        assert code in (None, 220, 554, 421), lines
    finally:
        c.close()
    assert_alive(server)


def test_random_binary_garbage(server):
    rnd = random.Random(1234)
    c = session(server.smtp_port, ehlo=False)
    try:
        c.send(bytes(rnd.getrandbits(8) for _ in range(65536)))
        c.read_until_closed(timeout=20)
    except OSError:
        pass
    finally:
        c.close()
    assert_alive(server)


# --------------------------------------------------------------------------
# BDAT abuse


def test_bdat_chunk_consumed_even_when_refused(server):
    """A refused BDAT's chunk must be skipped, never run as commands (RFC 3030 sec. 2)."""
    with session(server.smtp_port) as c:
        code, lines = c.cmd(b"BDAT 12\r\nQUIT\r\nQUIT")  # no MAIL yet
        assert 500 <= code < 600, lines
        code, lines = c.cmd("NOOP")
        assert code == 250, "the chunk ran as commands: %r" % lines
    assert_alive(server)


@pytest.mark.parametrize("cmd", [b"BDAT", b"BDAT abc", b"BDAT -1", b"BDAT 1 FIRST",
                                 b"BDAT 99999999999999999999999"])
def test_bdat_bad_syntax(server, cmd):
    with session(server.smtp_port) as c:
        c.cmd("MAIL FROM:<%s>" % SENDER, expect=250)
        c.cmd("RCPT TO:<alice@localhost>", expect=250)
        code, lines = closed_or_reply_after(c, cmd + b"\r\n")
        assert code is None or 500 <= code < 600, lines
    assert_alive(server)


def test_bdat_then_data_refused(server, token):
    with session(server.smtp_port) as c:
        c.cmd("MAIL FROM:<%s>" % SENDER, expect=250)
        c.cmd("RCPT TO:<alice@localhost>", expect=250)
        c.send(b"BDAT 5\r\nHello")
        c.expect(250)
        code, lines = c.cmd("DATA")
        assert code == 503, lines
        c.cmd("RSET", expect=250)
    server.assert_not_delivered("alice", token, wait=0.2)


# --------------------------------------------------------------------------
# AUTH abuse


def tls_session(server):
    c = session(server.smtp_port)
    c.starttls()
    c.ehlo()
    return c


@pytest.mark.parametrize("line", [
    b"AUTH PLAIN !!!not-base64!!!",
    b"AUTH PLAIN =",
    b"AUTH PLAIN " + b"QUFB" * 400,
    b"AUTH CRAM-MD5",
    b"AUTH",
    b"AUTH PLAIN AGFsaWNl",  # "\0alice" - no password part
])
def test_auth_garbage(server, line):
    with tls_session(server) as c:
        code, lines = c.cmd(line)
        if code == 334:
            code, lines = c.cmd("*")
        assert 500 <= code < 600, lines
        c.cmd("MAIL FROM:<alice@localhost>", expect=250)
        c.cmd("RCPT TO:<x@other.example>", expect="554")
    assert_alive(server)


def test_auth_login_cancel(server):
    with tls_session(server) as c:
        c.cmd("AUTH LOGIN", expect=334)
        c.cmd("*", expect="501")
        c.cmd("NOOP", expect=250)


def test_auth_authzid_of_other_user_refused(server):
    import base64
    with tls_session(server) as c:
        tok = base64.b64encode(b"bob\0alice\0" + server.users["alice"].encode()).decode()
        code, lines = c.cmd("AUTH PLAIN " + tok)
        assert code != 235, "alice may act as bob: %r" % lines


def test_auth_twice_refused(server):
    with tls_session(server) as c:
        c.auth_plain("alice", server.users["alice"])
        code, lines = c.cmd("AUTH PLAIN AGFsaWNlAHg=")
        assert code == 503, lines


def test_auth_overlong_login_username(server):
    import base64
    with tls_session(server) as c:
        c.cmd("AUTH LOGIN", expect=334)
        code, lines = closed_or_reply_after(c, base64.b64encode(b"u" * 4000) + b"\r\n")
        assert code is None or 500 <= code < 600, lines
    assert_alive(server)


# --------------------------------------------------------------------------
# TLS garbage on the implicit TLS port


def client_hello():
    """The first flight of a real TLS client, as bytes."""
    ctx = h.client_tls_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="mx.postern.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


@pytest.mark.parametrize("kind", ["random", "plaintext-ehlo", "connect-close", "half-hello",
                                  "corrupt-hello", "sslv2-hello", "hello-then-garbage",
                                  "huge-record"])
def test_tls_garbage_on_smtps(server, kind):
    rnd = random.Random(kind)
    hello = client_hello()
    payload = {
        "random": bytes(rnd.getrandbits(8) for _ in range(4096)),
        "plaintext-ehlo": b"EHLO client.test\r\n",
        "connect-close": b"",
        "half-hello": hello[:len(hello) // 2],
        "corrupt-hello": hello[:20] + bytes(rnd.getrandbits(8) for _ in range(len(hello) - 20)),
        "sslv2-hello": b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + b"\x07\x00\xc0" * 7 + b"A" * 16,
        "hello-then-garbage": hello + b"\x17\x03\x03\x40\x00" + b"\xff" * 16384,
        "huge-record": b"\x16\x03\x01\xff\xff" + b"\x01" * 65535,
    }[kind]
    s = socket.create_connection(("127.0.0.1", server.smtps_port), timeout=10)
    try:
        if payload:
            s.sendall(payload)
        if kind not in ("half-hello", "connect-close"):
            s.settimeout(10)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    except OSError:
        pass
    finally:
        s.close()
    assert_alive(server, "smtps")


def test_many_stalled_tls_handshakes(server):
    hello = client_hello()
    socks = []
    try:
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", server.smtps_port), timeout=10)
            s.sendall(hello[:10])
            socks.append(s)
        assert_alive(server, "smtps")
        assert_alive(server, "smtp")
    finally:
        for s in socks:
            s.close()


def test_garbage_after_starttls(server):
    c = session(server.smtp_port)
    try:
        c.cmd("STARTTLS", expect=220)
        c.send(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 1000)
        c.read_until_closed(timeout=10)
    except OSError:
        pass
    finally:
        c.close()
    assert_alive(server)


# --------------------------------------------------------------------------
# Slowloris (short timeouts)


def _closed_within(c, seconds):
    t0 = time.monotonic()
    data = c.read_until_closed(timeout=seconds)
    return time.monotonic() - t0, data


def test_idle_client_gets_421(slow):
    c = session(slow.smtp_port)
    took, data = _closed_within(c, SLOW_TIMEOUT + SLACK + 5)
    c.close()
    assert data.startswith(b"421"), data
    assert took < SLOW_TIMEOUT + SLACK, "idle session lasted %.1fs (command_timeout=%d)" % (
        took, SLOW_TIMEOUT)
    assert_alive(slow)


def test_half_command_times_out(slow):
    c = session(slow.smtp_port)
    c.send(b"EHL")
    took, data = _closed_within(c, SLOW_TIMEOUT + SLACK + 5)
    c.close()
    assert data.startswith(b"421"), data
    assert_alive(slow)


def test_dribbling_command_times_out(slow):
    """One byte every 0.3 s, never a line end: must not keep a session forever."""
    c = session(slow.smtp_port)
    t0 = time.monotonic()
    closed = False
    try:
        while time.monotonic() - t0 < 3 * SLOW_TIMEOUT:
            c.send(b"N")
            if c.is_closed(0.3):
                closed = True
                break
    except OSError:
        closed = True
    took = time.monotonic() - t0
    c.close()
    assert closed, "dribbling client still connected after %.1fs (command_timeout=%d)" % (
        took, SLOW_TIMEOUT)
    assert took < SLOW_TIMEOUT + SLACK, took
    assert_alive(slow)


def test_stalled_data_times_out(slow, token):
    c = session(slow.smtp_port)
    start_data(c)
    c.send(h.message(token))
    took, data = _closed_within(c, SLOW_TIMEOUT + SLACK + 5)
    c.close()
    assert data.startswith(b"421"), data
    assert took < SLOW_TIMEOUT + SLACK, took
    slow.assert_not_delivered("alice", token)
    assert_alive(slow)


def test_stalled_tls_handshake_times_out(slow):
    s = socket.create_connection(("127.0.0.1", slow.smtps_port), timeout=SLOW_TIMEOUT + SLACK + 5)
    s.sendall(client_hello()[:10])
    t0 = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    took = time.monotonic() - t0
    s.close()
    assert took < SLOW_TIMEOUT + SLACK, "stalled TLS handshake kept for %.1fs" % took
    assert_alive(slow, "smtps")


def test_many_idle_clients_do_not_block_others(slow):
    socks = [RawClient.connect(slow.smtp_port) for _ in range(50)]
    try:
        assert_alive(slow)
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------
# Size, recipients, errors (small limits)


def test_size_declared_too_big_552(limited):
    with session(limited.smtp_port) as c:
        exts = c.ehlo()
        assert "SIZE 65536" in exts, exts
        code, lines = c.cmd("MAIL FROM:<%s> SIZE=100000" % SENDER)
        assert code == 552 and lines[-1].startswith(b"552 5.3.4"), lines
        c.cmd("MAIL FROM:<%s> SIZE=1000" % SENDER, expect=250)


@pytest.mark.parametrize("size", ["abc", "-1", "", "1e9", "99999999999999999999999999"])
def test_size_parameter_garbage(limited, size):
    with session(limited.smtp_port) as c:
        code, lines = c.cmd("MAIL FROM:<%s> SIZE=%s" % (SENDER, size))
        assert code in (501, 552, 555), lines
        c.cmd("NOOP", expect=250)


@pytest.mark.parametrize("declared", [None, "1000"])
def test_size_lie_552_at_end_of_data(limited, token, declared):
    msg = h.message(token, body=(b"0123456789abcdef" * 4 + b"\r\n") * 1500)  # ~100 KB
    with session(limited.smtp_port) as c:
        c.cmd("MAIL FROM:<%s>%s" % (SENDER, " SIZE=" + declared if declared else ""), expect=250)
        c.cmd("RCPT TO:<alice@localhost>", expect=250)
        c.cmd("DATA", expect=354)
        c.send(h.data_payload(msg))
        code, lines = c.reply()
        assert code == 552 and lines[-1].startswith(b"552 5.3.4"), lines
        c.cmd("NOOP", expect=250)
    limited.assert_not_delivered("alice", token)
    assert_alive(limited)


def test_bdat_too_big_552(limited, token):
    chunk = (b"x" * 98 + b"\r\n") * 1000
    with session(limited.smtp_port) as c:
        c.cmd("MAIL FROM:<%s>" % SENDER, expect=250)
        c.cmd("RCPT TO:<alice@localhost>", expect=250)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        code, lines = closed_or_reply(c)
        assert code is None or (code == 552 and lines[-1].startswith(b"552 5.3.4")), lines
        if code is not None:
            code, lines = closed_or_reply_after(c, b"NOOP\r\n")
            assert code in (None, 250), lines
    assert_alive(limited)


def test_message_under_limit_accepted(limited, token):
    msg = h.message(token, body=b"y" * 70 + b"\r\n" * 1 + (b"z" * 70 + b"\r\n") * 700)
    assert len(msg) < 60000
    with session(limited.smtp_port) as c:
        start_data(c)
        c.send(h.data_payload(msg))
        c.expect(250)
    h.check_delivered(limited.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_too_many_recipients_452(limited, token):
    users = ["alice", "bob", "carol", "dave", "erin"]
    with session(limited.smtp_port) as c:
        c.cmd("MAIL FROM:<%s>" % SENDER, expect=250)
        for u in users:
            c.cmd("RCPT TO:<%s@localhost>" % u, expect=250)
        code, lines = c.cmd("RCPT TO:<frank@localhost>")
        assert code == 452 and lines[-1].startswith(b"452 4.5.3"), lines
        c.cmd("DATA", expect=354)
        msg = h.message(token)
        c.send(h.data_payload(msg))
        c.expect(250)
    for u in users:
        h.check_delivered(limited.wait_for_message(u, token), SENDER, u + "@localhost", msg)
    limited.assert_not_delivered("frank", token)


def test_pipelined_recipients_over_limit(limited):
    with session(limited.smtp_port) as c:
        c.send(b"MAIL FROM:<%s>\r\n" % SENDER.encode() +
               b"".join(b"RCPT TO:<alice@localhost>\r\n" for _ in range(8)) + b"RSET\r\n")
        c.expect(250)
        codes = [c.reply()[0] for _ in range(8)]
        assert codes[:5] == [250] * 5 and set(codes[5:]) == {452}, codes
        c.expect(250)


def test_error_limit_421(limited):
    c = session(limited.smtp_port)
    try:
        got421 = False
        for i in range(12):
            code, lines = closed_or_reply_after(c, b"BOGUS%d\r\n" % i)
            if code is None:
                break
            if code == 421:
                got421 = True
                break
            assert 500 <= code < 600, lines
        assert got421, "no 421 after %d errors with max_errors=5" % (i + 1)
        assert i <= 6, "421 only after %d errors" % (i + 1)
        assert c.is_closed(5), "no disconnect after 421"
    finally:
        c.close()
    assert_alive(limited)


# --------------------------------------------------------------------------
# Connection limits


def _connect_from(srv, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", srv.smtp_port))
    return RawClient(s)


def test_connection_limits_421(make_server):
    srv = make_server(overrides={"smtpd": {"max_connections": "5",
                                           "max_connections_per_ip": "3"}})
    time.sleep(0.5)  # let the readiness probes' connections be reaped
    held = []
    try:
        for _ in range(3):
            c = _connect_from(srv, "127.0.0.1")
            c.expect(220)
            held.append(c)
        c = _connect_from(srv, "127.0.0.1")
        code, lines = closed_or_reply(c)
        assert code == 421, "4th connection from one IP got %r" % lines
        assert c.is_closed(5)
        c.close()
        for _ in range(2):
            c = _connect_from(srv, "127.0.0.2")
            c.expect(220)
            held.append(c)
        c = _connect_from(srv, "127.0.0.3")
        code, lines = closed_or_reply(c)
        assert code == 421, "6th connection in all got %r" % lines
        c.close()
        # Freeing one slot lets the next client in.
        held.pop(0).close()
        _wait_accepting(srv)
    finally:
        for c in held:
            c.close()
    _wait_accepting(srv)
    assert_alive(srv)


def _wait_accepting(srv, timeout=10):
    """Closed connections are reaped asynchronously: wait for a free slot."""
    deadline = time.monotonic() + timeout
    while True:
        c = _connect_from(srv, "127.0.0.1")
        code, lines = closed_or_reply(c)
        c.close()
        if code == 220:
            time.sleep(0.2)
            return
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)
