/*
 * test_config.c - unit tests for src/lib/config.c: embedded defaults, each
 * value type, errors naming file:line and key, unknown and duplicate keys,
 * ranges, lists with continuation lines, files on disk, cfg_dump round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lib/config.h"

static char err[512];

static struct cfg *load(const char *text)
{
    err[0] = '\0';
    return cfg_load_string(text, "test.ini", err, sizeof(err));
}

/* expect_error - text must fail and the message must contain want. */
static void expect_error(const char *text, const char *want)
{
    struct cfg *c = load(text);

    if (c != NULL) {
        cfg_free(&c);
        fail_msg("accepted: %s", text);
    }
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' lacks '%s' for input: %s", err, want, text);
}

static void test_queue_dns_client_defaults(void **state)
{
    struct cfg *c = cfg_load_string("", "t.ini", err, sizeof(err));

    assert_non_null(c);
    assert_int_equal(c->first_retry, 300);
    assert_int_equal(c->max_retry_interval, 4000);
    assert_int_equal(c->max_queue_lifetime, 5 * 86400);
    assert_int_equal(c->delay_warning, 4 * 3600);
    assert_int_equal(c->dest_concurrency, 10);
    assert_string_equal(c->transport_map, "");
    assert_int_equal(c->dns_resolver.n, 0);
    assert_int_equal(c->client_smtp_port, 25);
    assert_string_equal(c->client_tls_policy, "may");
    assert_string_equal(c->client_auth_file, "");
    cfg_free(&c);

    c = cfg_load_string("[dns]\nresolver = 127.0.0.1@5353, ::1@53\n[client]\ntls_policy = verify\n"
                        "smtp_port = 2526\n[queue]\ndelay_warning = 0\n",
                        "t.ini", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->dns_resolver.n, 2);
    assert_string_equal(c->dns_resolver.v[0], "127.0.0.1@5353");
    assert_string_equal(c->client_tls_policy, "verify");
    assert_int_equal(c->client_smtp_port, 2526);
    assert_int_equal(c->delay_warning, 0);
    cfg_free(&c);

    assert_null(cfg_load_string("[client]\ntls_policy = sometimes\n", "t.ini", err, sizeof(err)));
    assert_non_null(strstr(err, "tls_policy"));
    assert_null(cfg_load_string("[client]\nsmtp_port = 0\n", "t.ini", err, sizeof(err)));
    assert_null(cfg_load_string("[tls]\ntls_cert =\n", "t.ini", err, sizeof(err)));
}

static void test_bitmessage_pop3_keys(void **state)
{
    struct cfg *c = cfg_load_string("", "t.ini", err, sizeof(err));

    assert_non_null(c);
    assert_int_equal(c->bm_enable, 1);
    assert_string_equal(c->bm_listen, "127.0.0.1:8444");
    assert_int_equal(c->bm_peers.n, 0); /* connects nowhere unless told */
    assert_int_equal(c->bm_ttl, 4 * 86400);
    assert_int_equal(c->bm_nonce_trials, 1000);
    assert_string_equal(c->pop3_listen, "127.0.0.1:1100");
    assert_int_equal(c->pop3_plain_loopback, 0);
    assert_int_equal(c->pop3_apop, 0);
    assert_non_null(strstr(c->pop3_upstream_key, "/pop3-upstream.key"));
    cfg_free(&c);

    c = cfg_load_string("[bitmessage]\npeers = 127.0.0.1:8445 [::1]:8446 node.example:8444\n"
                        "trusted_peers_only = yes\nttl = 1h\n",
                        "t.ini", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->bm_peers.n, 3);
    assert_string_equal(c->bm_peers.v[1], "[::1]:8446");
    assert_int_equal(c->bm_trusted_only, 1);
    assert_int_equal(c->bm_ttl, 3600);
    cfg_free(&c);

    static const char *const bad[] = {
        "[bitmessage]\npeers = 127.0.0.1\n",           "[bitmessage]\npeers = 127.0.0.1:0\n",
        "[bitmessage]\npeers = 127.0.0.1:70000\n",     "[bitmessage]\npeers = [::1:8444\n",
        "[bitmessage]\npeers = bad_host:1\n",          "[bitmessage]\nttl = 60\n",
        "[bitmessage]\nnonce_trials_per_byte = 999\n", "[pop3]\ncommand_line_limit = 100\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(cfg_load_string(bad[i], "t.ini", err, sizeof(err)));
        assert_non_null(strstr(err, "t.ini:2:"));
    }
}

