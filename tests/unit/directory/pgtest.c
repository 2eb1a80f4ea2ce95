/*
 * pgtest.c - a private PostgreSQL server for unit tests (see pgtest.h).
 */
#include "pgtest.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

#define PGTEST_PORT "5432"

static struct {
    bool started;
    bool external;
    bool atexit_set;
    char bindir[256];
    char dir[256];
    char data[300];
    char conninfo[512];
    uid_t uid;
    gid_t gid;
    pid_t owner; /* only the process that started the server stops it */
} pgt;

static bool pgtest_find_bindir(void)
{
    static const char *const versions[] = {"17", "16", "15", "14", "13"};
    const char *env = getenv("POSTERN_PG_BINDIR");
    char p[320];
    size_t i;

    if (env != NULL && *env != '\0') {
        snprintf(pgt.bindir, sizeof(pgt.bindir), "%s", env);
        snprintf(p, sizeof(p), "%s/initdb", pgt.bindir);
        return access(p, X_OK) == 0;
    }
    for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        snprintf(pgt.bindir, sizeof(pgt.bindir), "/usr/lib/postgresql/%s/bin", versions[i]);
        snprintf(p, sizeof(p), "%s/initdb", pgt.bindir);
        if (access(p, X_OK) == 0)
            return true;
    }
    return false;
}

/* pgtest_user - the uid/gid to run the server as: ourselves, or postgres/nobody as root. */
static bool pgtest_user(char *why, size_t whysz)
{
    static const char *const names[] = {"postgres", "nobody"};
    struct passwd *pw;
    size_t i;

    pgt.uid = geteuid();
    pgt.gid = getegid();
    if (pgt.uid != 0)
        return true;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((pw = getpwnam(names[i])) != NULL) {
            pgt.uid = pw->pw_uid;
            pgt.gid = pw->pw_gid;
            return true;
        }
    }
    snprintf(why, whysz, "running as root and neither user postgres nor nobody exists");
    return false;
}

/* pgtest_run - run argv (as the server user), output appended to <dir>/cmd.log; exit status. */
static int pgtest_run(char *const argv[])
{
    char log[320];
    pid_t pid;
    int status = 0, fd;

    snprintf(log, sizeof(log), "%s/cmd.log", pgt.dir);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (geteuid() == 0 && pgt.uid != 0) {
            if (setgroups(0, NULL) != 0 || setgid(pgt.gid) != 0 || setuid(pgt.uid) != 0)
                _exit(126);
        }
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            dup2(fd, 0);
        if (chdir(pgt.dir) != 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void pgtest_print_log(void)
{
    char p[320], line[512];
    FILE *f;

    snprintf(p, sizeof(p), "%s/cmd.log", pgt.dir);
    if ((f = fopen(p, "r")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "pgtest:   %s", line);
    fclose(f);
}

static void pgtest_atexit(void)
{
    pgtest_stop();
}

int pgtest_start(char *why, size_t whysz)
{
    char initdb[320], pgctl[320], opts[400], logf[320];
    const char *ext = getenv("POSTERN_TEST_PG_CONNINFO");

    if (pgt.started)
        return 0;
    pgt.owner = getpid();
    if (ext != NULL && *ext != '\0') {
        snprintf(pgt.conninfo, sizeof(pgt.conninfo), "%s", ext);
        pgt.started = pgt.external = true;
        return 0;
    }
    if (!pgtest_find_bindir()) {
        snprintf(why, whysz, "no PostgreSQL server binaries (initdb) found; set POSTERN_PG_BINDIR");
        return -1;
    }
    if (!pgtest_user(why, whysz))
        return -1;
    snprintf(pgt.dir, sizeof(pgt.dir), "/tmp/pstpg.XXXXXX");
    if (mkdtemp(pgt.dir) == NULL) {
        snprintf(why, whysz, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    if (chown(pgt.dir, pgt.uid, pgt.gid) != 0 || chmod(pgt.dir, 0711) != 0) {
        snprintf(why, whysz, "chown %s: %s", pgt.dir, strerror(errno));
        tu_rm_rf(pgt.dir);
        return -1;
    }
    if (!pgt.atexit_set) {
        atexit(pgtest_atexit);
        pgt.atexit_set = true;
    }
    snprintf(pgt.data, sizeof(pgt.data), "%s/data", pgt.dir);
    snprintf(initdb, sizeof(initdb), "%s/initdb", pgt.bindir);
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", pgt.bindir);
    snprintf(logf, sizeof(logf), "%s/server.log", pgt.dir);
    snprintf(opts, sizeof(opts),
             "-k %s -p " PGTEST_PORT " -c listen_addresses='' -c fsync=off "
             "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40",
             pgt.dir);
    {
        char *argv[] = {initdb,  "-D", pgt.data, "-U",         "postern",   "-A",
                        "trust", "-E", "UTF8",   "--locale=C", "--no-sync", NULL};

        if (pgtest_run(argv) != 0) {
            snprintf(why, whysz, "initdb failed (log in %s/cmd.log)", pgt.dir);
            pgtest_print_log();
            tu_rm_rf(pgt.dir);
            return -1;
        }
    }
    {
        char *argv[] = {pgctl, "-D", pgt.data, "-l", logf,    "-w",
                        "-t",  "60", "-o",     opts, "start", NULL};

        if (pgtest_run(argv) != 0) {
            snprintf(why, whysz, "pg_ctl start failed");
            pgtest_print_log();
            pgt.started = true; /* stop whatever half-started */
            pgtest_stop();
            return -1;
        }
    }
    snprintf(pgt.conninfo, sizeof(pgt.conninfo),
             "host=%s port=" PGTEST_PORT " user=postern dbname=postgres connect_timeout=10",
             pgt.dir);
    pgt.started = true;
    return 0;
}

const char *pgtest_conninfo(void)
{
    return pgt.started ? pgt.conninfo : NULL;
}

int pgtest_exec(const char *sql)
{
    PGconn *c;
    PGresult *r;
    int rc = 0;

    if (!pgt.started)
        return -1;
    c = PQconnectdb(pgt.conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

void pgtest_stop(void)
{
    char pgctl[320];

    if (!pgt.started || pgt.owner != getpid())
        return;
    pgt.started = false;
    if (pgt.external)
        return;
    snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", pgt.bindir);
    {
        char *argv[] = {pgctl, "-D", pgt.data, "-m", "immediate", "-w", "stop", NULL};

        if (pgtest_run(argv) != 0)
            fprintf(stderr, "pgtest: pg_ctl stop failed\n");
    }
    tu_rm_rf(pgt.dir);
}
