/*
 * test_dir_client.c - the gateway's directory client against a tiny evhttp
 * server over TLS (a self-signed certificate made by tls_ensure_selfsigned)
 * in the same event loop: hit, miss, cache hit without network, negative
 * cache, expiry (a test clock), LRU eviction, timeout, refused connection,
 * wrong certificate name, garbage and hostile answers, oversized body,
 * server errors, coalescing of concurrent lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "bitmessage/bm_address.h"
#include "directory/dir_client.h"
#include "lib/tls.h"
#include "testutil.h"

#define SRV_NAME "dir.postern.test"

enum srv_mode {
    SRV_GOOD = 0, /* alice: one BM address (+ an unknown type); anyone else: [] */
    SRV_404,      /* 404 for everyone */
    SRV_HANG,     /* never answers */
    SRV_GARBAGE,  /* not JSON */
    SRV_BIG,      /* 200 with a body over DIR_CLIENT_BODY_MAX */
    SRV_503,      /* service unavailable */
    SRV_WRONG,    /* answers for another address */
    SRV_BADBM,    /* a BM address with a bad checksum */
    SRV_BADTYPES, /* alternatives is a string */
    SRV_DUPKEYS,  /* a key twice */
    SRV_TEAPOT,   /* 418 */
};

struct fx {
    char dir[512];
    char cert[600], key[600];
    struct event_base *base;
    struct evhttp *http;
    SSL_CTX *sctx;
    int port;
    enum srv_mode mode;
    int requests;
    char last_query[512];
    char bm[BM_ADDRESS_STR_MAX];
    char bad_bm[BM_ADDRESS_STR_MAX];
    struct dir_client *c;
    int64_t now;
    /* results */
    int calls, want;
    int rc[16];
    size_t n[16];
    bool cached[16];
    char alt0[16][DIR_ALT_MAX + 1];
    char type0[16][DIR_TYPE_MAX + 1];
    char smtp[16][DIR_SMTP_MAX + 1];
};

/* ---- the server ---- */

static void srv_reply(struct evhttp_request *req, int code, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(evbuffer_add(b, body, strlen(body)), 0);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
    evbuffer_free(b);
}

static void srv_handler(struct evhttp_request *req, void *arg)
{
    struct fx *f = arg;
    f->requests++;
    const char *uri = evhttp_request_get_uri(req);
    assert_non_null(uri);
    assert_int_equal(strncmp(uri, "/api/v1/lookup?", 15), 0);
    struct evkeyvalq q;
    assert_int_equal(evhttp_parse_query_str(uri + 15, &q), 0);
    const char *addr = evhttp_find_header(&q, "address");
    assert_non_null(addr);
    snprintf(f->last_query, sizeof(f->last_query), "%s", addr);
    char body[2048];
    switch (f->mode) {
    case SRV_GOOD:
        if (strcmp(addr, "alice@example.org") == 0)
            snprintf(body, sizeof(body),
                     "{\"address\":\"alice@example.org\",\"alternatives\":["
                     "{\"type\":\"bitmessage\",\"address\":\"%s\"},"
                     "{\"type\":\"carrier_pigeon\",\"address\":\"coop 7\"}],\"extra\":1}",
                     f->bm);
        else
            snprintf(body, sizeof(body), "{\"address\":\"%s\",\"alternatives\":[]}", addr);
        srv_reply(req, 200, body);
        break;
    case SRV_404:
        srv_reply(req, 404, "{\"error\":\"not found\"}");
        break;
    case SRV_HANG:
        break; /* the connection closes when the client gives up */
    case SRV_GARBAGE:
        srv_reply(req, 200, "{\"address\": \"alice@example.org\", \"alternatives\": [ <html>");
        break;
    case SRV_BIG: {
        size_t n = DIR_CLIENT_BODY_MAX + 4096;
        char *big = malloc(n + 1);
        assert_non_null(big);
        memset(big, ' ', n);
        big[0] = '{';
        big[n - 1] = '}';
        big[n] = '\0';
        srv_reply(req, 200, big);
        free(big);
        break;
    }
    case SRV_503:
        srv_reply(req, 503, "{}");
        break;
    case SRV_WRONG:
        snprintf(body, sizeof(body),
                 "{\"address\":\"mallory@example.org\",\"alternatives\":["
                 "{\"type\":\"bitmessage\",\"address\":\"%s\"}]}",
                 f->bm);
        srv_reply(req, 200, body);
        break;
    case SRV_BADBM:
        snprintf(body, sizeof(body),
                 "{\"address\":\"%s\",\"alternatives\":["
                 "{\"type\":\"bitmessage\",\"address\":\"%s\"}]}",
                 addr, f->bad_bm);
        srv_reply(req, 200, body);
        break;
    case SRV_BADTYPES:
        snprintf(body, sizeof(body), "{\"address\":\"%s\",\"alternatives\":\"BM-x\"}", addr);
        srv_reply(req, 200, body);
        break;
    case SRV_DUPKEYS:
        snprintf(body, sizeof(body),
                 "{\"address\":\"%s\",\"alternatives\":[],\"alternatives\":["
                 "{\"type\":\"bitmessage\",\"address\":\"%s\"}]}",
                 addr, f->bm);
        srv_reply(req, 200, body);
        break;
    case SRV_TEAPOT:
        srv_reply(req, 418, "{}");
        break;
    }
    evhttp_clear_headers(&q);
}

