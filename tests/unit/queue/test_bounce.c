/*
 * test_bounce.c - DSN generation: the generated message is read back from
 * the spool and parsed (MIME structure, boundaries, required fields, byte
 * exact part 3), plus the NOTIFY/RET rules and hostile inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "lib/spool.h"
#include "queue/bounce.h"
#include "smtp/smtp_parser.h"

#define HOST "mx.test.example"
#define PREFIX "JUNKPREFIX" /* bytes before the content in the content file */

static const char content_basic[] = "Received: from x by y; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
                                    "From: Alice <alice@example.org>\r\n"
                                    "To: bob@example.net\r\n"
                                    "Subject: hello\r\n"
                                    "\r\n"
                                    "Body line 1\r\n"
                                    "--=_postern_ looks like ours\r\n"
                                    "\r\n"
                                    "last line without CRLF";

static const char headers_basic[] = "Received: from x by y; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
                                    "From: Alice <alice@example.org>\r\n"
                                    "To: bob@example.net\r\n"
                                    "Subject: hello\r\n";

struct fx {
    char dir[256];
    char spool[300];
    char content_path[300];
    int fd;
};

/* A parsed DSN. */
struct dsn {
    struct spool_env *env;
    char *msg; /* whole content, NUL-terminated */
    size_t len;
    char *top; /* unfolded top header block (copy) */
    char boundary[128];
    char *part_head[3]; /* copies */
    const char *part_body[3];
    size_t part_len[3];
};

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/test_bounce.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
    snprintf(f->content_path, sizeof(f->content_path), "%s/content", f->dir);
    assert_int_equal(spool_init(f->spool), 0);
    f->fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    if (f->fd >= 0)
        close(f->fd);
    (void)tu_rm_rf(f->dir);
    free(f);
    return 0;
}

/* put_content - write PREFIX + content into the content file; f->fd reads it. */
static void put_content(struct fx *f, const char *content, size_t len)
{
    int fd = open(f->content_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, PREFIX, strlen(PREFIX)), (ssize_t)strlen(PREFIX));
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = open(f->content_path, O_RDONLY);
    assert_true(f->fd >= 0);
}

static struct spool_env *mk_orig(const char *sender)
{
    struct spool_env *e = spool_env_new();

    assert_non_null(e);
    e->sender = strdup(sender);
    memcpy(e->qid, "0192F3A4B5C6D7E8", SPOOL_QID_LEN + 1);
    e->time = 1764000000;
    assert_non_null(e->sender);
    return e;
}

static void dsn_free(struct dsn *d)
{
    int i;

    spool_env_free(&d->env);
    free(d->msg);
    free(d->top);
    for (i = 0; i < 3; i++)
        free(d->part_head[i]);
    memset(d, 0, sizeof(*d));
}

