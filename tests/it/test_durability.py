"""Durability: messages acknowledged with 250 survive kill -9 of smtpd and qmgr.

Several smtplib clients send POSTERN_IT_DURABILITY_MESSAGES (default 2000)
messages while a thread kill -9's the smtpd and qmgr children (pids from
var/run/*.pid) at random moments. Clients retry on connection errors and
4xx; each attempt carries its own Message-ID. At the end (kills stopped,
queue drained):
  - every attempt that got 250 is in the Maildir exactly once,
  - every attempt that did not get 250 is there at most once,
  - every Maildir file is complete and byte exact,
  - no spool file was declared corrupt and the queue is empty.
"""

import os
import queue
import random
import re
import signal
import smtplib
import threading
import time

import pstharness as h

SENDER = "load@client.test"
RCPT = "alice@localhost"
CLIENTS = 6


def _body(rnd, size):
    lines = []
    total = 0
    while total < size:
        n = rnd.randint(0, 200)
        ln = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 .,-") for _ in range(n))
        if rnd.random() < 0.05:
            ln = "." + ln
        lines.append(ln.encode())
        total += len(ln) + 2
    return b"\r\n".join(lines) + b"\r\n"


class Load:
    def __init__(self, srv, n, seed=4242):
        self.srv = srv
        self.todo = queue.Queue()
        for i in range(n):
            self.todo.put(i)
        self.lock = threading.Lock()
        self.attempts = {}  # attempt id -> (message bytes, acknowledged)
        self.hard_failures = []
        self.seed = seed
        self.reconnects = 0

    def record(self, aid, msg, ok):
        with self.lock:
            self.attempts[aid] = (msg, ok)

    def client(self, cid):
        rnd = random.Random(self.seed * 100 + cid)
        s = None
        while True:
            try:
                i = self.todo.get_nowait()
            except queue.Empty:
                break
            for k in range(200):
                aid = "d%05d-a%03d" % (i, k)
                msg = h.message(aid, sender=SENDER, to=RCPT,
                                body=_body(rnd, rnd.choice([300, 2000, 10000, 40000])))
                try:
                    if s is None:
                        s = smtplib.SMTP("127.0.0.1", self.srv.smtp_port,
                                         local_hostname="load%d.client.test" % cid, timeout=30)
                        s.ehlo()
                    refused = s.sendmail(SENDER, [RCPT], msg)
                    assert not refused
                    self.record(aid, msg, True)
                    break
                except smtplib.SMTPResponseException as e:
                    self.record(aid, msg, False)
                    if not 400 <= e.smtp_code < 500:
                        self.hard_failures.append((aid, e.smtp_code, e.smtp_error))
                        break
                except (smtplib.SMTPException, OSError):
                    self.record(aid, msg, False)
                s = _drop(s)
                with self.lock:
                    self.reconnects += 1
                time.sleep(0.05 + rnd.random() * 0.2)
            else:
                self.hard_failures.append((i, "gave up after 200 attempts", b""))
        _quit(s)


def _drop(s):
    if s is not None:
        try:
            s.close()
        except OSError:
            pass
    return None


def _quit(s):
    if s is not None:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


class Killer(threading.Thread):
    def __init__(self, srv, seed=99):
        super().__init__(daemon=True)
        self.srv = srv
        self.stop = threading.Event()
        self.rnd = random.Random(seed)
        self.kills = {"smtpd": 0, "qmgr": 0}

    def run(self):
        while not self.stop.wait(self.rnd.uniform(0.2, 1.5)):
            which = self.rnd.choice(["smtpd", "qmgr"])
            pid = self.srv.child_pid(which)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills[which] += 1
                except ProcessLookupError:
                    pass


def _wait_children(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.child_pid("smtpd") and srv.child_pid("qmgr"):
            return
        time.sleep(0.1)
    raise AssertionError("children not restarted after the kills\n" + srv.log_tail())


MID = re.compile(rb"^Message-ID: <(d\d{5}-a\d{3})@client\.test>$", re.M)


def test_kill9_smtpd_and_qmgr_under_load(make_server):
    n = int(os.environ.get("POSTERN_IT_DURABILITY_MESSAGES", "2000"))
    srv = make_server(overrides={"server": {"restart_delay": "1"},
                                 "queue": {"queue_scan_interval": "2"}})
    load = Load(srv, n)
    killer = Killer(srv)
    threads = [threading.Thread(target=load.client, args=(c,), daemon=True)
               for c in range(CLIENTS)]
    t0 = time.monotonic()
    killer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    killer.stop.set()
    killer.join(10)
    send_time = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "clients still running after 15 minutes"
    assert not load.hard_failures, "permanent failures: %r" % load.hard_failures[:10]
    assert killer.kills["smtpd"] > 0 and killer.kills["qmgr"] > 0, killer.kills

    # Let the supervisor bring both children back, then let the queue drain.
    _wait_children(srv)
    srv.cli("queue", "flush")
    acked = {aid for aid, (_, ok) in load.attempts.items() if ok}
    assert len(acked) == n, "%d of %d messages acknowledged" % (len(acked), n)
    deadline = time.monotonic() + 300
    last = -1
    while time.monotonic() < deadline:
        files = srv.maildir("alice")
        ids = set()
        for content in files.values():
            m = MID.search(content)
            if m:
                ids.add(m.group(1).decode())
        if acked <= ids:
            break
        if len(files) != last:
            last = len(files)
        time.sleep(0.5)
    time.sleep(1)  # anything still in flight for unacknowledged attempts

    files = srv.maildir("alice")
    seen = {}
    problems = []
    for name, content in files.items():
        m = MID.search(content)
        if not m:
            problems.append("%s: no Message-ID (truncated?): %r" % (name, content[:200]))
            continue
        aid = m.group(1).decode()
        seen.setdefault(aid, []).append(name)
        if aid not in load.attempts:
            problems.append("%s: unknown message %s" % (name, aid))
            continue
        try:
            h.check_delivered(content, SENDER, RCPT, load.attempts[aid][0])
        except AssertionError as e:
            problems.append("%s (%s): content differs: %s" % (name, aid, str(e)[:300]))
    for aid, names in seen.items():
        if len(names) > 1:
            problems.append("%s delivered %d times: %r" % (aid, len(names), names))
    missing = sorted(acked - set(seen))
    if missing:
        problems.append("%d acknowledged messages missing, e.g. %r" % (len(missing), missing[:10]))

    corrupt_dir = os.path.join(srv.var_dir, "spool", "corrupt")
    if os.path.isdir(corrupt_dir) and os.listdir(corrupt_dir):
        problems.append("spool files declared corrupt: %r" % os.listdir(corrupt_dir)[:10])
    ql = srv.cli("queue", "list")
    leftover = re.findall(rb"\b[0-9A-Fa-f]{16}\b", ql.stdout)
    if leftover:
        problems.append("queue not empty at the end: %r" % leftover[:10])

    unacked_present = len([a for a in seen if a not in acked])
    print("durability: %d messages, %d attempts, %d reconnects, kills %r, %.1fs sending, "
          "%d unacknowledged attempts delivered once" % (
              n, len(load.attempts), load.reconnects, killer.kills, send_time, unacked_present))
    assert not problems, "\n".join(problems[:30])
