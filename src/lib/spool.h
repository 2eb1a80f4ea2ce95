/*
 * spool.h - the durable message spool: one file per message.
 *
 * Layout under spool_dir:
 *   tmp/<qid>        being written; never read by the queue manager;
 *                    stale files older than a day are removed at start
 *   incoming/<qid>   committed: complete, fsync'd, renamed, directory fsync'd
 *   deferred/<qid>   tried, some recipients pending; mtime = next attempt time
 *   hold/<qid>       held by the administrator (postern queue hold)
 *   state/<qid>      per-recipient delivery results (see spool_state_append)
 *   corrupt/<qid>    files that could not be parsed
 *
 * A message is acknowledged (250) only after spool_commit() reports success,
 * i.e. after the data and the rename are on stable storage. Removing
 * messages: spool_remove() unlinks each, then one spool_sync_dir() fsyncs
 * the directory for the whole batch.
 *
 * File format (version 1). An envelope of text lines, each "key value\n",
 * values with no CR/LF/NUL (addresses are validated before they get here;
 * free text is %XX-escaped for bytes < 0x21, '%' and 0x7f), then a line
 * "data\n", then the message content (CRLF line ends, dot-unstuffed, with
 * Postern's Received: header first) to the end of the file. In practice
 * the writer escapes every value this way and the reader decodes every
 * value, so an address with a space or '%' survives a round trip:
 *
 *   postern-spool 1
 *   qid 0192F3A4B5C6D7E8
 *   time 1764000000
 *   from alice@example.org        ("from " with empty value = null sender)
 *   client 192.0.2.7
 *   helo mail.example.org
 *   proto ESMTPS
 *   auth alice                     (optional)
 *   body 8BITMIME                  (optional: 7BIT|8BITMIME)
 *   smtputf8 1                     (optional)
 *   envid xtext                    (optional, RFC 3461)
 *   ret FULL|HDRS                  (optional)
 *   rcpt bob@example.net           (one per recipient, in order)
 *   notify SUCCESS,FAILURE         (optional, applies to the preceding rcpt)
 *   orcpt rfc822;bob@example.net   (optional, applies to the preceding rcpt)
 *   data
 *   <content>
 *
 * Unknown keys are an error (the file is moved to corrupt/ and logged),
 * never silently ignored. Queue ids are 16 upper-case hex digits: 8 of
 * seconds, 5 of microseconds, 3 of a per-process counter mixed with the pid;
 * uniqueness is enforced by link(2) into incoming/ failing with EEXIST.
 *
 * Failure policy: every I/O error is returned (PST_EIO with errno kept);
 * the spool never aborts the process.
 */
#ifndef POSTERN_SPOOL_H
#define POSTERN_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define SPOOL_QID_LEN 16

struct event_base;

struct spool_rcpt {
    char *addr;      /* owned */
    char *orcpt;     /* owned, NULL if none */
    unsigned notify; /* SMTP_NOTIFY_* bits, 0 if none */
};

struct spool_env {
    char qid[SPOOL_QID_LEN + 1];
    int64_t time;
    char *sender; /* owned; "" for the null sender */
    char *client; /* owned, may be NULL */
    char *helo;   /* owned, may be NULL */
    char *proto;  /* owned, may be NULL: SMTP, ESMTP, ESMTPS, ESMTPSA ... */
    char *auth;   /* owned, NULL if not authenticated */
    int body;     /* 0 none, 1 7BIT, 2 8BITMIME */
    int smtputf8;
    int ret;     /* 0 none, 1 FULL, 2 HDRS */
    char *envid; /* owned, NULL if none */
    size_t nrcpt;
    struct spool_rcpt *rcpt; /* owned array of nrcpt */
};

/* spool_env_new - an empty envelope. Caller frees with spool_env_free(). */
struct spool_env *spool_env_new(void);
void spool_env_free(struct spool_env **env);
/* spool_env_add_rcpt - append a recipient (strings copied). */
PST_MUST_CHECK int spool_env_add_rcpt(struct spool_env *env, const char *addr, const char *orcpt,
                                      unsigned notify);

/* spool_init - create spool_dir and its subdirectories (mode 0700), remove stale tmp files. */
PST_MUST_CHECK int spool_init(const char *spool_dir);

/* ---- writing (smtpd) ---- */

struct spool_writer;

/*
 * spool_writer_open - create tmp/<qid> for a new message and write env's
 * header (env->qid and env->time are set by this call). Borrowed: env.
 * Caller owns *out: it must end in spool_commit() or spool_writer_abort().
 */
PST_MUST_CHECK int spool_writer_open(const char *spool_dir, struct spool_env *env,
                                     struct spool_writer **out);

/* spool_writer_qid - the queue id; valid for the writer's lifetime. */
const char *spool_writer_qid(const struct spool_writer *w);

/* spool_writer_write - append content bytes (buffered). */
PST_MUST_CHECK int spool_writer_write(struct spool_writer *w, const void *data, size_t len);

/* spool_writer_abort - discard the message: close, unlink tmp file, free, *w = NULL. */
void spool_writer_abort(struct spool_writer **w);

/*
 * spool_writer_commit_sync - flush, fsync, rename into incoming/, fsync the
 * directory, free the writer (*w = NULL). For the CLI and tests; servers use
 * the group committer below. On failure the tmp file is removed.
 */
PST_MUST_CHECK int spool_writer_commit_sync(struct spool_writer **w);

