/*
 * dir_confirm.h - sending the directory's confirmation messages.
 *
 * Mail (RFC 5322, RFC 3834 auto-generated): built here and injected into
 * Postern's own queue (spool_writer_open/commit_sync, then qmgr_wake), with
 * the null envelope sender so that an undeliverable confirmation causes no
 * backscatter. From: [directory] smtp_from, else directory@<hostname>.
 *
 * Bitmessage: bm_api_send() from [directory] bm_from, else from our address
 * labelled "directory" (made on first use), then bm_api_notify().
 *
 * Links are <base_url>/confirm?t=<token>; base_url is [directory] base_url,
 * else https://<hostname>:<port of [directory] listen>.
 *
 * Failure policy: every failure is returned (PST_EIO/PST_EDB/PST_EINVAL...)
 * and logged without the token; nothing aborts. A struct dir_confirm is
 * used by one thread at a time.
 */
#ifndef POSTERN_DIR_CONFIRM_H
#define POSTERN_DIR_CONFIRM_H

#include <stddef.h>
#include <stdint.h>

#include "directory/dir_store.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/err.h"

#define DIR_CONFIRM_URL_MAX 512 /* base_url + "/confirm?t=" + token */
#define DIR_CONFIRM_TEXT_MAX 8192

struct dir_confirm;

/* dir_confirm_new - a sender for cfg (borrowed; must outlive it). The Bitmessage store is opened
 * on first use. Caller frees with dir_confirm_free(). */
PST_MUST_CHECK int dir_confirm_new(const struct cfg *cfg, struct dir_confirm **out);
void dir_confirm_free(struct dir_confirm **c);

/* dir_confirm_base_url - the configured base URL, or https://<hostname>:<listen port>, without a
 * trailing slash, into out. */
PST_MUST_CHECK int dir_confirm_base_url(const struct cfg *cfg, char *out, size_t outsz);

/* dir_confirm_link - base_url + "/confirm?t=" + token into out. PST_ELIMIT if it does not fit. */
PST_MUST_CHECK int dir_confirm_link(const char *base_url, const char *token, char *out,
                                    size_t outsz);

/* dir_confirm_mail - queue a mail to `to` (a normalised SMTP address) and wake the queue. */
PST_MUST_CHECK int dir_confirm_mail(struct dir_confirm *c, const char *to, const char *subject,
                                    const char *body);

/* dir_confirm_bm - queue a Bitmessage message to `to` (BM- address) and wake the node. */
PST_MUST_CHECK int dir_confirm_bm(struct dir_confirm *c, const char *to, const char *subject,
                                  const char *body);

#endif
