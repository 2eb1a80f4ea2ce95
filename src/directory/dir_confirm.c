/*
 * dir_confirm.c - the directory's confirmation mail and Bitmessage messages.
 *
 * Mail format (RFC 5322 3.6; RFC 3834 5 Auto-Submitted; RFC 2045 MIME):
 *   Received: by <hostname> (Postern directory) id <qid>; <date>
 *   Date, From: "Postern directory" <from>, To: <to>, Subject,
 *   Message-ID: <qid.<random>.directory@<hostname>>, MIME-Version: 1.0,
 *   Content-Type: text/plain; charset=utf-8, Content-Transfer-Encoding:
 *   8bit (7bit when all ASCII), Auto-Submitted: auto-generated
 *   and the text with CRLF line ends. The envelope has the null sender and
 *   one recipient; SMTPUTF8 is flagged when the recipient is not ASCII.
 * Header values are refused (PST_EINVAL) when they hold CR, LF or NUL, so a
 * stored address can never inject a header.
 *
 * Bitmessage: the sending address is resolved once and remembered: the
 * configured bm_from if it is ours, else the first of our keys labelled
 * "directory", else a new random one with that label (no owner).
 *
 * Failure policy: errors are returned and logged (never the link/token).
 */
#include "directory/dir_confirm.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitmessage/bm_api.h"
#include "lib/log.h"
#include "lib/spool.h"
#include "queue/qmgr.h"

#define DIR_CONFIRM_LABEL "directory"
#define DIR_CONFIRM_FROM_USER "directory"
#define DIR_CONFIRM_DATE_LEN 40
#define DIR_CONFIRM_HDR_MAX 4096
#define DIR_CONFIRM_ADDR_MAX 512

struct dir_confirm {
    const struct cfg *cfg;
    struct bm_store *bm;
    char bm_from[BM_STORE_ADDR_MAX + 1]; /* "" until resolved */
    char from[DIR_CONFIRM_ADDR_MAX];
};

int dir_confirm_new(const struct cfg *cfg, struct dir_confirm **out)
{
    struct dir_confirm *c = calloc(1, sizeof *c);
    if (c == NULL)
        return PST_ENOMEM;
    c->cfg = cfg;
    int n = cfg->dir_smtp_from && cfg->dir_smtp_from[0]
                ? snprintf(c->from, sizeof c->from, "%s", cfg->dir_smtp_from)
                : snprintf(c->from, sizeof c->from, "%s@%s", DIR_CONFIRM_FROM_USER, cfg->hostname);
    if (n < 0 || (size_t)n >= sizeof c->from || strpbrk(c->from, "\r\n<>\"") != NULL) {
        free(c);
        return PST_ECONFIG;
    }
    *out = c;
    return 0;
}

void dir_confirm_free(struct dir_confirm **c)
{
    if (c == NULL || *c == NULL)
        return;
    bm_store_close(&(*c)->bm);
    free(*c);
    *c = NULL;
}

int dir_confirm_base_url(const struct cfg *cfg, char *out, size_t outsz)
{
    int n;
    if (cfg->dir_base_url && cfg->dir_base_url[0]) {
        n = snprintf(out, outsz, "%s", cfg->dir_base_url);
    } else {
        const char *colon = cfg->dir_listen ? strrchr(cfg->dir_listen, ':') : NULL;
        n = colon ? snprintf(out, outsz, "https://%s:%s", cfg->hostname, colon + 1)
                  : snprintf(out, outsz, "https://%s", cfg->hostname);
    }
    if (n < 0 || (size_t)n >= outsz)
        return PST_ELIMIT;
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

int dir_confirm_link(const char *base_url, const char *token, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s/confirm?t=%s", base_url, token);
    return n < 0 || (size_t)n >= outsz ? PST_ELIMIT : 0;
}

static int dir_confirm_date(int64_t when, char out[DIR_CONFIRM_DATE_LEN])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)when;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        return PST_EINVAL;
    int n = snprintf(out, DIR_CONFIRM_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                     days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
    return n < 0 || n >= DIR_CONFIRM_DATE_LEN ? PST_EINVAL : 0;
}

static int dir_confirm_has8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

static int dir_confirm_header_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* dir_confirm_headers - the header block for a message with queue id qid. */
static int dir_confirm_headers(struct dir_confirm *c, buf_t *h, const char *qid, const char *to,
                               const char *subject, int eightbit)
{
    char date[DIR_CONFIRM_DATE_LEN];
    uint8_t rnd[8];
    int rc = dir_confirm_date((int64_t)time(NULL), date);
    if (rc != 0)
        return rc;
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return PST_EIO;
    const char *host = c->cfg->hostname;
    return buf_printf(h,
                      "Received: by %s (Postern directory) id %s;\r\n\t%s\r\n"
                      "Date: %s\r\nFrom: \"Postern directory\" <%s>\r\nTo: <%s>\r\n"
                      "Subject: %s\r\nMessage-ID: <%s.%02x%02x%02x%02x%02x%02x%02x%02x."
                      "directory@%s>\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: %s\r\nAuto-Submitted: auto-generated\r\n\r\n",
                      host, qid, date, date, c->from, to, subject, qid, rnd[0], rnd[1], rnd[2],
                      rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], host, eightbit ? "8bit" : "7bit");
}