/* ---- group commit (smtpd event loop) ---- */

struct spool_committer;
struct spool_commit_ticket;

/* cb - called in the event loop thread; err is 0 when the message is durable in incoming/. */
typedef void (*spool_commit_cb)(void *arg, int err, const char *qid);

/*
 * spool_committer_new - a committer that runs fsyncs on its own thread, so
 * that all messages finished while one sync is in progress share the next
 * one (one syncfs/fdatasync round, then renames, then one directory fsync).
 * Borrowed: base, spool_dir (must outlive the committer).
 */
struct spool_committer *spool_committer_new(struct event_base *base, const char *spool_dir);

/* spool_committer_free - waits for in-flight commits to finish (callbacks still run), *c = NULL. */
void spool_committer_free(struct spool_committer **c);

/*
 * spool_commit - takes ownership of *w (sets *w = NULL) and queues it. The
 * returned ticket is valid until cb runs; pass it to spool_commit_detach()
 * if the caller goes away first (the message is still committed, cb is not
 * called). Returns NULL only on allocation failure (the writer is aborted).
 */
struct spool_commit_ticket *spool_commit(struct spool_committer *c, struct spool_writer **w,
                                         spool_commit_cb cb, void *arg);
void spool_commit_detach(struct spool_commit_ticket *t);

/* ---- reading (queue manager, CLI) ---- */

/* spool_scan_cb - called with each committed qid; return non-zero to stop. */
typedef int (*spool_scan_cb)(void *arg, const char *qid);

/* spool_scan - call cb for every file in incoming/ (order unspecified). */
PST_MUST_CHECK int spool_scan(const char *spool_dir, spool_scan_cb cb, void *arg);

/*
 * spool_open - open incoming/<qid>, parse its envelope into *env (caller frees
 * with spool_env_free) and return an fd positioned at the first content byte
 * in *fd (caller closes); *content_len gets the content size.
 * PST_ENOENT if absent, PST_EINVAL if the file is malformed.
 */
PST_MUST_CHECK int spool_open(const char *spool_dir, const char *qid, struct spool_env **env,
                              int *fd, uint64_t *content_len);

/* spool_remove - unlink incoming/<qid> (ENOENT is success). Does not fsync the directory. */
PST_MUST_CHECK int spool_remove(const char *spool_dir, const char *qid);

/* spool_sync_dir - fsync incoming/ (after a batch of spool_remove). */
PST_MUST_CHECK int spool_sync_dir(const char *spool_dir);

/* spool_quarantine - move incoming/<qid> to corrupt/<qid> (malformed files). */
PST_MUST_CHECK int spool_quarantine(const char *spool_dir, const char *qid);

/* ---- queues: incoming/ (new), deferred/ (waiting for a retry), hold/ (held by the admin) ---- */

enum spool_queue { SPOOL_Q_INCOMING = 0, SPOOL_Q_DEFERRED, SPOOL_Q_HOLD };

/* spool_queue_name - "incoming", "deferred" or "hold". */
const char *spool_queue_name(enum spool_queue q);

/* spool_scan_time_cb - qid and, in deferred/, the file's mtime = next attempt time (0 elsewhere).
 */
typedef int (*spool_scan_time_cb)(void *arg, const char *qid, int64_t mtime);
PST_MUST_CHECK int spool_scan_queue(const char *spool_dir, enum spool_queue q,
                                    spool_scan_time_cb cb, void *arg);

/* spool_locate - which queue holds qid; PST_ENOENT if none. */
PST_MUST_CHECK int spool_locate(const char *spool_dir, const char *qid, enum spool_queue *q);

/* spool_open_queue / spool_remove_queue / spool_quarantine_queue - as above, in queue q. */
PST_MUST_CHECK int spool_open_queue(const char *spool_dir, enum spool_queue q, const char *qid,
                                    struct spool_env **env, int *fd, uint64_t *content_len);
PST_MUST_CHECK int spool_remove_queue(const char *spool_dir, enum spool_queue q, const char *qid);
PST_MUST_CHECK int spool_quarantine_queue(const char *spool_dir, enum spool_queue q,
                                          const char *qid);
PST_MUST_CHECK int spool_sync_queue(const char *spool_dir, enum spool_queue q);

/*
 * spool_move - set the file's mtime (if mtime > 0) and rename it from one
 * queue to another (from == to: only the mtime), then fsync the target
 * directory. In deferred/ the mtime is the next attempt time.
 */
PST_MUST_CHECK int spool_move(const char *spool_dir, const char *qid, enum spool_queue from,
                              enum spool_queue to, int64_t mtime);

/*
 * Delivery state: state/<qid> holds one text record per line, appended with a
 * single write(2) (no fsync: a killed process loses nothing, a machine crash
 * may lose the last records, which costs a duplicate delivery, never a loss).
 * Records are written by the queue manager; the format is its business.
 */
PST_MUST_CHECK int spool_state_append(const char *spool_dir, const char *qid, const char *record);
typedef int (*spool_state_cb)(void *arg, const char *record);
/* spool_state_read - cb for each record in order; no file is not an error. */
PST_MUST_CHECK int spool_state_read(const char *spool_dir, const char *qid, spool_state_cb cb,
                                    void *arg);
PST_MUST_CHECK int spool_state_remove(const char *spool_dir, const char *qid);

/* spool_qid_valid - 1 if s is a well-formed queue id. */
int spool_qid_valid(const char *s);

#endif
