/*
 * cmd_bm.c - `postern bm ...`: the Bitmessage node's addresses, outbox and
 * inbox, from the command line.
 *
 *   bm address new [--deterministic PASSPHRASE|-] [--label TEXT] [--user NAME]
 *   bm address list
 *   bm owner ADDRESS USER|-           (who gets mail to ADDRESS in a Maildir)
 *   bm send --from BM-.. --to BM-.. --subject TEXT (--body TEXT | --body-file FILE|-)
 *           [--ttl DURATION] [--wait SECONDS]
 *   bm status MSGID
 *   bm outbox
 *   bm inbox
 *
 * Everything goes through the state database (bm_api.h): `send` queues the
 * message durably, prints its id and wakes the running node; --wait then
 * polls its state until it is acknowledged (exit 0), fails or times out
 * (exit 1). A passphrase given as "-" is read from standard input, so it
 * does not show in the process list. Private keys are never printed.
 */
#include "cmd_bm.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "bitmessage/bm_api.h"
#include "bitmessage/bm_store.h"
#include "lib/buf.h"
#include "lib/db.h"

#define CMD_BM_TEXT_MAX (256u * 1024)
#define CMD_BM_WAIT_STEP_MS 200

static int cmd_bm_usage(void)
{
    fputs("usage: postern bm address new [--deterministic PASSPHRASE|-] [--label TEXT] "
          "[--user NAME]\n"
          "       postern bm address list\n"
          "       postern bm owner ADDRESS USER|-\n"
          "       postern bm send --from ADDR --to ADDR --subject TEXT "
          "(--body TEXT | --body-file FILE|-) [--ttl SECONDS] [--wait SECONDS]\n"
          "       postern bm status MSGID\n"
          "       postern bm outbox\n"
          "       postern bm inbox\n",
          stderr);
    return 2;
}

static int cmd_bm_open(const struct cfg *cfg, struct bm_store **st)
{
    int rc = bm_store_open(cfg->db_path, st);
    if (rc != 0)
        fprintf(stderr, "postern: cannot open %s: %s\n", cfg->db_path, err_str(rc));
    return rc;
}

/* cmd_bm_read_fd - the whole of fd (at most CMD_BM_TEXT_MAX bytes) as a C string in out. */
static int cmd_bm_read_fd(int fd, buf_t *out)
{
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return PST_EIO;
        if (n == 0)
            break;
        if (buf_append(out, chunk, (size_t)n) != 0)
            return PST_ELIMIT;
    }
    /* out->data is NUL-terminated by buf_t; an embedded NUL would cut the text */
    return memchr(out->data, '\0', out->len) != NULL ? PST_EINVAL : 0;
}

static int cmd_bm_read_file(const char *path, buf_t *out)
{
    if (strcmp(path, "-") == 0)
        return cmd_bm_read_fd(STDIN_FILENO, out);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return PST_EIO;
    int rc = cmd_bm_read_fd(fileno(f), out);
    fclose(f);
    return rc;
}

/* ---- address ---- */

static int cmd_bm_address_new(const struct cfg *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"deterministic", required_argument, NULL, 'd'},
                                         {"label", required_argument, NULL, 'l'},
                                         {"user", required_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    const char *pass = NULL, *label = "", *user = "";
    int c;
    optind = 0; /* glibc: full re-initialisation after main's getopt */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd')
            pass = optarg;
        else if (c == 'l')
            label = optarg;
        else if (c == 'u')
            user = optarg;
        else
            return cmd_bm_usage();
    }
    if (optind != argc)
        return cmd_bm_usage();
    buf_t pbuf;
    buf_init(&pbuf, BM_API_PASSPHRASE_MAX + 2);
    if (pass != NULL && strcmp(pass, "-") == 0) {
        if (cmd_bm_read_fd(STDIN_FILENO, &pbuf) != 0) {
            fprintf(stderr, "postern: cannot read the passphrase from standard input\n");
            buf_release(&pbuf);
            return 1;
        }
        char *p = (char *)pbuf.data;
        p[strcspn(p, "\r\n")] = '\0'; /* one line */
        pass = p;
    }
    struct bm_store *st = NULL;
    char addr[BM_STORE_ADDR_MAX + 1];
    int rc = cmd_bm_open(cfg, &st);
    if (rc == 0) {
        rc = bm_api_address_new(st, pass, label, user, (int64_t)time(NULL), addr, sizeof(addr));
        if (rc == 0)
            printf("%s\n", addr);
        else if (rc == PST_EEXIST)
            fprintf(stderr, "postern: that address is already ours\n");
        else
            fprintf(stderr, "postern: cannot create the address: %s\n", err_str(rc));
    }
    bm_store_close(&st);
    if (pbuf.data != NULL)
        OPENSSL_cleanse(pbuf.data, pbuf.len);
    buf_release(&pbuf);
    return rc == 0 ? 0 : 1;
}

