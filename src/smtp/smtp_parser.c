/*
 * smtp_parser.c - parse one SMTP command line into a struct smtp_cmd.
 *
 * RFCs: RFC 5321 4.1.1 (commands), 4.1.2 (Path grammar, esmtp-param:
 * keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), value = 1*(%d33-60 /
 * %d62-126)), 4.1.4 (verbs are case-insensitive), 4.5.3.1 (limits, enforced
 * by the session and by mailaddr); RFC 1870 (SIZE), RFC 6152 (BODY), RFC 6531
 * (SMTPUTF8), RFC 4954 4 and 5 (AUTH command, AUTH= parameter), RFC 3461 4
 * (xtext, RET, ENVID, NOTIFY, ORCPT), RFC 3030 2 (BDAT), RFC 3463 (enhanced
 * status codes in every reply).
 *
 * Design: a const table maps each verb to its argument parser; MAIL and RCPT
 * parameters are a second table of keyword, allowed verb and value parser.
 * Each error path picks one static reply line, so every session answers a
 * given mistake the same way.
 *
 * Leniency, deliberately small:
 *   - trailing spaces at the end of the line are ignored (many clients);
 *   - one space after "FROM:" / "TO:" is accepted (a common client bug);
 *   - verbs, parameter keywords and keyword values (BODY, RET, NOTIFY) are
 *     case-insensitive.
 * Anything else odd is an error: two spaces between the verb and its
 * argument or between parameters, a path without angle brackets, text
 * after the '>' that is not " param...", CR/LF/NUL inside the line.
 *
 * MAIL is parsed parameters-first: the end of the path is found by scanning
 * for '>' outside a quoted string, the parameters after it are parsed, and
 * only then is the path handed to mailaddr_parse_path() with
 * MAILADDR_ALLOW_UTF8 if SMTPUTF8 was among them. A non-ASCII path without
 * SMTPUTF8 gets 553 5.6.7 (RFC 6531 3.7.4.1 / RFC 6533). RCPT cannot know the
 * transaction's SMTPUTF8 state, so it is parsed with MAILADDR_ALLOW_UTF8 and
 * the session must refuse addr.has_utf8 in a non-SMTPUTF8 transaction with
 * SMTP_REPLY_NEED_SMTPUTF8.
 *
 * Failure policy: pure function, no allocation, no logging. Bad input
 * returns PST_EINVAL (PST_ELIMIT for over-long values) with *reply set;
 * nothing aborts.
 */
#include "smtp/smtp_parser.h"

#include <string.h>
#include <strings.h>

#define SMTP_VERB_TEXT_MAX (sizeof(((struct smtp_cmd *)0)->verb_text) - 1)
#define SMTP_SIZE_DIGITS_MAX 20 /* enough for any uint64_t */
#define SMTP_MECH_MAX 20        /* RFC 4422 3.1: 1*20 chars */

/* Reply lines (no CRLF). */
#define SMTP_R_NUL "500 5.5.2 Syntax error: NUL byte in command"
#define SMTP_R_LINE "500 5.5.2 Syntax error: malformed command line"
#define SMTP_R_NOARG "501 5.5.4 Syntax error: this command takes no argument"
#define SMTP_R_ARGS "501 5.5.4 Syntax error in parameters or arguments"
#define SMTP_R_ARG_LONG "501 5.5.4 Argument too long"
#define SMTP_R_HELO "501 5.5.4 Syntax: HELO hostname"
#define SMTP_R_EHLO "501 5.5.4 Syntax: EHLO hostname"
#define SMTP_R_VRFY "501 5.5.4 Syntax: VRFY address"
#define SMTP_R_EXPN "501 5.5.4 Syntax: EXPN list"
#define SMTP_R_MAIL "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"
#define SMTP_R_RCPT "501 5.5.4 Syntax: RCPT TO:<address> [parameters]"
#define SMTP_R_BDAT "501 5.5.4 Syntax: BDAT size [LAST]"
#define SMTP_R_AUTH "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
#define SMTP_R_SENDER "501 5.1.7 Bad sender address syntax"
#define SMTP_R_SENDER_LONG "501 5.1.7 Sender address too long"
#define SMTP_R_RCPT_ADDR "501 5.1.3 Bad recipient address syntax"
#define SMTP_R_RCPT_LONG "501 5.1.3 Recipient address too long"
#define SMTP_R_PARAM_UNKNOWN "555 5.5.4 Unsupported parameter"
#define SMTP_R_PARAM_REPEAT "555 5.5.4 Parameter given more than once"
#define SMTP_R_SIZE "501 5.5.4 Bad SIZE parameter"
#define SMTP_R_BODY "501 5.5.4 Bad BODY parameter"
#define SMTP_R_BODY_UNSUPP "555 5.5.4 Unsupported BODY type"
#define SMTP_R_SMTPUTF8 "501 5.5.4 SMTPUTF8 takes no value"
#define SMTP_R_RET "501 5.5.4 Bad RET parameter"
#define SMTP_R_ENVID "501 5.5.4 Bad ENVID parameter"
#define SMTP_R_AUTHP "501 5.5.4 Bad AUTH parameter"
#define SMTP_R_NOTIFY "501 5.5.4 Bad NOTIFY parameter"
#define SMTP_R_ORCPT "501 5.5.4 Bad ORCPT parameter"

