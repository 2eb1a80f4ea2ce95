/*
 * test_dir_import.c - CSV and XML importers: the seed's formats, RFC 4180
 * quoting, CRLF and BOM, and hostile files (huge fields, billion laughs,
 * deep nesting, bad checksums, duplicates), all-or-nothing and --partial,
 * on a temporary SQLite directory store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitmessage/bm_address.h"
#include "directory/dir_import.h"
#include "directory/dir_store.h"
#include "testutil.h"

#define T0 1700000000

struct fx {
    char dir[512];
    char db[600];
    char file[600];
    struct dir_store *st;
    char bm[4][BM_ADDRESS_STR_MAX];  /* valid addresses */
    char bad_bm[BM_ADDRESS_STR_MAX]; /* bm[0] with one character changed: checksum fails */
    unsigned long rej_lines[64];
    const char *rej_why[64];
    size_t nrej;
};

static void make_bm(char *out, uint8_t seed)
{
    bm_address_t a = {.version = 4, .stream = 1};
    for (size_t i = 0; i < BM_RIPE_LEN; i++)
        a.ripe[i] = (uint8_t)(seed * 31 + i + 1);
    assert_int_equal(bm_address_encode(&a, out, BM_ADDRESS_STR_MAX), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/dirimp.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/state.db", f->dir);
    if (dir_store_open_sqlite(f->db, &f->st) != 0)
        return -1;
    for (uint8_t i = 0; i < 4; i++)
        make_bm(f->bm[i], (uint8_t)(i + 1));
    memcpy(f->bad_bm, f->bm[0], sizeof(f->bad_bm));
    size_t n = strlen(f->bad_bm);
    f->bad_bm[n - 1] = f->bad_bm[n - 1] == 'a' ? 'b' : 'a';
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    dir_store_close(&f->st);
    tu_rm_rf(f->dir);
    free(f);
    return 0;
}

static void on_reject(unsigned long line, const char *why, const char *smtp, void *arg)
{
    struct fx *f = arg;
    assert_non_null(why);
    assert_non_null(smtp);
    if (f->nrej < 64) {
        f->rej_lines[f->nrej] = line;
        f->rej_why[f->nrej] = why;
        f->nrej++;
    }
}

/* run_import - write text (len bytes) to a file named name and import it. */
static int run_import(struct fx *f, const char *name, const char *text, size_t len, bool partial,
                      struct dir_import_report *rep)
{
    snprintf(f->file, sizeof(f->file), "%s/%s", f->dir, name);
    FILE *fp = fopen(f->file, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    struct dir_import_opts o = {.partial = partial, .now = T0, .on_reject = on_reject, .arg = f};
    f->nrej = 0;
    return dir_import_file(f->st, f->file, &o, rep);
}

static int count_cb(const struct dir_record *r, void *arg)
{
    assert_int_equal(r->state, DIR_LIVE);
    assert_string_equal(r->source, "import");
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_live(struct fx *f)
{
    size_t n = 0;
    assert_int_equal(dir_store_list(f->st, DIR_LIVE, 0, 0, count_cb, &n), 0);
    return n;
}

struct found {
    const char *alt;
    int hit;
};

static int find_cb(const struct dir_record *r, void *arg)
{
    struct found *x = arg;
    if (strcmp(r->alt, x->alt) == 0)
        x->hit++;
    return 0;
}

static int has(struct fx *f, const char *smtp, const char *alt)
{
    struct found x = {alt, 0};
    assert_int_equal(dir_store_lookup(f->st, smtp, find_cb, &x), 0);
    return x.hit;
}

/* ---- CSV ---- */

static void test_csv_header_three_columns(void **state)
{
    struct fx *f = *state;
    char text[2048];
    int n = snprintf(text, sizeof(text),
                     "smtp_address,type,alternative_address\r\n"
                     "alice@Example.ORG,bitmessage,%s\r\n"
                     "\"bob@example.org\",\"Bitmessage\",\"%s\"\r\n"
                     "carol@example.org, bitmessage , %s\r\n"
                     "\r\n"
                     "dave@example.org,dmail,dmail://mail.example.org/inbox\r\n",
                     f->bm[0], f->bm[1], f->bm[2]);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "a.csv", text, (size_t)n, false, &rep), 0);
    assert_int_equal(rep.rows, 4);
    assert_int_equal(rep.accepted, 4);
    assert_int_equal(rep.rejected, 0);
    assert_true(rep.committed);
    assert_int_equal(count_live(f), 4);
    assert_true(has(f, "alice@example.org", f->bm[0]));
    assert_true(has(f, "bob@example.org", f->bm[1]));
    assert_true(has(f, "dave@example.org", "dmail://mail.example.org/inbox"));
}

static void test_csv_seed_two_columns_bom_lf(void **state)
{
    struct fx *f = *state;
    char text[2048];
    int n = snprintf(text, sizeof(text),
                     "\xEF\xBB\xBFsmtp_address,bitmessage_address\n"
                     "alice@example.org,%s\n"
                     "bob@example.org,%s",
                     f->bm[0], f->bm[1]); /* no newline at the end */
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "seed.csv", text, (size_t)n, false, &rep), 0);
    assert_int_equal(rep.accepted, 2);
    assert_true(rep.committed);
    assert_true(has(f, "bob@example.org", f->bm[1]));
}