static int cmd_bm_print_key(const struct bm_store_key *k, void *arg)
{
    struct bm_store *st = arg;
    char owner[BM_API_OWNER_MAX + 1] = "";
    if (bm_api_owner(st, k->address, owner, sizeof(owner)) != 0)
        owner[0] = '\0';
    char when[32];
    time_t t = (time_t)k->created;
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    printf("%-40s v%u %-13s user=%-12s %s label=%s\n", k->address, k->version,
           k->deterministic ? "deterministic" : "random", owner[0] ? owner : "-", when, k->label);
    return 0;
}

static int cmd_bm_address(const struct cfg *cfg, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "new") == 0)
        return cmd_bm_address_new(cfg, argc, argv);
    if (argc != 1 || strcmp(argv[0], "list") != 0)
        return cmd_bm_usage();
    struct bm_store *st = NULL;
    int rc = cmd_bm_open(cfg, &st);
    if (rc == 0 && (rc = bm_store_key_list(st, cmd_bm_print_key, st)) != 0)
        fprintf(stderr, "postern: cannot list addresses: %s\n", err_str(rc));
    bm_store_close(&st);
    return rc == 0 ? 0 : 1;
}

static int cmd_bm_owner(const struct cfg *cfg, int argc, char **argv)
{
    if (argc != 3)
        return cmd_bm_usage();
    struct bm_store *st = NULL;
    int rc = cmd_bm_open(cfg, &st);
    const char *user = strcmp(argv[2], "-") == 0 ? "" : argv[2];
    if (rc == 0 && (rc = bm_api_set_owner(st, argv[1], user)) != 0)
        fprintf(stderr, "postern: %s: %s\n", argv[1],
                rc == PST_ENOENT ? "not one of our addresses" : err_str(rc));
    bm_store_close(&st);
    return rc == 0 ? 0 : 1;
}

/* ---- send / status ---- */

struct cmd_bm_send_args {
    const char *from, *to, *subject, *body, *body_file;
    long ttl;
    long wait;
};

static int cmd_bm_send_parse(const struct cfg *cfg, int argc, char **argv,
                             struct cmd_bm_send_args *a)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},      {"to", required_argument, NULL, 't'},
        {"subject", required_argument, NULL, 's'},   {"body", required_argument, NULL, 'b'},
        {"body-file", required_argument, NULL, 'B'}, {"ttl", required_argument, NULL, 'T'},
        {"wait", required_argument, NULL, 'w'},      {NULL, 0, NULL, 0}};
    int c;
    char *end;
    memset(a, 0, sizeof(*a));
    a->subject = "";
    a->ttl = (long)cfg->bm_ttl;
    optind = 0; /* glibc: full re-initialisation after main's getopt */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            a->from = optarg;
            break;
        case 't':
            a->to = optarg;
            break;
        case 's':
            a->subject = optarg;
            break;
        case 'b':
            a->body = optarg;
            break;
        case 'B':
            a->body_file = optarg;
            break;
        case 'T':
        case 'w':
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v < 0)
                return cmd_bm_usage();
            if (c == 'T')
                a->ttl = v;
            else
                a->wait = v;
            break;
        default:
            return cmd_bm_usage();
        }
    }
    if (optind != argc || a->from == NULL || a->to == NULL ||
        (a->body == NULL) == (a->body_file == NULL))
        return cmd_bm_usage();
    return 0;
}

/* cmd_bm_wait - poll msgid's state until acked (0), failed or timeout (1). */
static int cmd_bm_wait(struct bm_store *st, int64_t msgid, long seconds)
{
    struct timespec step = {0, CMD_BM_WAIT_STEP_MS * 1000000L};
    time_t deadline = time(NULL) + seconds;
    enum bm_outbox_state s = BM_OUTBOX_AWAITINGPUBKEY;
    for (;;) {
        int rc = bm_api_status(st, msgid, &s, NULL);
        if (rc != 0) {
            fprintf(stderr, "postern: message %lld: %s\n", (long long)msgid, err_str(rc));
            return 1;
        }
        if (s == BM_OUTBOX_ACKED || s == BM_OUTBOX_FAILED || time(NULL) >= deadline)
            break;
        nanosleep(&step, NULL);
    }
    printf("%lld %s\n", (long long)msgid, bm_outbox_state_name(s));
    return s == BM_OUTBOX_ACKED ? 0 : 1;
}

