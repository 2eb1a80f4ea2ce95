"""Ordinary SMTP clients (Python's smtplib) against the default server:
greeting, EHLO keywords, local delivery byte for byte, many messages in one
session, STARTTLS, AUTH PLAIN/LOGIN, implicit TLS, the submission port."""

import base64
import smtplib
import ssl
import uuid

import pytest

import pstharness as h

SENDER = "sender@client.test"


def smtp(server, **kw):
    return smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test", timeout=30, **kw)


def tls_ctx():
    return h.client_tls_context()


def test_banner_and_ehlo_keywords(server):
    with h.RawClient.connect(server.smtp_port) as c:
        code, lines = c.reply()
        assert code == 220
        assert lines[-1].startswith(b"220 mx.postern.test"), lines
        exts = c.ehlo()
        keys = {e.split()[0].upper() for e in exts}
        for want in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                     "STARTTLS", "CHUNKING", "DSN"):
            assert want in keys, "EHLO lacks %s: %r" % (want, exts)
        size = [e for e in exts if e.upper().startswith("SIZE")][0].split()
        assert size[1:] == [str(10 * 1024 * 1024)], exts
        assert "AUTH" not in keys, "AUTH offered before STARTTLS: %r" % exts
        c.cmd("QUIT", expect=221)


def test_auth_advertised_after_starttls(server):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.starttls()
        exts = c.ehlo()
        auth = [e for e in exts if e.upper().startswith("AUTH")]
        assert auth, exts
        mechs = set(auth[0].upper().split()[1:])
        assert {"PLAIN", "LOGIN"} <= mechs, auth
        assert "STARTTLS" not in {e.split()[0].upper() for e in exts}, "STARTTLS offered twice"
        c.cmd("QUIT", expect=221)


def test_helo_works_too(server, token):
    with smtp(server) as s:
        assert s.helo("old.client.test")[0] == 250
        msg = h.message(token)
        s.sendmail(SENDER, ["alice@localhost"], msg)
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_local_delivery_byte_exact(server, token):
    body = (b"Line one\r\n"
            b"  indented line with trailing blanks   \r\n"
            b"\tTab line\r\n"
            b"\r\n"
            b"From the start of a line (mbox would quote this)\r\n"
            b".leading dot\r\n"
            b"..two dots\r\n"
            b"last line without anything special\r\n")
    msg = h.message(token, body=body)
    with smtp(server) as s:
        s.ehlo()
        refused = s.sendmail(SENDER, ["alice@localhost"], msg)
        assert refused == {}
    content = server.wait_for_message("alice", token)
    h.check_delivered(content, SENDER, "alice@localhost", msg)


def test_received_header_names_server_and_client(server, token):
    msg = h.message(token)
    with smtp(server) as s:
        s.sendmail(SENDER, ["alice@localhost"], msg)
    content = server.wait_for_message("alice", token)
    trace = h.check_delivered(content, SENDER, "alice@localhost", msg)
    received = trace[2][1].decode()
    assert "mx.postern.test" in received, received
    assert "client.test" in received, received
    assert "127.0.0.1" in received, received


def test_multiple_recipients_each_get_own_copy(server, token):
    msg = h.message(token, to="alice@localhost, bob@localhost")
    with smtp(server) as s:
        assert s.sendmail(SENDER, ["alice@localhost", "bob@postern.test"], msg) == {}
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)
    h.check_delivered(server.wait_for_message("bob", token), SENDER, "bob@postern.test", msg)


def test_null_sender_accepted(server, token):
    msg = h.message(token, sender="MAILER-DAEMON@client.test")
    with smtp(server) as s:
        s.sendmail("<>", ["alice@localhost"], msg)
    content = server.wait_for_message("alice", token)
    assert content.startswith(b"Return-Path: <>\n"), content[:80]


def test_unknown_local_user_550_511(server):
    with smtp(server) as s:
        s.ehlo()
        s.mail(SENDER)
        code, text = s.rcpt("nosuchuser@localhost")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        # The session goes on: a good recipient still works.
        code, _ = s.rcpt("alice@localhost")
        assert code == 250


def test_partial_recipient_failure_delivers_to_good_ones(server, token):
    msg = h.message(token)
    with smtp(server) as s:
        refused = s.sendmail(SENDER, ["alice@localhost", "ghost@localhost"], msg)
    assert set(refused) == {"ghost@localhost"}
    assert refused["ghost@localhost"][0] == 550
    server.wait_for_message("alice", token)