static struct bufferevent *srv_bevcb(struct event_base *base, void *arg)
{
    struct fx *f = arg;
    SSL *ssl = SSL_new(f->sctx);
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

static void srv_start(struct fx *f)
{
    f->http = evhttp_new(f->base);
    assert_non_null(f->http);
    evhttp_set_bevcb(f->http, srv_bevcb, f);
    evhttp_set_gencb(f->http, srv_handler, f);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
}

static void srv_stop(struct fx *f)
{
    if (f->http != NULL)
        evhttp_free(f->http);
    f->http = NULL;
}

/* ---- fixture ---- */

static int64_t test_clock(void *arg)
{
    return ((struct fx *)arg)->now;
}

static void make_bm(char *out, uint8_t seed)
{
    bm_address_t a = {.version = 4, .stream = 1};
    for (size_t i = 0; i < BM_RIPE_LEN; i++)
        a.ripe[i] = (uint8_t)(seed * 17 + i + 1);
    assert_int_equal(bm_address_encode(&a, out, BM_ADDRESS_STR_MAX), 0);
}

static void client_new(struct fx *f, const char *verify, int port, int64_t timeout,
                       size_t cache_max)
{
    char url[128];
    snprintf(url, sizeof(url), "https://%s:%d/", SRV_NAME, port);
    struct dir_client_params p = {
        .url = url,
        .connect_host = "127.0.0.1",
        .ca_file = f->cert,
        .verify_name = verify,
        .timeout = timeout,
        .cache_ttl = 300,
        .negative_ttl = 60,
        .cache_max = cache_max,
    };
    dir_client_free(&f->c);
    assert_int_equal(dir_client_new(f->base, &p, &f->c), 0);
    dir_client_set_clock(f->c, test_clock, f);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/dircli.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    if (tls_ensure_selfsigned(f->cert, f->key, SRV_NAME) != 0)
        return -1;
    f->sctx = tls_server_ctx_new(f->cert, f->key, "1.2");
    f->base = event_base_new();
    if (f->sctx == NULL || f->base == NULL)
        return -1;
    make_bm(f->bm, 3);
    memcpy(f->bad_bm, f->bm, sizeof(f->bm));
    size_t n = strlen(f->bad_bm);
    f->bad_bm[n - 2] = f->bad_bm[n - 2] == 'z' ? 'y' : 'z';
    f->now = 1000;
    srv_start(f);
    client_new(f, NULL, f->port, 5, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    dir_client_free(&f->c);
    srv_stop(f);
    event_base_free(f->base);
    SSL_CTX_free(f->sctx);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- driving ---- */

static void on_result(void *arg, int rc, const struct dir_client_result *res)
{
    struct fx *f = arg;
    int i = f->calls++;
    assert_true(i < 16);
    f->rc[i] = rc;
    if (rc == 0) {
        assert_non_null(res);
        f->n[i] = res->n;
        f->cached[i] = res->cached;
        snprintf(f->smtp[i], sizeof(f->smtp[i]), "%s", res->smtp);
        f->alt0[i][0] = f->type0[i][0] = '\0';
        if (res->n > 0) {
            snprintf(f->alt0[i], sizeof(f->alt0[i]), "%s", res->alt[0].address);
            snprintf(f->type0[i], sizeof(f->type0[i]), "%s", res->alt[0].type);
        }
    } else {
        assert_null(res);
    }
    if (f->calls >= f->want)
        event_base_loopbreak(f->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    fail_msg("the event loop ran past its deadline");
}

/* run - dispatch until `want` callbacks in total have come. */
static void run(struct fx *f, int want)
{
    f->want = want;
    struct event *dl = evtimer_new(f->base, on_deadline, f);
    struct timeval tv = {.tv_sec = 30};
    assert_int_equal(evtimer_add(dl, &tv), 0);
    while (f->calls < want)
        assert_true(event_base_loop(f->base, EVLOOP_ONCE) >= 0);
    event_free(dl);
}

static void lookup(struct fx *f, const char *addr)
{
    assert_int_equal(dir_client_lookup(f->c, addr, on_result, f), 0);
}

/* ---- tests ---- */

static void test_hit_then_cache_without_network(void **state)
{
    struct fx *f = *state;
    lookup(f, "Alice@EXAMPLE.org");
    assert_int_equal(f->calls, 0); /* never called from inside dir_client_lookup */
    run(f, 1);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->n[0], 1); /* the unknown type was skipped */
    assert_string_equal(f->type0[0], "bitmessage");
    assert_string_equal(f->alt0[0], f->bm);
    assert_string_equal(f->smtp[0], "alice@example.org");
    assert_false(f->cached[0]);
    assert_string_equal(f->last_query, "alice@example.org");
    assert_int_equal(f->requests, 1);
    srv_stop(f); /* no network from here on */
    lookup(f, "alice@example.org");
    assert_int_equal(f->calls, 1);
    run(f, 2);
    assert_int_equal(f->rc[1], 0);
    assert_true(f->cached[1]);
    assert_string_equal(f->alt0[1], f->bm);
    struct dir_client_stats st;
    dir_client_stats(f->c, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cached, 1);
}

static void test_miss_negative_cache_and_expiry(void **state)
{
    struct fx *f = *state;
    lookup(f, "bob@example.org");
    run(f, 1);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->n[0], 0);
    lookup(f, "bob@example.org");
    run(f, 2);
    assert_int_equal(f->n[1], 0);
    assert_true(f->cached[1]);
    assert_int_equal(f->requests, 1);
    f->now += 59; /* negative_ttl is 60 */
    lookup(f, "bob@example.org");
    run(f, 3);
    assert_true(f->cached[2]);
    assert_int_equal(f->requests, 1);
    f->now += 1;
    lookup(f, "bob@example.org");
    run(f, 4);
    assert_false(f->cached[3]);
    assert_int_equal(f->requests, 2);
    /* a positive answer lives for cache_ttl (300) */
    lookup(f, "alice@example.org");
    run(f, 5);
    f->now += 299;
    lookup(f, "alice@example.org");
    run(f, 6);
    assert_true(f->cached[5]);
    assert_int_equal(f->requests, 3);
    f->now += 1;
    lookup(f, "alice@example.org");
    run(f, 7);
    assert_false(f->cached[6]);
    assert_int_equal(f->n[6], 1);
    assert_int_equal(f->requests, 4);
    dir_client_cache_clear(f->c);
    lookup(f, "alice@example.org");
    run(f, 8);
    assert_int_equal(f->requests, 5);
}

static void test_404_is_negative(void **state)
{
    struct fx *f = *state;
    f->mode = SRV_404;
    lookup(f, "carol@example.org");
    run(f, 1);
    assert_int_equal(f->rc[0], 0);
    assert_int_equal(f->n[0], 0);
}

static void test_coalescing(void **state)
{
    struct fx *f = *state;
    lookup(f, "alice@example.org");
    lookup(f, "ALICE@example.org");
    lookup(f, "alice@Example.Org");
    lookup(f, "bob@example.org");
    lookup(f, "alice@example.org");
    run(f, 5);
    assert_int_equal(f->requests, 2);
    int alice = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f->rc[i], 0);
        alice += f->n[i] == 1;
    }
    assert_int_equal(alice, 4);
    struct dir_client_stats st;
    dir_client_stats(f->c, &st);
    assert_int_equal(st.coalesced, 3);
}

