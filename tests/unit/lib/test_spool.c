/*
 * test_spool.c - spool writer, group committer and strict reader.
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
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "testutil.h"
#include "lib/spool.h"
#include "smtp/smtp_parser.h"

struct fx {
    char dir[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");

    snprintf(f->dir, sizeof(f->dir), "%s/spooltest.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    strncat(f->dir, "/spool", sizeof(f->dir) - strlen(f->dir) - 1);
    if (spool_init(f->dir) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char *slash = strrchr(f->dir, '/');

    *slash = '\0';
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static int count_dir(const char *spool, const char *sub)
{
    char path[1024];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", spool, sub);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int exists(const char *spool, const char *sub, const char *name)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s/%s", spool, sub, name);
    return access(path, F_OK) == 0;
}

static struct spool_env *make_env(void)
{
    struct spool_env *env = spool_env_new();

    assert_non_null(env);
    env->sender = strdup("alice@example.org");
    assert_int_equal(spool_env_add_rcpt(env, "bob@example.net", NULL, 0), 0);
    return env;
}

static void write_raw(const char *spool, const char *qid, const void *data, size_t len)
{
    char path[1024];
    int fd;

    snprintf(path, sizeof(path), "%s/incoming/%s", spool, qid);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void test_qid_valid(void **state)
{
    assert_true(spool_qid_valid("0192F3A4B5C6D7E8"));
    assert_true(spool_qid_valid("0000000000000000"));
    assert_false(spool_qid_valid("0192f3a4b5c6d7e8"));
    assert_false(spool_qid_valid("0192F3A4B5C6D7E"));
    assert_false(spool_qid_valid("0192F3A4B5C6D7E89"));
    assert_false(spool_qid_valid("0192F3A4B5C6D7G8"));
    assert_false(spool_qid_valid("../../etc/passwd"));
    assert_false(spool_qid_valid(""));
    assert_false(spool_qid_valid(NULL));
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    struct spool_env *env = spool_env_new(), *got = NULL;
    struct spool_writer *w = NULL;
    unsigned char content[200000];
    size_t i;
    char qid[SPOOL_QID_LEN + 1];
    uint64_t clen = 0;
    int fd = -1;

    for (i = 0; i < sizeof(content); i++)
        content[i] = (unsigned char)(i * 7 + (i >> 9));
    content[5] = '\0';
    env->sender = strdup("");
    env->client = strdup("192.0.2.7");
    env->helo = strdup("weird helo %41\r\n\x01\x7f caf\xc3\xa9");
    env->proto = strdup("ESMTPSA");
    env->auth = strdup("alice");
    env->body = 2;
    env->smtputf8 = 1;
    env->ret = 2;
    env->envid = strdup("abc+2Bdef");
    assert_int_equal(spool_env_add_rcpt(env, "bob@example.net", "rfc822;bob@example.net",
                                        SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE),
                     0);
    assert_int_equal(spool_env_add_rcpt(env, "\"a b%c\"@example.net", NULL, 0), 0);
    assert_int_equal(spool_env_add_rcpt(env, "carol@example.com", NULL, SMTP_NOTIFY_NEVER), 0);
    assert_int_equal(
        spool_env_add_rcpt(env, "dave@example.com", "utf-8;d\xc3\xa4ve", SMTP_NOTIFY_DELAY), 0);

    assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
    assert_true(spool_qid_valid(spool_writer_qid(w)));
    assert_string_equal(env->qid, spool_writer_qid(w));
    assert_true(env->time > 1600000000);
    memcpy(qid, env->qid, sizeof(qid));
    assert_int_equal(spool_writer_write(w, content, 10), 0);
    assert_int_equal(spool_writer_write(w, content + 10, 100000), 0);
    assert_int_equal(spool_writer_write(w, content + 100010, sizeof(content) - 100010), 0);
    assert_int_equal(spool_writer_commit_sync(&w), 0);
    assert_null(w);

    assert_int_equal(spool_open(f->dir, qid, &got, &fd, &clen), 0);
    assert_string_equal(got->qid, qid);
    assert_int_equal(got->time, env->time);
    assert_string_equal(got->sender, "");
    assert_string_equal(got->client, env->client);
    assert_string_equal(got->helo, env->helo);
    assert_string_equal(got->proto, "ESMTPSA");
    assert_string_equal(got->auth, "alice");
    assert_int_equal(got->body, 2);
    assert_int_equal(got->smtputf8, 1);
    assert_int_equal(got->ret, 2);
    assert_string_equal(got->envid, "abc+2Bdef");
    assert_int_equal(got->nrcpt, 4);
    for (i = 0; i < 4; i++) {
        assert_string_equal(got->rcpt[i].addr, env->rcpt[i].addr);
        assert_int_equal(got->rcpt[i].notify, env->rcpt[i].notify);
        if (env->rcpt[i].orcpt)
            assert_string_equal(got->rcpt[i].orcpt, env->rcpt[i].orcpt);
        else
            assert_null(got->rcpt[i].orcpt);
    }
    assert_int_equal(clen, sizeof(content));
    unsigned char *back = malloc(sizeof(content) + 1);
    size_t off = 0;
    ssize_t n;
    while ((n = read(fd, back + off, sizeof(content) + 1 - off)) > 0)
        off += (size_t)n;
    assert_int_equal(off, sizeof(content));
    assert_memory_equal(back, content, sizeof(content));
    free(back);
    close(fd);
    spool_env_free(&got);
    assert_null(got);

    /* the raw file shows the escapes */
    char path[1024], raw[4096];
    snprintf(path, sizeof(path), "%s/incoming/%s", f->dir, qid);
    fd = open(path, O_RDONLY);
    n = read(fd, raw, sizeof(raw) - 1);
    close(fd);
    raw[n] = '\0';
    assert_non_null(strstr(raw, "postern-spool 1\nqid "));
    assert_non_null(strstr(raw, "\nfrom \n"));
    assert_non_null(strstr(raw, "\nhelo weird%20helo%20%2541%0D%0A%01%7F%20caf\xc3\xa9\n"));
    assert_non_null(strstr(raw, "\nrcpt \"a%20b%25c\"@example.net\n"));
    assert_non_null(strstr(raw, "\nnotify SUCCESS,FAILURE\n"));
    spool_env_free(&env);
}

