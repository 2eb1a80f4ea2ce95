/*
 * cmd_pop3.c - `postern pop3 ...`: the aggregating POP3 proxy's per-user
 * profiles and statistics (see docs/pop3.md).
 *
 *   pop3 upstream add USER ID --host H --port P --tls implicit|stls|none
 *                     --login NAME        (password: one line on stdin)
 *   pop3 upstream list [USER]             (never shows passwords)
 *   pop3 upstream remove USER ID
 *   pop3 stats [USER]
 *   pop3 apop set|clear USER              (cmd_pop3_apop.c)
 *
 * The upstream password is read from standard input (echo off on a
 * terminal), never from the command line, sealed with the proxy key
 * ([pop3] upstream_key, created on first use with mode 0600; when run as
 * root the new key file is given to [server] run_user, which pop3d runs
 * as) and wiped from memory. ID "local" is reserved: it names the user's
 * own Maildir in the statistics. TLS "none" is accepted for loopback hosts
 * only (pop3u_add).
 *
 * Exit status: 0 done, 1 failure, 2 usage error.
 */
#include "cmd_pop3.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd_pop3_apop.h"
#include "lib/db.h"
#include "lib/userdb.h"
#include "pop3/pop3_upstream.h"

#define CMD_POP3_RESERVED_ID "local"

static int cmd_pop3_usage(void)
{
    fputs("usage: postern pop3 upstream add USER ID --host HOST --port PORT "
          "--tls implicit|stls|none --login NAME   (password on stdin)\n"
          "       postern pop3 upstream list [USER]\n"
          "       postern pop3 upstream remove USER ID\n"
          "       postern pop3 stats [USER]\n"
          "       postern pop3 apop set|clear USER   (secret on stdin)\n",
          stderr);
    return 2;
}

static int cmd_pop3_db(const struct cfg *cfg, struct db **db)
{
    int rc = db_open(cfg->db_path, db);
    if (rc < 0)
        fprintf(stderr, "postern: cannot open %s: %s\n", cfg->db_path, err_str(rc));
    return rc;
}

/* cmd_pop3_read_password - one line from stdin (echo off on a terminal) into out. */
static int cmd_pop3_read_password(char *out, size_t outsz)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    int restore = 0;
    if (tty) {
        fputs("Upstream password: ", stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        }
    }
    char *r = fgets(out, (int)outsz, stdin);
    if (restore) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!r)
        return PST_EINVAL;
    size_t len = strlen(out);
    if (len == outsz - 1 && out[len - 1] != '\n')
        return PST_ELIMIT;
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] ? 0 : PST_EINVAL;
}

/* cmd_pop3_key - load (creating) the proxy key; as root, hand a new key file to run_user. */
static int cmd_pop3_key(const struct cfg *cfg, struct pop3u_key *key)
{
    int existed = access(cfg->pop3_upstream_key, F_OK) == 0;
    int rc = pop3u_key_load(cfg->pop3_upstream_key, 1, key);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot load the proxy key %s: %s\n", cfg->pop3_upstream_key,
                err_str(rc));
        return rc;
    }
    if (existed || geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(cfg->run_user);
    if (!pw)
        return 0; /* serve refuses to start without it anyway */
    if (chown(cfg->pop3_upstream_key, pw->pw_uid, pw->pw_gid) < 0) {
        fprintf(stderr, "postern: chown %s: %s\n", cfg->pop3_upstream_key, strerror(errno));
        pop3u_key_wipe(key);
        return PST_EIO;
    }
    return 0;
}

static int cmd_pop3_port(const char *s, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !end || *end || end == s || s[0] == '-' || v < 1 || v > 65535)
        return PST_EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* cmd_pop3_copy - copy s into out (size outsz) or fail when it does not fit. */
static int cmd_pop3_copy(char *out, size_t outsz, const char *s)
{
    size_t n = strlen(s);
    if (n >= outsz)
        return PST_ELIMIT;
    memcpy(out, s, n + 1);
    return 0;
}