def test_many_messages_one_session(server):
    """200 messages over one connection; every one arrives exactly once, byte exact."""
    tokens = ["m%03d-%s" % (i, uuid.uuid4().hex[:12]) for i in range(200)]
    sent = {}
    with smtp(server) as s:
        s.ehlo()
        for i, t in enumerate(tokens):
            body = (b"message %d\r\n" % i) + b"x" * (i * 37 % 900) + b"\r\n"
            msg = h.message(t, body=body)
            assert s.sendmail(SENDER, ["alice@localhost"], msg) == {}
            sent[t] = msg
            if i % 50 == 49:
                assert s.rset()[0] == 250
                assert s.noop()[0] == 250
    for t, msg in sent.items():
        h.check_delivered(server.wait_for_message("alice", t, timeout=60), SENDER,
                          "alice@localhost", msg)


def test_pipelined_transactions_raw(server):
    """RFC 2920: MAIL, RCPT, DATA in one write; the body, the final dot and the next
    transaction's commands in the next write. 50 messages, then QUIT."""
    n = 50
    tokens = ["p%02d-%s" % (i, uuid.uuid4().hex[:12]) for i in range(n)]
    msgs = [h.message(t, to="bob@localhost") for t in tokens]
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        exts = c.ehlo()
        assert "PIPELINING" in [e.upper() for e in exts]
        envelope = b"MAIL FROM:<%s>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n" % SENDER.encode()
        c.send(envelope)
        for i in range(n):
            c.expect(250)
            c.expect(250)
            c.expect(354)
            tail = envelope if i + 1 < n else b"QUIT\r\n"
            c.send(h.data_payload(msgs[i]) + tail)
            code, lines = c.reply()
            assert code == 250, lines
        c.expect(221)
    for t, msg in zip(tokens, msgs):
        h.check_delivered(server.wait_for_message("bob", t), SENDER, "bob@localhost", msg)


def test_bdat_chunking_byte_exact(server, token):
    msg = h.message(token, body=b"first chunk line\r\n.dot line not stuffed in BDAT\r\nlast\r\n")
    a, b = msg[:57], msg[57:]
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.cmd("MAIL FROM:<%s>" % SENDER, expect=250)
        c.cmd("RCPT TO:<alice@localhost>", expect=250)
        c.send(b"BDAT %d\r\n" % len(a) + a)
        c.expect(250)
        c.send(b"BDAT %d LAST\r\n" % len(b) + b)
        c.expect(250)
        c.cmd("QUIT", expect=221)
    h.check_delivered(server.wait_for_message("alice", token), SENDER, "alice@localhost", msg)


def test_8bitmime_and_smtputf8(server, token):
    body = "Grüße, 日本語, emoji \U0001F4EC\r\n".encode()
    msg = h.message(token, subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=", body=body,
                    extra_headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                  b"Content-Transfer-Encoding: 8bit\r\n")
    with smtp(server) as s:
        s.ehlo()
        assert s.has_extn("smtputf8") and s.has_extn("8bitmime")
        s.sendmail("jörg@client.test", ["alice@localhost"], msg,
                   mail_options=["BODY=8BITMIME", "SMTPUTF8"])
    content = server.wait_for_message("alice", token)
    h.check_delivered(content, "jörg@client.test", "alice@localhost", msg)