int dir_confirm_mail(struct dir_confirm *c, const char *to, const char *subject, const char *body)
{
    if (!dir_confirm_header_ok(to) || !dir_confirm_header_ok(subject) || strchr(to, '>') ||
        to[0] == '\0')
        return PST_EINVAL;
    struct spool_env *env = spool_env_new();
    struct spool_writer *w = NULL;
    buf_t *h = buf_new(DIR_CONFIRM_HDR_MAX);
    int rc = PST_ENOMEM;
    if (env == NULL || h == NULL)
        goto out;
    int eightbit = dir_confirm_has8bit(to) || dir_confirm_has8bit(body);
    env->sender = strdup("");
    env->proto = strdup("LOCAL");
    env->smtputf8 = dir_confirm_has8bit(to);
    env->body = eightbit ? 2 : 1;
    if (env->sender == NULL || env->proto == NULL)
        goto out;
    if ((rc = spool_env_add_rcpt(env, to, NULL, 0)) != 0 ||
        (rc = spool_writer_open(c->cfg->spool_dir, env, &w)) != 0)
        goto out;
    if ((rc = dir_confirm_headers(c, h, env->qid, to, subject, eightbit)) != 0 ||
        (rc = spool_writer_write(w, h->data, h->len)) != 0 ||
        (rc = spool_writer_write(w, body, strlen(body))) != 0) {
        spool_writer_abort(&w);
        goto out;
    }
    if ((rc = spool_writer_commit_sync(&w)) != 0)
        goto out;
    log_info("directory confirmation_queued kind=mail qid=%s", env->qid);
    qmgr_wake(c->cfg);
out:
    if (rc != 0)
        log_warn("directory confirmation_failed kind=mail err=%s", err_str(rc));
    buf_free(&h);
    spool_env_free(&env);
    return rc;
}

struct dir_confirm_find {
    char addr[BM_STORE_ADDR_MAX + 1];
};

static int dir_confirm_find_cb(const struct bm_store_key *key, void *arg)
{
    struct dir_confirm_find *f = arg;
    if (f->addr[0] == '\0' && strcmp(key->label, DIR_CONFIRM_LABEL) == 0)
        snprintf(f->addr, sizeof f->addr, "%s", key->address);
    return 0;
}

/* dir_confirm_bm_from - open the store and resolve our sending address (once). */
static int dir_confirm_bm_from(struct dir_confirm *c)
{
    int rc;
    if (c->bm == NULL && (rc = bm_store_open(c->cfg->db_path, &c->bm)) != 0)
        return rc;
    if (c->bm_from[0] != '\0')
        return 0;
    const char *want = c->cfg->dir_bm_from;
    if (want && want[0]) {
        char owner[BM_API_OWNER_MAX + 1];
        if ((rc = bm_api_owner(c->bm, want, owner, sizeof owner)) != 0) {
            log_error("directory bm_from_not_ours addr=%s", want);
            return rc;
        }
        snprintf(c->bm_from, sizeof c->bm_from, "%s", want);
        return 0;
    }
    struct dir_confirm_find f = {{0}};
    if ((rc = bm_store_key_list(c->bm, dir_confirm_find_cb, &f)) != 0)
        return rc;
    if (f.addr[0] == '\0') {
        rc = bm_api_address_new(c->bm, NULL, DIR_CONFIRM_LABEL, "", (int64_t)time(NULL), f.addr,
                                sizeof f.addr);
        if (rc != 0)
            return rc;
        log_info("directory bm_address_created addr=%s label=%s", f.addr, DIR_CONFIRM_LABEL);
    }
    memcpy(c->bm_from, f.addr, sizeof c->bm_from);
    return 0;
}

int dir_confirm_bm(struct dir_confirm *c, const char *to, const char *subject, const char *body)
{
    int rc = dir_confirm_bm_from(c);
    int64_t msgid = 0;
    char why[160] = "";
    if (rc == 0)
        /* the node's configured lifetime ([bitmessage] ttl, 4 days by default); the link
         * itself expires after link_ttl whatever the message's lifetime */
        rc = bm_api_send(c->bm, c->bm_from, to, subject, body, c->cfg->bm_ttl, (int64_t)time(NULL),
                         &msgid, why, sizeof why);
    if (rc != 0) {
        char q[200];
        log_warn("directory confirmation_failed kind=bitmessage err=%s reason=%s", err_str(rc),
                 log_quote(q, sizeof q, why, strlen(why)));
        return rc;
    }
    log_info("directory confirmation_queued kind=bitmessage msgid=%lld", (long long)msgid);
    if (bm_api_notify(c->cfg->run_dir) != 0)
        log_warn("directory bmd_not_notified reason=\"no running node\"");
    return 0;
}
