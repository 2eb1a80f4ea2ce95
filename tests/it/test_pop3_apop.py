"""APOP (RFC 1939 7) through `postern serve` with [pop3] apop = yes.

The secret is set with `postern pop3 apop set USER` (stdin only; the user
must exist; too short, multi-line, or equal to the login password is
refused) and removed with `pop3 apop clear`. Clients: Python poplib's
apop() in plaintext on loopback and after STLS, and fetchmail with
`protocol apop` (fetchmail has no `--auth apop`: APOP is its protocol
name). Checked: the greeting's timestamp (unique per connection, absent
when APOP is off), CAPA not listing APOP, wrong secrets and the login
password refused with [AUTH], the failure limit closing the connection,
plaintext refusal before TLS when not allowed, and that a cleared secret
stops working.
"""

import os
import poplib
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import pstharness as h

USER, PASS = "alice", h.DEFAULT_USERS["alice"]
SECRET = "alice's APOP secret 1"
TS_RE = re.compile(rb"<[^<>@\s]+@[^<>\s]+>")


def wait_pop3(srv, timeout=30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        srv.check_running()
        try:
            with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=5) as s:
                if s.recv(200).startswith(b"+OK"):
                    return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("pop3d not answering: %s\n%s" % (last, srv.log_tail()))


def give(srv, path):
    if os.geteuid() == 0:
        pw = pwd.getpwnam(srv.config["server"]["run_user"])
        os.chown(path, pw.pw_uid, pw.pw_gid)


def put(srv, user, name, content):
    d = os.path.join(srv.mail_dir, user)
    for p in (d, os.path.join(d, "new"), os.path.join(d, "cur"), os.path.join(d, "tmp")):
        if not os.path.isdir(p):
            os.makedirs(p, exist_ok=True)
            give(srv, p)
    p = os.path.join(d, "new", name)
    with open(p, "wb") as f:
        f.write(content)
    give(srv, p)


def apop_set(srv, user, secret):
    return srv.cli("pop3", "apop", "set", user, input=secret + "\n")


@pytest.fixture(scope="module")
def apop(make_module_server):
    srv = make_module_server(overrides={"pop3": {"apop": "yes",
                                                 "plaintext_on_loopback": "yes",
                                                 "auth_failure_delay": "0",
                                                 "max_auth_failures": "3"}})
    wait_pop3(srv)
    cp = apop_set(srv, USER, SECRET)
    assert cp.returncode == 0, cp.stderr.decode()
    return srv


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.recv(512)


def test_cli_rules(apop):
    # the secret never comes from argv
    cp = apop.cli("pop3", "apop", "set", USER, SECRET)
    assert cp.returncode == 2
    cp = apop_set(apop, "nosuchuser", SECRET)
    assert cp.returncode == 1 and b"no such user" in cp.stderr
    cp = apop_set(apop, USER, "short")
    assert cp.returncode == 1 and b"bytes" in cp.stderr
    cp = apop_set(apop, USER, PASS)
    assert cp.returncode == 1 and b"differ from the login password" in cp.stderr
    cp = apop_set(apop, USER, "")
    assert cp.returncode == 1
    cp = apop.cli("pop3", "apop", "set", "../etc", input=SECRET + "\n")
    assert cp.returncode == 1
    cp = apop.cli("pop3", "apop", "clear", "bob")
    assert cp.returncode == 1 and b"no APOP secret" in cp.stderr
    # the secret is not stored in clear
    with open(apop.cfg("server", "var_dir") + "/postern.db", "rb") as f:
        assert SECRET.encode() not in f.read()


def test_greeting_timestamp(apop):
    a, b = greeting(apop.pop3_port), greeting(apop.pop3_port)
    ta, tb = TS_RE.search(a), TS_RE.search(b)
    assert ta and tb, (a, b)
    assert ta.group(0) != tb.group(0)
    assert a.rstrip().endswith(ta.group(0))


def test_poplib_apop(apop):
    put(apop, USER, "100.apop1", b"Subject: apop\n\nfetched with APOP\n")
    p = poplib.POP3("127.0.0.1", apop.pop3_port, timeout=30)
    caps = p.capa()
    assert "APOP" not in caps
    assert p.apop(USER, SECRET).startswith(b"+OK")
    count, _ = p.stat()
    assert count >= 1
    found = [p.retr(i + 1)[1] for i in range(count)]
    assert any(b"fetched with APOP" in b"\n".join(lines) for lines in found)
    p.quit()


