/*
 * test_pop3_mbox.c - wire encoding, unique-ids and the Maildir mailbox backend:
 * snapshot, order, sizes and the size cache, locking, streaming, deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "../testutil.h"
#include "pop3/pop3_mbox.h"

/* ---- helpers ---- */

static size_t enc(const char *in, size_t len, long lines, char *out, size_t chunk)
{
    struct pop3_wire w;
    pop3_wire_init(&w, lines);
    size_t o = 0;
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        o += pop3_wire_encode(&w, in + i, n, out + o);
    }
    o += pop3_wire_finish(&w, out + o);
    out[o] = '\0';
    return o;
}

static uint64_t wsize(const char *in, size_t len)
{
    int prev_cr = 0, bol = 1;
    uint64_t n = len ? pop3_wire_size_chunk(in, len, &prev_cr, &bol) : 0;
    return n + (bol ? 0 : prev_cr ? 1 : 2);
}

/* unstuff - count the bytes of wire form without dot-stuffing. */
static size_t unstuffed_len(const char *w, size_t len)
{
    size_t n = len;
    int bol = 1;
    for (size_t i = 0; i < len; i++) {
        if (bol && w[i] == '.')
            n--;
        bol = w[i] == '\n';
    }
    return n;
}

static void check_enc(const char *in, long lines, const char *want)
{
    char out[1024];
    size_t len = strlen(in);
    for (size_t chunk = 1; chunk <= len + 1; chunk++) {
        size_t o = enc(in, len, lines, out, chunk);
        assert_int_equal(o, strlen(want));
        assert_string_equal(out, want);
    }
    if (lines < 0)
        assert_int_equal(wsize(in, len), unstuffed_len(want, strlen(want)));
}

static void test_wire_encode(void **state)
{
    check_enc("", -1, "");
    check_enc("a\nb\n", -1, "a\r\nb\r\n");
    check_enc("a\nb", -1, "a\r\nb\r\n");
    check_enc(".\n..x\n.", -1, "..\r\n...x\r\n..\r\n");
    check_enc("x.\n.y\n", -1, "x.\r\n..y\r\n");
    check_enc("crlf\r\nkept\r\n", -1, "crlf\r\nkept\r\n");
    check_enc("bare\rcr\n", -1, "bare\rcr\r\n");
    check_enc("ends in cr\r", -1, "ends in cr\r\n");
    check_enc("\n\n", -1, "\r\n\r\n");
}

static void test_wire_top(void **state)
{
    const char *msg = "H1: a\nH2: b\n\nl1\n.l2\nl3\n";
    check_enc(msg, 0, "H1: a\r\nH2: b\r\n\r\n");
    check_enc(msg, 1, "H1: a\r\nH2: b\r\n\r\nl1\r\n");
    check_enc(msg, 2, "H1: a\r\nH2: b\r\n\r\nl1\r\n..l2\r\n");
    check_enc(msg, 99, "H1: a\r\nH2: b\r\n\r\nl1\r\n..l2\r\nl3\r\n");
    check_enc("H: x\r\n\r\nbody\r\nmore\r\n", 1, "H: x\r\n\r\nbody\r\n");
    check_enc("no body at all", 3, "no body at all\r\n");
}

static void test_uidl(void **state)
{
    char u[POP3_UIDL_MAX + 1];
    assert_int_equal(pop3_maildir_uidl("1700.Q1R0.host,S=10:2,S", u), 0);
    assert_string_equal(u, "1700.Q1R0.host,S=10");
    assert_int_equal(pop3_maildir_uidl("plain", u), 0);
    assert_string_equal(u, "plain");
    assert_int_equal(pop3_maildir_uidl(":2,S", u), PST_EINVAL);
    assert_int_equal(pop3_maildir_uidl("has space", u), 0);
    assert_int_equal(u[0], 'H');
    assert_int_equal(strlen(u), 41);
    char longname[200];
    memset(longname, 'x', 71);
    longname[71] = '\0';
    assert_int_equal(pop3_maildir_uidl(longname, u), 0);
    assert_int_equal(u[0], 'H');
    longname[70] = '\0';
    assert_int_equal(pop3_maildir_uidl(longname, u), 0);
    assert_string_equal(u, longname);
    assert_int_equal(pop3_maildir_uidl("\xff\xfe", u), 0);
    assert_int_equal(u[0], 'H');
    for (size_t i = 0; u[i]; i++)
        assert_true(u[i] >= 0x21 && u[i] <= 0x7e);
}

