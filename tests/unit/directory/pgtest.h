/*
 * pgtest.h - a private, throw-away PostgreSQL server for unit tests (not
 * part of postern).
 *
 * pgtest_start: initdb into a fresh mkdtemp directory under /tmp (the unix
 * socket path must stay short), then pg_ctl start with
 *   -k <dir> -p 5432 -c listen_addresses='' -c fsync=off
 * i.e. a unix socket in that private directory only, no TCP, so parallel
 * test programs never collide. Trust authentication, superuser "postern",
 * UTF8 encoding, C locale. PostgreSQL refuses to run as root: when the test
 * runs as root the directory is chowned to `postgres` (or `nobody`) and
 * initdb / pg_ctl run as that user (setgid/setuid in a forked child before
 * exec). Binaries: $POSTERN_PG_BINDIR, else /usr/lib/postgresql/<17..13>/bin.
 * $POSTERN_TEST_PG_CONNINFO, when set, names an existing server to use
 * instead (its dir_* tables are dropped by the tests!).
 *
 * pgtest_stop: pg_ctl stop -m immediate and remove the directory; also run
 * at exit, so a failed test does not leave a server behind.
 */
#ifndef POSTERN_PGTEST_H
#define POSTERN_PGTEST_H

#include <stddef.h>

/* pgtest_start - start the server (once per process); 0, or -1 with the reason in why. */
int pgtest_start(char *why, size_t whysz);

/* pgtest_conninfo - libpq conninfo of the running server (borrowed), NULL if none. */
const char *pgtest_conninfo(void);

/* pgtest_exec - run sql (no results) on a new connection; 0 or -1 (printed). */
int pgtest_exec(const char *sql);

/* pgtest_stop - stop the server and remove its files. Safe to call twice. */
void pgtest_stop(void);

#endif
