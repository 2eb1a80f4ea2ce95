/*
 * cmd_directory.c - `postern directory ...`: the public directory's records
 * from the command line.
 *
 *   directory import FILE.csv|FILE.xml [--partial]
 *   directory list [--state pending|live|removed]
 *   directory show ID|ADDRESS          (ADDRESS: an SMTP or an alternative address)
 *   directory remove ID
 *   directory lookup ADDRESS           (asks the directory service, like the gateway)
 *
 * import, list, show and remove work on the store directly ([directory]
 * database: the state database, or PostgreSQL via pg_conninfo). import is
 * all-or-nothing: one rejected row and nothing is stored (exit 1) unless
 * --partial; every rejected row is listed with its line and reason, and a
 * progress bar is drawn when standard error is a terminal. lookup uses
 * dir_client.h against [directory] url (empty: this server's listener) and
 * prints one "TYPE<TAB>ADDRESS" line per alternative.
 *
 * Exit status: 0 success, 1 failure / nothing found / rows rejected, 2 usage,
 * 75 (EX_TEMPFAIL) when the directory cannot be reached (lookup).
 * Text from the imported file is printed through log_quote(), so a hostile
 * file cannot send control sequences to the terminal.
 */
#include "cmd_directory.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "directory/dir_addr.h"
#include "directory/dir_client.h"
#include "directory/dir_import.h"
#include "directory/dir_store.h"
#include "lib/log.h"

#define CMD_DIR_REJECTS_SHOWN 50 /* rejected rows listed one by one */
#define CMD_DIR_PROGRESS_MS 100  /* redraw the progress bar at most this often */
#define CMD_DIR_BAR_WIDTH 40
#define CMD_DIR_EX_TEMPFAIL 75

static int cmd_dir_usage(void)
{
    fputs("usage: postern directory import FILE.csv|FILE.xml [--partial]\n"
          "       postern directory list [--state pending|live|removed]\n"
          "       postern directory show ID|ADDRESS\n"
          "       postern directory remove ID\n"
          "       postern directory lookup ADDRESS\n",
          stderr);
    return 2;
}

static int cmd_dir_open(const struct cfg *cfg, struct dir_store **st)
{
    int rc;
    if (strcasecmp(cfg->dir_database, "postgresql") == 0) {
        rc = dir_store_open_pg(cfg->dir_pg_conninfo, st);
        if (rc != 0) /* the conninfo may hold a password: never printed */
            fprintf(stderr, "postern: cannot open the PostgreSQL directory: %s\n", err_str(rc));
        return rc;
    }
    rc = dir_store_open_sqlite(cfg->db_path, st);
    if (rc != 0)
        fprintf(stderr, "postern: cannot open %s: %s\n", cfg->db_path, err_str(rc));
    return rc;
}

static int64_t cmd_dir_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *cmd_dir_time(int64_t t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return "-";
    return out;
}

/* ---- import ---- */

struct cmd_dir_import {
    bool tty;
    bool bar_drawn;
    int64_t last_draw;
    uint64_t shown;
};

static void cmd_dir_bar_clear(struct cmd_dir_import *im)
{
    if (im->bar_drawn) {
        fputs("\r\033[K", stderr);
        im->bar_drawn = false;
    }
}

