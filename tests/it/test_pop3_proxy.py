"""The aggregating POP3 proxy through `postern serve`, with real Dovecot upstreams.

Alice's profile lists three Dovecot mailboxes on loopback, each reached a
different way (implicit TLS, STLS, plain), and her own Postern Maildir comes
first in the merged view. A Python poplib client (STLS to Postern) checks the
merged view byte for byte against what was delivered to each mailbox, that
DELE reaches exactly the chosen upstream messages (read back from each
Dovecot Maildir after QUIT), that RSET and a dropped connection delete
nothing, that unique-ids are stable, that an upstream that is down, refuses
the password, sends garbage or hangs is left out while the rest is served,
that an upstream dying mid-session gives -ERR [SYS/TEMP] for RETR and an
-ERR naming it at QUIT, and fetchmail against the proxy. The CLI (`pop3
upstream add|list|remove`, `pop3 stats`) is used for every profile.
"""

import os
import poplib
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import pstharness as h
from dovecot_pop3 import DovecotPop3

HAVE_DOVECOT = os.access("/usr/sbin/dovecot", os.X_OK) or shutil.which("dovecot")
pytestmark = pytest.mark.skipif(not HAVE_DOVECOT, reason="dovecot not installed")

LOCAL_MSGS = [
    ("1700000001.L1.test", b"Subject: local one\n\nlocal body\n.dot line\n"),
    ("1700000002.L2.test", b"Subject: local two\r\n\r\nCRLF body\r\n"),
]
UP_MSGS = {
    "a-implicit": [b"Subject: a1\n\nfrom the implicit TLS mailbox\n",
                   b"Subject: a2\n\n" + (b"x" * 1500 + b"\n") * 4 + b"\n.\n..\n" + b"long line " * 150 + b"\n"],
    "b-stls": [b"Subject: b1\n\nfrom the STLS mailbox\n",
               b"Subject: b2\n\nsecond\n",
               b"Subject: b3\n\n\xc3\xa9t\xc3\xa9 8bit\n"],
    "c-plain": [b"Subject: c1\n\nplain loopback\n",
                b"Subject: c2\n\n" + b"".join(b"line %d\n" % i for i in range(20000))],
}


def wire(content):
    out = content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def give(srv, path):
    if os.geteuid() == 0:
        pw = pwd.getpwnam(srv.config["server"]["run_user"])
        os.chown(path, pw.pw_uid, pw.pw_gid)


def local_maildir(srv, user):
    d = os.path.join(srv.mail_dir, user)
    for p in (d, os.path.join(d, "new"), os.path.join(d, "cur"), os.path.join(d, "tmp")):
        if not os.path.isdir(p):
            os.makedirs(p, exist_ok=True)
            give(srv, p)
    return d


def put_local(srv, user, name, content):
    p = os.path.join(local_maildir(srv, user), "new", name)
    with open(p, "wb") as f:
        f.write(content)
    give(srv, p)


def contents(maildir):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, n), "rb") as f:
                out.append(f.read())
    return sorted(out)


def clear_dovecot(d, user):
    for sub in ("new", "cur"):
        p = d.maildir_path(user, sub)
        for n in os.listdir(p):
            os.unlink(os.path.join(p, n))
    # forget Dovecot's index so that numbering restarts cleanly
    for n in os.listdir(d.maildir_path(user)):
        if n.startswith("dovecot"):
            try:
                os.unlink(os.path.join(d.maildir_path(user), n))
            except IsADirectoryError:
                shutil.rmtree(os.path.join(d.maildir_path(user), n))


def clear_local(srv, user):
    d = local_maildir(srv, user)
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(d, sub)):
            os.unlink(os.path.join(d, sub, n))


def add_upstream(srv, user, uid, host, port, tls, login, password, check=True):
    return srv.cli("pop3", "upstream", "add", user, uid, "--host", host, "--port", str(port),
                   "--tls", tls, "--login", login, input=password + "\n", check=check)


def wait_pop3(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        srv.check_running()
        try:
            with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=5) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("pop3d not answering\n" + srv.log_tail())


def login(srv, user, password=None, timeout=60):
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=timeout)
    p.stls(h.client_tls_context())
    p.user(user)
    deadline = time.monotonic() + 20
    while True:
        try:
            p.pass_(password or srv.users[user])
            return p
        except poplib.error_proto as e:
            # the previous session of this user may still be releasing its lock
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=timeout)
            p.stls(h.client_tls_context())
            p.user(user)


