"""Outbound durability: relayed messages survive kill -9 of qmgr and smtpd.

Like test_durability.py, but every message goes out: six smtplib clients
(trusted_networks, no AUTH) send POSTERN_IT_OUTBOUND_MESSAGES (default 500)
messages for bob@remote.<zone>, whose MX is a private Postfix with STARTTLS
on 127.0.0.2 (tests/it/dnsfix.py), while a thread kill -9's the qmgr and
smtpd children at random moments. At the end (kills stopped, queue drained):
  - every attempt acknowledged with 250 is in Postfix's Maildir at least once,
    complete and byte exact (apart from trace headers added in transit);
  - duplicates are counted and printed. SMTP cannot avoid them entirely
    (RFC 5321 6.1: a kill after the remote "250" to DATA and before the
    queue manager records it re-sends the message), so the test asserts only
    duplicates <= qmgr kills x dest_concurrency (each kill can catch at most
    one message per open connection in that window);
  - nothing bounced, no spool file was declared corrupt, the queue is empty.
A first probe message must arrive within 30 s, so the test fails fast where
outbound delivery does not work at all.
"""

import os
import queue
import random
import re
import signal
import smtplib
import threading
import time

import pytest

import dnsfix as d
import pstharness as h

Z = d.ZONE
MX_ADDR = "127.0.0.2"
SENDER = "load@client.test"
RCPT = "bob@remote." + Z
CLIENTS = 6
CONCURRENCY = 4
MID = re.compile(rb"^Message-ID: <(o\d{5}-a\d{3})@client\.test>$", re.M)


def _body(rnd, size):
    lines, total = [], 0
    while total < size:
        n = rnd.randint(0, 200)
        ln = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 .,-") for _ in range(n))
        if rnd.random() < 0.05:
            ln = "." + ln
        lines.append(ln.encode())
        total += len(ln) + 2
    return b"\r\n".join(lines) + b"\r\n"


class Load:
    def __init__(self, srv, n, seed=4711):
        self.srv = srv
        self.todo = queue.Queue()
        for i in range(n):
            self.todo.put(i)
        self.lock = threading.Lock()
        self.attempts = {}  # attempt id -> (message, acknowledged)
        self.hard_failures = []
        self.reconnects = 0
        self.seed = seed

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
                aid = "o%05d-a%03d" % (i, k)
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
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
                    s = None
                with self.lock:
                    self.reconnects += 1
                time.sleep(0.05 + rnd.random() * 0.2)
            else:
                self.hard_failures.append((i, "gave up after 200 attempts", b""))
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass


class Killer(threading.Thread):
    def __init__(self, srv, seed=77):
        super().__init__(daemon=True)
        self.srv = srv
        self.stop = threading.Event()
        self.rnd = random.Random(seed)
        self.kills = {"smtpd": 0, "qmgr": 0}

    def run(self):
        while not self.stop.wait(self.rnd.uniform(0.3, 1.5)):
            # qmgr twice as often: outbound delivery is what this test is about
            which = self.rnd.choice(["smtpd", "qmgr", "qmgr"])
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


def _delivered(mx):
    """{attempt id: [(file name, content)]} of the remote Maildir, plus unparsable files."""
    seen, bad = {}, []
    for name, content in mx.maildir_files().items():
        m = MID.search(content)
        if not m:
            bad.append((name, content))
            continue
        seen.setdefault(m.group(1).decode(), []).append((name, content))
    return seen, bad


def test_outbound_kill9_qmgr_and_smtpd(make_server, workdir, token):
    why = h.postfix_available() or d.dnsmasq_available()
    if why:
        pytest.skip(why)
    n = int(os.environ.get("POSTERN_IT_OUTBOUND_MESSAGES", "500"))
    dns = d.DnsServer(os.path.join(workdir, "dns"))
    dns.add_mx("remote." + Z, "mx1.remote." + Z, 10).add_a("mx1.remote." + Z, MX_ADDR)
    dns.start()
    port = d.common_free_port([MX_ADDR])
    mx = d.PostfixMX(d.short_dir(workdir, "pmx"), MX_ADDR, port, domain="remote." + Z,
                     user="bob", extra_main={"default_process_limit": "200"})
    mx.start()
    try:
        _run(make_server, dns, port, mx, n, token)
    finally:
        mx.stop()
        dns.stop()


