/*
 * test_maildir.c - Maildir names, CRLF conversion, idempotent delivery, batches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "lib/maildir.h"

#define QID "0192F3A4B5C6D7E8"

struct fx {
    char root[512];
    char content[600];
    int cfd;
};

/* set_content - write the "spool" file: a junk prefix (so content_off matters), then data. */
static void set_content(struct fx *f, const void *data, size_t len)
{
    if (f->cfd >= 0)
        close(f->cfd);
    f->cfd = open(f->content, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(f->cfd >= 0);
    assert_int_equal(write(f->cfd, "HEADER\n", 7), 7);
    assert_int_equal(write(f->cfd, data, len), (ssize_t)len);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");

    snprintf(f->root, sizeof(f->root), "%s/mdtest.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->content, sizeof(f->content), "%s/content", f->root);
    f->cfd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    if (f->cfd >= 0)
        close(f->cfd);
    tu_rm_rf(f->root);
    free(f);
    return 0;
}

static struct maildir_msg msg(struct fx *f, const char *maildir, unsigned idx, uint64_t len)
{
    struct maildir_msg m = {
        .maildir = maildir,
        .qid = QID,
        .qtime = 1764000000,
        .index = idx,
        .sender = "alice@example.org",
        .rcpt = "bob@example.net",
        .content_fd = f->cfd,
        .content_off = 7,
        .content_len = len,
    };
    return m;
}

static int count_dir(const char *dir, const char *sub, char *first, size_t firstsz)
{
    char path[4096];
    struct dirent *de;
    int n = 0;
    DIR *d;

    int len = snprintf(path, sizeof(path), "%s/%s", dir, sub);
    assert_true(len > 0 && (size_t)len < sizeof(path));
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n++ == 0 && first != NULL)
            snprintf(first, firstsz, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

static size_t read_file(const char *path, char *out, size_t outsz)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, out, outsz);
    close(fd);
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_names(void **state)
{
    char host[MAILDIR_HOST_MAX + 1], name[MAILDIR_NAME_MAX + 1];

    assert_int_equal(maildir_host_escape("mx.example.org", host, sizeof(host)), 0);
    assert_string_equal(host, "mx.example.org");
    assert_int_equal(maildir_name(name, sizeof(name), 1764000000, QID, 3, host, 0, 0), 0);
    assert_string_equal(name, "1764000000.Q0192F3A4B5C6D7E8R3.mx.example.org");
    assert_int_equal(maildir_name(name, sizeof(name), 1764000000, QID, 3, host, 1, 1234), 0);
    assert_string_equal(name, "1764000000.Q0192F3A4B5C6D7E8R3.mx.example.org,S=1234");
    assert_int_equal(maildir_name(name, 10, 1764000000, QID, 3, host, 1, 1234), PST_ELIMIT);
    assert_int_equal(maildir_name(name, sizeof(name), 1, "../x", 3, host, 1, 1), PST_EINVAL);
    assert_int_equal(maildir_name(name, sizeof(name), 1, QID, 3, "a/b", 1, 1), PST_EINVAL);
    assert_int_equal(maildir_host_escape("x", host, 10), PST_ELIMIT);
}

static void test_hostile_hostnames(void **state)
{
    char host[MAILDIR_HOST_MAX + 1], big[1000];

    assert_int_equal(maildir_host_escape("a/b:c", host, sizeof(host)), 0);
    assert_string_equal(host, "a\\057b\\072c");
    assert_int_equal(maildir_host_escape("../../etc", host, sizeof(host)), 0);
    assert_string_equal(host, "..\\057..\\057etc");
    assert_int_equal(maildir_host_escape("h,S=1\n\\", host, sizeof(host)), 0);
    assert_string_equal(host, "h\\054S=1\\012\\134");
    assert_int_equal(maildir_host_escape("caf\xc3\xa9 x", host, sizeof(host)), 0);
    assert_string_equal(host, "caf\\303\\251\\040x");
    assert_int_equal(maildir_host_escape("", host, sizeof(host)), 0);
    assert_string_equal(host, "unknown");
    assert_int_equal(maildir_host_escape(NULL, host, sizeof(host)), 0);
    assert_string_equal(host, "unknown");
    assert_int_equal(maildir_host_escape("..", host, sizeof(host)), 0);
    assert_string_equal(host, "unknown");
    memset(big, '/', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(maildir_host_escape(big, host, sizeof(host)), 0);
    assert_true(strlen(host) <= MAILDIR_HOST_MAX);
    assert_null(strchr(host, '/'));
    assert_int_equal(strlen(host) % 4, 0); /* never a cut escape */
}

static void test_create(void **state)
{
    struct fx *f = *state;
    char md[1024], path[1100];
    struct stat st;

    snprintf(md, sizeof(md), "%s/a/b/c/user", f->root);
    assert_int_equal(maildir_create(md), 0);
    assert_int_equal(maildir_create(md), 0); /* again: fine */
    snprintf(path, sizeof(path), "%s/new", md);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/cur", md);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/tmp", md);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(stat(md, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* a file in the way */
    snprintf(path, sizeof(path), "%s/file", f->root);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_not_equal(maildir_create(path), 0);
    assert_int_equal(maildir_create(""), PST_EINVAL);
}

static void test_crlf_and_content(void **state)
{
    struct fx *f = *state;
    static const char in[] = "Subject: x\r\n\r\nline1\r\nbare\rcr\r\n\r\nend\r";
    static const char want[] = "Return-Path: <alice@example.org>\n"
                               "Delivered-To: bob@example.net\n"
                               "Subject: x\n\nline1\nbare\rcr\n\nend\r";
    char md[600], name[300], path[1200], got[4096];
    uint64_t size = 0;

    snprintf(md, sizeof(md), "%s/u", f->root);
    assert_int_equal(maildir_create(md), 0);
    set_content(f, in, sizeof(in) - 1);
    struct maildir_msg m = msg(f, md, 0, sizeof(in) - 1);
    assert_int_equal(maildir_deliver(&m, "mx.example.org", &size), 0);
    assert_int_equal(size, sizeof(want) - 1);
    assert_int_equal(count_dir(md, "new", name, sizeof(name)), 1);
    assert_int_equal(count_dir(md, "tmp", NULL, 0), 0);
    char expect[300];
    snprintf(expect, sizeof(expect), "1764000000.Q" QID "R0.mx.example.org,S=%zu",
             sizeof(want) - 1);
    assert_string_equal(name, expect);
    snprintf(path, sizeof(path), "%s/new/%s", md, name);
    size_t n = read_file(path, got, sizeof(got));
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(got, want, n);
}

/* CR at the end of a 64 KiB read chunk followed by LF at the start of the next one. */
static void test_crlf_across_chunks(void **state)
{
    struct fx *f = *state;
    size_t len = 200000, i, o = 0;
    char *in = malloc(len), *want = malloc(len + 200), *got = malloc(len + 400);
    char md[600], name[300], path[1200];
    uint64_t size;

    for (i = 0; i < len; i++)
        in[i] = (char)('a' + i % 26);
    in[65535] = '\r';
    in[65536] = '\n';
    in[131071] = '\r';
    in[131072] = 'x';
    in[len - 1] = '\0';
    o = (size_t)snprintf(want, len, "Return-Path: <>\nDelivered-To: bob@example.net\n");
    for (i = 0; i < len; i++) {
        if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
            continue;
        want[o++] = in[i];
    }
    snprintf(md, sizeof(md), "%s/u", f->root);
    assert_int_equal(maildir_create(md), 0);
    set_content(f, in, len);
    struct maildir_msg m = msg(f, md, 1, len);
    m.sender = "";
    assert_int_equal(maildir_deliver(&m, "h", &size), 0);
    assert_int_equal(size, o);
    assert_int_equal(count_dir(md, "new", name, sizeof(name)), 1);
    snprintf(path, sizeof(path), "%s/new/%s", md, name);
    assert_int_equal(read_file(path, got, len + 400), o);
    assert_memory_equal(got, want, o);
    free(in);
    free(want);
    free(got);
}

static void test_idempotent(void **state)
{
    struct fx *f = *state;
    char md[600], path[1200], name[300];
    uint64_t s1 = 0, s2 = 0;

    snprintf(md, sizeof(md), "%s/u", f->root);
    assert_int_equal(maildir_create(md), 0);
    set_content(f, "hi\r\n", 4);
    struct maildir_msg m = msg(f, md, 2, 4);
    assert_int_equal(maildir_deliver(&m, "h", &s1), 0);
    assert_int_equal(maildir_deliver(&m, "h", &s2), 0);
    assert_int_equal(s1, s2);
    assert_int_equal(count_dir(md, "new", name, sizeof(name)), 1);

    /* simulated crash after link, before unlink of tmp: a stale tmp file */
    snprintf(path, sizeof(path), "%s/tmp/1764000000.Q" QID "R2.h", md);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_int_equal(write(fd, "partial", 7), 7);
    close(fd);
    assert_int_equal(maildir_deliver(&m, "h", &s2), 0);
    assert_int_equal(count_dir(md, "new", NULL, 0), 1);
    assert_int_equal(count_dir(md, "tmp", NULL, 0), 0);

    /* a different recipient index is a different file */
    m.index = 3;
    assert_int_equal(maildir_deliver(&m, "h", NULL), 0);
    assert_int_equal(count_dir(md, "new", NULL, 0), 2);
}

static void test_batch(void **state)
{
    struct fx *f = *state;
    char md[3][600];
    struct maildir_batch *b = maildir_batch_new("mx:1");
    size_t i;
    int idx;

    set_content(f, "body\r\n", 6);
    for (i = 0; i < 3; i++) {
        snprintf(md[i], sizeof(md[i]), "%s/user%zu", f->root, i);
        assert_int_equal(maildir_create(md[i]), 0);
    }
    for (i = 0; i < 30; i++) {
        struct maildir_msg m = msg(f, md[i % 3], (unsigned)i, 6);
        idx = maildir_batch_add(b, &m);
        assert_int_equal(idx, (int)i);
    }
    assert_int_equal(maildir_batch_count(b), 30);
    assert_int_equal(count_dir(md[0], "new", NULL, 0), 0);
    assert_int_equal(count_dir(md[0], "tmp", NULL, 0), 10);
    assert_int_equal(maildir_batch_result(b, 0, NULL, NULL), PST_EAGAIN);
    assert_int_equal(maildir_batch_commit(b), 0);
    assert_int_equal(maildir_batch_commit(b), PST_EINVAL);
    for (i = 0; i < 30; i++) {
        uint64_t size = 0;
        const char *name = NULL;
        assert_int_equal(maildir_batch_result(b, i, &size, &name), 0);
        assert_int_equal(size, strlen("Return-Path: <alice@example.org>\n"
                                      "Delivered-To: bob@example.net\nbody\n"));
        assert_non_null(strstr(name, ".mx\\0721,S="));
    }
    assert_int_equal(maildir_batch_result(b, 30, NULL, NULL), PST_EINVAL);
    maildir_batch_free(&b);
    assert_null(b);
    for (i = 0; i < 3; i++) {
        assert_int_equal(count_dir(md[i], "new", NULL, 0), 10);
        assert_int_equal(count_dir(md[i], "tmp", NULL, 0), 0);
    }
}

static void test_batch_free_uncommitted_and_bad_input(void **state)
{
    struct fx *f = *state;
    char md[600];
    struct maildir_batch *b = maildir_batch_new("h");

    snprintf(md, sizeof(md), "%s/u", f->root);
    assert_int_equal(maildir_create(md), 0);
    set_content(f, "x\r\n", 3);
    struct maildir_msg m = msg(f, md, 0, 3);
    assert_int_equal(maildir_batch_add(b, &m), 0);
    m.rcpt = "evil@x\nX-Injected: 1";
    assert_int_equal(maildir_batch_add(b, &m), PST_EINVAL);
    m.rcpt = "bob@example.net";
    m.sender = "a\r@b";
    assert_int_equal(maildir_batch_add(b, &m), PST_EINVAL);
    m.sender = "";
    m.qid = "../../x";
    assert_int_equal(maildir_batch_add(b, &m), PST_EINVAL);
    m.qid = QID;
    m.index = 1;
    m.content_len = 1000; /* longer than the file: truncated spool */
    assert_int_equal(maildir_batch_add(b, &m), PST_EIO);
    m.content_len = 3;
    m.maildir = "/nonexistent/maildir";
    assert_int_equal(maildir_batch_add(b, &m), PST_EIO);
    assert_int_equal(count_dir(md, "tmp", NULL, 0), 1);
    maildir_batch_free(&b);
    assert_int_equal(count_dir(md, "tmp", NULL, 0), 0);
    assert_int_equal(count_dir(md, "new", NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hostile_hostnames),
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_and_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_free_uncommitted_and_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
