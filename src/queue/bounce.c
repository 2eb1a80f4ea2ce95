/*
 * bounce.c - delivery status notifications (see bounce.h for who gets one
 * and what is returned).
 *
 * Standards: RFC 3464 (message/delivery-status fields), RFC 6522 (formerly
 * RFC 3462: multipart/report, text/rfc822-headers), RFC 3461 (NOTIFY, RET,
 * ENVID, ORCPT semantics; xtext), RFC 3463 (status codes), RFC 3834
 * (Auto-Submitted: auto-replied), RFC 5322 (header syntax, 998-byte lines),
 * RFC 2046 (boundaries: the CRLF before "--boundary" belongs to the
 * delimiter, so every body part is copied byte for byte).
 *
 * Layout of the generated message:
 *
 *   Received: by HOST (Postern) id QID; DATE
 *   From: MAILER-DAEMON@HOST (Mail Delivery System)
 *   To: <SENDER>
 *   Subject: Undelivered Mail Returned to Sender | Delayed Mail (still being
 *            retried) | Successful Mail Delivery Report
 *   Date, Message-ID: <QID.dsn@HOST>, Auto-Submitted: auto-replied,
 *   MIME-Version: 1.0, Content-Type: multipart/report;
 *     report-type=delivery-status; boundary="B"
 *
 *   --B   text/plain: a human explanation, one paragraph per recipient
 *   --B   message/delivery-status: per-message fields, then per-recipient
 *         blocks, each preceded by a blank line
 *   --B   message/rfc822 (the original) or text/rfc822-headers
 *   --B--
 *
 * The boundary is "=_postern_" plus 128 random bits; the generated parts and
 * the returned content are scanned for it and a new one is drawn if found.
 * Values that come from the network (diagnostics, remote host names) have
 * control characters replaced, 8-bit bytes replaced by '?', and are cut at
 * BOUNCE_TEXT_MAX, so they cannot inject header lines.
 *
 * Failure policy: every error is returned; a partly written DSN is aborted
 * (spool_writer_abort), so the spool never holds half a notification.
 */
#include "bounce.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "smtp/smtp_parser.h"

#define BOUNCE_FOLD_AT 78        /* preferred line length (RFC 5322 2.1.1) */
#define BOUNCE_LINE_MAX 998      /* hard line length (RFC 5322 2.1.1) */
#define BOUNCE_CHUNK (64 * 1024) /* content read size */
#define BOUNCE_BOUNDARY_TRIES 8
#define BOUNCE_BOUNDARY_LEN 42 /* "=_postern_" + 32 hex */
#define BOUNCE_DATE_LEN 40
#define BOUNCE_ADDR_MAX 1024 /* one address after cleaning */
#define BOUNCE_FROM_USER "MAILER-DAEMON"
#define BOUNCE_PROTO "DSN"

/* Everything one notification needs while it is being built. */
struct bounce_ctx {
    const char *host;
    const struct spool_env *orig;
    int fd;
    off_t off;
    uint64_t len;
    const struct bounce_rcpt *rcpts;
    size_t *sel; /* indices into rcpts of the recipients reported */
    size_t nsel;
    enum bounce_action kind; /* FAILED > DELAYED > DELIVERED */
    int full;                /* part 3 is the whole original */
    int has8bit;             /* some part holds bytes >= 0x80 */
    char boundary[BOUNCE_BOUNDARY_LEN + 1];
    buf_t *text;    /* part 1 body */
    buf_t *report;  /* part 2 body */
    buf_t *headers; /* part 3 body when !full */
};

/* ---------------------------------------------------------------- small helpers */

const char *bounce_action_name(enum bounce_action a)
{
    switch (a) {
    case BOUNCE_FAILED:
        return "failed";
    case BOUNCE_DELAYED:
        return "delayed";
    case BOUNCE_DELIVERED:
        return "delivered";
    case BOUNCE_RELAYED:
        return "relayed";
    }
    return "failed";
}

/* bounce_notify_bit - the NOTIFY keyword an action needs (RFC 3461 4.1). */
static unsigned bounce_notify_bit(enum bounce_action a)
{
    switch (a) {
    case BOUNCE_FAILED:
        return SMTP_NOTIFY_FAILURE;
    case BOUNCE_DELAYED:
        return SMTP_NOTIFY_DELAY;
    case BOUNCE_DELIVERED:
    case BOUNCE_RELAYED:
        return SMTP_NOTIFY_SUCCESS;
    }
    return SMTP_NOTIFY_FAILURE;
}

