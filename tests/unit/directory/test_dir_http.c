/*
 * test_dir_http.c - the directory's request handling (dir_http.c) without
 * sockets, on a real SQLite directory store: the form, CSRF, the whole
 * registration / confirmation / removal flow with a recording sender, the
 * query API (XML, JSON, reverse, ETag), the admin API, and hostile input
 * (forged/expired/reused tokens, missing CSRF, rate limits, bad BM
 * checksums, SQL and XML metacharacters, malformed and huge queries), each
 * of which must get a 4xx and change nothing; handlers of several threads
 * (dir_http_new_peer) sharing rate limits and seeing each other's writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>

#include <cmocka.h>

#include "directory/dir_http.h"
#include "directory/dir_query.h"
#include "directory/dir_store.h"
#include "testutil.h"

#define BM_OK "BM-2cWFkyuXXFw6d393RGnin2RpSXj8wxtt6F"  /* PyBitmessage, passphrase "test" */
#define BM_BAD "BM-2cWFkyuXXFw6d393RGnin2RpSXj8wxtt6G" /* last character changed */
#define T0 1800000000

struct sent {
    int mails, bms;
    char mail_to[400], bm_to[600];
    char mail_body[8192], bm_body[8192];
    int fail;
};

struct fx {
    char dir[64];
    char db[128];
    struct dir_store *st;
    struct dir_http *h;
    struct sent sent;
    char cookie[64]; /* "__Host-dirc=..." */
    char csrf[128];
    struct sockaddr_in peer;
    struct dir_http_resp rs;
    int64_t now;
};

static int rec_mail(void *arg, const char *to, const char *subject, const char *body)
{
    struct sent *s = arg;
    if (s->fail)
        return PST_EIO;
    s->mails++;
    snprintf(s->mail_to, sizeof s->mail_to, "%s", to);
    snprintf(s->mail_body, sizeof s->mail_body, "%s", body);
    return 0;
}

static int rec_bm(void *arg, const char *to, const char *subject, const char *body)
{
    struct sent *s = arg;
    if (s->fail)
        return PST_EIO;
    s->bms++;
    snprintf(s->bm_to, sizeof s->bm_to, "%s", to);
    snprintf(s->bm_body, sizeof s->bm_body, "%s", body);
    return 0;
}

static struct fx *fx_new(int64_t max_ip, int64_t max_addr)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/dirhttp.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/state.db", f->dir);
    assert_int_equal(dir_store_open_sqlite(f->db, &f->st), 0);
    struct dir_http_params p = {
        .base_url = "https://dir.example:8443",
        .link_ttl = 48 * 3600,
        .max_per_ip = max_ip,
        .max_per_address = max_addr,
        .case_sensitive = false,
        .admin_token = "admin-token-0123456789abcdef",
    };
    memset(p.secret, 7, sizeof p.secret);
    struct dir_http_sender snd = {rec_mail, rec_bm, &f->sent};
    assert_int_equal(dir_http_new(&p, f->st, &snd, &f->h), 0);
    f->peer.sin_family = AF_INET;
    f->peer.sin_addr.s_addr = htonl(0xc0000207);
    f->now = T0;
    return f;
}

static void fx_free(struct fx **pf)
{
    struct fx *f = *pf;
    dir_http_free(&f->h);
    dir_store_close(&f->st);
    assert_int_equal(tu_rm_rf(f->dir), 0);
    free(f);
    *pf = NULL;
}