static void test_embedded_defaults(void **state)
{
    char cwd[4096], want[4200];
    struct cfg *c = cfg_load(NULL, err, sizeof(err));

    assert_non_null(c);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_non_null(c->hostname);
    assert_true(c->hostname[0] != '\0');
    snprintf(want, sizeof(want), "%s/var", cwd);
    assert_string_equal(c->var_dir, want);
    snprintf(want, sizeof(want), "%s/var/tls/cert.pem", cwd);
    assert_string_equal(c->tls_cert, want);
    snprintf(want, sizeof(want), "%s/var/tls/key.pem", cwd);
    assert_string_equal(c->tls_key, want);
    snprintf(want, sizeof(want), "%s/var/mail", cwd);
    assert_string_equal(c->mail_dir, want);
    snprintf(want, sizeof(want), "%s/var/spool", cwd);
    assert_string_equal(c->spool_dir, want);
    snprintf(want, sizeof(want), "%s/var/postern.db", cwd);
    assert_string_equal(c->db_path, want);
    snprintf(want, sizeof(want), "%s/var/run", cwd);
    assert_string_equal(c->run_dir, want);
    assert_null(c->config_path);
    assert_string_equal(c->run_user, "postern");
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->log_target, "stderr");
    assert_int_equal(c->restart_delay, 1);
    assert_string_equal(c->tls_min_version, "1.2");
    assert_string_equal(c->smtp_listen, "127.0.0.1:2525");
    assert_string_equal(c->submission_listen, "127.0.0.1:5870");
    assert_string_equal(c->smtps_listen, "127.0.0.1:4650");
    assert_string_equal(c->banner, "ESMTP Postern");
    assert_int_equal(c->command_line_limit, 2048);
    assert_int_equal(c->data_line_limit, 1000);
    assert_int_equal(c->message_size_limit, 10 * 1024 * 1024);
    assert_int_equal(c->max_recipients, 100);
    assert_int_equal(c->max_errors, 10);
    assert_int_equal(c->command_timeout, 300);
    assert_int_equal(c->data_timeout, 600);
    assert_int_equal(c->max_connections, 1000);
    assert_int_equal(c->max_connections_per_ip, 50);
    assert_false(c->vrfy);
    assert_true(c->starttls);
    assert_true(c->auth_requires_tls);
    assert_int_equal(c->trusted_networks.n, 0);
    assert_true(c->local_domains.n >= 1);
    assert_string_equal(c->local_domains.v[0], "localhost");
    assert_true(cfg_is_local_domain(c, "localhost"));
    assert_true(cfg_is_local_domain(c, c->hostname));
    assert_int_equal(c->queue_scan_interval, 60);
    assert_int_equal(c->delivery_batch, 64);
    cfg_free(&c);
    assert_null(c);
    cfg_free(&c);
}

static void test_empty_string_is_defaults(void **state)
{
    struct cfg *c = load("; only a comment\n\n# another\n");

    assert_non_null(c);
    assert_int_equal(c->max_recipients, 100);
    cfg_free(&c);
}

