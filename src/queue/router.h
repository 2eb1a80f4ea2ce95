/*
 * router.h - where a recipient goes: the one entry point route(recipient) ->
 * transport + next hop. Later transports (Bitmessage, direct mail) extend
 * enum router_transport and the transport map syntax; callers only switch
 * on the result.
 *
 * Decision, in order (first that applies wins):
 *   1. an exact-domain entry of the transport map ("example.org");
 *   2. the longest matching subdomain entry (".example.org" matches
 *      "a.example.org" and "b.a.example.org", not "example.org" itself);
 *   3. a local domain ([local] local_domains, cfg_is_local_domain()):
 *      ROUTER_LOCAL with local_user = the lower-cased local part, which must
 *      pass userdb_name_valid() (else ROUTER_ERROR "5.1.1 unknown user");
 *   4. the default entry "*" of the map;
 *   5. ROUTER_SMTP to the MX of the recipient's domain (an address literal
 *      "[192.0.2.1]" / "[IPv6:2001:db8::1]" goes to that address, no_mx=1).
 * So the "*" entry (a smarthost, say) never captures local domains, but an
 * explicit entry for a local domain does.
 *
 * Transport map file format (see also docs/transport.md):
 *
 *   # comment (a line whose first non-blank byte is '#'), blank lines ignored
 *   pattern  nexthop  [option=value ...]
 *
 *   pattern   example.org     the domain itself (case-insensitive, trailing dot ignored)
 *             .example.org    any subdomain of example.org (longest suffix wins)
 *             *               every other non-local domain
 *   nexthop   local                      local delivery to the local part's user
 *             smtp:                      SMTP to the MX of the recipient domain
 *             smtp:example.net           SMTP to the MX of example.net
 *             smtp:example.net:2525      ... on port 2525
 *             smtp:[relay.example]       SMTP to that host (A/AAAA only, no MX)
 *             smtp:[relay.example]:587   ... on port 587
 *             smtp:[192.0.2.1]           an IPv4 address ([IPv6:2001:db8::1] or [2001:db8::1])
 *             error:TEXT                 bounce with TEXT (to the end of the line; should
 *                                        start with an enhanced status code, "5.0.0 " is
 *                                        prepended when it does not; 4.x.x means "defer")
 *   options   tls=none|may|encrypt|verify   (smtp only) TLS policy; absent = default policy
 *             auth=NAME                     (smtp only) credential name, [A-Za-z0-9._-]{1,63}
 *
 * Fields are separated by blanks (space, tab). Lines end in LF or CRLF.
 * Every syntax error, unknown option, duplicate pattern, over-long line
 * (ROUTER_LINE_MAX) or entry count past ROUTER_ENTRIES_MAX fails the whole
 * load with "file:line: reason" in err; nothing is half-loaded.
 *
 * Failure policy: router_new* return NULL with a message; router_route
 * returns PST_EINVAL for an address it cannot split (no '@', empty parts,
 * too long). A router is immutable after creation and safe to share
 * between threads.
 */
#ifndef POSTERN_ROUTER_H
#define POSTERN_ROUTER_H

#include <stddef.h>

#include "lib/err.h"

struct cfg;

#define ROUTER_LINE_MAX 1024     /* bytes in one map line, excluding the line end */
#define ROUTER_ENTRIES_MAX 10000 /* entries in one map */
#define ROUTER_NEXTHOP_MAX 255   /* bytes in nexthop (a domain name) */
#define ROUTER_ERROR_MAX 255     /* bytes in an error text */
#define ROUTER_AUTH_MAX 63       /* bytes in a credential name */
#define ROUTER_LOCAL_USER_MAX 64 /* USERDB_NAME_MAX */

enum router_transport { ROUTER_LOCAL, ROUTER_SMTP, ROUTER_ERROR };

struct router_route {
    enum router_transport transport;
    char nexthop[ROUTER_NEXTHOP_MAX + 1]; /* domain for MX lookup, or host for a relay */
    int no_mx;                            /* nexthop was written [host]: A/AAAA only */
    unsigned port;                        /* 0 = default (25) */
    char tls[16];                         /* "" (default policy) | none | may | encrypt | verify */
    char auth[ROUTER_AUTH_MAX + 1];       /* "" or a credential name */
    char local_user[ROUTER_LOCAL_USER_MAX + 1]; /* for ROUTER_LOCAL */
    char error[ROUTER_ERROR_MAX + 1];           /* for ROUTER_ERROR: "5.1.1 text" to bounce with */
};

struct router;

/*
 * router_new - a router for cfg (borrowed; must outlive the router; may be
 * NULL: no local domains) with the transport map at transport_map_path
 * (NULL or "" = no map). Returns NULL with "file:line: reason" in err on
 * any error. Caller frees with router_free().
 */
struct router *router_new(const struct cfg *cfg, const char *transport_map_path, char *err,
                          size_t errlen);

/*
 * router_new_from_string - same, with the map text (len bytes, need not be
 * NUL-terminated; a NUL byte is an error) given in memory. name is used in
 * error messages. For tests and fuzzing.
 */
struct router *router_new_from_string(const struct cfg *cfg, const char *text, size_t len,
                                      const char *name, char *err, size_t errlen);

/* router_free - free *r and set it to NULL. Accepts NULL. */
void router_free(struct router **r);

/* router_entries - number of entries in the loaded map. */
size_t router_entries(const struct router *r);

/*
 * router_route - route rcpt ("local@domain", borrowed; "postmaster" without
 * a domain is taken as a local user) into *out. Returns 0 (the decision,
 * including ROUTER_ERROR, is in *out) or PST_EINVAL when rcpt cannot be
 * split into local part and domain.
 */
PST_MUST_CHECK int router_route(const struct router *r, const char *rcpt, struct router_route *out);

/* router_transport_name - "local", "smtp", "error" (static string). */
const char *router_transport_name(enum router_transport t);

#endif