/* ---- small helpers ---------------------------------------------------- */

static int smtp_is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int smtp_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int smtp_fail(const char **reply, const char *r, int rc)
{
    *reply = r;
    return rc;
}

/* smtp_eq - s[0..len) equals the ASCII word w, ignoring case. */
static int smtp_eq(const char *s, size_t len, const char *w)
{
    return strlen(w) == len && strncasecmp(s, w, len) == 0;
}

/* smtp_copy_arg - copy s[0..len) into cmd->arg; PST_ELIMIT if too long. */
static int smtp_copy_arg(struct smtp_cmd *cmd, const char *s, size_t len, const char **reply)
{
    if (len > SMTP_ARG_MAX)
        return smtp_fail(reply, SMTP_R_ARG_LONG, PST_ELIMIT);
    memcpy(cmd->arg, s, len);
    cmd->arg[len] = '\0';
    return 0;
}

/* smtp_text_ok - free text (VRFY, HELP, NOOP): no control characters. */
static int smtp_text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* smtp_token_ok - one token (HELO/EHLO): printable ASCII or UTF-8 bytes, no space. */
static int smtp_token_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return len > 0;
}

static int smtp_hexup(unsigned char c)
{
    return smtp_is_digit(c) || (c >= 'A' && c <= 'F');
}

/*
 * smtp_xtext_ok - RFC 3461 4: xtext = *( xchar / hexchar ), xchar = %d33-126
 * except "+" and "=", hexchar = "+" 2(DIGIT / "A".."F"). Non-empty here.
 */
static int smtp_xtext_ok(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0)
        return 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            if (len - i < 3 || !smtp_hexup((unsigned char)s[i + 1]) ||
                !smtp_hexup((unsigned char)s[i + 2]))
                return 0;
            i += 3;
            continue;
        }
        if (c < 33 || c > 126 || c == '=')
            return 0;
        i++;
    }
    return 1;
}

/* smtp_parse_u64 - 1..20 decimal digits; PST_EINVAL on syntax, PST_ELIMIT on overflow. */
static int smtp_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > SMTP_SIZE_DIGITS_MAX)
        return PST_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (!smtp_is_digit((unsigned char)s[i]))
            return PST_EINVAL;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return PST_ELIMIT;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* ---- MAIL / RCPT parameters ------------------------------------------- */

#define SMTP_P_MAIL 1
#define SMTP_P_RCPT 2

struct smtp_param_def {
    const char *name;
    int verbs; /* SMTP_P_MAIL / SMTP_P_RCPT */
    /* v[0..vlen) is the value, has_v says whether "=" was present */
    int (*parse)(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd, const char **reply);
};