static int cmd_bm_send(const struct cfg *cfg, int argc, char **argv)
{
    struct cmd_bm_send_args a;
    int rc = cmd_bm_send_parse(cfg, argc, argv, &a);
    if (rc != 0)
        return rc;
    buf_t body;
    buf_init(&body, CMD_BM_TEXT_MAX + 1);
    if (a.body_file != NULL) {
        if ((rc = cmd_bm_read_file(a.body_file, &body)) != 0) {
            fprintf(stderr, "postern: cannot read %s: %s\n", a.body_file,
                    rc == PST_EINVAL ? "it contains NUL bytes" : err_str(rc));
            buf_release(&body);
            return 1;
        }
        a.body = (const char *)body.data;
    }
    struct bm_store *st = NULL;
    int64_t msgid = 0;
    char why[256] = "";
    if ((rc = cmd_bm_open(cfg, &st)) == 0) {
        rc = bm_api_send(st, a.from, a.to, a.subject, a.body, a.ttl, (int64_t)time(NULL), &msgid,
                         why, sizeof(why));
        if (rc != 0)
            fprintf(stderr, "postern: %s\n", why[0] ? why : err_str(rc));
    }
    buf_release(&body);
    if (rc == 0) {
        printf("%lld\n", (long long)msgid);
        fflush(stdout);
        if (bm_api_notify(cfg->run_dir) != 0)
            fprintf(stderr, "postern: note: the Bitmessage node is not running; the message "
                            "waits in the outbox\n");
        if (a.wait > 0)
            rc = cmd_bm_wait(st, msgid, a.wait) == 0 ? 0 : 1;
    }
    bm_store_close(&st);
    return rc == 0 ? 0 : 1;
}

static int cmd_bm_status(const struct cfg *cfg, int argc, char **argv)
{
    if (argc != 2)
        return cmd_bm_usage();
    char *end;
    errno = 0;
    long long id = strtoll(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || id <= 0)
        return cmd_bm_usage();
    struct bm_store_outmsg m;
    struct bm_store *st = NULL;
    int rc = cmd_bm_open(cfg, &st);
    if (rc == 0 && (rc = bm_store_outbox_get(st, id, &m)) == 0) {
        printf("msgid=%lld state=%s from=%s to=%s attempts=%u ttl=%lld\n", id,
               bm_outbox_state_name(m.state), m.from_addr, m.to_addr, m.attempts, (long long)m.ttl);
        bm_store_outmsg_free(&m);
    } else if (rc != 0) {
        fprintf(stderr, "postern: message %lld: %s\n", id,
                rc == PST_ENOENT ? "no such message" : err_str(rc));
    }
    bm_store_close(&st);
    return rc == 0 ? 0 : 1;
}

/* ---- listings (read-only SQL on the node's tables) ---- */

static int cmd_bm_query(const struct cfg *cfg, const char *sql, int ncols)
{
    struct bm_store *st = NULL;
    sqlite3_stmt *q = NULL;
    int rc = cmd_bm_open(cfg, &st);
    if (rc == 0)
        rc = db_stmt(bm_store_db(st), sql, &q);
    unsigned rows = 0;
    while (rc == 0 && (rc = db_step(q)) == 1) {
        for (int i = 0; i < ncols; i++) {
            const unsigned char *v = sqlite3_column_text(q, i);
            printf("%s%s", i ? " " : "", v ? (const char *)v : "");
        }
        putchar('\n');
        rows++;
        rc = 0;
    }
    db_stmt_done(q);
    bm_store_close(&st);
    if (rc < 0) {
        fprintf(stderr, "postern: %s\n", err_str(rc));
        return 1;
    }
    printf("-- %u message%s\n", rows, rows == 1 ? "" : "s");
    return 0;
}

int cmd_bm_main(const struct cfg *cfg, int argc, char **argv)
{
    if (argc < 1)
        return cmd_bm_usage();
    const char *a = argv[0];
    if (strcmp(a, "address") == 0)
        return cmd_bm_address(cfg, argc - 1, argv + 1);
    if (strcmp(a, "owner") == 0)
        return cmd_bm_owner(cfg, argc, argv);
    if (strcmp(a, "send") == 0)
        return cmd_bm_send(cfg, argc, argv);
    if (strcmp(a, "status") == 0)
        return cmd_bm_status(cfg, argc, argv);
    if (strcmp(a, "outbox") == 0 && argc == 1)
        return cmd_bm_query(cfg,
                            "SELECT msgid, state, 'attempts=' || attempts, from_addr, '->', "
                            "to_addr, datetime(created, 'unixepoch') FROM bm_outbox "
                            "ORDER BY msgid",
                            7);
    if (strcmp(a, "inbox") == 0 && argc == 1)
        return cmd_bm_query(cfg,
                            "SELECT id, datetime(received, 'unixepoch'), from_addr, '->', "
                            "to_addr, CASE delivered_to_maildir WHEN 1 THEN 'delivered' "
                            "ELSE 'pending' END, quote(substr(subject, 1, 60)) FROM bm_inbox "
                            "ORDER BY id",
                            7);
    return cmd_bm_usage();
}