static void test_abort_removes_tmp(void **state)
{
    struct fx *f = *state;
    struct spool_env *env = make_env();
    struct spool_writer *w = NULL;

    assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
    assert_int_equal(spool_writer_write(w, "hello\r\n", 7), 0);
    assert_int_equal(count_dir(f->dir, "tmp"), 1);
    spool_writer_abort(&w);
    assert_null(w);
    assert_int_equal(count_dir(f->dir, "tmp"), 0);
    assert_int_equal(count_dir(f->dir, "incoming"), 0);
    spool_writer_abort(&w); /* NULL is fine */
    spool_env_free(&env);
}

static void test_commit_visibility(void **state)
{
    struct fx *f = *state;
    struct spool_env *env = make_env();
    struct spool_writer *w = NULL;
    char qid[SPOOL_QID_LEN + 1];

    assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
    memcpy(qid, spool_writer_qid(w), sizeof(qid));
    assert_int_equal(spool_writer_write(w, "x\r\n", 3), 0);
    assert_true(exists(f->dir, "tmp", qid));
    assert_false(exists(f->dir, "incoming", qid));
    assert_int_equal(spool_writer_commit_sync(&w), 0);
    assert_false(exists(f->dir, "tmp", qid));
    assert_true(exists(f->dir, "incoming", qid));

    struct stat st;
    char path[1024];
    snprintf(path, sizeof(path), "%s/incoming/%s", f->dir, qid);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a file with no recipients is refused at open */
    struct spool_env *empty = spool_env_new();
    empty->sender = strdup("a@b");
    assert_int_equal(spool_writer_open(f->dir, empty, &w), PST_EINVAL);
    assert_null(w);
    assert_int_equal(count_dir(f->dir, "tmp"), 0);
    spool_env_free(&empty);
    spool_env_free(&env);
}

struct cb_state {
    int calls;
    int errors;
    int detached_called;
};

static void commit_cb(void *arg, int err, const char *qid)
{
    struct cb_state *s = arg;

    s->calls++;
    if (err != 0 || !spool_qid_valid(qid))
        s->errors++;
}

