/*
 * test_qmgr.c - queue manager delivery passes: Maildir contents, spool
 * removal, idempotence across repeated passes and simulated crashes, unknown
 * users, remote recipients, malformed spool files, and the wake-up socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "lib/log.h"
#include "lib/maildir.h"
#include "lib/spool.h"
#include "lib/userdb.h"
#include "queue/qmgr.h"

#include <event2/event.h>

struct fx {
    char root[400];
    char maildir_alice[600];
    char maildir_bob[600];
    struct cfg *cfg;
    struct qmgr *q;
};

static struct cfg *load_cfg(const char *root, int batch)
{
    char text[2048], err[512];
    struct cfg *c;

    snprintf(text, sizeof(text),
             "[server]\nhostname = mx.example.org\nvar_dir = %s/var\n"
             "[local]\nlocal_domains = example.org, localhost\nmail_dir = %s/mail\n"
             "[queue]\ndelivery_batch = %d\nqueue_scan_interval = 3600\nfirst_retry = 600\n"
             "[dns]\nresolver = 127.0.0.1@9\ndns_timeout = 1\n",
             root, root, batch);
    c = cfg_load_string(text, "test", err, sizeof(err));
    if (c == NULL)
        fprintf(stderr, "cfg: %s\n", err);
    return c;
}

static int setup_batch(void **state, int batch)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");
    struct userdb *u = NULL;
    char var[500];

    log_init("test_qmgr", LOG_LVL_ERROR, LOG_TO_STDERR);
    snprintf(f->root, sizeof(f->root), "%s/qmgrtest.XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(var, sizeof(var), "%s/var", f->root);
    if (mkdir(var, 0700) != 0)
        return -1;
    f->cfg = load_cfg(f->root, batch);
    if (f->cfg == NULL || spool_init(f->cfg->spool_dir) != 0)
        return -1;
    if (userdb_open(f->cfg->db_path, &u) != 0 || userdb_add(u, "alice", "pw-a") != 0 ||
        userdb_add(u, "bob", "pw-b") != 0)
        return -1;
    userdb_close(&u);
    snprintf(f->maildir_alice, sizeof(f->maildir_alice), "%s/alice", f->cfg->mail_dir);
    snprintf(f->maildir_bob, sizeof(f->maildir_bob), "%s/bob", f->cfg->mail_dir);
    if (qmgr_new(f->cfg, &f->q) != 0)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_batch(state, 64);
}

static int setup_small_batch(void **state)
{
    return setup_batch(state, 3);
}

static int teardown(void **state)
{
    struct fx *f = *state;

    qmgr_free(&f->q);
    cfg_free(&f->cfg);
    tu_rm_rf(f->root);
    free(f);
    return 0;
}

/* put - commit a message to the spool; returns its env (caller frees). */
static struct spool_env *put(struct fx *f, const char *sender, const char *const *rcpts,
                             const char *content)
{
    struct spool_env *env = spool_env_new();
    struct spool_writer *w = NULL;

    env->sender = strdup(sender);
    env->client = strdup("192.0.2.7");
    env->proto = strdup("ESMTP");
    for (; *rcpts != NULL; rcpts++)
        assert_int_equal(spool_env_add_rcpt(env, *rcpts, NULL, 0), 0);
    assert_int_equal(spool_writer_open(f->cfg->spool_dir, env, &w), 0);
    assert_int_equal(spool_writer_write(w, content, strlen(content)), 0);
    assert_int_equal(spool_writer_commit_sync(&w), 0);
    return env;
}

static int count(const char *dir, const char *sub)
{
    char path[1024];
    struct dirent *de;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* read_only_file - the content and name of the single file in dir/new. */
static size_t read_only_file(const char *maildir, char *name, size_t namesz, char *out,
                             size_t outsz)
{
    char path[1400];
    struct dirent *de;
    DIR *d;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/new", maildir);
    d = opendir(path);
    assert_non_null(d);
    name[0] = '\0';
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            snprintf(name, namesz, "%s", de->d_name);
    closedir(d);
    assert_true(name[0] != '\0');
    snprintf(path, sizeof(path), "%s/new/%s", maildir, name);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, out, outsz);
    close(fd);
    assert_true(n >= 0);
    return (size_t)n;
}