/* bounce_orig_rcpt - orig's recipient entry for addr (exact, else case-insensitive), or NULL. */
static const struct spool_rcpt *bounce_orig_rcpt(const struct spool_env *orig, const char *addr)
{
    size_t i;

    for (i = 0; i < orig->nrcpt; i++) {
        if (orig->rcpt[i].addr && strcmp(orig->rcpt[i].addr, addr) == 0)
            return &orig->rcpt[i];
    }
    for (i = 0; i < orig->nrcpt; i++) {
        if (orig->rcpt[i].addr && strcasecmp(orig->rcpt[i].addr, addr) == 0)
            return &orig->rcpt[i];
    }
    return NULL;
}

/* bounce_wanted - 1 if the recipient's NOTIFY asks for a DSN about r->action. */
static int bounce_wanted(const struct spool_env *orig, const struct bounce_rcpt *r)
{
    const struct spool_rcpt *o = bounce_orig_rcpt(orig, r->addr);
    unsigned notify = o ? o->notify : 0;

    if (notify == 0)
        notify = SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY;
    if (notify & SMTP_NOTIFY_NEVER)
        return 0;
    return (notify & bounce_notify_bit(r->action)) != 0;
}

/* bounce_date - RFC 5322 date-time in UTC ("Tue, 24 Nov 2026 20:49:00 +0000"). */
static int bounce_date(int64_t when, char out[BOUNCE_DATE_LEN])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)when;
    struct tm tm;
    int n;

    if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        return PST_EINVAL;
    n = snprintf(out, BOUNCE_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
    if (n < 0 || n >= BOUNCE_DATE_LEN)
        return PST_EINVAL;
    return 0;
}

/*
 * bounce_clean - copy s into out (outsz) for use in a header or report
 * line: control characters become spaces, runs of blanks collapse, leading
 * and trailing blanks go; with ascii, bytes >= 0x80 become '?'. Input longer
 * than outsz - 1 is cut. Returns out.
 */
static const char *bounce_clean(const char *s, char *out, size_t outsz, int ascii)
{
    size_t o = 0;
    int space = 0;

    for (; s && *s && o + 1 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = o > 0;
            continue;
        }
        if (space) {
            if (o + 2 >= outsz)
                break;
            out[o++] = ' ';
            space = 0;
        }
        out[o++] = (char)(ascii && c >= 0x80 ? '?' : c);
    }
    out[o] = '\0';
    return out;
}

/* bounce_status_ok - 1 if s is an RFC 3463 status-code "[245].d{1,3}.d{1,3}". */
static int bounce_status_ok(const char *s)
{
    int part, digits;

    if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    s += 2;
    for (part = 0; part < 2; part++) {
        for (digits = 0; *s >= '0' && *s <= '9'; s++)
            digits++;
        if (digits < 1 || digits > 3)
            return 0;
        if (part == 0 && *s++ != '.')
            return 0;
    }
    return *s == '\0';
}

static const char *bounce_status(const struct bounce_rcpt *r)
{
    if (bounce_status_ok(r->status))
        return r->status;
    switch (r->action) {
    case BOUNCE_DELAYED:
        return "4.0.0";
    case BOUNCE_DELIVERED:
    case BOUNCE_RELAYED:
        return "2.0.0";
    case BOUNCE_FAILED:
        break;
    }
    return "5.0.0";
}

/* bounce_has_type - 1 if s starts with "atom;" (a diagnostic-type such as "smtp;"). */
static int bounce_has_type(const char *s)
{
    const char *p = s;

    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '-')
        p++;
    return p > s && *p == ';';
}

static int bounce_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * bounce_orcpt - render the stored "type;xtext" ORCPT for Original-Recipient.
 * For type rfc822 the xtext is decoded (RFC 3461 4.2) when it decodes to
 * printable ASCII; otherwise (or for other types) it is passed through.
 */