def test_dsn_parameters_accepted(server, token):
    msg = h.message(token)
    with smtp(server) as s:
        s.ehlo()
        s.sendmail(SENDER, ["alice@localhost"], msg,
                   mail_options=["RET=HDRS", "ENVID=QQ314159"],
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;alice@localhost"])
    server.wait_for_message("alice", token)


def test_command_sequence_errors(server):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.cmd("MAIL FROM:<a@b.test>", expect="503")  # before EHLO
        c.ehlo()
        c.cmd("RCPT TO:<alice@localhost>", expect="503")  # before MAIL
        c.cmd("DATA", expect="503")
        c.cmd("MAIL FROM:<a@b.test>", expect=250)
        c.cmd("MAIL FROM:<a@b.test>", expect="503")  # nested MAIL
        c.cmd("DATA", expect=("503", "554"))  # no valid recipient
        c.cmd("RSET", expect=250)
        c.cmd("NOOP", expect=250)
        c.cmd("FROBNICATE", expect="500")
        c.cmd("MAIL FROM:bad-syntax", expect="501")
        c.cmd("QUIT", expect=221)


def test_vrfy_disabled_reveals_nothing(server):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        code_known, _ = c.cmd("VRFY alice")
        code_unknown, _ = c.cmd("VRFY nosuchuser")
        assert code_known == code_unknown, "VRFY tells users apart"
        assert code_known in (252, 502), code_known


def test_starttls_then_local_delivery(server, token):
    msg = h.message(token)
    with smtp(server) as s:
        s.ehlo()
        s.starttls(context=tls_ctx())
        s.ehlo()
        assert s.sendmail(SENDER, ["alice@localhost"], msg) == {}
    content = server.wait_for_message("alice", token)
    h.check_delivered(content, SENDER, "alice@localhost", msg)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_auth_over_starttls_allows_relay(server, mech):
    with smtp(server) as s:
        s.ehlo()
        s.starttls(context=tls_ctx())
        s.ehlo()
        s.user, s.password = "alice", server.users["alice"]
        authobj = s.auth_plain if mech == "PLAIN" else s.auth_login
        code, text = s.auth(mech, authobj, initial_response_ok=(mech == "PLAIN"))
        assert code == 235, (code, text)
        s.mail("alice@localhost")
        code, text = s.rcpt("friend@remote.example")
        assert code == 250, (code, text)
        s.rset()


def test_auth_bad_password_535(server):
    with smtp(server) as s:
        s.ehlo()
        s.starttls(context=tls_ctx())
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            s.login("alice", "wrong password")
        assert ei.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("nosuchuser", "whatever")


def test_auth_refused_without_tls(server):
    with h.RawClient.connect(server.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        tok = base64.b64encode(b"\0alice\0" + server.users["alice"].encode()).decode()
        code, lines = c.cmd("AUTH PLAIN " + tok)
        assert code in (502, 503, 530, 538), lines
        c.cmd("MAIL FROM:<alice@localhost>", expect=250)
        c.cmd("RCPT TO:<x@remote.example>", expect="554 5.7.1")


def test_implicit_tls_auth_and_send(server, token):
    msg = h.message(token, sender="bob@localhost")
    with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, local_hostname="client.test",
                          context=tls_ctx(), timeout=30) as s:
        s.ehlo()
        assert "auth" in s.esmtp_features
        assert "starttls" not in s.esmtp_features, "STARTTLS offered inside TLS"
        s.login("bob", server.users["bob"])
        assert s.sendmail("bob@localhost", ["alice@localhost"], msg) == {}
    h.check_delivered(server.wait_for_message("alice", token), "bob@localhost",
                      "alice@localhost", msg)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_implicit_tls_auth_mechanisms(server, mech):
    with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, context=tls_ctx(), timeout=30) as s:
        s.ehlo()
        s.user, s.password = "carol", server.users["carol"]
        authobj = s.auth_plain if mech == "PLAIN" else s.auth_login
        code, _ = s.auth(mech, authobj, initial_response_ok=False)
        assert code == 235


def test_submission_requires_auth(server, token):
    with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30) as s:
        s.ehlo()
        assert "auth" not in s.esmtp_features, "AUTH offered before STARTTLS on submission"
        s.starttls(context=tls_ctx())
        s.ehlo()
        assert "auth" in s.esmtp_features
        code, text = s.mail("alice@localhost")
        if code == 250:
            code, text = s.rcpt("bob@localhost")
        assert code == 530 and b"5.7.0" in text, (code, text)
        s.rset()
        s.login("alice", server.users["alice"])
        msg = h.message(token, sender="alice@localhost", to="bob@localhost")
        assert s.sendmail("alice@localhost", ["bob@localhost"], msg) == {}
    h.check_delivered(server.wait_for_message("bob", token), "alice@localhost",
                      "bob@localhost", msg)


def test_submission_mail_before_starttls_refused(server):
    with h.RawClient.connect(server.submission_port) as c:
        c.expect(220)
        c.ehlo()
        code, lines = c.cmd("MAIL FROM:<alice@localhost>")
        if code == 250:
            code, lines = c.cmd("RCPT TO:<bob@localhost>")
        assert code == 530, lines


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_min_version_refused(server):
    import socket
    ctx = h.client_tls_context(max_version=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    s = socket.create_connection(("127.0.0.1", server.smtps_port), timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(s).recv(100)
    s.close()
    h.assert_alive(server, "smtps")


def test_tls13_works(server):
    ctx = h.client_tls_context(min_version=ssl.TLSVersion.TLSv1_3)
    with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, context=ctx, timeout=30) as s:
        assert s.ehlo()[0] == 250
        assert s.sock.version() == "TLSv1.3"


def test_rset_clears_envelope(server, token):
    with smtp(server) as s:
        s.ehlo()
        s.mail(SENDER)
        s.rcpt("bob@localhost")
        s.rset()
        msg = h.message(token)
        s.sendmail(SENDER, ["alice@localhost"], msg)
    server.wait_for_message("alice", token)
    server.assert_not_delivered("bob", token, wait=0.5)


def test_all_services_alive_at_end(server):
    for svc in ("smtp", "submission", "smtps"):
        h.assert_alive(server, svc)