/* RFC 1870: SIZE=1*20DIGIT. A value beyond uint64_t is clamped (the session says 552). */
static int smtp_p_size(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                       const char **reply)
{
    int rc;

    if (!has_v)
        return smtp_fail(reply, SMTP_R_SIZE, PST_EINVAL);
    rc = smtp_parse_u64(v, vlen, &cmd->size);
    if (rc == PST_ELIMIT)
        cmd->size = UINT64_MAX;
    else if (rc < 0)
        return smtp_fail(reply, SMTP_R_SIZE, rc);
    cmd->has_size = 1;
    return 0;
}

/* RFC 6152: BODY=7BIT / 8BITMIME. BINARYMIME (RFC 3030) is not offered. */
static int smtp_p_body(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                       const char **reply)
{
    if (has_v && smtp_eq(v, vlen, "7BIT")) {
        cmd->body = SMTP_BODY_7BIT;
        return 0;
    }
    if (has_v && smtp_eq(v, vlen, "8BITMIME")) {
        cmd->body = SMTP_BODY_8BITMIME;
        return 0;
    }
    if (has_v && smtp_eq(v, vlen, "BINARYMIME"))
        return smtp_fail(reply, SMTP_R_BODY_UNSUPP, PST_EINVAL);
    return smtp_fail(reply, SMTP_R_BODY, PST_EINVAL);
}

/* RFC 6531 3.4: SMTPUTF8 has no value. */
static int smtp_p_smtputf8(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                           const char **reply)
{
    (void)v;
    (void)vlen;
    if (has_v)
        return smtp_fail(reply, SMTP_R_SMTPUTF8, PST_EINVAL);
    cmd->smtputf8 = 1;
    return 0;
}

/* RFC 3461 4.3: RET=FULL / HDRS. */
static int smtp_p_ret(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                      const char **reply)
{
    if (has_v && smtp_eq(v, vlen, "FULL")) {
        cmd->ret = 1;
        return 0;
    }
    if (has_v && smtp_eq(v, vlen, "HDRS")) {
        cmd->ret = 2;
        return 0;
    }
    return smtp_fail(reply, SMTP_R_RET, PST_EINVAL);
}

/* RFC 3461 4.4: ENVID=xtext, at most 100 characters. Stored as given (still encoded). */
static int smtp_p_envid(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                        const char **reply)
{
    if (!has_v || !smtp_xtext_ok(v, vlen))
        return smtp_fail(reply, SMTP_R_ENVID, PST_EINVAL);
    if (vlen > SMTP_ENVID_MAX)
        return smtp_fail(reply, SMTP_R_ENVID, PST_ELIMIT);
    memcpy(cmd->envid, v, vlen);
    cmd->envid[vlen] = '\0';
    return 0;
}

/* RFC 4954 5: AUTH=xtext (or "<>"); checked, then ignored: Postern does not relay identities. */
static int smtp_p_auth(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                       const char **reply)
{
    (void)cmd;
    if (!has_v || !smtp_xtext_ok(v, vlen))
        return smtp_fail(reply, SMTP_R_AUTHP, PST_EINVAL);
    return 0;
}

/* RFC 3461 4.1: NOTIFY=NEVER / 1#(SUCCESS / FAILURE / DELAY). */
static int smtp_p_notify(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                         const char **reply)
{
    size_t i = 0;
    unsigned bits = 0;

    if (!has_v)
        return smtp_fail(reply, SMTP_R_NOTIFY, PST_EINVAL);
    while (i <= vlen) {
        const char *comma = memchr(v + i, ',', vlen - i);
        size_t end = comma != NULL ? (size_t)(comma - v) : vlen;
        const char *w = v + i;
        size_t wl = end - i;
        unsigned bit;

        if (smtp_eq(w, wl, "NEVER"))
            bit = SMTP_NOTIFY_NEVER;
        else if (smtp_eq(w, wl, "SUCCESS"))
            bit = SMTP_NOTIFY_SUCCESS;
        else if (smtp_eq(w, wl, "FAILURE"))
            bit = SMTP_NOTIFY_FAILURE;
        else if (smtp_eq(w, wl, "DELAY"))
            bit = SMTP_NOTIFY_DELAY;
        else
            return smtp_fail(reply, SMTP_R_NOTIFY, PST_EINVAL);
        if (bits & bit)
            return smtp_fail(reply, SMTP_R_NOTIFY, PST_EINVAL);
        bits |= bit;
        i = end + 1;
    }
    if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
        return smtp_fail(reply, SMTP_R_NOTIFY, PST_EINVAL);
    cmd->notify = bits;
    return 0;
}