static void test_lru_eviction(void **state)
{
    struct fx *f = *state;
    client_new(f, NULL, f->port, 5, 2);
    lookup(f, "a@example.org");
    lookup(f, "b@example.org");
    run(f, 2);
    lookup(f, "a@example.org"); /* a is now the most recent */
    run(f, 3);
    assert_true(f->cached[2]);
    lookup(f, "c@example.org"); /* evicts b */
    run(f, 4);
    assert_int_equal(f->requests, 3);
    lookup(f, "a@example.org");
    run(f, 5);
    assert_true(f->cached[4]);
    lookup(f, "b@example.org");
    run(f, 6);
    assert_false(f->cached[5]);
    assert_int_equal(f->requests, 4);
}

static void expect_error(struct fx *f, enum srv_mode mode, int want_rc)
{
    f->mode = mode;
    int base = f->calls;
    lookup(f, "alice@example.org");
    run(f, base + 1);
    assert_int_equal(f->rc[base], want_rc);
    /* errors are never cached: the next lookup asks again */
    int reqs = f->requests;
    lookup(f, "alice@example.org");
    run(f, base + 2);
    assert_int_equal(f->rc[base + 1], want_rc);
    if (mode != SRV_HANG)
        assert_int_equal(f->requests, reqs + 1);
}

