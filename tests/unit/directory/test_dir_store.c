/*
 * test_dir_store.c - the directory store on SQLite and, with the very same
 * test functions, on PostgreSQL (a private server started by pgtest.c;
 * those cases are skipped, with the reason printed, when it cannot start).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "directory/dir_store.h"
#include "lib/db.h"
#include "pgtest.h"
#include "testutil.h"

#define T0 1700000000
#define BM1 "BM-2cWy7cvHoq3f1rYMerRJp8PT653jjSuEdY"
#define BM2 "BM-2cUVEbn8NjSFqZq8gG3aC3UVyKV3XvV9Hn"

enum { BE_SQLITE, BE_PG };

static int g_backend;

struct fx {
    int be;
    char dir[512];
    char path[600];
    struct dir_store *st;
};

static int fx_open(struct fx *f, struct dir_store **out)
{
    if (f->be == BE_SQLITE)
        return dir_store_open_sqlite(f->path, out);
    return dir_store_open_pg(pgtest_conninfo(), out);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");

    if (f == NULL)
        return -1;
    f->be = g_backend;
    if (f->be == BE_SQLITE) {
        snprintf(f->dir, sizeof(f->dir), "%s/dirstore.XXXXXX", t && *t ? t : "/tmp");
        if (mkdtemp(f->dir) == NULL)
            return -1;
        snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    } else if (pgtest_exec("DROP TABLE IF EXISTS dir_tokens, dir_records, dir_meta, dir_schema "
                           "CASCADE") != 0) {
        return -1;
    }
    if (fx_open(f, &f->st) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    dir_store_close(&f->st);
    if (f->be == BE_SQLITE)
        tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void rec_init(struct dir_record *r, const char *smtp, const char *type, const char *alt,
                     const char *source)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->smtp, sizeof(r->smtp), "%s", smtp);
    snprintf(r->type, sizeof(r->type), "%s", type);
    snprintf(r->alt, sizeof(r->alt), "%s", alt);
    snprintf(r->source, sizeof(r->source), "%s", source);
}

static int64_t add(struct fx *f, const char *smtp, const char *type, const char *alt,
                   enum dir_state state, int64_t now)
{
    struct dir_record r;
    int64_t id = 0;

    rec_init(&r, smtp, type, alt, state == DIR_LIVE ? "import" : "form");
    assert_int_equal(dir_store_add(f->st, &r, state, now, &id), 0);
    assert_true(id > 0);
    return id;
}

/* Collects callback records. */
struct coll {
    size_t n;
    struct dir_record r[64];
    int stop_after; /* 0 = never */
};

static int coll_cb(const struct dir_record *r, void *arg)
{
    struct coll *c = arg;

    if (c->n < 64)
        c->r[c->n] = *r;
    c->n++;
    if (c->stop_after > 0 && (int)c->n >= c->stop_after)
        return 42;
    return 0;
}

static int64_t version(struct fx *f)
{
    int64_t v = -1;

    assert_int_equal(dir_store_version(f->st, &v), 0);
    return v;
}

/* ---- tests ---- */

static void test_backend_name(void **state)
{
    struct fx *f = *state;

    assert_string_equal(dir_store_backend(f->st), f->be == BE_SQLITE ? "sqlite" : "postgresql");
    assert_string_equal(dir_state_name(DIR_LIVE), "live");
    assert_string_equal(dir_purpose_name(DIR_CONFIRM_REMOVE), "confirm-remove");
}

