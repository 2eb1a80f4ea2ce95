/*
 * ipcount.h - connections per client address, for servers that limit them
 * (smtpd, pop3d).
 *
 * An IPv4 client (or an IPv4-mapped IPv6 one) counts per address; a native
 * IPv6 client per /64, since one client usually holds a whole /64. Entries
 * live in a fixed-size hash table of chains and are freed when their count
 * drops to zero, so memory follows the number of distinct clients connected.
 */
#ifndef POSTERN_IPCOUNT_H
#define POSTERN_IPCOUNT_H

#include <stddef.h>
#include <sys/socket.h>

#include "err.h"

#include <stdint.h>

#define IPCOUNT_KEY_LEN 17 /* family byte + up to 16 address bytes */

struct ipcount;

/* ipcount_key - the client key of sa: IPv4 (also mapped) per address, IPv6 per /64; other
 * families give an all-zero key. For callers keeping their own per-client tables. */
void ipcount_key(const struct sockaddr *sa, uint8_t key[IPCOUNT_KEY_LEN]);

/* ipcount_hash - FNV-1a of len bytes, reduced modulo buckets (> 0). */
size_t ipcount_hash(const void *data, size_t len, size_t buckets);

/* ipcount_new - an empty table with `buckets` chains (> 0). NULL on ENOMEM. */
struct ipcount *ipcount_new(size_t buckets);

/* ipcount_free - free the table and every entry, *t = NULL. Accepts NULL. */
void ipcount_free(struct ipcount **t);

/*
 * ipcount_acquire - count one more connection from sa unless it already has
 * max: 0 (counted), PST_ELIMIT (at the limit, not counted) or PST_ENOMEM.
 * Addresses of other families share one entry.
 */
PST_MUST_CHECK int ipcount_acquire(struct ipcount *t, const struct sockaddr *sa, size_t max);

/* ipcount_release - one connection from sa ended (it must have been acquired). */
void ipcount_release(struct ipcount *t, const struct sockaddr *sa);

/* ipcount_get - connections counted for sa now. */
size_t ipcount_get(const struct ipcount *t, const struct sockaddr *sa);

#endif
