"""pstharness - start and drive a private `postern serve` and a private Postfix.

Shared by the pytest suite (tests/it/conftest.py) and the benchmarks (bench/).
Only the Python standard library is used: this runs under Debian's
/usr/bin/python3.

PosternServer  writes a config into a temporary directory (var_dir and
               mail_dir inside it), creates users with `postern user add`,
               starts `postern serve -c FILE` in its own process group,
               waits until every listener answers, and stops it again
               (SIGTERM, then SIGKILL for the whole group as a last resort).
PostfixPeer    a throw-away Postfix instance (needs root) with its own
               config, queue and data directories, listening on a free
               loopback port; either relaying everything to Postern or
               delivering to its own virtual Maildir (for benchmarks).
RawClient      a byte-exact SMTP client over a plain or TLS socket, for
               hostile input that smtplib refuses to send.
"""

import base64
import os
import pwd
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Sanitizer findings that must fail a test when they show up in the server log.
SANITIZER_PATTERNS = [
    re.compile(rb"==\d+==ERROR: (AddressSanitizer|LeakSanitizer)"),
    re.compile(rb"runtime error: "),  # UBSan
    re.compile(rb"==\d+==WARNING: AddressSanitizer"),
    re.compile(rb"SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)"),
]

DEFAULT_USERS = {
    "alice": "alice-Secret-1",
    "bob": "bob-Secret-2",
    "carol": "carol-Secret-3",
}


def default_run_user():
    """The current user; as root (Postern refuses to run as root) 'postern', else 'nobody'."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    for name in ("postern", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    raise RuntimeError("running as root but neither user 'postern' nor 'nobody' exists")


def find_binary():
    """Path of the postern binary: $POSTERN_BIN, else build-asan/, else build/."""
    env = os.environ.get("POSTERN_BIN")
    if env:
        return os.path.abspath(env)
    for d in ("build-asan", "build"):
        p = os.path.join(REPO, d, "postern")
        if os.access(p, os.X_OK):
            return p
    return None


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_used_ports = set()


def free_ports(n):
    """n distinct free ports, never handed out twice by this process."""
    out = []
    while len(out) < n:
        p = free_port()
        if p in _used_ports:
            continue
        _used_ports.add(p)
        out.append(p)
    return out


def client_tls_context(min_version=None, max_version=None):
    """A TLS client context that accepts Postern's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def smtp_normalize(msg):
    """What a Maildir should hold of msg as sent over SMTP: CRLF -> LF, ends in LF."""
    if isinstance(msg, str):
        msg = msg.encode()
    out = msg.replace(b"\r\n", b"\n")
    if out and not out.endswith(b"\n"):
        out += b"\n"
    return out


def split_delivered(content):
    """Split a delivered Maildir file into (trace_headers, rest).

    trace_headers is a list of (name, full_header_bytes) for the leading
    Return-Path, Delivered-To and Received headers (continuation lines
    included); rest is everything after them.
    """
    trace = []
    pos = 0
    while pos < len(content):
        m = re.match(rb"(Return-Path|Delivered-To|Received):", content[pos:])
        if not m:
            break
        end = content.find(b"\n", pos)
        if end < 0:
            break
        end += 1
        while end < len(content) and content[end:end + 1] in (b" ", b"\t"):
            nl = content.find(b"\n", end)
            if nl < 0:
                end = len(content)
                break
            end = nl + 1
        trace.append((m.group(1).decode(), content[pos:end]))
        pos = end
    return trace, content[pos:]


def check_delivered(content, sender, rcpt, msg, extra_received=0):
    """Assert content is msg delivered by Postern from sender to rcpt.

    Layout (contract): "Return-Path: <sender>\\n" "Delivered-To: <rcpt>\\n"
    Postern's Received: header, then the message exactly as sent with CRLF
    turned into LF. extra_received counts Received headers that a relaying
    peer (Postfix) added in front of the original message.
    """
    trace, rest = split_delivered(content)
    names = [t[0] for t in trace]
    want = ["Return-Path", "Delivered-To"] + ["Received"] * (1 + extra_received)
    assert names[:len(want)] == want, "trace headers %r, wanted %r in:\n%r" % (
        names, want, content[:600])
    assert trace[0][1] == b"Return-Path: <%s>\n" % sender.encode(), trace[0][1]
    assert trace[1][1] == b"Delivered-To: %s\n" % rcpt.encode(), trace[1][1]
    # Anything after the trace headers we expect belongs to the message.
    body = b"".join(t[1] for t in trace[len(want):]) + rest
    expected = smtp_normalize(msg)
    if body != expected:
        raise AssertionError("delivered message differs from what was sent\n"
                             "first difference at byte %d\nsent:      %r\ndelivered: %r" % (
                                 _first_diff(body, expected), expected[:400], body[:400]))
    return trace