static void test_types(void **state)
{
    struct cfg *c = load("[server]\n"
                         "hostname = mx.example.org\n"
                         "var_dir = /srv/postern\n"
                         "log_level = DEBUG\n"
                         "restart_delay = 2m\n"
                         "[smtpd]\n"
                         "banner = Hello there ; trailing comment\n"
                         "message_size_limit = 25m\n"
                         "command_line_limit = 4K\n"
                         "max_recipients = 500\n"
                         "command_timeout = 1h\n"
                         "data_timeout = 90s\n"
                         "vrfy = yes\n"
                         "starttls = off\n"
                         "auth_requires_tls = FALSE\n"
                         "smtps_listen =\n"
                         "smtp_listen = [::1]:25\n"
                         "[queue]\n"
                         "queue_scan_interval = 1\n");

    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->hostname, "mx.example.org");
    assert_string_equal(c->var_dir, "/srv/postern");
    assert_string_equal(c->spool_dir, "/srv/postern/spool");
    assert_string_equal(c->tls_cert, "/srv/postern/tls/cert.pem");
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(c->restart_delay, 120);
    assert_string_equal(c->banner, "Hello there");
    assert_int_equal(c->message_size_limit, 25 * 1024 * 1024);
    assert_int_equal(c->command_line_limit, 4096);
    assert_int_equal(c->max_recipients, 500);
    assert_int_equal(c->command_timeout, 3600);
    assert_int_equal(c->data_timeout, 90);
    assert_true(c->vrfy);
    assert_false(c->starttls);
    assert_false(c->auth_requires_tls);
    assert_string_equal(c->smtps_listen, "");
    assert_string_equal(c->smtp_listen, "[::1]:25");
    assert_int_equal(c->queue_scan_interval, 1);
    /* hostname set: local_domains default follows it */
    assert_true(cfg_is_local_domain(c, "MX.Example.ORG"));
    assert_true(cfg_is_local_domain(c, "mx.example.org."));
    assert_true(cfg_is_local_domain(c, "localhost"));
    assert_false(cfg_is_local_domain(c, "example.org"));
    assert_false(cfg_is_local_domain(c, ""));
    assert_false(cfg_is_local_domain(c, "."));
    cfg_free(&c);
}

static void test_relative_paths(void **state)
{
    char cwd[4096], want[4200];
    struct cfg *c = load("[server]\nvar_dir = ./data/\n[tls]\ntls_cert = certs/c.pem\n");

    if (c == NULL)
        fail_msg("%s", err);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/data", cwd);
    assert_string_equal(c->var_dir, want);
    snprintf(want, sizeof(want), "%s/certs/c.pem", cwd);
    assert_string_equal(c->tls_cert, want);
    snprintf(want, sizeof(want), "%s/data/tls/key.pem", cwd);
    assert_string_equal(c->tls_key, want);
    cfg_free(&c);
}

static void test_lists(void **state)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    struct cfg *c = load("[smtpd]\n"
                         "trusted_networks = 10.0.0.0/8, 192.168.1.0/24\n"
                         "    2001:db8::/32   ; v6\n"
                         "\t127.0.0.1\n"
                         "max_errors = 3\n"
                         "[local]\n"
                         "local_domains = Example.org,example.net  mail.example.com\n");

    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->trusted_networks.n, 4);
    assert_string_equal(c->trusted_networks.v[2], "2001:db8::/32");
    assert_string_equal(c->trusted_networks.v[3], "127.0.0.1");
    assert_int_equal(c->max_errors, 3);
    assert_int_equal(c->local_domains.n, 3);
    assert_true(cfg_is_local_domain(c, "example.ORG"));
    assert_true(cfg_is_local_domain(c, "mail.example.com"));
    assert_false(cfg_is_local_domain(c, "localhost")); /* replaced, not added to */

    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &s4.sin_addr);
    assert_true(cfg_is_trusted(c, (struct sockaddr *)&s4));
    inet_pton(AF_INET, "192.168.2.1", &s4.sin_addr);
    assert_false(cfg_is_trusted(c, (struct sockaddr *)&s4));
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
    assert_true(cfg_is_trusted(c, (struct sockaddr *)&s6));
    inet_pton(AF_INET6, "2001:db8:1::5", &s6.sin6_addr);
    assert_true(cfg_is_trusted(c, (struct sockaddr *)&s6));
    inet_pton(AF_INET6, "2001:db9::5", &s6.sin6_addr);
    assert_false(cfg_is_trusted(c, (struct sockaddr *)&s6));
    cfg_free(&c);

    c = load("[smtpd]\ntrusted_networks =\n");
    assert_non_null(c);
    assert_int_equal(c->trusted_networks.n, 0);
    cfg_free(&c);
}