static const char *bounce_orcpt(const char *stored, char *out, size_t outsz)
{
    const char *semi = strchr(stored, ';');
    size_t o, i;
    int hi, lo;

    bounce_clean(stored, out, outsz, 1);
    if (semi == NULL || (size_t)(semi - stored) != 6 || strncasecmp(stored, "rfc822", 6) != 0)
        return out;
    o = 7; /* "rfc822;" as stored, kept */
    for (i = 7; stored[i] != '\0'; i++) {
        unsigned char c = (unsigned char)stored[i];
        if (c == '+') {
            if ((hi = bounce_hexval(stored[i + 1])) < 0 || (lo = bounce_hexval(stored[i + 2])) < 0)
                goto raw;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c < 0x21 || c > 0x7e || o + 1 >= outsz)
            goto raw;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
raw:
    return bounce_clean(stored, out, outsz, 1);
}

/* bounce_envid - ENVID for Original-Envelope-Id, xtext-decoded when that gives printable ASCII. */
static const char *bounce_envid(const char *stored, char *out, size_t outsz)
{
    size_t o = 0, i;
    int hi, lo;

    for (i = 0; stored[i] != '\0'; i++) {
        unsigned char c = (unsigned char)stored[i];
        if (c == '+') {
            if ((hi = bounce_hexval(stored[i + 1])) < 0 || (lo = bounce_hexval(stored[i + 2])) < 0)
                return bounce_clean(stored, out, outsz, 1);
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c < 0x20 || c > 0x7e || o + 1 >= outsz)
            return bounce_clean(stored, out, outsz, 1);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

/* ---------------------------------------------------------------- folding */

/*
 * bounce_put_folded - append "<first><value>CRLF" to b, breaking at blanks so
 * that lines stay under BOUNCE_FOLD_AT where a break exists; continuation
 * lines start with cont (" " for header folding, "    " for text).
 * value must be clean (single blanks, no controls); a word too long for a
 * line is split hard, so no line ever reaches BOUNCE_LINE_MAX.
 */
static int bounce_put_folded(buf_t *b, const char *first, const char *value, const char *cont)
{
    size_t col = strlen(first), contlen = strlen(cont), wlen;
    const char *w = value;
    int rc, start = 1;

    if ((rc = buf_append_str(b, first)) != 0)
        return rc;
    while (*w != '\0') {
        const char *sp = strchr(w, ' ');
        wlen = sp ? (size_t)(sp - w) : strlen(w);
        if (!start && col + 1 + wlen > BOUNCE_FOLD_AT) {
            if ((rc = buf_printf(b, "\r\n%s", cont)) != 0)
                return rc;
            col = contlen;
            start = 1;
        }
        if (!start) {
            if ((rc = buf_append(b, " ", 1)) != 0)
                return rc;
            col++;
        }
        while (col + wlen > BOUNCE_LINE_MAX - 2) { /* hard split of a giant word */
            size_t take = BOUNCE_LINE_MAX - 2 - col;
            if ((rc = buf_append(b, w, take)) != 0 || (rc = buf_printf(b, "\r\n%s", cont)) != 0)
                return rc;
            w += take;
            wlen -= take;
            col = contlen;
        }
        if ((rc = buf_append(b, w, wlen)) != 0)
            return rc;
        col += wlen;
        start = 0;
        w += wlen;
        if (*w == ' ')
            w++;
    }
    return buf_append(b, "\r\n", 2);
}

/* bounce_field - "Name: value" folded as a header field. */
static int bounce_field(buf_t *b, const char *name, const char *value)
{
    char first[64];
    int n = snprintf(first, sizeof(first), "%s: ", name);

    if (n < 0 || (size_t)n >= sizeof(first))
        return PST_EINVAL;
    return bounce_put_folded(b, first, value, " ");
}

/* ---------------------------------------------------------------- parts 1 and 2 */

static const char *bounce_subject(enum bounce_action kind)
{
    if (kind == BOUNCE_FAILED)
        return "Undelivered Mail Returned to Sender";
    if (kind == BOUNCE_DELAYED)
        return "Delayed Mail (still being retried)";
    return "Successful Mail Delivery Report";
}

static const char *bounce_intro(enum bounce_action kind)
{
    if (kind == BOUNCE_FAILED)
        return "Your message could not be delivered to one or more of its recipients.\r\n"
               "This is a permanent error; the recipients and the reasons are listed\r\n"
               "below. The message, or only its header, is attached.\r\n";
    if (kind == BOUNCE_DELAYED)
        return "Your message could not yet be delivered to one or more of its\r\n"
               "recipients. Delivery will be retried; you do not need to send it again.\r\n"
               "You will be told if it finally fails.\r\n";
    return "Your message was delivered, as you asked to be told, to the recipients\r\n"
           "listed below.\r\n";
}

/* bounce_text_rcpt - one recipient's paragraph of part 1. */
static int bounce_text_rcpt(struct bounce_ctx *c, const struct bounce_rcpt *r)
{
    char addr[BOUNCE_ADDR_MAX], text[BOUNCE_TEXT_MAX], first[BOUNCE_ADDR_MAX + 64];
    int rc, n;

    bounce_clean(r->addr, addr, sizeof(addr), 0);
    n = snprintf(first, sizeof(first), "<%s>: %s, status %s", addr, bounce_action_name(r->action),
                 bounce_status(r));
    if (n < 0 || (size_t)n >= sizeof(first))
        return PST_ELIMIT;
    if ((rc = buf_append_str(c->text, "\r\n")) != 0 ||
        (rc = bounce_put_folded(c->text, "", first, "    ")) != 0)
        return rc;
    if (r->remote_mta && r->remote_mta[0]) {
        bounce_clean(r->remote_mta, text, sizeof(text), 1);
        if ((rc = bounce_put_folded(c->text, "    remote server: ", text, "    ")) != 0)
            return rc;
    }
    if (r->diagnostic && r->diagnostic[0]) {
        bounce_clean(r->diagnostic, text, sizeof(text), 1);
        if ((rc = bounce_put_folded(c->text, "    reason: ", text, "    ")) != 0)
            return rc;
    }
    return 0;
}

static int bounce_build_text(struct bounce_ctx *c)
{
    char host[BOUNCE_ADDR_MAX];
    size_t i;
    int rc;

    bounce_clean(c->host, host, sizeof(host), 1);
    if ((rc = buf_printf(c->text, "This is the mail system at host %s.\r\n\r\n", host)) != 0 ||
        (rc = buf_append_str(c->text, bounce_intro(c->kind))) != 0)
        return rc;
    for (i = 0; i < c->nsel; i++) {
        if ((rc = bounce_text_rcpt(c, &c->rcpts[c->sel[i]])) != 0)
            return rc;
    }
    return 0;
}

/* bounce_report_rcpt - one per-recipient block of part 2 (RFC 3464 2.3). */
static int bounce_report_rcpt(struct bounce_ctx *c, const struct bounce_rcpt *r)
{
    char val[BOUNCE_TEXT_MAX + 32], tmp[BOUNCE_TEXT_MAX], date[BOUNCE_DATE_LEN];
    const struct spool_rcpt *o = bounce_orig_rcpt(c->orig, r->addr);
    const char *orcpt = r->orcpt ? r->orcpt : (o ? o->orcpt : NULL);
    int rc, n;

    if ((rc = buf_append(c->report, "\r\n", 2)) != 0)
        return rc;
    if (orcpt && orcpt[0] &&
        (rc = bounce_field(c->report, "Original-Recipient", bounce_orcpt(orcpt, val, sizeof(val)))))
        return rc;
    n = snprintf(val, sizeof(val), "rfc822; %s", bounce_clean(r->addr, tmp, sizeof(tmp), 0));
    if (n < 0 || (size_t)n >= sizeof(val))
        return PST_ELIMIT;
    if ((rc = bounce_field(c->report, "Final-Recipient", val)) != 0 ||
        (rc = bounce_field(c->report, "Action", bounce_action_name(r->action))) != 0 ||
        (rc = bounce_field(c->report, "Status", bounce_status(r))) != 0)
        return rc;
    if (r->remote_mta && r->remote_mta[0]) {
        n = snprintf(val, sizeof(val), "dns; %s", bounce_clean(r->remote_mta, tmp, sizeof(tmp), 1));
        if (n < 0 || (size_t)n >= sizeof(val) || (rc = bounce_field(c->report, "Remote-MTA", val)))
            return rc ? rc : PST_ELIMIT;
    }
    if (r->diagnostic && r->diagnostic[0]) {
        bounce_clean(r->diagnostic, tmp, sizeof(tmp), 1);
        n = snprintf(val, sizeof(val), "%s%s", bounce_has_type(tmp) ? "" : "X-Postern; ", tmp);
        if (n < 0 || (size_t)n >= sizeof(val) ||
            (rc = bounce_field(c->report, "Diagnostic-Code", val)))
            return rc ? rc : PST_ELIMIT;
    }
    if (r->last_attempt > 0 && bounce_date(r->last_attempt, date) == 0 &&
        (rc = bounce_field(c->report, "Last-Attempt-Date", date)) != 0)
        return rc;
    return 0;
}

/* bounce_build_report - part 2: per-message fields then per-recipient blocks (RFC 3464 2.2). */
static int bounce_build_report(struct bounce_ctx *c)
{
    char val[BOUNCE_TEXT_MAX + 32], tmp[BOUNCE_TEXT_MAX], date[BOUNCE_DATE_LEN];
    size_t i;
    int rc, n;

    n = snprintf(val, sizeof(val), "dns; %s", bounce_clean(c->host, tmp, sizeof(tmp), 1));
    if (n < 0 || (size_t)n >= sizeof(val))
        return PST_ELIMIT;
    if ((rc = bounce_field(c->report, "Reporting-MTA", val)) != 0)
        return rc;
    if (spool_qid_valid(c->orig->qid) &&
        (rc = bounce_field(c->report, "X-Postern-Queue-ID", c->orig->qid)) != 0)
        return rc;
    if (c->orig->envid && c->orig->envid[0] &&
        (rc = bounce_field(c->report, "Original-Envelope-Id",
                           bounce_envid(c->orig->envid, val, sizeof(val)))) != 0)
        return rc;
    if (c->orig->time > 0 && bounce_date(c->orig->time, date) == 0 &&
        (rc = bounce_field(c->report, "Arrival-Date", date)) != 0)
        return rc;
    for (i = 0; i < c->nsel; i++) {
        if ((rc = bounce_report_rcpt(c, &c->rcpts[c->sel[i]])) != 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- the original content */

/* bounce_pread_full - read exactly len bytes at off; PST_EIO on error or early end. */
static int bounce_pread_full(int fd, void *dst, size_t len, off_t off)
{
    size_t have = 0;
    ssize_t n;

    while (have < len) {
        n = pread(fd, (char *)dst + have, len - have, off + (off_t)have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return PST_EIO;
        if (n == 0) {
            errno = EIO; /* content shorter than the envelope said */
            return PST_EIO;
        }
        have += (size_t)n;
    }
    return 0;
}

static int bounce_mem_has8bit(const char *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if ((unsigned char)p[i] >= 0x80)
            return 1;
    }
    return 0;
}

/*
 * bounce_read_headers - the original header block into c->headers: bytes up
 * to and including the CRLF (or LF) ending the last header line before the
 * first empty line; all of the content if there is none; cut at the last
 * line end before BOUNCE_HEADERS_MAX.
 */
static int bounce_read_headers(struct bounce_ctx *c)
{
    size_t want = c->len < BOUNCE_HEADERS_MAX ? (size_t)c->len : BOUNCE_HEADERS_MAX;
    size_t i, end = want, line = 0;
    char *p;
    int rc;

    p = malloc(want + 1);
    if (p == NULL)
        return PST_ENOMEM;
    if ((rc = bounce_pread_full(c->fd, p, want, c->off)) != 0)
        goto out;
    for (i = 0; i < want; i++) {
        if (i == line && (p[i] == '\n' || (p[i] == '\r' && i + 1 < want && p[i + 1] == '\n'))) {
            end = i; /* the empty line */
            break;
        }
        if (p[i] == '\n')
            line = i + 1;
    }
    if (i == want && want < c->len)
        end = line; /* cut: keep whole lines only */
    c->has8bit |= bounce_mem_has8bit(p, end);
    rc = buf_append(c->headers, p, end);
out:
    free(p);
    return rc;
}

/* bounce_mem_contains - 1 if needle occurs in the len bytes at p. */
static int bounce_mem_contains(const char *p, size_t len, const char *needle)
{
    return memmem(p, len, needle, strlen(needle)) != NULL;
}

/*
 * bounce_scan_content - one pass over the original: note 8-bit bytes and
 * whether boundary occurs in it (*found). Chunks overlap by the boundary
 * length so that a match across two reads is seen.
 */
static int bounce_scan_content(struct bounce_ctx *c, const char *boundary, int *found)
{
    size_t blen = strlen(boundary), keep = 0, n, total;
    uint64_t pos = 0;
    char *p;
    int rc = 0;

    *found = 0;
    p = malloc(BOUNCE_CHUNK + blen);
    if (p == NULL)
        return PST_ENOMEM;
    while (pos < c->len) {
        n = c->len - pos < BOUNCE_CHUNK ? (size_t)(c->len - pos) : BOUNCE_CHUNK;
        if ((rc = bounce_pread_full(c->fd, p + keep, n, c->off + (off_t)pos)) != 0)
            break;
        c->has8bit |= bounce_mem_has8bit(p + keep, n);
        total = keep + n;
        if (bounce_mem_contains(p, total, boundary)) {
            *found = 1;
            break;
        }
        pos += n;
        keep = total < blen - 1 ? total : blen - 1; /* tail that may start a match */
        memmove(p, p + total - keep, keep);
    }
    free(p);
    return rc;
}

/* bounce_pick_boundary - a random boundary found in no part (RFC 2046 5.1.1). */
static int bounce_pick_boundary(struct bounce_ctx *c)
{
    unsigned char rnd[16];
    int tries, found, rc;
    size_t i;

    for (tries = 0; tries < BOUNCE_BOUNDARY_TRIES; tries++) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return PST_EIO;
        memcpy(c->boundary, "=_postern_", 10);
        for (i = 0; i < sizeof(rnd); i++) {
            c->boundary[10 + 2 * i] = "0123456789abcdef"[rnd[i] >> 4];
            c->boundary[11 + 2 * i] = "0123456789abcdef"[rnd[i] & 15];
        }
        c->boundary[BOUNCE_BOUNDARY_LEN] = '\0';
        if (bounce_mem_contains(c->text->data, c->text->len, c->boundary) ||
            bounce_mem_contains(c->report->data, c->report->len, c->boundary) ||
            bounce_mem_contains(c->headers->data, c->headers->len, c->boundary))
            continue;
        if (!c->full)
            return 0;
        if ((rc = bounce_scan_content(c, c->boundary, &found)) != 0)
            return rc;
        if (!found)
            return 0;
    }
    return PST_EAGAIN;
}

/* bounce_select - the recipients whose NOTIFY wants this DSN, and the DSN's kind. */
static int bounce_select(struct bounce_ctx *c, size_t n)
{
    int any_failed = 0, any_delayed = 0;
    size_t i;

    c->sel = calloc(n, sizeof(*c->sel));
    if (c->sel == NULL)
        return PST_ENOMEM;
    for (i = 0; i < n; i++) {
        if (!bounce_wanted(c->orig, &c->rcpts[i]))
            continue;
        c->sel[c->nsel++] = i;
        any_failed |= c->rcpts[i].action == BOUNCE_FAILED;
        any_delayed |= c->rcpts[i].action == BOUNCE_DELAYED;
    }
    if (c->nsel == 0)
        return PST_ENOENT;
    c->kind = any_failed ? BOUNCE_FAILED : any_delayed ? BOUNCE_DELAYED : BOUNCE_DELIVERED;
    return 0;
}

/* ---------------------------------------------------------------- writing the DSN */

static int bounce_write_buf(struct spool_writer *w, const buf_t *b)
{
    return spool_writer_write(w, b->data, b->len);
}

/* bounce_top - the message header and preamble (see the layout at the top of the file). */
static int bounce_top(struct bounce_ctx *c, buf_t *b, const char *qid)
{
    char host[BOUNCE_ADDR_MAX], addr[BOUNCE_ADDR_MAX + 2], date[BOUNCE_DATE_LEN];
    char val[BOUNCE_ADDR_MAX + 64];
    int rc, n;

    bounce_clean(c->host, host, sizeof(host), 1);
    if ((rc = bounce_date((int64_t)time(NULL), date)) != 0)
        return rc;
    if ((rc = buf_printf(b, "Received: by %s (Postern) id %s;\r\n\t%s\r\n", host, qid, date)) != 0)
        return rc;
    n = snprintf(val, sizeof(val), "%s@%s (Mail Delivery System)", BOUNCE_FROM_USER, host);
    if (n < 0 || (size_t)n >= sizeof(val) || (rc = bounce_field(b, "From", val)) != 0)
        return rc ? rc : PST_ELIMIT;
    n = snprintf(addr, sizeof(addr), "<%s>",
                 bounce_clean(c->orig->sender, val, BOUNCE_ADDR_MAX - 2, 0));
    if (n < 0 || (size_t)n >= sizeof(addr) || (rc = bounce_field(b, "To", addr)) != 0)
        return rc ? rc : PST_ELIMIT;
    n = snprintf(val, sizeof(val), "<%s.dsn@%s>", qid, host);
    if (n < 0 || (size_t)n >= sizeof(val))
        return PST_ELIMIT;
    if ((rc = bounce_field(b, "Subject", bounce_subject(c->kind))) != 0 ||
        (rc = bounce_field(b, "Date", date)) != 0 || (rc = bounce_field(b, "Message-ID", val)) ||
        (rc = bounce_field(b, "Auto-Submitted", "auto-replied")) != 0 ||
        (rc = bounce_field(b, "MIME-Version", "1.0")) != 0)
        return rc;
    return buf_printf(b,
                      "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                      "\tboundary=\"%s\"\r\n"
                      "Content-Transfer-Encoding: %s\r\n"
                      "\r\n"
                      "This is a MIME-encapsulated message.\r\n",
                      c->boundary, c->has8bit ? "8bit" : "7bit");
}

/* bounce_part_head - delimiter and header of one body part. */
static int bounce_part_head(struct bounce_ctx *c, buf_t *b, const char *descr, const char *type,
                            int cte8bit)
{
    return buf_printf(b, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n%s\r\n",
                      c->boundary, descr, type,
                      cte8bit ? "Content-Transfer-Encoding: 8bit\r\n" : "");
}

/* bounce_copy_content - stream the whole original into w, byte for byte. */
static int bounce_copy_content(struct bounce_ctx *c, struct spool_writer *w)
{
    uint64_t pos = 0;
    size_t n;
    char *p;
    int rc = 0;

    p = malloc(BOUNCE_CHUNK);
    if (p == NULL)
        return PST_ENOMEM;
    while (pos < c->len && rc == 0) {
        n = c->len - pos < BOUNCE_CHUNK ? (size_t)(c->len - pos) : BOUNCE_CHUNK;
        rc = bounce_pread_full(c->fd, p, n, c->off + (off_t)pos);
        if (rc == 0)
            rc = spool_writer_write(w, p, n);
        pos += n;
    }
    free(p);
    return rc;
}

/* bounce_write_body - everything after the envelope. */
static int bounce_write_body(struct bounce_ctx *c, struct spool_writer *w, const char *qid)
{
    int text8 = bounce_mem_has8bit(c->text->data, c->text->len);
    int part3_8bit = c->full ? c->has8bit : bounce_mem_has8bit(c->headers->data, c->headers->len);
    buf_t *b = buf_new(BOUNCE_REPORT_MAX);
    int rc;

    if (b == NULL)
        return PST_ENOMEM;
    if ((rc = bounce_top(c, b, qid)) != 0 ||
        (rc = bounce_part_head(c, b, "Notification",
                               text8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
                               text8)) != 0 ||
        (rc = bounce_write_buf(w, b)) != 0 || (rc = bounce_write_buf(w, c->text)) != 0)
        goto out;
    buf_reset(b);
    if ((rc = bounce_part_head(c, b, "Delivery report", "message/delivery-status",
                               bounce_mem_has8bit(c->report->data, c->report->len))) != 0 ||
        (rc = bounce_write_buf(w, b)) != 0 || (rc = bounce_write_buf(w, c->report)) != 0)
        goto out;
    buf_reset(b);
    if (c->full)
        rc = bounce_part_head(c, b, "Undelivered Message", "message/rfc822", part3_8bit);
    else
        rc = bounce_part_head(
            c, b, c->kind == BOUNCE_FAILED ? "Undelivered Message Headers" : "Message Headers",
            "text/rfc822-headers", part3_8bit);
    if (rc != 0 || (rc = bounce_write_buf(w, b)) != 0)
        goto out;
    rc = c->full ? bounce_copy_content(c, w) : bounce_write_buf(w, c->headers);
    buf_reset(b);
    if (rc == 0 && (rc = buf_printf(b, "\r\n--%s--\r\n", c->boundary)) == 0)
        rc = bounce_write_buf(w, b);
out:
    buf_free(&b);
    return rc;
}

static int bounce_nonascii(const char *s)
{
    return s != NULL && bounce_mem_has8bit(s, strlen(s));
}

/* bounce_spool - the DSN's envelope (null sender -> orig->sender), body, commit. */
static int bounce_spool(struct bounce_ctx *c, const char *spool_dir, char qid[SPOOL_QID_LEN + 1])
{
    struct spool_writer *w = NULL;
    struct spool_env *env = spool_env_new();
    int rc;

    if (env == NULL)
        return PST_ENOMEM;
    env->sender = strdup("");
    env->proto = strdup(BOUNCE_PROTO);
    env->body = c->has8bit ? 2 : 0;
    env->smtputf8 = c->orig->smtputf8 || bounce_nonascii(c->orig->sender);
    if (env->sender == NULL || env->proto == NULL) {
        rc = PST_ENOMEM;
        goto out;
    }
    if ((rc = spool_env_add_rcpt(env, c->orig->sender, NULL, SMTP_NOTIFY_NEVER)) != 0 ||
        (rc = spool_writer_open(spool_dir, env, &w)) != 0)
        goto out;
    if ((rc = bounce_write_body(c, w, env->qid)) != 0) {
        spool_writer_abort(&w);
        goto out;
    }
    if ((rc = spool_writer_commit_sync(&w)) != 0)
        goto out;
    memcpy(qid, env->qid, SPOOL_QID_LEN + 1);
out:
    spool_env_free(&env);
    return rc;
}

static void bounce_ctx_release(struct bounce_ctx *c)
{
    free(c->sel);
    c->sel = NULL;
    buf_free(&c->text);
    buf_free(&c->report);
    buf_free(&c->headers);
}

/* bounce_args_ok - PST_EINVAL for arguments that cannot describe a message. */
static int bounce_args_ok(const char *spool_dir, const char *reporting_mta,
                          const struct spool_env *orig, int content_fd, uint64_t content_len,
                          const struct bounce_rcpt *rcpts, size_t n, const char *qid_out)
{
    size_t i;

    if (spool_dir == NULL || reporting_mta == NULL || reporting_mta[0] == '\0' || orig == NULL ||
        qid_out == NULL || (n > 0 && rcpts == NULL) || (content_len > 0 && content_fd < 0))
        return PST_EINVAL;
    for (i = 0; i < n; i++) {
        if (rcpts[i].addr == NULL || rcpts[i].addr[0] == '\0' ||
            (unsigned)rcpts[i].action > (unsigned)BOUNCE_RELAYED)
            return PST_EINVAL;
    }
    return 0;
}

int bounce_notify(const char *spool_dir, const char *reporting_mta, const struct spool_env *orig,
                  int content_fd, off_t content_offset, uint64_t content_len,
                  const struct bounce_rcpt *rcpts, size_t n, char qid_out[SPOOL_QID_LEN + 1])
{
    struct bounce_ctx c = {0};
    char q[128];
    int rc;

    if ((rc = bounce_args_ok(spool_dir, reporting_mta, orig, content_fd, content_len, rcpts, n,
                             qid_out)) != 0)
        return rc;
    qid_out[0] = '\0';
    if (orig->sender == NULL || orig->sender[0] == '\0' || n == 0)
        return PST_ENOENT; /* never bounce a bounce (RFC 3461 6.2, RFC 5321 4.5.5) */
    if (n > BOUNCE_RCPT_MAX)
        return PST_ELIMIT;
    c.host = reporting_mta;
    c.orig = orig;
    c.fd = content_fd;
    c.off = content_offset;
    c.len = content_len;
    c.rcpts = rcpts;
    if ((rc = bounce_select(&c, n)) != 0)
        goto out;
    c.full = c.kind == BOUNCE_FAILED && orig->ret != 2 && content_len <= BOUNCE_FULL_MAX;
    c.text = buf_new(BOUNCE_REPORT_MAX / 2);
    c.report = buf_new(BOUNCE_REPORT_MAX / 2);
    c.headers = buf_new(BOUNCE_HEADERS_MAX);
    if (c.text == NULL || c.report == NULL || c.headers == NULL) {
        rc = PST_ENOMEM;
        goto out;
    }
    if ((rc = bounce_build_text(&c)) != 0 || (rc = bounce_build_report(&c)) != 0 ||
        (!c.full && (rc = bounce_read_headers(&c)) != 0))
        goto out;
    c.has8bit |= bounce_mem_has8bit(c.text->data, c.text->len) ||
                 bounce_mem_has8bit(c.report->data, c.report->len);
    if ((rc = bounce_pick_boundary(&c)) != 0 || (rc = bounce_spool(&c, spool_dir, qid_out)) != 0)
        goto out;
    log_info("bounce queued qid=%s orig=%s action=%s nrcpt=%zu to=%s returned=%s", qid_out,
             spool_qid_valid(orig->qid) ? orig->qid : "-", bounce_action_name(c.kind), c.nsel,
             log_quote(q, sizeof(q), orig->sender, strlen(orig->sender)),
             c.full ? "full" : "headers");
out:
    if (rc != 0 && rc != PST_ENOENT)
        log_warn("bounce failed orig=%s err=%s", spool_qid_valid(orig->qid) ? orig->qid : "-",
                 err_str(rc));
    bounce_ctx_release(&c);
    return rc;
}
