/*
 * fuzz_smtp_cmd.c - libFuzzer target for the SMTP command line parser.
 *
 * The input is one command line without CRLF. Besides "no crash", checks
 * the contract: success gives a NULL reply and bounded, NUL-terminated
 * fields; failure gives a well-formed "4yz/5yz x.y.z text" reply; a
 * success for MAIL/RCPT yields an address that mailaddr_format() accepts;
 * parsing is deterministic.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_check_reply(const char *r)
{
    size_t n;

    if (r == NULL)
        abort();
    n = strlen(r);
    if (n < 10 || (r[0] != '4' && r[0] != '5') || r[3] != ' ' || r[4] != r[0] || r[5] != '.')
        abort();
    if (strchr(r, '\r') != NULL || strchr(r, '\n') != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct smtp_cmd a, b;
    const char *ra = NULL, *rb = NULL;
    char out[1024]; /* a re-quoted local part may grow */
    int rc, rc2;

    rc = smtp_cmd_parse((const char *)data, size, &a, &ra);
    rc2 = smtp_cmd_parse((const char *)data, size, &b, &rb);
    if (rc != rc2 || ra != rb || a.verb != b.verb)
        abort();
    if (a.verb < SMTP_V_UNKNOWN || a.verb >= SMTP_V__COUNT)
        abort();
    if (strnlen(a.verb_text, sizeof(a.verb_text)) >= sizeof(a.verb_text))
        abort();
    if (rc < 0) {
        if (rc != PST_EINVAL && rc != PST_ELIMIT)
            abort();
        fz_check_reply(ra);
        return 0;
    }
    if (rc != 0 || ra != NULL)
        abort();
    if (memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    if (strnlen(a.arg, sizeof(a.arg)) > SMTP_ARG_MAX ||
        strnlen(a.envid, sizeof(a.envid)) > SMTP_ENVID_MAX ||
        strnlen(a.orcpt, sizeof(a.orcpt)) > SMTP_ORCPT_MAX)
        abort();
    if (a.verb == SMTP_V_MAIL || a.verb == SMTP_V_RCPT) {
        if (mailaddr_format(&a.addr, out, sizeof(out)) != 0)
            abort();
        if (a.verb == SMTP_V_MAIL && a.addr.has_utf8 && !a.smtputf8)
            abort();
        if (a.verb == SMTP_V_RCPT && a.addr.is_null)
            abort();
    }
    if ((a.notify & SMTP_NOTIFY_NEVER) && a.notify != SMTP_NOTIFY_NEVER)
        abort();
    return 0;
}
