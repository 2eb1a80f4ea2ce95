/*
 * log.c - one line per event, to stderr or syslog(3) (see log.h).
 *
 * stderr line format (UTC, millisecond precision):
 *
 *   2026-11-24T20:49:00.123Z postern[1234]: info smtpd connected id=5f1c addr=192.0.2.7
 *   `------ timestamp ------' `tag'`pid'   `lvl' `-------- caller's message --------'
 *
 * Each line is assembled in one buffer and written with a single write(2)
 * so that lines from several processes sharing stderr do not interleave.
 * syslog lines carry the same "level message" text with facility LOG_MAIL
 * and the matching syslog priority; syslog adds its own time and tag.
 *
 * Safety: a message is limited to LOG_LINE_MAX bytes and truncated with
 * "..." past it; any control character that reaches the logger (CR, LF,
 * ESC ...) is replaced by '?', so even a caller that forgot log_quote()
 * cannot split or forge a line. log_quote() is the proper escape for
 * network data.
 *
 * Failure policy: logging never fails visibly; a failed write is ignored.
 * The only exit is log_fatal(), for start-up errors.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

#define LOG_LINE_MAX 4096 /* bytes in one line, prefix included */
#define LOG_TRUNC_MARK "..."

static const char *log_tag = "postern";
static enum log_level log_min_level = LOG_LVL_INFO;
static enum log_target log_dest = LOG_TO_STDERR;
static int log_syslog_open;

static const char *const log_level_names[] = {
    [LOG_LVL_DEBUG] = "debug", [LOG_LVL_INFO] = "info",   [LOG_LVL_WARN] = "warn",
    [LOG_LVL_ERROR] = "error", [LOG_LVL_FATAL] = "fatal",
};

static const int log_syslog_prio[] = {
    [LOG_LVL_DEBUG] = LOG_DEBUG, [LOG_LVL_INFO] = LOG_INFO,  [LOG_LVL_WARN] = LOG_WARNING,
    [LOG_LVL_ERROR] = LOG_ERR,   [LOG_LVL_FATAL] = LOG_CRIT,
};

static void log_open_syslog(void)
{
    if (log_syslog_open)
        closelog();
    openlog(log_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
    log_syslog_open = 1;
}

void log_init(const char *tag, enum log_level level, enum log_target target)
{
    if (tag != NULL)
        log_tag = tag;
    if ((unsigned)level <= LOG_LVL_FATAL)
        log_min_level = level;
    log_dest = target == LOG_TO_SYSLOG ? LOG_TO_SYSLOG : LOG_TO_STDERR;
    if (log_dest == LOG_TO_SYSLOG)
        log_open_syslog();
}

void log_set_tag(const char *tag)
{
    if (tag == NULL)
        return;
    log_tag = tag;
    if (log_dest == LOG_TO_SYSLOG)
        log_open_syslog();
}

int log_level_parse(const char *s, enum log_level *out)
{
    size_t i;

    if (s == NULL || out == NULL)
        return PST_EINVAL;
    for (i = 0; i < PST_ARRAY_LEN(log_level_names); i++) {
        if (strcasecmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LVL_WARN;
        return 0;
    }
    return PST_EINVAL;
}

int log_enabled(enum log_level lvl)
{
    return lvl >= log_min_level;
}

/* log_sanitize - replace control characters in s[0..len) by '?'. */
static void log_sanitize(char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            s[i] = '?';
    }
}

/* log_format_prefix - "2026-11-24T20:49:00.123Z tag[pid]: level " into out. Returns length. */
static size_t log_format_prefix(char *out, size_t outsz, enum log_level lvl)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    int n;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL ||
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        memcpy(stamp, "0000-00-00T00:00:00", sizeof("0000-00-00T00:00:00"));
        ts.tv_nsec = 0;
    }
    n = snprintf(out, outsz, "%s.%03ldZ %s[%ld]: %s ", stamp, (long)(ts.tv_nsec / 1000000), log_tag,
                 (long)getpid(), log_level_names[lvl]);
    if (n < 0)
        return 0;
    if ((size_t)n >= outsz)
        return outsz - 1; /* absurdly long tag: keep what fits */
    return (size_t)n;
}