/* unfold - copy of a header block with CRLF + WSP folds removed. */
static char *unfold(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t i, o = 0;

    assert_non_null(out);
    for (i = 0; i < len; i++) {
        if (s[i] == '\r' && i + 2 < len && s[i + 1] == '\n' &&
            (s[i + 2] == ' ' || s[i + 2] == '\t')) {
            i += 1;
            continue;
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

/* header_value - the value of field name in an unfolded block ("" if absent). */
static const char *header_value(const char *block, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    const char *p = block;

    out[0] = '\0';
    while (p && *p) {
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *e;
            while (*v == ' ' || *v == '\t')
                v++;
            e = strstr(v, "\r\n");
            if (e == NULL)
                e = v + strlen(v);
            snprintf(out, outsz, "%.*s", (int)(e - v), v);
            return out;
        }
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return out;
}

/* check_lines - every line in [s, s+len) ends in CRLF (except possibly the last) and is < 998. */
static void check_lines(const char *s, size_t len)
{
    size_t i, start = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '\n') {
            assert_true(i > 0 && s[i - 1] == '\r');
            assert_true(i - 1 - start < 998);
            start = i + 1;
        } else if (s[i] == '\r') {
            assert_true(i + 1 < len && s[i + 1] == '\n');
        }
    }
    assert_true(len - start < 998);
}

/* read_dsn - load qid from the spool and split it into its MIME parts. */
static void read_dsn(struct fx *f, const char *qid, struct dsn *d)
{
    uint64_t clen;
    int fd, i;
    const char *body, *p, *q, *end;
    char ct[1024], delim[160], close_delim[170];
    const char *b;

    memset(d, 0, sizeof(*d));
    assert_int_equal(spool_open(f->spool, qid, &d->env, &fd, &clen), 0);
    d->msg = malloc(clen + 1);
    assert_non_null(d->msg);
    assert_int_equal(read(fd, d->msg, clen), (ssize_t)clen);
    close(fd);
    d->msg[clen] = '\0';
    d->len = clen;

    body = strstr(d->msg, "\r\n\r\n");
    assert_non_null(body);
    check_lines(d->msg, (size_t)(body - d->msg) + 2);
    d->top = unfold(d->msg, (size_t)(body - d->msg) + 2);
    body += 4;
    header_value(d->top, "Content-Type", ct, sizeof(ct));
    assert_non_null(strstr(ct, "multipart/report"));
    assert_non_null(strstr(ct, "report-type=delivery-status"));
    b = strstr(ct, "boundary=\"");
    assert_non_null(b);
    b += 10;
    assert_non_null(strchr(b, '"'));
    snprintf(d->boundary, sizeof(d->boundary), "%.*s", (int)(strchr(b, '"') - b), b);
    assert_true(strlen(d->boundary) > 20);
    snprintf(delim, sizeof(delim), "\r\n--%s\r\n", d->boundary);
    snprintf(close_delim, sizeof(close_delim), "\r\n--%s--\r\n", d->boundary);

    /* the message ends with the close delimiter, exactly once */
    end = d->msg + d->len - strlen(close_delim);
    assert_memory_equal(end, close_delim, strlen(close_delim));
    p = strstr(body, delim);
    assert_non_null(p);
    for (i = 0; i < 3; i++) {
        const char *hend;
        p += strlen(delim);
        hend = strstr(p, "\r\n\r\n");
        assert_non_null(hend);
        d->part_head[i] = unfold(p, (size_t)(hend - p) + 2);
        d->part_body[i] = hend + 4;
        q = i < 2 ? strstr(d->part_body[i], delim) : end;
        assert_non_null(q);
        assert_true(q <= end);
        d->part_len[i] = (size_t)(q - d->part_body[i]);
        if (i < 2)
            check_lines(d->part_body[i], d->part_len[i] + 2);
        p = q;
    }
    /* no further delimiter: exactly three parts */
    assert_null(memmem(d->part_body[2] + d->part_len[2] + 1, strlen(close_delim) - 1, delim,
                       strlen(delim)));
}

static int part_has(const struct dsn *d, int i, const char *needle)
{
    return memmem(d->part_body[i], d->part_len[i], needle, strlen(needle)) != NULL;
}

static int bounce_basic(struct fx *f, const struct spool_env *orig, const struct bounce_rcpt *r,
                        size_t n, char qid[SPOOL_QID_LEN + 1])
{
    return bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX),
                         sizeof(content_basic) - 1, r, n, qid);
}