static void cmd_dir_progress(uint64_t done, uint64_t total, uint64_t rows, void *arg)
{
    struct cmd_dir_import *im = arg;
    int64_t now = cmd_dir_now_ms();
    if (!im->tty || (im->bar_drawn && now - im->last_draw < CMD_DIR_PROGRESS_MS && done < total))
        return;
    im->last_draw = now;
    im->bar_drawn = true;
    if (total == 0) {
        fprintf(stderr, "\rimporting: %" PRIu64 " rows", rows);
        return;
    }
    unsigned pct = (unsigned)(done * 100 / total);
    unsigned fill = (unsigned)(done * CMD_DIR_BAR_WIDTH / total);
    char bar[CMD_DIR_BAR_WIDTH + 1];
    for (unsigned i = 0; i < CMD_DIR_BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[CMD_DIR_BAR_WIDTH] = '\0';
    fprintf(stderr, "\rimporting [%s] %3u%% %" PRIu64 " rows", bar, pct, rows);
}

static void cmd_dir_reject(unsigned long line, const char *why, const char *smtp, void *arg)
{
    struct cmd_dir_import *im = arg;
    if (im->shown++ >= CMD_DIR_REJECTS_SHOWN)
        return;
    cmd_dir_bar_clear(im);
    char q[128];
    if (smtp[0])
        fprintf(stderr, "line %lu: rejected: %s (%s)\n", line, why,
                log_quote(q, sizeof(q), smtp, strlen(smtp)));
    else
        fprintf(stderr, "line %lu: rejected: %s\n", line, why);
}

static void cmd_dir_summary(const char *path, const struct dir_import_report *rep, uint64_t shown,
                            bool partial)
{
    if (shown > CMD_DIR_REJECTS_SHOWN)
        fprintf(stderr, "... and %" PRIu64 " more rejected rows\n", shown - CMD_DIR_REJECTS_SHOWN);
    printf("%s: %" PRIu64 " rows, %" PRIu64 " accepted, %" PRIu64 " rejected\n", path, rep->rows,
           rep->accepted, rep->rejected);
    for (size_t i = 0; i < rep->nreasons; i++)
        printf("  %8" PRIu64 "  %s (first at line %lu)\n", rep->reasons[i].count,
               rep->reasons[i].why, rep->reasons[i].first_line);
    if (rep->committed)
        printf("stored %" PRIu64 " listings\n", rep->accepted);
    else if (rep->rejected > 0 && !partial)
        printf("nothing stored (fix the rejected rows, or use --partial to store the %" PRIu64
               " accepted ones)\n",
               rep->accepted);
}

static int cmd_dir_import(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"partial", no_argument, NULL, 'p'}, {NULL, 0, NULL, 0}};
    bool partial = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'p')
            return cmd_dir_usage();
        partial = true;
    }
    if (optind != argc - 1)
        return cmd_dir_usage();
    const char *path = argv[optind];
    struct dir_store *st = NULL;
    if (cmd_dir_open(cfg, &st) != 0)
        return 1;
    struct cmd_dir_import im = {.tty = isatty(STDERR_FILENO) == 1};
    struct dir_import_opts o = {
        .partial = partial,
        .case_sensitive = cfg->dir_case_sensitive != 0,
        .now = (int64_t)time(NULL),
        .on_reject = cmd_dir_reject,
        .on_progress = cmd_dir_progress,
        .arg = &im,
    };
    struct dir_import_report *rep = calloc(1, sizeof(*rep));
    int rc = rep != NULL ? dir_import_file(st, path, &o, rep) : PST_ENOMEM;
    cmd_dir_bar_clear(&im);
    dir_store_close(&st);
    int status = 1;
    if (rc == PST_EINVAL || rc == PST_ELIMIT) {
        fprintf(stderr, "postern: %s: line %lu: %s; nothing stored\n", path, rep->error_line,
                rep->error);
    } else if (rc != 0) {
        fprintf(stderr, "postern: %s: %s; nothing stored\n", path,
                rc == PST_ENOENT ? "no such file" : err_str(rc));
    } else {
        cmd_dir_summary(path, rep, im.shown, partial);
        status = rep->committed ? 0 : 1;
    }
    free(rep);
    return status;
}

/* ---- list / show / remove ---- */

static int cmd_dir_print_row(const struct dir_record *r, void *arg)
{
    char t[32];
    (void)arg;
    printf("%" PRId64 "\t%s\t%s\t%s\t%s\t%s\n", r->id, dir_state_name(r->state), r->type, r->smtp,
           r->alt, cmd_dir_time(r->created, t, sizeof(t)));
    return 0;
}