static void detached_cb(void *arg, int err, const char *qid)
{
    struct cb_state *s = arg;

    s->detached_called++;
}

static void test_committer_batch(void **state)
{
    struct fx *f = *state;
    struct event_base *base = event_base_new();
    struct spool_committer *c = spool_committer_new(base, f->dir);
    struct spool_env *env = make_env();
    struct spool_commit_ticket *tickets[50];
    struct cb_state s = {0};
    int i, spins = 0;

    assert_non_null(c);
    for (i = 0; i < 50; i++) {
        struct spool_writer *w = NULL;
        char line[64];
        assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
        snprintf(line, sizeof(line), "Subject: %d\r\n\r\nbody\r\n", i);
        assert_int_equal(spool_writer_write(w, line, strlen(line)), 0);
        tickets[i] = spool_commit(c, &w, i == 7 ? detached_cb : commit_cb, &s);
        assert_non_null(tickets[i]);
        assert_null(w);
    }
    spool_commit_detach(tickets[7]);
    while (s.calls < 49 && spins++ < 100000)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(s.calls, 49);
    assert_int_equal(s.errors, 0);
    spool_committer_free(&c);
    assert_null(c);
    assert_int_equal(s.detached_called, 0);
    assert_int_equal(count_dir(f->dir, "incoming"), 50);
    assert_int_equal(count_dir(f->dir, "tmp"), 0);
    spool_env_free(&env);
    event_base_free(base);
}

static void test_committer_free_drains(void **state)
{
    struct fx *f = *state;
    struct event_base *base = event_base_new();
    struct spool_committer *c = spool_committer_new(base, f->dir);
    struct spool_env *env = make_env();
    struct cb_state s = {0};
    int i;

    for (i = 0; i < 5; i++) {
        struct spool_writer *w = NULL;
        assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
        assert_non_null(spool_commit(c, &w, commit_cb, &s));
    }
    spool_committer_free(&c);
    assert_int_equal(s.calls, 5);
    assert_int_equal(s.errors, 0);
    assert_int_equal(count_dir(f->dir, "incoming"), 5);
    spool_env_free(&env);
    event_base_free(base);
}

static int scan_collect(void *arg, const char *qid)
{
    int *n = arg;

    (*n)++;
    return 0;
}

