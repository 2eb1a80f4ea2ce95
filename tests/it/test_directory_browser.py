"""The directory's web pages in a real browser: Debian's Chromium, headless, driven by
tests/it/browser/register.mjs (playwright-core from npm, no browser download).

The same two nodes as test_directory.py (its `nodes` fixture and helpers are imported;
SQLite only): A runs the directory and is alice's mail server, B owns carol's Bitmessage address.
Chromium opens the form, which must have lang, one h1, headings and a label for every
field; the script fills the fields through their labels, submits and reads "Check both
inboxes". The test reads the confirmation mail from alice's Maildir on A and the
Bitmessage confirmation from carol's Maildir on B, then Chromium opens each link and
presses its Confirm button; the query API must then answer the pair in XML and JSON.
A second run submits the form with JavaScript disabled (the pages have none) for bob.

Screenshots of the form and of every confirmation page go to tests/it/artifacts/directory/.
Needs node, chromium (POSTERN_IT_CHROMIUM, default /usr/bin/chromium) and
`(cd tests/it/browser && npm ci --no-audit --no-fund)`; skips with the reason otherwise.
"""

import json
import os
import shutil
import subprocess

import pytest

from test_bitmessage import SEND_TIMEOUT, new_address
from test_directory import LINK, Client, nodes, records, url  # noqa: F401 (nodes: fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")
SCRIPT = os.path.join(BROWSER_DIR, "register.mjs")
ARTIFACTS = os.path.join(HERE, "artifacts", "directory")
CHROMIUM = os.environ.get("POSTERN_IT_CHROMIUM", "/usr/bin/chromium")
BROWSER_TIMEOUT = 300  # seconds for one script run (Chromium start, pages, screenshots)
PNG = b"\x89PNG\r\n\x1a\n"