/* atext of RFC 5322 3.2.3 (ASCII part), for the ORCPT addr-type atom. */
static int smtp_atext(unsigned char c)
{
    return smtp_is_alpha(c) || smtp_is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 3461 4.2: ORCPT=addr-type ";" xtext, at most 500 characters. Stored as given. */
static int smtp_p_orcpt(const char *v, size_t vlen, int has_v, struct smtp_cmd *cmd,
                        const char **reply)
{
    const char *semi;
    size_t tlen;

    if (!has_v)
        return smtp_fail(reply, SMTP_R_ORCPT, PST_EINVAL);
    semi = memchr(v, ';', vlen);
    if (semi == NULL || semi == v)
        return smtp_fail(reply, SMTP_R_ORCPT, PST_EINVAL);
    tlen = (size_t)(semi - v);
    for (size_t i = 0; i < tlen; i++) {
        if (!smtp_atext((unsigned char)v[i]))
            return smtp_fail(reply, SMTP_R_ORCPT, PST_EINVAL);
    }
    if (!smtp_xtext_ok(semi + 1, vlen - tlen - 1))
        return smtp_fail(reply, SMTP_R_ORCPT, PST_EINVAL);
    if (vlen > SMTP_ORCPT_MAX)
        return smtp_fail(reply, SMTP_R_ORCPT, PST_ELIMIT);
    memcpy(cmd->orcpt, v, vlen);
    cmd->orcpt[vlen] = '\0';
    return 0;
}

static const struct smtp_param_def smtp_params[] = {
    {"SIZE", SMTP_P_MAIL, smtp_p_size},         {"BODY", SMTP_P_MAIL, smtp_p_body},
    {"SMTPUTF8", SMTP_P_MAIL, smtp_p_smtputf8}, {"RET", SMTP_P_MAIL, smtp_p_ret},
    {"ENVID", SMTP_P_MAIL, smtp_p_envid},       {"AUTH", SMTP_P_MAIL, smtp_p_auth},
    {"NOTIFY", SMTP_P_RCPT, smtp_p_notify},     {"ORCPT", SMTP_P_RCPT, smtp_p_orcpt},
};

/* smtp_keyword_ok - RFC 5321 esmtp-keyword. */
static int smtp_keyword_ok(const char *k, size_t len)
{
    if (len == 0 || !(smtp_is_alpha((unsigned char)k[0]) || smtp_is_digit((unsigned char)k[0])))
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!smtp_is_alpha(c) && !smtp_is_digit(c) && c != '-')
            return 0;
    }
    return 1;
}

/* smtp_value_ok - RFC 5321 esmtp-value: 1*(%d33-60 / %d62-126). */
static int smtp_value_ok(const char *v, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 33 || c > 126 || c == '=')
            return 0;
    }
    return 1;
}

/* smtp_param_one - one "keyword[=value]" for the verb class in `verbs`. */
static int smtp_param_one(const char *p, size_t len, int verbs, unsigned *seen,
                          struct smtp_cmd *cmd, const char **reply)
{
    const char *eq = memchr(p, '=', len);
    size_t klen = eq != NULL ? (size_t)(eq - p) : len;
    const char *v = eq != NULL ? eq + 1 : p + len;
    size_t vlen = eq != NULL ? len - klen - 1 : 0;

    if (!smtp_keyword_ok(p, klen) || (eq != NULL && !smtp_value_ok(v, vlen)))
        return smtp_fail(reply, SMTP_R_ARGS, PST_EINVAL);
    for (size_t i = 0; i < PST_ARRAY_LEN(smtp_params); i++) {
        const struct smtp_param_def *d = &smtp_params[i];
        if (!(d->verbs & verbs) || !smtp_eq(p, klen, d->name))
            continue;
        if (*seen & (1u << i))
            return smtp_fail(reply, SMTP_R_PARAM_REPEAT, PST_EINVAL);
        *seen |= 1u << i;
        return d->parse(v, vlen, eq != NULL, cmd, reply);
    }
    return smtp_fail(reply, SMTP_R_PARAM_UNKNOWN, PST_EINVAL);
}