def _first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


class ServerDied(Exception):
    pass


class PosternServer:
    """One private `postern serve` with its own config and var_dir."""

    def __init__(self, workdir, binary=None, overrides=None, users=None, name="postern"):
        self.workdir = os.path.abspath(workdir)
        self.binary = binary or find_binary()
        self.name = name
        self.var_dir = os.path.join(self.workdir, "var")
        self.mail_dir = os.path.join(self.workdir, "mail")
        self.config_path = os.path.join(self.workdir, "postern.ini")
        self.log_path = os.path.join(self.workdir, "postern.log")
        (self.smtp_port, self.submission_port, self.smtps_port, self.bm_port, self.pop3_port,
         self.pop3s_port, self.dir_port) = free_ports(7)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.proc = None
        self._logf = None
        self.config = self._default_config()
        for section, kv in (overrides or {}).items():
            self.config.setdefault(section, {}).update(kv)
        os.makedirs(self.var_dir, exist_ok=True)
        os.makedirs(self.mail_dir, exist_ok=True)
        if os.environ.get("POSTERN_IT_OWN_CERT") == "1":
            self.use_own_cert()
        self.write_config()

    def use_own_cert(self):
        """Use a certificate made here with openssl instead of Postern's self-signed one."""
        d = os.path.join(self.workdir, "tls")
        os.makedirs(d, exist_ok=True)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=mx.postern.test", "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(key, 0o644)
        self.config["tls"]["tls_cert"] = cert
        self.config["tls"]["tls_key"] = key

    # ---- configuration -------------------------------------------------

    def _default_config(self):
        run_user = os.environ.get("POSTERN_IT_RUN_USER") or default_run_user()
        return {
            "server": {
                "hostname": "mx.postern.test",
                "var_dir": self.var_dir,
                "run_user": run_user,
                "log_level": os.environ.get("POSTERN_IT_LOG_LEVEL", "info"),
                "log_target": "stderr",
                "restart_delay": "1",
            },
            "tls": {
                "tls_min_version": "1.2",
            },
            "smtpd": {
                "smtp_listen": "127.0.0.1:%d" % self.smtp_port,
                "submission_listen": "127.0.0.1:%d" % self.submission_port,
                "smtps_listen": "127.0.0.1:%d" % self.smtps_port,
                "banner": "ESMTP Postern",
                "command_line_limit": "2048",
                "data_line_limit": "1000",
                "message_size_limit": "10M",
                "max_recipients": "100",
                "max_errors": "10",
                "command_timeout": "300",
                "data_timeout": "600",
                "max_connections": "1000",
                "max_connections_per_ip": "200",
                "vrfy": "no",
                "starttls": "yes",
                "auth_requires_tls": "yes",
            },
            "local": {
                "local_domains": "localhost, postern.test",
                "mail_dir": self.mail_dir,
            },
            "queue": {
                "queue_scan_interval": "5",
                "delivery_batch": "64",
            },
            # every server gets private ports: tests run side by side
            "bitmessage": {
                "listen": "127.0.0.1:%d" % self.bm_port,
            },
            "directory": {
                "listen": "127.0.0.1:%d" % self.dir_port,
            },
            "pop3": {
                "listen": "127.0.0.1:%d" % self.pop3_port,
                "pop3s_listen": "127.0.0.1:%d" % self.pop3s_port,
            },
        }

    def write_config(self):
        lines = ["# written by tests/it/pstharness.py"]
        for section, kv in self.config.items():
            lines.append("")
            lines.append("[%s]" % section)
            for k, v in kv.items():
                if v is None:
                    continue
                lines.append("%s = %s" % (k, v))
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def cfg(self, section, key):
        return self.config[section][key]

    # ---- CLI -----------------------------------------------------------

    def env(self):
        env = os.environ.copy()
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        return env

    def cli(self, *args, input=None, timeout=60, check=False):
        """Run `postern ARGS -c CONFIG`; returns CompletedProcess (bytes)."""
        argv = [self.binary] + list(args) + ["-c", self.config_path]
        cp = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout, env=self.env())
        if check and cp.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(argv), cp.returncode, cp.stdout.decode(errors="replace"),
                cp.stderr.decode(errors="replace")))
        return cp

    def add_user(self, name, password):
        self.cli("user", "add", name, input=password + "\n", check=True)
        self.users[name] = password

    # ---- process control ------------------------------------------------

    def restart(self, timeout=None):
        """Stop (SIGTERM, must exit 0) and start again on the same state."""
        status = self.stop()
        assert status == 0, "postern exited %s on SIGTERM\n%s" % (status, self.log_tail())
        return self.start(timeout=timeout, add_users=False)

    def start(self, timeout=None, add_users=True):
        if timeout is None:
            timeout = float(os.environ.get("POSTERN_IT_START_TIMEOUT", "60"))
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise RuntimeError("postern binary not found (set POSTERN_BIN)")
        for name, pw in list(self.users.items()) if add_users else []:
            self.add_user(name, pw)
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=self.env(),
                                     start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=60):
        """Wait until every enabled listener sends a 220 banner and pid files exist."""
        deadline = time.monotonic() + timeout
        ports = [(p, tls) for p, tls in ((self.smtp_port, False), (self.submission_port, False),
                                          (self.smtps_port, True)) if p]
        pending = list(ports)
        last_err = None
        while time.monotonic() < deadline:
            self.check_running()
            still = []
            for port, tls in pending:
                try:
                    banner_ok(port, tls=tls, timeout=5)
                except (OSError, ssl.SSLError, AssertionError) as e:
                    last_err = "%s: %s" % (port, e)
                    still.append((port, tls))
            pending = still
            if not pending and all(self.read_pid(n) for n in self.children() + ["postern"]):
                return
            time.sleep(0.1)
        raise ServerDied("postern not ready after %ss (last error: %s)\n%s" % (
            timeout, last_err, self.log_tail()))

    def children(self):
        """Names of the children this configuration runs."""
        names = ["smtpd", "qmgr"]
        if self.config.get("bitmessage", {}).get("enable", "yes") != "no":
            names.append("bmd")
        directory = self.config.get("directory", {})
        if directory.get("enable", "yes") != "no" and directory.get("listen", "x"):
            names.append("directoryd")
        pop3 = self.config.get("pop3", {})
        if pop3.get("listen", "x") or pop3.get("pop3s_listen", "x"):
            names.append("pop3d")
        return names

    def check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerDied("postern serve exited with %s\n%s" % (
                self.proc.returncode, self.log_tail()))

    def pid_path(self, name):
        return os.path.join(self.var_dir, "run", name + ".pid")

    def read_pid(self, name):
        try:
            with open(self.pid_path(name)) as f:
                txt = f.read().strip()
            return int(txt) if txt else None
        except (OSError, ValueError):
            return None

    def child_pid(self, name):
        """pid of child `name` if the pid file names a live child of our serve process."""
        pid = self.read_pid(name)
        if not pid or self.proc is None:
            return None
        try:
            with open("/proc/%d/status" % pid) as f:
                st = f.read()
        except OSError:
            return None
        m = re.search(r"^PPid:\s*(\d+)", st, re.M)
        if not m or int(m.group(1)) != self.proc.pid:
            return None
        return pid

    def stop(self, timeout=20):
        """SIGTERM the server; returns its exit status (None if it had to be killed)."""
        status = None
        if self.proc is None:
            return None
        children = [self.read_pid(n) for n in self.children()]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                status = None
        else:
            status = self.proc.returncode
        # Whatever is left in the process group dies now.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)
        self.leftover_children = [p for p in children if p and _alive(p)]
        for p in self.leftover_children:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self._logf:
            self._logf.close()
            self._logf = None
        self.exit_status = status
        self.proc = None
        return status

    # ---- log ------------------------------------------------------------

    def log_bytes(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def log_mark(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, mark):
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read()

    def log_tail(self, n=60):
        lines = self.log_bytes().splitlines()[-n:]
        return "---- %s (last %d lines) ----\n%s" % (
            self.log_path, len(lines), b"\n".join(lines).decode(errors="replace"))

    def sanitizer_findings(self, since=0):
        data = self.log_since(since) if os.path.exists(self.log_path) else b""
        for pat in SANITIZER_PATTERNS:
            m = pat.search(data)
            if m:
                start = max(0, m.start() - 200)
                return data[start:start + 4000].decode(errors="replace")
        return None

    # ---- Maildir --------------------------------------------------------

    def maildir(self, user):
        """{filename: bytes} of the delivered (new/ and cur/) messages of user."""
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.mail_dir, user, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                try:
                    with open(os.path.join(d, n), "rb") as f:
                        out[sub + "/" + n] = f.read()
                except FileNotFoundError:
                    pass
        return out

    def maildir_count(self, user):
        n = 0
        for sub in ("new", "cur"):
            try:
                n += len(os.listdir(os.path.join(self.mail_dir, user, sub)))
            except FileNotFoundError:
                pass
        return n

    def wait_for_message(self, user, token, timeout=30):
        """Bytes of the one message of user that contains token; waits for delivery."""
        if isinstance(token, str):
            token = token.encode()
        deadline = time.monotonic() + timeout
        while True:
            found = [v for v in self.maildir(user).values() if token in v]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise AssertionError("%d copies of %r in %s's Maildir" % (len(found), token, user))
            if time.monotonic() > deadline:
                raise AssertionError("message %r not delivered to %s within %ss\n%s" % (
                    token, user, timeout, self.log_tail(30)))
            self.check_running()
            time.sleep(0.05)

    def assert_not_delivered(self, user, token, wait=1.0):
        if isinstance(token, str):
            token = token.encode()
        time.sleep(wait)
        found = [k for k, v in self.maildir(user).items() if token in v]
        assert not found, "message %r should not have been delivered to %s: %r" % (token, user, found)

    # ---- convenience ------------------------------------------------------

    def address(self, user, domain="localhost"):
        return "%s@%s" % (user, domain)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/status" % pid) as f:
            return not re.search(r"^State:\s*Z", f.read(), re.M)
    except OSError:
        return False


def banner_ok(port, tls=False, timeout=5, host="127.0.0.1"):
    """Connect, expect a 220 banner, say QUIT. Raises on failure."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        if tls:
            s = client_tls_context().wrap_socket(s)
        c = RawClient(s, timeout=timeout)
        code, lines = c.reply()
        assert code == 220, "banner %r" % lines
        c.send(b"QUIT\r\n")
        try:
            c.reply()
        except OSError:
            pass
    finally:
        s.close()


class SMTPReplyError(AssertionError):
    pass


class RawClient:
    """Byte-exact SMTP client. reply() returns (code, [lines]) of one reply."""

    def __init__(self, sock, timeout=10):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.timeout = timeout

    @classmethod
    def connect(cls, port, tls=False, timeout=10, host="127.0.0.1"):
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            s = client_tls_context().wrap_socket(s)
        return cls(s, timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection (buffered: %r)" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def reply(self):
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if len(ln) < 3 or not ln[:3].isdigit():
                raise SMTPReplyError("malformed reply line %r" % ln)
            if len(ln) == 3 or ln[3:4] == b" ":
                return int(ln[:3]), lines
            if ln[3:4] != b"-":
                raise SMTPReplyError("malformed reply line %r" % ln)

    def cmd(self, line, expect=None):
        """Send line + CRLF, read one reply; check its code if expect is given.

        expect may be an int (exact code), a str prefix such as "5" or
        "550 5.1.1", or a tuple of those.
        """
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        code, lines = self.reply()
        if expect is not None:
            expect_reply(code, lines, expect, what=line[:80])
        return code, lines

    def expect(self, expect):
        code, lines = self.reply()
        expect_reply(code, lines, expect)
        return code, lines

    def ehlo(self, name="client.test"):
        code, lines = self.cmd("EHLO " + name, expect=250)
        return [ln[4:].decode(errors="replace") for ln in lines[1:]]

    def starttls(self):
        self.cmd("STARTTLS", expect=220)
        assert self.buf == b"", "data after 220 STARTTLS: %r" % self.buf
        self.sock = client_tls_context().wrap_socket(self.sock)

    def auth_plain(self, user, password, expect=235):
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.cmd("AUTH PLAIN " + tok, expect=expect)

    def read_until_closed(self, timeout=None):
        """Read until EOF; returns everything read (including buffered data)."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, TimeoutError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        return data

    def is_closed(self, wait=2.0):
        """True if the server closes the connection within wait seconds (data is discarded)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                continue
            try:
                chunk = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False


def expect_reply(code, lines, expect, what=b""):
    text = b"\n".join(lines).decode(errors="replace")
    opts = expect if isinstance(expect, tuple) else (expect,)
    for e in opts:
        if isinstance(e, int) and code == e:
            return
        if isinstance(e, str) and text.startswith(e):
            return
    raise SMTPReplyError("reply to %r was %r, expected %r" % (what, text, expect))


def message(token, subject=None, body=None, sender="sender@client.test", to="alice@localhost",
            extra_headers=b""):
    """A small RFC 5322 message (bytes, CRLF) carrying token in Message-ID and body."""
    subject = subject or "test " + token
    if body is None:
        body = b"Hello,\r\nthis is message %s.\r\n" % token.encode()
    hdr = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Mon, 24 Nov 2025 12:00:00 +0000\r\n"
           "Message-ID: <%s@client.test>\r\n" % (sender, to, subject, token)).encode()
    return hdr + extra_headers + b"\r\n" + body


def data_payload(msg):
    """What a client sends after 354: msg (CRLF lines) dot-stuffed, ended by CRLF . CRLF."""
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    return dot_stuff(msg) + b".\r\n"


def dot_stuff(data):
    """SMTP transparency (RFC 5321 4.5.2) for data with CRLF line ends."""
    out = []
    for ln in data.split(b"\r\n"):
        out.append(b"." + ln if ln.startswith(b".") else ln)
    return b"\r\n".join(out)


# ---------------------------------------------------------------------------
# Postfix


POSTFIX_SERVICES = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_available():
    """None if a private Postfix can run here, else the reason why not."""
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    for tool in ("/usr/sbin/postfix", "/usr/sbin/postconf"):
        if not os.access(tool, os.X_OK):
            return "%s not installed (apt-get install postfix)" % tool
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no 'postfix' user"
    return None


class PostfixPeer:
    """A private Postfix instance under workdir.

    mode="relay":   everything received goes to relayhost [127.0.0.1]:relay_port
                    (smtp_tls_security_level=may), nothing is local.
    mode="virtual": mail for virtual_domain is delivered by Postfix's virtual(8)
                    agent to <workdir>/vmail/<user>/ (Maildir, fsync'd).
    """

    def __init__(self, workdir, mode="relay", relay_port=None, virtual_domain="localhost",
                 virtual_user="user", extra_main=None):
        self.workdir = os.path.abspath(workdir)
        self.conf_dir = os.path.join(self.workdir, "conf")
        self.queue_dir = os.path.join(self.workdir, "queue")
        self.data_dir = os.path.join(self.workdir, "data")
        self.vmail_dir = os.path.join(self.workdir, "vmail")
        self.log_path = os.path.join(self.workdir, "maillog")
        self.port = free_ports(1)[0]
        self.mode = mode
        self.started = False
        os.makedirs(self.conf_dir, exist_ok=True)
        os.makedirs(self.queue_dir, mode=0o755, exist_ok=True)
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        pf = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pf.pw_uid, pf.pw_gid)
        # Postfix insists that every parent of its queue directory is owned by
        # root and not writable by others; a pytest tmp dir is fine (root, 0700).
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "peer.postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "$myhostname",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "maillog_file": self.log_path,
            "maillog_file_prefixes": self.workdir,
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "disable_dns_lookups": "yes",
            "smtputf8_enable": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_banner": "$myhostname ESMTP",
            "default_process_limit": "100",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "in_flow_delay": "0",
            "message_size_limit": "52428800",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "command_directory": "/usr/sbin",
            "manpage_directory": "/usr/share/man",
            "sample_directory": "/usr/share/doc/postfix",
            "readme_directory": "no",
            "html_directory": "no",
        }
        if mode == "relay":
            main.update({
                "relayhost": "[127.0.0.1]:%d" % relay_port,
                "smtp_tls_security_level": "may",
                "smtp_tls_loglevel": "1",
                "default_transport": "smtp",
                "relay_transport": "smtp",
                # Retry fast: a test waits for the message.
                "queue_run_delay": "2s",
                "minimal_backoff_time": "2s",
                "maximal_backoff_time": "4s",
            })
        elif mode == "virtual":
            vu = pwd.getpwnam("nobody")
            os.makedirs(self.vmail_dir, exist_ok=True)
            os.chown(self.vmail_dir, vu.pw_uid, vu.pw_gid)
            self.virtual_maildir = os.path.join(self.vmail_dir, virtual_user)
            main.update({
                "virtual_mailbox_domains": virtual_domain,
                "virtual_mailbox_base": self.vmail_dir,
                "virtual_mailbox_maps": "static:%s/" % virtual_user,
                "virtual_uid_maps": "static:%d" % vu.pw_uid,
                "virtual_gid_maps": "static:%d" % vu.pw_gid,
                "virtual_minimum_uid": "1",
                "virtual_mailbox_limit": "0",
                "virtual_destination_concurrency_limit": "20",
                "default_transport": "error:no remote delivery in benchmark",
            })
        else:
            raise ValueError(mode)
        main.update(extra_main or {})
        with open(os.path.join(self.conf_dir, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf_dir, "master.cf"), "w") as f:
            f.write(POSTFIX_SERVICES.format(listen="127.0.0.1:%d" % self.port))
        # A few files postfix-script and postfix check look for.
        for fn in ("dynamicmaps.cf", "postfix-files"):
            src = os.path.join("/etc/postfix", fn)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(self.conf_dir, fn))

    def _postfix(self, *args, check=True, timeout=60):
        cp = subprocess.run(["/usr/sbin/postfix", "-c", self.conf_dir] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if check and cp.returncode != 0:
            raise RuntimeError("postfix %s failed (%d): %s\n%s" % (
                " ".join(args), cp.returncode, cp.stdout.decode(errors="replace"), self.log_tail()))
        return cp

    def start(self, timeout=30):
        self._postfix("start")
        self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                c = RawClient(s, timeout=5)
                code, _ = c.reply()
                c.send(b"QUIT\r\n")
                c.close()
                if code == 220:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("private postfix did not answer on port %d\n%s" % (
            self.port, self.log_tail()))

    def stop(self):
        if not self.started:
            return
        self._postfix("stop", check=False)
        self.started = False
        # master needs a moment to release its lock and ports.
        pidf = os.path.join(self.queue_dir, "pid", "master.pid")
        for _ in range(100):
            if not os.path.exists(pidf):
                break
            try:
                with open(pidf) as f:
                    pid = int(f.read().strip())
                if not _alive(pid):
                    break
            except (OSError, ValueError):
                break
            time.sleep(0.1)

    def flush(self):
        self._postfix("flush", check=False)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "---- postfix %s ----\n%s" % (self.log_path, "\n".join(self.log().splitlines()[-n:]))

    def virtual_count(self):
        n = 0
        for sub in ("new", "cur"):
            try:
                n += len(os.listdir(os.path.join(self.virtual_maildir, sub)))
            except FileNotFoundError:
                pass
        return n


def need_tool(path, package):
    if not (os.path.exists(path) and os.access(path, os.X_OK)):
        __import__("pytest").skip("%s not installed (apt-get install %s)" % (path, package))
    return path


def assert_alive(srv, service="smtp", user="alice"):
    """A fresh client can still deliver a message through srv.

    service: "smtp" (plain, no AUTH), "submission" (STARTTLS + AUTH) or
    "smtps" (implicit TLS + AUTH).
    """
    tok = "alive" + uuid.uuid4().hex
    port = {"smtp": srv.smtp_port, "submission": srv.submission_port,
            "smtps": srv.smtps_port}[service]
    with RawClient.connect(port, tls=(service == "smtps")) as c:
        c.expect(220)
        c.ehlo()
        if service == "submission":
            c.starttls()
            c.ehlo()
        if service != "smtp":
            c.auth_plain(user, srv.users[user])
        c.cmd("MAIL FROM:<probe@client.test>", expect=250)
        c.cmd("RCPT TO:<%s@localhost>" % user, expect=250)
        c.cmd("DATA", expect=354)
        msg = message(tok, to=user + "@localhost")
        c.send(data_payload(msg))
        c.expect(250)
        c.cmd("QUIT", expect=221)
    content = srv.wait_for_message(user, tok)
    check_delivered(content, "probe@client.test", user + "@localhost", msg)
    return content