static int cmd_dir_print_full(const struct dir_record *r, void *arg)
{
    char t[32];
    (void)arg;
    printf("id: %" PRId64 "\nstate: %s\nsmtp_address: %s\ntype: %s\naddress: %s\nsource: %s\n",
           r->id, dir_state_name(r->state), r->smtp, r->type, r->alt, r->source);
    printf("created: %s\n", cmd_dir_time(r->created, t, sizeof(t)));
    printf("smtp_confirmed: %s\n", cmd_dir_time(r->smtp_confirmed, t, sizeof(t)));
    printf("alt_confirmed: %s\n", cmd_dir_time(r->alt_confirmed, t, sizeof(t)));
    printf("live_since: %s\n", cmd_dir_time(r->live_since, t, sizeof(t)));
    printf("removed_at: %s\n\n", cmd_dir_time(r->removed_at, t, sizeof(t)));
    if (arg != NULL)
        (*(size_t *)arg)++;
    return 0;
}

static int cmd_dir_state_parse(const char *s)
{
    static const char *names[] = {"pending", "live", "removed"};
    static const enum dir_state states[] = {DIR_PENDING, DIR_LIVE, DIR_REMOVED};
    for (size_t i = 0; i < PST_ARRAY_LEN(names); i++)
        if (strcasecmp(s, names[i]) == 0)
            return (int)states[i];
    return -2;
}

static int cmd_dir_list(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"state", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    int state = -1, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 's' || (state = cmd_dir_state_parse(optarg)) == -2)
            return cmd_dir_usage();
    }
    if (optind != argc)
        return cmd_dir_usage();
    struct dir_store *st = NULL;
    if (cmd_dir_open(cfg, &st) != 0)
        return 1;
    printf("ID\tSTATE\tTYPE\tSMTP\tADDRESS\tCREATED\n");
    int rc = dir_store_list(st, state, 0, 0, cmd_dir_print_row, NULL);
    dir_store_close(&st);
    if (rc != 0)
        fprintf(stderr, "postern: directory list: %s\n", err_str(rc));
    return rc == 0 ? 0 : 1;
}

/* cmd_dir_parse_id - a positive decimal record id, or -1. */
static int64_t cmd_dir_parse_id(const char *s)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    return *end == '\0' && v > 0 ? (int64_t)v : -1;
}

static int cmd_dir_show_address(const struct cfg *cfg, struct dir_store *st, const char *a)
{
    const char *why = NULL;
    size_t found = 0;
    int rc;
    if (strchr(a, '@') != NULL && strncmp(a, "dmail:", 6) != 0) {
        char key[DIR_SMTP_MAX + 1];
        rc = dir_addr_smtp_normalize(a, strlen(a), cfg->dir_case_sensitive != 0, key, sizeof(key),
                                     &why);
        if (rc == 0)
            rc = dir_store_lookup(st, key, cmd_dir_print_full, &found);
    } else {
        const char *type = dir_addr_guess_type(a, strlen(a));
        char alt[DIR_ALT_MAX + 1];
        why = "neither an SMTP address nor a BM-/dmail:// address";
        rc = type != NULL ? dir_addr_alt_normalize(type, a, strlen(a), alt, sizeof(alt), &why)
                          : PST_EINVAL;
        if (rc == 0)
            rc = dir_store_reverse(st, type, alt, cmd_dir_print_full, &found);
    }
    char q[128];
    if (rc == PST_EINVAL || rc == PST_ELIMIT) {
        fprintf(stderr, "postern: %s: %s\n", log_quote(q, sizeof(q), a, strlen(a)),
                why != NULL ? why : "invalid address");
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "postern: directory show: %s\n", err_str(rc));
        return 1;
    }
    if (found == 0) {
        fprintf(stderr, "postern: no live listing for %s\n", log_quote(q, sizeof(q), a, strlen(a)));
        return 1;
    }
    return 0;
}

static int cmd_dir_show(const struct cfg *cfg, int argc, char **argv)
{
    if (argc != 2)
        return cmd_dir_usage();
    struct dir_store *st = NULL;
    if (cmd_dir_open(cfg, &st) != 0)
        return 1;
    int status;
    int64_t id = cmd_dir_parse_id(argv[1]);
    if (id > 0) {
        struct dir_record r;
        int rc = dir_store_get(st, id, &r);
        if (rc == 0)
            (void)cmd_dir_print_full(&r, NULL);
        else
            fprintf(stderr, "postern: record %" PRId64 ": %s\n", id,
                    rc == PST_ENOENT ? "no such record" : err_str(rc));
        status = rc == 0 ? 0 : 1;
    } else {
        status = cmd_dir_show_address(cfg, st, argv[1]);
    }
    dir_store_close(&st);
    return status;
}

