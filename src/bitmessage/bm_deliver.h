/*
 * bm_deliver.h - hand received Bitmessage messages to local Maildirs.
 *
 * A message received for one of our addresses is in the node's inbox
 * (bm_store). If the address has an owner (bm_api_set_owner), the node
 * writes it into <mail_dir>/<owner>/ as an RFC 5322 message and marks it
 * delivered; the Maildir name is derived from the inventory hash, so a
 * delivery repeated after a crash is a no-op (lib/maildir.h). Addresses
 * without an owner keep their messages in the inbox only
 * (`postern bm inbox`).
 *
 * The message:  From: <BM-sender@bitmessage>  To: <BM-recipient@bitmessage>
 *               Subject (RFC 2047 encoded when not ASCII), Date (arrival),
 *               Message-ID <hash@bitmessage>, X-Bitmessage-From/-To/-Encoding,
 *               text/plain; charset=UTF-8, 8bit (base64 when a line is over
 *               998 bytes or the text holds a NUL or a bare CR).
 */
#ifndef POSTERN_BM_DELIVER_H
#define POSTERN_BM_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "bitmessage/bm_store.h"
#include "lib/buf.h"
#include "lib/err.h"

#define BM_DELIVER_DOMAIN "bitmessage" /* pseudo-domain of BM- addresses in mail headers */
#define BM_DELIVER_BATCH 64            /* messages per bm_deliver_pending() call */

/* bm_deliver_format - the RFC 5322 text (CRLF line ends) of m into out. */
PST_MUST_CHECK int bm_deliver_format(const struct bm_store_inmsg *m, buf_t *out);

/*
 * bm_deliver_pending - deliver up to BM_DELIVER_BATCH undelivered inbox
 * messages (mail_dir, hostname borrowed). *delivered (may be NULL) counts the
 * Maildir deliveries. A message whose delivery fails stays undelivered and is
 * tried again on the next call; the first such error is returned after the
 * others were tried.
 */
PST_MUST_CHECK int bm_deliver_pending(struct bm_store *st, const char *mail_dir,
                                      const char *hostname, unsigned *delivered);

#endif