/* ---- Maildir fixtures ---- */

struct fx {
    char dir[256];
    char md[300];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/pop3mbox.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->md, sizeof f->md, "%s/alice", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void put(const struct fx *f, const char *sub, const char *name, const char *content)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", f->md, sub);
    mkdir(f->md, 0700);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/%s/%s", f->md, sub, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static int exists(const struct fx *f, const char *sub, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/%s", f->md, sub, name);
    return access(p, F_OK) == 0;
}

/* retr - the whole wire form of message i. */
static char *retr(struct pop3_mbox *mb, size_t i, long lines)
{
    struct pop3_stream *st = NULL;
    if (mb->ops->stream_open(mb, i, lines, NULL, NULL, &st) < 0)
        return NULL;
    struct evbuffer *b = evbuffer_new();
    int rc;
    while ((rc = mb->ops->stream_read(st, b, 7)) == 0)
        ;
    mb->ops->stream_close(&st);
    assert_null(st);
    assert_int_equal(rc, 1);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void test_open_empty_creates(void **state)
{
    struct fx *f = *state;
    struct pop3_mbox *mb = NULL;
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 0);
    assert_true(exists(f, "new", "..") && exists(f, "cur", "..") && exists(f, "tmp", ".."));
    pop3_mbox_close(&mb);
    assert_null(mb);
}

static void test_snapshot_order_sizes(void **state)
{
    struct fx *f = *state;
    put(f, "new", "1700000003.Qc.host,S=6", "three\n");
    put(f, "cur", "1700000001.Qa.host,S=13:2,S", "Subj: 1\n\n.one");
    put(f, "new", "1700000002.Qb.host", "two\r\n");
    put(f, "new", ".hidden", "skip me\n");
    put(f, "cur", "999.old,W=100:2,", "dovecot says W=100\n");
    struct pop3_mbox *mb = NULL;
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 4);
    assert_string_equal(pop3_mbox_info(mb, 0)->uidl, "999.old,W=100");
    assert_int_equal(pop3_mbox_info(mb, 0)->size, 100); /* trusted from the name */
    assert_string_equal(pop3_mbox_info(mb, 1)->uidl, "1700000001.Qa.host,S=13");
    assert_int_equal(pop3_mbox_info(mb, 1)->size, 17);
    assert_string_equal(pop3_mbox_info(mb, 2)->uidl, "1700000002.Qb.host");
    assert_int_equal(pop3_mbox_info(mb, 2)->size, 5);
    assert_int_equal(pop3_mbox_info(mb, 3)->size, 7);
    char *m = retr(mb, 1, -1);
    assert_string_equal(m, "Subj: 1\r\n\r\n..one\r\n");
    free(m);
    m = retr(mb, 1, 0);
    assert_string_equal(m, "Subj: 1\r\n\r\n");
    free(m);
    /* mail arriving during the session does not change the numbering */
    put(f, "new", "1600000000.early", "new arrival\n");
    assert_int_equal(pop3_mbox_count(mb), 4);
    m = retr(mb, 3, -1);
    assert_string_equal(m, "three\r\n");
    free(m);
    pop3_mbox_close(&mb);

    /* the cache now holds the computed sizes; a fresh open gives the same */
    char p[1024];
    snprintf(p, sizeof p, "%s/.pop3.sizes", f->md);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    char line[512];
    assert_non_null(fgets(line, sizeof line, fp));
    assert_string_equal(line, "postern-pop3-sizes 1\n");
    fclose(fp);
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 5);
    assert_string_equal(pop3_mbox_info(mb, 1)->uidl, "1600000000.early");
    assert_int_equal(pop3_mbox_info(mb, 2)->size, 17);
    pop3_mbox_close(&mb);
}

static void test_cache_hostile(void **state)
{
    struct fx *f = *state;
    put(f, "new", "1.a,S=4", "abc\n");
    /* a damaged cache with a wrong size for a different file size, junk lines, huge numbers */
    put(f, "", ".pop3.sizes",
        "postern-pop3-sizes 1\n3 999 1.a,S=4\njunk\n\n99999999999999999999999 1 x\n1 0 y\n");
    struct pop3_mbox *mb = NULL;
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 1);
    assert_int_equal(pop3_mbox_info(mb, 0)->size, 5); /* file size 4 != 3: recomputed */
    pop3_mbox_close(&mb);
}

