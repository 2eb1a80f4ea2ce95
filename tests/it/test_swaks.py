"""swaks, the Swiss Army Knife for SMTP, as a real-world client."""

import os
import subprocess

import pytest

import pstharness as h

SWAKS = "/usr/bin/swaks"


@pytest.fixture(autouse=True)
def _need_swaks():
    h.need_tool(SWAKS, "swaks")


def swaks(port, *args, timeout=60):
    argv = [SWAKS, "--server", "127.0.0.1:%d" % port, "--helo", "swaks.client.test",
            "--timeout", "30"] + list(args)
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return cp.returncode, cp.stdout.decode(errors="replace")


def test_swaks_plain(server, token):
    rc, out = swaks(server.smtp_port, "--to", "alice@localhost", "--from", "sw@client.test",
                    "--h-Subject", token)
    assert rc == 0, out
    content = server.wait_for_message("alice", token)
    assert content.startswith(b"Return-Path: <sw@client.test>\nDelivered-To: alice@localhost\n")


def test_swaks_data_byte_exact(server, token, workdir):
    msg = h.message(token, sender="sw@client.test",
                    body=b"swaks body\r\n.dot line\r\n..two dots\r\n\r\nend\r\n")
    path = os.path.join(workdir, "msg.eml")
    with open(path, "wb") as f:
        # swaks ends DATA with CRLF . CRLF itself: no final newline in the file.
        f.write(msg.replace(b"\r\n", b"\n")[:-1])
    rc, out = swaks(server.smtp_port, "--to", "bob@localhost", "--from", "sw@client.test",
                    "--data", "@" + path)
    assert rc == 0, out
    h.check_delivered(server.wait_for_message("bob", token), "sw@client.test", "bob@localhost", msg)


def test_swaks_pipelining(server, token):
    rc, out = swaks(server.smtp_port, "--pipeline", "--to", "alice@localhost,bob@localhost",
                    "--h-Subject", token)
    assert rc == 0, out
    server.wait_for_message("alice", token)
    server.wait_for_message("bob", token)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth_relay(server, mech):
    rc, out = swaks(server.smtp_port, "--tls", "--auth", mech, "--auth-user", "alice",
                    "--auth-password", server.users["alice"], "--to", "friend@other.example",
                    "--from", "alice@localhost", "--quit-after", "RCPT")
    assert rc == 0, out
    assert "235 " in out


def test_swaks_submission_auth(server, token):
    rc, out = swaks(server.submission_port, "--tls", "--auth", "PLAIN", "--auth-user", "bob",
                    "--auth-password", server.users["bob"], "--to", "alice@localhost",
                    "--from", "bob@localhost", "--h-Subject", token)
    assert rc == 0, out
    server.wait_for_message("alice", token)


def test_swaks_implicit_tls(server, token):
    rc, out = swaks(server.smtps_port, "--tlsc", "--auth", "LOGIN", "--auth-user", "carol",
                    "--auth-password", server.users["carol"], "--to", "alice@localhost",
                    "--from", "carol@localhost", "--h-Subject", token)
    assert rc == 0, out
    server.wait_for_message("alice", token)


def test_swaks_unknown_user(server):
    rc, out = swaks(server.smtp_port, "--to", "nobody-here@localhost")
    assert rc != 0, out
    assert "550 5.1.1" in out, out


def test_swaks_relay_denied(server):
    rc, out = swaks(server.smtp_port, "--to", "someone@other.example")
    assert rc != 0, out
    assert "554 5.7.1" in out, out


def test_swaks_submission_without_auth(server):
    rc, out = swaks(server.submission_port, "--tls", "--to", "alice@localhost")
    assert rc != 0, out
    assert "530" in out, out


def test_swaks_wrong_password(server):
    rc, out = swaks(server.smtp_port, "--tls", "--auth", "PLAIN", "--auth-user", "alice",
                    "--auth-password", "not-the-password", "--to", "x@other.example")
    assert rc != 0, out
    assert "535" in out, out


def test_swaks_attachment(server, token, workdir):
    blob = os.path.join(workdir, "blob.bin")
    with open(blob, "wb") as f:
        f.write(bytes(range(256)) * 64)
    rc, out = swaks(server.smtp_port, "--to", "carol@localhost", "--h-Subject", token,
                    "--attach", "@" + blob)
    assert rc == 0, out
    content = server.wait_for_message("carol", token)
    assert b"Content-Transfer-Encoding: BASE64" in content or b"base64" in content.lower()
