/*
 * router.c - recipient routing and the transport map (see router.h for the
 * decision order and the full file format; docs/transport.md for users).
 *
 * Representation: the map's exact and ".subdomain" entries live in one
 * array sorted by their lower-cased pattern (the leading '.' kept), so a
 * lookup is one bsearch for the domain itself plus one per parent suffix,
 * longest first: O(labels * log n). The "*" entry is kept apart.
 *
 * Parsing is strict: the map is configuration, and a typo that silently
 * sent mail elsewhere would be worse than refusing to start. The whole text
 * is validated before the router exists; an error names file:line.
 *
 * Failure policy: allocation failures and bad maps return NULL with a
 * message; router_route never allocates and fails only on an address that
 * cannot be split (PST_EINVAL). Nothing aborts.
 */
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/mailaddr.h"
#include "lib/userdb.h"

#define ROUTER_FILE_MAX (16 * 1024 * 1024) /* bytes in a transport map file */
#define ROUTER_ADDR_MAX 512                /* bytes in a recipient given to router_route */
#define ROUTER_PORT_MAX 65535
#define ROUTER_DEFAULT_ERROR_CODE "5.0.0"
#define ROUTER_UNKNOWN_USER "5.1.1 unknown user"

enum router_tls {
    ROUTER_TLS_DEFAULT = 0,
    ROUTER_TLS_NONE,
    ROUTER_TLS_MAY,
    ROUTER_TLS_ENCRYPT,
    ROUTER_TLS_VERIFY
};

static const char *const router_tls_names[] = {"", "none", "may", "encrypt", "verify"};

/* One map entry. Strings are owned. */
struct router_entry {
    char *pattern; /* lower-case: "example.org", ".example.org" or "*" */
    enum router_transport transport;
    char *host; /* smtp: NULL = the recipient's domain */
    int no_mx;
    unsigned port;
    enum router_tls tls;
    char *auth;  /* NULL if none */
    char *error; /* ROUTER_ERROR: "d.d.d text" */
    unsigned line;
};

struct router {
    const struct cfg *cfg;  /* borrowed */
    struct router_entry *v; /* sorted by pattern */
    size_t n;
    size_t cap;
    struct router_entry dflt; /* "*" */
    int have_dflt;
};

/* Parse state for one map text. */
struct router_parse {
    const char *name;
    unsigned line;
    char *err;
    size_t errlen;
};

/* ---------------------------------------------------------------- helpers */

static void router_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* router_errf - format an error message; a truncated message ends in "...". */
static void router_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        err[0] = '\0';
    else if ((size_t)n >= errlen && errlen > 4)
        memcpy(err + errlen - 4, "...", 4);
}

static void router_perr(struct router_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* router_perr - "name:line: reason". */
static void router_perr(struct router_parse *p, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (n < 0)
        reason[0] = '\0';
    else if ((size_t)n >= sizeof(reason))
        memcpy(reason + sizeof(reason) - 4, "...", 4);
    router_errf(p->err, p->errlen, "%s:%u: %s", p->name, p->line, reason);
}

static int router_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void router_lower(char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    }
}