def browser_missing():
    """Why the browser tests cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install -y nodejs npm)"
    if not os.access(CHROMIUM, os.X_OK):
        return "%s is missing (apt-get install -y chromium)" % CHROMIUM
    pkg = os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")
    if not os.path.exists(pkg):
        return ("playwright-core is not installed: "
                "(cd tests/it/browser && npm ci --no-audit --no-fund)")
    return None


@pytest.fixture(scope="module")
def dir_backend():
    """test_directory's `nodes` on one store: the pages do not depend on it, and
    test_directory.py runs everything on SQLite and PostgreSQL."""
    return "sqlite"


@pytest.fixture(scope="module")
def browser():
    why = browser_missing()
    if why:
        pytest.skip(why)
    os.makedirs(ARTIFACTS, exist_ok=True)


def run_browser(mode, link, prefix, *args, js=True):
    """Runs register.mjs once; the JSON it prints, after checking its screenshots."""
    cmd = ["node", SCRIPT, mode, "--url", link, "--shots", ARTIFACTS, "--prefix", prefix]
    cmd += list(args) + ([] if js else ["--no-js"])
    for old in os.listdir(ARTIFACTS):
        if old.startswith(prefix + "-"):
            os.unlink(os.path.join(ARTIFACTS, old))
    cp = subprocess.run(cmd, cwd=BROWSER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=BROWSER_TIMEOUT)
    assert cp.returncode == 0, "register.mjs %s failed (%d):\n%s\n%s" % (
        mode, cp.returncode, cp.stderr.decode(errors="replace"),
        cp.stdout.decode(errors="replace"))
    out = json.loads(cp.stdout.decode().strip().splitlines()[-1])
    assert out["javascript"] is js and out["scripts_run"] is js, out
    # nothing left loopback, and no CSP violation or script error in the console
    assert out["refused"] == [] and out["console_errors"] == [], out
    assert out["screenshots"], out
    for shot in out["screenshots"]:
        assert os.path.dirname(shot) == ARTIFACTS
        with open(shot, "rb") as f:
            head = f.read(8)
        assert head == PNG and os.path.getsize(shot) > 1000, shot
    return out


def check_form(out):
    """The form page as the browser saw it: language, headings, labels, cookie."""
    form = out["form"]
    assert form["status"] == 200
    assert form["lang"] == "en"
    assert form["h1"] == ["Public address directory"], form
    assert "List your addresses" in form["h2"] and "Remove a listing" in form["h2"], form
    assert form["title"].startswith("Public address directory"), form
    assert form["unlabelled"] == [], form
    assert form["skip_link"] == 1 and form["scripts"] == 0, form
    assert "What happens next" in form["main"], form
    cookies = {c["name"]: c for c in out["cookies"]}
    assert cookies.get("__Host-dirc") == {"name": "__Host-dirc", "secure": True,
                                          "httpOnly": True, "sameSite": "Strict"}, cookies


def check_submitted(out, smtp, alt):
    res = out["result"]
    assert res["status"] == 200, res
    assert res["h1"] == ["Check both inboxes"], res
    assert smtp in res["main"] and alt in res["main"] and "Bitmessage" in res["main"], res
    assert res["url"].endswith("/register"), res


def link_of(message, srv):
    m = LINK.search(message)
    assert m, message
    link = m.group(0).decode()
    assert link.startswith(url(srv, "/confirm?t=")), link
    return link


def confirm(link, prefix):
    out = run_browser("confirm", link, prefix)
    page = out["link"]
    assert page["status"] == 200 and page["h1"] == ["Confirm"], page
    assert "Opening this link alone changes nothing" in page["main"], page
    return out["result"]


def test_register_and_confirm_in_chromium(browser, nodes):
    a, b = nodes
    carol = new_address(b, "carol")
    out = run_browser("form", url(a, "/"), "register", "--smtp", "alice@postern.test",
                      "--alt", carol)
    check_form(out)
    check_submitted(out, "alice@postern.test", carol)

    mail = a.wait_for_message("alice", b"/confirm?t=", timeout=60)
    bm = b.wait_for_message("carol", b"/confirm?t=", timeout=SEND_TIMEOUT)
    link_mail, link_bm = link_of(mail, a), link_of(bm, a)
    assert link_mail != link_bm

    res = confirm(link_mail, "confirm-mail")
    assert res["status"] == 200 and res["h1"] == ["Address confirmed"], res
    assert "not live yet" in res["main"] and "alice@postern.test" in res["main"], res
    status, _, xml = Client(a).get("/doquery?smtpaddress=alice%40postern.test")
    assert status == 200 and xml == b"<xml></xml>"

    res = confirm(link_bm, "confirm-bitmessage")
    assert res["status"] == 200 and res["h1"] == ["Your listing is live"], res
    assert carol in res["main"] and "alice@postern.test" in res["main"], res

    c = Client(a)
    status, head, xml = c.get("/doquery?smtpaddress=alice%40postern.test")
    assert status == 200 and "text/xml" in head["Content-Type"]
    assert xml == ("<xml><record><smtp_address>alice@postern.test</smtp_address>"
                   "<bitmessage_address>%s</bitmessage_address></record></xml>" % carol).encode()
    status, head, js = c.get("/doquery?smtpaddress=alice%40postern.test",
                             {"Accept": "application/json"})
    assert status == 200 and "application/json" in head["Content-Type"]
    assert json.loads(js) == {"address": "alice@postern.test",
                              "alternatives": [{"type": "bitmessage", "address": carol}]}
    status, _, js = c.get("/api/v1/lookup?address=alice%40postern.test")
    assert status == 200 and json.loads(js)["alternatives"] == [
        {"type": "bitmessage", "address": carol}]


def test_form_submit_without_javascript(browser, nodes):
    a, b = nodes
    alt = new_address(b, "bob")
    out = run_browser("form", url(a, "/"), "nojs-register", "--smtp", "bob@postern.test",
                      "--alt", alt, js=False)
    check_form(out)
    check_submitted(out, "bob@postern.test", alt)
    pending = [r for r in records(a) if r["smtp"] == "bob@postern.test" and r["alt"] == alt]
    assert [r["state"] for r in pending] == ["pending"], pending
    mail = a.wait_for_message("bob", b"/confirm?t=", timeout=60)
    link_of(mail, a)