static void test_csv_no_header(void **state)
{
    struct fx *f = *state;
    char text[2048];
    int n = snprintf(text, sizeof(text), "alice@example.org,%s\nbob@example.org,%s\n", f->bm[0],
                     f->bm[1]);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "nohdr.csv", text, (size_t)n, false, &rep), 0);
    assert_int_equal(rep.accepted, 2);
    n = snprintf(text, sizeof(text), "carol@example.org,bitmessage,%s\n", f->bm[2]);
    assert_int_equal(run_import(f, "nohdr3.csv", text, (size_t)n, false, &rep), 0);
    assert_int_equal(rep.accepted, 1);
    assert_int_equal(count_live(f), 3);
}

static void test_csv_quoted_multiline_and_line_numbers(void **state)
{
    struct fx *f = *state;
    char text[2048];
    /* row at line 2 has a quoted field spanning two lines and an escaped quote: rejected;
     * the next row starts on line 4 */
    int n = snprintf(text, sizeof(text),
                     "smtp_address,bitmessage_address\n"
                     "\"a\"\"b\nc@example.org\",%s\n"
                     "x@example.org,\"%s\" \n",
                     f->bm[0], f->bm[1]);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "q.csv", text, (size_t)n, true, &rep), 0);
    assert_int_equal(rep.rows, 2);
    assert_int_equal(rep.accepted, 1);
    assert_int_equal(rep.rejected, 1);
    assert_int_equal(f->rej_lines[0], 2);
    assert_true(rep.committed);
    assert_true(has(f, "x@example.org", f->bm[1]));
}

static void test_csv_hostile_rows(void **state)
{
    struct fx *f = *state;
    size_t big = 100000;
    char *text = malloc(big + 4096);
    assert_non_null(text);
    size_t n = 0;
    n += (size_t)sprintf(text + n, "smtp_address,bitmessage_address\n"); /* line 1 */
    n += (size_t)sprintf(text + n, "ok@example.org,%s\n", f->bm[0]);     /* 2 */
    memset(text + n, 'a', big);                                          /* 3: huge field */
    n += big;
    n += (size_t)sprintf(text + n, "@example.org,%s\n", f->bm[1]);
    n += (size_t)sprintf(text + n, "nul@exa"); /* 4: NUL byte */
    text[n++] = '\0';
    n += (size_t)sprintf(text + n, "mple.org,%s\n", f->bm[1]);
    n += (size_t)sprintf(text + n, "st\"ray@example.org,%s\n", f->bm[1]);    /* 5 */
    n += (size_t)sprintf(text + n, "\"after\"x@example.org,%s\n", f->bm[1]); /* 6 */
    n += (size_t)sprintf(text + n, "a,b,c,d,e,f,g,h,i,j\n");                 /* 7 */
    n += (size_t)sprintf(text + n, "bad@example.org,%s\n", f->bad_bm);       /* 8: checksum */
    n += (size_t)sprintf(text + n, "two@example.org\n");                     /* 9: one column */
    n += (size_t)sprintf(text + n, "'; DROP TABLE x;--@example.org,%s\n", f->bm[1]); /* 10 */
    n += (size_t)sprintf(text + n, "open@example.org,\"%s\n", f->bm[2]); /* 11: never closed */
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "h.csv", text, n, false, &rep), 0);
    free(text);
    assert_int_equal(rep.accepted, 1);
    assert_int_equal(rep.rejected, 9);
    assert_false(rep.committed);
    assert_int_equal(count_live(f), 0); /* all or nothing */
    unsigned long want[] = {3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (size_t i = 0; i < PST_ARRAY_LEN(want); i++)
        assert_int_equal(f->rej_lines[i], want[i]);
    assert_true(rep.nreasons >= 5);
    uint64_t sum = 0;
    for (size_t i = 0; i < rep.nreasons; i++)
        sum += rep.reasons[i].count;
    assert_int_equal(sum, rep.rejected);
}

