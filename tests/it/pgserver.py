"""pgserver - a private, throw-away PostgreSQL server for integration tests.

The same recipe as the C unit tests' helper (tests/unit/directory/pgtest.c):
initdb into a fresh temporary directory, then `pg_ctl start` with a unix
socket in that directory only (listen_addresses='', so no TCP port and no
collision with other servers or parallel tests), trust authentication,
superuser "postern", UTF8, C locale, fsync off. PostgreSQL refuses to run
as root: as root, the directory is chowned to `postgres` (else `nobody`)
and initdb / pg_ctl run as that user.

Binaries: $POSTERN_PG_BINDIR, else /usr/lib/postgresql/<17..13>/bin.
$POSTERN_TEST_PG_CONNINFO, when set, names an existing server instead.

    with PgServer() as pg:          # raises PgUnavailable if it cannot start
        conninfo = pg.conninfo      # "host=/tmp/pstpg-... port=5432 user=postern dbname=postgres"
        pg.createdb("dir1")         # an empty database; pg.conninfo_for("dir1")

In pytest: `pg = pgserver.start_or_skip()` skips the test with the reason.
Only the Python standard library is used.
"""

import atexit
import os
import pwd
import shutil
import subprocess
import tempfile

PORT = 5432
VERSIONS = ("17", "16", "15", "14", "13")


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be started here (no binaries, no user, initdb failed...)."""


def find_bindir():
    env = os.environ.get("POSTERN_PG_BINDIR")
    candidates = [env] if env else ["/usr/lib/postgresql/%s/bin" % v for v in VERSIONS]
    for d in candidates:
        if d and os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    return None


def _server_user():
    """(uid, gid) to run the server as: ourselves, or postgres/nobody when root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    raise PgUnavailable("running as root and neither user postgres nor nobody exists")


class PgServer:
    def __init__(self):
        self.dir = None
        self.data = None
        self.bindir = None
        self.external = os.environ.get("POSTERN_TEST_PG_CONNINFO") or None
        self.uid = self.gid = None
        self.running = False
        self.owner = os.getpid()

    # ---- lifecycle ----

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _preexec(self):
        if os.geteuid() == 0 and self.uid != 0:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)

    def _run(self, argv, timeout=120):
        with open(os.path.join(self.dir, "cmd.log"), "ab") as log:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=self.dir,
                                  preexec_fn=self._preexec, timeout=timeout).returncode

    def _log_tail(self):
        out = b""
        for name in ("cmd.log", "server.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read()[-2000:]
            except OSError:
                pass
        return out.decode("utf-8", "replace")

    def start(self):
        if self.running:
            return self
        if self.external:
            self.running = True
            return self
        self.bindir = find_bindir()
        if self.bindir is None:
            raise PgUnavailable("no PostgreSQL server binaries (initdb); set POSTERN_PG_BINDIR")
        self.uid, self.gid = _server_user()
        # short path: the socket name must fit in sockaddr_un (107 bytes)
        self.dir = tempfile.mkdtemp(prefix="pstpg-", dir="/tmp")
        atexit.register(self.stop)  # a test that dies must not leave a server behind
        os.chown(self.dir, self.uid, self.gid)
        os.chmod(self.dir, 0o711)  # the socket must be reachable by other users (postern serve)
        self.data = os.path.join(self.dir, "data")
        rc = self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postern",
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        if rc != 0:
            tail = self._log_tail()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise PgUnavailable("initdb failed: " + tail)
        opts = ("-k %s -p %d -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=100" % (self.dir, PORT))
        rc = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                        "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60",
                        "-o", opts, "start"])
        self.running = True
        if rc != 0:
            tail = self._log_tail()
            self.stop()
            raise PgUnavailable("pg_ctl start failed: " + tail)
        return self

    def stop(self):
        if not self.running or os.getpid() != self.owner:
            return
        self.running = False
        if self.external:
            return
        try:
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate",
                       "-w", "stop"], timeout=60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- use ----

    @property
    def conninfo(self):
        return self.conninfo_for("postgres")

    def conninfo_for(self, dbname):
        if self.external:
            return self.external if dbname == "postgres" else "%s dbname=%s" % (self.external,
                                                                                 dbname)
        return "host=%s port=%d user=postern dbname=%s connect_timeout=10" % (self.dir, PORT,
                                                                              dbname)

    def psql(self, sql, dbname="postgres"):
        """Run SQL with psql (-v ON_ERROR_STOP=1); returns its stdout (unaligned, tuples only)."""
        psql = os.path.join(self.bindir or find_bindir() or "/usr/bin", "psql")
        r = subprocess.run([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.conninfo_for(dbname), "-c", sql],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql failed: " + r.stderr.decode("utf-8", "replace"))
        return r.stdout.decode("utf-8", "replace")

    def createdb(self, name):
        """An empty database named name (dropped first if it exists)."""
        self.psql('DROP DATABASE IF EXISTS "%s"' % name)
        self.psql('CREATE DATABASE "%s"' % name)
        return self.conninfo_for(name)


def start_or_skip():
    """A started PgServer, or pytest.skip() with the reason (call pg.stop() when done)."""
    import pytest

    pg = PgServer()
    try:
        return pg.start()
    except PgUnavailable as e:
        pytest.skip("PostgreSQL could not start: %s" % e)


if __name__ == "__main__":
    with PgServer() as server:
        print(server.conninfo)
        print(server.psql("SELECT version()").strip())
        print(server.createdb("dirtest"))
