/*
 * pop3_parser.c - parse one POP3 command line into a struct pop3_cmd.
 *
 * RFCs: RFC 1939 3 (commands are a case-insensitive keyword of 3-4
 * characters, then arguments separated by a single SPACE, each up to 40
 * characters in RFC 1939 and up to 255 octets in RFC 2449 4), RFC 1939 5-7
 * (argument counts of each command; "PASS string" may contain spaces),
 * RFC 2449 5 (CAPA), RFC 2595 4 (STLS), RFC 5034 4 (AUTH mechanism
 * [initial-response], mechanism names upper-cased).
 *
 * Design: a const table gives each verb its keyword, argument count range
 * and which arguments are numbers. Leniency is small and deliberate:
 * trailing blanks are ignored and several spaces between arguments are
 * accepted (some clients send them); a tab or other control character is
 * an error.
 *
 * Failure policy: pure function, no allocation, no logging. Bad input
 * returns PST_EINVAL (PST_ELIMIT for over-long values) with *reply set;
 * nothing aborts.
 */
#include "pop3/pop3_parser.h"

#include <string.h>

#define POP3_R_NUL "-ERR Syntax error: NUL or control character in command"
#define POP3_R_KEYWORD "-ERR Syntax error: bad command keyword"
#define POP3_R_NOARG "-ERR Syntax error: this command takes no argument"
#define POP3_R_ARGS "-ERR Syntax error: wrong number of arguments"
#define POP3_R_LONG "-ERR Syntax error: argument too long"
#define POP3_R_NUMBER "-ERR Syntax error: message number expected"
#define POP3_R_NUMBER_LONG "-ERR Syntax error: number too large"
#define POP3_R_ZERO "-ERR Syntax error: message numbers start at 1"

/* Argument flags. */
#define POP3_A_MSG 1u   /* argument 0 is a message number */
#define POP3_A_LINES 2u /* argument 1 is a line count (TOP) */
#define POP3_A_REST 4u  /* argument 0 is the whole rest of the line (PASS) */
#define POP3_A_MECH 8u  /* argument 0 is a SASL mechanism: upper-case it (AUTH) */

struct pop3_verb_def {
    enum pop3_verb verb;
    const char *name;
    unsigned char min_args;
    unsigned char max_args;
    unsigned flags;
};

static const struct pop3_verb_def pop3_verbs[] = {
    {POP3_V_USER, "USER", 1, 1, 0},
    {POP3_V_PASS, "PASS", 1, 1, POP3_A_REST},
    {POP3_V_APOP, "APOP", 2, 2, 0},
    {POP3_V_AUTH, "AUTH", 0, 2, POP3_A_MECH}, /* no argument: list mechanisms (RFC 1734 era) */
    {POP3_V_STAT, "STAT", 0, 0, 0},
    {POP3_V_LIST, "LIST", 0, 1, POP3_A_MSG},
    {POP3_V_UIDL, "UIDL", 0, 1, POP3_A_MSG},
    {POP3_V_RETR, "RETR", 1, 1, POP3_A_MSG},
    {POP3_V_TOP, "TOP", 2, 2, POP3_A_MSG | POP3_A_LINES},
    {POP3_V_DELE, "DELE", 1, 1, POP3_A_MSG},
    {POP3_V_NOOP, "NOOP", 0, 0, 0},
    {POP3_V_RSET, "RSET", 0, 0, 0},
    {POP3_V_QUIT, "QUIT", 0, 0, 0},
    {POP3_V_CAPA, "CAPA", 0, 0, 0},
    {POP3_V_STLS, "STLS", 0, 0, 0},
};

const char *pop3_verb_name(enum pop3_verb v)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(pop3_verbs); i++)
        if (pop3_verbs[i].verb == v)
            return pop3_verbs[i].name;
    return "UNKNOWN";
}

static char pop3_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static int pop3_is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int pop3_parse_number(const char *s, size_t len, unsigned long *out)
{
    if (len == 0)
        return PST_EINVAL;
    unsigned long v = 0;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PST_EINVAL;
        if (digits > 0 || s[i] != '0')
            digits++;
        if (digits > POP3_MSGNUM_DIGITS_MAX)
            return PST_ELIMIT;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static const struct pop3_verb_def *pop3_find_verb(const char *kw)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(pop3_verbs); i++)
        if (strcmp(pop3_verbs[i].name, kw) == 0)
            return &pop3_verbs[i];
    return NULL;
}

