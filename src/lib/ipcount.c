/*
 * ipcount.c - connections per client address (see ipcount.h).
 *
 * Failure policy: ipcount_acquire returns PST_ELIMIT/PST_ENOMEM; releasing an
 * address that was never acquired is a programming error (PST_ASSERT).
 */
#include "ipcount.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ipcount_entry {
    uint8_t key[IPCOUNT_KEY_LEN];
    size_t count;
    struct ipcount_entry *next;
};

struct ipcount {
    size_t nbuckets;
    struct ipcount_entry **buckets;
};

void ipcount_key(const struct sockaddr *sa, uint8_t key[IPCOUNT_KEY_LEN])
{
    memset(key, 0, IPCOUNT_KEY_LEN);
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            key[0] = 4;
            memcpy(key + 1, &a->s6_addr[12], 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a, 8); /* the /64 */
        }
    }
}

size_t ipcount_hash(const void *data, size_t len, size_t buckets)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return (size_t)(h % buckets);
}

static struct ipcount_entry **ipcount_find(const struct ipcount *t,
                                           const uint8_t key[IPCOUNT_KEY_LEN])
{
    struct ipcount_entry **pp = &t->buckets[ipcount_hash(key, IPCOUNT_KEY_LEN, t->nbuckets)];
    while (*pp && memcmp((*pp)->key, key, IPCOUNT_KEY_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

struct ipcount *ipcount_new(size_t buckets)
{
    if (buckets == 0)
        return NULL;
    struct ipcount *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->buckets = calloc(buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    t->nbuckets = buckets;
    return t;
}

void ipcount_free(struct ipcount **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    struct ipcount *t = *tp;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct ipcount_entry *e = t->buckets[i];
        while (e) {
            struct ipcount_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t);
    *tp = NULL;
}

int ipcount_acquire(struct ipcount *t, const struct sockaddr *sa, size_t max)
{
    uint8_t key[IPCOUNT_KEY_LEN];
    ipcount_key(sa, key);
    struct ipcount_entry **pp = ipcount_find(t, key);
    if (*pp) {
        if ((*pp)->count >= max)
            return PST_ELIMIT;
        (*pp)->count++;
        return 0;
    }
    if (max == 0)
        return PST_ELIMIT;
    struct ipcount_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return PST_ENOMEM;
    memcpy(e->key, key, IPCOUNT_KEY_LEN);
    e->count = 1;
    *pp = e;
    return 0;
}

void ipcount_release(struct ipcount *t, const struct sockaddr *sa)
{
    uint8_t key[IPCOUNT_KEY_LEN];
    ipcount_key(sa, key);
    struct ipcount_entry **pp = ipcount_find(t, key);
    struct ipcount_entry *e = *pp;
    PST_ASSERT(e && e->count > 0);
    if (--e->count == 0) {
        *pp = e->next;
        free(e);
    }
}

size_t ipcount_get(const struct ipcount *t, const struct sockaddr *sa)
{
    uint8_t key[IPCOUNT_KEY_LEN];
    ipcount_key(sa, key);
    struct ipcount_entry **pp = ipcount_find(t, key);
    return *pp ? (*pp)->count : 0;
}
