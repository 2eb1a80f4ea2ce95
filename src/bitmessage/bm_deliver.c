/*
 * bm_deliver.c - received Bitmessage messages into local Maildirs (see
 * bm_deliver.h). RFCs: 5322 (message format), 2045/2046 (MIME text/plain,
 * base64), 2047 (encoded-word subjects), 6532 (UTF-8 is not put in headers
 * raw: subjects are encoded).
 *
 * Failure policy: errors are returned and logged once per message with its
 * inbox id (never its subject or body); a failed delivery stays in the
 * inbox for the next round.
 */
#include "bitmessage/bm_deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bitmessage/bm_api.h"
#include "lib/log.h"
#include "lib/maildir.h"

#define BM_DELIVER_LINE_MAX 998 /* RFC 5322 2.1.1 */
#define BM_DELIVER_B64_IN 57    /* bytes per 76-character base64 line */
#define BM_DELIVER_EW_IN 45     /* subject bytes per encoded-word (60 base64 chars) */
#define BM_DELIVER_MSG_MAX (2u * 1024 * 1024)

static int bm_deliver_is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c < 0x20)
            return 0;
    }
    return 1;
}

/* bm_deliver_b64 - base64 of len bytes at p appended to out. */
static int bm_deliver_b64(buf_t *out, const void *p, size_t len)
{
    unsigned char enc[4 * ((BM_DELIVER_B64_IN + 2) / 3) + 1];
    if (len > BM_DELIVER_B64_IN)
        return PST_EINVAL;
    int n = EVP_EncodeBlock(enc, p, (int)len);
    return n < 0 ? PST_EIO : buf_append(out, enc, (size_t)n);
}

/* bm_deliver_subject - "Subject: " + text, RFC 2047 B-encoded words when not plain ASCII. */
static int bm_deliver_subject(buf_t *out, const char *s, size_t len)
{
    int rc = buf_append_str(out, "Subject: ");
    if (rc == 0 && bm_deliver_is_ascii(s, len))
        return (rc = buf_append(out, s, len)) == 0 ? buf_append_str(out, "\r\n") : rc;
    size_t off = 0;
    while (rc == 0 && off < len) {
        size_t n = len - off < BM_DELIVER_EW_IN ? len - off : BM_DELIVER_EW_IN;
        /* do not split a UTF-8 sequence between two words */
        while (off + n < len && n > 1 && ((unsigned char)s[off + n] & 0xC0) == 0x80)
            n--;
        if (off > 0)
            rc = buf_append_str(out, "\r\n ");
        if (rc == 0)
            rc = buf_append_str(out, "=?UTF-8?B?");
        if (rc == 0)
            rc = bm_deliver_b64(out, s + off, n);
        if (rc == 0)
            rc = buf_append_str(out, "?=");
        off += n;
    }
    return rc == 0 ? buf_append_str(out, "\r\n") : rc;
}

/* bm_deliver_needs_b64 - a line over 998 bytes, a NUL or a bare CR. */
static int bm_deliver_needs_b64(const char *s, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || (s[i] == '\r' && (i + 1 == len || s[i + 1] != '\n')))
            return 1;
        line = s[i] == '\n' ? 0 : line + 1;
        if (line > BM_DELIVER_LINE_MAX)
            return 1;
    }
    return 0;
}

/* bm_deliver_body_text - LF and CRLF both become CRLF. */
static int bm_deliver_body_text(buf_t *out, const char *s, size_t len)
{
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < len; i++) {
        if (s[i] != '\n')
            continue;
        size_t end = i > start && s[i - 1] == '\r' ? i - 1 : i;
        if ((rc = buf_append(out, s + start, end - start)) == 0)
            rc = buf_append_str(out, "\r\n");
        start = i + 1;
    }
    if (rc == 0 && start < len && (rc = buf_append(out, s + start, len - start)) == 0)
        rc = buf_append_str(out, "\r\n");
    return rc;
}

static int bm_deliver_body_b64(buf_t *out, const char *s, size_t len)
{
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len; off += BM_DELIVER_B64_IN) {
        size_t n = len - off < BM_DELIVER_B64_IN ? len - off : BM_DELIVER_B64_IN;
        if ((rc = bm_deliver_b64(out, s + off, n)) == 0)
            rc = buf_append_str(out, "\r\n");
    }
    return rc;
}