static void test_csv_bad_checksum_partial(void **state)
{
    struct fx *f = *state;
    char text[2048];
    int n = snprintf(text, sizeof(text), "a@example.org,%s\nb@example.org,%s\nc@example.org,%s\n",
                     f->bm[0], f->bad_bm, f->bm[2]);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "p.csv", text, (size_t)n, false, &rep), 0);
    assert_false(rep.committed);
    assert_int_equal(rep.rejected, 1);
    assert_int_equal(f->rej_lines[0], 2);
    assert_int_equal(count_live(f), 0);
    assert_int_equal(run_import(f, "p.csv", text, (size_t)n, true, &rep), 0);
    assert_true(rep.committed);
    assert_int_equal(rep.accepted, 2);
    assert_int_equal(count_live(f), 2);
    assert_false(has(f, "b@example.org", f->bad_bm));
}

static void test_csv_duplicates(void **state)
{
    struct fx *f = *state;
    char text[2048];
    int n = snprintf(text, sizeof(text), "a@example.org,%s\nA@EXAMPLE.org,%s\na@example.org,%s\n",
                     f->bm[0], f->bm[0], f->bm[1]);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "d.csv", text, (size_t)n, false, &rep), 0);
    assert_false(rep.committed);
    assert_int_equal(rep.rejected, 1);
    assert_int_equal(f->rej_lines[0], 2);
    assert_int_equal(run_import(f, "d.csv", text, (size_t)n, true, &rep), 0);
    assert_int_equal(count_live(f), 2); /* many-to-many: a has two alternatives */
    /* the same file again: everything is already listed */
    assert_int_equal(run_import(f, "d.csv", text, (size_t)n, true, &rep), 0);
    assert_int_equal(rep.accepted, 0);
    assert_int_equal(rep.rejected, 3);
    assert_int_equal(count_live(f), 2);
}

static void test_csv_bad_header(void **state)
{
    struct fx *f = *state;
    static const char *bad[] = {
        "smtp_address,frobnicate\nx@example.org,y\n",
        "smtp_address,type\nx@example.org,bitmessage\n",
        "smtp_address,smtp_address,bitmessage_address\n",
        "one,two,three,four\n",
    };
    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++) {
        struct dir_import_report rep;
        assert_int_equal(run_import(f, "bh.csv", bad[i], strlen(bad[i]), true, &rep), PST_EINVAL);
        assert_false(rep.committed);
        assert_true(rep.error[0] != '\0');
        assert_int_equal(rep.error_line, 1);
    }
    assert_int_equal(count_live(f), 0);
}

static void test_csv_empty(void **state)
{
    struct fx *f = *state;
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "e.csv", "", 0, false, &rep), 0);
    assert_int_equal(rep.rows, 0);
    assert_true(rep.committed);
    assert_int_equal(run_import(f, "e2.csv", "\xEF\xBB", 2, false, &rep), PST_EINVAL);
}

/* ---- XML ---- */

static void test_xml_seed(void **state)
{
    struct fx *f = *state;
    char text[4096];
    int n = snprintf(text, sizeof(text),
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                     "<xml>\n"
                     "  <record><smtp_address>alice@example.org</smtp_address>"
                     "<bitmessage_address>%s</bitmessage_address></record>\n"
                     "  <record id=\"7\">\n"
                     "    <smtp_address> bob@Example.org </smtp_address>\n"
                     "    <bitmessage_address>%s</bitmessage_address>\n"
                     "    <dmail_address>dmail://mail.example.org/bob</dmail_address>\n"
                     "    <!-- a comment -->\n"
                     "  </record>\n"
                     "  <record><smtp_address>c&#64;example.org</smtp_address>"
                     "<bitmessage_address><![CDATA[%s]]></bitmessage_address></record>\n"
                     "</xml>\n",
                     f->bm[0], f->bm[1], f->bm[2]);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "seed.xml", text, (size_t)n, false, &rep), 0);
    assert_int_equal(rep.rows, 4);
    assert_int_equal(rep.accepted, 4);
    assert_true(rep.committed);
    assert_true(has(f, "bob@example.org", "dmail://mail.example.org/bob"));
    assert_true(has(f, "c@example.org", f->bm[2]));
}

