/*
 * maildir.h - Maildir delivery (https://cr.yp.to/proto/maildir.html).
 *
 * A Maildir is a directory holding cur/, new/ and tmp/. A message is
 * written to tmp/<name>, made durable, then link(2)ed to new/<name> and the
 * tmp file unlinked. Names are deterministic per (queue id, recipient
 * index), so a delivery repeated after a crash finds new/<name> already
 * present (EEXIST) and counts as done: exactly once in new/.
 *
 * Name:    <queue-time-seconds>.Q<qid>R<index>.<host>,S=<size>
 *          host is the hostname with '/' -> \057 and ':' -> \072 (as the
 *          Maildir spec says), and also ',' -> \054, '\' -> \134 and every
 *          byte outside 0x21..0x7e -> \ooo; "unknown" if empty; at most
 *          MAILDIR_HOST_MAX bytes after escaping. size is the final file size.
 *          The tmp/ name is the same without ",S=<size>".
 * Content: "Return-Path: <sender>\n" "Delivered-To: rcpt\n" then the spool
 *          content with every CRLF turned into LF (a bare CR is kept).
 *
 * Known limit: once a mail client has moved new/<name> to cur/<name>:2,...
 * a repeated delivery is not detected (the caller avoids repeats; only a
 * crash between publishing and removing the spool file can cause one).
 *
 * Failure policy: errors are returned (PST_EIO with errno, PST_EINVAL for a
 * sender or recipient containing CR or LF or a malformed qid, PST_ELIMIT for
 * over-long paths or names); nothing aborts.
 */
#ifndef POSTERN_MAILDIR_H
#define POSTERN_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MAILDIR_HOST_MAX 128 /* bytes of escaped hostname in a file name */
#define MAILDIR_NAME_MAX 255 /* bytes in a file name (NAME_MAX) */

/* maildir_create - create path (and missing parents) and path/{cur,new,tmp}, mode 0700. */
PST_MUST_CHECK int maildir_create(const char *path);

/*
 * maildir_host_escape - escape hostname for use in a file name (see above).
 * Returns 0, or PST_ELIMIT if outsz < MAILDIR_HOST_MAX + 1.
 */
PST_MUST_CHECK int maildir_host_escape(const char *hostname, char *out, size_t outsz);

/*
 * maildir_name - the tmp/ name (with_size == 0) or new/ name of a delivery.
 * host must already be escaped. Returns 0 or PST_ELIMIT.
 */
PST_MUST_CHECK int maildir_name(char *out, size_t outsz, int64_t qtime, const char *qid,
                                unsigned index, const char *host, int with_size, uint64_t size);

/* One delivery. All pointers borrowed for the duration of the call. */
struct maildir_msg {
    const char *maildir;  /* the Maildir root (holds cur/new/tmp); must exist */
    const char *qid;      /* spool queue id */
    int64_t qtime;        /* queue time (seconds) */
    unsigned index;       /* recipient index in the envelope */
    const char *sender;   /* "" for the null sender */
    const char *rcpt;     /* the recipient address */
    int content_fd;       /* read with pread(); the offset is not changed */
    uint64_t content_off; /* first content byte */
    uint64_t content_len;
};

struct maildir_batch;

/* maildir_batch_new - an empty batch. hostname borrowed for the call. Free with maildir_batch_free.
 */
struct maildir_batch *maildir_batch_new(const char *hostname);

/*
 * maildir_batch_add - write tmp/<name> for m now (not yet durable or visible).
 * Returns the item's index (>= 0) for maildir_batch_result(), or a negative
 * PST_E* code (nothing added, no tmp file left). The same (maildir, qid,
 * index) must not be added twice to one batch (they share a tmp name).
 */
PST_MUST_CHECK int maildir_batch_add(struct maildir_batch *b, const struct maildir_msg *m);

/*
 * maildir_batch_commit - make every added file durable (fdatasync for one
 * file, one syncfs(2) per file system for more), link each into new/ (EEXIST
 * = already delivered = success), unlink the tmp files, and fsync each
 * distinct new/ directory once. Per-item outcome via maildir_batch_result().
 * Returns 0 if every item succeeded, else the first error. Call once.
 */
PST_MUST_CHECK int maildir_batch_commit(struct maildir_batch *b);

/* maildir_batch_count - number of items added. */
size_t maildir_batch_count(const struct maildir_batch *b);

/*
 * maildir_batch_result - item i's outcome: 0 if it is durable in new/, else
 * its PST_E* code (PST_EAGAIN before commit). *size gets the file size and
 * *name the new/ name (borrowed, valid until the batch is freed); either may be NULL.
 */
int maildir_batch_result(const struct maildir_batch *b, size_t i, uint64_t *size,
                         const char **name);

/* maildir_batch_free - unlink tmp files not published, free, *b = NULL. */
void maildir_batch_free(struct maildir_batch **b);

/* maildir_deliver - one message: a batch of one. *size (may be NULL) gets the file size. */
PST_MUST_CHECK int maildir_deliver(const struct maildir_msg *m, const char *hostname,
                                   uint64_t *size);

#endif
