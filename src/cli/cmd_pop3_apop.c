/*
 * cmd_pop3_apop.c - `postern pop3 apop set|clear USER`: the per-user APOP
 * secret (RFC 1939 7) kept encrypted in the state database
 * (src/pop3/pop3_apop.h).
 *
 * set   USER must exist in the user database. The secret is read from the
 *       terminal with echo off (asked twice) or as one line from stdin
 *       (scripts, tests); never from the command line (ps, shell history).
 *       It must be POP3_APOP_SECRET_MIN..MAX bytes and must differ from
 *       the user's login password: a recorded APOP exchange allows offline
 *       guessing of the secret, which must not reveal the password. The key
 *       file ([pop3] upstream_key) is created if missing; when run as root
 *       it is given to run_user, as pop3d reads it after dropping
 *       privileges.
 * clear removes the secret (exit 1 if there was none).
 *
 * Failure policy: messages on stderr, exit status 1; the secret is wiped
 * from memory on every path and never printed or logged.
 */
#include "cli/cmd_pop3_apop.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "lib/db.h"
#include "lib/log.h"
#include "lib/userdb.h"
#include "pop3/pop3_apop.h"

#define CMD_APOP_LINE_MAX (POP3_APOP_SECRET_MAX + 3) /* secret, CR LF, NUL */

/* cmd_apop_read_line - one line from stdin (echo off on a terminal). 0, PST_EINVAL or PST_ELIMIT.
 */
static int cmd_apop_read_line(const char *prompt, char *out, size_t outsz, size_t *len)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    int restore = 0;
    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        }
    }
    char *r = fgets(out, (int)outsz, stdin);
    if (restore)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    if (tty)
        fputc('\n', stderr);
    if (!r)
        return PST_EINVAL;
    size_t n = strlen(out);
    if (n == outsz - 1 && out[n - 1] != '\n')
        return PST_ELIMIT;
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    *len = n;
    return 0;
}

/* cmd_apop_read_secret - the secret, confirmed on a terminal. 0 or -1 (message printed). */
static int cmd_apop_read_secret(char *secret, size_t secretsz, size_t *len)
{
    int rc = cmd_apop_read_line("APOP secret: ", secret, secretsz, len);
    if (rc == PST_ELIMIT || (rc == 0 && !pop3_apop_secret_valid(secret, *len))) {
        fprintf(stderr, "postern: the APOP secret must be %d to %d bytes on one line\n",
                POP3_APOP_SECRET_MIN, POP3_APOP_SECRET_MAX);
        return -1;
    }
    if (rc < 0) {
        fprintf(stderr, "postern: no APOP secret given\n");
        return -1;
    }
    if (!isatty(STDIN_FILENO))
        return 0;
    char again[CMD_APOP_LINE_MAX];
    size_t alen = 0;
    rc = cmd_apop_read_line("Again: ", again, sizeof again, &alen);
    int same = rc == 0 && alen == *len && memcmp(secret, again, alen) == 0;
    explicit_bzero(again, sizeof again);
    if (!same) {
        fprintf(stderr, "postern: the secrets do not match\n");
        return -1;
    }
    return 0;
}

/* cmd_apop_give_key - as root, hand the key file to run_user (pop3d reads it unprivileged). */
static void cmd_apop_give_key(const struct cfg *cfg)
{
    if (geteuid() != 0 || !cfg->run_user)
        return;
    struct passwd *pw = getpwnam(cfg->run_user);
    if (!pw)
        return; /* `postern serve` creates the default user; the key then needs a chown */
    if (chown(cfg->pop3_upstream_key, pw->pw_uid, pw->pw_gid) < 0)
        fprintf(stderr, "postern: warning: chown %s: %s\n", cfg->pop3_upstream_key,
                strerror(errno));
}

/* cmd_apop_user_check - the user exists and secret is not its login password. 0 or -1. */
static int cmd_apop_user_check(const struct cfg *cfg, const char *user, const char *secret)
{
    struct userdb *udb = NULL;
    int rc = userdb_open(cfg->db_path, &udb);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot open database %s: %s\n", cfg->db_path, err_str(rc));
        return -1;
    }
    rc = userdb_exists(udb, user);
    if (rc == 1 && secret && userdb_verify(udb, user, secret) == 0) {
        fprintf(stderr, "postern: the APOP secret must differ from the login password\n");
        rc = -1;
    } else if (rc == 0) {
        fprintf(stderr, "postern: no such user '%s' (postern user add %s)\n", user, user);
        rc = -1;
    } else if (rc < 0) {
        fprintf(stderr, "postern: user lookup: %s\n", err_str(rc));
    }
    userdb_close(&udb);
    return rc == 1 ? 0 : -1;
}

static int cmd_apop_set(const struct cfg *cfg, const char *user)
{
    if (cmd_apop_user_check(cfg, user, NULL) < 0)
        return 1;
    char secret[CMD_APOP_LINE_MAX];
    size_t len = 0;
    int status = 1;
    struct pop3u_key key;
    int have_key = 0;
    struct db *db = NULL;
    if (cmd_apop_read_secret(secret, sizeof secret, &len) < 0 ||
        cmd_apop_user_check(cfg, user, secret) < 0)
        goto out;
    int rc = pop3u_key_load(cfg->pop3_upstream_key, 1, &key);
    if (rc < 0) {
        fprintf(stderr, "postern: key file %s: %s\n", cfg->pop3_upstream_key, err_str(rc));
        goto out;
    }
    have_key = 1;
    cmd_apop_give_key(cfg);
    rc = db_open(cfg->db_path, &db);
    if (rc == 0)
        rc = pop3_apop_set(db, &key, user, secret, len);
    if (rc < 0) {
        fprintf(stderr, "postern: pop3 apop set %s: %s\n", user, err_str(rc));
        goto out;
    }
    status = 0;
    if (!cfg->pop3_apop)
        fprintf(stderr, "postern: note: APOP is off ([pop3] apop = no); the secret is kept "
                        "until it is turned on\n");
out:
    explicit_bzero(secret, sizeof secret);
    if (have_key)
        pop3u_key_wipe(&key);
    db_close(&db);
    return status;
}

static int cmd_apop_clear(const struct cfg *cfg, const char *user)
{
    struct db *db = NULL;
    int rc = db_open(cfg->db_path, &db);
    if (rc == 0)
        rc = pop3_apop_clear(db, user);
    db_close(&db);
    if (rc == PST_ENOENT) {
        fprintf(stderr, "postern: user '%s' has no APOP secret\n", user);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "postern: pop3 apop clear %s: %s\n", user, err_str(rc));
        return 1;
    }
    return 0;
}

int cmd_pop3_apop(const struct cfg *cfg, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "apop") == 0) {
        argc--;
        argv++;
    }
    if (argc != 2 || (strcmp(argv[0], "set") != 0 && strcmp(argv[0], "clear") != 0)) {
        fprintf(stderr, "usage: postern pop3 apop set USER   (secret read from stdin)\n"
                        "       postern pop3 apop clear USER\n");
        return 2;
    }
    const char *user = argv[1];
    if (!userdb_name_valid(user)) {
        fprintf(stderr, "postern: invalid user name '%s'\n", user);
        return 1;
    }
    if (mkdir(cfg->var_dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "postern: cannot create %s: %s\n", cfg->var_dir, strerror(errno));
        return 1;
    }
    return argv[0][0] == 's' ? cmd_apop_set(cfg, user) : cmd_apop_clear(cfg, user);
}