static void test_failed_full(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL,
                            BOUNCE_FAILED,     "5.1.1",
                            "mx.example.net",  "smtp; 550 5.1.1 <bob@example.net>: user unknown",
                            1764000100};
    char qid[SPOOL_QID_LEN + 1], v[1024];
    struct dsn d;

    put_content(f, content_basic, sizeof(content_basic) - 1);
    orig->envid = strdup("env+2Bid-42");
    assert_int_equal(spool_env_add_rcpt(orig, "bob@example.net", NULL, 0), 0);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    assert_true(spool_qid_valid(qid));
    read_dsn(f, qid, &d);

    /* envelope: null sender -> original sender, NOTIFY=NEVER */
    assert_string_equal(d.env->sender, "");
    assert_int_equal(d.env->nrcpt, 1);
    assert_string_equal(d.env->rcpt[0].addr, "alice@example.org");
    assert_int_equal(d.env->rcpt[0].notify, SMTP_NOTIFY_NEVER);
    assert_string_equal(d.env->proto, "DSN");

    /* top-level fields */
    assert_true(strncmp(d.msg, "Received: by " HOST " (Postern) id ",
                        strlen("Received: by " HOST " (Postern) id ")) == 0);
    assert_non_null(strstr(header_value(d.top, "From", v, sizeof(v)), "MAILER-DAEMON@" HOST));
    assert_string_equal(header_value(d.top, "To", v, sizeof(v)), "<alice@example.org>");
    assert_string_equal(header_value(d.top, "Subject", v, sizeof(v)),
                        "Undelivered Mail Returned to Sender");
    assert_true(strlen(header_value(d.top, "Date", v, sizeof(v))) > 20);
    assert_non_null(strstr(v, "+0000"));
    assert_non_null(strstr(header_value(d.top, "Message-ID", v, sizeof(v)), qid));
    assert_string_equal(header_value(d.top, "Auto-Submitted", v, sizeof(v)), "auto-replied");
    assert_string_equal(header_value(d.top, "MIME-Version", v, sizeof(v)), "1.0");

    /* part 1 */
    assert_non_null(
        strstr(header_value(d.part_head[0], "Content-Type", v, sizeof(v)), "text/plain"));
    assert_true(part_has(&d, 0, "<bob@example.net>: failed, status 5.1.1"));
    assert_true(part_has(&d, 0, "user unknown"));

    /* part 2 */
    assert_string_equal(header_value(d.part_head[1], "Content-Type", v, sizeof(v)),
                        "message/delivery-status");
    assert_true(part_has(&d, 1, "Reporting-MTA: dns; " HOST "\r\n"));
    assert_true(part_has(&d, 1, "Original-Envelope-Id: env+id-42\r\n"));
    assert_true(part_has(&d, 1, "Arrival-Date: "));
    assert_true(part_has(&d, 1, "X-Postern-Queue-ID: 0192F3A4B5C6D7E8\r\n"));
    assert_true(part_has(&d, 1, "\r\n\r\nFinal-Recipient: rfc822; bob@example.net\r\n"));
    assert_true(part_has(&d, 1, "Action: failed\r\n"));
    assert_true(part_has(&d, 1, "Status: 5.1.1\r\n"));
    assert_true(part_has(&d, 1, "Remote-MTA: dns; mx.example.net\r\n"));
    assert_true(
        part_has(&d, 1,
                 "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user\r\n"
                 " unknown\r\n") ||
        part_has(&d, 1, "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: user unknown"));
    assert_true(part_has(&d, 1, "Last-Attempt-Date: "));
    assert_false(part_has(&d, 1, "Original-Recipient"));

    /* part 3: the original, byte for byte; boundary not inside */
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "message/rfc822");
    assert_int_equal(d.part_len[2], sizeof(content_basic) - 1);
    assert_memory_equal(d.part_body[2], content_basic, sizeof(content_basic) - 1);
    assert_null(strstr(content_basic, d.boundary));
    assert_false(part_has(&d, 0, d.boundary));
    assert_false(part_has(&d, 1, d.boundary));
    assert_null(strstr(d.top, "8bit"));
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_ret_hdrs(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.2.2", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], v[512];
    struct dsn d;

    put_content(f, content_basic, sizeof(content_basic) - 1);
    orig->ret = 2;
    assert_int_equal(spool_env_add_rcpt(orig, "bob@example.net", NULL, SMTP_NOTIFY_FAILURE), 0);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "text/rfc822-headers");
    assert_int_equal(d.part_len[2], sizeof(headers_basic) - 1);
    assert_memory_equal(d.part_body[2], headers_basic, sizeof(headers_basic) - 1);
    assert_false(part_has(&d, 1, "Remote-MTA"));
    assert_false(part_has(&d, 1, "Diagnostic-Code"));
    assert_false(part_has(&d, 1, "Last-Attempt-Date"));
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_notify_never(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], inc[400];

    put_content(f, content_basic, sizeof(content_basic) - 1);
    assert_int_equal(spool_env_add_rcpt(orig, "bob@example.net", NULL, SMTP_NOTIFY_NEVER), 0);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    r.action = BOUNCE_DELAYED;
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    r.action = BOUNCE_DELIVERED;
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    assert_int_equal(bounce_basic(f, orig, &r, 0, qid), PST_ENOENT);
    snprintf(inc, sizeof(inc), "%s/incoming", f->spool);
    assert_int_equal(count_files(inc), 0);
    spool_env_free(&orig);
}

