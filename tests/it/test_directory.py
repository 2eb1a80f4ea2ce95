"""Directory (directoryd) integration tests against real `postern serve` processes.

Two nodes peered over Bitmessage: A runs the directory (and is alice's mail
server, postern.test being one of its local domains); B owns carol's
Bitmessage address. A person registers alice@postern.test -> carol's BM
address through the form (Python urllib with a cookie jar), the test reads
the confirmation mail from A's Maildir and the Bitmessage confirmation from
B's Maildir, follows both links (GET shows a button, POST confirms), and the
query API then answers the pair in XML and JSON.

Hostile input goes in with curl: huge and malformed query strings, SQL and
XML metacharacters, forged and reused links, posts without a CSRF token,
an invalid BM checksum, an over-long body, rate-limit exhaustion; each
must get a clear 4xx and change nothing (checked through the admin API).

Every test runs on both stores: SQLite (the default, one file per server)
and PostgreSQL ([directory] database = postgresql) on the session's private
server (conftest.py pg_server, tests/it/pgserver.py), one fresh database per
module shared by both nodes. test_two_instances_share_postgresql shows two
directory instances on one database: a listing confirmed on one is answered
by the other, and a used link is refused by the other.
"""

import http.cookiejar
import itertools
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import pstharness as h
from test_bitmessage import FAST, SEND_TIMEOUT, new_address

BM_OK = "BM-2cWFkyuXXFw6d393RGnin2RpSXj8wxtt6F"
BM_BAD = "BM-2cWFkyuXXFw6d393RGnin2RpSXj8wxtt6G"
LINK = re.compile(rb"https://[^\s/]+(/confirm\?t=[A-Za-z0-9_-]+)")
# PostgreSQL first: a test parametrising dir_backend with ["postgresql"] alone (index 0)
# then shares the module's PostgreSQL nodes instead of starting them again (pytest
# groups module-scoped parameters by their index).
BACKENDS = ("postgresql", "sqlite")
_dbseq = itertools.count(1)


@pytest.fixture(scope="module", params=BACKENDS)
def dir_backend(request):
    """The directory store under test: "sqlite" (default) or "postgresql"."""
    return request.param


def backend_config(request, backend, name="dir"):
    """[directory] keys selecting backend: {} for SQLite (the default, in each server's
    var_dir); for PostgreSQL database = postgresql and pg_conninfo naming a fresh
    database on the session's server (host=<socket dir>, reachable by run_user)."""
    if backend == "sqlite":
        return {}
    assert backend == "postgresql", backend
    pg = request.getfixturevalue("pg_server")
    dbname = "%s_%d_%d" % (re.sub(r"[^a-z0-9_]", "_", name.lower())[:40], os.getpid(),
                           next(_dbseq))
    return {"database": "postgresql", "pg_conninfo": pg.createdb(dbname)}


def dir_server(make, peers=(), **dirx):
    bm = dict(FAST)
    bm["peers"] = " ".join("127.0.0.1:%d" % p.bm_port for p in peers)
    srv = make(start=False, overrides={"bitmessage": bm})
    d = {"max_requests_per_ip": "40", "max_requests_per_address": "5",
         "base_url": "https://127.0.0.1:%d" % srv.dir_port}
    d.update(dirx)
    srv.config["directory"].update(d)
    srv.write_config()
    srv.start()
    wait_dir(srv)
    return srv


def wait_peered(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(rb"bm.peer.*established", srv.log_bytes()):
            return
        time.sleep(0.2)
    raise AssertionError("no established peers\n" + srv.log_tail(40))


def wait_dir(srv, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = Client(srv).get("/style.css")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("directoryd does not answer on %d\n%s" % (srv.dir_port, srv.log_tail()))


class Client:
    """urllib with a cookie jar, not verifying the self-signed certificate."""

    def __init__(self, srv):
        self.base = "https://127.0.0.1:%d" % srv.dir_port
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.ctx),
            urllib.request.HTTPCookieProcessor(self.jar))

    def req(self, method, path, data=None, headers=None):
        body = urllib.parse.urlencode(data).encode() if isinstance(data, dict) else data
        r = urllib.request.Request(self.base + path, data=body, method=method,
                                   headers=headers or {})
        try:
            with self.opener.open(r, timeout=20) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, path, headers=None):
        return self.req("GET", path, headers=headers)

    def csrf(self, path="/"):
        status, _, body = self.get(path)
        assert status == 200, body
        return re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()

    def post_form(self, path, fields, csrf=True):
        fields = dict(fields)
        if csrf:
            fields["csrf"] = self.csrf()
        return self.req("POST", path, fields,
                        {"Content-Type": "application/x-www-form-urlencoded"})

    def follow(self, link_path):
        """Open a confirmation link (GET: a page with a button) and press the button."""
        status, _, page = self.get(link_path)
        assert status == 200 and b'action="/confirm"' in page, page
        t = re.search(rb'name="t" value="([^"]+)"', page).group(1).decode()
        csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        return self.req("POST", "/confirm", {"t": t, "csrf": csrf},
                        {"Content-Type": "application/x-www-form-urlencoded"})