static void test_list_too_many(void **state)
{
    char text[8192];
    size_t pos, i;

    pos = (size_t)snprintf(text, sizeof(text), "[smtpd]\ntrusted_networks = 10.0.0.1\n");
    for (i = 2; i <= CFG_MAX_LIST + 1; i++)
        pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "  10.0.0.%zu\n", i);
    expect_error(text, "more than 64 items");
}

static void test_errors_name_file_line_key(void **state)
{
    expect_error("[smtpd]\nvrfy = maybe\n", "test.ini:2: [smtpd] vrfy: 'maybe' is not a boolean");
    expect_error("[smtpd]\n\n\nmax_recipients = 0\n",
                 "test.ini:4: [smtpd] max_recipients: 0 out of range 1..10000");
    expect_error("[smtpd]\nmax_recipients = 10001\n", "out of range");
    expect_error("[smtpd]\nmax_recipients = 12abc\n", "test.ini:2: [smtpd] max_recipients:");
    expect_error("[smtpd]\nmax_recipients = -5\n", "not a number");
    expect_error("[smtpd]\nmax_recipients = 99999999999999999999999\n", "too large");
    expect_error("[smtpd]\nmessage_size_limit = 10T\n", "bad number or suffix");
    expect_error("[smtpd]\nmessage_size_limit = 10MB\n", "bad number or suffix");
    expect_error("[smtpd]\nmessage_size_limit = 1023\n", "out of range");
    expect_error("[smtpd]\nmessage_size_limit = 3G\n", "out of range");
    expect_error("[smtpd]\nmessage_size_limit = 9999999999999999999G\n", "too large");
    expect_error("[smtpd]\nmessage_size_limit = 9000000000G\n", "too large");
    expect_error("[smtpd]\ncommand_timeout = 5x\n", "s, m, h, d allowed");
    expect_error("[smtpd]\ncommand_timeout = 9s\n", "out of range 10..3600");
    expect_error("[smtpd]\ncommand_timeout = 2h\n", "out of range");
    expect_error("[smtpd]\ncommand_line_limit = 511\n", "out of range 512..65536");
    expect_error("[smtpd]\ndata_line_limit = 999\n", "out of range 1000..1000000");
    expect_error("[smtpd]\nmax_errors = 1001\n", "out of range 1..1000");
    expect_error("[smtpd]\nmax_connections = 0\n", "out of range 1..100000");
    expect_error("[smtpd]\nmax_connections_per_ip = 100001\n", "out of range");
    expect_error("[queue]\ndelivery_batch = 1025\n", "out of range 1..1024");
    expect_error("[queue]\nqueue_scan_interval = 0\n", "out of range 1..3600");
    expect_error("[server]\nrestart_delay = 301\n", "out of range 0..300");
    expect_error("[smtpd]\nsmtp_listen = mail.example:25\n", "test.ini:2: [smtpd] smtp_listen:");
    expect_error("[smtpd]\nsmtp_listen = 127.0.0.1:0\n", "port 0");
    expect_error("[smtpd]\nsubmission_listen = 127.0.0.1\n", "submission_listen");
    expect_error("[smtpd]\ntrusted_networks = 10.0.0.0/8 300.1.1.1\n",
                 "test.ini:2: [smtpd] trusted_networks: '300.1.1.1'");
    expect_error("[smtpd]\ntrusted_networks = 10.0.0.0/8\n  10.0.0.1/8\n",
                 "test.ini:3: [smtpd] trusted_networks:");
    expect_error("[smtpd]\ntrusted_networks = 10.0.0.0/33\n", "not a valid network");
    expect_error("[server]\nlog_level = loud\n", "not one of debug|info|warn|error");
    expect_error("[server]\nlog_target = file\n", "log_target");
    expect_error("[tls]\ntls_min_version = 1.1\n", "not one of 1.2|1.3");
    expect_error("[server]\nhostname = bad_host\n", "not a valid domain");
    expect_error("[server]\nhostname =\n", "empty value");
    expect_error("[server]\nrun_user = -root\n", "not a valid user name");
    expect_error("[server]\nvar_dir =\n", "empty path");
    expect_error("[local]\nlocal_domains = example.org, -bad.example\n", "not a valid domain");
    expect_error("[smtpd]\nbanner = a\x01"
                 "b\n",
                 "control character");
}