static void test_notify_success_only(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], v[512];
    struct dsn d;

    put_content(f, content_basic, sizeof(content_basic) - 1);
    orig->ret = 1; /* FULL: still headers only for a success DSN */
    assert_int_equal(spool_env_add_rcpt(orig, "Bob@Example.NET", NULL, SMTP_NOTIFY_SUCCESS), 0);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    r.action = BOUNCE_DELAYED;
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    r.action = BOUNCE_DELIVERED;
    r.status = "2.0.0";
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_equal(header_value(d.top, "Subject", v, sizeof(v)),
                        "Successful Mail Delivery Report");
    assert_true(part_has(&d, 1, "Action: delivered\r\n"));
    assert_true(part_has(&d, 1, "Status: 2.0.0\r\n"));
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "text/rfc822-headers");
    assert_memory_equal(d.part_body[2], headers_basic, sizeof(headers_basic) - 1);
    dsn_free(&d);

    r.action = BOUNCE_RELAYED;
    r.status = NULL;
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_true(part_has(&d, 1, "Action: relayed\r\nStatus: 2.0.0\r\n"));
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_default_notify_and_success(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_DELIVERED, "2.0.0", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1];

    put_content(f, content_basic, sizeof(content_basic) - 1);
    /* NOTIFY not given: FAILURE,DELAY - no success DSN */
    assert_int_equal(spool_env_add_rcpt(orig, "bob@example.net", NULL, 0), 0);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    /* a recipient not in the envelope also gets the default */
    r.addr = "stranger@example.net";
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    r.action = BOUNCE_FAILED;
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    spool_env_free(&orig);
}

static void test_null_sender(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1] = "x";

    put_content(f, content_basic, sizeof(content_basic) - 1);
    assert_int_equal(spool_env_add_rcpt(orig, "bob@example.net", NULL, SMTP_NOTIFY_FAILURE), 0);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    assert_string_equal(qid, "");
    free(orig->sender);
    orig->sender = NULL;
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), PST_ENOENT);
    spool_env_free(&orig);
}