static void test_local_delivery(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"alice@example.org", "BOB@Example.ORG", NULL};
    static const char content[] = "Received: from x\r\nSubject: hi\r\n\r\nbody\r\nbare\rcr\r\n";
    struct spool_env *env = put(f, "carol@remote.net", rcpts, content);
    struct qmgr_pass_stats st;
    char name[300], want_name[300], got[1024], want[1024];
    size_t n;
    int wn;

    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.messages, 1);
    assert_int_equal(st.delivered, 2);
    assert_int_equal(st.removed, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.deferred, 0);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 0);

    /* alice: byte for byte */
    wn = snprintf(want, sizeof(want),
                  "Return-Path: <carol@remote.net>\nDelivered-To: alice@example.org\n"
                  "Received: from x\nSubject: hi\n\nbody\nbare\rcr\n");
    n = read_only_file(f->maildir_alice, name, sizeof(name), got, sizeof(got));
    assert_int_equal(n, (size_t)wn);
    assert_memory_equal(got, want, n);
    snprintf(want_name, sizeof(want_name), "%lld.Q%sR0.mx.example.org,S=%d", (long long)env->time,
             env->qid, wn);
    assert_string_equal(name, want_name);
    assert_int_equal(count(f->maildir_alice, "tmp"), 0);

    /* bob: upper-case address, lower-case mailbox, index 1 */
    wn = snprintf(want, sizeof(want),
                  "Return-Path: <carol@remote.net>\nDelivered-To: BOB@Example.ORG\n"
                  "Received: from x\nSubject: hi\n\nbody\nbare\rcr\n");
    n = read_only_file(f->maildir_bob, name, sizeof(name), got, sizeof(got));
    assert_int_equal(n, (size_t)wn);
    assert_memory_equal(got, want, n);
    snprintf(want_name, sizeof(want_name), "%lld.Q%sR1.mx.example.org,S=%d", (long long)env->time,
             env->qid, wn);
    assert_string_equal(name, want_name);

    /* a second pass has nothing to do and duplicates nothing */
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.messages, 0);
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    assert_int_equal(count(f->maildir_bob, "new"), 1);
    spool_env_free(&env);
}

static void test_crash_after_publish(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"alice@example.org", NULL};
    static const char content[] = "Subject: once\r\n\r\nonly once\r\n";
    struct spool_env *env = put(f, "", rcpts, content);
    char path[1200];
    uint64_t clen;
    int fd;

    /* simulate: an earlier qmgr published into new/ and died before spool_remove */
    struct spool_env *got = NULL;
    assert_int_equal(spool_open(f->cfg->spool_dir, env->qid, &got, &fd, &clen), 0);
    assert_int_equal(maildir_create(f->maildir_alice), 0);
    struct maildir_msg m = {
        .maildir = f->maildir_alice,
        .qid = env->qid,
        .qtime = env->time,
        .index = 0,
        .sender = "",
        .rcpt = "alice@example.org",
        .content_fd = fd,
        .content_off = (uint64_t)lseek(fd, 0, SEEK_CUR),
        .content_len = clen,
    };
    assert_int_equal(maildir_deliver(&m, "mx.example.org", NULL), 0);
    close(fd);
    spool_env_free(&got);
    /* and left its tmp file behind too */
    snprintf(path, sizeof(path), "%s/tmp/%lld.Q%sR0.mx.example.org", f->maildir_alice,
             (long long)env->time, env->qid);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(count(f->maildir_alice, "new"), 1);

    struct qmgr_pass_stats st;
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.removed, 1);
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    assert_int_equal(count(f->maildir_alice, "tmp"), 0);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 0);

    char name[300], buf[512];
    size_t n = read_only_file(f->maildir_alice, name, sizeof(name), buf, sizeof(buf));
    static const char want[] = "Return-Path: <>\nDelivered-To: alice@example.org\n"
                               "Subject: once\n\nonly once\n";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(buf, want, n);
    spool_env_free(&env);
}

struct find_dsn {
    const char *dir;
    int n;
    char qid[SPOOL_QID_LEN + 1];
};

static int find_dsn_cb(void *arg, const char *qid)
{
    struct find_dsn *fd = arg;
    fd->n++;
    memcpy(fd->qid, qid, sizeof(fd->qid));
    return 0;
}

static void test_unknown_user_and_bad_names(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"ghost@example.org", "../etc@example.org",
                                        "\"a/b\"@localhost", "alice@EXAMPLE.org.", NULL};
    struct spool_env *env = put(f, "x@y.z", rcpts, "Subject: s\r\n\r\nb\r\n");
    struct qmgr_pass_stats st;

    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.failed, 3);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.removed, 1);
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    assert_int_equal(count(f->cfg->mail_dir, ""), 1); /* only alice's Maildir exists */

    /* the three failures produced one DSN to the sender, with the null envelope sender */
    struct find_dsn fd = {f->cfg->spool_dir, 0, ""};
    assert_int_equal(spool_scan(f->cfg->spool_dir, find_dsn_cb, &fd), 0);
    assert_int_equal(fd.n, 1);
    assert_string_not_equal(fd.qid, env->qid);
    struct spool_env *dsn = NULL;
    int fdsn = -1;
    uint64_t len = 0;
    assert_int_equal(spool_open(f->cfg->spool_dir, fd.qid, &dsn, &fdsn, &len), 0);
    assert_string_equal(dsn->sender, "");
    assert_int_equal(dsn->nrcpt, 1);
    assert_string_equal(dsn->rcpt[0].addr, "x@y.z");
    char *body = calloc(1, len + 1);
    assert_int_equal(read(fdsn, body, len), (ssize_t)len);
    assert_non_null(strstr(body, "multipart/report"));
    assert_non_null(strstr(body, "Final-Recipient: rfc822; ghost@example.org"));
    assert_non_null(strstr(body, "Status: 5.1.1"));
    free(body);
    close(fdsn);
    spool_env_free(&dsn);
    spool_env_free(&env);
}

