"""Open-relay tests: without AUTH (and outside trusted_networks) no address
form may get mail to a non-local domain; with AUTH, relaying is allowed."""

import pytest

import pstharness as h

RELAY_TRICKS = [
    "user@other.example",
    "user%other.example@localhost",
    "user%other.example@postern.test",
    "@localhost:user@other.example",
    "@localhost,@mx.postern.test:user@other.example",
    '"user@other.example"@localhost',
    "user@other.example@localhost",
    "other.example!user@localhost",
    "user@other.example.",
    "user@[127.0.0.1]",
    "user@[IPv6:::1]",
    "user@localhost.other.example",
    "user@other.example (comment)@localhost",
    "alice@localhost@other.example",
    '"alice@localhost"@other.example',
]


def _rcpt(c, addr):
    code, lines = c.cmd(b"RCPT TO:<" + addr.encode() + b">")
    return code, b"\n".join(lines).decode(errors="replace")


def _queue_text(server):
    cp = server.cli("queue", "list")
    return (cp.stdout + cp.stderr).decode(errors="replace")


@pytest.mark.parametrize("addr", RELAY_TRICKS)
def test_relay_trick_refused_without_auth(server, addr):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        # A local sender address must not help either.
        c.cmd("MAIL FROM:<alice@localhost>", expect=250)
        code, text = _rcpt(c, addr)
        assert 500 <= code < 600, "relay trick %r accepted: %s" % (addr, text)
        if addr == "user@other.example":
            assert text.startswith("554 5.7.1"), text
        # Nothing can be sent now.
        code, _ = c.cmd("DATA")
        assert code in (503, 554), code
        c.cmd("QUIT", expect=221)


def test_plain_relay_refused_message(server):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.cmd("MAIL FROM:<x@client.test>", expect=250)
        code, text = _rcpt(c, "someone@other.example")
        assert text.startswith("554 5.7.1"), text
        assert "relay access denied" in text.lower(), text


def test_nothing_queued_for_refused_relays(server):
    assert "other.example" not in _queue_text(server)


def test_local_domain_match_is_case_insensitive(server):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.cmd("MAIL FROM:<x@client.test>", expect=250)
        code, text = _rcpt(c, "alice@LocalHost")
        assert code == 250, text
        code, text = _rcpt(c, "bob@POSTERN.TEST")
        assert code == 250, text


def test_relay_tricks_refused_on_submission_without_auth(server):
    with h.RawClient.connect(server.submission_port) as c:
        c.expect(220)
        c.ehlo()
        c.starttls()
        c.ehlo()
        code, lines = c.cmd("MAIL FROM:<alice@localhost>")
        if code == 250:
            code, text = _rcpt(c, "user@other.example")
            assert 500 <= code < 600, text
        else:
            assert code == 530, lines


@pytest.mark.parametrize("service", ["smtp", "submission", "smtps"])
def test_relay_allowed_with_auth(server, service):
    port = {"smtp": server.smtp_port, "submission": server.submission_port,
            "smtps": server.smtps_port}[service]
    with h.RawClient.connect(port, tls=(service == "smtps")) as c:
        c.expect(220)
        c.ehlo()
        if service != "smtps":
            c.starttls()
            c.ehlo()
        c.auth_plain("alice", server.users["alice"])
        c.cmd("MAIL FROM:<alice@localhost>", expect=250)
        code, text = _rcpt(c, "friend@other.example")
        assert code == 250, text
        c.cmd("RSET", expect=250)
        c.cmd("QUIT", expect=221)


def test_trusted_networks_may_relay(make_server):
    srv = make_server(overrides={"smtpd": {"trusted_networks": "10.0.0.0/8, 127.0.0.0/8"}})
    with h.RawClient.connect(srv.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.cmd("MAIL FROM:<x@client.test>", expect=250)
        code, text = _rcpt(c, "friend@other.example")
        assert code == 250, text
        c.cmd("RSET", expect=250)


def test_untrusted_network_still_refused(make_server):
    srv = make_server(overrides={"smtpd": {"trusted_networks": "10.0.0.0/8, ::1/128"}})
    with h.RawClient.connect(srv.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.cmd("MAIL FROM:<x@client.test>", expect=250)
        code, text = _rcpt(c, "friend@other.example")
        assert text.startswith("554 5.7.1"), text