static void test_orcpt(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r[2] = {
        {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0},
        {"carol@example.net", "rfc822;Carol+2Bx@old.example", BOUNCE_FAILED, "5.1.1", NULL, NULL,
         0},
    };
    char qid[SPOOL_QID_LEN + 1];
    struct dsn d;

    put_content(f, content_basic, sizeof(content_basic) - 1);
    assert_int_equal(spool_env_add_rcpt(orig, "bob@example.net", "rfc822;bob+2Btag@example.net", 0),
                     0);
    assert_int_equal(spool_env_add_rcpt(orig, "carol@example.net", "rfc822;ignored@example", 0), 0);
    assert_int_equal(bounce_basic(f, orig, r, 2, qid), 0);
    read_dsn(f, qid, &d);
    assert_true(part_has(&d, 1,
                         "\r\n\r\nOriginal-Recipient: rfc822;bob+tag@example.net\r\n"
                         "Final-Recipient: rfc822; bob@example.net\r\n"));
    assert_true(part_has(&d, 1,
                         "\r\n\r\nOriginal-Recipient: rfc822;Carol+x@old.example\r\n"
                         "Final-Recipient: rfc822; carol@example.net\r\n"));
    assert_false(part_has(&d, 1, "ignored@example"));
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_delayed_and_mixed(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r[3] = {
        {"a@example.net", NULL, BOUNCE_DELAYED, "4.4.1", "mx.example.net", "smtp; 421 try later",
         1764000100},
        {"b@example.net", NULL, BOUNCE_DELAYED, "4.4.1", NULL, NULL, 0},
        {"c@example.net", NULL, BOUNCE_DELAYED, "bogus", NULL, "connection refused", 0},
    };
    char qid[SPOOL_QID_LEN + 1], v[512];
    struct dsn d;

    put_content(f, content_basic, sizeof(content_basic) - 1);
    orig->ret = 1; /* FULL: a delay DSN still carries headers only */
    assert_int_equal(spool_env_add_rcpt(orig, "a@example.net", NULL, 0), 0);
    assert_int_equal(spool_env_add_rcpt(orig, "b@example.net", NULL, SMTP_NOTIFY_FAILURE), 0);
    assert_int_equal(
        spool_env_add_rcpt(orig, "c@example.net", NULL, SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE),
        0);
    assert_int_equal(bounce_basic(f, orig, r, 3, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_equal(header_value(d.top, "Subject", v, sizeof(v)),
                        "Delayed Mail (still being retried)");
    assert_true(part_has(&d, 1,
                         "Final-Recipient: rfc822; a@example.net\r\nAction: delayed\r\n"
                         "Status: 4.4.1\r\n"));
    assert_false(part_has(&d, 1, "b@example.net"));
    assert_false(part_has(&d, 0, "b@example.net"));
    assert_true(part_has(&d, 1,
                         "Final-Recipient: rfc822; c@example.net\r\nAction: delayed\r\n"
                         "Status: 4.0.0\r\n"));
    assert_true(part_has(&d, 1, "Diagnostic-Code: X-Postern; connection refused\r\n"));
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "text/rfc822-headers");
    assert_memory_equal(d.part_body[2], headers_basic, sizeof(headers_basic) - 1);
    dsn_free(&d);

    /* one failure among delays makes it a failure DSN with the full message */
    r[1].action = BOUNCE_FAILED;
    r[1].status = "5.7.1";
    assert_int_equal(bounce_basic(f, orig, r, 3, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_equal(header_value(d.top, "Subject", v, sizeof(v)),
                        "Undelivered Mail Returned to Sender");
    assert_true(part_has(&d, 1, "Action: failed\r\nStatus: 5.7.1\r\n"));
    assert_true(part_has(&d, 1, "Action: delayed\r\n"));
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "message/rfc822");
    assert_memory_equal(d.part_body[2], content_basic, sizeof(content_basic) - 1);
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_hostile_diagnostic(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    char *longdiag = malloc(6000);
    struct bounce_rcpt r[2] = {
        {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1\r\nX-Evil: 1",
         "evil\r\nX-Injected: yes\x80\xff", "smtp; 550 bad\r\nX-Injected: yes\r\n\r\n--x", 0},
        {"carol@example.net", NULL, BOUNCE_FAILED, NULL, NULL, NULL, 0},
    };
    char qid[SPOOL_QID_LEN + 1];
    struct dsn d;

    assert_non_null(longdiag);
    memcpy(longdiag, "smtp; ", 6);
    memset(longdiag + 6, 'A', 5993);
    longdiag[5999] = '\0';
    r[1].diagnostic = longdiag;
    put_content(f, content_basic, sizeof(content_basic) - 1);
    assert_int_equal(bounce_basic(f, orig, r, 2, qid), 0);
    read_dsn(f, qid, &d); /* checks CRLF and < 998 on every generated line */
    assert_null(memmem(d.msg, d.len, "\r\nX-Injected", 12));
    assert_null(memmem(d.msg, d.len, "\r\nX-Evil", 8));
    assert_true(part_has(&d, 1, "Status: 5.0.0\r\n"));
    assert_true(part_has(&d, 1, "Remote-MTA: dns; evil X-Injected: yes??\r\n"));
    assert_true(part_has(&d, 1, "Diagnostic-Code: smtp; 550 bad X-Injected: yes --x\r\n"));
    assert_true(part_has(&d, 1, "Diagnostic-Code: smtp;\r\n AAAA"));
    assert_null(strstr(d.top, "8bit"));
    dsn_free(&d);
    free(longdiag);
    spool_env_free(&orig);
}

static void test_8bit_content(void **state)
{
    struct fx *f = *state;
    static const char c8[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve body\r\n";
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], v[512];
    struct dsn d;

    put_content(f, c8, sizeof(c8) - 1);
    orig->body = 2;
    assert_int_equal(bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX),
                                   sizeof(c8) - 1, &r, 1, qid),
                     0);
    read_dsn(f, qid, &d);
    assert_int_equal(d.env->body, 2);
    assert_string_equal(header_value(d.top, "Content-Transfer-Encoding", v, sizeof(v)), "8bit");
    assert_string_equal(header_value(d.part_head[2], "Content-Transfer-Encoding", v, sizeof(v)),
                        "8bit");
    assert_memory_equal(d.part_body[2], c8, sizeof(c8) - 1);
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_large_falls_back_to_headers(void **state)
{
    struct fx *f = *state;
    size_t hl = strlen("Subject: big\r\n\r\n"), len = BOUNCE_FULL_MAX + 1;
    char *big = malloc(len);
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.3.4", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], v[512];
    struct dsn d;
    size_t i;

    assert_non_null(big);
    memcpy(big, "Subject: big\r\n\r\n", hl);
    for (i = hl; i < len; i++)
        big[i] = (i % 80 == 79) ? '\n' : 'x';
    put_content(f, big, len);
    assert_int_equal(
        bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX), len, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "text/rfc822-headers");
    assert_int_equal(d.part_len[2], hl - 2);
    assert_memory_equal(d.part_body[2], "Subject: big\r\n", hl - 2);
    dsn_free(&d);

    /* exactly the limit is still returned in full */
    assert_int_equal(
        bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX), len - 1, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_equal(header_value(d.part_head[2], "Content-Type", v, sizeof(v)),
                        "message/rfc822");
    assert_int_equal(d.part_len[2], len - 1);
    assert_memory_equal(d.part_body[2], big, len - 1);
    dsn_free(&d);
    free(big);
    spool_env_free(&orig);
}

static void test_headers_edge_cases(void **state)
{
    struct fx *f = *state;
    static const char nobody[] = "Subject: only headers\r\nX-A: b\r\n";
    static const char nohdr[] = "\r\nbody without headers\r\n";
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1];
    struct dsn d;

    orig->ret = 2;
    put_content(f, nobody, sizeof(nobody) - 1);
    assert_int_equal(bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX),
                                   sizeof(nobody) - 1, &r, 1, qid),
                     0);
    read_dsn(f, qid, &d);
    assert_int_equal(d.part_len[2], sizeof(nobody) - 1);
    assert_memory_equal(d.part_body[2], nobody, sizeof(nobody) - 1);
    dsn_free(&d);

    put_content(f, nohdr, sizeof(nohdr) - 1);
    assert_int_equal(bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX),
                                   sizeof(nohdr) - 1, &r, 1, qid),
                     0);
    read_dsn(f, qid, &d);
    assert_int_equal(d.part_len[2], 0);
    dsn_free(&d);

    /* empty content */
    assert_int_equal(bounce_notify(f->spool, HOST, orig, -1, 0, 0, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_int_equal(d.part_len[2], 0);
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_truncated_content(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], sub[400];

    put_content(f, content_basic, sizeof(content_basic) - 1);
    assert_int_equal(bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX),
                                   sizeof(content_basic) + 100, &r, 1, qid),
                     PST_EIO);
    orig->ret = 2;
    /* headers are within the file, so a headers-only DSN still works... */
    assert_int_equal(bounce_notify(f->spool, HOST, orig, f->fd, (off_t)strlen(PREFIX),
                                   sizeof(content_basic) - 1, &r, 1, qid),
                     0);
    /* ...but not when even the header block is cut short */
    assert_int_equal(bounce_notify(f->spool, HOST, orig, f->fd, 100000, 10, &r, 1, qid), PST_EIO);
    snprintf(sub, sizeof(sub), "%s/incoming", f->spool);
    assert_int_equal(count_files(sub), 1);
    snprintf(sub, sizeof(sub), "%s/tmp", f->spool);
    assert_int_equal(count_files(sub), 0);
    spool_env_free(&orig);
}

