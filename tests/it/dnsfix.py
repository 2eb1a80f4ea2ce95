"""dnsfix - DNS and remote-MX fixtures for the outbound delivery tests.

Only the Python standard library is used (Debian's /usr/bin/python3).

DnsServer   a private dnsmasq (Debian package dnsmasq-base, /usr/sbin/dnsmasq)
            on 127.0.0.1:<free port> serving a few records for *.test:
                dns.add_mx("remote.test", "mx1.remote.test", 10)
                dns.add_a("mx1.remote.test", "127.0.0.2")
                dns.add_null_mx("nullmx.test")           # RFC 7505 "MX 0 ."
                dns.add_servfail("broken.test")          # forwarded to a dead server
                dns.start()
                cfg = {"dns": {"resolver": dns.resolver, "dns_timeout": "3"}}
            Every other name under .test is NXDOMAIN (--local=/test/); a name
            with only an A record answers MX queries with NOERROR/no data.
            query(name, "MX") asks it directly (tiny DNS client, UDP) so the
            fixture can prove its own records.
FakeMX      a scriptable SMTP server in a Python thread on (127.0.0.x, port):
            records every connection, command and message; per-test hooks
            decide replies (defer the first RCPT, reject, hang, send garbage,
            drop the connection in DATA, ...).
PostfixMX   a PostfixPeer in "virtual" mode listening on 127.0.0.x:port with
            STARTTLS (self-signed certificate, smtpd_tls_received_header=yes),
            delivering every recipient of its domain to one Maildir.
common_free_port(addrs), dead_udp_port(), short_dir()   ports and directories.
outbound_config(), submit(), wait_log(), queue_ids(), wait_dsn(), check_dsn(),
assert_same_message()   helpers shared by test_outbound*.py and test_hostile_mx.py.

libunbound note: its built-in local zone for "test." answers NXDOMAIN unless
the resolver is configured with `local-zone: "test." transparent` (checked
with libunbound 1.17 and this dnsmasq); POSTERN_IT_DNS_ZONE=example runs
every test under .example instead, which libunbound forwards as is.
"""

import email
import email.policy
import os
import random
import re
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pstharness as h

DNSMASQ = "/usr/sbin/dnsmasq"

# Top-level domain of every test name. RFC 6761 reserves "test"; note that
# libunbound answers NXDOMAIN for it from a built-in local zone unless told
# `local-zone: "test." transparent` (POSTERN_IT_DNS_ZONE=example avoids that).
ZONE = os.environ.get("POSTERN_IT_DNS_ZONE", "test")

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


# ---------------------------------------------------------------------------
# ports


def port_free_on(addrs, port):
    """True if TCP port is free on every address of addrs (bind test)."""
    socks = []
    try:
        for a in addrs:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def common_free_port(addrs):
    """A TCP port free on every address in addrs (all MX hosts share [client] smtp_port)."""
    for _ in range(200):
        p = h.free_ports(1)[0]
        if port_free_on(addrs, p):
            return p
    raise RuntimeError("no common free port on %r" % (addrs,))


def short_dir(workdir, prefix):
    """A fresh 0711 directory next to workdir (so kept or removed with it) with a short path.

    Postfix's queue directory must be short: its UNIX sockets
    (queue/private/proxywrite ...) must fit the 108 bytes of sun_path, and
    Postfix exits silently when they do not.
    """
    dd = tempfile.mkdtemp(prefix=prefix + "-", dir=os.path.dirname(os.path.abspath(workdir)))
    os.chmod(dd, 0o711)
    return dd


