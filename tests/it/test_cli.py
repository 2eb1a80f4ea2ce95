"""The postern command line: version, check-config, user and queue management,
and serve's process handling (pid files, child restart, SIGTERM)."""

import os
import re
import signal
import subprocess
import time

import pytest

import pstharness as h


def run(binary, *args, input=None, timeout=30):
    return subprocess.run([binary] + list(args), input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def test_version(postern_bin):
    cp = run(postern_bin, "version")
    assert cp.returncode == 0, cp.stderr
    assert re.search(rb"\d+\.\d+\.\d+", cp.stdout), cp.stdout


def test_unknown_command_fails(postern_bin):
    cp = run(postern_bin, "frobnicate")
    assert cp.returncode != 0
    assert cp.stderr, "no usage message"


def _cfg(workdir, text):
    path = os.path.join(workdir, "test.ini")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_check_config_ok(postern_bin, workdir):
    srv = h.PosternServer(workdir, binary=postern_bin)
    cp = srv.cli("check-config")
    assert cp.returncode == 0, cp.stdout + cp.stderr


@pytest.mark.parametrize("text,line,section,key", [
    ("[server]\nhostname = a.test\nbogus_key = 1\n", 3, "server", "bogus_key"),
    ("[smtpd]\n\nmax_recipients = -5\n", 3, "smtpd", "max_recipients"),
    ("[smtpd]\nmessage_size_limit = 12Q\n", 2, "smtpd", "message_size_limit"),
    ("[smtpd]\nsmtp_listen = 127.0.0.1:99999\n", 2, "smtpd", "smtp_listen"),
    ("[smtpd]\nvrfy = perhaps\n", 2, "smtpd", "vrfy"),
    ("[smtpd]\ntrusted_networks = 10.0.0.0/33\n", 2, "smtpd", "trusted_networks"),
    ("[nosuchsection]\nx = 1\n", 2, "nosuchsection", "x"),
])
def test_check_config_errors(postern_bin, workdir, text, line, section, key):
    path = _cfg(workdir, text)
    cp = run(postern_bin, "check-config", "-c", path)
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    out = (cp.stdout + cp.stderr).decode(errors="replace")
    want = "%s:%d: [%s] %s: " % (path, line, section, key)
    assert want in out, "expected %r in %r" % (want, out)


def test_check_config_missing_file(postern_bin, workdir):
    cp = run(postern_bin, "check-config", "-c", os.path.join(workdir, "nope.ini"))
    assert cp.returncode != 0


def test_user_add_list_passwd_del(postern_bin, workdir):
    srv = h.PosternServer(workdir, binary=postern_bin, users={})
    srv.cli("user", "add", "zed", input="first-Password-1\n", check=True)
    cp = srv.cli("user", "add", "zed", input="again-Password-1\n")
    assert cp.returncode != 0, "duplicate user accepted"
    cp = srv.cli("user", "list", check=True)
    assert re.search(rb"^zed\b", cp.stdout, re.M), cp.stdout
    assert b"first-Password-1" not in cp.stdout + cp.stderr
    srv.cli("user", "passwd", "zed", input="second-Password-2\n", check=True)
    srv.cli("user", "del", "zed", check=True)
    cp = srv.cli("user", "list", check=True)
    assert not re.search(rb"^zed\b", cp.stdout, re.M), cp.stdout
    assert srv.cli("user", "del", "zed").returncode != 0


@pytest.mark.parametrize("name", ["", "a/b", "..", "a b", "x" * 300, "bad\nname"])
def test_user_add_rejects_bad_names(postern_bin, workdir, name):
    srv = h.PosternServer(workdir, binary=postern_bin, users={})
    cp = srv.cli("user", "add", name, input="some-Password-1\n")
    assert cp.returncode != 0, "user name %r accepted" % name


def test_user_changes_seen_by_running_server(make_server):
    srv = make_server()
    srv.add_user("newbie", "newbie-Password-1")
    with h.RawClient.connect(srv.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain("newbie", "newbie-Password-1")
        c.cmd("MAIL FROM:<newbie@localhost>", expect=250)
        c.cmd("RCPT TO:<newbie@localhost>", expect=250)
    srv.cli("user", "passwd", "newbie", input="changed-Password-2\n", check=True)
    with h.RawClient.connect(srv.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain("newbie", "newbie-Password-1", expect=535)
        c.auth_plain("newbie", "changed-Password-2")
    srv.cli("user", "del", "newbie", check=True)
    with h.RawClient.connect(srv.smtp_port) as c:
        c.expect(220)
        c.ehlo()
        c.cmd("MAIL FROM:<x@client.test>", expect=250)
        c.cmd("RCPT TO:<newbie@localhost>", expect="550 5.1.1")


def _relay_one(srv, token):
    """Queue a message for a remote domain (stays queued: no outbound transport yet)."""
    with h.RawClient.connect(srv.smtps_port, tls=True) as c:
        c.expect(220)
        c.ehlo()
        c.auth_plain("alice", srv.users["alice"])
        c.cmd("MAIL FROM:<alice@localhost>", expect=250)
        c.cmd("RCPT TO:<friend@other.example>", expect=250)
        c.cmd("DATA", expect=354)
        c.send(h.data_payload(h.message(token, sender="alice@localhost",
                                        to="friend@other.example")))
        code, lines = c.expect(250)
    m = re.search(rb"queued as ([0-9A-Fa-f]{16})", lines[-1])
    assert m, "no queue id in %r" % lines
    return m.group(1).decode()


def test_queue_list_show_delete(make_server, token):
    # A resolver that never answers keeps the relayed message in the queue meanwhile.
    srv = make_server(overrides={"dns": {"resolver": "127.0.0.1@9", "dns_timeout": "60"}})
    qid = _relay_one(srv, token)
    cp = srv.cli("queue", "list", check=True)
    assert qid.encode() in cp.stdout, cp.stdout
    assert b"friend@other.example" in cp.stdout
    cp = srv.cli("queue", "show", qid, check=True)
    assert token.encode() in cp.stdout
    assert b"friend@other.example" in cp.stdout
    srv.cli("queue", "delete", qid, check=True)
    cp = srv.cli("queue", "list", check=True)
    assert qid.encode() not in cp.stdout
    assert srv.cli("queue", "show", qid).returncode != 0
    assert srv.cli("queue", "delete", qid).returncode != 0
    assert srv.cli("queue", "show", "../../etc/passwd").returncode != 0


def test_queue_flush_delivers_after_qmgr_pause(make_server, token):
    """With qmgr stopped (SIGSTOP) a local message waits in the queue; flush after
    SIGCONT delivers it."""
    srv = make_server(overrides={"queue": {"queue_scan_interval": "3600"}})
    qmgr = srv.child_pid("qmgr")
    os.kill(qmgr, signal.SIGSTOP)
    try:
        with h.RawClient.connect(srv.smtp_port) as c:
            c.expect(220)
            c.ehlo()
            c.cmd("MAIL FROM:<x@client.test>", expect=250)
            c.cmd("RCPT TO:<bob@localhost>", expect=250)
            c.cmd("DATA", expect=354)
            msg = h.message(token, to="bob@localhost", sender="x@client.test")
            c.send(h.data_payload(msg))
            code, lines = c.expect(250)
        qid = re.search(rb"queued as ([0-9A-Fa-f]{16})", lines[-1]).group(1)
        cp = srv.cli("queue", "list", check=True)
        assert qid in cp.stdout, cp.stdout
    finally:
        os.kill(qmgr, signal.SIGCONT)
    srv.cli("queue", "flush", check=True)
    h.check_delivered(srv.wait_for_message("bob", token, timeout=30), "x@client.test",
                      "bob@localhost", msg)


def test_pid_files_and_child_restart(make_server):
    srv = make_server(overrides={"server": {"restart_delay": "1"}})
    assert srv.read_pid("postern") == srv.proc.pid
    for name in ("smtpd", "qmgr"):
        old = srv.child_pid(name)
        assert old, "%s.pid does not name a child of serve" % name
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 15
        new = None
        while time.monotonic() < deadline:
            new = srv.child_pid(name)
            if new and new != old:
                break
            time.sleep(0.1)
        assert new and new != old, "%s not restarted\n%s" % (name, srv.log_tail())
    h.assert_alive(srv)


def test_sigterm_stops_everything(make_server):
    srv = make_server()
    kids = [srv.child_pid("smtpd"), srv.child_pid("qmgr")]
    assert all(kids)
    parent = srv.proc
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(20) == 0
    time.sleep(0.5)
    for k in kids:
        assert not h._alive(k), "child %d outlived SIGTERM" % k


def test_log_lines_are_key_value(make_server):
    srv = make_server()
    h.assert_alive(srv)
    lines = [ln for ln in srv.log_bytes().decode(errors="replace").splitlines() if ln.strip()]
    assert lines
    kv = [ln for ln in lines if re.search(r"\b[a-z_]+=\S", ln)]
    assert len(kv) >= len(lines) * 0.8, "\n".join(lines[:20])
    assert all(srv.users["alice"] not in ln for ln in lines), "password in the log"


def test_serve_refuses_bad_config(postern_bin, workdir):
    path = _cfg(workdir, "[smtpd]\nmax_errors = lots\n")
    cp = run(postern_bin, "serve", "-c", path, timeout=20)
    assert cp.returncode != 0
    assert b"max_errors" in cp.stdout + cp.stderr


def test_serve_port_in_use_fails_cleanly(make_server, workdir):
    srv = make_server()
    other = h.PosternServer(workdir, binary=srv.binary)
    other.config["smtpd"]["smtp_listen"] = "127.0.0.1:%d" % srv.smtp_port
    other.write_config()
    cp = subprocess.run([other.binary, "serve", "-c", other.config_path], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=30, env=other.env())
    assert cp.returncode != 0
    assert str(srv.smtp_port).encode() in cp.stdout, cp.stdout
    h.assert_alive(srv)