static void test_bad_args(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1];

    assert_int_equal(bounce_notify(NULL, HOST, orig, -1, 0, 0, &r, 1, qid), PST_EINVAL);
    assert_int_equal(bounce_notify(f->spool, "", orig, -1, 0, 0, &r, 1, qid), PST_EINVAL);
    assert_int_equal(bounce_notify(f->spool, HOST, NULL, -1, 0, 0, &r, 1, qid), PST_EINVAL);
    assert_int_equal(bounce_notify(f->spool, HOST, orig, -1, 0, 0, NULL, 1, qid), PST_EINVAL);
    assert_int_equal(bounce_notify(f->spool, HOST, orig, -1, 0, 5, &r, 1, qid), PST_EINVAL);
    r.addr = NULL;
    assert_int_equal(bounce_notify(f->spool, HOST, orig, -1, 0, 0, &r, 1, qid), PST_EINVAL);
    r.addr = "bob@example.net";
    r.action = (enum bounce_action)42;
    assert_int_equal(bounce_notify(f->spool, HOST, orig, -1, 0, 0, &r, 1, qid), PST_EINVAL);
    r.action = BOUNCE_FAILED;
    assert_int_equal(bounce_notify("/nonexistent/spool", HOST, orig, -1, 0, 0, &r, 1, qid),
                     PST_EIO);
    spool_env_free(&orig);
}