def retr(p, i):
    resp, lines, octets = p.retr(i)
    assert resp.startswith(b"+OK")
    return b"".join(line + b"\r\n" for line in lines)


def uidls(p):
    resp, lines, _ = p.uidl()
    return [line.split(b" ", 1)[1].decode() for line in lines]


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecots():
    ds = {k: DovecotPop3().start() for k in ("a-implicit", "b-stls", "c-plain", "spare")}
    yield ds
    for d in ds.values():
        d.cleanup()


@pytest.fixture(scope="module")
def ca_bundle(dovecots):
    """The Dovecots' self-signed certificates as [client] tls_ca_file (readable by run_user)."""
    d = tempfile.mkdtemp(prefix="pop3px-ca-", dir=os.environ.get("POSTERN_IT_TMP", "/tmp"))
    os.chmod(d, 0o755)
    bundle = os.path.join(d, "upstreams.pem")
    with open(bundle, "wb") as out:
        for dc in dovecots.values():
            with open(dc.cert_path, "rb") as f:
                out.write(f.read())
    os.chmod(bundle, 0o644)
    yield bundle
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def px(make_module_server, dovecots, ca_bundle):
    bundle = ca_bundle
    srv = make_module_server(users={"alice": "alice-Secret-1", "bob": "bob-Secret-2",
                                    "carol": "carol-Secret-3", "dave": "dave-Secret-4",
                                    "erin": "erin-Secret-5"},
                             overrides={"pop3": {"auth_failure_delay": "0",
                                                 "upstream_timeout": "4"},
                                        "client": {"tls_ca_file": bundle}})
    wait_pop3(srv)
    a, b, c = dovecots["a-implicit"], dovecots["b-stls"], dovecots["c-plain"]
    for d in (a, b, c):
        d.add_user("alice", "up-pass-%d" % d.port)
    # every user of the shared Dovecots is made now: Dovecot re-reads its passwd-file lazily,
    # and a refused login there would slow later logins from 127.0.0.1 (auth penalty)
    a.add_user("bob", "bob-up-a")
    b.add_user("carol", "carol-up")
    dovecots["spare"].add_user("bob", "bob-up")
    add_upstream(srv, "alice", "a-implicit", "127.0.0.1", a.ssl_port, "implicit", "alice",
                 "up-pass-%d" % a.port)
    add_upstream(srv, "alice", "b-stls", "localhost", b.port, "stls", "alice",
                 "up-pass-%d" % b.port)
    add_upstream(srv, "alice", "c-plain", "127.0.0.1", c.port, "none", "alice",
                 "up-pass-%d" % c.port)
    return srv


def fill_alice(srv, dovecots):
    clear_local(srv, "alice")
    for name, content in LOCAL_MSGS:
        put_local(srv, "alice", name, content)
    for uid, msgs in UP_MSGS.items():
        clear_dovecot(dovecots[uid], "alice")
        for m in msgs:
            dovecots[uid].deliver("alice", m)
            time.sleep(0.002)  # distinct, ordered file names


def expected_view():
    """The merged order: the local Maildir, then the upstreams by id."""
    out = [("local", c) for _, c in LOCAL_MSGS]
    for uid in sorted(UP_MSGS):
        out.extend((uid, m) for m in UP_MSGS[uid])
    return out


# ---- tests ---------------------------------------------------------------------------------


def test_merged_view_byte_for_byte(px, dovecots):
    fill_alice(px, dovecots)
    view = expected_view()
    p = login(px, "alice")
    try:
        count, octets = p.stat()
        assert count == len(view)
        assert octets == sum(len(wire(m)) for _, m in view)
        _, lines, _ = p.list()
        sizes = [int(line.split()[1]) for line in lines]
        assert sizes == [len(wire(m)) for _, m in view]
        ids = uidls(p)
        assert len(set(ids)) == len(ids)
        for (src, _), u in zip(view, ids):
            assert 1 <= len(u) <= 70
            if src == "local":
                assert ":" not in u
            else:
                assert u.startswith(src + ":"), (src, u)
        for i, (src, m) in enumerate(view, 1):
            assert retr(p, i) == wire(m), "message %d from %s differs" % (i, src)
        resp, lines, _ = p.top(3, 0)
        assert resp.startswith(b"+OK")
        assert lines[0] == b"Subject: a1"
        assert p.noop().startswith(b"+OK")
        assert p.quit().startswith(b"+OK")
    finally:
        p.close()
    # the same ids next time (stable), nothing deleted
    p = login(px, "alice")
    try:
        assert uidls(p) == ids
    finally:
        p.quit()
    for uid, msgs in UP_MSGS.items():
        assert contents(dovecots[uid].maildir_path("alice")) == sorted(msgs)