def dead_udp_port():
    """A UDP port on 127.0.0.1 with nothing listening (a moment ago)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---------------------------------------------------------------------------
# a tiny DNS client (RFC 1035), enough to check the fixture's own answers


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_name(msg, pos, depth=0):
    """(name, next_pos) of a possibly compressed name at pos."""
    labels = []
    jumped_end = None
    while True:
        if pos >= len(msg) or depth > 20:
            raise ValueError("bad name")
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[pos + 1]
            if jumped_end is None:
                jumped_end = pos + 2
            pos = ptr
            depth += 1
            continue
        pos += 1
        if n == 0:
            break
        labels.append(msg[pos:pos + n].decode("ascii", "replace"))
        pos += n
    name = ".".join(labels) if labels else "."
    return name, (jumped_end if jumped_end is not None else pos)


def dns_query(server, port, name, qtype="MX", timeout=2.0):
    """Ask server:port once over UDP. Returns (rcode_name, [answers]).

    answers: for MX (pref, host) tuples (host "." for a null MX), for A the
    dotted address, else raw rdata bytes. Raises socket.timeout when nobody
    answers.
    """
    qid = random.randint(0, 0xFFFF)
    qt = QTYPES[qtype] if isinstance(qtype, str) else int(qtype)
    pkt = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack(
        "!HH", qt, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(pkt, (server, port))
        while True:
            msg, _ = s.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack("!H", msg[:2])[0] == qid:
                break
    finally:
        s.close()
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    rcode = RCODES.get(flags & 0xF, str(flags & 0xF))
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(msg, pos)
        pos += 4
    answers = []
    for _ in range(an):
        _, pos = _read_name(msg, pos)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if rtype == 15 and rtype == qt:
            pref = struct.unpack("!H", rdata[:2])[0]
            host, _ = _read_name(msg, pos + 2)
            answers.append((pref, host))
        elif rtype == 1 and rtype == qt:
            answers.append(socket.inet_ntoa(rdata))
        elif rtype == qt:
            answers.append(rdata)
        pos += rdlen
    return rcode, answers


# ---------------------------------------------------------------------------
# dnsmasq


def dnsmasq_available():
    if not os.access(DNSMASQ, os.X_OK):
        return "%s not installed (apt-get install dnsmasq-base)" % DNSMASQ
    return None


class DnsServer:
    """A private dnsmasq answering for *.<zone> (default ZONE) from the records given
    before start(); every other name in the zone is NXDOMAIN."""

    def __init__(self, workdir, port=None, zone=None):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port
        self.zone = zone or ZONE
        self.mx = []          # (domain, host, pref)
        self.a = []           # (host, addr)
        self.null_mx = []     # domains
        self.servfail = []    # domains forwarded to a dead server
        self.log_path = os.path.join(self.workdir, "dnsmasq.log")
        self.proc = None
        self._out = None

    # ---- records (before start) ------------------------------------------

    def add_mx(self, domain, host, pref=10):
        self.mx.append((domain, host, int(pref)))
        return self

    def add_a(self, host, addr):
        self.a.append((host, addr))
        return self

    def add_null_mx(self, domain):
        self.null_mx.append(domain)
        return self

    def add_servfail(self, domain):
        self.servfail.append(domain)
        return self

    @property
    def resolver(self):
        """Value for [dns] resolver."""
        return "127.0.0.1@%d" % self.port

    def argv(self):
        argv = [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--bind-interfaces", "--listen-address=127.0.0.1", "--port=%d" % self.port,
                "--log-queries", "--log-facility=%s" % self.log_path,
                "--pid-file=%s" % os.path.join(self.workdir, "dnsmasq.pid"),
                "--cache-size=0", "--no-negcache", "--local-ttl=1",
                # Names under .test that have no record here are NXDOMAIN, never forwarded.
                "--local=/%s/" % self.zone]
        if os.geteuid() == 0:
            argv.append("--user=root")
        for domain, host, pref in self.mx:
            argv.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        for host, addr in self.a:
            argv.append("--host-record=%s,%s" % (host, addr))
        for domain in self.null_mx:
            # RFC 7505: MX 0 "." - RDATA is preference 0 (2 bytes) and the root name (one 0 byte).
            argv.append("--dns-rr=%s,15,000000" % domain)
        if self.servfail:
            dead = dead_udp_port()
            for domain in self.servfail:
                argv.append("--server=/%s/127.0.0.1#%d" % (domain, dead))
        return argv

    def start(self, timeout=10):
        why = dnsmasq_available()
        if why:
            raise RuntimeError(why)
        last = None
        for _attempt in range(5):
            if self.port is None or _attempt:
                self.port = dead_udp_port()
            self._out = open(os.path.join(self.workdir, "dnsmasq.out"), "ab")
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError as e:
                last = e
                self.stop()
        raise last

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited with %s: %s" % (self.proc.returncode,
                                                                    self.output()))
            try:
                rcode, _ = dns_query("127.0.0.1", self.port, "ready-probe." + self.zone, "A",
                                     timeout=0.3)
                if rcode == "NXDOMAIN":
                    return
            except (socket.timeout, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("dnsmasq not answering on port %d: %s" % (self.port, self.output()))

    def output(self):
        try:
            with open(os.path.join(self.workdir, "dnsmasq.out"), "rb") as f:
                return f.read().decode(errors="replace")[-2000:]
        except OSError:
            return ""

    def query(self, name, qtype="MX", timeout=2.0):
        return dns_query("127.0.0.1", self.port, name, qtype, timeout)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def queries_for(self, name):
        """Number of queries dnsmasq logged for name (any type)."""
        return len(re.findall(r"query\[[A-Z0-9]+\] %s from" % re.escape(name), self.log()))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._out:
            self._out.close()
            self._out = None


# ---------------------------------------------------------------------------
# a scriptable SMTP server


class FakeMXSession:
    """State of one connection, handed to the hooks."""

    def __init__(self, mx, sock, index):
        self.mx = mx
        self.sock = sock
        self.index = index          # 0 for the first connection to this server
        self.t = time.monotonic()   # when it was accepted
        self.buf = b""
        self.commands = []          # raw command lines (bytes, without CRLF)
        self.mail_from = None
        self.rcpts = []
        self.helo = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self, text):
        """Send one reply; text may hold several lines separated by \\n."""
        if isinstance(text, bytes):
            text = text.decode()
        lines = text.split("\n")
        out = []
        for i, ln in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(ln[:3] + sep + ln[4:] if len(ln) > 3 else ln)
        self.send("\r\n".join(out) + "\r\n")

    def line(self, limit=1 << 20):
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ConnectionError("line too long")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed")
            self.buf += chunk
        i = self.buf.find(b"\n")
        ln, self.buf = self.buf[:i], self.buf[i + 1:]
        return ln[:-1] if ln.endswith(b"\r") else ln

    def read_data(self):
        """Read a DATA payload up to CRLF.CRLF; returns the unstuffed bytes (CRLF kept)."""
        lines = []
        while True:
            ln = self.line()
            if ln == b".":
                break
            if ln.startswith(b"."):
                ln = ln[1:]
            lines.append(ln + b"\r\n")
        return b"".join(lines)


class FakeMX:
    """A threaded SMTP server on (addr, port) for tests.

    Hooks (all optional) receive the FakeMXSession:
      on_connect(s)            -> None (normal greeting) or True (the hook did everything;
                                  the connection is closed when it returns)
      on_command(s, verb, line) -> None (normal handling) or a reply string, or True
                                  (the hook handled it itself)
      on_data(s, payload)      -> None ("250 2.0.0 ok") or a reply string
    Received messages: self.messages, a list of dicts {mail_from, rcpts, data, conn}.
    """

    def __init__(self, addr, port, name="fake-mx.test", on_connect=None, on_command=None,
                 on_data=None, starttls=False):
        self.addr = addr
        self.port = port
        self.name = name
        self.on_connect = on_connect
        self.on_command = on_command
        self.on_data = on_data
        self.lock = threading.Lock()
        self.messages = []
        self.sessions = []
        self.errors = []
        self._stop = threading.Event()
        self._threads = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def connections(self):
        with self.lock:
            return len(self.sessions)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            with self.lock:
                s = FakeMXSession(self, c, len(self.sessions))
                self.sessions.append(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, s):
        s.sock.settimeout(120)
        try:
            if self.on_connect and self.on_connect(s):
                return
            s.reply("220 %s ESMTP fake" % self.name)
            while not self._stop.is_set():
                ln = s.line()
                s.commands.append(ln)
                verb = ln.split(b" ", 1)[0].split(b":", 1)[0].upper().decode(errors="replace")
                if self.on_command:
                    r = self.on_command(s, verb, ln)
                    if r is True:
                        continue
                    if r is not None:
                        s.reply(r)
                        if r.startswith("421"):
                            return
                        if verb == "DATA" and r.startswith("354"):
                            self._data(s)
                        continue
                if not self._default(s, verb, ln):
                    return
        except (ConnectionError, OSError, socket.timeout) as e:
            with self.lock:
                self.errors.append("conn %d: %s" % (s.index, e))
        finally:
            try:
                s.sock.close()
            except OSError:
                pass

    def _default(self, s, verb, ln):
        if verb in ("EHLO", "HELO"):
            s.helo = ln[5:].decode(errors="replace")
            if verb == "EHLO":
                s.reply("250 %s\n250 PIPELINING\n250 8BITMIME\n250 ENHANCEDSTATUSCODES\n"
                        "250 SIZE 52428800" % self.name)
            else:
                s.reply("250 %s" % self.name)
        elif verb == "MAIL":
            s.mail_from = _angle(ln)
            s.rcpts = []
            s.reply("250 2.1.0 ok")
        elif verb == "RCPT":
            if s.mail_from is None:
                s.reply("503 5.5.1 MAIL first")
                return True
            s.rcpts.append(_angle(ln))
            s.reply("250 2.1.5 ok")
        elif verb == "DATA":
            if not s.rcpts:
                s.reply("554 5.5.1 no valid recipients")
                return True
            s.reply("354 go ahead")
            self._data(s)
        elif verb == "RSET":
            s.mail_from, s.rcpts = None, []
            s.reply("250 2.0.0 ok")
        elif verb == "NOOP":
            s.reply("250 2.0.0 ok")
        elif verb == "QUIT":
            s.reply("221 2.0.0 bye")
            return False
        else:
            s.reply("502 5.5.2 not implemented")
        return True

    def _data(self, s):
        payload = s.read_data()
        r = self.on_data(s, payload) if self.on_data else None
        if r is None or r.startswith("2"):
            with self.lock:
                self.messages.append({"mail_from": s.mail_from, "rcpts": list(s.rcpts),
                                      "data": payload, "conn": s.index})
        s.reply(r or "250 2.0.0 ok: queued")
        s.mail_from, s.rcpts = None, []

    def wait_messages(self, n=1, timeout=20, what=None):
        """Wait until at least n messages arrived (containing `what` if given)."""
        if isinstance(what, str):
            what = what.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = [m for m in self.messages if what is None or what in m["data"]]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return None

    def close(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            sessions = list(self.sessions)
        for s in sessions:
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.sock.close()
            except OSError:
                pass
        self._acceptor.join(2)


def _angle(ln):
    m = re.search(rb"<([^>]*)>", ln)
    return m.group(1).decode(errors="replace") if m else ln.decode(errors="replace")


# ---------------------------------------------------------------------------
# Postfix as the remote MX


def make_self_signed(directory, cn):
    """A self-signed P-256 certificate for cn (also as subjectAltName): (cert, key) paths."""
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=DNS:" + cn, "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o600)
    return cert, key


class PostfixMX(h.PostfixPeer):
    """A private Postfix acting as the MX of `domain` on addr:port, with STARTTLS.

    Every recipient @domain lands in self.virtual_maildir (Maildir, virtual(8)).
    """

    def __init__(self, workdir, addr, port, domain="remote.test", user="bob", tls=True,
                 extra_main=None):
        main = {
            # 127.0.0.x other than .1 is no interface address: Postfix refuses it in
            # inet_interfaces, but master.cf may still listen on it explicitly.
            "inet_interfaces": "loopback-only",
            "myhostname": "mx1." + domain,
            "smtpd_tls_received_header": "yes",
            "smtpd_tls_loglevel": "1",
        }
        self._tls_dir = os.path.join(os.path.abspath(workdir), "tls")
        if tls:
            cert, key = make_self_signed(self._tls_dir, "mx1." + domain)
            main.update({
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": cert,
                "smtpd_tls_key_file": key,
            })
        else:
            main["smtpd_tls_security_level"] = "none"
        main.update(extra_main or {})
        super().__init__(workdir, mode="virtual", virtual_domain=domain, virtual_user=user,
                         extra_main=main)
        self.addr = addr
        self.port = port
        self.domain = domain
        self.cert = os.path.join(self._tls_dir, "cert.pem") if tls else None
        with open(os.path.join(self.conf_dir, "master.cf"), "w") as f:
            f.write(h.POSTFIX_SERVICES.format(listen="%s:%d" % (addr, port)))

    def start(self, timeout=30):
        self._postfix("start")
        self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                h.banner_ok(self.port, host=self.addr, timeout=5)
                return self
            except (OSError, AssertionError):
                time.sleep(0.2)
        raise RuntimeError("postfix MX did not answer on %s:%d\n%s" % (
            self.addr, self.port, self.log_tail()))

    def maildir_files(self):
        """{name: bytes} of the delivered messages."""
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.virtual_maildir, sub)
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

    def wait_for(self, token, timeout=25):
        """Bytes of the one delivered message containing token (None on timeout)."""
        if isinstance(token, str):
            token = token.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [v for v in self.maildir_files().values() if token in v]
            if len(found) > 1:
                raise AssertionError("%d copies of %r at the remote MX" % (len(found), token))
            if found:
                return found[0]
            time.sleep(0.1)
        return None


# ---------------------------------------------------------------------------
# helpers shared by the outbound tests

QID_RE = re.compile(rb"queued as ([0-9A-Fa-f]{16})")
TRANSIT_HEADERS = (b"return-path", b"x-original-to", b"delivered-to", b"received")


def outbound_config(resolver, smtp_port, **sections):
    """Overrides for make_server: fast retries, the fixture resolver, MX port smtp_port.

    resolver: a DnsServer or an "addr@port" string.
    sections: extra {key: value} per section, e.g. client={"tls_policy": "encrypt"}.
    """
    if not isinstance(resolver, str):
        resolver = resolver.resolver
    cfg = {
        "dns": {"resolver": resolver, "dns_timeout": "3"},
        "client": {"smtp_port": str(smtp_port), "connect_timeout": "3",
                   "command_timeout": "10", "tls_policy": "may"},
        "queue": {"first_retry": "1", "max_retry_interval": "2", "queue_scan_interval": "1",
                  "delay_warning": "0"},
    }
    for section, kv in sections.items():
        cfg.setdefault(section, {}).update(kv)
    return cfg


def submit(srv, rcpts, msg, sender="alice@localhost", user="alice", service="submission"):
    """Send msg through srv; returns the queue id.

    service "submission": STARTTLS + AUTH PLAIN as user on the submission port;
    "smtp": plain port 25 without AUTH (the client must be in trusted_networks).
    """
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    port = srv.submission_port if service == "submission" else srv.smtp_port
    with h.RawClient.connect(port) as c:
        c.expect(220)
        c.ehlo()
        if service == "submission":
            c.starttls()
            c.ehlo()
            c.auth_plain(user, srv.users[user])
        c.cmd("MAIL FROM:<%s>" % sender, expect=250)
        for r in rcpts:
            c.cmd("RCPT TO:<%s>" % r, expect=250)
        c.cmd("DATA", expect=354)
        c.send(h.data_payload(msg))
        _, lines = c.expect(250)
        try:
            c.cmd("QUIT")
        except (OSError, h.SMTPReplyError):
            pass
    m = QID_RE.search(lines[-1])
    assert m, "no queue id in %r" % lines
    return m.group(1).decode()


def split_transit(content):
    """(names, rest): the leading trace header fields added in transit, then the rest."""
    names = []
    pos = 0
    while pos < len(content):
        m = re.match(rb"([A-Za-z0-9-]+):", content[pos:pos + 100])
        if not m or m.group(1).lower() not in TRANSIT_HEADERS:
            break
        end = content.find(b"\n", pos)
        if end < 0:
            break
        end += 1
        while end < len(content) and content[end:end + 1] in (b" ", b"\t"):
            nl = content.find(b"\n", end)
            end = len(content) if nl < 0 else nl + 1
        names.append(m.group(1).decode())
        pos = end
    return names, content[pos:]


def assert_same_message(got, sent, crlf):
    """got is sent apart from trace header fields prepended in transit.

    crlf: True when got keeps SMTP's CRLF (a FakeMX), False for a Maildir (LF).
    """
    want = sent if sent.endswith(b"\r\n") else sent + b"\r\n"
    if not crlf:
        want = h.smtp_normalize(sent)
    names, rest = split_transit(got)
    if rest != want:
        i = next((k for k, (x, y) in enumerate(zip(rest, want)) if x != y), min(len(rest),
                                                                              len(want)))
        raise AssertionError("relayed message differs from what was submitted (trace headers "
                             "%r), first difference at byte %d of %d/%d\nsent:     %r\n"
                             "received: %r" % (names, i, len(want), len(rest),
                                               want[max(0, i - 80):i + 120],
                                               rest[max(0, i - 80):i + 120]))
    return names


def log_lines(srv, *needles, since=0):
    """Lines of srv's log (from byte offset since) containing every needle."""
    needles = [n.encode() if isinstance(n, str) else n for n in needles]
    data = srv.log_since(since) if os.path.exists(srv.log_path) else b""
    return [ln for ln in data.splitlines() if all(n in ln for n in needles)]


