/*
 * pop3_mbox.h - the mailbox a POP3 session serves: a small backend
 * interface (vtable) plus Postern's local Maildir implementation and the
 * wire encoder shared by backends that read LF-terminated files.
 *
 * The interface lets pop3d serve any mailbox: the local Maildir backend
 * here, and the aggregating proxy (pop3px), which merges several upstream
 * mailboxes into one. Every call is made from the event-loop thread.
 * Operations that may need the network (opening, streaming, committing)
 * are asynchronous: they take a completion callback, which a synchronous
 * backend (Maildir) may call before the operation returns. After
 * pop3_mbox_close() or a cancel no callback is called any more.
 *
 * Message model (RFC 1939 5): a snapshot taken at open, messages numbered
 * 0..count-1 here (1-based on the wire). Each has a size (octets of the
 * message as RETR delivers it, after LF -> CRLF and before dot-stuffing,
 * RFC 1939 11) and a unique-id (RFC 1939 7: 1..70 characters 0x21..0x7E,
 * unique in the mailbox, stable across sessions). Deletion marks live in
 * the session; the backend only sees them at commit (UPDATE state).
 *
 * Streams produce the "wire form": dot-stuffed, CRLF-terminated lines,
 * ending with CRLF, without the terminating ".\r\n" (the session adds it).
 * A backend whose source is already in wire form (an upstream POP3 server)
 * passes it through; a file-based one uses pop3_wire_*.
 */
#ifndef POSTERN_POP3_MBOX_H
#define POSTERN_POP3_MBOX_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define POP3_UIDL_MAX 70 /* RFC 1939 7 */

struct evbuffer;
struct pop3_mbox;
struct pop3_stream;
struct pop3_open_req;

struct pop3_msginfo {
    uint64_t size;                /* octets as retrieved (CRLF form, not dot-stuffed) */
    char uidl[POP3_UIDL_MAX + 1]; /* NUL-terminated unique-id */
};

/* Completion of pop3_backend_open: rc 0 and mb (caller owns, pop3_mbox_close) or rc < 0.
 * PST_EAGAIN means "mailbox in use" (reply [IN-USE]); PST_EIO/ENOMEM: [SYS/TEMP]. */
typedef void (*pop3_open_done)(void *arg, int rc, struct pop3_mbox *mb);
/* Wake-up: a stream that returned PST_EAGAIN can make progress now. */
typedef void (*pop3_wake_fn)(void *arg);
/* Completion of a commit: rc 0 if every deletion was done; else < 0 and note (borrowed for the
 * call, may be NULL) says what was not done, for the QUIT reply. */
typedef void (*pop3_commit_done)(void *arg, int rc, const char *note);

struct pop3_mbox_ops {
    const char *name; /* "maildir", "proxy": for logs */
    size_t (*count)(struct pop3_mbox *mb);
    /* Message i (0-based, < count); borrowed, valid until close. */
    const struct pop3_msginfo *(*info)(struct pop3_mbox *mb, size_t i);
    /*
     * stream_open - start sending message i; lines < 0: whole message
     * (RETR), else headers, the blank line and `lines` body lines (TOP).
     * wake(arg) is called when a stream_read that returned PST_EAGAIN may
     * be retried. Returns 0 and *out (free with stream_close), or PST_E*.
     * Only one stream per mailbox is open at a time.
     */
    int (*stream_open)(struct pop3_mbox *mb, size_t i, long lines, pop3_wake_fn wake, void *arg,
                       struct pop3_stream **out);
    /*
     * stream_read - append up to about `max` bytes of wire form to out.
     * Returns 1 when the message is complete (the last bytes are CRLF), 0
     * if more is to come (call again), PST_EAGAIN if nothing is available
     * now (wait for wake), or another PST_E* on failure. Before the first
     * byte is produced a failure means "message unavailable": the session
     * answers -ERR; after it, the session must drop the connection.
     */
    int (*stream_read)(struct pop3_stream *st, struct evbuffer *out, size_t max);
    void (*stream_close)(struct pop3_stream **st);
    /*
     * commit - UPDATE state: remove the messages whose deleted[i] is
     * non-zero (count entries), durably, then call done once. May call done
     * before returning. Returns 0 if done was or will be called, else PST_E*
     * (done is not called).
     */
    int (*commit)(struct pop3_mbox *mb, const unsigned char *deleted, pop3_commit_done done,
                  void *arg);
    /* close - release the mailbox (lock, files) without deleting anything; *mb = NULL. */
    void (*close)(struct pop3_mbox **mb);
};

struct pop3_mbox {
    const struct pop3_mbox_ops *ops; /* first member of every implementation */
};