static void test_remote_recipient_deferred(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"alice@example.org", "dave@remote.example", NULL};
    struct spool_env *env = put(f, "x@y.z", rcpts, "Subject: s\r\n\r\nb\r\n");
    struct qmgr_pass_stats st;

    /* the local copy is delivered at once; the remote one goes to the SMTP transport */
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.removed, 0);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 1);
    assert_int_equal(count(f->maildir_alice, "new"), 1);

    /* while its delivery runs, a new pass leaves the message alone */
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.messages, 0);

    /* the resolver does not answer: after dns_timeout the message is deferred, not bounced */
    for (int i = 0; i < 40 && count(f->cfg->spool_dir, "deferred") == 0; i++)
        event_base_loop(qmgr_base(f->q), EVLOOP_ONCE);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 0);
    assert_int_equal(count(f->cfg->spool_dir, "deferred"), 1);

    /* a restarted qmgr knows alice's copy is done (state file) and the retry is not due yet */
    qmgr_free(&f->q);
    assert_int_equal(qmgr_new(f->cfg, &f->q), 0);
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.messages, 0);
    assert_int_equal(count(f->maildir_alice, "new"), 1);

    /* once due (as after `postern queue flush`), only the remote recipient is tried again */
    assert_int_equal(spool_move(f->cfg->spool_dir, env->qid, SPOOL_Q_DEFERRED, SPOOL_Q_DEFERRED,
                                (int64_t)time(NULL)),
                     0);
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.messages, 1);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    spool_env_free(&env);
}

/* count_first - entries in dir/sub (no dot files); the first name into first. */
static int count_first(const char *dir, const char *sub, char *first, size_t firstsz)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n++ == 0)
            snprintf(first, firstsz, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

/* slurp - the whole file dir/sub/name, NUL-terminated; caller frees. */
static char *slurp(const char *dir, const char *sub, const char *name)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* write_old - a raw spool file in incoming/ whose arrival time is `age` seconds ago. */
static void write_old(struct fx *f, const char *qid, int64_t age, const char *sender,
                      const char *rcpt)
{
    char path[1024], text[1024];
    snprintf(path, sizeof(path), "%s/incoming/%s", f->cfg->spool_dir, qid);
    int n = snprintf(text, sizeof(text),
                     "postern-spool 1\nqid %s\ntime %lld\nfrom %s\nrcpt %s\ndata\n"
                     "Subject: old\r\nMessage-ID: <old-%s@x>\r\n\r\nbody\r\n",
                     qid, (long long)(time(NULL) - age), sender, rcpt, qid);
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, (size_t)n), n);
    close(fd);
}

static int64_t deferred_mtime(struct fx *f, const char *qid)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof(path), "%s/deferred/%s", f->cfg->spool_dir, qid);
    return stat(path, &st) == 0 ? (int64_t)st.st_mtime : 0;
}

/* A message older than max_queue_lifetime: its pending recipient fails with 4.4.7 and bounces. */
static void test_expired_message_bounces(void **state)
{
    struct fx *f = *state;
    struct qmgr_pass_stats st;
    write_old(f, "0000000000000ABC", 6 * 86400, "alice@example.org", "dave@remote.example");
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    for (int i = 0; i < 40 && count(f->cfg->spool_dir, "incoming") != 0; i++) {
        event_base_loop(qmgr_base(f->q), EVLOOP_ONCE);
        /* the bounce lands in incoming/ when the original leaves: deliver it */
        if (count(f->cfg->spool_dir, "incoming") == 1 && deferred_mtime(f, "0000000000000ABC") == 0)
            assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    }
    assert_int_equal(count(f->cfg->spool_dir, "deferred"), 0);
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    char first[512];
    assert_int_equal(count_first(f->maildir_alice, "new", first, sizeof(first)), 1);
    char *dsn = slurp(f->maildir_alice, "new", first);
    assert_non_null(strstr(dsn, "Return-Path: <>"));
    assert_non_null(strstr(dsn, "Action: failed"));
    assert_non_null(strstr(dsn, "Status: 4.4.7"));
    assert_non_null(strstr(dsn, "old-0000000000000ABC@x"));
    free(dsn);
}

