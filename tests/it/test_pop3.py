"""POP3 server (pop3d) through `postern serve`: real clients and hostile input.

Clients: Python poplib (STLS and implicit TLS), curl's pop3/pop3s, fetchmail
(UIDL + keep, then with deletion). Hostile input over a raw TLS socket: long
lines, NUL bytes, commands in the wrong state, bad message numbers, a
pipelined flood. Mailbox semantics: the exclusive lock ([IN-USE]), deletion
only in UPDATE (a dropped connection deletes nothing), stable UIDLs, a
snapshot that mail arriving mid-session does not disturb, and a message sent
over SMTP fetched back byte for byte.
"""

import os
import poplib
import pwd
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

import pstharness as h

USER, PASS = "alice", h.DEFAULT_USERS["alice"]


def wait_pop3(srv, timeout=30):
    """Wait until pop3d greets on both listeners."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        srv.check_running()
        try:
            with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=5) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("pop3d not answering: %s\n%s" % (last, srv.log_tail()))


@pytest.fixture(scope="module")
def pop(make_module_server):
    srv = make_module_server(overrides={"pop3": {"auth_failure_delay": "0",
                                                 "max_auth_failures": "2"}})
    wait_pop3(srv)
    return srv


def give(srv, path):
    """As root, hand a file we made to the server's run_user (pop3d runs as that user)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam(srv.config["server"]["run_user"])
        os.chown(path, pw.pw_uid, pw.pw_gid)


def maildir(srv, user):
    d = os.path.join(srv.mail_dir, user)
    for p in (d, os.path.join(d, "new"), os.path.join(d, "cur"), os.path.join(d, "tmp")):
        if not os.path.isdir(p):
            os.makedirs(p, exist_ok=True)
            give(srv, p)
    return d


def put(srv, user, name, content, sub="new"):
    p = os.path.join(maildir(srv, user), sub, name)
    with open(p, "wb") as f:
        f.write(content)
    give(srv, p)
    return p


def clear(srv, user):
    d = maildir(srv, user)
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(d, sub)):
            os.unlink(os.path.join(d, sub, n))


def wire(content):
    """What RETR must deliver (before dot-stuffing) for a Maildir file."""
    out = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def stls_login(srv, user=USER, password=PASS):
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    p.stls(h.client_tls_context())
    p.user(user)
    p.pass_(password)
    return p


def ssl_login(srv, user=USER, password=PASS):
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, context=h.client_tls_context(), timeout=30)
    p.user(user)
    p.pass_(password)
    return p


