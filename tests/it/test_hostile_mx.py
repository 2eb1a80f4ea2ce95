"""Hostile remote MX servers: Postern defers, logs why, and keeps delivering elsewhere.

Each test runs a private dnsmasq with two domains (tests/it/dnsfix.py):
  healthy.<zone>  MX -> a well-behaved FakeMX on 127.0.0.10
  hostile.<zone>  MX -> a FakeMX on 127.0.0.11 that misbehaves (parametrised)
and a Postern with [client] command_timeout = 5, connect_timeout = 3. A
message to hostile.<zone> is submitted first, then one to healthy.<zone>.
Expected:
  - the healthy message arrives within HEALTHY_WAIT seconds, while the
    hostile connection may still be hanging (the queue manager must not
    block on one destination);
  - the hostile message is deferred: a log line with status=deferred and
    the recipient, the message still in `postern queue list`, no bounce;
  - where the MX floods (endless greeting), Postern closes the connection
    instead of reading forever;
  - Postern survives (no sanitizer report, clean exit at teardown).
"""

import os
import socket
import threading
import time

import pytest

import dnsfix as d
import pstharness as h

Z = d.ZONE
A_HEALTHY = "127.0.0.10"
A_HOSTILE = "127.0.0.11"
HEALTHY_WAIT = 4   # seconds; less than command_timeout, so a blocked qmgr fails this
COMMAND_TIMEOUT = 5


def _wait_closed(s, limit=60):
    """Read (and drop) until the client closes or limit seconds pass."""
    s.sock.settimeout(limit)
    try:
        while s.sock.recv(65536):
            pass
    except OSError:
        pass
    return True


class Flood:
    """on_connect hook: an endless multi-line greeting; records whether the client hung up."""

    def __init__(self):
        self.client_closed = threading.Event()
        self.sent = 0

    def __call__(self, s):
        line = b"220-" + b"f" * 500 + b"\r\n"
        s.sock.settimeout(30)
        try:
            while self.sent < 200 * 1024 * 1024:
                s.sock.sendall(line * 64)
                self.sent += len(line) * 64
        except OSError:
            self.client_closed.set()
        return True


def _long_greeting(s):
    s.send(b"220 " + b"x" * 200000 + b"\r\n")
    return _wait_closed(s)


def _silent(s):
    return _wait_closed(s)


def _garbage_connect(s):
    s.send(b"\x00\xff\xfe garbage \x1b[31m HELLO\r\nno code here\r\n")
    return _wait_closed(s)


def _garbage_reply(s, verb, line):
    if verb in ("EHLO", "HELO"):
        s.send(b"25O ok\r\n\x00\x01\x02\r\n2\r\n")
        return True
    return None


def _silent_after_ehlo(s, verb, line):
    if verb in ("EHLO", "HELO"):
        _wait_closed(s)
        raise ConnectionError("client gave up")
    return None


def _unterminated_multiline(s, verb, line):
    if verb in ("EHLO", "HELO"):
        s.send(b"250-mx.hostile\r\n250-PIPELINING\r\n250-8BITMIME\r\n")
        _wait_closed(s)
        raise ConnectionError("client gave up")
    return None


def _drop_in_data(s, verb, line):
    if verb == "DATA":
        s.send(b"354 go ahead\r\n")
        s.sock.settimeout(10)
        try:
            s.sock.recv(100)
        except OSError:
            pass
        try:
            s.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise ConnectionError("dropped in DATA on purpose")
    return None


def _starttls_garbage(s, verb, line):
    if verb == "EHLO":
        s.reply("250 mx.hostile\n250 PIPELINING\n250 STARTTLS")
        return True
    if verb == "STARTTLS":
        s.send(b"220 2.0.0 go ahead\r\n")
        s.send(b"this is not a TLS server hello\r\n" * 20)
        _wait_closed(s, 20)
        raise ConnectionError("client gave up")
    if verb in ("MAIL", "RCPT", "DATA"):
        return "451 4.3.0 plaintext retry refused here too"
    return None


SCENARIOS = {
    "long_greeting": {"on_connect": _long_greeting},
    "silent": {"on_connect": _silent},
    "garbage": {"on_connect": _garbage_connect},
    "garbage_ehlo_reply": {"on_command": _garbage_reply},
    "silent_after_ehlo": {"on_command": _silent_after_ehlo},
    "unterminated_multiline": {"on_command": _unterminated_multiline},
    "drop_in_data": {"on_command": _drop_in_data},
    "starttls_garbage": {"on_command": _starttls_garbage},
}


