/*
 * cmd_queue.c - `postern queue list|show|delete|flush`: inspect and act on
 * the live spool. Safe while the server runs: the spool's files are only
 * ever created by rename and removed by unlink, so a reader sees either a
 * whole message or none.
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
    unsigned count;
};

static int cmd_queue_list_one(void *arg, const char *qid)
{
    struct cmd_queue_list *l = arg;
    struct spool_env *env = NULL;
    int fd = -1;
    uint64_t len = 0;
    if (spool_open(l->cfg->spool_dir, qid, &env, &fd, &len) < 0)
        return 0; /* delivered meanwhile, or corrupt (the queue manager reports it) */
    close(fd);
    char when[32];
    time_t t = (time_t)env->time;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    printf("%s %10llu %s <%s>\n", qid, (unsigned long long)len, when, env->sender);
    for (size_t i = 0; i < env->nrcpt; i++)
        printf("%44s<%s>\n", "", env->rcpt[i].addr);
    l->count++;
    spool_env_free(&env);
    return 0;
}

static int cmd_queue_show(const struct cfg *cfg, const char *qid)
{
    struct spool_env *env = NULL;
    int fd = -1;
    uint64_t len = 0;
    int rc = spool_open(cfg->spool_dir, qid, &env, &fd, &len);
    if (rc < 0) {
        fprintf(stderr, "postern: queue show %s: %s\n", qid, err_str(rc));
        return 1;
    }
    printf("qid: %s\nsender: <%s>\nclient: %s\nproto: %s\nsize: %llu\n", env->qid, env->sender,
           env->client ? env->client : "-", env->proto ? env->proto : "-", (unsigned long long)len);
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

int cmd_queue_main(const struct cfg *cfg, int argc, char **argv)
{
    const char *action = argv[0];
    if (strcmp(action, "list") == 0 && argc == 1) {
        struct cmd_queue_list l = {cfg, 0};
        int rc = spool_scan(cfg->spool_dir, cmd_queue_list_one, &l);
        if (rc < 0) {
            fprintf(stderr, "postern: queue list: %s\n", err_str(rc));
            return 1;
        }
        printf("-- %u message%s\n", l.count, l.count == 1 ? "" : "s");
        return 0;
    }
    if (strcmp(action, "flush") == 0 && argc == 1) {
        qmgr_wake(cfg);
        return 0;
    }
    if ((strcmp(action, "show") == 0 || strcmp(action, "delete") == 0) && argc == 2) {
        const char *qid = argv[1];
        if (!spool_qid_valid(qid)) {
            fprintf(stderr, "postern: not a queue id: %s\n", qid);
            return 1;
        }
        if (action[0] == 's')
            return cmd_queue_show(cfg, qid);
        struct spool_env *env = NULL;
        int fd = -1;
        uint64_t len = 0;
        int rc = spool_open(cfg->spool_dir, qid, &env, &fd, &len);
        if (rc == PST_ENOENT) {
            fprintf(stderr, "postern: queue delete %s: no such message\n", qid);
            return 1;
        }
        if (rc == 0) {
            close(fd);
            spool_env_free(&env);
        }
        /* A malformed file (rc == PST_EINVAL) can still be deleted. */
        rc = spool_remove(cfg->spool_dir, qid);
        if (rc == 0)
            rc = spool_sync_dir(cfg->spool_dir);
        if (rc < 0) {
            fprintf(stderr, "postern: queue delete %s: %s\n", qid, err_str(rc));
            return 1;
        }
        log_info("queue deleted qid=%s by=cli", qid);
        return 0;
    }
    fprintf(stderr, "usage: postern queue list | show QID | delete QID | flush\n");
    return 2;
}