def test_poplib_apop_after_stls(apop):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p = poplib.POP3("127.0.0.1", apop.pop3_port, timeout=30)
    p.stls(ctx)
    # poplib keeps the pre-TLS greeting: the session's timestamp stays valid
    assert p.apop(USER, SECRET).startswith(b"+OK")
    p.quit()


def test_wrong_secrets(apop):
    p = poplib.POP3("127.0.0.1", apop.pop3_port, timeout=30)
    with pytest.raises(poplib.error_proto) as e:
        p.apop(USER, "not the secret")
    assert b"[AUTH]" in e.value.args[0]
    with pytest.raises(poplib.error_proto) as e:
        p.apop(USER, PASS)  # the login password is not the APOP secret
    assert b"[AUTH]" in e.value.args[0]
    with pytest.raises(poplib.error_proto) as e:
        p.apop("bob", SECRET)  # bob has no APOP secret
    assert b"too many failures" in e.value.args[0]
    p.close()
    # hostile digests over a raw socket
    with socket.create_connection(("127.0.0.1", apop.pop3_port), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"+OK")
        for cmd in (b"APOP alice", b"APOP alice " + b"a" * 400, b"APOP alice \x00\x01\x02",
                    b"APOP " + b"x" * 300 + b" 0123456789abcdef0123456789abcdef"):
            f.write(cmd + b"\r\n")
            f.flush()
            assert f.readline().startswith(b"-ERR"), cmd


def test_fetchmail_apop(apop, workdir):
    if not shutil.which("fetchmail"):
        pytest.skip("fetchmail not installed")
    put(apop, USER, "200.fm", b"Subject: fm apop\n\nfetchmail over APOP\n")
    sink = os.path.join(workdir, "fetched.mbox")
    rc = os.path.join(workdir, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 service %d protocol apop uidl\n'
                '  user "%s" password "%s" is "%s" here keep\n'
                '  mda "/bin/sh -c \'cat >> %s\'"\n' % (apop.pop3_port, USER, SECRET, USER, sink))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=workdir)
    cp = subprocess.run(["fetchmail", "-f", rc, "--idfile", os.path.join(workdir, "ids"),
                         "--nosyslog", "--nodetach", "-v"],
                        capture_output=True, timeout=120, env=env)
    out = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    assert cp.returncode == 0, out
    assert "APOP" in out
    with open(sink, "rb") as f:
        assert b"fetchmail over APOP" in f.read()
    # with a wrong secret fetchmail reports an authentication failure (exit 3)
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 service %d protocol apop\n'
                '  user "%s" password "wrong secret" is "%s" here keep\n'
                '  mda "/bin/sh -c \'cat >> %s\'"\n' % (apop.pop3_port, USER, USER, sink))
    cp = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "--nodetach"],
                        capture_output=True, timeout=120, env=env)
    assert cp.returncode == 3, cp.stdout + cp.stderr


def test_clear_then_refused(apop):
    cp = apop_set(apop, "bob", "bob's apop secret")
    assert cp.returncode == 0, cp.stderr
    p = poplib.POP3("127.0.0.1", apop.pop3_port, timeout=30)
    assert p.apop("bob", "bob's apop secret").startswith(b"+OK")
    p.quit()
    cp = apop.cli("pop3", "apop", "clear", "bob")
    assert cp.returncode == 0, cp.stderr
    p = poplib.POP3("127.0.0.1", apop.pop3_port, timeout=30)
    with pytest.raises(poplib.error_proto):
        p.apop("bob", "bob's apop secret")
    p.close()


def test_apop_off_and_before_tls(make_server):
    srv = make_server(overrides={"pop3": {"plaintext_on_loopback": "no",
                                          "auth_failure_delay": "0"}})
    wait_pop3(srv)
    assert not TS_RE.search(greeting(srv.pop3_port))  # APOP off: no timestamp
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    with pytest.raises(poplib.error_proto):
        p.apop(USER, SECRET)  # poplib refuses: no timestamp in the greeting
    p.close()
    srv.stop()
    srv.config["pop3"]["apop"] = "yes"
    srv.write_config()
    srv.start(add_users=False)
    wait_pop3(srv)
    assert apop_set(srv, USER, SECRET).returncode == 0
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    with pytest.raises(poplib.error_proto) as e:
        p.apop(USER, SECRET)  # plaintext not allowed here: STLS first
    assert b"STLS" in e.value.args[0]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p.stls(ctx)
    assert p.apop(USER, SECRET).startswith(b"+OK")
    p.quit()
