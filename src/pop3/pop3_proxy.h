/*
 * pop3_proxy.h - the aggregating POP3 proxy (pop3px): a second
 * implementation of the mailbox backend of pop3_mbox.h that shows a user
 * the local Postern Maildir and every upstream mailbox of their profile
 * (pop3_upstream.h) as one maildrop.
 *
 * A user without upstreams gets the plain local Maildir mailbox, exactly
 * as from pop3_maildir_backend_init(). A user with upstreams gets the
 * merged view: the local Maildir first, then the upstreams in profile
 * order (by id). See pop3_proxy.c and docs/pop3.md for the behaviour.
 *
 * The merge and unique-id logic is exposed below for the unit tests.
 */
#ifndef POSTERN_POP3_PROXY_H
#define POSTERN_POP3_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/err.h"
#include "pop3/pop3_mbox.h"

struct event_base;
struct worker_pool;

#define POP3PX_HASH_HEX 48  /* hex digits of SHA-256 in a hashed unique-id ("~" + 48) */
#define POP3PX_NOTE_MAX 512 /* text of a login / commit note */

/*
 * pop3px_backend_init - the backend for pop3d: cfg, base and resolver
 * (may be NULL: blocking name resolution) are borrowed and must outlive
 * the backend. Opens the state database (cfg->db_path). The key file
 * (cfg->pop3_upstream_key) is read on the first login of a user with
 * upstreams. Free with be->ops->free(be->ctx). Returns 0, PST_ENOMEM or
 * PST_EDB.
 */
PST_MUST_CHECK int pop3px_backend_init(struct pop3_backend *be, const struct cfg *cfg,
                                       struct event_base *base, struct worker_pool *resolver);

/*
 * pop3px_mbox_note - for a merged mailbox: a short text saying which
 * sources were left out ("1 upstream unavailable: gmail"), or "" when all
 * are served; for any other mailbox "". Borrowed, valid until close.
 */
const char *pop3px_mbox_note(struct pop3_mbox *mb);

/* ---- merge logic (pure, unit-tested) ------------------------------------ */

/*
 * pop3px_uidl - the merged unique-id of a message. src_id NULL is the local
 * Maildir: its uid is kept as is unless it starts with '~'. An upstream's
 * message becomes "<src_id>:<uid>" when that fits in POP3_UIDL_MAX (ids
 * never contain ':', so the form is injective); otherwise, and for a local
 * uid starting with '~', "~" and the first POP3PX_HASH_HEX hex digits of
 * SHA-256("<src_id or empty>" NUL uid NUL salt), where salt is the decimal
 * `dup` (0 normally; n for the n-th repeat of one uid within a source).
 * uid NULL means the source gave none: the input is then "#" msgno:size
 * (unstable, documented). Writes out (POP3_UIDL_MAX + 1). Returns 0 or
 * PST_EINVAL (empty or invalid uid / id) or PST_ETLS (hash failed).
 */
PST_MUST_CHECK int pop3px_uidl(const char *src_id, const char *uid, uint32_t msgno, uint64_t size,
                               unsigned dup, char out[POP3_UIDL_MAX + 1]);

/* One message of one source as its server listed it (msgno is 1-based). */
struct pop3px_smsg {
    uint64_t size;
    int has_size; /* LIST gave a size */
    int has_uid;  /* UIDL gave a uid */
    char uid[POP3_UIDL_MAX + 1];
};

/* One source's listing: count messages (STAT), filled by LIST / UIDL entries. */
struct pop3px_table {
    uint32_t count;
    struct pop3px_smsg *msgs; /* count entries, owned */
};

/* pop3px_table_init - count (<= POP3C_ENTRIES_MAX) empty slots. 0, PST_ELIMIT or PST_ENOMEM. */
PST_MUST_CHECK int pop3px_table_init(struct pop3px_table *t, uint32_t count);
void pop3px_table_free(struct pop3px_table *t);

/* pop3px_table_size / _uid - one LIST / UIDL entry. PST_EINVAL for a msgno out of 1..count,
 * a repeated msgno, or a uid that is not 1..70 characters 0x21..0x7E. */
PST_MUST_CHECK int pop3px_table_size(struct pop3px_table *t, uint32_t msgno, uint64_t size);
PST_MUST_CHECK int pop3px_table_uid(struct pop3px_table *t, uint32_t msgno, const char *uid);

/* One message of the merged view. */
struct pop3px_msg {
    uint32_t src;   /* index of the source */
    uint32_t msgno; /* 1-based number in that source */
    struct pop3_msginfo info;
};

/*
 * pop3px_merge - the merged list of n sources (ids[i] NULL = the local
 * Maildir; tables[i] NULL = a source left out): sources in order, messages
 * in their order; messages without a LIST size are skipped. Unique-ids by
 * pop3px_uidl(); a uid repeated within one source (a broken server) gets
 * dup 1, 2, ... so that every merged unique-id is distinct. *out (caller
 * frees with free()) and *nout; 0, PST_ENOMEM or PST_ETLS.
 */
PST_MUST_CHECK int pop3px_merge(const char *const *ids, const struct pop3px_table *const *tables,
                                size_t n, struct pop3px_msg **out, size_t *nout);

/*
 * pop3px_deletions - the 1-based message numbers of source src marked in
 * deleted[0..n) of the merged list msgs, in increasing order, into
 * out (room for n). Returns how many.
 */
size_t pop3px_deletions(const struct pop3px_msg *msgs, size_t n, const unsigned char *deleted,
                        uint32_t src, uint32_t *out);

#endif