static void test_xml_bad_records(void **state)
{
    struct fx *f = *state;
    char *text = malloc(8192);
    assert_non_null(text);
    char longf[DIR_IMPORT_FIELD_MAX + 10];
    memset(longf, 'x', sizeof(longf) - 1);
    longf[sizeof(longf) - 1] = '\0';
    int n = snprintf(text, 8192,
                     "<xml>\n"
                     "<record><smtp_address>ok@example.org</smtp_address>"
                     "<bitmessage_address>%s</bitmessage_address></record>\n" /* 2 */
                     "<record><smtp_address>b@example.org</smtp_address>"
                     "<bitmessage_address>%s</bitmessage_address></record>\n" /* 3: checksum */
                     "<record><smtp_address>%s</smtp_address>"
                     "<bitmessage_address>%s</bitmessage_address></record>\n" /* 4: long */
                     "<record><smtp_address>c@example.org</smtp_address>"
                     "<evil>1</evil><bitmessage_address>%s</bitmessage_address></record>\n" /* 5 */
                     "<record><smtp_address>d@example.org<b>x</b></smtp_address>"
                     "<bitmessage_address>%s</bitmessage_address></record>\n"         /* 6 */
                     "<record><bitmessage_address>%s</bitmessage_address></record>\n" /* 7 */
                     "<record><smtp_address>e@example.org</smtp_address></record>\n"  /* 8 */
                     "<other/>\n"                                                     /* 9 */
                     "<record><smtp_address>&lt;f&gt;@example.org</smtp_address>"
                     "<bitmessage_address>%s</bitmessage_address></record>\n" /* 10 */
                     "</xml>\n",
                     f->bm[0], f->bad_bm, longf, f->bm[1], f->bm[1], f->bm[1], f->bm[1], f->bm[1]);
    assert_true(n > 0 && n < 8192);
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "bad.xml", text, (size_t)n, false, &rep), 0);
    assert_int_equal(rep.accepted, 1);
    assert_int_equal(rep.rejected, 8);
    assert_false(rep.committed);
    assert_int_equal(count_live(f), 0);
    for (unsigned long i = 0; i < 8; i++)
        assert_int_equal(f->rej_lines[i], i + 3);
    assert_int_equal(run_import(f, "bad.xml", text, (size_t)n, true, &rep), 0);
    assert_true(rep.committed);
    assert_int_equal(count_live(f), 1);
    free(text);
}

static void test_xml_billion_laughs(void **state)
{
    struct fx *f = *state;
    const char *text = "<?xml version=\"1.0\"?>\n"
                       "<!DOCTYPE xml [\n"
                       " <!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
                       " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
                       " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
                       " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
                       " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
                       "]>\n"
                       "<xml><record><smtp_address>&e;@example.org</smtp_address>"
                       "<bitmessage_address>x</bitmessage_address></record></xml>\n";
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "bl.xml", text, strlen(text), true, &rep), PST_EINVAL);
    assert_string_equal(rep.error, "DOCTYPE not allowed");
    assert_int_equal(rep.error_line, 2);
    assert_false(rep.committed);
    /* an external entity without a DOCTYPE is merely undefined */
    const char *ext = "<xml><record><smtp_address>&xxe;</smtp_address></record></xml>";
    assert_int_equal(run_import(f, "xxe.xml", ext, strlen(ext), true, &rep), PST_EINVAL);
    assert_int_equal(count_live(f), 0);
}

static void test_xml_deep_nesting(void **state)
{
    struct fx *f = *state;
    size_t depth = 100000;
    char *text = malloc(depth * 7 + 64);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "<xml><record>");
    for (size_t i = 0; i < depth; i++)
        n += (size_t)sprintf(text + n, "<a>");
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "deep.xml", text, n, true, &rep), PST_ELIMIT);
    assert_false(rep.committed);
    free(text);
}

static void test_xml_malformed(void **state)
{
    struct fx *f = *state;
    static const char *bad[] = {
        "<xml><record></xml>",
        "not xml at all",
        "<xml>",
        "<root></root>",
        "<xml></xml><xml/>",
        "<xml><record><smtp_address>a@b.c</smtp_address></record>\x01</xml>",
    };
    for (size_t i = 0; i < PST_ARRAY_LEN(bad); i++) {
        struct dir_import_report rep;
        assert_int_equal(run_import(f, "m.xml", bad[i], strlen(bad[i]), true, &rep), PST_EINVAL);
        assert_true(rep.error[0] != '\0');
    }
    struct dir_import_report rep;
    assert_int_equal(run_import(f, "empty.xml", "<xml/>", 6, false, &rep), 0);
    assert_int_equal(rep.rows, 0);
}