static void test_unknown_and_duplicate(void **state)
{
    expect_error("[smtpd]\nvrfy = no\nbogus_key = 1\n",
                 "test.ini:3: [smtpd] bogus_key: unknown key");
    expect_error("[smptd]\nvrfy = no\n", "test.ini:2: [smptd] vrfy: unknown section");
    expect_error("vrfy = no\n", "test.ini:1: key outside any [section]");
    expect_error("[smtpd]\nvrfy = no\n[queue]\n[smtpd]\nVRFY = yes\n",
                 "test.ini:5: [smtpd] VRFY: duplicate key (first set on line 2)");
    expect_error("[smtpd]\nmax_errors = 5\n  6\n", "test.ini:3: [smtpd] max_errors: indented");
    /* keys in the wrong section are unknown there */
    expect_error("[queue]\nvrfy = no\n", "[queue] vrfy: unknown key");
}

static void test_syntax_errors(void **state)
{
    expect_error("[smtpd]\nthis line has no equals\n", "test.ini:2: syntax error");
    expect_error("[smtpd\nvrfy = yes\n", "test.ini:1: syntax error");
    /* the first error wins, whatever its kind */
    expect_error("[smtpd]\nvrfy = perhaps\njunk\n", "test.ini:2: [smtpd] vrfy");
    expect_error("[smtpd]\njunk\nvrfy = perhaps\n", "test.ini:2: syntax error");
}

static void test_long_line(void **state)
{
    char text[2048];
    size_t pos = (size_t)snprintf(text, sizeof(text), "[smtpd]\nbanner = ");

    memset(text + pos, 'x', 600);
    memcpy(text + pos + 600, "\nvrfy = yes\n", sizeof("\nvrfy = yes\n"));
    expect_error(text, "test.ini:2: line longer than");
}

static void test_indentation_rules(void **state)
{
    /* indented section headers and comments are what they look like */
    struct cfg *c = load("[smtpd]\n"
                         "trusted_networks = 10.0.0.0/8\n"
                         "  ; a comment, not a list item\n"
                         "  [queue]\n"
                         "  delivery_batch = 8\n"
                         "\n"
                         "[local]\n"
                         "  mail_dir = /m\n");

    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->trusted_networks.n, 1);
    assert_int_equal(c->delivery_batch, 8);
    assert_string_equal(c->mail_dir, "/m");
    cfg_free(&c);
}

static void test_crlf_and_bom(void **state)
{
    struct cfg *c = load("\xef\xbb\xbf[smtpd]\r\nvrfy = on\r\nmax_errors = 7\r\n");

    if (c == NULL)
        fail_msg("%s", err);
    assert_true(c->vrfy);
    assert_int_equal(c->max_errors, 7);
    cfg_free(&c);
}