static void test_timeout(void **state)
{
    struct fx *f = *state;
    client_new(f, NULL, f->port, 1, 0);
    expect_error(f, SRV_HANG, PST_EAGAIN);
}

static void test_server_errors(void **state)
{
    struct fx *f = *state;
    expect_error(f, SRV_503, PST_EAGAIN);
}

static void test_garbage_json(void **state)
{
    struct fx *f = *state;
    expect_error(f, SRV_GARBAGE, PST_EINVAL);
}

static void test_oversized_body(void **state)
{
    struct fx *f = *state;
    expect_error(f, SRV_BIG, PST_EINVAL);
}

static void test_hostile_answers(void **state)
{
    struct fx *f = *state;
    expect_error(f, SRV_WRONG, PST_EINVAL);
    expect_error(f, SRV_BADBM, PST_EINVAL);
    expect_error(f, SRV_BADTYPES, PST_EINVAL);
    expect_error(f, SRV_DUPKEYS, PST_EINVAL);
    expect_error(f, SRV_TEAPOT, PST_EINVAL);
}

static void test_refused(void **state)
{
    struct fx *f = *state;
    int port = f->port;
    srv_stop(f);
    client_new(f, NULL, port, 5, 0);
    lookup(f, "alice@example.org");
    run(f, 1);
    assert_int_equal(f->rc[0], PST_EAGAIN);
}

static void test_wrong_certificate_name(void **state)
{
    struct fx *f = *state;
    client_new(f, "other.postern.test", f->port, 5, 0);
    lookup(f, "alice@example.org");
    run(f, 1);
    assert_int_equal(f->rc[0], PST_EAGAIN);
    /* a certificate from a CA we do not trust */
    char url[128];
    snprintf(url, sizeof(url), "https://%s:%d", SRV_NAME, f->port);
    struct dir_client_params p = {.url = url,
                                  .connect_host = "127.0.0.1",
                                  .ca_file = NULL, /* the system's CAs */
                                  .timeout = 5};
    dir_client_free(&f->c);
    assert_int_equal(dir_client_new(f->base, &p, &f->c), 0);
    lookup(f, "alice@example.org");
    run(f, 2);
    assert_int_equal(f->rc[1], PST_EAGAIN);
    assert_int_equal(f->requests, 0);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    static const char *bad[] = {"",
                                "no-at-sign",
                                "@example.org",
                                "a@",
                                "a b@example.org",
                                "\"q\"@example.org",
                                "a@exa mple.org"};
    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++)
        assert_int_equal(dir_client_lookup(f->c, bad[i], on_result, f), PST_EINVAL);
    char big[DIR_SMTP_MAX + 50];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[10] = '@';
    assert_true(dir_client_lookup(f->c, big, on_result, f) < 0);
    assert_int_equal(dir_client_lookup(f->c, NULL, on_result, f), PST_EINVAL);
    assert_int_equal(f->calls, 0);
    /* bad URLs */
    static const char *urls[] = {"http://dir.example",
                                 "https://",
                                 "dir.example",
                                 "https://u@dir.example/",
                                 "https://dir.example/?q=1",
                                 "https://dir.example/#f"};
    for (size_t i = 0; i < PST_ARRAY_LEN(urls); i++) {
        struct dir_client_params p = {.url = urls[i], .timeout = 5};
        struct dir_client *c = NULL;
        assert_int_equal(dir_client_new(f->base, &p, &c), PST_EINVAL);
        assert_null(c);
    }
    struct dir_client_params p = {
        .url = "https://dir.example", .ca_file = "/nonexistent.pem", .timeout = 5};
    struct dir_client *c = NULL;
    assert_int_equal(dir_client_new(f->base, &p, &c), PST_ETLS);
}

static void test_free_with_pending(void **state)
{
    struct fx *f = *state;
    f->mode = SRV_HANG;
    lookup(f, "alice@example.org");
    lookup(f, "bob@example.org");
    assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
    f->mode = SRV_GOOD;
    lookup(f, "carol@example.org");
    dir_client_free(&f->c); /* no callbacks, no leaks */
    assert_null(f->c);
    assert_int_equal(f->calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hit_then_cache_without_network, setup, teardown),
        cmocka_unit_test_setup_teardown(test_miss_negative_cache_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_is_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_certificate_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