def test_dele_rset_and_quit_reach_the_right_messages(px, dovecots):
    fill_alice(px, dovecots)
    view = expected_view()
    p = login(px, "alice")
    before = uidls(p)
    for i in range(1, len(view) + 1):
        p.dele(i)
    assert p.stat()[0] == 0
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == len(view)
    assert p.quit().startswith(b"+OK")
    for uid, msgs in UP_MSGS.items():
        assert contents(dovecots[uid].maildir_path("alice")) == sorted(msgs)

    # delete: local #2, a2, b1 and b3, nothing from c
    chosen = {2, 4, 5, 7}
    p = login(px, "alice")
    assert uidls(p) == before
    for i in sorted(chosen):
        assert p.dele(i).startswith(b"+OK")
    resp = p.quit()
    assert resp.startswith(b"+OK"), resp
    p.close()
    keep = [m for i, m in enumerate(view, 1) if i not in chosen]
    assert contents(local_maildir(px, "alice")) == sorted(m for s, m in
                                                           [v for i, v in enumerate(view, 1)
                                                            if i not in chosen] if s == "local")
    for uid, msgs in UP_MSGS.items():
        want = [m for i, (s, m) in enumerate(view, 1) if s == uid and i not in chosen]
        assert contents(dovecots[uid].maildir_path("alice")) == sorted(want), uid
    # the survivors keep their unique-ids
    p = login(px, "alice")
    try:
        assert uidls(p) == [u for i, u in enumerate(before, 1) if i not in chosen]
        for i, (_, m) in enumerate(keep, 1):
            assert retr(p, i) == wire(m)
    finally:
        p.quit()


def test_dropped_connection_deletes_nothing(px, dovecots):
    fill_alice(px, dovecots)
    view = expected_view()
    p = login(px, "alice")
    for i in range(1, len(view) + 1):
        p.dele(i)
    p.close()  # no QUIT: no UPDATE anywhere
    time.sleep(1)
    p = login(px, "alice")
    try:
        assert p.stat()[0] == len(view)
    finally:
        p.quit()
    for uid, msgs in UP_MSGS.items():
        assert contents(dovecots[uid].maildir_path("alice")) == sorted(msgs)


def test_second_session_is_in_use(px, dovecots):
    p = login(px, "alice")
    try:
        q = poplib.POP3("127.0.0.1", px.pop3_port, timeout=30)
        q.stls(h.client_tls_context())
        q.user("alice")
        with pytest.raises(poplib.error_proto, match=r"IN-USE"):
            q.pass_(px.users["alice"])
        q.close()
    finally:
        p.quit()


def test_down_and_wrong_password_are_left_out(px, dovecots):
    spare, a = dovecots["spare"], dovecots["a-implicit"]
    # a private Dovecot for the wrong password: Dovecot delays further logins from an address
    # after a failure (auth penalty), which must not slow the other tests' upstreams down
    w = DovecotPop3().start()
    try:
        w.add_user("bob", "bob-up-w")
        spare.deliver("bob", b"Subject: spare\n\nshould not be seen\n")
        w.deliver("bob", b"Subject: wrong\n\nshould not be seen\n")
        a.deliver("bob", b"Subject: bob on a\n\nseen\n")
        put_local(px, "bob", "1700000003.B.test", b"Subject: bob local\n\nlocal\n")
        add_upstream(px, "bob", "good", "127.0.0.1", a.ssl_port, "implicit", "bob", "bob-up-a")
        add_upstream(px, "bob", "wrongpw", "127.0.0.1", w.port, "none", "bob", "not-the-pass")
        add_upstream(px, "bob", "down", "127.0.0.1", spare.port, "stls", "bob", "bob-up")
        add_upstream(px, "bob", "noport", "127.0.0.1", h.free_port(), "none", "bob", "x")
        spare.stop()
        mark = px.log_mark()
        t0 = time.monotonic()
        p = login(px, "bob")
        assert time.monotonic() - t0 < 15
        try:
            assert p.stat()[0] == 2
            assert retr(p, 2) == wire(b"Subject: bob on a\n\nseen\n")
        finally:
            assert p.quit().startswith(b"+OK")
    finally:
        w.cleanup()
    log = px.log_since(mark).decode(errors="replace")
    for uid in ("wrongpw", "down", "noport"):
        assert "upstream_unavailable user=bob upstream=%s" % uid in log, log
    assert "3 upstreams unavailable: down, noport, wrongpw" in log
    st = px.cli("pop3", "stats", "bob", check=True).stdout.decode()
    rows = {line.split()[1]: line.split() for line in st.splitlines()[1:]}
    assert rows["good"][2] == "1" and rows["good"][3] == "1"  # sessions, messages
    assert int(rows["wrongpw"][5]) >= 1 and int(rows["down"][5]) >= 1
    assert rows["(all)"][2] == "1"