/* pop3_store_arg - copy one argument into cmd. Returns 0 or PST_ELIMIT. */
static int pop3_store_arg(struct pop3_cmd *cmd, const char *s, size_t n, int upper)
{
    if (n > POP3_ARG_MAX)
        return PST_ELIMIT;
    char *dst = cmd->arg[cmd->nargs];
    for (size_t i = 0; i < n; i++)
        dst[i] = upper ? pop3_upper(s[i]) : s[i];
    dst[n] = '\0';
    cmd->arglen[cmd->nargs] = n;
    cmd->nargs++;
    return 0;
}

/* pop3_split_args - split p[0..len) at spaces into cmd->arg. Returns 0, PST_EINVAL or PST_ELIMIT.
 */
static int pop3_split_args(const struct pop3_verb_def *d, const char *p, size_t len,
                           struct pop3_cmd *cmd, const char **reply)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && p[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && p[i] != ' ')
            i++;
        if (cmd->nargs >= d->max_args) {
            *reply = d->max_args == 0 ? POP3_R_NOARG : POP3_R_ARGS;
            return PST_EINVAL;
        }
        int upper = (d->flags & POP3_A_MECH) && cmd->nargs == 0;
        if (pop3_store_arg(cmd, p + start, i - start, upper) < 0) {
            *reply = POP3_R_LONG;
            return PST_ELIMIT;
        }
    }
    return 0;
}

static int pop3_parse_numbers(const struct pop3_verb_def *d, struct pop3_cmd *cmd,
                              const char **reply)
{
    if ((d->flags & POP3_A_MSG) && cmd->nargs >= 1) {
        int rc = pop3_parse_number(cmd->arg[0], cmd->arglen[0], &cmd->msg);
        if (rc < 0) {
            *reply = rc == PST_ELIMIT ? POP3_R_NUMBER_LONG : POP3_R_NUMBER;
            return rc;
        }
        if (cmd->msg == 0) {
            *reply = POP3_R_ZERO;
            return PST_EINVAL;
        }
        cmd->has_msg = 1;
    }
    if ((d->flags & POP3_A_LINES) && cmd->nargs >= 2) {
        int rc = pop3_parse_number(cmd->arg[1], cmd->arglen[1], &cmd->lines);
        if (rc < 0) {
            *reply = rc == PST_ELIMIT ? POP3_R_NUMBER_LONG : POP3_R_NUMBER;
            return rc;
        }
    }
    return 0;
}

int pop3_cmd_parse(const char *line, size_t len, struct pop3_cmd *cmd, const char **reply)
{
    memset(cmd, 0, sizeof *cmd);
    *reply = NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) {
            *reply = POP3_R_NUL;
            return PST_EINVAL;
        }
    }
    size_t kwlen = 0;
    while (kwlen < len && line[kwlen] != ' ')
        kwlen++;
    for (size_t i = 0; i < kwlen && i < POP3_KEYWORD_MAX; i++)
        cmd->keyword[i] = pop3_upper(line[i]);
    cmd->keyword[kwlen < POP3_KEYWORD_MAX ? kwlen : POP3_KEYWORD_MAX] = '\0';
    if (kwlen == 0) {
        *reply = POP3_R_KEYWORD;
        return PST_EINVAL;
    }
    if (kwlen < 3 || kwlen > POP3_KEYWORD_MAX)
        return 0; /* a shorter or longer word is simply an unknown command */
    for (size_t i = 0; i < kwlen; i++) {
        if (!pop3_is_alnum(line[i])) {
            *reply = POP3_R_KEYWORD;
            return PST_EINVAL;
        }
    }
    const struct pop3_verb_def *d = pop3_find_verb(cmd->keyword);
    if (!d)
        return 0; /* POP3_V_UNKNOWN */
    cmd->verb = d->verb;
    const char *rest = line + kwlen;
    size_t restlen = len - kwlen;
    if (d->flags & POP3_A_REST) {
        /* "PASS secret with spaces": exactly one space, then everything. */
        if (restlen < 2 || rest[0] != ' ') {
            *reply = POP3_R_ARGS;
            return PST_EINVAL;
        }
        if (pop3_store_arg(cmd, rest + 1, restlen - 1, 0) < 0) {
            *reply = POP3_R_LONG;
            return PST_ELIMIT;
        }
        return 0;
    }
    while (restlen > 0 && rest[restlen - 1] == ' ')
        restlen--;
    if (restlen > 0 && rest[0] != ' ') {
        *reply = POP3_R_KEYWORD;
        return PST_EINVAL;
    }
    int rc = pop3_split_args(d, rest, restlen, cmd, reply);
    if (rc < 0)
        return rc;
    if (cmd->nargs < d->min_args) {
        *reply = POP3_R_ARGS;
        return PST_EINVAL;
    }
    return pop3_parse_numbers(d, cmd, reply);
}