/* After delay_warning (4 h) the sender gets one "delayed" notice, and only one. */
static void test_delay_warning_once(void **state)
{
    struct fx *f = *state;
    struct qmgr_pass_stats st;
    const char *qid = "0000000000000DEF";
    write_old(f, qid, 5 * 3600, "alice@example.org", "dave@remote.example");
    for (int round = 0; round < 2; round++) {
        int64_t before = (int64_t)time(NULL);
        assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
        for (int i = 0; i < 40 && deferred_mtime(f, qid) <= before; i++)
            event_base_loop(qmgr_base(f->q), EVLOOP_ONCE);
        assert_true(deferred_mtime(f, qid) > before);
        assert_int_equal(qmgr_deliver_pass(f->q, &st), 0); /* delivers a notice, if any */
        /* make the original due again for the next round */
        assert_int_equal(spool_move(f->cfg->spool_dir, qid, SPOOL_Q_DEFERRED, SPOOL_Q_DEFERRED,
                                    (int64_t)time(NULL)),
                         0);
    }
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    char first[512];
    assert_int_equal(count_first(f->maildir_alice, "new", first, sizeof(first)), 1);
    char *dsn = slurp(f->maildir_alice, "new", first);
    assert_non_null(strstr(dsn, "Action: delayed"));
    free(dsn);
}

static void test_malformed_quarantined(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"bob@example.org", NULL};
    struct spool_env *env = put(f, "x@y.z", rcpts, "Subject: s\r\n\r\nb\r\n");
    char path[1200];
    struct qmgr_pass_stats st;
    int fd;

    snprintf(path, sizeof(path), "%s/incoming/00000000000000AA", f->cfg->spool_dir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_int_equal(write(fd, "postern-spool 1\nbogus line\n", 27), 27);
    close(fd);
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.quarantined, 1);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.removed, 1);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 0);
    assert_int_equal(count(f->cfg->spool_dir, "corrupt"), 1);
    assert_int_equal(count(f->maildir_bob, "new"), 1);
    spool_env_free(&env);
}

static void test_many_batches(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"alice@example.org", "bob@example.org", NULL};
    struct qmgr_pass_stats st;
    int i;

    for (i = 0; i < 7; i++) {
        char content[64];
        snprintf(content, sizeof(content), "Subject: %d\r\n\r\nx\r\n", i);
        struct spool_env *env = put(f, "x@y.z", rcpts, content);
        spool_env_free(&env);
    }
    assert_int_equal(qmgr_deliver_pass(f->q, &st), 0);
    assert_int_equal(st.messages, 7);
    assert_int_equal(st.delivered, 14);
    assert_int_equal(st.removed, 7);
    assert_int_equal(count(f->maildir_alice, "new"), 7);
    assert_int_equal(count(f->maildir_bob, "new"), 7);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 0);
}

static void test_wake(void **state)
{
    struct fx *f = *state;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char buf[8];
    int s;

    qmgr_wake(f->cfg); /* nobody listening: silently ignored */
    assert_int_equal(mkdir(f->cfg->run_dir, 0700), 0);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/qmgr.sock", f->cfg->run_dir);
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sun, sizeof(sun)), 0);
    qmgr_wake(f->cfg);
    assert_int_equal(recv(s, buf, sizeof(buf), MSG_DONTWAIT), 1);
    close(s);
    unlink(sun.sun_path);
}

/* qmgr_run in a child: wake-up delivers, SIGTERM ends it with status 0. */
static void test_run_loop(void **state)
{
    struct fx *f = *state;
    static const char *const rcpts[] = {"alice@example.org", NULL};
    struct timespec ts = {0, 20 * 1000 * 1000};
    char sock[700];
    int i, status;
    pid_t pid;

    qmgr_free(&f->q); /* the child opens its own */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(qmgr_run(f->cfg) == 0 ? 0 : 1);
    snprintf(sock, sizeof(sock), "%s/qmgr.sock", f->cfg->run_dir);
    for (i = 0; i < 1000 && access(sock, F_OK) != 0; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(access(sock, F_OK), 0);
    struct stat sb;
    assert_int_equal(stat(sock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    struct spool_env *env = put(f, "x@y.z", rcpts, "Subject: run\r\n\r\nb\r\n");
    qmgr_wake(f->cfg);
    for (i = 0; i < 1000 && count(f->cfg->spool_dir, "incoming") != 0; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(count(f->cfg->spool_dir, "incoming"), 0);
    assert_int_equal(count(f->maildir_alice, "new"), 1);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(access(sock, F_OK), -1); /* removed on exit */
    spool_env_free(&env);
    assert_int_equal(qmgr_new(f->cfg, &f->q), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_user_and_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_recipient_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_message_bounces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_warning_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_batches, setup_small_batch, teardown),
        cmocka_unit_test_setup_teardown(test_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
