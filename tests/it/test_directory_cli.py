"""`postern directory import|list|show|remove|lookup` end to end: a CSV of a
few hundred rows and the seed's XML into the SQLite store, all-or-nothing and
--partial, hostile files, then lookups through `postern serve`'s directory
listener with the gateway's client (skipped until directoryd answers on
[directory] listen).

Every test runs on both stores: SQLite (the default) and PostgreSQL
([directory] database = postgresql) with a fresh database per test on the
session's private server (conftest.py pg_server, tests/it/pgserver.py)."""

import hashlib
import http.client
import json
import os
import re
import ssl
import time

import pytest

import pstharness as h
from test_directory import BACKENDS, backend_config

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58(data):
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return out or "1"


def bm_address(k, version=4, stream=1):
    """A valid Bitmessage address (checksum included) made from the number k."""
    ripe = hashlib.sha256(b"postern-dir-it-%d" % k).digest()[:20]
    ripe = b"\x01" + ripe[1:]  # no leading zero byte to strip
    payload = bytes([version, stream]) + ripe
    check = hashlib.sha512(hashlib.sha512(payload).digest()).digest()[:4]
    return "BM-" + _b58(payload + check)


def bad_checksum(addr):
    last = addr[-1]
    return addr[:-1] + ("2" if last != "2" else "3")


@pytest.fixture(scope="module", params=BACKENDS)
def dir_backend(request):
    """The directory store under test: "sqlite" (default) or "postgresql"."""
    return request.param


@pytest.fixture
def dsrv(postern_bin, workdir, dir_backend, request):
    srv = h.PosternServer(workdir, binary=postern_bin,
                          overrides={"server": {"log_level": "warn"},
                                     "directory": backend_config(request, dir_backend,
                                                                 request.node.name)})
    cp = srv.cli("directory", "list")
    if b"unknown command" in cp.stderr:
        pytest.skip("this postern binary has no `directory` command yet")
    return srv


def write(srv, name, text, mode="w"):
    path = os.path.join(srv.workdir, name)
    with open(path, mode, newline="" if mode == "w" else None) as f:
        f.write(text)
    return path


def out(cp):
    return cp.stdout.decode(errors="replace")


def err(cp):
    return cp.stderr.decode(errors="replace")


def live_rows(srv, state="live"):
    cp = srv.cli("directory", "list", "--state", state, check=True)
    lines = out(cp).splitlines()
    assert lines[0].split("\t")[0] == "ID"
    return [ln.split("\t") for ln in lines[1:]]


def csv_rows(n, start=0):
    """n rows smtp,type,alternative with RFC 4180 quoting here and there, CRLF."""
    rows = ["smtp_address,type,alternative_address"]
    for i in range(start, start + n):
        smtp = "user%d@Example%d.ORG" % (i, i % 7)
        if i % 3 == 0:
            rows.append('"%s","bitmessage","%s"' % (smtp, bm_address(i)))
        elif i % 3 == 1:
            rows.append("%s,bitmessage,%s" % (smtp, bm_address(i)))
        else:
            rows.append('%s,dmail,"dmail://mx%d.example.org/in"' % (smtp, i))
    return "\r\n".join(rows) + "\r\n"


def test_import_csv_few_hundred(dsrv):
    path = write(dsrv, "listings.csv", csv_rows(300))
    cp = dsrv.cli("directory", "import", path)
    assert cp.returncode == 0, err(cp)
    assert "300 rows, 300 accepted, 0 rejected" in out(cp)
    rows = live_rows(dsrv)
    assert len(rows) == 300
    # domains were lower-cased, the local part kept
    assert any(r[3] == "user1@example1.org" and r[4] == bm_address(1) for r in rows)
    assert any(r[2] == "dmail" and r[4] == "dmail://mx2.example.org/in" for r in rows)
    # the same file again: every row is a duplicate, nothing changes
    cp = dsrv.cli("directory", "import", path)
    assert cp.returncode == 1
    assert "300 rejected" in out(cp)
    assert "duplicate" in out(cp)
    assert len(live_rows(dsrv)) == 300


