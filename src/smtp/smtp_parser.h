/*
 * smtp_parser.h - parse one SMTP command line into a typed command.
 *
 * Pure and allocation-free: the caller passes one line without its CRLF
 * (the session has already enforced the line-length limit) and gets a
 * struct smtp_cmd whose string fields are copies inside the struct. Syntax
 * errors come back with the exact reply to send, so that every caller
 * answers the same way.
 *
 * Grammar: RFC 5321 4.1.1 (verbs), 4.1.2 (paths), RFC 1869/5321 esmtp
 * parameters (keyword=value, keywords case-insensitive), with the
 * parameters Postern advertises: SIZE (RFC 1870), BODY=7BIT|8BITMIME
 * (RFC 6152), SMTPUTF8 (RFC 6531), AUTH=<mailbox> (RFC 4954 5, accepted
 * and ignored), RET/ENVID (MAIL) and NOTIFY/ORCPT (RCPT) of RFC 3461;
 * BDAT <size> [LAST] (RFC 3030). An unknown or repeated parameter is a
 * 555 5.5.4 error; a NUL byte anywhere is a 500 5.5.2 error.
 */
#ifndef POSTERN_SMTP_PARSER_H
#define POSTERN_SMTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/mailaddr.h"

enum smtp_verb {
    SMTP_V_UNKNOWN = 0,
    SMTP_V_HELO,
    SMTP_V_EHLO,
    SMTP_V_MAIL,
    SMTP_V_RCPT,
    SMTP_V_DATA,
    SMTP_V_BDAT,
    SMTP_V_RSET,
    SMTP_V_NOOP,
    SMTP_V_QUIT,
    SMTP_V_VRFY,
    SMTP_V_EXPN,
    SMTP_V_HELP,
    SMTP_V_STARTTLS,
    SMTP_V_AUTH,
    SMTP_V__COUNT
};

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };

enum smtp_notify_bits {
    SMTP_NOTIFY_NEVER = 1 << 0,
    SMTP_NOTIFY_SUCCESS = 1 << 1,
    SMTP_NOTIFY_FAILURE = 1 << 2,
    SMTP_NOTIFY_DELAY = 1 << 3,
};

#define SMTP_ARG_MAX 512   /* HELO/VRFY/HELP/AUTH argument, copied */
#define SMTP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500 /* RFC 3461 4.2 */

struct smtp_cmd {
    enum smtp_verb verb;
    char verb_text[16];         /* the verb as sent, for logs (truncated) */
    char arg[SMTP_ARG_MAX + 1]; /* HELO/EHLO domain, AUTH "MECH [initial]", VRFY/HELP text */

    struct mailaddr addr; /* MAIL / RCPT path */

    /* MAIL parameters */
    int has_size;
    uint64_t size;
    enum smtp_body body;
    int smtputf8;
    int ret; /* 0 none, 1 FULL, 2 HDRS */
    char envid[SMTP_ENVID_MAX + 1];

    /* RCPT parameters */
    unsigned notify;                /* SMTP_NOTIFY_* bits, 0 = not given */
    char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;addr" as given (xtext), "" = none */

    /* BDAT */
    uint64_t chunk_size;
    int last;
};

/*
 * Reply for a RCPT whose address holds non-ASCII (cmd.addr.has_utf8) in a
 * transaction whose MAIL had no SMTPUTF8. The parser cannot know that state,
 * so RCPT is parsed with MAILADDR_ALLOW_UTF8 and the session must check.
 * (MAIL itself gets this reply from the parser.) RFC 6531, RFC 6533 X.6.7.
 */
#define SMTP_REPLY_NEED_SMTPUTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8"

/*
 * smtp_cmd_parse - parse line[0..len) (no CRLF). On success returns 0 and
 * fills *cmd. An unrecognised verb returns 0 with verb SMTP_V_UNKNOWN (the
 * session answers 500). On a syntax error returns PST_EINVAL or PST_ELIMIT
 * and sets *reply to a static string holding the full reply line without
 * CRLF, e.g. "501 5.1.7 Bad sender address syntax"; cmd->verb and
 * cmd->verb_text are still set then, other fields are unspecified.
 * *reply is NULL on success. Trailing spaces on the line are ignored.
 * AUTH: arg is "MECH" or "MECH initial-response", MECH upper-cased.
 * BDAT: a syntax error means the session can no longer find the end of the
 * chunk and should close the connection after the reply.
 */
PST_MUST_CHECK int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
                                  const char **reply);

/* smtp_verb_name - upper-case name of a verb ("MAIL"), "UNKNOWN" for others. */
const char *smtp_verb_name(enum smtp_verb v);

#endif