static void bm_deliver_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int bm_deliver_format(const struct bm_store_inmsg *m, buf_t *out)
{
    char date[64];
    char id[2 * BM_STORE_HASH_LEN + 1];
    struct tm tm;
    time_t t = (time_t)m->received;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
        return PST_EINVAL;
    bm_deliver_hex(m->msgid_hash, BM_STORE_HASH_LEN, id);
    int b64 = bm_deliver_needs_b64(m->body, m->body_len);
    int rc = buf_printf(out,
                        "From: <%s@" BM_DELIVER_DOMAIN ">\r\n"
                        "To: <%s@" BM_DELIVER_DOMAIN ">\r\n"
                        "Date: %s\r\n"
                        "Message-ID: <%s@" BM_DELIVER_DOMAIN ">\r\n",
                        m->from_addr, m->to_addr, date, id);
    if (rc == 0)
        rc = bm_deliver_subject(out, m->subject, m->subject_len);
    if (rc == 0)
        rc = buf_printf(out,
                        "MIME-Version: 1.0\r\n"
                        "Content-Type: text/plain; charset=UTF-8\r\n"
                        "Content-Transfer-Encoding: %s\r\n"
                        "X-Bitmessage-From: %s\r\n"
                        "X-Bitmessage-To: %s\r\n"
                        "X-Bitmessage-Encoding: %u\r\n\r\n",
                        b64 ? "base64" : "8bit", m->from_addr, m->to_addr, m->encoding);
    if (rc == 0)
        rc = b64 ? bm_deliver_body_b64(out, m->body, m->body_len)
                 : bm_deliver_body_text(out, m->body, m->body_len);
    return rc;
}

struct bm_deliver_ctx {
    struct bm_store *st;
    const char *mail_dir;
    const char *hostname;
    unsigned seen;
    unsigned delivered;
    int first_error;
};

/* bm_deliver_write - the formatted message into a memfd, then into the Maildir. */
static int bm_deliver_write(struct bm_deliver_ctx *c, const struct bm_store_inmsg *m,
                            const char *owner)
{
    char maildir[PATH_MAX], rcpt[320], sender[BM_STORE_ADDR_MAX + 32], qid[17];
    buf_t text;
    int rc;

    if (snprintf(maildir, sizeof(maildir), "%s/%s", c->mail_dir, owner) >= (int)sizeof(maildir) ||
        snprintf(rcpt, sizeof(rcpt), "%s@%s", owner, c->hostname) >= (int)sizeof(rcpt) ||
        snprintf(sender, sizeof(sender), "%s@" BM_DELIVER_DOMAIN, m->from_addr) >=
            (int)sizeof(sender))
        return PST_ELIMIT;
    for (size_t i = 0; i < 8; i++)
        snprintf(qid + 2 * i, 3, "%02X", m->msgid_hash[i]);
    if ((rc = maildir_create(maildir)) != 0)
        return rc;
    buf_init(&text, BM_DELIVER_MSG_MAX);
    if ((rc = bm_deliver_format(m, &text)) != 0) {
        buf_release(&text);
        return rc;
    }
    int fd = memfd_create("bm-deliver", MFD_CLOEXEC);
    if (fd < 0 || write(fd, text.data, text.len) != (ssize_t)text.len) {
        rc = PST_EIO;
    } else {
        struct maildir_msg mm = {.maildir = maildir,
                                 .qid = qid,
                                 .qtime = m->received,
                                 .index = 0,
                                 .sender = sender,
                                 .rcpt = rcpt,
                                 .content_fd = fd,
                                 .content_off = 0,
                                 .content_len = text.len};
        rc = maildir_deliver(&mm, c->hostname, NULL);
    }
    if (fd >= 0)
        close(fd);
    buf_release(&text);
    return rc;
}

static int bm_deliver_one(const struct bm_store_inmsg *m, void *arg)
{
    struct bm_deliver_ctx *c = arg;
    char owner[BM_API_OWNER_MAX + 1];

    if (c->seen++ >= BM_DELIVER_BATCH)
        return 1; /* stop: the rest next time */
    int rc = bm_api_owner(c->st, m->to_addr, owner, sizeof(owner));
    if (rc == PST_ENOENT || (rc == 0 && owner[0] == '\0')) {
        /* no Maildir for this address (or the key was removed): inbox only */
        rc = bm_store_inbox_mark_delivered(c->st, m->id);
    } else if (rc == 0 && (rc = bm_deliver_write(c, m, owner)) == 0) {
        rc = bm_store_inbox_mark_delivered(c->st, m->id);
        if (rc == 0) {
            c->delivered++;
            log_info("bm delivered inbox_id=%lld user=%s", (long long)m->id, owner);
        }
    }
    if (rc != 0) {
        log_warn("bm delivery failed inbox_id=%lld error=%s", (long long)m->id, err_str(rc));
        if (c->first_error == 0)
            c->first_error = rc;
    }
    return 0;
}

int bm_deliver_pending(struct bm_store *st, const char *mail_dir, const char *hostname,
                       unsigned *delivered)
{
    struct bm_deliver_ctx c = {.st = st, .mail_dir = mail_dir, .hostname = hostname};
    if (st == NULL || mail_dir == NULL || hostname == NULL)
        return PST_EINVAL;
    int rc = bm_store_inbox_undelivered(st, bm_deliver_one, &c);
    if (delivered)
        *delivered = c.delivered;
    if (rc < 0)
        return rc;
    return c.first_error;
}
