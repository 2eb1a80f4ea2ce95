/*
 * log.h - one line per event, key=value, to stderr or syslog.
 *
 * Line format (stderr):  2026-11-24T20:49:00.123Z postern[1234]: info smtpd connected id=5f1c addr=...
 * Callers format "subsystem event key=value ..." themselves; values that come
 * from the network must go through log_quote() so that spaces, quotes and
 * control characters cannot forge or split log lines. Passwords, AUTH
 * payloads, tokens and keys are never passed to these functions.
 *
 * The logger is process-global configuration (set once at start-up, before
 * the event loop) and is not thread-safe beyond what stdio/syslog give.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR, LOG_LVL_FATAL };

enum log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG };

/* log_init - set the program tag (borrowed, must outlive the logger), level and target. */
void log_init(const char *tag, enum log_level level, enum log_target target);

/* log_set_tag - change the tag after fork (e.g. "postern/smtpd"). Borrowed. */
void log_set_tag(const char *tag);

/* log_level_parse - "debug", "info", ...; returns 0 and sets *out, or PST_EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/* log_fatal - log at fatal level and exit(1). Only for start-up failures. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* log_enabled - true if a message at lvl would be written (skip costly formatting). */
int log_enabled(enum log_level lvl);

/*
 * log_quote - render untrusted bytes for a log value into out (size outsz,
 * always NUL-terminated). Printable ASCII without spaces/quotes/backslash is
 * copied as is; otherwise the value is wrapped in double quotes with \" \\
 * and \xHH escapes. Input longer than fits is truncated and ends in "...".
 * Returns out.
 */
const char *log_quote(char *out, size_t outsz, const char *in, size_t inlen);

#endif