static int cmd_dir_remove(const struct cfg *cfg, int argc, char **argv)
{
    int64_t id = argc == 2 ? cmd_dir_parse_id(argv[1]) : -1;
    if (id <= 0)
        return cmd_dir_usage();
    struct dir_store *st = NULL;
    if (cmd_dir_open(cfg, &st) != 0)
        return 1;
    int rc = dir_store_remove(st, id, (int64_t)time(NULL));
    dir_store_close(&st);
    if (rc == 0) {
        printf("removed %" PRId64 "\n", id);
        return 0;
    }
    fprintf(stderr, "postern: record %" PRId64 ": %s\n", id,
            rc == PST_ENOENT  ? "no such record"
            : rc == PST_EPERM ? "already removed"
                              : err_str(rc));
    return 1;
}

/* ---- lookup ---- */

struct cmd_dir_lookup {
    struct event_base *base;
    bool done;
    int rc;
    int status;
};

static void cmd_dir_lookup_cb(void *arg, int rc, const struct dir_client_result *res)
{
    struct cmd_dir_lookup *lk = arg;
    lk->done = true;
    lk->rc = rc;
    lk->status = 1;
    if (rc == 0) {
        for (size_t i = 0; i < res->n; i++)
            printf("%s\t%s\n", res->alt[i].type, res->alt[i].address);
        if (res->n == 0)
            fprintf(stderr, "postern: %s: no alternative address\n", res->smtp);
        lk->status = res->n > 0 ? 0 : 1;
    }
    event_base_loopbreak(lk->base);
}

static int cmd_dir_lookup(const struct cfg *cfg, int argc, char **argv)
{
    if (argc != 2)
        return cmd_dir_usage();
    struct cmd_dir_lookup lk = {.base = event_base_new(), .status = 1};
    if (lk.base == NULL)
        return 1;
    struct dir_client *c = NULL;
    char q[128];
    int rc = dir_client_new_cfg(lk.base, cfg, &c);
    if (rc != 0) {
        fprintf(stderr, "postern: directory client: %s\n",
                rc == PST_ECONFIG ? "no [directory] url and the listener is disabled"
                                  : err_str(rc));
    } else if ((rc = dir_client_lookup(c, argv[1], cmd_dir_lookup_cb, &lk)) != 0) {
        fprintf(stderr, "postern: %s: %s\n", log_quote(q, sizeof(q), argv[1], strlen(argv[1])),
                rc == PST_EINVAL ? "not a valid SMTP address" : err_str(rc));
    } else {
        while (!lk.done && event_base_loop(lk.base, EVLOOP_ONCE) >= 0)
            ;
        if (lk.rc == PST_EAGAIN)
            fprintf(stderr, "postern: the directory did not answer (timeout or unreachable)\n");
        else if (lk.rc != 0)
            fprintf(stderr, "postern: the directory's answer was malformed\n");
    }
    dir_client_free(&c);
    event_base_free(lk.base);
    if (lk.done && lk.rc == PST_EAGAIN)
        return CMD_DIR_EX_TEMPFAIL;
    return lk.done ? lk.status : 1;
}

int cmd_directory_main(const struct cfg *cfg, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(const struct cfg *, int, char **);
    } actions[] = {
        {"import", cmd_dir_import}, {"list", cmd_dir_list},     {"show", cmd_dir_show},
        {"remove", cmd_dir_remove}, {"lookup", cmd_dir_lookup},
    };
    if (argc < 1)
        return cmd_dir_usage();
    for (size_t i = 0; i < PST_ARRAY_LEN(actions); i++)
        if (strcmp(argv[0], actions[i].name) == 0)
            return actions[i].fn(cfg, argc, argv);
    fprintf(stderr, "postern: directory: unknown action '%s'\n", argv[0]);
    return cmd_dir_usage();
}