def test_import_all_or_nothing_and_partial(dsrv):
    text = csv_rows(20)
    text += "bad1@example.org,bitmessage,%s\r\n" % bad_checksum(bm_address(500))  # line 22
    text += "not an address,bitmessage,%s\r\n" % bm_address(501)                 # line 23
    text += '"unterminated@example.org,bitmessage,%s\r\n' % bm_address(502)      # line 24
    path = write(dsrv, "mixed.csv", text)
    cp = dsrv.cli("directory", "import", path)
    assert cp.returncode == 1
    assert "20 accepted, 3 rejected" in out(cp)
    assert "nothing stored" in out(cp)
    e = err(cp)
    assert re.search(r"line 22: rejected: .*checksum", e), e
    assert "line 23: rejected" in e
    assert "line 24: rejected" in e
    assert live_rows(dsrv) == []
    cp = dsrv.cli("directory", "import", path, "--partial")
    assert cp.returncode == 0, err(cp)
    assert "stored 20 listings" in out(cp)
    assert len(live_rows(dsrv)) == 20


def test_import_seed_xml_and_show(dsrv):
    recs = []
    for i in range(50):
        recs.append("<record><smtp_address>x%d@example.net</smtp_address>"
                    "<bitmessage_address>%s</bitmessage_address></record>" % (i, bm_address(1000 + i)))
    recs.append("<record><smtp_address>both@example.net</smtp_address>"
                "<bitmessage_address>%s</bitmessage_address>"
                "<dmail_address>dmail://mx.example.net/both</dmail_address></record>"
                % bm_address(2000))
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n' + "\n".join(recs) + "\n</xml>\n"
    path = write(dsrv, "seed.xml", xml)
    cp = dsrv.cli("directory", "import", path)
    assert cp.returncode == 0, err(cp)
    assert "52 accepted" in out(cp)
    cp = dsrv.cli("directory", "show", "BOTH@example.NET", check=True)
    assert out(cp).count("state: live") == 2
    assert "dmail://mx.example.net/both" in out(cp)
    cp = dsrv.cli("directory", "show", bm_address(1007), check=True)
    assert "smtp_address: x7@example.net" in out(cp)
    cp = dsrv.cli("directory", "show", "nobody@example.net")
    assert cp.returncode == 1


def test_import_hostile_files(dsrv):
    laughs = ('<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
              '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
              '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
              "<xml><record><smtp_address>&c;@x.org</smtp_address></record></xml>\n")
    deep = "<xml><record>" + "<a>" * 10000
    xxe = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           "<xml><record><smtp_address>&x;</smtp_address></record></xml>")
    for name, text, want in (("laughs.xml", laughs, "DOCTYPE not allowed"),
                             ("xxe.xml", xxe, "DOCTYPE not allowed"),
                             ("deep.xml", deep, "nested too deep"),
                             ("bad.xml", "<xml><record></xml>", "line 1"),
                             ("hdr.csv", "smtp_address,password\r\na@b.org,x\r\n",
                              "unknown column")):
        path = write(dsrv, name, text)
        cp = dsrv.cli("directory", "import", path, "--partial")
        assert cp.returncode == 1, (name, out(cp))
        assert want in err(cp), (name, err(cp))
        assert "nothing stored" in err(cp)
    # a huge field and control characters: rejected rows, printed safely
    big = "a" * 200000 + "@example.org,bitmessage,%s\r\n" % bm_address(1)
    ctl = "\x1b[31mred@example.org,bitmessage,%s\r\n" % bm_address(2)
    path = write(dsrv, "big.csv", "smtp_address,type,alternative_address\r\n" + big + ctl)
    cp = dsrv.cli("directory", "import", path)
    assert cp.returncode == 1
    assert "field too long" in out(cp)
    assert b"\x1b" not in cp.stderr and b"\x1b" not in cp.stdout
    assert dsrv.cli("directory", "import", os.path.join(dsrv.workdir, "missing.csv")).returncode == 1
    assert live_rows(dsrv) == []