static int cmd_pop3_user_exists(const struct cfg *cfg, const char *user)
{
    struct userdb *udb = NULL;
    int rc = userdb_open(cfg->db_path, &udb);
    if (rc == 0)
        rc = userdb_exists(udb, user);
    userdb_close(&udb);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot check user %s: %s\n", user, err_str(rc));
        return rc;
    }
    if (rc == 0) {
        fprintf(stderr, "postern: no such user: %s\n", user);
        return PST_ENOENT;
    }
    return 0;
}

static const char *cmd_pop3_add_error(int rc)
{
    switch (rc) {
    case PST_EEXIST:
        return "this user already has an upstream with that id";
    case PST_EPERM:
        return "TLS mode none is allowed for loopback hosts only";
    case PST_EINVAL:
        return "invalid field (id: 1-64 of A-Z a-z 0-9 . _ -; host name or IP; login 1-255 "
               "bytes without control characters; password 1-255 bytes)";
    default:
        return err_str(rc);
    }
}

static int cmd_pop3_add_parse(int argc, char **argv, struct pop3u_upstream *u)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"tls", required_argument, NULL, 't'},
                                         {"login", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    int have_host = 0, have_port = 0, have_tls = 0, have_login = 0, c;
    optind = 0; /* glibc: full re-initialisation after main's getopt */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        if (c == 'h')
            rc = cmd_pop3_copy(u->host, sizeof u->host, optarg), have_host = 1;
        else if (c == 'p')
            rc = cmd_pop3_port(optarg, &u->port), have_port = 1;
        else if (c == 't')
            rc = pop3u_tls_parse(optarg, &u->tls), have_tls = 1;
        else if (c == 'l')
            rc = cmd_pop3_copy(u->username, sizeof u->username, optarg), have_login = 1;
        else
            return PST_EINVAL;
        if (rc < 0) {
            fprintf(stderr, "postern: bad value for --%s\n",
                    c == 'h'   ? "host"
                    : c == 'p' ? "port"
                    : c == 't' ? "tls"
                               : "login");
            return PST_EINVAL;
        }
    }
    if (!have_host || !have_port || !have_tls || !have_login || argc - optind != 2)
        return PST_EINVAL;
    if (cmd_pop3_copy(u->user, sizeof u->user, argv[optind]) < 0 ||
        cmd_pop3_copy(u->id, sizeof u->id, argv[optind + 1]) < 0) {
        fprintf(stderr, "postern: user or id too long\n");
        return PST_EINVAL;
    }
    return 0;
}

static int cmd_pop3_upstream_add(const struct cfg *cfg, int argc, char **argv)
{
    struct pop3u_upstream u;
    memset(&u, 0, sizeof u);
    if (cmd_pop3_add_parse(argc, argv, &u) < 0)
        return cmd_pop3_usage();
    if (strcmp(u.id, CMD_POP3_RESERVED_ID) == 0) {
        fprintf(stderr, "postern: upstream id '%s' is reserved for the local Maildir\n", u.id);
        return 1;
    }
    if (cmd_pop3_user_exists(cfg, u.user) < 0)
        return 1;
    char pass[POP3U_PASS_MAX + 2];
    int rc = cmd_pop3_read_password(pass, sizeof pass);
    if (rc < 0) {
        explicit_bzero(pass, sizeof pass);
        fprintf(stderr, "postern: %s\n",
                rc == PST_ELIMIT ? "password longer than 255 bytes" : "no password given on stdin");
        return 1;
    }
    struct pop3u_key key;
    struct db *db = NULL;
    rc = cmd_pop3_key(cfg, &key);
    if (rc == 0) {
        rc = cmd_pop3_db(cfg, &db);
        if (rc == 0) {
            rc = pop3u_add(db, &key, &u, pass);
            if (rc < 0)
                fprintf(stderr, "postern: cannot add upstream %s/%s: %s\n", u.user, u.id,
                        cmd_pop3_add_error(rc));
        }
        pop3u_key_wipe(&key);
    }
    explicit_bzero(pass, sizeof pass);
    db_close(&db);
    if (rc < 0)
        return 1;
    printf("upstream %s/%s added: %s:%u tls=%s login=%s\n", u.user, u.id, u.host, u.port,
           pop3u_tls_name(u.tls), u.username);
    return 0;
}