def wait_log(srv, *needles, timeout=20, since=0):
    """The first log line containing every needle; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = log_lines(srv, *needles, since=since)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError("no log line with %r within %ss\n%s" % (
                needles, timeout, srv.log_tail(25)))
        srv.check_running()
        time.sleep(0.1)


def queue_ids(srv):
    """Queue ids listed by `postern queue list` (any queue: incoming, deferred, hold)."""
    cp = srv.cli("queue", "list", check=True)
    return [q.decode() for q in re.findall(rb"^([0-9A-Fa-f]{16})", cp.stdout, re.M)]


def queue_line(srv, qid):
    cp = srv.cli("queue", "list", check=True)
    for ln in cp.stdout.splitlines():
        if ln.startswith(qid.encode()):
            return ln.decode(errors="replace")
    return None


def wait_queue_empty(srv, qid=None, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        ids = queue_ids(srv)
        if (qid not in ids) if qid else not ids:
            return
        if time.monotonic() > deadline:
            raise AssertionError("still queued after %ss: %r\n%s" % (
                timeout, ids, srv.log_tail(25)))
        time.sleep(0.2)


def wait_dsn(srv, user, token, timeout=25):
    """(raw bytes, email.message.Message) of the bounce in user's Maildir that quotes token."""
    if isinstance(token, str):
        token = token.encode()
    deadline = time.monotonic() + timeout
    while True:
        found = [v for v in srv.maildir(user).values() if token in v]
        if len(found) > 1:
            raise AssertionError("%d bounces quoting %r in %s's Maildir" % (
                len(found), token, user))
        if found:
            return found[0], email.message_from_bytes(found[0], policy=email.policy.compat32)
        if time.monotonic() > deadline:
            raise AssertionError("no bounce quoting %r in %s's Maildir within %ss\n%s" % (
                token, user, timeout, srv.log_tail(25)))
        srv.check_running()
        time.sleep(0.1)