/* smtp_params_parse - p[0..len) is "param *(SP param)", single spaces only. */
static int smtp_params_parse(const char *p, size_t len, int verbs, struct smtp_cmd *cmd,
                             const char **reply)
{
    unsigned seen = 0;
    size_t i = 0;

    while (i <= len) {
        const char *sp = memchr(p + i, ' ', len - i);
        size_t end = sp != NULL ? (size_t)(sp - p) : len;
        int rc;

        if (end == i)
            return smtp_fail(reply, SMTP_R_ARGS, PST_EINVAL); /* empty parameter */
        rc = smtp_param_one(p + i, end - i, verbs, &seen, cmd, reply);
        if (rc < 0)
            return rc;
        i = end + 1;
    }
    return 0;
}

/* ---- MAIL / RCPT -------------------------------------------------------- */

struct smtp_path_kind {
    const char *prefix; /* "FROM:" / "TO:" */
    int verbs;
    const char *r_usage, *r_bad, *r_long;
};

static const struct smtp_path_kind smtp_kind_mail = {"FROM:", SMTP_P_MAIL, SMTP_R_MAIL,
                                                     SMTP_R_SENDER, SMTP_R_SENDER_LONG};
static const struct smtp_path_kind smtp_kind_rcpt = {"TO:", SMTP_P_RCPT, SMTP_R_RCPT,
                                                     SMTP_R_RCPT_ADDR, SMTP_R_RCPT_LONG};

/*
 * smtp_path_end - index of the '>' closing the path that starts with '<' at
 * s[0], skipping quoted strings (with their backslash pairs); 0 if none.
 */
static size_t smtp_path_end(const char *s, size_t len)
{
    int inq = 0;

    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (inq && c == '\\') {
            i++;
            continue;
        }
        if (c == '"')
            inq = !inq;
        else if (!inq && c == '>')
            return i;
    }
    return 0;
}

static int smtp_has_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    }
    return 0;
}

/* smtp_path_cmd - "FROM:<path> params" / "TO:<path> params". */
static int smtp_path_cmd(const struct smtp_path_kind *k, const char *a, size_t alen, int has_arg,
                         struct smtp_cmd *cmd, const char **reply)
{
    size_t plen = strlen(k->prefix);
    size_t start, end, consumed;
    int flags, rc;

    if (!has_arg || alen < plen || strncasecmp(a, k->prefix, plen) != 0)
        return smtp_fail(reply, k->r_usage, PST_EINVAL);
    start = plen;
    if (start < alen && a[start] == ' ')
        start++; /* tolerated client bug: "MAIL FROM: <a@b>" */
    if (start == alen)
        return smtp_fail(reply, k->r_usage, PST_EINVAL);
    if (a[start] != '<')
        return smtp_fail(reply, k->r_bad, PST_EINVAL);
    end = smtp_path_end(a + start, alen - start);
    if (end == 0)
        return smtp_fail(reply, k->r_bad, PST_EINVAL);
    end += start; /* index of '>' in a */
    if (end + 1 < alen) {
        if (a[end + 1] != ' ')
            return smtp_fail(reply, k->r_bad, PST_EINVAL);
        rc = smtp_params_parse(a + end + 2, alen - end - 2, k->verbs, cmd, reply);
        if (rc < 0)
            return rc;
    }
    if (k->verbs == SMTP_P_MAIL) {
        flags = MAILADDR_ALLOW_NULL;
        if (cmd->smtputf8)
            flags |= MAILADDR_ALLOW_UTF8;
        else if (smtp_has_8bit(a + start, end + 1 - start))
            return smtp_fail(reply, SMTP_REPLY_NEED_SMTPUTF8, PST_EINVAL);
    } else {
        flags = MAILADDR_ALLOW_POSTMASTER | MAILADDR_ALLOW_UTF8;
    }
    rc = mailaddr_parse_path(a + start, end + 1 - start, flags, &cmd->addr, &consumed);
    if (rc == PST_ELIMIT)
        return smtp_fail(reply, k->r_long, PST_ELIMIT);
    if (rc < 0 || consumed != end + 1 - start)
        return smtp_fail(reply, k->r_bad, PST_EINVAL);
    return 0;
}