def curl(srv, *args):
    """(status, headers text, body bytes) of one curl call."""
    cp = subprocess.run(["curl", "-sk", "-i", "--max-time", "20"] + list(args),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out = cp.stdout
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/[\d.]+ (\d+)", head)
    assert m, "curl %s: %r %r" % (args, out[:200], cp.stderr)
    return int(m.group(1)), head.decode(errors="replace"), body


def url(srv, path):
    return "https://127.0.0.1:%d%s" % (srv.dir_port, path)


def admin_token(srv):
    with open(os.path.join(srv.var_dir, "directory-admin.token")) as f:
        return f.read().strip()


def records(srv):
    c = Client(srv)
    status, _, body = c.get("/api/v1/admin/records?state=all&limit=1000",
                            {"Authorization": "Bearer " + admin_token(srv)})
    assert status == 200, body
    return json.loads(body)["records"]


@pytest.fixture(scope="module")
def nodes(make_module_server, dir_backend, request):
    """(a, b): both run the directory; on PostgreSQL they share one database. A module
    importing `nodes` picks the store with its own `dir_backend` fixture."""
    db = backend_config(request, dir_backend, "nodes")
    b = dir_server(make_module_server, **db)
    a = dir_server(make_module_server, peers=[b], **db)
    wait_peered(a)
    return a, b


def test_form_and_security_headers(nodes):
    a, _ = nodes
    status, head, body = curl(a, url(a, "/"))
    assert status == 200
    for hdr in ("Content-Security-Policy: default-src 'self'", "X-Content-Type-Options: nosniff",
                "Referrer-Policy: no-referrer", "Strict-Transport-Security: max-age="):
        assert hdr in head, head
    assert re.search(r"Set-Cookie: __Host-dirc=[A-Za-z0-9_-]+; Path=/; Secure; HttpOnly; "
                     r"SameSite=Strict", head), head
    assert b'<html lang="en">' in body and b'<label for="smtp">' in body
    assert b"<script" not in body
    status, head, _ = curl(a, url(a, "/style.css"))
    assert status == 200 and "text/css" in head


def test_register_confirm_both_and_query(nodes):
    a, b = nodes
    carol = new_address(b, "carol")
    c = Client(a)
    status, _, page = c.post_form("/register", {"smtp": "alice@postern.test", "alt": carol})
    assert status == 200 and b"Check both inboxes" in page, page
    mail = a.wait_for_message("alice", b"/confirm?t=", timeout=60)
    assert b"Auto-Submitted: auto-generated" in mail
    bm = b.wait_for_message("carol", carol.encode(), timeout=SEND_TIMEOUT)
    link_mail = LINK.search(mail).group(1).decode()
    link_bm = LINK.search(bm).group(1).decode()
    assert link_mail != link_bm
    # a link scanner fetching the link changes nothing
    Client(a).get(link_mail)
    status, _, xml = c.get("/doquery?smtpaddress=alice%40postern.test")
    assert status == 200 and xml == b"<xml></xml>"
    # the mail link in one browser, the Bitmessage link in another
    status, _, page = Client(a).follow(link_mail)
    assert status == 200 and b"not live yet" in page, page
    status, _, page = Client(a).follow(link_bm)
    assert status == 200 and b"Your listing is live" in page, page
    # a used link is refused and changes nothing
    status, _, page = Client(a).follow(link_mail)
    assert status == 410 and b"already used" in page
    status, head, xml = c.get("/doquery?smtpaddress=alice%40postern.test")
    assert status == 200
    assert xml == ("<xml><record><smtp_address>alice@postern.test</smtp_address>"
                   "<bitmessage_address>%s</bitmessage_address></record></xml>" % carol).encode()
    assert "max-age=60" in head.get("Cache-Control", "")
    status, _, _ = c.get("/doquery?smtpaddress=alice%40postern.test",
                         {"If-None-Match": head["ETag"]})
    assert status == 304
    status, _, js = c.get("/api/v1/lookup?address=Alice%40POSTERN.test")
    assert json.loads(js) == {"address": "alice@postern.test",
                              "alternatives": [{"type": "bitmessage", "address": carol}]}
    status, _, js = c.get("/doquery?smtpaddress=alice%40postern.test",
                          {"Accept": "application/json"})
    assert json.loads(js)["alternatives"][0]["address"] == carol
    status, _, js = c.get("/api/v1/reverse?address=" + carol)
    assert json.loads(js)["smtp_addresses"] == ["alice@postern.test"]
    # removal: a link to the SMTP address, then gone
    status, _, page = c.post_form("/remove", {"smtp": "alice@postern.test"})
    assert status == 200, page
    deadline = time.monotonic() + 60
    while True:
        links = [LINK.search(m).group(1).decode() for m in a.maildir("alice").values()
                 if b"removal" in m and LINK.search(m)]
        if links or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(links) == 1
    status, _, page = Client(a).follow(links[0])
    assert status == 200 and b"Listing removed" in page
    time.sleep(1.1)  # the ETag version is re-read at most every second
    status, _, xml = c.get("/doquery?smtpaddress=alice%40postern.test")
    assert xml == b"<xml></xml>"


def test_hostile_input_changes_nothing(nodes):
    a, _ = nodes
    before = records(a)
    q = url(a, "/doquery?smtpaddress=")
    cases = [
        (curl(a, q + "a" * 5000), (400, 414)),
        (curl(a, url(a, "/doquery?" + "&".join("k%d=1" % i for i in range(40)))), (400, 414)),
        (curl(a, url(a, "/" + "x" * 9000)), (400, 404, 413, 414)),
        (curl(a, q + "%zz"), (400,)),
        (curl(a, q + "a%00b%40example.org"), (400,)),
        (curl(a, q + "%27%3B%20DROP%20TABLE%20dir_records%3B--"), (400,)),
        (curl(a, q + "%3Cx%3E%26%40example.org"), (400,)),
        (curl(a, url(a, "/api/v1/lookup?address=%C0%80")), (400,)),
        (curl(a, url(a, "/api/v1/reverse?address=" + BM_BAD)), (400,)),
        # forged / malformed links
        (curl(a, url(a, "/confirm?t=%3Cscript%3E")), (400,)),
        # POST without CSRF token / cookie
        (curl(a, "--data-urlencode", "smtp=x@postern.test", "--data-urlencode",
              "alt=" + BM_OK, url(a, "/register")), (403,)),
        (curl(a, "--data", "t=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", url(a, "/confirm")),
         (403,)),
        (curl(a, "--data", "smtp=x%40postern.test", url(a, "/remove")), (403,)),
        # body over the limit
        (curl(a, "--data", "smtp=" + "a" * 20000, url(a, "/register")), (400, 413)),
        # wrong methods, unknown pages
        (curl(a, "-X", "PUT", url(a, "/register")), (400, 405, 501)),
        (curl(a, url(a, "/nope")), (404,)),
        # admin without/with a wrong token
        (curl(a, url(a, "/api/v1/admin/records")), (401,)),
        (curl(a, "-H", "Authorization: Bearer nope", "-X", "DELETE",
              url(a, "/api/v1/admin/records/1")), (401,)),
    ]
    for (status, head, body), want in cases:
        assert status in want, (status, want, head, body[:300])
    assert b"<x>" not in b"".join(c[0][2] for c in cases)
    # with a real cookie and token: forged link, invalid BM checksum, SQL metacharacters
    c = Client(a)
    status, _, page = c.post_form("/register", {"smtp": "mallory@postern.test", "alt": BM_BAD})
    assert status == 400 and b'role="alert"' in page
    status, _, page = c.post_form("/register", {"smtp": "x'; DROP TABLE dir_records;--@a.example",
                                                "alt": BM_OK})
    assert status == 400
    status, _, page = c.post_form("/register", {"smtp": "<b>@postern.test", "alt": BM_OK})
    assert status == 400 and b"<b>@" not in page
    status, _, page = c.req("POST", "/confirm", {"t": "A" * 43, "csrf": c.csrf()},
                            {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 404 and b"not valid" in page
    assert records(a) == before


def test_xml_specials_escaped(nodes):
    a, _ = nodes
    tok = admin_token(a)
    status, head, body = curl(a, "-H", "Authorization: Bearer " + tok, "-H",
                              "Content-Type: application/json", "--data",
                              json.dumps({"smtp": "o'neil&co@postern.test", "alt": BM_OK}),
                              url(a, "/api/v1/admin/records"))
    assert status == 201, body
    rid = json.loads(body)["id"]
    status, _, xml = curl(a, url(a, "/doquery?smtpaddress=o%27neil%26co%40postern.test"))
    assert b"<smtp_address>o&apos;neil&amp;co@postern.test</smtp_address>" in xml
    status, _, body = curl(a, "-H", "Authorization: Bearer " + tok, "-X", "DELETE",
                           url(a, "/api/v1/admin/records/%d" % rid))
    assert status == 200 and json.loads(body)["state"] == "removed"
    status, _, body = curl(a, "-H", "Authorization: Bearer " + tok, "-X", "DELETE",
                           url(a, "/api/v1/admin/records/%d" % rid))
    assert status == 409


def test_admin_token_file_mode(nodes):
    a, _ = nodes
    st = os.stat(os.path.join(a.var_dir, "directory-admin.token"))
    assert st.st_mode & 0o777 == 0o600


def test_rate_limit_per_ip(make_server, dir_backend, request):
    srv = dir_server(make_server, max_requests_per_ip="3",
                     **backend_config(request, dir_backend, "ratelimit"))
    c = Client(srv)
    got = []
    for i in range(4):
        status, _, page = c.post_form("/register", {"smtp": "u%d@postern.test" % i, "alt": BM_OK})
        got.append(status)
    assert got[3] == 429, got
    before = records(srv)
    status, _, page = c.post_form("/register", {"smtp": "u9@postern.test", "alt": BM_OK})
    assert status == 429 and b"Too many requests" in page
    assert records(srv) == before


@pytest.mark.parametrize("dir_backend", ["postgresql"], indirect=True, scope="module")
def test_two_instances_share_postgresql(nodes):
    """Two `postern serve` with directory listeners on different ports, one PostgreSQL
    database: a listing confirmed through instance 1 (a) is answered by instance 2 (b),
    a pending pair is refused on b, and links used on a are refused on b (once only)."""
    a, b = nodes
    assert a.dir_port != b.dir_port
    assert a.cfg("directory", "database") == "postgresql"
    assert a.cfg("directory", "pg_conninfo") == b.cfg("directory", "pg_conninfo")
    carol = new_address(b, "carol")
    q = "/doquery?smtpaddress=bob%40postern.test"
    status, head, xml = Client(b).get(q)
    assert status == 200 and xml == b"<xml></xml>"
    etag_before, asked = head["ETag"], time.monotonic()
    status, _, page = Client(a).post_form("/register", {"smtp": "bob@postern.test", "alt": carol})
    assert status == 200 and b"Check both inboxes" in page, page
    # the pending pair is in the shared database: b refuses to register it again
    status, _, page = Client(b).post_form("/register", {"smtp": "Bob@postern.test", "alt": carol})
    assert status == 409, (status, page)
    mail = a.wait_for_message("bob", b"/confirm?t=", timeout=60)
    bm = b.wait_for_message("carol", carol.encode(), timeout=SEND_TIMEOUT)
    link_mail = LINK.search(mail).group(1).decode()
    link_bm = LINK.search(bm).group(1).decode()
    status, _, page = Client(a).follow(link_mail)
    assert status == 200 and b"not live yet" in page, page
    status, _, page = Client(a).follow(link_bm)
    assert status == 200 and b"Your listing is live" in page, page
    # instance 2 answers the listing confirmed on instance 1, with a new ETag (b re-reads
    # the shared version at most every second)
    time.sleep(max(0.0, 1.1 - (time.monotonic() - asked)))
    status, head, xml = Client(b).get(q, {"If-None-Match": etag_before})
    assert status == 200 and head["ETag"] != etag_before
    assert xml == ("<xml><record><smtp_address>bob@postern.test</smtp_address>"
                   "<bitmessage_address>%s</bitmessage_address></record></xml>" % carol).encode()
    status, _, js = Client(b).get("/api/v1/lookup?address=BOB%40postern.test")
    assert status == 200
    assert json.loads(js) == {"address": "bob@postern.test",
                              "alternatives": [{"type": "bitmessage", "address": carol}]}
    status, _, js = Client(b).get("/api/v1/reverse?address=" + carol)
    assert json.loads(js)["smtp_addresses"] == ["bob@postern.test"]
    # links used on instance 1 are refused on instance 2, and change nothing
    before = records(b)
    for link in (link_mail, link_bm):
        status, _, page = Client(b).follow(link)
        assert status == 410 and b"already used" in page, (status, page)
    assert records(b) == before == records(a)
    live = [r for r in before if r["smtp"] == "bob@postern.test"]
    assert len(live) == 1 and live[0]["state"] == "live", before