def check_dsn(raw, msg, final_rcpts, status_re=r"5\.\d{1,3}\.\d{1,3}", diagnostic=None,
              to="alice@localhost"):
    """Assert msg (parsed) is an RFC 3464 failure report for final_rcpts; returns the
    per-recipient field blocks as a list of dicts (lower-case keys)."""
    assert raw.startswith(b"Return-Path: <>\n"), "bounce must have a null envelope sender: %r" % (
        raw[:200],)
    assert not msg.defects, "MIME defects in the bounce: %r" % msg.defects
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert (msg.get_param("report-type") or "").lower() == "delivery-status", msg["Content-Type"]
    assert "mailer-daemon" in (msg["From"] or "").lower(), "From: %r" % msg["From"]
    assert to in (msg["To"] or ""), "To: %r" % msg["To"]
    assert msg["Date"] and msg["Message-ID"], "bounce lacks Date or Message-ID"
    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) in (2, 3), "parts: %r" % (
        [p.get_content_type() for p in parts] if isinstance(parts, list) else parts)
    assert parts[0].get_content_type() == "text/plain", parts[0].get_content_type()
    assert parts[1].get_content_type() == "message/delivery-status", parts[1].get_content_type()
    if len(parts) == 3:
        assert parts[2].get_content_type() in ("message/rfc822", "text/rfc822-headers"), (
            parts[2].get_content_type())
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, "delivery-status blocks: %r" % blocks
    per_msg = blocks[0]
    assert per_msg["Reporting-MTA"], "no Reporting-MTA in %r" % per_msg.items()
    recips = []
    for b in blocks[1:]:
        recips.append({k.lower(): v for k, v in b.items()})
    got = sorted(re.sub(r"(?i)^rfc822;\s*", "", r.get("final-recipient", "")).strip().lower()
                 for r in recips)
    assert got == sorted(a.lower() for a in final_rcpts), "Final-Recipient %r, wanted %r" % (
        got, final_rcpts)
    for r in recips:
        assert (r.get("action") or "").strip().lower() == "failed", r
        assert re.fullmatch(status_re, (r.get("status") or "").strip()), (
            "Status %r does not match %r" % (r.get("status"), status_re))
        if diagnostic:
            diag = re.sub(r"\s+", " ", r.get("diagnostic-code") or "")
            assert diagnostic in diag, "Diagnostic-Code %r lacks %r" % (diag, diagnostic)
    return recips