static void test_add_confirm_live(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    bool live = true;
    int64_t id = add(f, "alice@example.org", "bitmessage", BM1, DIR_PENDING, T0);

    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.id, id);
    assert_string_equal(r.smtp, "alice@example.org");
    assert_string_equal(r.type, "bitmessage");
    assert_string_equal(r.alt, BM1);
    assert_string_equal(r.source, "form");
    assert_int_equal(r.state, DIR_PENDING);
    assert_int_equal(r.created, T0);
    assert_int_equal(r.smtp_confirmed, 0);
    assert_int_equal(r.alt_confirmed, 0);
    assert_int_equal(r.live_since, 0);
    assert_int_equal(r.removed_at, 0);

    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_SMTP, T0 + 10, &live), 0);
    assert_false(live);
    /* the same side again: harmless, keeps the first time */
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_SMTP, T0 + 11, &live), 0);
    assert_false(live);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.state, DIR_PENDING);
    assert_int_equal(r.smtp_confirmed, T0 + 10);
    assert_int_equal(r.alt_confirmed, 0);

    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_ALT, T0 + 20, &live), 0);
    assert_true(live);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.state, DIR_LIVE);
    assert_int_equal(r.smtp_confirmed, T0 + 10);
    assert_int_equal(r.alt_confirmed, T0 + 20);
    assert_int_equal(r.live_since, T0 + 20);

    /* not pending any more */
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_ALT, T0 + 30, &live), PST_EPERM);
    assert_false(live);
    assert_int_equal(dir_store_confirm(f->st, id + 1000, DIR_CONFIRM_ALT, T0, NULL), PST_ENOENT);
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_REMOVE, T0, NULL), PST_EINVAL);
    assert_int_equal(dir_store_get(f->st, id + 1000, &r), PST_ENOENT);

    /* the other order, alternative first */
    id = add(f, "bob@example.org", "dmail", "dmail://example.org/bob", DIR_PENDING, T0);
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_ALT, T0 + 1, NULL), 0);
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_SMTP, T0 + 2, &live), 0);
    assert_true(live);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.live_since, T0 + 2);
}

static void test_add_live_import(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    int64_t id = add(f, "carol@example.org", "bitmessage", BM1, DIR_LIVE, T0);

    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.state, DIR_LIVE);
    assert_int_equal(r.live_since, T0);
    assert_string_equal(r.source, "import");
}

static void test_duplicate(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    int64_t id, id2 = 77;

    id = add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0);
    rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_PENDING, T0, &id2), PST_EEXIST);
    assert_int_equal(id2, 0);
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EEXIST);
    /* other alternative, other type, other smtp: fine (many-to-many) */
    add(f, "a@example.org", "bitmessage", BM2, DIR_PENDING, T0);
    add(f, "b@example.org", "bitmessage", BM1, DIR_PENDING, T0);
    add(f, "a@example.org", "dmail", BM1, DIR_PENDING, T0);
    /* live duplicates are refused too; removed ones do not count */
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_SMTP, T0 + 1, NULL), 0);
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_ALT, T0 + 1, NULL), 0);
    assert_int_equal(dir_store_add(f->st, &r, DIR_PENDING, T0, NULL), PST_EEXIST);
    assert_int_equal(dir_store_remove(f->st, id, T0 + 2), 0);
    assert_int_equal(dir_store_add(f->st, &r, DIR_PENDING, T0 + 3, &id2), 0);
    assert_true(id2 > id);
}