/* ---- per-verb argument parsers ------------------------------------------ */

typedef int (*smtp_arg_fn)(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                           const char **reply);

static int smtp_a_none(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                       const char **reply)
{
    (void)a;
    (void)alen;
    (void)cmd;
    if (has_arg)
        return smtp_fail(reply, SMTP_R_NOARG, PST_EINVAL);
    return 0;
}

static int smtp_a_hello(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                        const char **reply)
{
    const char *usage = cmd->verb == SMTP_V_HELO ? SMTP_R_HELO : SMTP_R_EHLO;

    if (!has_arg || !smtp_token_ok(a, alen))
        return smtp_fail(reply, usage, PST_EINVAL);
    return smtp_copy_arg(cmd, a, alen, reply);
}

static int smtp_a_mail(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                       const char **reply)
{
    return smtp_path_cmd(&smtp_kind_mail, a, alen, has_arg, cmd, reply);
}

static int smtp_a_rcpt(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                       const char **reply)
{
    return smtp_path_cmd(&smtp_kind_rcpt, a, alen, has_arg, cmd, reply);
}

/* VRFY / EXPN: a required free-text argument. */
static int smtp_a_required(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                           const char **reply)
{
    const char *usage = cmd->verb == SMTP_V_VRFY ? SMTP_R_VRFY : SMTP_R_EXPN;

    if (!has_arg || !smtp_text_ok(a, alen))
        return smtp_fail(reply, usage, PST_EINVAL);
    return smtp_copy_arg(cmd, a, alen, reply);
}

/* NOOP / HELP: an optional free-text argument. */
static int smtp_a_optional(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                           const char **reply)
{
    if (!has_arg)
        return 0;
    if (!smtp_text_ok(a, alen))
        return smtp_fail(reply, SMTP_R_ARGS, PST_EINVAL);
    return smtp_copy_arg(cmd, a, alen, reply);
}

/* RFC 3030 2: "BDAT" SP chunk-size [ SP end-marker ], end-marker = "LAST". */
static int smtp_a_bdat(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                       const char **reply)
{
    const char *sp;
    size_t nlen;
    int rc;

    if (!has_arg)
        return smtp_fail(reply, SMTP_R_BDAT, PST_EINVAL);
    sp = memchr(a, ' ', alen);
    nlen = sp != NULL ? (size_t)(sp - a) : alen;
    rc = smtp_parse_u64(a, nlen, &cmd->chunk_size);
    if (rc < 0)
        return smtp_fail(reply, SMTP_R_BDAT, rc);
    if (sp != NULL) {
        if (!smtp_eq(sp + 1, alen - nlen - 1, "LAST"))
            return smtp_fail(reply, SMTP_R_BDAT, PST_EINVAL);
        cmd->last = 1;
    }
    return 0;
}

static int smtp_mech_char(unsigned char c)
{
    return smtp_is_alpha(c) || smtp_is_digit(c) || c == '-' || c == '_';
}

static int smtp_b64_char(unsigned char c)
{
    return smtp_is_alpha(c) || smtp_is_digit(c) || c == '+' || c == '/' || c == '=';
}

/*
 * RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response]. arg becomes
 * "MECH" or "MECH response" with the mechanism upper-cased; the response is
 * only checked for base64 characters here (sasl.c decodes it strictly).
 */
