/*
 * cmd_user.c - `postern user add|del|passwd|list`.
 *
 * Passwords are read from the terminal with echo off (asked twice), or as
 * one line from stdin when stdin is not a terminal (scripts, tests). They
 * are never accepted on the command line (it would show in ps and shell
 * history) and are wiped from memory after hashing.
 */
#include "cmd_user.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/userdb.h"

#define CMD_USER_PASS_MAX 1024

static int cmd_user_read_line(const char *prompt, char *out, size_t outsz)
{
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
    }
    char *r = fgets(out, (int)outsz, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!r)
        return PST_EINVAL;
    size_t len = strlen(out);
    if (len == outsz - 1 && out[len - 1] != '\n')
        return PST_ELIMIT;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int cmd_user_read_password(char *pass, size_t passsz)
{
    if (cmd_user_read_line("Password: ", pass, passsz) < 0 || pass[0] == '\0') {
        fprintf(stderr, "postern: no password given\n");
        return PST_EINVAL;
    }
    if (!isatty(STDIN_FILENO))
        return 0;
    char again[CMD_USER_PASS_MAX];
    int rc = cmd_user_read_line("Again: ", again, sizeof again);
    int same = rc == 0 && strcmp(pass, again) == 0;
    explicit_bzero(again, sizeof again);
    if (!same) {
        fprintf(stderr, "postern: passwords do not match\n");
        return PST_EINVAL;
    }
    return 0;
}

static int cmd_user_print(void *arg, const char *name, long long created)
{
    printf("%s\n", name);
    return 0;
}

static int cmd_user_fail(const char *what, const char *name, int rc)
{
    fprintf(stderr, "postern: user %s %s: %s\n", what, name ? name : "", err_str(rc));
    return 1;
}

int cmd_user_main(const struct cfg *cfg, int argc, char **argv)
{
    const char *action = argv[0];
    const char *name = argc > 1 ? argv[1] : NULL;
    int needs_name = strcmp(action, "list") != 0;
    if ((needs_name && argc != 2) || (!needs_name && argc != 1)) {
        fprintf(stderr, "usage: postern user add|del|passwd NAME | postern user list\n");
        return 2;
    }
    if (needs_name && !userdb_name_valid(name)) {
        fprintf(stderr,
                "postern: invalid user name '%s': use 1-64 of a-z 0-9 . _ - "
                "(not starting with . or -)\n",
                name);
        return 1;
    }
    /* The database lives in var/; a user may be added before the first `serve`. */
    if (mkdir(cfg->var_dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "postern: cannot create %s: %s\n", cfg->var_dir, strerror(errno));
        return 1;
    }
    struct userdb *db = NULL;
    int rc = userdb_open(cfg->db_path, &db);
    if (rc < 0) {
        fprintf(stderr, "postern: cannot open database %s: %s\n", cfg->db_path, err_str(rc));
        return 1;
    }
    int status = 0;
    char pass[CMD_USER_PASS_MAX];
    if (strcmp(action, "add") == 0 || strcmp(action, "passwd") == 0) {
        if (cmd_user_read_password(pass, sizeof pass) < 0) {
            status = 1;
        } else {
            rc = action[0] == 'a' ? userdb_add(db, name, pass) : userdb_passwd(db, name, pass);
            status = rc < 0 ? cmd_user_fail(action, name, rc) : 0;
            if (rc == 0)
                log_info("user %s name=%s", action[0] == 'a' ? "added" : "password_changed", name);
        }
        explicit_bzero(pass, sizeof pass);
    } else if (strcmp(action, "del") == 0) {
        rc = userdb_del(db, name);
        status = rc < 0 ? cmd_user_fail(action, name, rc) : 0;
        if (rc == 0)
            log_info("user deleted name=%s (mailbox kept)", name);
    } else if (strcmp(action, "list") == 0) {
        rc = userdb_list(db, cmd_user_print, NULL);
        status = rc < 0 ? cmd_user_fail(action, NULL, rc) : 0;
    } else {
        fprintf(stderr, "postern: unknown user action '%s'\n", action);
        status = 2;
    }
    userdb_close(&db);
    return status;
}