static void test_remove(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    struct coll c = {0};
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    int64_t pend = add(f, "p@example.org", "bitmessage", BM1, DIR_PENDING, T0);

    assert_int_equal(dir_store_lookup(f->st, "a@example.org", coll_cb, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(dir_store_remove(f->st, id, T0 + 5), 0);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.state, DIR_REMOVED);
    assert_int_equal(r.removed_at, T0 + 5);
    assert_int_equal(r.live_since, T0);
    c.n = 0;
    assert_int_equal(dir_store_lookup(f->st, "a@example.org", coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(dir_store_remove(f->st, id, T0 + 6), PST_EPERM);
    assert_int_equal(dir_store_remove(f->st, id + 1000, T0 + 6), PST_ENOENT);
    assert_int_equal(dir_store_remove(f->st, pend, T0 + 6), 0);
    assert_int_equal(dir_store_confirm(f->st, pend, DIR_CONFIRM_SMTP, T0 + 7, NULL), PST_EPERM);
}

static void test_lookup_reverse(void **state)
{
    struct fx *f = *state;
    struct coll c = {0};
    int64_t id;

    add(f, "a@example.org", "bitmessage", BM2, DIR_LIVE, T0);
    add(f, "a@example.org", "dmail", "dmail://example.org/a", DIR_LIVE, T0);
    add(f, "a@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    add(f, "a@example.org", "bitmessage", "BM-pending", DIR_PENDING, T0);
    id = add(f, "a@example.org", "bitmessage", "BM-removed", DIR_LIVE, T0);
    assert_int_equal(dir_store_remove(f->st, id, T0), 0);
    add(f, "b@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    add(f, "A@example.org", "bitmessage", BM1, DIR_LIVE, T0);

    assert_int_equal(dir_store_lookup(f->st, "a@example.org", coll_cb, &c), 0);
    assert_int_equal(c.n, 3);
    /* ordered by type, then alternative, bytewise on both back ends */
    assert_string_equal(c.r[0].type, "bitmessage");
    assert_string_equal(c.r[0].alt, BM2); /* "BM-2cU" < "BM-2cW" */
    assert_string_equal(c.r[1].alt, BM1);
    assert_string_equal(c.r[2].type, "dmail");
    assert_string_equal(c.r[2].smtp, "a@example.org");
    assert_int_equal(c.r[2].state, DIR_LIVE);

    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_lookup(f->st, "nobody@example.org", coll_cb, &c), 0);
    assert_int_equal(c.n, 0);

    /* reverse: smtp addresses ordered bytewise ("A" < "a" < "b") */
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_reverse(f->st, "bitmessage", BM1, coll_cb, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.r[0].smtp, "A@example.org");
    assert_string_equal(c.r[1].smtp, "a@example.org");
    assert_string_equal(c.r[2].smtp, "b@example.org");
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_reverse(f->st, "dmail", BM1, coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_reverse(f->st, NULL, "dmail://example.org/a", coll_cb, &c), 0);
    assert_int_equal(c.n, 1);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_reverse(f->st, NULL, "BM-pending", coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_reverse(f->st, NULL, "BM-removed", coll_cb, &c), 0);
    assert_int_equal(c.n, 0);

    /* a callback's non-zero result stops the walk and is returned */
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(dir_store_lookup(f->st, "a@example.org", coll_cb, &c), 42);
    assert_int_equal(c.n, 2);
    /* and the store is usable afterwards */
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_lookup(f->st, "a@example.org", coll_cb, &c), 0);
    assert_int_equal(c.n, 3);
}

static void test_list_paging(void **state)
{
    struct fx *f = *state;
    struct coll c = {0};
    int64_t ids[25], last = 0;
    char smtp[64];
    size_t i, total = 0;

    for (i = 0; i < 25; i++) {
        snprintf(smtp, sizeof(smtp), "user%zu@example.org", i);
        ids[i] = add(f, smtp, "bitmessage", BM1, i % 2 ? DIR_LIVE : DIR_PENDING, T0);
    }
    for (;;) {
        memset(&c, 0, sizeof(c));
        assert_int_equal(dir_store_list(f->st, -1, last, 10, coll_cb, &c), 0);
        assert_true(c.n <= 10);
        if (c.n == 0)
            break;
        for (i = 0; i < c.n; i++) {
            assert_int_equal(c.r[i].id, ids[total + i]);
            assert_true(c.r[i].id > last);
        }
        total += c.n;
        last = c.r[c.n - 1].id;
    }
    assert_int_equal(total, 25);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_list(f->st, DIR_LIVE, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 12);
    for (i = 0; i < c.n; i++)
        assert_int_equal(c.r[i].state, DIR_LIVE);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_list(f->st, DIR_PENDING, ids[20], 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 2); /* 22, 24 */
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_list(f->st, DIR_REMOVED, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(dir_store_list(f->st, 7, 0, 0, coll_cb, &c), PST_EINVAL);
}

static void test_count_recent(void **state)
{
    struct fx *f = *state;
    uint64_t n = 99;
    int64_t id;

    add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0);
    add(f, "a@example.org", "bitmessage", BM2, DIR_PENDING, T0 + 100);
    id = add(f, "b@example.org", "bitmessage", BM2, DIR_PENDING, T0 + 200);
    assert_int_equal(dir_store_remove(f->st, id, T0 + 201), 0);

    assert_int_equal(dir_store_count_recent(f->st, "a@example.org", NULL, T0, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(dir_store_count_recent(f->st, "a@example.org", NULL, T0 + 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dir_store_count_recent(f->st, NULL, BM2, T0, &n), 0);
    assert_int_equal(n, 2); /* removed records count: they were sent mail */
    assert_int_equal(dir_store_count_recent(f->st, NULL, BM1, T0 + 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dir_store_count_recent(f->st, "x@example.org", NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dir_store_count_recent(f->st, NULL, NULL, 0, &n), PST_EINVAL);
}

static void test_purge(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    char tok_old[DIR_TOKEN_TEXT_MAX], tok_new[DIR_TOKEN_TEXT_MAX], tok_live[DIR_TOKEN_TEXT_MAX];
    enum dir_purpose p;
    uint64_t removed = 99;
    int64_t old, young, live, got, v;

    old = add(f, "old@example.org", "bitmessage", BM1, DIR_PENDING, T0);
    young = add(f, "young@example.org", "bitmessage", BM1, DIR_PENDING, T0 + 1000);
    live = add(f, "live@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    assert_int_equal(
        dir_store_token_new(f->st, old, DIR_CONFIRM_SMTP, T0 + 5000, tok_old, sizeof(tok_old)), 0);
    assert_int_equal(
        dir_store_token_new(f->st, young, DIR_CONFIRM_SMTP, T0 + 5000, tok_new, sizeof(tok_new)),
        0);
    assert_int_equal(
        dir_store_token_new(f->st, live, DIR_CONFIRM_REMOVE, T0 + 100, tok_live, sizeof(tok_live)),
        0);
    v = version(f);
    assert_int_equal(dir_store_purge(f->st, T0 + 500, T0 + 600, &removed), 0);
    assert_int_equal(removed, 1);
    assert_true(version(f) != v);
    assert_int_equal(dir_store_get(f->st, old, &r), PST_ENOENT);
    assert_int_equal(dir_store_get(f->st, young, &r), 0);
    assert_int_equal(dir_store_get(f->st, live, &r), 0);
    /* the purged record's token is gone, and so is the expired token of the live record */
    assert_int_equal(dir_store_token_use(f->st, tok_old, T0 + 600, &got, &p), PST_ENOENT);
    assert_int_equal(dir_store_token_use(f->st, tok_live, T0 + 50, &got, &p), PST_ENOENT);
    assert_int_equal(dir_store_token_use(f->st, tok_new, T0 + 600, &got, &p), 0);
    assert_int_equal(got, young);
    /* nothing more to do */
    v = version(f);
    assert_int_equal(dir_store_purge(f->st, T0 + 500, T0 + 600, NULL), 0);
    assert_int_equal(version(f), v);
}

static void test_token_once(void **state)
{
    struct fx *f = *state;
    char tok[DIR_TOKEN_TEXT_MAX], tok2[DIR_TOKEN_TEXT_MAX];
    enum dir_purpose p = DIR_CONFIRM_REMOVE;
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0), got = 0;
    size_t i;

    assert_int_equal(dir_store_token_new(f->st, id, DIR_CONFIRM_ALT, T0 + 3600, tok, sizeof(tok)),
                     0);
    assert_int_equal(strlen(tok), 43);
    for (i = 0; i < 43; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[i]));
    assert_int_equal(dir_store_token_new(f->st, id, DIR_CONFIRM_ALT, T0 + 3600, tok2, sizeof(tok2)),
                     0);
    assert_string_not_equal(tok, tok2);
    assert_int_equal(dir_store_token_use(f->st, tok, T0 + 10, &got, &p), 0);
    assert_int_equal(got, id);
    assert_int_equal(p, DIR_CONFIRM_ALT);
    assert_int_equal(dir_store_token_use(f->st, tok, T0 + 11, &got, &p), PST_EPERM);
    assert_int_equal(got, 0);
    assert_int_equal(dir_store_token_use(f->st, tok2, T0 + 11, &got, &p), 0);
    /* token for a record that does not exist; buffer too small */
    assert_int_equal(
        dir_store_token_new(f->st, id + 1000, DIR_CONFIRM_ALT, T0 + 3600, tok, sizeof(tok)),
        PST_ENOENT);
    assert_int_equal(dir_store_token_new(f->st, id, DIR_CONFIRM_ALT, T0 + 3600, tok, 43),
                     PST_EINVAL);
    assert_int_equal(dir_store_token_new(f->st, id, (enum dir_purpose)9, T0, tok, sizeof(tok)),
                     PST_EINVAL);
}

static void test_token_expired(void **state)
{
    struct fx *f = *state;
    char tok[DIR_TOKEN_TEXT_MAX];
    enum dir_purpose p;
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0), got;

    assert_int_equal(dir_store_token_new(f->st, id, DIR_CONFIRM_SMTP, T0 + 100, tok, sizeof(tok)),
                     0);
    assert_int_equal(dir_store_token_use(f->st, tok, T0 + 100, &got, &p), PST_EPERM);
    assert_int_equal(dir_store_token_use(f->st, tok, T0 + 1000, &got, &p), PST_EPERM);
    /* an expired use does not consume it: still usable before expiry (clock skew) */
    assert_int_equal(dir_store_token_use(f->st, tok, T0 + 99, &got, &p), 0);
    assert_int_equal(p, DIR_CONFIRM_SMTP);
}

static void test_token_wrong(void **state)
{
    struct fx *f = *state;
    char tok[DIR_TOKEN_TEXT_MAX], bad[DIR_TOKEN_TEXT_MAX + 8];
    enum dir_purpose p;
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0), got;

    assert_int_equal(dir_store_token_new(f->st, id, DIR_CONFIRM_SMTP, T0 + 100, tok, sizeof(tok)),
                     0);
    /* well-formed but unknown */
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[0] = bad[0] == 'A' ? 'B' : 'A';
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    /* malformed */
    assert_int_equal(dir_store_token_use(f->st, "", T0, &got, &p), PST_ENOENT);
    assert_int_equal(dir_store_token_use(f->st, NULL, T0, &got, &p), PST_ENOENT);
    snprintf(bad, sizeof(bad), "%.42s", tok);
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    snprintf(bad, sizeof(bad), "%sA", tok);
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[10] = '+';
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    bad[10] = '=';
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[20] = '\0';
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    /* non-canonical last character (unused low bits set) */
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[42] = 'B';
    assert_int_equal(dir_store_token_use(f->st, bad, T0, &got, &p), PST_ENOENT);
    assert_int_equal(dir_store_token_use(f->st, "' OR 1=1 --", T0, &got, &p), PST_ENOENT);
    /* the real one still works once */
    assert_int_equal(dir_store_token_use(f->st, tok, T0, &got, &p), 0);
    assert_int_equal(got, id);
}

#define RACE_ROUNDS 8

/* Two processes, each with its own connection, follow the same links at once. */
static void test_token_race(void **state)
{
    struct fx *f = *state;
    char toks[RACE_ROUNDS][DIR_TOKEN_TEXT_MAX];
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0);
    int go[2], status, wins[RACE_ROUNDS] = {0};
    pid_t pids[2];
    size_t i, k;

    for (i = 0; i < RACE_ROUNDS; i++)
        assert_int_equal(
            dir_store_token_new(f->st, id, DIR_CONFIRM_SMTP, T0 + 3600, toks[i], sizeof(toks[i])),
            0);
    assert_int_equal(pipe(go), 0);
    fflush(stdout);
    fflush(stderr);
    for (k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            struct dir_store *st = NULL;
            enum dir_purpose p;
            int64_t got;
            char c;
            int mask = 0;

            close(go[1]);
            if (fx_open(f, &st) != 0)
                _exit(255);
            if (read(go[0], &c, 1) != 0)
                _exit(254);
            for (i = 0; i < RACE_ROUNDS; i++) {
                int rc = dir_store_token_use(st, toks[i], T0 + 1, &got, &p);

                if (rc == 0 && got == id)
                    mask |= 1 << i;
                else if (rc != PST_EPERM)
                    _exit(253);
            }
            dir_store_close(&st);
            _exit(mask);
        }
    }
    close(go[0]);
    close(go[1]); /* both children start now */
    for (k = 0; k < 2; k++) {
        assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
        assert_true(WIFEXITED(status));
        assert_true(WEXITSTATUS(status) < (1 << RACE_ROUNDS));
        for (i = 0; i < RACE_ROUNDS; i++)
            if (WEXITSTATUS(status) & (1 << i))
                wins[i]++;
    }
    for (i = 0; i < RACE_ROUNDS; i++)
        assert_int_equal(wins[i], 1);
}

static void test_version(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    char tok[DIR_TOKEN_TEXT_MAX];
    enum dir_purpose p;
    int64_t v0 = version(f), v1, v2, v3, id, got;

    id = add(f, "a@example.org", "bitmessage", BM1, DIR_PENDING, T0);
    v1 = version(f);
    assert_true(v1 != v0);
    rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_PENDING, T0, NULL), PST_EEXIST);
    assert_int_equal(version(f), v1); /* a refused write changes nothing */
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_SMTP, T0 + 1, NULL), 0);
    v2 = version(f);
    assert_true(v2 != v1);
    /* reading and tokens do not change it */
    assert_int_equal(dir_store_token_new(f->st, id, DIR_CONFIRM_ALT, T0 + 9, tok, sizeof(tok)), 0);
    assert_int_equal(dir_store_token_use(f->st, tok, T0 + 2, &got, &p), 0);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(version(f), v2);
    assert_int_equal(dir_store_confirm(f->st, id, DIR_CONFIRM_ALT, T0 + 2, NULL), 0);
    v3 = version(f);
    assert_true(v3 != v2);
    assert_int_equal(dir_store_remove(f->st, id, T0 + 3), 0);
    assert_true(version(f) != v3);
    assert_int_equal(dir_store_remove(f->st, id, T0 + 3), PST_EPERM);
}