static void test_scan_remove_quarantine(void **state)
{
    struct fx *f = *state;
    struct spool_env *env = make_env();
    struct spool_writer *w = NULL;
    char qid[SPOOL_QID_LEN + 1];
    int n = 0;

    assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
    memcpy(qid, spool_writer_qid(w), sizeof(qid));
    assert_int_equal(spool_writer_commit_sync(&w), 0);
    write_raw(f->dir, "junk.name", "x", 1);
    assert_int_equal(spool_scan(f->dir, scan_collect, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(spool_quarantine(f->dir, qid), 0);
    assert_true(exists(f->dir, "corrupt", qid));
    assert_false(exists(f->dir, "incoming", qid));
    assert_int_equal(spool_quarantine(f->dir, qid), PST_ENOENT);
    assert_int_equal(spool_remove(f->dir, qid), 0); /* ENOENT is success */
    assert_int_equal(spool_remove(f->dir, "../x"), PST_EINVAL);
    assert_int_equal(spool_sync_dir(f->dir), 0);

    struct spool_env *got = NULL;
    int fd = -1;
    uint64_t clen;
    assert_int_equal(spool_open(f->dir, qid, &got, &fd, &clen), PST_ENOENT);
    assert_int_equal(spool_open(f->dir, "junk.name", &got, &fd, &clen), PST_EINVAL);
    assert_null(got);
    assert_int_equal(fd, -1);
    spool_env_free(&env);
}

#define TQID "0192F3A4B5C6D7E8"

static void expect_malformed(const char *spool, const char *body)
{
    const char *qid = TQID;
    struct spool_env *env = NULL;
    int fd = -1;
    uint64_t clen;

    write_raw(spool, qid, body, strlen(body));
    assert_int_equal(spool_open(spool, qid, &env, &fd, &clen), PST_EINVAL);
    assert_null(env);
    assert_int_equal(fd, -1);
}

#define GOOD_HEAD "postern-spool 1\nqid " TQID "\ntime 1764000000\nfrom a@b\n"

static void test_malformed(void **state)
{
    struct fx *f = *state;
    const char *qid = "0192F3A4B5C6D7E8";
    struct spool_env *env = NULL;
    int fd = -1;
    uint64_t clen;
    char text[256];

    /* sanity: the good form parses */
    int n = snprintf(text, sizeof(text), "%s", GOOD_HEAD "rcpt c@d\ndata\nhi\r\n");
    write_raw(f->dir, qid, text, (size_t)n);
    assert_int_equal(spool_open(f->dir, qid, &env, &fd, &clen), 0);
    assert_int_equal(clen, 4);
    close(fd);
    spool_env_free(&env);

    expect_malformed(f->dir, "");
    expect_malformed(f->dir, "postern-spool 1");
    expect_malformed(f->dir, "postern-spool 2\nqid " TQID "\n");
    expect_malformed(f->dir, "postern-spool 1\nqid " TQID "\ntime 17");   /* truncated */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\n");                     /* no data */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\ndat");                  /* no data */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nxyzzy 1\ndata\n");      /* unknown */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nfrom x@y\ndata\n");     /* dup from */
    expect_malformed(f->dir, GOOD_HEAD "data\n");                         /* no rcpt */
    expect_malformed(f->dir, GOOD_HEAD "notify NEVER\nrcpt c@d\ndata\n"); /* order */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nnotify BOGUS\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nnotify SUCCESS,\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nnotify NEVER\nnotify NEVER\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nbody 9BIT\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nret ALL\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nsmtputf8 2\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nhelo a%2\ndata\n"); /* short escape */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nhelo a%zz\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nhelo a%00b\ndata\n"); /* NUL */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nhelo a\tb\ndata\n");  /* raw ctl */
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nhelo x\nhelo y\ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt \ndata\n");
    expect_malformed(f->dir, GOOD_HEAD "rcpt c@d\nnoseparator\ndata\n");
    expect_malformed(f->dir,
                     "postern-spool 1\nqid 0192F3A4B5C6D7E9\ntime 1\nfrom \nrcpt c@d\ndata\n");
    expect_malformed(f->dir, "postern-spool 1\nqid " TQID "\ntime -1\nfrom \nrcpt c@d\ndata\n");
    expect_malformed(f->dir,
                     "postern-spool 1\nqid " TQID "\nfrom \nrcpt c@d\ndata\n"); /* no time */

    /* embedded NUL in a header line */
    static const char nul[] =
        "postern-spool 1\nqid 0192F3A4B5C6D7E8\ntime 1\nfrom a\0b\nrcpt c@d\ndata\n";
    write_raw(f->dir, qid, nul, sizeof(nul) - 1);
    assert_int_equal(spool_open(f->dir, qid, &env, &fd, &clen), PST_EINVAL);

    /* an over-long line */
    size_t big = 100000;
    char *huge = malloc(big);
    n = snprintf(huge, big, "%s", GOOD_HEAD "rcpt c@d\nhelo ");
    memset(huge + n, 'a', big - (size_t)n);
    write_raw(f->dir, qid, huge, big);
    free(huge);
    assert_int_equal(spool_open(f->dir, qid, &env, &fd, &clen), PST_EINVAL);

    /* a directory or symlink where a file should be */
    char path[1024];
    snprintf(path, sizeof(path), "%s/incoming/%s", f->dir, qid);
    unlink(path);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(spool_open(f->dir, qid, &env, &fd, &clen), PST_EINVAL);
    unlink(path);
}

