"""Outbound delivery (issue 4): DNS MX lookup, SMTP client, retries, bounces.

Every test runs a private dnsmasq (tests/it/dnsfix.py) as Postern's only
resolver ([dns] resolver = 127.0.0.1@PORT) and remote MX hosts on
127.0.0.x:<port> ([client] smtp_port = port, the same on every host):
either a private Postfix with STARTTLS (PostfixMX) or a scriptable Python
SMTP server (FakeMX). Retries are fast ([queue] first_retry = 1,
max_retry_interval = 2). No test waits more than ~25 s for one event, so
the whole file fails quickly where the product lacks a feature.

Contract assumed (see the report in docs/testing.md):
  - a message from an authenticated user (or trusted_networks) to a
    non-local domain goes to the MX hosts of that domain in preference
    order, falling back to the domain's A record, on [client] smtp_port;
  - STARTTLS is used whenever offered (tls_policy=may);
  - 4xx: deferred and retried; 5xx: an RFC 3464 bounce to the envelope
    sender (a local user here) with the remote reply as Diagnostic-Code and
    the original message or its headers; null MX: 5.1.10 at once; NXDOMAIN:
    bounce; resolver failure: deferred, never bounced;
  - a message with the null sender is never bounced (dropped after logging);
  - log lines carry status=sent|deferred|bounced and the recipient;
  - `postern queue list` shows waiting messages by 16-hex-digit qid;
    `queue hold QID` / `queue release QID` / `queue flush` / `queue delete`.
"""

import os
import re
import time

import pytest

import dnsfix as d
import pstharness as h

Z = d.ZONE

# loopback addresses of the hosts (all share one port)
A_POSTFIX = "127.0.0.2"
A_DEAD = "127.0.0.3"
A_RETRY = "127.0.0.4"
A_REJECT = "127.0.0.5"
A_BACKUP = "127.0.0.6"
A_AONLY = "127.0.0.7"
A_HOLD = "127.0.0.8"
A_BUSY = "127.0.0.9"
ALL_HOSTS = [A_POSTFIX, A_DEAD, A_RETRY, A_REJECT, A_BACKUP, A_AONLY, A_HOLD, A_BUSY]

WAIT = 20  # seconds allowed for one delivery / bounce


def _dns(workdir):
    dns = d.DnsServer(os.path.join(workdir, "dns"))
    dns.add_mx("remote." + Z, "mx1.remote." + Z, 10).add_a("mx1.remote." + Z, A_POSTFIX)
    dns.add_mx("retry." + Z, "mx.retry." + Z, 10).add_a("mx.retry." + Z, A_RETRY)
    dns.add_mx("reject." + Z, "mx.reject." + Z, 10).add_a("mx.reject." + Z, A_REJECT)
    # backup: the preferred MX is dead (nothing listens), the second works
    dns.add_mx("backup." + Z, "dead.backup." + Z, 10).add_a("dead.backup." + Z, A_DEAD)
    dns.add_mx("backup." + Z, "mx2.backup." + Z, 20).add_a("mx2.backup." + Z, A_BACKUP)
    # busy: the preferred MX greets with 421, the second works
    dns.add_mx("busy." + Z, "mx1.busy." + Z, 10).add_a("mx1.busy." + Z, A_BUSY)
    dns.add_mx("busy." + Z, "mx2.busy." + Z, 20).add_a("mx2.busy." + Z, A_BACKUP)
    dns.add_a("aonly." + Z, A_AONLY)                 # no MX: implicit MX (RFC 5321 5.1)
    dns.add_mx("hold." + Z, "mx.hold." + Z, 10).add_a("mx.hold." + Z, A_HOLD)
    dns.add_null_mx("nullmx." + Z)                   # RFC 7505
    dns.add_servfail("broken." + Z)                  # forwarded to a dead server
    # nosuch.<zone>: no record at all -> NXDOMAIN
    return dns