static void test_hostile_inputs(void **state)
{
    static const char *const bad[] = {
        "[",
        "]",
        "=",
        "[]\n=\n",
        "[smtpd]\n=yes\n",
        "[smtpd]\nvrfy\n",
        "[smtpd]\n\x01=\x02\n",
        "[smtpd]\nbanner = \x1b[31m\n",
        "[smtpd]\nmax_errors = 1\r5\n",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cfg *c = load(bad[i]);
        if (c != NULL) {
            cfg_free(&c);
            fail_msg("accepted hostile input #%zu", i);
        }
        assert_true(err[0] != '\0');
        for (const char *p = err; *p; p++)
            assert_true((unsigned char)*p >= 0x20); /* errors are safe to print */
    }
}

/* tmpdir - $TMPDIR or /tmp */
static const char *tmpdir(void)
{
    const char *d = getenv("TMPDIR");
    return d != NULL && d[0] != '\0' ? d : "/tmp";
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_file_load_and_dump(void **state)
{
    char dir[4096], path[4200], dump[4300];
    const char *text = "[smtpd]\nmax_recipients = 42\ntrusted_networks = 10.0.0.0/8 ::1\n"
                       "[local]\nlocal_domains = a.example b.example\n";
    struct cfg *c, *c2;
    FILE *f;
    int fd;

    snprintf(dir, sizeof(dir), "%s/postern-cfg-XXXXXX", tmpdir());
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/postern.ini", dir);
    write_file(path, text, strlen(text));
    c = cfg_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->max_recipients, 42);
    assert_string_equal(c->config_path, path);

    /* dump, reload the dump, compare */
    snprintf(dump, sizeof(dump), "%s/dump.ini", dir);
    f = fopen(dump, "w");
    assert_non_null(f);
    fd = fileno(f);
    assert_int_equal(cfg_dump(c, fd), 0);
    assert_int_equal(fclose(f), 0);
    c2 = cfg_load(dump, err, sizeof(err));
    if (c2 == NULL)
        fail_msg("dump does not reload: %s", err);
    assert_int_equal(c2->max_recipients, 42);
    assert_int_equal(c2->trusted_networks.n, 2);
    assert_int_equal(c2->local_domains.n, 2);
    assert_string_equal(c2->hostname, c->hostname);
    assert_string_equal(c2->var_dir, c->var_dir);
    assert_string_equal(c2->tls_key, c->tls_key);
    assert_int_equal(c2->message_size_limit, c->message_size_limit);
    cfg_free(&c2);
    cfg_free(&c);
    unlink(dump);

    /* errors carry the file name */
    write_file(path, "[smtpd]\nvrfy = sometimes\n", 25);
    c = cfg_load(path, err, sizeof(err));
    assert_null(c);
    snprintf(dump, sizeof(dump), "%s:2: [smtpd] vrfy:", path);
    assert_non_null(strstr(err, dump));

    /* NUL byte in a file */
    write_file(path, "[smtpd]\nvrfy = y\0es\n", 20);
    c = cfg_load(path, err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, ":2: NUL byte"));

    unlink(path);
    c = cfg_load(path, err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "cannot open"));
    c = cfg_load(dir, err, sizeof(err)); /* a directory */
    assert_null(c);
    assert_int_equal(rmdir(dir), 0);
}

static void test_dump_bad_fd(void **state)
{
    struct cfg *c = cfg_load(NULL, err, sizeof(err));

    assert_non_null(c);
    assert_int_equal(cfg_dump(c, -1), PST_EIO);
    assert_int_equal(cfg_dump(NULL, 1), PST_EINVAL);
    cfg_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_defaults),
        cmocka_unit_test(test_queue_dns_client_defaults),
        cmocka_unit_test(test_bitmessage_pop3_keys),
        cmocka_unit_test(test_empty_string_is_defaults),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_list_too_many),
        cmocka_unit_test(test_errors_name_file_line_key),
        cmocka_unit_test(test_unknown_and_duplicate),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_indentation_rules),
        cmocka_unit_test(test_crlf_and_bom),
        cmocka_unit_test(test_hostile_inputs),
        cmocka_unit_test(test_file_load_and_dump),
        cmocka_unit_test(test_dump_bad_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