class HostileUpstream:
    """A tiny POP3 'server' that sends garbage or hangs, on its own thread."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            try:
                if self.mode == "garbage":
                    c.sendall(b"\x00\xff garbage \x1b[31m" * 50 + b"\r\n" + os.urandom(4096))
                elif self.mode == "hugeline":
                    c.sendall(b"+OK " + b"A" * 200000)
                elif self.mode == "badlist":
                    c.settimeout(5)
                    c.sendall(b"+OK hi\r\n")
                    buf = b""
                    while not self.stop:
                        data = c.recv(4096)
                        if not data:
                            break
                        buf += data
                        while b"\r\n" in buf:
                            line, buf = buf.split(b"\r\n", 1)
                            v = line.split(b" ")[0].upper()
                            if v == b"CAPA":
                                c.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
                            elif v in (b"USER", b"PASS"):
                                c.sendall(b"+OK\r\n")
                            elif v == b"STAT":
                                c.sendall(b"+OK 2 20\r\n")
                            elif v == b"LIST":
                                c.sendall(b"+OK\r\n1 10\r\n99 10\r\n1 10\r\n.\r\n")
                            else:
                                c.sendall(b"-ERR no\r\n")
                # "hang": accept and say nothing
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


def test_hostile_upstreams_do_not_hang_or_crash(px, dovecots):
    b = dovecots["b-stls"]
    b.deliver("carol", b"Subject: carol\n\nok\n")
    hostile = [HostileUpstream(m) for m in ("garbage", "hang", "hugeline", "badlist")]
    try:
        add_upstream(px, "carol", "b", "127.0.0.1", b.port, "stls", "carol", "carol-up")
        for i, hs in enumerate(hostile):
            add_upstream(px, "carol", "h%d-%s" % (i, hs.mode), "127.0.0.1", hs.port, "none",
                         "carol", "pw")
        mark = px.log_mark()
        t0 = time.monotonic()
        p = login(px, "carol", timeout=60)
        took = time.monotonic() - t0
        try:
            assert took < 20, took  # upstream_timeout is 4 s: open deadline 12 s
            assert p.stat()[0] == 1
            assert retr(p, 1) == wire(b"Subject: carol\n\nok\n")
        finally:
            assert p.quit().startswith(b"+OK")
        log = px.log_since(mark).decode(errors="replace")
        for i, hs in enumerate(hostile):
            assert "upstream=h%d-%s" % (i, hs.mode) in log
        px.check_running()
    finally:
        for hs in hostile:
            hs.close()


def test_upstream_dies_mid_session(px, dovecots):
    d = DovecotPop3().start()
    try:
        d.add_user("dave", "dave-up")
        d.deliver("dave", b"Subject: doomed\n\nx\n")
        put_local(px, "dave", "1700000004.D.test", b"Subject: dave local\n\nlocal\n")
        # plain on loopback: this Dovecot's certificate is not in the CA bundle
        add_upstream(px, "dave", "dies", "127.0.0.1", d.port, "none", "dave", "dave-up")
        p = login(px, "dave")
        try:
            assert p.stat()[0] == 2
            d.stop()
            time.sleep(0.5)
            with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
                p.retr(2)
            assert retr(p, 1) == wire(b"Subject: dave local\n\nlocal\n")
            p.dele(1)
            p.dele(2)
            with pytest.raises(poplib.error_proto) as e:
                p.quit()
            assert b"dies" in e.value.args[0]
        finally:
            p.close()
        # the local deletion was done; the upstream's was not claimed
        assert contents(local_maildir(px, "dave")) == []
    finally:
        d.cleanup()


def test_cli_profiles(px):
    cp = add_upstream(px, "erin", "far", "192.0.2.1", 110, "none", "erin", "pw", check=False)
    assert cp.returncode == 1 and b"loopback" in cp.stderr
    cp = add_upstream(px, "erin", "local", "127.0.0.1", 110, "stls", "erin", "pw", check=False)
    assert cp.returncode == 1 and b"reserved" in cp.stderr
    cp = add_upstream(px, "nosuchuser", "x", "127.0.0.1", 110, "stls", "n", "pw", check=False)
    assert cp.returncode == 1
    cp = px.cli("pop3", "upstream", "add", "erin", "x", "--host", "127.0.0.1", "--port", "110",
                "--tls", "stls", "--login", "erin", input="")
    assert cp.returncode == 1 and b"password" in cp.stderr
    secret = "Very-Secret-Upstream-Pass"
    add_upstream(px, "erin", "far", "pop.example.net", 995, "implicit", "erin@example.net",
                 secret)
    cp = add_upstream(px, "erin", "far", "pop.example.net", 995, "implicit", "e", "pw",
                      check=False)
    assert cp.returncode == 1 and b"already" in cp.stderr
    out = px.cli("pop3", "upstream", "list", "erin", check=True).stdout
    assert b"pop.example.net" in out and b"erin@example.net" in out
    assert secret.encode() not in out
    allout = px.cli("pop3", "upstream", "list", check=True).stdout
    assert b"a-implicit" in allout and secret.encode() not in allout
    with open(px.config["pop3"].get("upstream_key",
                                    os.path.join(px.var_dir, "pop3-upstream.key")), "rb") as f:
        assert len(f.read()) == 32
    assert px.cli("pop3", "upstream", "remove", "erin", "far", check=True).returncode == 0
    cp = px.cli("pop3", "upstream", "remove", "erin", "far")
    assert cp.returncode == 1
    assert px.cli("pop3", "bogus").returncode == 2


def _fetchmail(srv, workdir, user, keep):
    rc = os.path.join(workdir, "fetchmailrc")
    sink = os.path.join(workdir, "fetched-%s.mbox" % ("keep" if keep else "del"))
    with open(rc, "w") as f:
        f.write('poll 127.0.0.1 service %d protocol pop3 uidl\n'
                '  user "%s" password "%s" is "%s" here\n'
                '  sslproto tls1.2+ no sslcertck %s\n'
                '  mda "/bin/sh -c \'cat >> %s\'"\n'
                % (srv.pop3_port, user, srv.users[user], user, "keep" if keep else "nokeep",
                   sink))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=workdir)
    cp = subprocess.run(["fetchmail", "-f", rc, "--idfile", os.path.join(workdir, "ids"),
                         "--nosyslog", "--nodetach", "-v"],
                        capture_output=True, timeout=180, env=env)
    return cp, sink


def test_fetchmail_through_the_proxy(px, dovecots, tmp_path):
    if not shutil.which("fetchmail"):
        pytest.skip("fetchmail not installed")
    fill_alice(px, dovecots)
    view = expected_view()
    wd = str(tmp_path)
    cp, sink = _fetchmail(px, wd, "alice", keep=True)
    assert cp.returncode == 0, cp.stdout.decode() + cp.stderr.decode()
    with open(sink, "rb") as f:
        got = f.read()
    for _, m in view:
        subj = m.split(b"\n", 1)[0].rstrip(b"\r")
        assert subj in got
    # UIDL + keep: a second run fetches nothing new (exit 1 = no mail)
    cp, _ = _fetchmail(px, wd, "alice", keep=True)
    assert cp.returncode in (0, 1), cp.stdout.decode() + cp.stderr.decode()
    with open(sink, "rb") as f:
        assert f.read() == got
    # with deletion: everything leaves every mailbox
    os.unlink(os.path.join(wd, "ids"))
    cp, _ = _fetchmail(px, wd, "alice", keep=False)
    assert cp.returncode == 0, cp.stdout.decode() + cp.stderr.decode()
    time.sleep(0.5)
    assert contents(local_maildir(px, "alice")) == []
    for uid in UP_MSGS:
        assert contents(dovecots[uid].maildir_path("alice")) == [], uid