static int smtp_a_auth(const char *a, size_t alen, int has_arg, struct smtp_cmd *cmd,
                       const char **reply)
{
    const char *sp;
    size_t mlen, i;
    int rc;

    if (!has_arg)
        return smtp_fail(reply, SMTP_R_AUTH, PST_EINVAL);
    sp = memchr(a, ' ', alen);
    mlen = sp != NULL ? (size_t)(sp - a) : alen;
    if (mlen == 0 || mlen > SMTP_MECH_MAX)
        return smtp_fail(reply, SMTP_R_AUTH, PST_EINVAL);
    for (i = 0; i < alen; i++) {
        unsigned char c = (unsigned char)a[i];
        if (i < mlen ? !smtp_mech_char(c) : (i > mlen && !smtp_b64_char(c)))
            return smtp_fail(reply, SMTP_R_AUTH, PST_EINVAL);
    }
    if (sp != NULL && mlen + 1 == alen)
        return smtp_fail(reply, SMTP_R_AUTH, PST_EINVAL);
    rc = smtp_copy_arg(cmd, a, alen, reply);
    if (rc < 0)
        return rc;
    for (i = 0; i < mlen; i++) {
        if (cmd->arg[i] >= 'a' && cmd->arg[i] <= 'z')
            cmd->arg[i] = (char)(cmd->arg[i] - 'a' + 'A');
    }
    return 0;
}

/* ---- verb table ------------------------------------------------------- */

struct smtp_verb_def {
    const char *name;
    enum smtp_verb verb;
    smtp_arg_fn parse;
};

static const struct smtp_verb_def smtp_verbs[] = {
    {"HELO", SMTP_V_HELO, smtp_a_hello},        {"EHLO", SMTP_V_EHLO, smtp_a_hello},
    {"MAIL", SMTP_V_MAIL, smtp_a_mail},         {"RCPT", SMTP_V_RCPT, smtp_a_rcpt},
    {"DATA", SMTP_V_DATA, smtp_a_none},         {"BDAT", SMTP_V_BDAT, smtp_a_bdat},
    {"RSET", SMTP_V_RSET, smtp_a_none},         {"NOOP", SMTP_V_NOOP, smtp_a_optional},
    {"QUIT", SMTP_V_QUIT, smtp_a_none},         {"VRFY", SMTP_V_VRFY, smtp_a_required},
    {"EXPN", SMTP_V_EXPN, smtp_a_required},     {"HELP", SMTP_V_HELP, smtp_a_optional},
    {"STARTTLS", SMTP_V_STARTTLS, smtp_a_none}, {"AUTH", SMTP_V_AUTH, smtp_a_auth},
};

static const struct smtp_verb_def *smtp_verb_lookup(const char *v, size_t len)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(smtp_verbs); i++) {
        if (smtp_eq(v, len, smtp_verbs[i].name))
            return &smtp_verbs[i];
    }
    return NULL;
}

const char *smtp_verb_name(enum smtp_verb v)
{
    for (size_t i = 0; i < PST_ARRAY_LEN(smtp_verbs); i++) {
        if (smtp_verbs[i].verb == v)
            return smtp_verbs[i].name;
    }
    return "UNKNOWN";
}

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd, const char **reply)
{
    const struct smtp_verb_def *def;
    size_t vlen, i, tlen;
    int has_arg;

    memset(cmd, 0, sizeof(*cmd));
    *reply = NULL;
    if (memchr(line, '\0', len) != NULL)
        return smtp_fail(reply, SMTP_R_NUL, PST_EINVAL);
    if (memchr(line, '\r', len) != NULL || memchr(line, '\n', len) != NULL)
        return smtp_fail(reply, SMTP_R_LINE, PST_EINVAL);
    while (len > 0 && line[len - 1] == ' ')
        len--;
    for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
        ;
    tlen = vlen < SMTP_VERB_TEXT_MAX ? vlen : SMTP_VERB_TEXT_MAX;
    memcpy(cmd->verb_text, line, tlen);
    cmd->verb_text[tlen] = '\0';
    for (i = 0; i < vlen; i++) {
        if (!smtp_is_alpha((unsigned char)line[i]))
            return 0; /* SMTP_V_UNKNOWN */
    }
    def = smtp_verb_lookup(line, vlen);
    if (def == NULL)
        return 0;
    cmd->verb = def->verb;
    has_arg = vlen < len;
    if (!has_arg)
        return def->parse(line + vlen, 0, 0, cmd, reply);
    return def->parse(line + vlen + 1, len - vlen - 1, 1, cmd, reply);
}
