/*
 * cmd_queue.c - `postern queue list|show|delete|hold|release|flush`: inspect
 * and act on the live spool. Safe while the server runs: the spool's files
 * are only ever created by rename and removed by unlink, so a reader sees
 * either a whole message or none. hold moves a message to hold/, where the
 * queue manager never looks; release moves it back to incoming/ and wakes
 * the queue manager. A message the queue manager is delivering right now
 * finishes its current attempt.
 */
#include "cmd_queue.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/spool.h"
#include "queue/qmgr.h"

#define CMD_QUEUE_SHOW_CHUNK 65536

struct cmd_queue_list {
    const struct cfg *cfg;
    enum spool_queue queue;
    unsigned count;
};

static int cmd_queue_list_one(void *arg, const char *qid, int64_t mtime)
{
    struct cmd_queue_list *l = arg;
    struct spool_env *env = NULL;
    int fd = -1;
    uint64_t len = 0;
    if (spool_open_queue(l->cfg->spool_dir, l->queue, qid, &env, &fd, &len) < 0)
        return 0; /* delivered meanwhile, or corrupt (the queue manager reports it) */
    close(fd);
    char when[32], next[48] = "";
    time_t t = (time_t)env->time;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    if (l->queue == SPOOL_Q_DEFERRED) {
        time_t n = (time_t)mtime;
        strftime(next, sizeof next, " next=%H:%M:%S", localtime_r(&n, &tm));
    }
    const char *mark = l->queue == SPOOL_Q_HOLD ? "!" : l->queue == SPOOL_Q_DEFERRED ? "*" : " ";
    printf("%s%s %10llu %s <%s> %s%s\n", qid, mark, (unsigned long long)len, when, env->sender,
           spool_queue_name(l->queue), next);
    for (size_t i = 0; i < env->nrcpt; i++)
        printf("%45s<%s>\n", "", env->rcpt[i].addr);
    l->count++;
    spool_env_free(&env);
    return 0;
}

static int cmd_queue_list(const struct cfg *cfg)
{
    static const enum spool_queue queues[] = {SPOOL_Q_INCOMING, SPOOL_Q_DEFERRED, SPOOL_Q_HOLD};
    unsigned total = 0;
    for (size_t i = 0; i < PST_ARRAY_LEN(queues); i++) {
        struct cmd_queue_list l = {cfg, queues[i], 0};
        int rc = spool_scan_queue(cfg->spool_dir, queues[i], cmd_queue_list_one, &l);
        if (rc < 0 && rc != PST_ENOENT) {
            fprintf(stderr, "postern: queue list %s: %s\n", spool_queue_name(queues[i]),
                    err_str(rc));
            return 1;
        }
        total += l.count;
    }
    printf("-- %u message%s (* deferred, ! held)\n", total, total == 1 ? "" : "s");
    return 0;
}

static int cmd_queue_show(const struct cfg *cfg, enum spool_queue q, const char *qid)
{
    struct spool_env *env = NULL;
    int fd = -1;
    uint64_t len = 0;
    int rc = spool_open_queue(cfg->spool_dir, q, qid, &env, &fd, &len);
    if (rc < 0) {
        fprintf(stderr, "postern: queue show %s: %s\n", qid, err_str(rc));
        return 1;
    }
    printf("qid: %s\nqueue: %s\nsender: <%s>\nclient: %s\nproto: %s\nsize: %llu\n", env->qid,
           spool_queue_name(q), env->sender, env->client ? env->client : "-",
           env->proto ? env->proto : "-", (unsigned long long)len);
    for (size_t i = 0; i < env->nrcpt; i++)
        printf("recipient: <%s>\n", env->rcpt[i].addr);
    printf("\n");
    fflush(stdout);
    char buf[CMD_QUEUE_SHOW_CHUNK];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            break;
    close(fd);
    spool_env_free(&env);
    return n < 0 ? 1 : 0;
}