static void test_transaction(void **state)
{
    struct fx *f = *state;
    struct coll c = {0};
    struct dir_record r;
    int64_t v = version(f);

    /* all-or-nothing: a rolled-back import leaves nothing */
    assert_int_equal(dir_store_begin(f->st), 0);
    assert_int_equal(dir_store_begin(f->st), PST_EINVAL);
    add(f, "a@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    add(f, "b@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    add(f, "c@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    dir_store_rollback(f->st);
    assert_int_equal(dir_store_list(f->st, -1, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(version(f), v);
    assert_int_equal(dir_store_commit(f->st), PST_EINVAL);
    dir_store_rollback(f->st); /* harmless outside a transaction */

    /* a refused row inside the transaction leaves it usable */
    assert_int_equal(dir_store_begin(f->st), 0);
    add(f, "a@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    rec_init(&r, "a@example.org", "bitmessage", BM1, "import");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EEXIST);
    rec_init(&r, "", "bitmessage", BM1, "import");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    add(f, "b@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    assert_int_equal(dir_store_commit(f->st), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_list(f->st, -1, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 2);
    assert_true(version(f) != v);

    /* closing with an open transaction rolls it back */
    assert_int_equal(dir_store_begin(f->st), 0);
    add(f, "z@example.org", "bitmessage", BM1, DIR_LIVE, T0);
    dir_store_close(&f->st);
    assert_int_equal(fx_open(f, &f->st), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_list(f->st, -1, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 2);
}

static void test_verbatim(void **state)
{
    static const char *const smtps[] = {
        "o'brien@example.org",        "x'); DROP TABLE dir_records; --@example.org",
        "\"quoted\\\"\"@example.org", "<script>&amp;</script>@example.org",
        "?1$1%s%n@example.org",       "m\xc3\xbcller@xn--bcher-kva.example",
        "]]>&lt;@example.org",
    };
    struct fx *f = *state;
    struct dir_record r;
    struct coll c;
    size_t i;

    for (i = 0; i < PST_ARRAY_LEN(smtps); i++) {
        int64_t id = add(f, smtps[i], "dmail", "dmail://h/'\";<x>&y", DIR_LIVE, T0);

        assert_int_equal(dir_store_get(f->st, id, &r), 0);
        assert_string_equal(r.smtp, smtps[i]);
        assert_string_equal(r.alt, "dmail://h/'\";<x>&y");
        memset(&c, 0, sizeof(c));
        assert_int_equal(dir_store_lookup(f->st, smtps[i], coll_cb, &c), 0);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.r[0].smtp, smtps[i]);
    }
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_reverse(f->st, "dmail", "dmail://h/'\";<x>&y", coll_cb, &c), 0);
    assert_int_equal(c.n, PST_ARRAY_LEN(smtps));
    /* LIKE-style wildcards are not wildcards */
    memset(&c, 0, sizeof(c));
    assert_int_equal(dir_store_lookup(f->st, "%@example.org", coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
}

static void test_bad_args(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    struct coll c = {0};
    uint64_t n;

    rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_REMOVED, T0, NULL), PST_EINVAL);
    assert_int_equal(dir_store_add(f->st, NULL, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a\xff@example.org", "bitmessage", BM1, "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a\xc0\xaf@example.org", "bitmessage", BM1, "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a@example.org", "", BM1, "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a@example.org", "bitmessage", "", "form");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a@example.org", "bitmessage", BM1, "");
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    /* fields without their NUL */
    rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
    memset(r.smtp, 'a', sizeof(r.smtp));
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
    memset(r.alt, 'a', sizeof(r.alt));
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
    memset(r.type, 'a', sizeof(r.type));
    assert_int_equal(dir_store_add(f->st, &r, DIR_LIVE, T0, NULL), PST_EINVAL);
    /* queries with bytes nothing stored can hold just find nothing */
    assert_int_equal(dir_store_lookup(f->st, "a\xff@example.org", coll_cb, &c), 0);
    assert_int_equal(dir_store_reverse(f->st, "bitmessage", "BM-\xfe", coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(dir_store_count_recent(f->st, "\xff", NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dir_store_lookup(f->st, NULL, coll_cb, &c), PST_EINVAL);
    assert_int_equal(dir_store_lookup(f->st, "a@b.c", NULL, &c), PST_EINVAL);
    assert_int_equal(dir_store_confirm(f->st, 1, DIR_CONFIRM_SMTP, 0, NULL), PST_EINVAL);
    /* nothing was stored */
    assert_int_equal(dir_store_list(f->st, -1, 0, 0, coll_cb, &c), 0);
    assert_int_equal(c.n, 0);
}

static void test_reopen(void **state)
{
    struct fx *f = *state;
    struct dir_store *second = NULL;
    struct dir_record r;
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_LIVE, T0), v = version(f), v2;

    /* a second instance on the same database sees the same records and version */
    assert_int_equal(fx_open(f, &second), 0);
    assert_int_equal(dir_store_get(second, id, &r), 0);
    assert_string_equal(r.alt, BM1);
    assert_int_equal(dir_store_version(second, &v2), 0);
    assert_int_equal(v2, v);
    assert_int_equal(dir_store_remove(second, id, T0 + 1), 0);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(r.state, DIR_REMOVED);
    assert_true(version(f) != v);
    dir_store_close(&second);
    assert_null(second);
    dir_store_close(&second);
    dir_store_close(&f->st);
    assert_int_equal(fx_open(f, &f->st), 0);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_int_equal(dir_store_open_sqlite(NULL, &second), PST_EINVAL);
    assert_int_equal(dir_store_open_sqlite("", &second), PST_EINVAL);
}

/* Instances starting together on an empty database: one migrates, none fails. */
static void test_concurrent_open(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    int go[2], status;
    pid_t pids[3];
    size_t k;

    dir_store_close(&f->st);
    if (f->be == BE_SQLITE) {
        struct db *db = NULL;

        /* Postern's own schema first: lib/db.c's migrations do not take concurrent first opens
         * (they read the version before BEGIN IMMEDIATE); this test is about dir_schema */
        snprintf(f->path, sizeof(f->path), "%s/fresh.db", f->dir);
        assert_int_equal(db_open(f->path, &db), 0);
        db_close(&db);
    } else {
        assert_int_equal(pgtest_exec("DROP TABLE dir_tokens, dir_records, dir_meta, dir_schema"),
                         0);
    }
    assert_int_equal(pipe(go), 0);
    fflush(stdout);
    fflush(stderr);
    for (k = 0; k < 3; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            struct dir_store *st = NULL;
            char c;

            close(go[1]);
            if (read(go[0], &c, 1) != 0)
                _exit(2);
            if (fx_open(f, &st) != 0)
                _exit(1);
            rec_init(&r, "a@example.org", "bitmessage", BM1, "form");
            if (dir_store_add(st, &r, DIR_PENDING, T0, NULL) != 0 &&
                dir_store_add(st, &r, DIR_PENDING, T0, NULL) != PST_EEXIST)
                _exit(3);
            dir_store_close(&st);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    for (k = 0; k < 3; k++) {
        assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(fx_open(f, &f->st), 0);
    assert_int_equal(dir_store_get(f->st, 1, &r), 0);
    assert_int_equal(dir_store_get(f->st, 2, &r), PST_ENOENT);
}

/* PostgreSQL only: the server drops our connection; the next call reconnects once. */
static void test_reconnect(void **state)
{
    struct fx *f = *state;
    struct dir_record r;
    int64_t id = add(f, "a@example.org", "bitmessage", BM1, DIR_LIVE, T0);

    if (f->be != BE_PG)
        return;
    assert_int_equal(pgtest_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE pid <> pg_backend_pid()"
                                 " AND backend_type = 'client backend'"),
                     0);
    usleep(100000);
    assert_int_equal(dir_store_get(f->st, id, &r), 0);
    assert_string_equal(r.smtp, "a@example.org");
    /* writes too (prepared statements were re-made on the new connection) */
    add(f, "b@example.org", "bitmessage", BM1, DIR_LIVE, T0);
}

static void test_open_pg_bad(void **state)
{
    struct dir_store *st = NULL;

    (void)state;
    assert_int_equal(dir_store_open_pg("host=/nonexistent-dir port=1 connect_timeout=2", &st),
                     PST_EDB);
    assert_null(st);
    assert_int_equal(dir_store_open_pg(NULL, &st), PST_EINVAL);
}

#define DIR_TESTS                                                                                  \
    cmocka_unit_test_setup_teardown(test_backend_name, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(test_add_confirm_live, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(test_add_live_import, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(test_lookup_reverse, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_count_recent, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(test_token_once, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_token_expired, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_token_wrong, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_token_race, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_version, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_transaction, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_verbatim, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(test_concurrent_open, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {DIR_TESTS, cmocka_unit_test(test_open_pg_bad)};
    const struct CMUnitTest pg_tests[] = {DIR_TESTS};
    char why[256] = "";
    int failed;

    g_backend = BE_SQLITE;
    failed = cmocka_run_group_tests_name("dir_store_sqlite", sqlite_tests, NULL, NULL);
    if (pgtest_start(why, sizeof(why)) != 0) {
        printf("dir_store_postgresql: SKIPPED: PostgreSQL could not start: %s\n", why);
        return failed;
    }
    g_backend = BE_PG;
    failed += cmocka_run_group_tests_name("dir_store_postgresql", pg_tests, NULL, NULL);
    pgtest_stop();
    return failed;
}