@pytest.fixture
def net(workdir):
    why = d.dnsmasq_available()
    if why:
        pytest.skip(why)
    dns = d.DnsServer(os.path.join(workdir, "dns"))
    dns.add_mx("healthy." + Z, "mx.healthy." + Z, 10).add_a("mx.healthy." + Z, A_HEALTHY)
    dns.add_mx("hostile." + Z, "mx.hostile." + Z, 10).add_a("mx.hostile." + Z, A_HOSTILE)
    dns.start()
    port = d.common_free_port([A_HEALTHY, A_HOSTILE])
    made = []
    yield dns, port, made
    for m in made:
        m.close()
    dns.stop()


def _server(make_server, dns, port):
    return make_server(overrides=d.outbound_config(
        dns, port, client={"command_timeout": str(COMMAND_TIMEOUT), "connect_timeout": "3"},
        queue={"first_retry": "2", "max_retry_interval": "4"}))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_hostile_mx_defers_and_others_still_flow(net, make_server, token, scenario):
    dns, port, made = net
    healthy = d.FakeMX(A_HEALTHY, port, name="mx.healthy." + Z)
    made.append(healthy)
    hooks = dict(SCENARIOS[scenario])
    hostile = d.FakeMX(A_HOSTILE, port, name="mx.hostile." + Z, **hooks)
    made.append(hostile)
    srv = _server(make_server, dns, port)

    bad_rcpt = "victim@hostile." + Z
    bad_qid = d.submit(srv, [bad_rcpt], h.message(token + "bad", sender="alice@localhost",
                                                  to=bad_rcpt))
    # Let the queue manager get stuck on the hostile MX first.
    deadline = time.monotonic() + 10
    while hostile.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hostile.connections > 0, "the hostile MX was never contacted\n" + srv.log_tail(30)

    good_rcpt = "friend@healthy." + Z
    t0 = time.monotonic()
    d.submit(srv, [good_rcpt], h.message(token + "good", sender="alice@localhost",
                                         to=good_rcpt))
    got = healthy.wait_messages(1, timeout=HEALTHY_WAIT, what=token + "good")
    assert got, ("healthy domain not served within %ss while %s MX misbehaved "
                 "(took longer or never)\n%s" % (HEALTHY_WAIT, scenario, srv.log_tail(30)))
    took = time.monotonic() - t0

    line = d.wait_log(srv, "status=deferred", bad_rcpt, timeout=COMMAND_TIMEOUT + 15)
    assert len(line) > 40, "deferral logged without a reason: %r" % line
    assert not hostile.messages, "the hostile MX got the message?"
    assert bad_qid in d.queue_ids(srv), "deferred message missing from the queue"
    assert not [v for v in srv.maildir("alice").values() if (token + "bad").encode() in v], (
        "a hostile MX (temporary trouble) must not cause a bounce")
    srv.check_running()
    print("%s: healthy delivered after %.2fs; deferral logged: %s" % (
        scenario, took, line.decode(errors="replace")[-200:]))


def test_endless_greeting_is_cut_off(net, make_server, token):
    """A greeting that never ends: Postern stops reading and closes, it does not buffer it all."""
    dns, port, made = net
    flood = Flood()
    hostile = d.FakeMX(A_HOSTILE, port, name="mx.hostile." + Z, on_connect=flood)
    made.append(hostile)
    srv = _server(make_server, dns, port)
    rcpt = "victim@hostile." + Z
    qid = d.submit(srv, [rcpt], h.message(token, sender="alice@localhost", to=rcpt))
    assert flood.client_closed.wait(COMMAND_TIMEOUT + 15), (
        "Postern kept reading an endless greeting (%d bytes sent)\n%s" % (
            flood.sent, srv.log_tail(30)))
    assert flood.sent < 100 * 1024 * 1024
    d.wait_log(srv, "status=deferred", rcpt, timeout=15)
    assert qid in d.queue_ids(srv)
    srv.check_running()


def test_dead_mx_connect_refused_defers_fast(net, make_server, token):
    """Nothing listens at the only MX: deferred (connection refused), retried, never bounced."""
    dns, port, _ = net
    srv = _server(make_server, dns, port)
    rcpt = "victim@hostile." + Z
    qid = d.submit(srv, [rcpt], h.message(token, sender="alice@localhost", to=rcpt))
    d.wait_log(srv, "status=deferred", rcpt, timeout=15)
    time.sleep(3)
    assert qid in d.queue_ids(srv)
    assert srv.maildir_count("alice") == 0