static void test_unique_boundaries(void **state)
{
    struct fx *f = *state;
    struct spool_env *orig = mk_orig("alice@example.org");
    struct bounce_rcpt r = {"bob@example.net", NULL, BOUNCE_FAILED, "5.1.1", NULL, NULL, 0};
    char qid[SPOOL_QID_LEN + 1], first[128];
    struct dsn d;

    put_content(f, content_basic, sizeof(content_basic) - 1);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    snprintf(first, sizeof(first), "%s", d.boundary);
    dsn_free(&d);
    assert_int_equal(bounce_basic(f, orig, &r, 1, qid), 0);
    read_dsn(f, qid, &d);
    assert_string_not_equal(first, d.boundary);
    dsn_free(&d);
    spool_env_free(&orig);
}

static void test_action_names(void **state)
{
    assert_string_equal(bounce_action_name(BOUNCE_FAILED), "failed");
    assert_string_equal(bounce_action_name(BOUNCE_DELAYED), "delayed");
    assert_string_equal(bounce_action_name(BOUNCE_DELIVERED), "delivered");
    assert_string_equal(bounce_action_name(BOUNCE_RELAYED), "relayed");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_failed_full),
        T(test_ret_hdrs),
        T(test_notify_never),
        T(test_notify_success_only),
        T(test_default_notify_and_success),
        T(test_null_sender),
        T(test_orcpt),
        T(test_delayed_and_mixed),
        T(test_hostile_diagnostic),
        T(test_8bit_content),
        T(test_large_falls_back_to_headers),
        T(test_headers_edge_cases),
        T(test_truncated_content),
        T(test_bad_args),
        T(test_unique_boundaries),
        cmocka_unit_test(test_action_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