/* router_copy - copy s[0..len) into out (outsz); PST_ELIMIT if it does not fit. */
static int router_copy(char *out, size_t outsz, const char *s, size_t len)
{
    if (len >= outsz)
        return PST_ELIMIT;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static char *router_strndup(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void router_entry_release(struct router_entry *e)
{
    free(e->pattern);
    free(e->host);
    free(e->auth);
    free(e->error);
    memset(e, 0, sizeof(*e));
}

/* router_ip_literal - 1 if s is an IPv4 or IPv6 address in text form. */
static int router_ip_literal(const char *s)
{
    unsigned char a[16];

    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* ---------------------------------------------------------------- line parsing */

/* A field of a line: start and length. */
struct router_tok {
    const char *s;
    size_t len;
};

/* router_next_tok - the next blank-separated token of [*pos, end); 0 if none. */
static int router_next_tok(const char **pos, const char *end, struct router_tok *t)
{
    const char *p = *pos;

    while (p < end && router_is_blank(*p))
        p++;
    if (p == end) {
        *pos = p;
        return 0;
    }
    t->s = p;
    while (p < end && !router_is_blank(*p))
        p++;
    t->len = (size_t)(p - t->s);
    *pos = p;
    return 1;
}

static int router_tok_eq(const struct router_tok *t, const char *lit)
{
    size_t n = strlen(lit);

    return t->len == n && strncasecmp(t->s, lit, n) == 0;
}

/* router_parse_pattern - validate and store the lower-cased pattern in e. */
static int router_parse_pattern(struct router_parse *p, const struct router_tok *t,
                                struct router_entry *e)
{
    char dom[MAILADDR_DOMAIN_MAX + 2];
    size_t len = t->len;
    int sub = t->s[0] == '.';

    if (len == 1 && t->s[0] == '*') {
        e->pattern = router_strndup("*", 1);
        return e->pattern ? 0 : PST_ENOMEM;
    }
    if (len > 1 && t->s[len - 1] == '.')
        len--; /* trailing root dot */
    if (router_copy(dom, sizeof(dom), t->s, len) != 0) {
        router_perr(p, "pattern too long");
        return PST_EINVAL;
    }
    if (!mailaddr_domain_valid(dom + sub, 1)) {
        router_perr(p, "bad domain pattern '%.*s'", (int)(t->len > 80 ? 80 : t->len), t->s);
        return PST_EINVAL;
    }
    router_lower(dom);
    e->pattern = router_strndup(dom, len);
    return e->pattern ? 0 : PST_ENOMEM;
}

/* router_parse_port - decimal 1..65535. */
static int router_parse_port(const char *s, size_t len, unsigned *out)
{
    unsigned long v = 0;
    size_t i;

    if (len == 0 || len > 5)
        return PST_EINVAL;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PST_EINVAL;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > ROUTER_PORT_MAX)
        return PST_EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* router_parse_bracket_host - "[host]" or "[IPv6:addr]" at s (len) -> e->host, e->no_mx; *used gets
 * the bytes consumed up to and including ']'. */
static int router_parse_bracket_host(struct router_parse *p, const char *s, size_t len,
                                     struct router_entry *e, size_t *used)
{
    char host[ROUTER_NEXTHOP_MAX + 1];
    const char *close = memchr(s, ']', len);
    const char *h = s + 1;
    size_t hlen;

    if (close == NULL) {
        router_perr(p, "missing ']' in nexthop");
        return PST_EINVAL;
    }
    hlen = (size_t)(close - h);
    if (hlen >= 5 && strncasecmp(h, "IPv6:", 5) == 0) {
        h += 5;
        hlen -= 5;
    }
    if (hlen == 0 || router_copy(host, sizeof(host), h, hlen) != 0) {
        router_perr(p, "bad host in nexthop");
        return PST_EINVAL;
    }
    if (!router_ip_literal(host) && !mailaddr_domain_valid(host, 1)) {
        router_perr(p, "bad host '%s' in nexthop", host);
        return PST_EINVAL;
    }
    router_lower(host);
    e->host = router_strndup(host, hlen);
    e->no_mx = 1;
    *used = (size_t)(close - s) + 1;
    return e->host ? 0 : PST_ENOMEM;
}

/* router_parse_smtp - the part after "smtp:" of a nexthop. */
static int router_parse_smtp(struct router_parse *p, const char *s, size_t len,
                             struct router_entry *e)
{
    char host[ROUTER_NEXTHOP_MAX + 1];
    const char *colon;
    size_t used = 0;
    int rc;

    e->transport = ROUTER_SMTP;
    if (len == 0)
        return 0; /* MX of the recipient domain */
    if (s[0] == '[') {
        if ((rc = router_parse_bracket_host(p, s, len, e, &used)) != 0)
            return rc;
    } else {
        colon = memchr(s, ':', len);
        used = colon ? (size_t)(colon - s) : len;
        if (used == 0 || router_copy(host, sizeof(host), s, used) != 0 ||
            !mailaddr_domain_valid(host, 1)) {
            router_perr(p, "bad domain in nexthop");
            return PST_EINVAL;
        }
        if (host[used - 1] == '.')
            host[--used] = '\0';
        router_lower(host);
        if ((e->host = router_strndup(host, used)) == NULL)
            return PST_ENOMEM;
    }
    if (used == len)
        return 0;
    if (s[used] != ':' || router_parse_port(s + used + 1, len - used - 1, &e->port) != 0) {
        router_perr(p, "bad port in nexthop");
        return PST_EINVAL;
    }
    return 0;
}

/* router_status_code - length of a leading "[45].d{1,3}.d{1,3}" followed by a blank or end, or 0.
 */
static size_t router_status_code(const char *s, size_t len)
{
    size_t i = 0, part, digits;

    if (len < 5 || (s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    i = 2;
    for (part = 0; part < 2; part++) {
        digits = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3)
            return 0;
        if (part == 0) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < len && !router_is_blank(s[i]))
        return 0;
    return i;
}

/* router_parse_error - "error:TEXT" where TEXT runs to the end of the line (s, len). */
static int router_parse_error(struct router_parse *p, const char *s, size_t len,
                              struct router_entry *e)
{
    char text[ROUTER_ERROR_MAX + 1];
    size_t i;
    int n;

    while (len > 0 && router_is_blank(s[len - 1]))
        len--;
    while (len > 0 && router_is_blank(*s)) {
        s++;
        len--;
    }
    if (len == 0) {
        router_perr(p, "empty error text");
        return PST_EINVAL;
    }
    for (i = 0; i < len; i++) {
        if ((unsigned char)s[i] > 0x7e) {
            router_perr(p, "error text must be ASCII");
            return PST_EINVAL;
        }
        if (s[i] == '\t')
            return router_perr(p, "tab in error text"), PST_EINVAL;
    }
    if (router_status_code(s, len) > 0)
        n = snprintf(text, sizeof(text), "%.*s", (int)len, s);
    else
        n = snprintf(text, sizeof(text), "%s %.*s", ROUTER_DEFAULT_ERROR_CODE, (int)len, s);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        router_perr(p, "error text too long (max %d bytes)", ROUTER_ERROR_MAX);
        return PST_EINVAL;
    }
    e->transport = ROUTER_ERROR;
    e->error = router_strndup(text, (size_t)n);
    return e->error ? 0 : PST_ENOMEM;
}

static int router_auth_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > ROUTER_AUTH_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* router_parse_option - one "key=value" of an smtp entry. */
static int router_parse_option(struct router_parse *p, const struct router_tok *t,
                               struct router_entry *e)
{
    const char *eq = memchr(t->s, '=', t->len);
    size_t klen, vlen;
    const char *v;
    size_t i;

    if (eq == NULL) {
        router_perr(p, "expected option=value, got '%.*s'", (int)(t->len > 80 ? 80 : t->len), t->s);
        return PST_EINVAL;
    }
    klen = (size_t)(eq - t->s);
    v = eq + 1;
    vlen = t->len - klen - 1;
    if (e->transport != ROUTER_SMTP) {
        router_perr(p, "options are only allowed with smtp: nexthops");
        return PST_EINVAL;
    }
    if (klen == 3 && strncasecmp(t->s, "tls", 3) == 0) {
        if (e->tls != ROUTER_TLS_DEFAULT)
            return router_perr(p, "duplicate option tls"), PST_EINVAL;
        for (i = 1; i < PST_ARRAY_LEN(router_tls_names); i++) {
            if (strlen(router_tls_names[i]) == vlen &&
                strncasecmp(v, router_tls_names[i], vlen) == 0)
                e->tls = (enum router_tls)i;
        }
        if (e->tls == ROUTER_TLS_DEFAULT)
            return router_perr(p, "tls must be none, may, encrypt or verify"), PST_EINVAL;
        return 0;
    }
    if (klen == 4 && strncasecmp(t->s, "auth", 4) == 0) {
        if (e->auth != NULL)
            return router_perr(p, "duplicate option auth"), PST_EINVAL;
        if (!router_auth_valid(v, vlen))
            return router_perr(p, "bad auth name (1..%d of [A-Za-z0-9._-])", ROUTER_AUTH_MAX),
                   PST_EINVAL;
        e->auth = router_strndup(v, vlen);
        return e->auth ? 0 : PST_ENOMEM;
    }
    router_perr(p, "unknown option '%.*s'", (int)(klen > 40 ? 40 : klen), t->s);
    return PST_EINVAL;
}

/* router_parse_nexthop - the nexthop token t; for error: the text runs to end. */
static int router_parse_nexthop(struct router_parse *p, const struct router_tok *t, const char *end,
                                struct router_entry *e)
{
    if (router_tok_eq(t, "local")) {
        e->transport = ROUTER_LOCAL;
        return 0;
    }
    if (t->len >= 5 && strncasecmp(t->s, "smtp:", 5) == 0)
        return router_parse_smtp(p, t->s + 5, t->len - 5, e);
    if (t->len >= 6 && strncasecmp(t->s, "error:", 6) == 0)
        return router_parse_error(p, t->s + 6, (size_t)(end - t->s - 6), e);
    router_perr(p, "unknown nexthop '%.*s' (local, smtp:... or error:...)",
                (int)(t->len > 80 ? 80 : t->len), t->s);
    return PST_EINVAL;
}

/* router_check_bytes - no control characters but tab, no NUL, in the line. */
static int router_check_bytes(struct router_parse *p, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            router_perr(p, "control character 0x%02x", c);
            return PST_EINVAL;
        }
    }
    return 0;
}

static int router_grow(struct router *r)
{
    struct router_entry *v;
    size_t cap;

    if (r->n < r->cap)
        return 0;
    cap = r->cap ? r->cap * 2 : 64;
    v = realloc(r->v, cap * sizeof(*v));
    if (v == NULL)
        return PST_ENOMEM;
    r->v = v;
    r->cap = cap;
    return 0;
}

/* router_add - keep e (ownership moves to r). */
static int router_add(struct router *r, struct router_parse *p, struct router_entry *e)
{
    int rc;

    if (strcmp(e->pattern, "*") == 0) {
        if (r->have_dflt) {
            router_perr(p, "duplicate pattern '*' (first at line %u)", r->dflt.line);
            return PST_EINVAL;
        }
        r->dflt = *e;
        r->have_dflt = 1;
        return 0;
    }
    if (r->n >= ROUTER_ENTRIES_MAX) {
        router_perr(p, "too many entries (max %d)", ROUTER_ENTRIES_MAX);
        return PST_ELIMIT;
    }
    if ((rc = router_grow(r)) != 0) {
        router_perr(p, "out of memory");
        return rc;
    }
    r->v[r->n++] = *e;
    return 0;
}

/* router_parse_line - one line without its line end. */
static int router_parse_line(struct router *r, struct router_parse *p, const char *s, size_t len)
{
    const char *pos = s, *end = s + len;
    struct router_entry e;
    struct router_tok t;
    int rc;

    if (len > ROUTER_LINE_MAX) {
        router_perr(p, "line too long (max %d bytes)", ROUTER_LINE_MAX);
        return PST_ELIMIT;
    }
    if ((rc = router_check_bytes(p, s, len)) != 0)
        return rc;
    if (!router_next_tok(&pos, end, &t) || t.s[0] == '#')
        return 0;
    memset(&e, 0, sizeof(e));
    e.line = p->line;
    if ((rc = router_parse_pattern(p, &t, &e)) != 0)
        goto fail;
    if (!router_next_tok(&pos, end, &t)) {
        router_perr(p, "missing nexthop after pattern");
        rc = PST_EINVAL;
        goto fail;
    }
    if ((rc = router_parse_nexthop(p, &t, end, &e)) != 0)
        goto fail;
    while (e.transport != ROUTER_ERROR && router_next_tok(&pos, end, &t)) {
        if ((rc = router_parse_option(p, &t, &e)) != 0)
            goto fail;
    }
    if ((rc = router_add(r, p, &e)) != 0)
        goto fail;
    return 0;
fail:
    if (rc == PST_ENOMEM)
        router_perr(p, "out of memory");
    router_entry_release(&e);
    return rc;
}

static int router_entry_cmp(const void *a, const void *b)
{
    const struct router_entry *x = a, *y = b;
    int c = strcmp(x->pattern, y->pattern);

    if (c != 0)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* router_sort - sort entries and refuse duplicates. */
static int router_sort(struct router *r, struct router_parse *p)
{
    size_t i;

    if (r->n > 1)
        qsort(r->v, r->n, sizeof(r->v[0]), router_entry_cmp);
    for (i = 1; i < r->n; i++) {
        if (strcmp(r->v[i - 1].pattern, r->v[i].pattern) == 0) {
            p->line = r->v[i].line;
            router_perr(p, "duplicate pattern '%s' (first at line %u)", r->v[i].pattern,
                        r->v[i - 1].line);
            return PST_EINVAL;
        }
    }
    return 0;
}

/* router_parse_text - every line of text (len) into r. */
static int router_parse_text(struct router *r, struct router_parse *p, const char *text, size_t len)
{
    const char *s = text, *end = text + len, *nl;
    size_t llen;
    int rc;

    if (len > 0 && memchr(text, '\0', len) != NULL) {
        p->line = 1;
        for (nl = text; *nl != '\0'; nl++)
            p->line += *nl == '\n';
        router_perr(p, "NUL byte");
        return PST_EINVAL;
    }
    p->line = 0;
    while (s < end) {
        p->line++;
        nl = memchr(s, '\n', (size_t)(end - s));
        llen = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (llen > 0 && s[llen - 1] == '\r')
            llen--;
        if ((rc = router_parse_line(r, p, s, llen)) != 0)
            return rc;
        s = nl ? nl + 1 : end;
    }
    return router_sort(r, p);
}

/* ---------------------------------------------------------------- public: life cycle */

struct router *router_new_from_string(const struct cfg *cfg, const char *text, size_t len,
                                      const char *name, char *err, size_t errlen)
{
    struct router_parse p = {name ? name : "transport_map", 0, err, errlen};
    struct router *r;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (text == NULL && len > 0) {
        router_errf(err, errlen, "%s: no text", p.name);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        router_errf(err, errlen, "%s: out of memory", p.name);
        return NULL;
    }
    r->cfg = cfg;
    if (len > 0 && router_parse_text(r, &p, text, len) != 0) {
        router_free(&r);
        return NULL;
    }
    return r;
}

/* router_read_file - the whole file at path into a new buffer (*out, *len). */
static int router_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *data = NULL;
    size_t have = 0;
    ssize_t n = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        router_errf(err, errlen, "%s: %s", path, strerror(errno));
        return PST_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > ROUTER_FILE_MAX) {
        router_errf(err, errlen, "%s: not a regular file of at most %d bytes", path,
                    ROUTER_FILE_MAX);
        close(fd);
        return PST_EINVAL;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        close(fd);
        router_errf(err, errlen, "%s: out of memory", path);
        return PST_ENOMEM;
    }
    while (have < (size_t)st.st_size) {
        n = read(fd, data + have, (size_t)st.st_size - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* file shrank: parse what we have */
        have += (size_t)n;
    }
    if (n < 0) {
        router_errf(err, errlen, "%s: %s", path, strerror(errno));
        free(data);
        close(fd);
        return PST_EIO;
    }
    close(fd);
    data[have] = '\0';
    *out = data;
    *len = have;
    return 0;
}

struct router *router_new(const struct cfg *cfg, const char *transport_map_path, char *err,
                          size_t errlen)
{
    struct router *r;
    char *text = NULL;
    size_t len = 0;

    if (transport_map_path == NULL || transport_map_path[0] == '\0')
        return router_new_from_string(cfg, "", 0, "transport_map", err, errlen);
    if (router_read_file(transport_map_path, &text, &len, err, errlen) != 0)
        return NULL;
    r = router_new_from_string(cfg, text, len, transport_map_path, err, errlen);
    free(text);
    return r;
}

void router_free(struct router **rp)
{
    struct router *r;
    size_t i;

    if (rp == NULL || *rp == NULL)
        return;
    r = *rp;
    for (i = 0; i < r->n; i++)
        router_entry_release(&r->v[i]);
    free(r->v);
    if (r->have_dflt)
        router_entry_release(&r->dflt);
    free(r);
    *rp = NULL;
}

size_t router_entries(const struct router *r)
{
    return r ? r->n + (r->have_dflt ? 1 : 0) : 0;
}

const char *router_transport_name(enum router_transport t)
{
    switch (t) {
    case ROUTER_LOCAL:
        return "local";
    case ROUTER_SMTP:
        return "smtp";
    case ROUTER_ERROR:
        return "error";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- public: routing */

/* router_find - the entry for pattern (exact string), or NULL. */
static const struct router_entry *router_find(const struct router *r, const char *pattern)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(pattern, r->v[mid].pattern);
        if (c == 0)
            return &r->v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* router_lookup - exact entry, else longest ".suffix" entry, for the lower-case domain. */
static const struct router_entry *router_lookup(const struct router *r, const char *domain)
{
    const struct router_entry *e;
    const char *dot;

    if (r->n == 0)
        return NULL;
    if ((e = router_find(r, domain)) != NULL)
        return e;
    for (dot = strchr(domain, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        if ((e = router_find(r, dot)) != NULL)
            return e;
    }
    return NULL;
}

/* router_set_local - ROUTER_LOCAL for local part lp, or ROUTER_ERROR if it names no valid user. */
static void router_set_local(const char *lp, struct router_route *out)
{
    out->transport = ROUTER_LOCAL;
    if (router_copy(out->local_user, sizeof(out->local_user), lp, strlen(lp)) != 0 ||
        !userdb_name_valid(out->local_user)) {
        out->transport = ROUTER_ERROR;
        out->local_user[0] = '\0';
        (void)router_copy(out->error, sizeof(out->error), ROUTER_UNKNOWN_USER,
                          strlen(ROUTER_UNKNOWN_USER));
        return;
    }
    router_lower(out->local_user);
}

/* router_set_domain_hop - nexthop = the recipient's domain; an address literal means no MX. */
static void router_set_domain_hop(const char *domain, struct router_route *out)
{
    size_t len = strlen(domain);

    if (len >= 2 && domain[0] == '[' && domain[len - 1] == ']') {
        domain++;
        len -= 2;
        if (len >= 5 && strncasecmp(domain, "ipv6:", 5) == 0) {
            domain += 5;
            len -= 5;
        }
        out->no_mx = 1;
    }
    /* domain is at most MAILADDR_DOMAIN_MAX (checked by the caller), so this fits */
    (void)router_copy(out->nexthop, sizeof(out->nexthop), domain, len);
}

/* router_apply - fill *out from entry e for the recipient lp@domain. */
static void router_apply(const struct router_entry *e, const char *lp, const char *domain,
                         struct router_route *out)
{
    switch (e->transport) {
    case ROUTER_LOCAL:
        router_set_local(lp, out);
        return;
    case ROUTER_ERROR:
        out->transport = ROUTER_ERROR;
        (void)router_copy(out->error, sizeof(out->error), e->error, strlen(e->error));
        return;
    case ROUTER_SMTP:
        out->transport = ROUTER_SMTP;
        if (e->host != NULL) {
            (void)router_copy(out->nexthop, sizeof(out->nexthop), e->host, strlen(e->host));
            out->no_mx = e->no_mx;
        } else {
            router_set_domain_hop(domain, out);
        }
        out->port = e->port;
        (void)router_copy(out->tls, sizeof(out->tls), router_tls_names[e->tls],
                          strlen(router_tls_names[e->tls]));
        if (e->auth != NULL)
            (void)router_copy(out->auth, sizeof(out->auth), e->auth, strlen(e->auth));
        return;
    }
}

/* router_split - rcpt -> lower-case-free local part lp and lower-case domain (no trailing dot). */
static int router_split(const char *rcpt, char *lp, size_t lpsz, char *domain, size_t dsz)
{
    const char *at;
    size_t len;

    if (rcpt == NULL)
        return PST_EINVAL;
    len = strnlen(rcpt, ROUTER_ADDR_MAX + 1);
    if (len == 0 || len > ROUTER_ADDR_MAX)
        return PST_EINVAL;
    at = strrchr(rcpt, '@');
    if (at == NULL) {
        if (strcasecmp(rcpt, "postmaster") != 0)
            return PST_EINVAL;
        domain[0] = '\0';
        return router_copy(lp, lpsz, rcpt, len);
    }
    if (at == rcpt || at[1] == '\0')
        return PST_EINVAL;
    if (router_copy(lp, lpsz, rcpt, (size_t)(at - rcpt)) != 0)
        return PST_EINVAL;
    len = strlen(at + 1);
    if (len > 1 && at[len] == '.')
        len--; /* trailing root dot */
    if (len > MAILADDR_DOMAIN_MAX || router_copy(domain, dsz, at + 1, len) != 0)
        return PST_EINVAL;
    router_lower(domain);
    return 0;
}

int router_route(const struct router *r, const char *rcpt, struct router_route *out)
{
    char lp[ROUTER_ADDR_MAX + 1];
    char domain[MAILADDR_DOMAIN_MAX + 1];
    const struct router_entry *e;

    if (r == NULL || out == NULL)
        return PST_EINVAL;
    memset(out, 0, sizeof(*out));
    if (router_split(rcpt, lp, sizeof(lp), domain, sizeof(domain)) != 0)
        return PST_EINVAL;
    if (domain[0] == '\0') {
        router_set_local(lp, out); /* bare "postmaster" */
        return 0;
    }
    if ((e = router_lookup(r, domain)) != NULL) {
        router_apply(e, lp, domain, out);
        return 0;
    }
    if (cfg_is_local_domain(r->cfg, domain)) {
        router_set_local(lp, out);
        return 0;
    }
    if (r->have_dflt) {
        router_apply(&r->dflt, lp, domain, out);
        return 0;
    }
    out->transport = ROUTER_SMTP;
    router_set_domain_hop(domain, out);
    return 0;
}