def ssl_login_when_free(srv, timeout=20):
    """Log in, retrying while an ended session's lock is still being released."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ssl_login(srv)
        except poplib.error_proto as e:
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Raw:
    """A byte-exact POP3 client over implicit TLS."""

    def __init__(self, srv):
        s = socket.create_connection(("127.0.0.1", srv.pop3s_port), timeout=30)
        self.sock = h.client_tls_context().wrap_socket(s)
        self.buf = b""
        assert self.line().startswith(b"+OK")

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def multi(self):
        first = self.line()
        assert first.startswith(b"+OK"), first
        lines = []
        while True:
            line = self.line()
            if line == b".":
                return first, lines
            lines.append(line[1:] if line.startswith(b".") else line)

    def cmd(self, c):
        self.send(c + b"\r\n")
        return self.line()

    def close(self):
        self.sock.close()


# ---- poplib -----------------------------------------------------------------


def test_capa_stls_and_retrieve(pop):
    clear(pop, USER)
    m1 = b"Subject: one\nFrom: a@example.org\n\nline\n.leading dot\n..two dots\n.\nend"
    m2 = b"Subject: two\r\n\r\nalready CRLF\r\n"
    put(pop, USER, "1700000001.Qa.host,S=%d" % len(m1), m1)
    put(pop, USER, "1700000002.Qb.host", m2, sub="cur")
    p = poplib.POP3("127.0.0.1", pop.pop3_port, timeout=30)
    capa = p.capa()
    for k in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert k in capa, capa
    assert "USER" not in capa and "SASL" not in capa  # no plaintext login before TLS
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(USER)
    p.stls(h.client_tls_context())
    capa = p.capa()
    assert "USER" in capa and capa.get("SASL") == ["PLAIN"] and "STLS" not in capa
    p.user(USER)
    assert p.pass_(PASS).startswith(b"+OK")
    count, size = p.stat()
    assert count == 2 and size == len(wire(m1)) + len(wire(m2))
    resp, lines, octets = p.retr(1)
    assert resp == b"+OK %d octets" % len(wire(m1))
    assert b"\r\n".join(lines) + b"\r\n" == wire(m1)
    resp, lines, _ = p.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == m2
    resp, lines, _ = p.top(1, 1)
    assert lines == [b"Subject: one", b"From: a@example.org", b"", b"line"]
    uidl = p.uidl()[1]
    assert uidl == [b"1 1700000001.Qa.host,S=%d" % len(m1), b"2 1700000002.Qb.host"]
    assert p.quit().startswith(b"+OK")


def test_implicit_tls_and_sasl_plain(pop):
    clear(pop, USER)
    put(pop, USER, "1.x", b"Subject: x\n\nbody\n")
    p = poplib.POP3_SSL("127.0.0.1", pop.pop3s_port, context=h.client_tls_context(), timeout=30)
    import base64
    tok = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASS.encode())
    assert p._shortcmd("AUTH PLAIN " + tok.decode()).startswith(b"+OK")
    assert p.list()[1] == [b"1 20"]
    p.quit()


def test_wrong_password_and_limits(pop):
    p = poplib.POP3_SSL("127.0.0.1", pop.pop3s_port, context=h.client_tls_context(), timeout=30)
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        p.pass_("wrong")
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"too many failures"):
        p.pass_("wrong again")
    with pytest.raises((EOFError, OSError, poplib.error_proto)):
        p.noop()
    p.close()


def test_smtp_delivery_fetched_byte_for_byte(pop, token):
    clear(pop, "bob")
    msg = ("From: sender@example.org\r\nTo: bob@postern.test\r\nSubject: %s\r\n\r\n"
           "Hello over SMTP.\r\n.A line with a leading dot\r\n" % token).encode()
    with smtplib.SMTP("127.0.0.1", pop.smtp_port, timeout=30) as s:
        s.sendmail("sender@example.org", ["bob@postern.test"], msg)
    deadline = time.monotonic() + 60
    files = []
    while time.monotonic() < deadline and not files:
        files = os.listdir(os.path.join(maildir(pop, "bob"), "new"))
        time.sleep(0.1)
    assert files, "message not delivered\n" + pop.log_tail()
    with open(os.path.join(maildir(pop, "bob"), "new", files[0]), "rb") as f:
        stored = f.read()
    p = stls_login(pop, "bob", h.DEFAULT_USERS["bob"])
    resp, lines, _ = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    assert got == wire(stored)
    assert got.endswith(msg)  # the sent message follows the trace headers unchanged
    p.quit()


# ---- mailbox semantics -----------------------------------------------------------


def test_deletion_only_on_quit(pop):
    clear(pop, USER)
    a = put(pop, USER, "10.a", b"a\n")
    b = put(pop, USER, "11.b", b"b\n")
    p = ssl_login(pop)
    p.dele(1)
    p.close()  # dropped without QUIT: no UPDATE
    time.sleep(0.5)
    assert os.path.exists(a) and os.path.exists(b)
    p = ssl_login_when_free(pop)  # the drop released the lock
    assert p.stat()[0] == 2
    p.dele(2)
    p.rset()
    p.dele(1)
    assert os.path.exists(a)
    assert p.quit().startswith(b"+OK")
    assert not os.path.exists(a) and os.path.exists(b)


def test_lock_and_snapshot(pop):
    clear(pop, USER)
    put(pop, USER, "20.a", b"a\n")
    p = ssl_login(pop)
    q = poplib.POP3_SSL("127.0.0.1", pop.pop3s_port, context=h.client_tls_context(), timeout=30)
    q.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        q.pass_(PASS)
    put(pop, USER, "19.arrived-later", b"new\n")  # sorts first, but the session keeps its view
    assert p.stat() == (1, 3)
    assert p.uidl(1).endswith(b" 20.a")
    p.quit()
    q.user(USER)
    q.pass_(PASS)
    assert q.stat()[0] == 2
    assert q.uidl()[1] == [b"1 19.arrived-later", b"2 20.a"]
    q.quit()


def test_uidl_stable_and_unique(pop):
    clear(pop, USER)
    for i in range(50):
        put(pop, USER, "%d.M%d.host,S=6" % (1700000000 + i, i), b"msg %02d\n" % i)
    put(pop, USER, "1800000000.with space:2,S", b"x\n", sub="cur")
    first = ssl_login(pop)
    u1 = first.uidl()[1]
    first.quit()
    second = stls_login(pop)
    u2 = second.uidl()[1]
    second.quit()
    assert u1 == u2 and len(u1) == 51
    ids = [line.split(b" ", 1)[1] for line in u1]
    assert len(set(ids)) == 51
    for i in ids:
        assert 1 <= len(i) <= 70 and all(0x21 <= c <= 0x7E for c in i)


# ---- hostile input -------------------------------------------------------------------


def test_hostile_lines_and_states(pop):
    clear(pop, USER)
    put(pop, USER, "30.a", b"a\n")
    r = Raw(pop)
    assert r.cmd(b"STAT").startswith(b"-ERR")
    assert r.cmd(b"RETR 1").startswith(b"-ERR")
    assert r.cmd(b"A" * 10000).startswith(b"-ERR Line too long")
    assert r.cmd(b"NO\0OP").startswith(b"-ERR")
    assert r.cmd(b"USER " + USER.encode()).startswith(b"+OK")
    assert r.cmd(b"PASS " + PASS.encode()).startswith(b"+OK")
    for bad in (b"RETR 0", b"RETR 2", b"RETR -1", b"RETR 1x", b"RETR 99999999999999999999",
                b"TOP 1", b"TOP 1 -5", b"DELE", b"LIST 1 2", b"USER bob", b"STLS"):
        assert r.cmd(bad).startswith(b"-ERR"), bad
    assert r.cmd(b"STAT") == b"+OK 1 3"
    assert r.cmd(b"QUIT").startswith(b"+OK")
    r.close()


def test_pipelined_flood(pop):
    clear(pop, USER)
    put(pop, USER, "40.a", b"Subject: flood\n\nbody\n")
    r = Raw(pop)
    r.cmd(b"USER " + USER.encode())
    assert r.cmd(b"PASS " + PASS.encode()).startswith(b"+OK")
    n = 3000
    r.send(b"RETR 1\r\nNOOP\r\nLIST\r\n" * n + b"QUIT\r\n")
    for _ in range(n):
        first, lines = r.multi()
        assert first == b"+OK 24 octets" and lines == [b"Subject: flood", b"", b"body"]
        assert r.line() == b"+OK"
        first, lines = r.multi()
        assert lines == [b"1 24"]
    assert r.line().startswith(b"+OK Bye")
    r.close()
    assert os.path.exists(os.path.join(maildir(pop, USER), "new", "40.a"))


def test_slow_reader_big_message(pop):
    clear(pop, USER)
    body = (b"x" * 99 + b"\n") * 50000  # 5 MB
    put(pop, USER, "50.big", b"Subject: big\n\n" + body)
    r = Raw(pop)
    r.cmd(b"USER " + USER.encode())
    assert r.cmd(b"PASS " + PASS.encode()).startswith(b"+OK")
    r.send(b"RETR 1\r\n")
    time.sleep(1)  # read nothing for a while: the server must just wait
    first, lines = r.multi()
    assert first == b"+OK %d octets" % (len(body) + 50000 + 16)
    assert len(lines) == 50002
    assert r.cmd(b"QUIT").startswith(b"+OK")
    r.close()


# ---- curl and fetchmail ---------------------------------------------------------------


def test_curl(pop):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    clear(pop, USER)
    m = b"Subject: curl\n\nfetched by curl\n"
    put(pop, USER, "60.c", m)
    auth = "%s:%s" % (USER, PASS)
    out = subprocess.run(["curl", "-sS", "-k", "-u", auth,
                          "pop3s://127.0.0.1:%d/" % pop.pop3s_port],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"1 %d" % len(wire(m))
    out = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "-u", auth,
                          "pop3://127.0.0.1:%d/1" % pop.pop3_port],
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == wire(m)


def _fetchmail(pop, workdir, keep):
    rc = os.path.join(workdir, "fetchmailrc")
    sink = os.path.join(workdir, "fetched.mbox")
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 service %d protocol pop3 uidl\n'
                '  user "%s" password "%s" is "%s" here\n'
                '  sslproto tls1.2+ no sslcertck %s\n'
                '  mda "/bin/sh -c \'cat >> %s\'"\n'
                % (pop.pop3_port, USER, PASS, USER, "keep" if keep else "nokeep", sink))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=workdir)
    return subprocess.run(["fetchmail", "-f", rc, "--idfile", os.path.join(workdir, "ids"),
                           "--nosyslog", "--nodetach", "-v"],
                          capture_output=True, timeout=120, env=env), sink


def test_fetchmail_keep_then_delete(pop, workdir):
    if not shutil.which("fetchmail"):
        pytest.skip("fetchmail not installed")
    clear(pop, USER)
    for i in range(3):
        put(pop, USER, "%d.fm%d" % (70 + i, i), b"Subject: fm %d\n\nbody %d\n" % (i, i))
    cp, sink = _fetchmail(pop, workdir, keep=True)
    assert cp.returncode == 0, cp.stdout.decode() + cp.stderr.decode()
    with open(sink, "rb") as f:
        assert f.read().count(b"Subject: fm ") == 3
    assert len(os.listdir(os.path.join(maildir(pop, USER), "new"))) == 3
    # Second run with the UIDL list: nothing new (fetchmail exits 1: no mail).
    cp, sink = _fetchmail(pop, workdir, keep=True)
    assert cp.returncode == 1, cp.stdout.decode() + cp.stderr.decode()
    with open(sink, "rb") as f:
        assert f.read().count(b"Subject: fm ") == 3
    # New mail, then a run with deletion and a fresh UIDL list: all four fetched and deleted.
    put(pop, USER, "80.fm3", b"Subject: fm 3\n\nbody 3\n")
    os.unlink(os.path.join(workdir, "ids"))
    cp, sink = _fetchmail(pop, workdir, keep=False)
    assert cp.returncode == 0, cp.stdout.decode() + cp.stderr.decode()
    assert os.listdir(os.path.join(maildir(pop, USER), "new")) == []
    with open(sink, "rb") as f:
        assert f.read().count(b"Subject: fm ") == 7


# ---- configuration variants ---------------------------------------------------------------


def test_plaintext_on_loopback(make_server):
    srv = make_server(overrides={"pop3": {"plaintext_on_loopback": "yes",
                                          "login_delay": "3600", "expire": "30"}})
    wait_pop3(srv)
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    capa = p.capa()
    assert "USER" in capa and capa["LOGIN-DELAY"] == ["3600"] and capa["EXPIRE"] == ["30"]
    p.user(USER)
    assert p.pass_(PASS).startswith(b"+OK")  # no TLS needed on loopback here
    p.quit()
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    p.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[LOGIN-DELAY\]"):
        p.pass_(PASS)
    p.quit()