static int req(struct fx *f, enum dir_http_method m, const char *target, const char *body,
               const char *hdr_name, const char *hdr_value)
{
    char path[512];
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    assert_true(plen < sizeof path);
    memcpy(path, target, plen);
    path[plen] = '\0';
    struct dir_http_req rq = {
        .method = m,
        .path = path,
        .query = q ? q + 1 : NULL,
        .query_len = q ? strlen(q + 1) : 0,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .content_type = body ? "application/x-www-form-urlencoded" : NULL,
        .cookie = f->cookie[0] ? f->cookie : NULL,
        .peer = (const struct sockaddr *)&f->peer,
        .now = f->now,
    };
    if (hdr_name && strcmp(hdr_name, "accept") == 0)
        rq.accept = hdr_value;
    if (hdr_name && strcmp(hdr_name, "inm") == 0)
        rq.if_none_match = hdr_value;
    if (hdr_name && strcmp(hdr_name, "auth") == 0)
        rq.authorization = hdr_value;
    if (hdr_name && strcmp(hdr_name, "ctype") == 0)
        rq.content_type = hdr_value;
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    return f->rs.status;
}

static const char *body(struct fx *f)
{
    return f->rs.body->data;
}

/* get_form - GET / and keep the cookie and the form's CSRF token. */
static void get_form(struct fx *f)
{
    assert_int_equal(req(f, DIR_M_GET, "/", NULL, NULL, NULL), 200);
    if (f->rs.set_cookie[0]) {
        const char *semi = strchr(f->rs.set_cookie, ';');
        assert_non_null(semi);
        snprintf(f->cookie, sizeof f->cookie, "%.*s", (int)(semi - f->rs.set_cookie),
                 f->rs.set_cookie);
    }
    const char *p = strstr(body(f), "name=\"csrf\" value=\"");
    assert_non_null(p);
    p += strlen("name=\"csrf\" value=\"");
    const char *e = strchr(p, '"');
    snprintf(f->csrf, sizeof f->csrf, "%.*s", (int)(e - p), p);
}

static void token_of(const char *text, char *out, size_t outsz)
{
    const char *p = strstr(text, "/confirm?t=");
    assert_non_null(p);
    p += strlen("/confirm?t=");
    size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    assert_true(n > 20 && n < outsz);
    memcpy(out, p, n);
    out[n] = '\0';
}