@pytest.fixture
def net(workdir):
    """(dns, port): a started dnsmasq with the records above and the shared MX port."""
    why = d.dnsmasq_available()
    if why:
        pytest.skip(why)
    dns = _dns(workdir).start()
    port = d.common_free_port(ALL_HOSTS)
    yield dns, port
    dns.stop()


@pytest.fixture
def fake_mx():
    """factory fake_mx(addr, port, **hooks) -> FakeMX, closed at teardown."""
    made = []

    def make(addr, port, **kw):
        m = d.FakeMX(addr, port, name="mx.%s.%s" % (addr.replace(".", "-"), Z), **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


@pytest.fixture
def postfix_mx(workdir):
    why = h.postfix_available()
    if why:
        pytest.skip(why)
    made = []

    def make(addr, port, **kw):
        m = d.PostfixMX(d.short_dir(workdir, "pmx"), addr, port, **kw)
        made.append(m)
        m.start()
        return m

    yield make
    for m in made:
        m.stop()


def _msg(token, to, sender="alice@localhost", body=None):
    return h.message(token, sender=sender, to=to, body=body)


# ---------------------------------------------------------------------------
# (a) delivery to a real MTA over STARTTLS


def test_sanity_dns_fixture(net):
    """The fixture itself: the records the other tests rely on (no Postern involved)."""
    dns, _ = net
    assert dns.query("remote." + Z, "MX") == ("NOERROR", [(10, "mx1.remote." + Z)])
    assert dns.query("mx1.remote." + Z, "A") == ("NOERROR", [A_POSTFIX])
    assert sorted(dns.query("backup." + Z, "MX")[1]) == [(10, "dead.backup." + Z),
                                                         (20, "mx2.backup." + Z)]
    assert dns.query("aonly." + Z, "MX") == ("NOERROR", [])
    assert dns.query("aonly." + Z, "A") == ("NOERROR", [A_AONLY])
    assert dns.query("nullmx." + Z, "MX") == ("NOERROR", [(0, ".")])
    assert dns.query("nosuch." + Z, "MX")[0] == "NXDOMAIN"


def test_delivery_to_postfix_over_starttls(net, postfix_mx, make_server, token):
    dns, port = net
    mx = postfix_mx(A_POSTFIX, port, domain="remote." + Z, user="bob")
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "bob@remote." + Z
    body = (b"Hello Bob,\r\n.a line with a leading dot\r\n..two dots\r\n.\r\n"
            b"trailing blanks   \r\n\r\nmessage %s\r\n" % token.encode())
    msg = _msg(token, rcpt, body=body)
    qid = d.submit(srv, [rcpt], msg)
    got = mx.wait_for(token, timeout=WAIT)
    assert got is not None, "not delivered to the remote Postfix within %ss\n%s\n%s" % (
        WAIT, srv.log_tail(30), mx.log_tail(20))
    names = d.assert_same_message(got, msg, crlf=False)
    assert names[:1] == ["Return-Path"], names
    assert got.startswith(b"Return-Path: <alice@localhost>\n"), got[:100]
    # Postfix's Received header (smtpd_tls_received_header=yes) proves STARTTLS was used.
    pf_received = got[got.find(b"Received: from"):got.find(b"(Postfix)")]
    assert b"(using TLSv1." in pf_received, "no TLS in Postfix's Received header:\n%r" % (
        got[:800],)
    assert "TLS connection established" in mx.log(), mx.log_tail(20)
    line = d.wait_log(srv, "status=sent", rcpt, timeout=5)
    m = re.search(rb'tls="?([^"\s]*)', line)
    assert m and m.group(1).lower() not in (b"", b"none", b"no"), "TLS not logged: %r" % line
    assert ("relay=" in line.decode()) and A_POSTFIX in line.decode(), line
    d.wait_queue_empty(srv, qid, timeout=10)
    assert srv.maildir_count("alice") == 0, "unexpected mail (a bounce?) for alice"


def test_several_recipients_one_transaction(net, fake_mx, make_server, token):
    """Three recipients at one domain: one SMTP transaction, all three RCPTs."""
    dns, port = net
    mx = fake_mx(A_RETRY, port)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpts = ["a@retry." + Z, "b@retry." + Z, "c@retry." + Z]
    msg = _msg(token, rcpts[0])
    d.submit(srv, rcpts, msg)
    got = mx.wait_messages(1, timeout=WAIT, what=token)
    assert got, "not delivered\n" + srv.log_tail(30)
    time.sleep(1)
    got = mx.wait_messages(1, timeout=1, what=token)
    assert sorted(r for m in got for r in m["rcpts"]) == sorted(rcpts), got
    assert all(m["mail_from"] == "alice@localhost" for m in got)
    d.assert_same_message(got[0]["data"], msg, crlf=True)


def test_dot_stuffing_and_large_message_byte_exact(net, fake_mx, make_server, token):
    """Lines starting with '.', a lone '.', 8-bit bytes and 2 MB arrive byte for byte."""
    dns, port = net
    mx = fake_mx(A_RETRY, port)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "big@retry." + Z
    lines = [b".", b"..", b". .", b".leading", b"x" * 998, "caf\u00e9 8-bit".encode()]
    body = b"".join(ln + b"\r\n" for ln in lines) * 3
    filler = b"".join(b"%07d %s\r\n" % (i, b"y" * 70) for i in range(2 * 1024 * 1024 // 80))
    msg = _msg(token, rcpt, body=body + filler + b".\r\n" + body)
    d.submit(srv, [rcpt], msg)
    got = mx.wait_messages(1, timeout=WAIT, what=token)
    assert got, "not delivered\n" + srv.log_tail(30)
    d.assert_same_message(got[0]["data"], msg, crlf=True)


# ---------------------------------------------------------------------------
# (b) 4xx then success


def test_4xx_then_retry_delivers(net, fake_mx, make_server, token):
    dns, port = net

    def first_rcpt_451(s, verb, line):
        if verb == "RCPT" and s.index == 0:
            return "451 4.3.0 greylisted, try again later"
        return None

    mx = fake_mx(A_RETRY, port, on_command=first_rcpt_451)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "carol@retry." + Z
    msg = _msg(token, rcpt)
    qid = d.submit(srv, [rcpt], msg)
    line = d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    assert b"451" in line or b"greylisted" in line, "remote reply not logged: %r" % line
    got = mx.wait_messages(1, timeout=WAIT, what=token)
    assert got, "not delivered on retry\n" + srv.log_tail(30)
    d.assert_same_message(got[0]["data"], msg, crlf=True)
    assert mx.connections >= 2
    gap = mx.sessions[1].t - mx.sessions[0].t
    assert gap >= 0.5, "retried after %.2fs although first_retry = 1 s" % gap
    d.wait_log(srv, "status=sent", rcpt, timeout=5)
    d.wait_queue_empty(srv, qid, timeout=10)
    assert srv.maildir_count("alice") == 0, "a 4xx must not bounce"


def test_421_greeting_tries_next_mx(net, fake_mx, make_server, token):
    dns, port = net

    def busy(s):
        s.reply("421 4.3.2 too busy, try another MX")
        return True

    busy_mx = fake_mx(A_BUSY, port, on_connect=busy)
    good = fake_mx(A_BACKUP, port)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "dave@busy." + Z
    d.submit(srv, [rcpt], _msg(token, rcpt))
    assert good.wait_messages(1, timeout=WAIT, what=token), (
        "not delivered via the second MX\n" + srv.log_tail(30))
    assert busy_mx.connections >= 1, "the preferred MX was never tried"


# ---------------------------------------------------------------------------
# (c) 5xx -> bounce


@pytest.mark.parametrize("stage", ["RCPT", "MAIL", "DATA-end"])
def test_5xx_bounces_to_local_sender(net, fake_mx, make_server, token, stage):
    dns, port = net
    diag = "no such user here %s" % token[:8]

    def on_command(s, verb, line):
        if stage == "RCPT" and verb == "RCPT":
            return "550 5.1.1 " + diag
        if stage == "MAIL" and verb == "MAIL":
            return "553 5.7.1 " + diag
        return None

    def on_data(s, payload):
        return "554 5.6.0 " + diag if stage == "DATA-end" else None

    fake_mx(A_REJECT, port, on_command=on_command, on_data=on_data)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "nobody@reject." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    raw, dsn = d.wait_dsn(srv, "alice", token, timeout=WAIT)
    status = {"RCPT": r"5\.1\.1", "MAIL": r"5\.7\.1", "DATA-end": r"5\.6\.0"}[stage]
    d.check_dsn(raw, dsn, [rcpt], status_re=status, diagnostic=diag)
    line = d.wait_log(srv, "status=bounced", rcpt, timeout=5)
    assert diag.encode() in line, "remote reply not in the log line: %r" % line
    d.wait_queue_empty(srv, qid, timeout=10)


def test_partial_failure_bounces_only_the_rejected_recipient(net, fake_mx, make_server, token):
    dns, port = net

    def on_command(s, verb, line):
        if verb == "RCPT" and b"bad@" in line:
            return "550 5.1.1 bad: mailbox unavailable"
        return None

    mx = fake_mx(A_REJECT, port, on_command=on_command)
    srv = make_server(overrides=d.outbound_config(dns, port))
    good, bad = "good@reject." + Z, "bad@reject." + Z
    msg = _msg(token, good)
    d.submit(srv, [good, bad], msg)
    got = mx.wait_messages(1, timeout=WAIT, what=token)
    assert got and got[0]["rcpts"] == [good], got
    raw, dsn = d.wait_dsn(srv, "alice", token, timeout=WAIT)
    d.check_dsn(raw, dsn, [bad], status_re=r"5\.1\.1", diagnostic="mailbox unavailable")


# ---------------------------------------------------------------------------
# (d) MX preference and fallback


def test_dead_first_mx_uses_second(net, fake_mx, make_server, token):
    dns, port = net
    good = fake_mx(A_BACKUP, port)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "erin@backup." + Z
    msg = _msg(token, rcpt)
    qid = d.submit(srv, [rcpt], msg)
    got = good.wait_messages(1, timeout=WAIT, what=token)
    assert got, "not delivered via the second MX\n" + srv.log_tail(30)
    d.assert_same_message(got[0]["data"], msg, crlf=True)
    d.wait_queue_empty(srv, qid, timeout=10)


def test_no_mx_falls_back_to_a_record(net, fake_mx, make_server, token):
    dns, port = net
    mx = fake_mx(A_AONLY, port)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "frank@aonly." + Z
    d.submit(srv, [rcpt], _msg(token, rcpt))
    assert mx.wait_messages(1, timeout=WAIT, what=token), (
        "not delivered to the A record\n" + srv.log_tail(30))


# ---------------------------------------------------------------------------
# (e), (f) permanent DNS answers


def test_null_mx_bounces_at_once(net, make_server, token):
    dns, port = net
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "gina@nullmx." + Z
    t0 = time.monotonic()
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    raw, dsn = d.wait_dsn(srv, "alice", token, timeout=WAIT)
    took = time.monotonic() - t0
    d.check_dsn(raw, dsn, [rcpt], status_re=r"5\.1\.10")
    assert took < 15, "null MX bounce took %.1fs: it must not be retried" % took
    d.wait_queue_empty(srv, qid, timeout=10)


def test_nxdomain_bounces(net, make_server, token):
    dns, port = net
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "hank@nosuch." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    raw, dsn = d.wait_dsn(srv, "alice", token, timeout=WAIT)
    d.check_dsn(raw, dsn, [rcpt], status_re=r"5\.\d\.\d+")
    d.wait_queue_empty(srv, qid, timeout=10)


# ---------------------------------------------------------------------------
# (g) temporary DNS failure


def _assert_stays_deferred(srv, qid, rcpt, token, seconds=6):
    d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    assert qid in d.queue_ids(srv), "deferred message not in `queue list`"
    time.sleep(seconds)  # several retries with first_retry = 1 s
    assert qid in d.queue_ids(srv), "message left the queue although DNS never answered"
    bounces = [v for v in srv.maildir("alice").values() if token.encode() in v]
    assert not bounces, "a temporary DNS failure must not bounce"


def test_resolver_down_defers(net, make_server, token):
    _, port = net
    dead = "127.0.0.1@%d" % d.dead_udp_port()
    srv = make_server(overrides=d.outbound_config(dead, port, dns={"dns_timeout": "2"}))
    rcpt = "ivan@remote." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    _assert_stays_deferred(srv, qid, rcpt, token)


def test_servfail_domain_defers(net, make_server, token):
    dns, port = net
    srv = make_server(overrides=d.outbound_config(dns, port, dns={"dns_timeout": "2"}))
    rcpt = "judy@broken." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    _assert_stays_deferred(srv, qid, rcpt, token)


# ---------------------------------------------------------------------------
# (h) queue hold / release / flush / delete on the live queue


class Gate:
    """FakeMX hooks: 451 on RCPT while closed, normal service once opened."""

    def __init__(self):
        self.open = False

    def on_command(self, s, verb, line):
        if verb == "RCPT" and not self.open:
            return "451 4.7.1 not yet"
        return None


def test_queue_hold_release_flush(net, fake_mx, make_server, token):
    dns, port = net
    gate = Gate()
    mx = fake_mx(A_HOLD, port, on_command=gate.on_command)
    srv = make_server(overrides=d.outbound_config(
        dns, port, queue={"first_retry": "2", "max_retry_interval": "2"}))
    rcpt = "kim@hold." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    cp = srv.cli("queue", "show", qid, check=True)
    assert token.encode() in cp.stdout and rcpt.encode() in cp.stdout

    srv.cli("queue", "hold", qid, check=True)
    line = d.queue_line(srv, qid)
    assert line is not None, "held message missing from `queue list`"
    assert "!" in line.split()[0] or "hold" in line, "not shown as held: %r" % line
    gate.open = True
    srv.cli("queue", "flush", check=True)
    time.sleep(5)
    assert not mx.wait_messages(1, timeout=0.1, what=token), "a held message was delivered"
    assert qid in d.queue_ids(srv)

    srv.cli("queue", "release", qid, check=True)
    srv.cli("queue", "flush", check=True)
    assert mx.wait_messages(1, timeout=15, what=token), (
        "released message not delivered\n" + srv.log_tail(30))
    d.wait_queue_empty(srv, qid, timeout=10)
    assert srv.cli("queue", "hold", qid).returncode != 0, "hold of a delivered qid succeeded"
    assert srv.cli("queue", "release", qid).returncode != 0
    assert srv.cli("queue", "hold", "../../etc/passwd").returncode != 0


def test_queue_delete_deferred_message(net, fake_mx, make_server, token):
    dns, port = net
    gate = Gate()
    mx = fake_mx(A_HOLD, port, on_command=gate.on_command)
    srv = make_server(overrides=d.outbound_config(dns, port))
    rcpt = "leo@hold." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    srv.cli("queue", "delete", qid, check=True)
    assert qid not in d.queue_ids(srv)
    gate.open = True
    srv.cli("queue", "flush", check=True)
    time.sleep(4)
    assert not mx.wait_messages(1, timeout=0.1, what=token), "a deleted message was delivered"
    assert srv.maildir_count("alice") == 0, "deleting must not bounce"


def test_flush_retries_deferred_at_once(net, fake_mx, make_server, token):
    """With a long retry delay, `queue flush` makes the queue manager try again now."""
    dns, port = net
    gate = Gate()
    mx = fake_mx(A_HOLD, port, on_command=gate.on_command)
    srv = make_server(overrides=d.outbound_config(
        dns, port, queue={"first_retry": "3600", "max_retry_interval": "3600",
                          "queue_scan_interval": "3600"}))
    rcpt = "mia@hold." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    gate.open = True
    srv.cli("queue", "flush", check=True)
    assert mx.wait_messages(1, timeout=15, what=token), (
        "flush did not retry the deferred message\n" + srv.log_tail(30))
    d.wait_queue_empty(srv, qid, timeout=10)


# ---------------------------------------------------------------------------
# (i) the null sender never bounces


def test_null_sender_failure_is_not_bounced(net, fake_mx, make_server, token):
    dns, port = net
    fake_mx(A_REJECT, port,
            on_command=lambda s, v, ln: "550 5.1.1 no such user" if v == "RCPT" else None)
    overrides = d.outbound_config(dns, port)
    overrides["smtpd"] = {"trusted_networks": "127.0.0.0/8"}
    srv = make_server(overrides=overrides)
    rcpt = "nobody@reject." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt, sender="robot@client.test"), sender="",
                   service="smtp")
    d.wait_log(srv, "status=bounced", rcpt, timeout=WAIT)
    d.wait_queue_empty(srv, qid, timeout=10)
    time.sleep(2)
    for user in srv.users:
        assert srv.maildir_count(user) == 0, "something was delivered to %s" % user
    d.wait_queue_empty(srv, timeout=1)


# ---------------------------------------------------------------------------
# TLS policies


def test_tls_encrypt_refuses_plaintext_mx(net, fake_mx, make_server, token):
    """tls_policy=encrypt and an MX without STARTTLS: deferred, never sent in clear."""
    dns, port = net
    mx = fake_mx(A_RETRY, port)
    srv = make_server(overrides=d.outbound_config(dns, port,
                                                  client={"tls_policy": "encrypt"}))
    rcpt = "nina@retry." + Z
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    assert not mx.messages, "message sent without TLS despite tls_policy=encrypt"
    assert qid in d.queue_ids(srv)


def test_tls_verify(net, postfix_mx, make_server, token):
    """tls_policy=verify: an unknown CA defers; the right tls_ca_file delivers."""
    dns, port = net
    mx = postfix_mx(A_POSTFIX, port, domain="remote." + Z, user="bob")
    rcpt = "olga@remote." + Z
    srv = make_server(overrides=d.outbound_config(
        dns, port, client={"tls_policy": "verify",
                           "tls_ca_file": "/etc/ssl/certs/ca-certificates.crt"}))
    qid = d.submit(srv, [rcpt], _msg(token, rcpt))
    d.wait_log(srv, "status=deferred", rcpt, timeout=WAIT)
    assert mx.wait_for(token, timeout=1) is None, "delivered to an unverifiable MX"
    srv.cli("queue", "delete", qid, check=True)

    srv2 = make_server(overrides=d.outbound_config(
        dns, port, client={"tls_policy": "verify", "tls_ca_file": mx.cert}))
    tok2 = token + "v"
    d.submit(srv2, [rcpt], _msg(tok2, rcpt))
    assert mx.wait_for(tok2, timeout=WAIT) is not None, (
        "not delivered with the MX's certificate as CA\n" + srv2.log_tail(30))


def test_transport_map_relay(net, fake_mx, make_server, workdir, token):
    """transport_map: a domain with no DNS at all goes to smtp:[127.0.0.x]:port."""
    dns, port = net
    relay = fake_mx(A_AONLY, port)
    tmap = os.path.join(workdir, "transport")
    with open(tmap, "w") as f:
        f.write("# test map\nrelayed.%s smtp:[%s]:%d\n" % (Z, A_AONLY, port))
    srv = make_server(overrides=d.outbound_config(dns, port, queue={"transport_map": tmap}))
    rcpt = "pat@relayed." + Z
    d.submit(srv, [rcpt], _msg(token, rcpt))
    assert relay.wait_messages(1, timeout=WAIT, what=token), (
        "not delivered to the transport map's next hop\n" + srv.log_tail(30))
