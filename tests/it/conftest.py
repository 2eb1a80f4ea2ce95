"""pytest fixtures for Postern's integration tests.

Run with Debian's interpreter:  /usr/bin/python3 -m pytest tests/it
Environment:
  POSTERN_BIN              binary to test (default: build-asan/postern, then build/postern)
  POSTERN_IT_TMP           where work directories go (default /tmp)
  POSTERN_IT_KEEP=1        keep work directories even when every test passed
  POSTERN_IT_RUN_USER      run_user in the generated config (default: the current user)
  POSTERN_IT_LOG_LEVEL     log_level in the generated config (default info)
  POSTERN_IT_DURABILITY_MESSAGES  messages sent by the kill -9 test (default 2000)

Fixtures:
  postern_bin     path of the binary (skips everything when there is none)
  workdir         a fresh directory for one test (mode 0711 so that Postfix's
                  unprivileged daemons can traverse it)
  make_server     factory: make_server(overrides={section: {key: value}}, users=...)
                  -> started PosternServer, stopped at teardown (also on failure)
  make_module_server  the same, servers shared by one test module
  server          module-wide PosternServer with the default config
  postfix_peer    factory for a private Postfix (skips without root/postfix)
  pg_server       one private PostgreSQL server for the whole session
                  (tests/it/pgserver.py; skips only when no server binaries)
Every test that used a server fails if a sanitizer report appears in the
server's log while it ran, or if the server did not exit 0 on SIGTERM.
"""

import os
import shutil
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pstharness as h  # noqa: E402

_failed = []
_base = None


def _base_dir():
    global _base
    if _base is None:
        root = os.environ.get("POSTERN_IT_TMP", "/tmp")
        _base = tempfile.mkdtemp(prefix="postern-it-", dir=root)
        os.chmod(_base, 0o711)
    return _base


def new_workdir(name):
    d = tempfile.mkdtemp(prefix=name[:40].replace("/", "_") + "-", dir=_base_dir())
    os.chmod(d, 0o711)
    return d


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and call.excinfo.typename != "Skipped":
        _failed.append(item.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _base is None:
        return
    if _failed or os.environ.get("POSTERN_IT_KEEP") == "1":
        sys.stderr.write("\nintegration work directories kept in %s\n" % _base)
    else:
        shutil.rmtree(_base, ignore_errors=True)


@pytest.fixture(scope="session")
def postern_bin():
    b = h.find_binary()
    if not b or not os.access(b, os.X_OK):
        pytest.skip("no postern binary (build it or set POSTERN_BIN)")
    return b


@pytest.fixture
def workdir(request):
    return new_workdir(request.node.name)


class _Servers:
    """Keeps the servers of one scope; stops them and checks their logs."""

    def __init__(self, binary, scope_name):
        self.binary = binary
        self.scope_name = scope_name
        self.servers = []

    def make(self, overrides=None, users=None, start=True, name=None):
        wd = new_workdir(name or self.scope_name)
        s = h.PosternServer(wd, binary=self.binary, overrides=overrides, users=users)
        self.servers.append(s)
        if start:
            s.start()
        return s

    def finish(self):
        problems = []
        for s in self.servers:
            if s.proc is None and not hasattr(s, "exit_status"):
                continue
            status = s.stop()
            if status != 0:
                problems.append("postern serve did not exit 0 on SIGTERM (status %r)\n%s" % (
                    status, s.log_tail(30)))
            if getattr(s, "leftover_children", None):
                problems.append("children %r still alive after postern serve exited" % (
                    s.leftover_children,))
            found = s.sanitizer_findings()
            if found:
                problems.append("sanitizer report in %s:\n%s" % (s.log_path, found))
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def make_server(postern_bin, request):
    servers = _Servers(postern_bin, request.node.name)
    yield servers.make
    servers.finish()


@pytest.fixture(scope="module")
def make_module_server(postern_bin, request):
    """Like make_server, but the servers live until the end of the module."""
    servers = _Servers(postern_bin, request.module.__name__.split(".")[-1])
    yield servers.make
    servers.finish()


@pytest.fixture(scope="module")
def server(postern_bin, request):
    servers = _Servers(postern_bin, request.module.__name__.split(".")[-1])
    s = servers.make()
    yield s
    servers.finish()


@pytest.fixture(autouse=True)
def _sanitizer_watch(request):
    """Fail the running test if the module server logged a sanitizer report meanwhile."""
    if "server" not in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    mark = srv.log_mark()
    yield
    found = srv.sanitizer_findings(since=mark)
    if found:
        pytest.fail("sanitizer report while this test ran:\n" + found, pytrace=False)
    if srv.proc is not None and srv.proc.poll() is not None:
        pytest.fail("postern serve died during this test (status %s)\n%s" % (
            srv.proc.returncode, srv.log_tail()), pytrace=False)


@pytest.fixture(scope="session")
def pg_server():
    """A started pgserver.PgServer shared by the session: pg.createdb(name) gives each
    user a fresh database. Skipped only when PostgreSQL is not installed; any other
    failure to start is an error (CI installs postgresql)."""
    import pgserver

    if not os.environ.get("POSTERN_TEST_PG_CONNINFO") and pgserver.find_bindir() is None:
        where = os.environ.get("POSTERN_PG_BINDIR") or "/usr/lib/postgresql/<13..17>/bin"
        pytest.skip("PostgreSQL server binaries not installed (no initdb in %s; install "
                    "postgresql or set POSTERN_PG_BINDIR)" % where)
    pg = pgserver.PgServer()
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture
def postfix_peer(request):
    why = h.postfix_available()
    if why:
        pytest.skip(why)
    peers = []

    def make(**kw):
        p = h.PostfixPeer(new_workdir(request.node.name + "-postfix"), **kw)
        peers.append(p)
        p.start()
        return p

    yield make
    for p in peers:
        p.stop()


@pytest.fixture
def token():
    """A unique string to find one message again."""
    return "t" + uuid.uuid4().hex