static int cnt_cb(const struct dir_record *r, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int nrecords(struct fx *f)
{
    int n = 0;
    assert_int_equal(dir_store_list(f->st, -1, 0, 0, cnt_cb, &n), 0);
    return n;
}

static int post(struct fx *f, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int post(struct fx *f, const char *path, const char *fmt, ...)
{
    char b[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    return req(f, DIR_M_POST, path, b, NULL, NULL);
}

static int confirm(struct fx *f, const char *tok)
{
    return post(f, "/confirm", "t=%s&csrf=%s", tok, f->csrf);
}

static void test_form_page(void **state)
{
    struct fx *f = fx_new(20, 5);
    get_form(f);
    assert_string_equal(f->rs.content_type, "text/html; charset=utf-8");
    assert_non_null(strstr(body(f), "<html lang=\"en\">"));
    assert_non_null(strstr(body(f), "<label for=\"smtp\">"));
    assert_non_null(strstr(body(f), "<label for=\"alt\">"));
    assert_non_null(strstr(body(f), "48 hours"));
    assert_non_null(strstr(f->rs.set_cookie, "Secure; HttpOnly; SameSite=Strict"));
    assert_false(f->rs.cacheable);
    /* the cookie is kept: no new one */
    get_form(f);
    assert_string_equal(f->rs.set_cookie, "");
    assert_int_equal(req(f, DIR_M_GET, "/style.css", NULL, NULL, NULL), 200);
    assert_true(f->rs.cacheable);
    fx_free(&f);
}

static void test_full_flow(void **state)
{
    struct fx *f = fx_new(20, 5);
    char ts[64], ta[64];
    get_form(f);
    assert_int_equal(
        post(f, "/register", "smtp=Alice%%40Example.ORG&alt=%s&type=&csrf=%s", BM_OK, f->csrf),
        200);
    assert_non_null(strstr(body(f), "Check both inboxes"));
    assert_int_equal(f->sent.mails, 1);
    assert_int_equal(f->sent.bms, 1);
    assert_string_equal(f->sent.bm_to, BM_OK);
    assert_non_null(strstr(f->sent.mail_body, "https://dir.example:8443/confirm?t="));
    token_of(f->sent.mail_body, ts, sizeof ts);
    token_of(f->sent.bm_body, ta, sizeof ta);
    assert_string_not_equal(ts, ta);

    /* pending: not visible */
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=alice%40example.org", NULL, 0, 0),
                     200);
    assert_string_equal(body(f), "<xml></xml>");

    /* GET changes nothing: it only shows the button */
    char url[128];
    snprintf(url, sizeof url, "/confirm?t=%s", ts);
    assert_int_equal(req(f, DIR_M_GET, url, NULL, NULL, NULL), 200);
    assert_non_null(strstr(body(f), "action=\"/confirm\""));
    assert_int_equal(req(f, DIR_M_GET, url, NULL, NULL, NULL), 200);

    assert_int_equal(confirm(f, ts), 200);
    assert_non_null(strstr(body(f), "not live yet"));
    assert_int_equal(confirm(f, ts), 410); /* reused */
    assert_int_equal(confirm(f, ta), 200);
    assert_non_null(strstr(body(f), "Your listing is live"));

    f->now += 5;
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=ALICE%40example.org", NULL, 0, 0),
                     200);
    char want[256];
    snprintf(want, sizeof want,
             "<xml><record><smtp_address>alice@example.org</smtp_address>"
             "<bitmessage_address>%s</bitmessage_address></record></xml>",
             BM_OK);
    assert_string_equal(body(f), want);
    char etag[64];
    snprintf(etag, sizeof etag, "%s", f->rs.etag);
    assert_true(f->rs.cacheable);
    assert_int_equal(
        req(f, DIR_M_GET, "/doquery?smtpaddress=alice%40example.org", NULL, "inm", etag), 304);
    /* JSON by Accept, and the JSON API */
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=alice%40example.org", NULL, "accept",
                         "application/json"),
                     200);
    snprintf(want, sizeof want,
             "{\"address\":\"alice@example.org\",\"alternatives\":[{\"type\":\"bitmessage\","
             "\"address\":\"%s\"}]}\n",
             BM_OK);
    assert_string_equal(body(f), want);
    assert_string_not_equal(f->rs.etag, etag);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/lookup?address=alice%40example.org", 0, 0, 0), 200);
    assert_string_equal(body(f), want);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/reverse?address=" BM_OK, 0, 0, 0), 200);
    assert_non_null(strstr(body(f), "\"smtp_addresses\":[\"alice@example.org\"]"));
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/lookup?address=nobody%40example.org", 0, 0, 0),
                     200);
    assert_non_null(strstr(body(f), "\"alternatives\":[]"));

    /* register the same pair again: conflict, nothing sent */
    assert_int_equal(
        post(f, "/register", "smtp=alice%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf), 409);
    assert_int_equal(f->sent.mails, 1);

    /* removal */
    assert_int_equal(post(f, "/remove", "smtp=alice%%40example.org&csrf=%s", f->csrf), 200);
    assert_int_equal(f->sent.mails, 2);
    assert_string_equal(f->sent.mail_to, "alice@example.org");
    char tr[64];
    token_of(f->sent.mail_body, tr, sizeof tr);
    assert_int_equal(confirm(f, tr), 200);
    assert_non_null(strstr(body(f), "Listing removed"));
    assert_int_equal(confirm(f, tr), 410);
    f->now += 5;
    assert_int_equal(
        req(f, DIR_M_GET, "/doquery?smtpaddress=alice%40example.org", NULL, "inm", etag), 200);
    assert_string_equal(body(f), "<xml></xml>");
    assert_int_equal(post(f, "/remove", "smtp=alice%%40example.org&csrf=%s", f->csrf), 404);
    fx_free(&f);
}

static void test_csrf(void **state)
{
    struct fx *f = fx_new(20, 5);
    get_form(f);
    /* no token */
    assert_int_equal(post(f, "/register", "smtp=a%%40example.org&alt=%s", BM_OK), 403);
    /* forged token */
    assert_int_equal(
        post(f, "/register", "smtp=a%%40example.org&alt=%s&csrf=%lld.AAAA", BM_OK, (long long)T0),
        403);
    /* a valid token for another cookie */
    char other[128];
    assert_int_equal(
        dir_http_csrf_token(f->h, "BBBBBBBBBBBBBBBBBBBBBB", f->now, other, sizeof other), 0);
    assert_int_equal(post(f, "/register", "smtp=a%%40example.org&alt=%s&csrf=%s", BM_OK, other),
                     403);
    /* no cookie */
    char saved[64];
    memcpy(saved, f->cookie, sizeof saved);
    f->cookie[0] = '\0';
    assert_int_equal(post(f, "/register", "smtp=a%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     403);
    memcpy(f->cookie, saved, sizeof saved);
    /* expired */
    f->now += DIR_HTTP_CSRF_TTL + 1;
    assert_int_equal(post(f, "/register", "smtp=a%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     403);
    /* wrong content type */
    f->now = T0;
    char b[512];
    snprintf(b, sizeof b, "smtp=a%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf);
    assert_int_equal(req(f, DIR_M_POST, "/register", b, "ctype", "text/plain"), 415);
    assert_int_equal(f->sent.mails + f->sent.bms, 0);
    assert_int_equal(nrecords(f), 0);
    /* and the good one works */
    assert_int_equal(req(f, DIR_M_POST, "/register", b, NULL, NULL), 200);
    assert_int_equal(nrecords(f), 1);
    fx_free(&f);
}

static void test_bad_input(void **state)
{
    struct fx *f = fx_new(100, 5);
    get_form(f);
    /* invalid BM checksum */
    assert_int_equal(post(f, "/register", "smtp=a%%40example.org&alt=%s&csrf=%s", BM_BAD, f->csrf),
                     400);
    assert_non_null(strstr(body(f), "role=\"alert\""));
    /* the input is shown again, escaped */
    assert_int_equal(
        post(f, "/register", "smtp=%%3Cscript%%3E%%40x&alt=%s&csrf=%s", BM_OK, f->csrf), 400);
    assert_null(strstr(body(f), "<script>"));
    assert_non_null(strstr(body(f), "&lt;script&gt;"));
    /* SQL metacharacters */
    assert_int_equal(post(f, "/register",
                          "smtp=x%%27%%3B+DROP+TABLE+dir_records%%3B--%%40a.b&alt=%s&csrf=%s",
                          BM_OK, f->csrf),
                     400);
    assert_int_equal(post(f, "/register", "smtp=&alt=&csrf=%s", f->csrf), 400);
    assert_int_equal(post(f, "/register", "smtp=a%%40b.example&alt=nonsense&csrf=%s", f->csrf),
                     400);
    assert_int_equal(
        post(f, "/register", "smtp=a%%40b.example&alt=%s&type=smoke&csrf=%s", BM_OK, f->csrf), 400);
    assert_int_equal(
        post(f, "/register", "smtp=a%%40b.example&alt=%s&csrf=%s&csrf=x", BM_OK, f->csrf), 400);
    assert_int_equal(post(f, "/register", "smtp=a%%zz&csrf=%s", f->csrf), 400);
    assert_int_equal(f->sent.mails + f->sent.bms, 0);
    assert_int_equal(nrecords(f), 0);
    /* query API */
    assert_int_equal(req(f, DIR_M_GET, "/doquery", NULL, 0, 0), 400);
    assert_non_null(strstr(body(f), "<xml><error>"));
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=%3Cx%3E", NULL, 0, 0), 400);
    assert_null(strstr(body(f), "<x>"));
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=a%ZZ", NULL, 0, 0), 400);
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=%27+OR+1%3D1--", NULL, 0, 0), 400);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/lookup", NULL, 0, 0), 400);
    assert_string_equal(f->rs.content_type, "application/json");
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/reverse?address=" BM_BAD, NULL, 0, 0), 400);
    char *big = malloc(DIR_QUERY_MAX_LEN + 64);
    assert_non_null(big);
    memcpy(big, "/doquery?smtpaddress=", 21);
    memset(big + 21, 'a', DIR_QUERY_MAX_LEN + 10);
    big[21 + DIR_QUERY_MAX_LEN + 10] = '\0';
    assert_int_equal(req(f, DIR_M_GET, big, NULL, 0, 0), 414);
    free(big);
    /* tokens */
    assert_int_equal(req(f, DIR_M_GET, "/confirm", NULL, 0, 0), 400);
    assert_int_equal(req(f, DIR_M_GET, "/confirm?t=%3Cscript%3E", NULL, 0, 0), 400);
    assert_int_equal(confirm(f, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 404);
    assert_int_equal(confirm(f, "short"), 404);
    assert_int_equal(post(f, "/confirm", "csrf=%s", f->csrf), 400);
    /* routing */
    assert_int_equal(req(f, DIR_M_GET, "/nope", NULL, 0, 0), 404);
    assert_int_equal(req(f, DIR_M_POST, "/", "x=1", 0, 0), 405);
    assert_string_equal(f->rs.allow, "GET, HEAD");
    assert_int_equal(req(f, DIR_M_GET, "/register", NULL, 0, 0), 405);
    assert_int_equal(req(f, DIR_M_DELETE, "/confirm", NULL, 0, 0), 405);
    assert_int_equal(req(f, DIR_M_OTHER, "/doquery?smtpaddress=a%40b.c", NULL, 0, 0), 405);
    assert_int_equal(nrecords(f), 0);
    fx_free(&f);
}

static void test_expired_link(void **state)
{
    struct fx *f = fx_new(20, 5);
    char ts[64];
    get_form(f);
    assert_int_equal(post(f, "/register", "smtp=b%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     200);
    token_of(f->sent.mail_body, ts, sizeof ts);
    f->now += 48 * 3600 + 1;
    get_form(f);
    assert_int_equal(confirm(f, ts), 410);
    assert_int_equal(dir_http_purge(f->h, f->now), 0);
    assert_int_equal(nrecords(f), 0);
    fx_free(&f);
}

static void test_rate_limits(void **state)
{
    struct fx *f = fx_new(3, 2);
    get_form(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            post(f, "/register", "smtp=u%d%%40example.org&alt=%s&csrf=%s", i, BM_OK, f->csrf),
            i < 2 ? 200 : 429); /* per address (the BM one) after 2 */
    assert_int_equal(post(f, "/register", "smtp=u9%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     429); /* now per IP: 4th post in the hour */
    assert_non_null(strstr(body(f), "Too many requests"));
    int n = nrecords(f);
    assert_int_equal(n, 2);
    assert_int_equal(f->sent.mails, 2);
    /* another client is not affected by the per-IP limit */
    f->peer.sin_addr.s_addr = htonl(0xc0000208);
    assert_int_equal(post(f, "/register", "smtp=u9%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     429); /* but the address limit holds */
    /* an hour later the IP may post again */
    f->peer.sin_addr.s_addr = htonl(0xc0000207);
    f->now += 3601;
    get_form(f);
    assert_int_equal(post(f, "/register", "smtp=u9%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     429); /* address limit is per day */
    assert_int_equal(nrecords(f), 2);
    fx_free(&f);
}

static void test_send_failure(void **state)
{
    struct fx *f = fx_new(20, 5);
    get_form(f);
    f->sent.fail = 1;
    assert_int_equal(post(f, "/register", "smtp=c%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     503);
    f->sent.fail = 0;
    /* the failed request left nothing pending: a retry works */
    assert_int_equal(post(f, "/register", "smtp=c%%40example.org&alt=%s&csrf=%s", BM_OK, f->csrf),
                     200);
    fx_free(&f);
}

static void test_admin(void **state)
{
    struct fx *f = fx_new(20, 5);
    const char *good = "Bearer admin-token-0123456789abcdef";
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records", NULL, 0, 0), 401);
    assert_true(f->rs.auth_challenge);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records", NULL, "auth", "Bearer wrong"), 401);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records", NULL, "auth",
                         "Bearer admin-token-0123456789abcde"),
                     401);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records", NULL, "auth", good), 200);
    assert_string_equal(body(f), "{\"records\":[],\"next_after\":null}\n");
    /* add: JSON only */
    char b[512];
    snprintf(b, sizeof b, "{\"smtp\":\"o'neil&co@example.org\",\"alt\":\"%s\"}", BM_OK);
    struct dir_http_req rq = {.method = DIR_M_POST,
                              .path = "/api/v1/admin/records",
                              .body = b,
                              .body_len = strlen(b),
                              .content_type = "application/json",
                              .authorization = good,
                              .now = T0};
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 201);
    assert_non_null(strstr(body(f), "\"state\":\"live\""));
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 409);
    rq.body = "{\"smtp\":1}";
    rq.body_len = strlen(rq.body);
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 400);
    rq.body = "{\"smtp\":\"a@b.c\",\"smtp\":\"d@e.f\",\"alt\":\"x\"}";
    rq.body_len = strlen(rq.body);
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 400);
    rq.body = "not json";
    rq.body_len = strlen(rq.body);
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 400);
    rq.content_type = "application/x-www-form-urlencoded";
    assert_int_equal(dir_http_handle(f->h, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 415);
    /* XML specials escaped in the seed's XML */
    assert_int_equal(req(f, DIR_M_GET, "/doquery?smtpaddress=o%27neil%26co%40example.org", 0, 0, 0),
                     200);
    assert_non_null(strstr(body(f), "<smtp_address>o&apos;neil&amp;co@example.org</smtp_address>"));
    /* list with paging */
    assert_int_equal(
        req(f, DIR_M_GET, "/api/v1/admin/records?state=live&limit=1", NULL, "auth", good), 200);
    assert_non_null(strstr(body(f), "\"next_after\":1"));
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records?limit=0", NULL, "auth", good), 400);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records?state=x", NULL, "auth", good), 400);
    /* delete */
    assert_int_equal(req(f, DIR_M_DELETE, "/api/v1/admin/records/1", NULL, "auth", "Bearer x"),
                     401);
    assert_int_equal(req(f, DIR_M_DELETE, "/api/v1/admin/records/1", NULL, "auth", good), 200);
    assert_non_null(strstr(body(f), "\"state\":\"removed\""));
    assert_int_equal(req(f, DIR_M_DELETE, "/api/v1/admin/records/1", NULL, "auth", good), 409);
    assert_int_equal(req(f, DIR_M_DELETE, "/api/v1/admin/records/99", NULL, "auth", good), 404);
    assert_int_equal(req(f, DIR_M_DELETE, "/api/v1/admin/records/-1", NULL, "auth", good), 400);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/other", NULL, "auth", good), 404);
    fx_free(&f);
}

/* A second handler (as directoryd's second loop makes) over its own store connection. */
struct peer {
    struct dir_store *st;
    struct dir_http *h;
    struct sent sent;
};

static void peer_new(struct fx *f, struct peer *p)
{
    memset(p, 0, sizeof *p);
    struct dir_http_sender snd = {rec_mail, rec_bm, &p->sent};
    assert_int_equal(dir_store_open_sqlite(f->db, &p->st), 0);
    assert_int_equal(dir_http_new_peer(f->h, p->st, &snd, &p->h), 0);
}

static void test_peers_share(void **state)
{
    struct fx *f = fx_new(3, 100);
    struct peer p;
    peer_new(f, &p);
    struct dir_http *own = f->h;
    get_form(f);
    /* the per-IP limit (3 an hour) counts posts through either handler */
    for (int i = 0; i < 4; i++) {
        f->h = i % 2 ? p.h : own;
        assert_int_equal(
            post(f, "/register", "smtp=p%d%%40example.org&alt=%s&csrf=%s", i, BM_OK, f->csrf),
            i < 3 ? 200 : 429);
    }
    assert_int_equal(f->sent.mails + p.sent.mails, 3);
    assert_int_equal(p.sent.mails, 1); /* the peer sends through its own sender */
    /* the peer caches the store version; a write through the other handler in the same
     * second still changes the peer's ETag (shared write generation) */
    f->h = p.h;
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/lookup?address=new%40example.org", 0, 0, 0), 200);
    assert_non_null(strstr(body(f), "\"alternatives\":[]"));
    char etag[64];
    snprintf(etag, sizeof etag, "%s", f->rs.etag);
    f->h = own;
    char add[256];
    snprintf(add, sizeof add, "{\"smtp\":\"new@example.org\",\"alt\":\"%s\"}", BM_OK);
    struct dir_http_req rq = {
        .method = DIR_M_POST,
        .path = "/api/v1/admin/records",
        .body = add,
        .body_len = strlen(add),
        .content_type = "application/json",
        .authorization = "Bearer admin-token-0123456789abcdef",
        .now = f->now,
    };
    assert_int_equal(dir_http_handle(own, &rq, &f->rs), 0);
    assert_int_equal(f->rs.status, 201);
    f->h = p.h;
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/lookup?address=new%40example.org", 0, "inm", etag),
                     200);
    assert_string_not_equal(f->rs.etag, etag);
    assert_non_null(strstr(body(f), BM_OK));
    /* the admin token holds on the peer too */
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records", 0, "auth",
                         "Bearer admin-token-0123456789abcdef"),
                     200);
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/admin/records", 0, "auth", "Bearer wrong"), 401);
    /* the parent may go first: the shared state lives until the last handler */
    f->h = own;
    dir_http_free(&f->h);
    f->h = p.h;
    assert_int_equal(req(f, DIR_M_GET, "/api/v1/lookup?address=new%40example.org", 0, 0, 0), 200);
    f->h = NULL;
    dir_http_free(&p.h);
    dir_store_close(&p.st);
    fx_free(&f);
}

struct hammer {
    struct dir_http *h;
    int64_t now;
    int ok, limited;
};

/* hammer - lookups and rate-limited posts through one handler from its own thread. */
static void *hammer(void *arg)
{
    struct hammer *m = arg;
    struct sockaddr_in peer = {.sin_family = AF_INET};
    for (int i = 0; i < 300; i++) {
        struct dir_http_resp rs;
        peer.sin_addr.s_addr = htonl(0xc6336400u + (uint32_t)(i % 50));
        struct dir_http_req rq = {
            .method = i % 3 ? DIR_M_GET : DIR_M_POST,
            .path = i % 3 ? "/api/v1/lookup" : "/remove",
            .query = "address=new%40example.org",
            .query_len = strlen("address=new%40example.org"),
            .body = "smtp=x",
            .body_len = 6,
            .content_type = "application/x-www-form-urlencoded",
            .peer = (const struct sockaddr *)&peer,
            .now = m->now,
        };
        if (dir_http_handle(m->h, &rq, &rs) != 0)
            return NULL;
        if (rs.status == 200)
            m->ok++;
        else if (rs.status == 403)
            m->limited++; /* no CSRF cookie: refused before the rate limit */
    }
    return NULL;
}

static void test_peers_threads(void **state)
{
    struct fx *f = fx_new(1000, 100);
    struct peer p[3];
    struct hammer m[4];
    pthread_t t[4];
    for (int i = 0; i < 3; i++)
        peer_new(f, &p[i]);
    for (int i = 0; i < 4; i++) {
        m[i] = (struct hammer){.h = i ? p[i - 1].h : f->h, .now = f->now};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &m[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(m[i].ok, 200);
        assert_int_equal(m[i].limited, 100);
    }
    for (int i = 0; i < 3; i++) {
        dir_http_free(&p[i].h);
        dir_store_close(&p[i].st);
    }
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_page),    cmocka_unit_test(test_full_flow),
        cmocka_unit_test(test_csrf),         cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_expired_link), cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_send_failure), cmocka_unit_test(test_admin),
        cmocka_unit_test(test_peers_share),  cmocka_unit_test(test_peers_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