static void test_lock(void **state)
{
    struct fx *f = *state;
    struct pop3_mbox *a = NULL, *b = NULL;
    assert_int_equal(pop3_maildir_open(f->md, &a), 0);
    assert_int_equal(pop3_maildir_open(f->md, &b), PST_EAGAIN);
    assert_null(b);
    pop3_mbox_close(&a);
    assert_int_equal(pop3_maildir_open(f->md, &b), 0);
    pop3_mbox_close(&b);
}

static int g_done_rc = 99;
static void commit_done(void *arg, int rc, const char *note)
{
    g_done_rc = rc;
}

static void test_commit_and_relocate(void **state)
{
    struct fx *f = *state;
    put(f, "new", "1.a", "a\n");
    put(f, "new", "2.b", "b\n");
    put(f, "new", "3.c", "c\n");
    put(f, "new", "4.d", "d\n");
    struct pop3_mbox *mb = NULL;
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 4);
    /* another reader moves 2.b to cur/ with flags, and deletes 3.c */
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/new/2.b", f->md);
    snprintf(to, sizeof to, "%s/cur/2.b:2,S", f->md);
    assert_int_equal(rename(from, to), 0);
    snprintf(from, sizeof from, "%s/new/3.c", f->md);
    unlink(from);
    char *m = retr(mb, 1, -1); /* found again by its unique name */
    assert_string_equal(m, "b\r\n");
    free(m);
    struct pop3_stream *st = NULL;
    assert_int_equal(mb->ops->stream_open(mb, 2, -1, NULL, NULL, &st), PST_ENOENT);
    unsigned char del[4] = {0, 1, 1, 0};
    g_done_rc = 99;
    assert_int_equal(mb->ops->commit(mb, del, commit_done, NULL), 0);
    assert_int_equal(g_done_rc, 0);
    pop3_mbox_close(&mb);
    assert_false(exists(f, "cur", "2.b:2,S"));
    assert_true(exists(f, "new", "1.a"));
    assert_true(exists(f, "new", "4.d"));
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 2);
    pop3_mbox_close(&mb);
}

static void test_duplicate_uidl_and_big(void **state)
{
    struct fx *f = *state;
    put(f, "new", "5.same", "x\n");
    put(f, "cur", "5.same:2,S", "y\n");
    /* a message bigger than one read chunk */
    size_t big = 300 * 1024;
    char *content = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        content[i] = (i % 100 == 99) ? '\n' : (i % 100 == 0 ? '.' : 'x');
    content[big] = '\0';
    put(f, "new", "6.big", content);
    struct pop3_mbox *mb = NULL;
    assert_int_equal(pop3_maildir_open(f->md, &mb), 0);
    assert_int_equal(pop3_mbox_count(mb), 3);
    assert_string_not_equal(pop3_mbox_info(mb, 0)->uidl, pop3_mbox_info(mb, 1)->uidl);
    assert_int_equal(pop3_mbox_info(mb, 2)->size, big + big / 100);
    char *m = retr(mb, 2, -1);
    assert_int_equal(strlen(m), big + big / 100 + big / 100); /* CRs and stuffed dots */
    assert_int_equal(unstuffed_len(m, strlen(m)), pop3_mbox_info(mb, 2)->size);
    free(m);
    free(content);
    pop3_mbox_close(&mb);
}

struct open_result {
    struct pop3_mbox *mb;
    int rc;
};

static void open_done(void *arg, int rc, struct pop3_mbox *mb)
{
    struct open_result *r = arg;
    r->mb = mb;
    r->rc = rc;
}

static void test_backend(void **state)
{
    struct fx *f = *state;
    struct pop3_backend be;
    assert_int_equal(pop3_maildir_backend_init(&be, f->dir), 0);
    struct pop3_open_req *req = (struct pop3_open_req *)&be;
    struct open_result r = {NULL, 99};
    assert_int_equal(be.ops->open(be.ctx, "../etc", open_done, &r, &req), PST_EINVAL);
    assert_int_equal(r.rc, 99);
    assert_int_equal(be.ops->open(be.ctx, "bob", open_done, &r, &req), 0);
    assert_null(req); /* the Maildir backend completes at once */
    assert_int_equal(r.rc, 0);
    assert_non_null(r.mb);
    assert_int_equal(pop3_mbox_count(r.mb), 0);
    pop3_mbox_close(&r.mb);
    be.ops->free(be.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_encode),
        cmocka_unit_test(test_wire_top),
        cmocka_unit_test(test_uidl),
        cmocka_unit_test_setup_teardown(test_open_empty_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_order_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_and_relocate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_uidl_and_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