def test_show_remove_list(dsrv):
    path = write(dsrv, "three.csv", "a@example.org,%s\nb@example.org,%s\nc@example.org,%s\n" % (
        bm_address(1), bm_address(2), bm_address(3)))
    assert dsrv.cli("directory", "import", path).returncode == 0
    ids = {r[3]: r[0] for r in live_rows(dsrv)}
    cp = dsrv.cli("directory", "show", ids["b@example.org"], check=True)
    assert "address: %s" % bm_address(2) in out(cp)
    assert "source: import" in out(cp)
    cp = dsrv.cli("directory", "remove", ids["b@example.org"], check=True)
    assert "removed" in out(cp)
    cp = dsrv.cli("directory", "remove", ids["b@example.org"])
    assert cp.returncode == 1 and "already removed" in err(cp)
    assert dsrv.cli("directory", "remove", "999999").returncode == 1
    assert dsrv.cli("directory", "show", "999999").returncode == 1
    assert dsrv.cli("directory", "remove", "abc").returncode == 2
    assert dsrv.cli("directory", "list", "--state", "bogus").returncode == 2
    assert sorted(r[3] for r in live_rows(dsrv)) == ["a@example.org", "c@example.org"]
    assert [r[3] for r in live_rows(dsrv, "removed")] == ["b@example.org"]
    # a removed listing may be listed again
    path = write(dsrv, "again.csv", "b@example.org,%s\n" % bm_address(2))
    assert dsrv.cli("directory", "import", path).returncode == 0
    assert len(live_rows(dsrv)) == 3


def directoryd_answers(srv):
    """None if the lookup API answers on [directory] listen, else why not."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        c = http.client.HTTPSConnection("127.0.0.1", srv.dir_port, context=ctx, timeout=5)
        c.request("GET", "/api/v1/lookup?address=probe%40example.org")
        r = c.getresponse()
        body = r.read()
        c.close()
    except (OSError, ssl.SSLError, http.client.HTTPException) as e:
        return "directoryd does not answer on [directory] listen yet (%s)" % e
    if r.status != 200:
        return "the lookup API answered %d, not 200" % r.status
    try:
        json.loads(body)
    except ValueError:
        return "the lookup API did not answer JSON"
    return None


def test_lookup_through_serve(dsrv):
    path = write(dsrv, "l.csv", "smtp_address,type,alternative_address\n"
                 "alice@example.org,bitmessage,%s\n"
                 "alice@example.org,dmail,dmail://mx.example.org/alice\n" % bm_address(7))
    assert dsrv.cli("directory", "import", path).returncode == 0
    dsrv.start()
    try:
        deadline = time.monotonic() + 10
        why = directoryd_answers(dsrv)
        while why and time.monotonic() < deadline:
            time.sleep(0.2)
            why = directoryd_answers(dsrv)
        if why:
            pytest.skip(why)
        cp = dsrv.cli("directory", "lookup", "Alice@EXAMPLE.org")
        assert cp.returncode == 0, err(cp)
        lines = sorted(out(cp).splitlines())
        assert lines == sorted(["bitmessage\t%s" % bm_address(7),
                                "dmail\tdmail://mx.example.org/alice"])
        cp = dsrv.cli("directory", "lookup", "nobody@example.org")
        assert cp.returncode == 1
        assert "no alternative address" in err(cp)
        cp = dsrv.cli("directory", "lookup", "not an address")
        assert cp.returncode == 1
    finally:
        status = dsrv.stop()
        assert status == 0, dsrv.log_tail()
        assert not dsrv.sanitizer_findings()
    # nobody listening: the gateway would defer (EX_TEMPFAIL)
    cp = dsrv.cli("directory", "lookup", "alice@example.org")
    assert cp.returncode == 75, (cp.returncode, err(cp))