/* Opening a user's mailbox: a backend (owned by the pop3d process). */
struct pop3_backend_ops {
    const char *name;
    /*
     * open - open the mailbox of `user` (a valid userdb name, borrowed for
     * the call). done is called once with the result, possibly before open
     * returns. If done is not yet called when open returns, *req is set to a
     * handle for cancel (else NULL). Returns 0 if done was or will be
     * called, else PST_E* (done not called).
     */
    int (*open)(void *ctx, const char *user, pop3_open_done done, void *arg,
                struct pop3_open_req **req);
    /* cancel - the session went away: done will not be called; the request is freed. */
    void (*cancel)(void *ctx, struct pop3_open_req *req);
    /* free - release ctx. */
    void (*free)(void *ctx);
};

struct pop3_backend {
    const struct pop3_backend_ops *ops;
    void *ctx; /* owned by the backend */
};

/* Convenience wrappers (mb, st borrowed). */
size_t pop3_mbox_count(struct pop3_mbox *mb);
const struct pop3_msginfo *pop3_mbox_info(struct pop3_mbox *mb, size_t i);
void pop3_mbox_close(struct pop3_mbox **mb);

/* ---- the local Maildir backend ---------------------------------------- */

/*
 * pop3_maildir_backend_init - a backend serving <mail_dir>/<user>/
 * (mail_dir borrowed, must outlive the backend). The Maildir is created
 * when missing. Free with be->ops->free(be->ctx). Returns 0 or PST_ENOMEM.
 */
PST_MUST_CHECK int pop3_maildir_backend_init(struct pop3_backend *be, const char *mail_dir);

/*
 * pop3_maildir_open - open the Maildir at path (borrowed) directly:
 * create it if missing, take the exclusive lock (<path>/.pop3.lock, flock;
 * PST_EAGAIN if another session holds it), snapshot new/ and cur/, compute
 * sizes (from ",W=" in the name, the size cache <path>/.pop3.sizes, or by
 * reading the file) and unique-ids. Caller frees with pop3_mbox_close.
 */
PST_MUST_CHECK int pop3_maildir_open(const char *path, struct pop3_mbox **out);

/*
 * pop3_maildir_uidl - the unique-id of a Maildir file name: the part before
 * ":2," (or before ':' ) if it is 1..70 bytes of 0x21..0x7E, else "H" and
 * 40 hex digits of the SHA-256 of that part. Writes POP3_UIDL_MAX+1 bytes
 * at most into out. Returns 0 or PST_EINVAL (empty name).
 */
PST_MUST_CHECK int pop3_maildir_uidl(const char *name, char out[POP3_UIDL_MAX + 1]);

/* ---- wire encoding of LF-terminated messages -------------------------- */

/*
 * The encoder turns a message stored with LF line ends (a bare CR is
 * kept; an existing CRLF stays CRLF) into POP3 wire form: every line ends
 * in CRLF, a line starting with '.' gets one more '.', and a final CRLF is
 * added if the message does not end with a line end. With a line limit it
 * stops after the header, the blank line and that many body lines (TOP).
 */
struct pop3_wire {
    long lines_left; /* body lines still wanted; < 0: no limit */
    int bol;         /* at the beginning of a line */
    int prev_cr;     /* last input byte was CR */
    int in_body;     /* the blank line after the header was seen */
    int done;        /* line limit reached: ignore further input */
    size_t linelen;  /* bytes of the current line so far, saturating at 2 */
};

/* pop3_wire_init - lines < 0 for the whole message (RETR), else TOP's count. */
void pop3_wire_init(struct pop3_wire *w, long lines);

/* POP3_WIRE_OUT_MAX - output room pop3_wire_encode needs for n input bytes. */
#define POP3_WIRE_OUT_MAX(n) (2 * (n) + 2)

/*
 * pop3_wire_encode - encode in[0..inlen) into out, which must have room for
 * POP3_WIRE_OUT_MAX(inlen) bytes. Returns the bytes written. After the line
 * limit is reached (w->done) input is ignored.
 */
size_t pop3_wire_encode(struct pop3_wire *w, const char *in, size_t inlen, char *out);

/* pop3_wire_finish - at end of input: write the final CRLF if needed (room: 2). Returns bytes. */
size_t pop3_wire_finish(struct pop3_wire *w, char *out);

/*
 * pop3_wire_size - running count of the retrieved size (CRLF form, not
 * dot-stuffed) of LF-terminated content: feed chunks with the state
 * (*prev_cr, *bol start as 0, 1); the total is the sum of the returns plus,
 * if *bol is 0 at the end (no final line end), 1 when *prev_cr else 2.
 */
uint64_t pop3_wire_size_chunk(const char *in, size_t len, int *prev_cr, int *bol);

#endif