def _run(make_server, dns, port, mx, n, token):
    overrides = d.outbound_config(dns, port, server={"restart_delay": "1"},
                                  smtpd={"trusted_networks": "127.0.0.0/8"},
                                  queue={"dest_concurrency": str(CONCURRENCY),
                                         "queue_scan_interval": "2"})
    srv = make_server(overrides=overrides)

    # Fail fast when outbound delivery does not work at all.
    probe = h.message(token, sender=SENDER, to=RCPT)
    d.submit(srv, [RCPT], probe, sender=SENDER, service="smtp")
    assert mx.wait_for(token, timeout=30) is not None, (
        "probe message not delivered to the remote MX within 30s\n%s\n%s" % (
            srv.log_tail(30), mx.log_tail(15)))

    load = Load(srv, n)
    killer = Killer(srv)
    threads = [threading.Thread(target=load.client, args=(c,), daemon=True)
               for c in range(CLIENTS)]
    t0 = time.monotonic()
    killer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    # Keep killing a little longer: the queue manager is still sending.
    time.sleep(3)
    killer.stop.set()
    killer.join(10)
    send_time = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "clients still running after 10 minutes"
    assert not load.hard_failures, "permanent failures: %r" % load.hard_failures[:10]
    assert killer.kills["qmgr"] > 0 and killer.kills["smtpd"] > 0, killer.kills

    _wait_children(srv)
    srv.cli("queue", "flush")
    acked = {aid for aid, (_, ok) in load.attempts.items() if ok}
    assert len(acked) == n, "%d of %d messages acknowledged" % (len(acked), n)

    # Drain: wait for every acknowledged message; fail when nothing moves for 60 s.
    last_count, last_progress = -1, time.monotonic()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        seen, _ = _delivered(mx)
        if acked <= set(seen):
            break
        if len(seen) != last_count:
            last_count, last_progress = len(seen), time.monotonic()
        elif time.monotonic() - last_progress > 60:
            break
        time.sleep(0.5)
    # Whatever is still in flight (unacknowledged attempts, retries).
    drained = ""
    try:
        d.wait_queue_empty(srv, timeout=60)
    except AssertionError as e:
        drained = str(e)[:2000]
    time.sleep(2)

    seen, bad = _delivered(mx)
    problems = ["%s: no Message-ID (truncated?): %r" % (nm, c[:300]) for nm, c in bad
                if token.encode() not in c]
    duplicates = []
    for aid, files in seen.items():
        if aid not in load.attempts:
            problems.append("%s: unknown message %s" % (files[0][0], aid))
            continue
        for name, content in files:
            try:
                d.assert_same_message(content, load.attempts[aid][0], crlf=False)
            except AssertionError as e:
                problems.append("%s (%s): content differs: %s" % (name, aid, str(e)[:400]))
        if len(files) > 1:
            duplicates.append((aid, len(files), load.attempts[aid][1]))
    missing = sorted(acked - set(seen))
    if missing:
        problems.append("%d acknowledged messages never reached the remote MX, e.g. %r" % (
            len(missing), missing[:10]))
    extra_copies = sum(k - 1 for _, k, _ in duplicates)
    allowed = killer.kills["qmgr"] * CONCURRENCY
    if extra_copies > allowed:
        problems.append("%d duplicate copies > %d qmgr kills x dest_concurrency %d" % (
            extra_copies, killer.kills["qmgr"], CONCURRENCY))

    if drained:
        problems.append(drained)
    bounced = d.log_lines(srv, "status=bounced")
    if bounced:
        problems.append("%d bounces, e.g. %r" % (len(bounced), bounced[:3]))
    corrupt_dir = os.path.join(srv.var_dir, "spool", "corrupt")
    if os.path.isdir(corrupt_dir) and os.listdir(corrupt_dir):
        problems.append("spool files declared corrupt: %r" % os.listdir(corrupt_dir)[:10])
    leftover = d.queue_ids(srv)
    if leftover:
        problems.append("queue not empty at the end: %r" % leftover[:10])

    unacked_present = len([a for a in seen if a not in acked])
    print("\noutbound durability: %d messages, %d attempts, %d reconnects, kills %r, %.1fs "
          "sending; %d unacknowledged attempts delivered; %d messages duplicated "
          "(%d extra copies, allowed %d)" % (
              n, len(load.attempts), load.reconnects, killer.kills, send_time,
              unacked_present, len(duplicates), extra_copies, allowed))
    for aid, k, ok in sorted(duplicates)[:50]:
        print("  duplicate: %s delivered %d times (acknowledged: %s)" % (aid, k, ok))
    assert not problems, "\n".join(problems[:30])