static void cmd_pop3_time(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outsz, "-"); /* outsz >= 2: cannot be cut */
}

static int cmd_pop3_upstream_list(const struct cfg *cfg, int argc, char **argv)
{
    if (argc > 2)
        return cmd_pop3_usage();
    const char *user = argc == 2 ? argv[1] : NULL;
    struct db *db = NULL;
    if (cmd_pop3_db(cfg, &db) < 0)
        return 1;
    struct pop3u_upstream *a = NULL;
    size_t n = 0;
    int rc = pop3u_list(db, NULL, user, &a, &n); /* no key: passwords are never decrypted */
    db_close(&db);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot list upstreams: %s\n", err_str(rc));
        return 1;
    }
    printf("%-16s %-16s %-30s %5s %-8s %-20s %s\n", "USER", "ID", "HOST", "PORT", "TLS", "LOGIN",
           "CREATED");
    for (size_t i = 0; i < n; i++) {
        char when[32];
        cmd_pop3_time(a[i].created, when, sizeof when);
        printf("%-16s %-16s %-30s %5u %-8s %-20s %s\n", a[i].user, a[i].id, a[i].host, a[i].port,
               pop3u_tls_name(a[i].tls), a[i].username, when);
    }
    pop3u_list_free(&a, n);
    return 0;
}

static int cmd_pop3_upstream_remove(const struct cfg *cfg, int argc, char **argv)
{
    if (argc != 3)
        return cmd_pop3_usage();
    struct db *db = NULL;
    if (cmd_pop3_db(cfg, &db) < 0)
        return 1;
    int rc = pop3u_remove(db, argv[1], argv[2]);
    db_close(&db);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot remove upstream %s/%s: %s\n", argv[1], argv[2],
                rc == PST_ENOENT ? "no such upstream" : err_str(rc));
        return 1;
    }
    printf("upstream %s/%s removed\n", argv[1], argv[2]);
    return 0;
}

static int cmd_pop3_stats(const struct cfg *cfg, int argc, char **argv)
{
    if (argc > 2)
        return cmd_pop3_usage();
    struct db *db = NULL;
    if (cmd_pop3_db(cfg, &db) < 0)
        return 1;
    struct pop3u_stat *a = NULL;
    size_t n = 0;
    int rc = pop3u_stat_list(db, argc == 2 ? argv[1] : NULL, &a, &n);
    db_close(&db);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot read statistics: %s\n", err_str(rc));
        return 1;
    }
    printf("%-16s %-16s %8s %9s %12s %7s %-20s %s\n", "USER", "UPSTREAM", "SESSIONS", "MESSAGES",
           "BYTES", "ERRORS", "UPDATED", "LAST_ERROR");
    for (size_t i = 0; i < n; i++) {
        char when[32];
        cmd_pop3_time(a[i].updated, when, sizeof when);
        printf("%-16s %-16s %8lld %9lld %12lld %7lld %-20s %s\n", a[i].user,
               a[i].upstream[0] ? a[i].upstream : "(all)", (long long)a[i].sessions,
               (long long)a[i].messages, (long long)a[i].bytes, (long long)a[i].errors, when,
               a[i].last_error);
    }
    free(a);
    return 0;
}

int cmd_pop3_main(const struct cfg *cfg, int argc, char **argv)
{
    if (argc < 1)
        return cmd_pop3_usage();
    if (strcmp(argv[0], "stats") == 0)
        return cmd_pop3_stats(cfg, argc, argv);
    if (strcmp(argv[0], "apop") == 0)
        return cmd_pop3_apop(cfg, argc, argv);
    if (strcmp(argv[0], "upstream") != 0 || argc < 2)
        return cmd_pop3_usage();
    if (strcmp(argv[1], "add") == 0)
        return cmd_pop3_upstream_add(cfg, argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return cmd_pop3_upstream_list(cfg, argc - 1, argv + 1);
    if (strcmp(argv[1], "remove") == 0)
        return cmd_pop3_upstream_remove(cfg, argc - 1, argv + 1);
    return cmd_pop3_usage();
}
