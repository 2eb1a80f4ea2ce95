"""Postfix as a sending peer: a private Postfix instance relays to Postern
(relayhost=[127.0.0.1]:<smtp port>, smtp_tls_security_level=may); messages
injected into Postfix over SMTP must land in Postern's Maildir byte for byte
(Postfix adds one Received header of its own)."""

import smtplib
import time
import uuid

import pytest

import pstharness as h

SENDER = "peer@client.test"


@pytest.fixture
def relay(server, postfix_peer):
    return postfix_peer(mode="relay", relay_port=server.smtp_port)


def inject(peer, sender, rcpts, msg):
    with smtplib.SMTP("127.0.0.1", peer.port, timeout=30) as s:
        refused = s.sendmail(sender, rcpts, msg)
        assert refused == {}, refused


def wait(server, peer, user, token, timeout=60):
    try:
        return server.wait_for_message(user, token, timeout=timeout)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, peer.log_tail()))


def test_postfix_relays_to_postern_byte_exact(server, relay, token):
    body = b"Via Postfix.\r\n.leading dot\r\n..two\r\n\r\nTabs\tand  spaces  \r\nend\r\n"
    msg = h.message(token, sender=SENDER, body=body)
    inject(relay, SENDER, ["alice@localhost"], msg)
    content = wait(server, relay, "alice", token)
    trace = h.check_delivered(content, SENDER, "alice@localhost", msg, extra_received=1)
    assert b"peer.postfix.test" in trace[3][1], trace[3][1]
    # STARTTLS was offered, so Postfix (security level "may") must have used it.
    log = relay.log()
    assert "TLS connection established to 127.0.0.1" in log, relay.log_tail()
    assert "status=sent" in log


def test_postfix_several_recipients_and_messages(server, relay):
    tokens = ["pf%02d-%s" % (i, uuid.uuid4().hex[:10]) for i in range(20)]
    msgs = {}
    for i, t in enumerate(tokens):
        msg = h.message(t, sender=SENDER, body=(b"message %d\r\n" % i) * (1 + i * 50))
        inject(relay, SENDER, ["bob@localhost", "carol@postern.test"], msg)
        msgs[t] = msg
    for t, msg in msgs.items():
        h.check_delivered(wait(server, relay, "bob", t), SENDER, "bob@localhost", msg,
                          extra_received=1)
        h.check_delivered(wait(server, relay, "carol", t), SENDER, "carol@postern.test", msg,
                          extra_received=1)


def test_postfix_large_message(server, relay, token):
    line = b"0123456789" * 7 + b"\r\n"
    msg = h.message(token, sender=SENDER, body=line * 60000)  # ~4.3 MB
    inject(relay, SENDER, ["alice@localhost"], msg)
    h.check_delivered(wait(server, relay, "alice", token, timeout=120), SENDER,
                      "alice@localhost", msg, extra_received=1)


def test_postfix_8bit_message(server, relay, token):
    msg = h.message(token, sender=SENDER, body="Grüße aus Postfix\r\n".encode(),
                    extra_headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                  b"Content-Transfer-Encoding: 8bit\r\n")
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
        s.sendmail(SENDER, ["alice@localhost"], msg, mail_options=["BODY=8BITMIME"])
    h.check_delivered(wait(server, relay, "alice", token), SENDER, "alice@localhost", msg,
                      extra_received=1)


def test_postfix_gets_permanent_error_for_unknown_user(server, relay, token):
    msg = h.message(token, sender=SENDER)
    inject(relay, SENDER, ["nosuchuser@localhost"], msg)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = relay.log()
        if "nosuchuser@localhost" in log and "status=bounced" in log:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("Postfix did not bounce\n" + relay.log_tail())
    assert "550 5.1.1" in relay.log()
