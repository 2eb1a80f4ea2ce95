/*
 * fuzz_transport_map.c - libFuzzer target for router_new_from_string(): any
 * byte string must either load as a transport map or fail with a message
 * naming the line; never crash, never leak. A loaded map must route a few
 * recipients (local, matching, literal, hostile) without error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "queue/router.h"

#define FUZZ_MAP_MAX (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_rcpts[] = {
    "user@localhost",       "User@Example.ORG", "x@a.b.example.org", "x@[192.0.2.1]",
    "x@[IPv6:2001:db8::1]", "postmaster",       "../x@localhost",    "a@b.",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cfg *cfg;
    struct router_route rt;
    struct router *r;
    char err[512];
    size_t i;

    if (size > FUZZ_MAP_MAX)
        return 0;
    if (cfg == NULL) {
        cfg = cfg_load_string("[local]\nlocal_domains = localhost, example.com\n", "fuzz.ini", err,
                              sizeof(err));
        if (cfg == NULL)
            abort();
    }
    err[0] = '\0';
    r = router_new_from_string(cfg, (const char *)data, size, "fuzz", err, sizeof(err));
    if (r == NULL) {
        if (strncmp(err, "fuzz:", 5) != 0)
            abort(); /* every failure must name the map (and line) */
        return 0;
    }
    for (i = 0; i < sizeof(fuzz_rcpts) / sizeof(fuzz_rcpts[0]); i++) {
        if (router_route(r, fuzz_rcpts[i], &rt) != 0)
            abort();
        if (rt.transport == ROUTER_ERROR && rt.error[0] == '\0')
            abort();
        if (rt.transport == ROUTER_LOCAL && rt.local_user[0] == '\0')
            abort();
        if (rt.transport == ROUTER_SMTP && rt.nexthop[0] == '\0')
            abort();
    }
    router_free(&r);
    return 0;
}
