/*
 * main.c - the `postern` command: option parsing and dispatch.
 *
 *   postern serve [-c FILE] [-d]
 *   postern check-config [-c FILE] [-v]
 *   postern user add|del|passwd NAME [-c FILE]
 *   postern user list [-c FILE]
 *   postern queue list|show QID|delete QID|flush [-c FILE]
 *   postern version
 *
 * -c may also come before the subcommand. Without -c, ./postern.conf is used
 * when it exists, else the embedded defaults. Exit status: 0 success,
 * 1 failure, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd_bm.h"
#include "cli/cmd_directory.h"
#include "cli/cmd_pop3.h"
#include "cli/cmd_queue.h"
#include "cli/cmd_user.h"
#include "cli/serve.h"
#include "lib/config.h"
#include "lib/log.h"

#define MAIN_DEFAULT_CONFIG "postern.conf"

static void main_usage(FILE *f)
{
    fputs("usage: postern [-c FILE] COMMAND [ARGS]\n"
          "  serve [-d]                      run the mail system (foreground; -d: daemon)\n"
          "  check-config [-v]               validate the configuration (-v: print it)\n"
          "  user add|del|passwd NAME        manage local users (password from stdin or tty)\n"
          "  user list\n"
          "  queue list|show QID|delete QID|hold QID|release QID|flush\n"
          "  bm address new|list, bm owner, bm send, bm status|outbox|inbox\n"
          "                                  the Bitmessage node (see postern(8))\n"
          "  directory import FILE [--partial], directory list|show|remove|lookup\n"
          "                                  the public directory (see docs/directory.md)\n"
          "  pop3 upstream add|list|remove, pop3 stats, pop3 apop set|clear\n"
          "                                  POP3 proxy profiles (see docs/pop3.md)\n"
          "  version\n"
          "Options: -c FILE  configuration file (default ./postern.conf if present,\n"
          "                  else embedded defaults; see postern(8) and docs/config.md)\n",
          f);
}

struct main_opts {
    const char *config;
    int daemonize;
    int verbose;
};

/*
 * main_take_config - remove "-c FILE", "-cFILE", "--config FILE" and
 * "--config=FILE" from anywhere in argv (so `postern user list -c FILE`
 * works as well as `postern -c FILE user list`) and keep the last FILE.
 * Returns 0, or 2 when FILE is missing.
 */
static int main_take_config(int *argc, char **argv, struct main_opts *o)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= *argc)
                return 2;
            o->config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            o->config = a + 9;
        } else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
            o->config = a + 2;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

/*
 * main_getopt - -d, -v and -h before the command (stop at the command,
 * whose own options, e.g. `bm send --from`, are its business), and also
 * after it for serve and check-config.
 */
static int main_getopt(int argc, char **argv, struct main_opts *o)
{
    static const struct option longopts[] = {
        {"daemon", no_argument, NULL, 'd'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "+dvh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->daemonize = 1;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case 'h':
            main_usage(stdout);
            return 1;
        default:
            main_usage(stderr);
            return 2;
        }
    }
    return 0;
}

static struct cfg *main_load_config(const char *path)
{
    if (!path && access(MAIN_DEFAULT_CONFIG, F_OK) == 0)
        path = MAIN_DEFAULT_CONFIG;
    char err[512];
    struct cfg *cfg = cfg_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    enum log_level lvl = LOG_LVL_INFO;
    if (log_level_parse(cfg->log_level, &lvl) < 0)
        lvl = LOG_LVL_INFO;
    log_init("postern", lvl,
             strcmp(cfg->log_target, "syslog") == 0 ? LOG_TO_SYSLOG : LOG_TO_STDERR);
    return cfg;
}

int main(int argc, char **argv)
{
    struct main_opts o = {0};
    int rc = main_take_config(&argc, argv, &o);
    if (rc == 0)
        rc = main_getopt(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (optind < argc &&
        (strcmp(argv[optind], "serve") == 0 || strcmp(argv[optind], "check-config") == 0)) {
        /* their options may follow the command: parse argv[optind..] as its own vector */
        int first = optind;
        char **sub = argv + first;
        int nsub = argc - first;
        optind = 0; /* glibc: re-initialise getopt */
        if ((rc = main_getopt(nsub, sub, &o)) != 0)
            return rc == 1 ? 0 : rc;
        if (optind != nsub) {
            main_usage(stderr);
            return 2;
        }
        optind = first;
        argc = first + 1;
    }
    if (optind >= argc) {
        main_usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    char **args = argv + optind + 1;
    int nargs = argc - optind - 1;

    if (strcmp(cmd, "version") == 0) {
        printf("postern %s\n", POSTERN_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        main_usage(stdout);
        return 0;
    }
    int known = strcmp(cmd, "serve") == 0 || strcmp(cmd, "check-config") == 0 ||
                strcmp(cmd, "user") == 0 || strcmp(cmd, "queue") == 0 || strcmp(cmd, "bm") == 0 ||
                strcmp(cmd, "pop3") == 0 || strcmp(cmd, "directory") == 0;
    if (!known) {
        fprintf(stderr, "postern: unknown command '%s'\n", cmd);
        main_usage(stderr);
        return 2;
    }
    struct cfg *cfg = main_load_config(o.config);
    if (!cfg)
        return 1;
    if (strcmp(cmd, "serve") == 0) {
        rc = serve_main(cfg, o.daemonize);
    } else if (strcmp(cmd, "check-config") == 0) {
        printf("%s: ok\n", cfg->config_path ? cfg->config_path : "(embedded defaults)");
        rc = o.verbose && cfg_dump(cfg, STDOUT_FILENO) < 0 ? 1 : 0;
    } else if (nargs < 1) {
        main_usage(stderr);
        rc = 2;
    } else if (strcmp(cmd, "user") == 0) {
        rc = cmd_user_main(cfg, nargs, args);
    } else if (strcmp(cmd, "bm") == 0) {
        rc = cmd_bm_main(cfg, nargs, args);
    } else if (strcmp(cmd, "directory") == 0) {
        rc = cmd_directory_main(cfg, nargs, args);
    } else if (strcmp(cmd, "pop3") == 0) {
        rc = cmd_pop3_main(cfg, nargs, args);
    } else {
        rc = cmd_queue_main(cfg, nargs, args);
    }
    cfg_free(&cfg);
    return rc;
}
