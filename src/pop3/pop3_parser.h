/*
 * pop3_parser.h - parse one POP3 command line (RFC 1939, 2449, 2595, 5034)
 * into a typed command.
 *
 * Pure and allocation-free: the caller passes one line without its CRLF
 * (the session has already enforced the configured line-length limit) and
 * gets a struct pop3_cmd whose arguments are copies inside the struct.
 * Syntax errors come back with the exact reply line to send ("-ERR ..."),
 * so every caller answers a given mistake the same way. The parser knows
 * each verb's argument count and which arguments are message numbers; it
 * does not know session state (the session's command table does).
 */
#ifndef POSTERN_POP3_PARSER_H
#define POSTERN_POP3_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

enum pop3_verb {
    POP3_V_UNKNOWN = 0,
    POP3_V_USER,
    POP3_V_PASS,
    POP3_V_APOP,
    POP3_V_AUTH,
    POP3_V_STAT,
    POP3_V_LIST,
    POP3_V_UIDL,
    POP3_V_RETR,
    POP3_V_TOP,
    POP3_V_DELE,
    POP3_V_NOOP,
    POP3_V_RSET,
    POP3_V_QUIT,
    POP3_V_CAPA,
    POP3_V_STLS,
    POP3_V__COUNT
};

#define POP3_KEYWORD_MAX 4 /* RFC 1939 3: keywords are 3 or 4 characters */
#define POP3_NARGS_MAX 2
/* Bytes of one argument. RFC 2449 4 lets arguments reach 255 octets; an AUTH initial response
 * (RFC 5034 4) and a PASS with spaces fit within it as well. */
#define POP3_ARG_MAX 255
#define POP3_MSGNUM_DIGITS_MAX 9 /* message numbers and TOP line counts: at most 999999999 */

struct pop3_cmd {
    enum pop3_verb verb;
    char keyword[POP3_KEYWORD_MAX + 1]; /* upper-cased as sent (truncated), for logs */
    size_t nargs;
    char arg[POP3_NARGS_MAX][POP3_ARG_MAX + 1]; /* NUL-terminated copies */
    size_t arglen[POP3_NARGS_MAX];
    /* Numeric arguments, filled for LIST/UIDL (when given), RETR, DELE and TOP. */
    int has_msg;
    unsigned long msg;   /* 1-based message number, >= 1 */
    unsigned long lines; /* TOP: body lines, >= 0 */
};

/*
 * pop3_cmd_parse - parse line[0..len) (no CRLF). Returns 0 and fills *cmd;
 * an unknown keyword returns 0 with verb POP3_V_UNKNOWN (the session
 * answers "-ERR Unknown command"). On a syntax error returns PST_EINVAL or
 * PST_ELIMIT and sets *reply to a static "-ERR ..." line (no CRLF);
 * cmd->verb and cmd->keyword are still set. *reply is NULL on success.
 *
 * Rules: keyword, then arguments separated by single spaces; trailing
 * spaces are ignored. PASS takes the rest of the line after one space as
 * one argument (RFC 1939 7: a password may contain spaces). AUTH takes a
 * mechanism (upper-cased) and an optional initial response. A NUL or any
 * control character in the line is an error. Message numbers are decimal
 * digits only (no sign, no blanks), 1 .. 999999999.
 */
PST_MUST_CHECK int pop3_cmd_parse(const char *line, size_t len, struct pop3_cmd *cmd,
                                  const char **reply);

/* pop3_verb_name - upper-case keyword of a verb ("RETR"), "UNKNOWN" for others. */
const char *pop3_verb_name(enum pop3_verb v);

/*
 * pop3_parse_number - strict decimal digits in s[0..len) into *out (at most
 * POP3_MSGNUM_DIGITS_MAX digits). Returns 0, PST_EINVAL (empty, non-digit)
 * or PST_ELIMIT (too many digits). Leading zeros are allowed.
 */
PST_MUST_CHECK int pop3_parse_number(const char *s, size_t len, unsigned long *out);

#endif