static void test_init_cleans_stale_tmp(void **state)
{
    struct fx *f = *state;
    char oldp[1024], newp[1024];
    struct timeval tv[2];
    int fd;

    snprintf(oldp, sizeof(oldp), "%s/tmp/0000000000000001", f->dir);
    snprintf(newp, sizeof(newp), "%s/tmp/0000000000000002", f->dir);
    fd = open(oldp, O_CREAT | O_WRONLY, 0600);
    close(fd);
    fd = open(newp, O_CREAT | O_WRONLY, 0600);
    close(fd);
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 25 * 3600;
    tv[1] = tv[0];
    assert_int_equal(utimes(oldp, tv), 0);
    assert_int_equal(spool_init(f->dir), 0);
    assert_int_equal(access(oldp, F_OK), -1);
    assert_int_equal(access(newp, F_OK), 0);

    struct stat st;
    char path[1024];
    snprintf(path, sizeof(path), "%s/corrupt", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(spool_init(""), PST_EINVAL);
}

struct scan_times {
    int n;
    int64_t mtime;
};

static int scan_time_cb(void *arg, const char *qid, int64_t mtime)
{
    struct scan_times *t = arg;
    t->n++;
    t->mtime = mtime;
    return 0;
}

static int state_collect(void *arg, const char *record)
{
    char *out = arg;
    strncat(out, record, 255 - strlen(out));
    strncat(out, "|", 255 - strlen(out));
    return 0;
}

static void test_queues_and_state(void **state)
{
    struct fx *f = *state;
    struct spool_env *env = make_env();
    struct spool_writer *w = NULL;
    char qid[SPOOL_QID_LEN + 1];
    enum spool_queue q;

    assert_int_equal(spool_writer_open(f->dir, env, &w), 0);
    memcpy(qid, spool_writer_qid(w), sizeof(qid));
    assert_int_equal(spool_writer_commit_sync(&w), 0);
    assert_int_equal(spool_locate(f->dir, qid, &q), 0);
    assert_int_equal(q, SPOOL_Q_INCOMING);

    /* deferred with a next-attempt time carried in the mtime */
    assert_int_equal(spool_move(f->dir, qid, SPOOL_Q_INCOMING, SPOOL_Q_DEFERRED, 2000000000), 0);
    assert_false(exists(f->dir, "incoming", qid));
    assert_int_equal(spool_locate(f->dir, qid, &q), 0);
    assert_int_equal(q, SPOOL_Q_DEFERRED);
    struct scan_times t = {0, 0};
    assert_int_equal(spool_scan_queue(f->dir, SPOOL_Q_DEFERRED, scan_time_cb, &t), 0);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.mtime, 2000000000);

    /* the envelope reads back from any queue */
    struct spool_env *back = NULL;
    int fd = -1;
    uint64_t len = 0;
    assert_int_equal(spool_open_queue(f->dir, SPOOL_Q_DEFERRED, qid, &back, &fd, &len), 0);
    close(fd);
    spool_env_free(&back);
    assert_int_equal(spool_open(f->dir, qid, &back, &fd, &len), PST_ENOENT);

    assert_int_equal(spool_move(f->dir, qid, SPOOL_Q_DEFERRED, SPOOL_Q_HOLD, 0), 0);
    assert_int_equal(spool_locate(f->dir, qid, &q), 0);
    assert_int_equal(q, SPOOL_Q_HOLD);
    assert_int_equal(spool_move(f->dir, qid, SPOOL_Q_DEFERRED, SPOOL_Q_HOLD, 0), PST_ENOENT);

    /* state records append and read back in order; newlines are refused */
    char got[256] = "";
    assert_int_equal(spool_state_read(f->dir, qid, state_collect, got), 0);
    assert_string_equal(got, "");
    assert_int_equal(spool_state_append(f->dir, qid, "rcpt 0 delivered 2.0.0"), 0);
    assert_int_equal(spool_state_append(f->dir, qid, "deferred 1764000000"), 0);
    assert_int_equal(spool_state_append(f->dir, qid, "bad\nrecord"), PST_ELIMIT);
    assert_int_equal(spool_state_read(f->dir, qid, state_collect, got), 0);
    assert_string_equal(got, "rcpt 0 delivered 2.0.0|deferred 1764000000|");
    assert_int_equal(spool_state_remove(f->dir, qid), 0);
    assert_int_equal(spool_state_remove(f->dir, qid), 0);

    assert_int_equal(spool_remove_queue(f->dir, SPOOL_Q_HOLD, qid), 0);
    assert_int_equal(spool_locate(f->dir, qid, &q), PST_ENOENT);
    assert_int_equal(spool_locate(f->dir, "../../etc/passwd", &q), PST_EINVAL);
    spool_env_free(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qid_valid),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_removes_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_visibility, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committer_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committer_free_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_remove_quarantine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_cleans_stale_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queues_and_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