static int cmd_queue_fail(const char *what, const char *qid, int rc)
{
    fprintf(stderr, "postern: queue %s %s: %s\n", what, qid,
            rc == PST_ENOENT ? "no such message" : err_str(rc));
    return 1;
}

/* cmd_queue_one - an action on one message, wherever it is queued. */
static int cmd_queue_one(const struct cfg *cfg, const char *action, const char *qid)
{
    enum spool_queue q;
    int rc = spool_locate(cfg->spool_dir, qid, &q);
    if (rc < 0)
        return cmd_queue_fail(action, qid, rc);
    if (strcmp(action, "show") == 0)
        return cmd_queue_show(cfg, q, qid);
    if (strcmp(action, "delete") == 0) {
        rc = spool_remove_queue(cfg->spool_dir, q, qid);
        if (rc == 0)
            rc = spool_sync_queue(cfg->spool_dir, q);
        if (rc == 0)
            rc = spool_state_remove(cfg->spool_dir, qid);
        if (rc < 0)
            return cmd_queue_fail(action, qid, rc);
        log_info("queue deleted qid=%s queue=%s by=cli", qid, spool_queue_name(q));
        return 0;
    }
    if (strcmp(action, "hold") == 0) {
        if (q == SPOOL_Q_HOLD)
            return 0;
        rc = spool_move(cfg->spool_dir, qid, q, SPOOL_Q_HOLD, 0);
        if (rc < 0)
            return cmd_queue_fail(action, qid, rc);
        log_info("queue held qid=%s from=%s by=cli", qid, spool_queue_name(q));
        return 0;
    }
    /* release: back to incoming/, attempted at once */
    if (q != SPOOL_Q_HOLD) {
        fprintf(stderr, "postern: queue release %s: not held (in %s)\n", qid, spool_queue_name(q));
        return 1;
    }
    rc = spool_move(cfg->spool_dir, qid, SPOOL_Q_HOLD, SPOOL_Q_INCOMING, 0);
    if (rc < 0)
        return cmd_queue_fail(action, qid, rc);
    log_info("queue released qid=%s by=cli", qid);
    qmgr_wake(cfg);
    return 0;
}

static int cmd_queue_due_now(void *arg, const char *qid, int64_t mtime)
{
    const struct cfg *cfg = arg;
    int64_t now = (int64_t)time(NULL);
    if (mtime > now && spool_move(cfg->spool_dir, qid, SPOOL_Q_DEFERRED, SPOOL_Q_DEFERRED, now) < 0)
        fprintf(stderr, "postern: queue flush %s: cannot reschedule\n", qid);
    return 0;
}

/* cmd_queue_flush - make every deferred message due now and wake the queue manager. */
static int cmd_queue_flush(const struct cfg *cfg)
{
    int rc = spool_scan_queue(cfg->spool_dir, SPOOL_Q_DEFERRED, cmd_queue_due_now, (void *)cfg);
    if (rc < 0 && rc != PST_ENOENT) {
        fprintf(stderr, "postern: queue flush: %s\n", err_str(rc));
        return 1;
    }
    qmgr_wake(cfg);
    return 0;
}

int cmd_queue_main(const struct cfg *cfg, int argc, char **argv)
{
    const char *action = argv[0];
    if (strcmp(action, "list") == 0 && argc == 1)
        return cmd_queue_list(cfg);
    if (strcmp(action, "flush") == 0 && argc == 1)
        return cmd_queue_flush(cfg);
    int one = strcmp(action, "show") == 0 || strcmp(action, "delete") == 0 ||
              strcmp(action, "hold") == 0 || strcmp(action, "release") == 0;
    if (one && argc == 2) {
        if (!spool_qid_valid(argv[1])) {
            fprintf(stderr, "postern: not a queue id: %s\n", argv[1]);
            return 1;
        }
        return cmd_queue_one(cfg, action, argv[1]);
    }
    fprintf(stderr, "usage: postern queue list | show QID | delete QID | hold QID | release QID "
                    "| flush\n");
    return 2;
}