/* ---- the parser alone, fed one byte at a time ---- */

struct rows {
    size_t good, bad;
    char last_alt[DIR_IMPORT_FIELD_MAX + 1];
    unsigned long last_line;
};

static int rows_good(const struct dir_import_row *r, void *arg)
{
    struct rows *x = arg;
    x->good++;
    assert_int_equal(strlen(r->alt), r->alt_len);
    assert_int_equal(strlen(r->smtp), r->smtp_len);
    memcpy(x->last_alt, r->alt, r->alt_len + 1);
    x->last_line = r->line;
    return 0;
}

static int rows_bad(unsigned long line, const char *why, void *arg)
{
    ((struct rows *)arg)->bad++;
    return 0;
}

static void feed_bytewise(enum dir_import_format fmt, const char *text, struct rows *x)
{
    struct dir_import_parser *p = dir_import_parser_new(fmt, rows_good, rows_bad, x);
    assert_non_null(p);
    for (size_t i = 0; text[i]; i++)
        assert_int_equal(dir_import_parser_feed(p, text + i, 1), 0);
    assert_int_equal(dir_import_parser_finish(p), 0);
    dir_import_parser_free(&p);
    assert_null(p);
}

static void test_parser_bytewise(void **state)
{
    (void)state;
    struct rows x = {0};
    feed_bytewise(DIR_IMPORT_CSV,
                  "\xEF\xBB\xBFsmtp_address,type,alternative_address\r\n"
                  "a@b.c,dmail,\"dmail://h/\"\"q\"\"\"\r\n"
                  "\r\n\r\n"
                  "d@e.f,x,\"multi\r\nline\"\r\n"
                  "g@h.i,x,last\r\n",
                  &x);
    assert_int_equal(x.good, 3);
    assert_int_equal(x.bad, 0);
    assert_string_equal(x.last_alt, "last");
    assert_int_equal(x.last_line, 7);
    memset(&x, 0, sizeof(x));
    feed_bytewise(DIR_IMPORT_XML,
                  "<xml>\n<record><smtp_address>a@b.c</smtp_address>\n"
                  "<dmail_address>dmail://h/&amp;</dmail_address></record>\n</xml>",
                  &x);
    assert_int_equal(x.good, 1);
    assert_string_equal(x.last_alt, "dmail://h/&");
    assert_int_equal(x.last_line, 2);
}

static int rows_stop(const struct dir_import_row *r, void *arg)
{
    return PST_EDB;
}

static void test_parser_callback_stops(void **state)
{
    (void)state;
    const char *csv = "a@b.c,x\nd@e.f,y\n";
    struct dir_import_parser *p = dir_import_parser_new(DIR_IMPORT_CSV, rows_stop, NULL, NULL);
    assert_int_equal(dir_import_parser_feed(p, csv, strlen(csv)), PST_EDB);
    assert_int_equal(dir_import_parser_feed(p, csv, strlen(csv)), PST_EDB);
    dir_import_parser_free(&p);
    const char *xml = "<xml><record><smtp_address>a</smtp_address>"
                      "<dmail_address>b</dmail_address></record></xml>";
    p = dir_import_parser_new(DIR_IMPORT_XML, rows_stop, NULL, NULL);
    assert_int_equal(dir_import_parser_feed(p, xml, strlen(xml)), PST_EDB);
    dir_import_parser_free(&p);
}

static void test_format_guess(void **state)
{
    (void)state;
    assert_int_equal(dir_import_format_guess("x.XML", "a,b", 3), DIR_IMPORT_XML);
    assert_int_equal(dir_import_format_guess("x.csv", "<xml>", 5), DIR_IMPORT_CSV);
    assert_int_equal(dir_import_format_guess("x", "\xEF\xBB\xBF  <xml>", 10), DIR_IMPORT_XML);
    assert_int_equal(dir_import_format_guess("x", "a@b,c", 5), DIR_IMPORT_CSV);
    assert_int_equal(dir_import_format_guess(NULL, "", 0), DIR_IMPORT_CSV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csv_header_three_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_seed_two_columns_bom_lf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_no_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_quoted_multiline_and_line_numbers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_csv_hostile_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_bad_checksum_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_bad_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_billion_laughs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_deep_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_malformed, setup, teardown),
        cmocka_unit_test(test_parser_bytewise),
        cmocka_unit_test(test_parser_callback_stops),
        cmocka_unit_test(test_format_guess),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
