/*
 * test_bm_api.c - bm_api (addresses, owners, queueing, status) and
 * bm_deliver (received messages into Maildirs) on a temporary database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmessage/bm_api.h"
#include "bitmessage/bm_deliver.h"
#include "bitmessage/bm_object.h"
#include "testutil.h"

#define T0 1700000000
/* PyBitmessage's deterministic v4 address for the passphrase "test" (tests/data/bitmessage). */
#define ADDR_TEST "BM-2cWFkyuXXFw6d393RGnin2RpSXj8wxtt6F"

struct fx {
    char dir[512];
    char db[600];
    char mail[600];
    struct bm_store *st;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/bmapi.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/state.db", f->dir);
    snprintf(f->mail, sizeof(f->mail), "%s/mail", f->dir);
    if (bm_store_open(f->db, &f->st) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    bm_store_close(&f->st);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void test_address_new(void **state)
{
    struct fx *f = *state;
    char a[BM_STORE_ADDR_MAX + 1], b[BM_STORE_ADDR_MAX + 1], owner[BM_API_OWNER_MAX + 1];

    assert_int_equal(bm_api_address_new(f->st, "test", "lbl", "alice", T0, a, sizeof(a)), 0);
    assert_string_equal(a, ADDR_TEST);
    /* the same passphrase again is the same address */
    assert_int_equal(bm_api_address_new(f->st, "test", "", "", T0, b, sizeof(b)), PST_EEXIST);
    assert_int_equal(bm_api_address_new(f->st, NULL, "", "", T0, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_memory_equal(b, "BM-", 3);

    assert_int_equal(bm_api_owner(f->st, a, owner, sizeof(owner)), 0);
    assert_string_equal(owner, "alice");
    assert_int_equal(bm_api_owner(f->st, b, owner, sizeof(owner)), 0);
    assert_string_equal(owner, "");
    assert_int_equal(bm_api_set_owner(f->st, b, "bob"), 0);
    assert_int_equal(bm_api_owner(f->st, b, owner, sizeof(owner)), 0);
    assert_string_equal(owner, "bob");
    assert_int_equal(bm_api_set_owner(f->st, "BM-nope", "bob"), PST_ENOENT);
    assert_int_equal(bm_api_owner(f->st, "BM-nope", owner, sizeof(owner)), PST_ENOENT);
    /* owners are Maildir names: no path tricks */
    assert_int_equal(bm_api_set_owner(f->st, b, "../x"), PST_EINVAL);
    assert_int_equal(bm_api_set_owner(f->st, b, "a b"), PST_EINVAL);
    assert_int_equal(bm_api_set_owner(f->st, b, "."), PST_EINVAL);
    assert_int_equal(bm_api_address_new(f->st, "", "", "", T0, b, sizeof(b)), PST_EINVAL);
    assert_int_equal(bm_api_address_new(f->st, NULL, "", "", T0, b, 10), PST_EINVAL);
}

static void test_send(void **state)
{
    struct fx *f = *state;
    char a[BM_STORE_ADDR_MAX + 1], why[256];
    int64_t id = 0;
    enum bm_outbox_state s;
    uint32_t att = 99;

    assert_int_equal(bm_api_address_new(f->st, NULL, "", "", T0, a, sizeof(a)), 0);
    assert_int_equal(
        bm_api_send(f->st, a, ADDR_TEST, "hi", "text", 3600, T0, &id, why, sizeof(why)), 0);
    assert_true(id > 0);
    assert_int_equal(bm_api_status(f->st, id, &s, &att), 0);
    assert_int_equal(s, BM_OUTBOX_AWAITINGPUBKEY);
    assert_int_equal(att, 0);
    assert_int_equal(bm_api_status(f->st, id + 100, &s, NULL), PST_ENOENT);

    /* refused: sender not ours, bad checksum, multi-line subject, bad ttl, too long */
    assert_int_equal(bm_api_send(f->st, ADDR_TEST, a, "", "x", 3600, T0, &id, why, sizeof(why)),
                     PST_ENOENT);
    assert_non_null(strstr(why, "not one of our addresses"));
    assert_int_equal(bm_api_send(f->st, a, "BM-2cWFkyuXXFw6d393RGnin2RpSXj8wxtt6G", "", "x", 3600,
                                 T0, &id, why, sizeof(why)),
                     PST_EINVAL);
    assert_non_null(strstr(why, "checksumfailed"));
    assert_int_equal(bm_api_send(f->st, a, ADDR_TEST, "a\nb", "x", 3600, T0, &id, why, sizeof(why)),
                     PST_EINVAL);
    assert_int_equal(bm_api_send(f->st, a, ADDR_TEST, "", "x", 10, T0, &id, why, sizeof(why)),
                     PST_EINVAL);
    char *big = malloc(BM_OBJ_PLAIN_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', BM_OBJ_PLAIN_MAX);
    big[BM_OBJ_PLAIN_MAX] = '\0';
    assert_int_equal(bm_api_send(f->st, a, ADDR_TEST, "", big, 3600, T0, &id, why, sizeof(why)),
                     PST_ELIMIT);
    free(big);
}

static void test_notify(void **state)
{
    struct fx *f = *state;
    assert_int_equal(bm_api_notify(f->dir), PST_ENOENT); /* no pid file */
    char p[700];
    snprintf(p, sizeof(p), "%s/bmd.pid", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs("garbage\n", fp);
    fclose(fp);
    assert_int_equal(bm_api_notify(f->dir), PST_ENOENT);
}

static struct bm_store_inmsg sample(const char *to, const char *subject, const char *body)
{
    struct bm_store_inmsg m;
    memset(&m, 0, sizeof(m));
    memset(m.msgid_hash, 0xab, sizeof(m.msgid_hash));
    m.msgid_hash[0] = 0x12;
    snprintf(m.to_addr, sizeof(m.to_addr), "%s", to);
    snprintf(m.from_addr, sizeof(m.from_addr), "%s", ADDR_TEST);
    m.subject = (char *)subject;
    m.subject_len = strlen(subject);
    m.body = (char *)body;
    m.body_len = strlen(body);
    m.encoding = 2;
    m.received = T0;
    return m;
}

static void test_format(void **state)
{
    (void)state;
    buf_t out;
    struct bm_store_inmsg m = sample("BM-x", "Grüße aus Köln", "line 1\nline 2\r\n");
    buf_init(&out, 1 << 20);
    assert_int_equal(bm_deliver_format(&m, &out), 0);
    assert_non_null(strstr(out.data, "From: <" ADDR_TEST "@bitmessage>\r\n"));
    assert_non_null(strstr(out.data, "Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"));
    assert_non_null(strstr(out.data, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: 8bit\r\n"));
    assert_non_null(strstr(out.data, "\r\n\r\nline 1\r\nline 2\r\n"));
    assert_null(strstr(out.data, "\n\n"));
    buf_release(&out);

    /* a bare CR, or a line over 998 bytes, is sent as base64 */
    m = sample("BM-x", "plain", "a\rb");
    buf_init(&out, 1 << 20);
    assert_int_equal(bm_deliver_format(&m, &out), 0);
    assert_non_null(strstr(out.data, "Subject: plain\r\n"));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: base64\r\n"));
    assert_non_null(strstr(out.data, "\r\n\r\nYQ1i\r\n"));
    buf_release(&out);
}

static int count_new(const char *maildir)
{
    char p[800];
    snprintf(p, sizeof(p), "%s/new", maildir);
    DIR *d = opendir(p);
    int n = 0;
    struct dirent *e;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_deliver(void **state)
{
    struct fx *f = *state;
    char a[BM_STORE_ADDR_MAX + 1], b[BM_STORE_ADDR_MAX + 1], md[700];
    unsigned n = 99;
    bool is_new;

    assert_int_equal(bm_api_address_new(f->st, NULL, "", "carol", T0, a, sizeof(a)), 0);
    assert_int_equal(bm_api_address_new(f->st, NULL, "", "", T0, b, sizeof(b)), 0);
    struct bm_store_inmsg m1 = sample(a, "s1", "b1");
    struct bm_store_inmsg m2 = sample(b, "s2", "b2");
    m2.msgid_hash[0] = 0x34;
    assert_int_equal(bm_store_inbox_put(f->st, &m1, &is_new, NULL), 0);
    assert_int_equal(bm_store_inbox_put(f->st, &m2, &is_new, NULL), 0);
    assert_int_equal(bm_deliver_pending(f->st, f->mail, "mx.test", &n), 0);
    assert_int_equal(n, 1); /* b has no owner: inbox only */
    snprintf(md, sizeof(md), "%s/carol", f->mail);
    assert_int_equal(count_new(md), 1);
    /* nothing left; a second round delivers nothing */
    assert_int_equal(bm_deliver_pending(f->st, f->mail, "mx.test", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(count_new(md), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_address_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test(test_format),
        cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