/* log_format_body - vsnprintf into out, marking truncation. Returns length. */
__attribute__((format(printf, 3, 0))) static size_t log_format_body(char *out, size_t outsz,
                                                                    const char *fmt, va_list ap)
{
    int n;
    size_t mark = sizeof(LOG_TRUNC_MARK) - 1;

    if (outsz == 0)
        return 0;
    n = vsnprintf(out, outsz, fmt, ap);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    if ((size_t)n < outsz)
        return (size_t)n;
    if (outsz > mark)
        memcpy(out + outsz - 1 - mark, LOG_TRUNC_MARK, mark);
    return outsz - 1;
}

static void log_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum log_level lvl, const char *fmt,
                                                           va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t pre, body;
    int saved_errno = errno;

    if ((unsigned)lvl > LOG_LVL_FATAL)
        lvl = LOG_LVL_ERROR;
    if (!log_enabled(lvl))
        return;
    if (log_dest == LOG_TO_SYSLOG) {
        pre = (size_t)snprintf(line, sizeof(line), "%s ", log_level_names[lvl]);
        body = log_format_body(line + pre, sizeof(line) - pre, fmt, ap);
        log_sanitize(line + pre, body);
        syslog(log_syslog_prio[lvl], "%s", line);
        errno = saved_errno;
        return;
    }
    pre = log_format_prefix(line, sizeof(line) - 1, lvl);
    body = log_format_body(line + pre, sizeof(line) - 1 - pre, fmt, ap);
    log_sanitize(line, pre + body);
    line[pre + body] = '\n';
    log_write_all(STDERR_FILENO, line, pre + body + 1);
    errno = saved_errno;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(LOG_LVL_FATAL, fmt, ap);
    va_end(ap);
    exit(1);
}

/* log_quote_plain - 1 if byte c may appear in an unquoted value. */
static int log_quote_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* log_quote_width - bytes needed to render c inside quotes. */
static size_t log_quote_width(unsigned char c)
{
    if (c == '"' || c == '\\')
        return 2;
    if (c < 0x20 || c >= 0x7f)
        return 4;
    return 1;
}

static size_t log_quote_put(char *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";

    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c < 0x20 || c >= 0x7f) {
        out[0] = '\\';
        out[1] = 'x';
        out[2] = hex[c >> 4];
        out[3] = hex[c & 0xf];
        return 4;
    }
    out[0] = (char)c;
    return 1;
}

const char *log_quote(char *out, size_t outsz, const char *in, size_t inlen)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t i, total, pos = 0, reserve, mark = sizeof(LOG_TRUNC_MARK) - 1;
    int quote = (inlen == 0), opened = 0;

    if (out == NULL || outsz == 0)
        return out;
    if (p == NULL)
        inlen = 0, quote = 1;
    total = 0;
    for (i = 0; i < inlen; i++) {
        if (!log_quote_plain(p[i]))
            quote = 1;
        total += log_quote_width(p[i]);
    }
    total += quote ? 2 : 0;
    if (total < outsz) {
        reserve = 0;
    } else {
        reserve = mark + (quote ? 1 : 0); /* "..." and the closing quote */
    }
    if (quote && pos + 1 + reserve < outsz) {
        out[pos++] = '"';
        opened = 1;
    }
    for (i = 0; i < inlen; i++) {
        size_t w = log_quote_width(p[i]);
        size_t tail = reserve ? reserve : (quote ? 1 : 0);
        if (pos + w + tail >= outsz)
            break;
        pos += log_quote_put(out + pos, p[i]);
    }
    if (reserve) {
        for (i = 0; i < mark && pos + 1 < outsz; i++)
            out[pos++] = '.';
    }
    if (opened && pos + 1 < outsz)
        out[pos++] = '"';
    out[pos] = '\0';
    return out;
}
