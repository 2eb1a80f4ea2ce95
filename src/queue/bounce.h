/*
 * bounce.h - delivery status notifications (DSNs): build one RFC 3464
 * multipart/report (RFC 6522, report-type=delivery-status) about a spooled
 * message and put it into the spool as a new message from the null sender
 * to the original sender.
 *
 * Who gets a DSN (RFC 3461 section 4.1 and 6.1):
 *   - never the null sender ("" - a bounce about a bounce would loop);
 *   - per recipient, only if its NOTIFY allows the action: FAILED needs
 *     FAILURE, DELAYED needs DELAY, DELIVERED and RELAYED need SUCCESS;
 *     NEVER excludes all; NOTIFY not given (0) means FAILURE,DELAY.
 *   The NOTIFY bits come from orig->rcpt[] (matched by address, exactly,
 *   else case-insensitively; an unmatched recipient gets the default).
 *
 * What is returned in part 3 (RFC 3461 4.3, RFC 6522):
 *   - message/rfc822 with the full original content, byte for byte, when the
 *     DSN reports a failure, RET is not HDRS and the content is at most
 *     BOUNCE_FULL_MAX bytes;
 *   - otherwise text/rfc822-headers with the original header block (up to
 *     the blank line, at most BOUNCE_HEADERS_MAX bytes, cut at a line end).
 *     Delay and success DSNs always return headers only.
 *
 * The DSN's spool envelope: sender "" (null), one recipient orig->sender
 * with NOTIFY=NEVER, proto "DSN", client and helo absent; body 8BITMIME
 * and smtputf8 set when the content needs them. The message starts with a
 * "Received: by <reporting_mta> (Postern) id <qid>;" line like every other
 * spooled message. Line ends are CRLF, header fields are folded at blanks
 * to stay under 78 bytes where possible and always under 998.
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "lib/spool.h"

#define BOUNCE_FULL_MAX (10 * 1024 * 1024)  /* larger originals come back as headers only */
#define BOUNCE_HEADERS_MAX (256 * 1024)     /* header block returned at most */
#define BOUNCE_REPORT_MAX (8 * 1024 * 1024) /* parts 1 and 2 together */
#define BOUNCE_RCPT_MAX 10000               /* recipients in one DSN */
#define BOUNCE_TEXT_MAX 2048                /* bytes kept of one diagnostic or remote-MTA text */

enum bounce_action { BOUNCE_FAILED, BOUNCE_DELAYED, BOUNCE_DELIVERED, BOUNCE_RELAYED };

struct bounce_rcpt {
    const char *addr;  /* final recipient, local@domain */
    const char *orcpt; /* "rfc822;xtext" as stored, or NULL: then orig's ORCPT is used */
    enum bounce_action action;
    const char *status;     /* RFC 3463 code "5.1.1"; NULL or malformed: 5.0.0/4.0.0/2.0.0 */
    const char *remote_mta; /* host name, or NULL */
    const char *diagnostic; /* "smtp; 550 5.1.1 user unknown"; without "type;" the type
                               X-Postern is added; or NULL */
    int64_t last_attempt;   /* unix time, 0 = unknown */
};

/*
 * bounce_notify - write one DSN about orig (envelope, borrowed; content
 * readable with pread() from content_fd at content_offset for content_len
 * bytes - the fd's offset is not used or moved) for the n recipients rcpts
 * (borrowed) to orig->sender, and commit it to spool_dir synchronously.
 * reporting_mta is this host's name (From: MAILER-DAEMON@..., Reporting-MTA).
 *
 * Returns 0 and the new queue id in qid_out; PST_ENOENT when no
 * notification is due (null sender, n == 0, or every recipient's NOTIFY
 * excludes its action); PST_EINVAL for bad arguments; PST_EIO when the
 * content cannot be read in full or the spool write fails; PST_ELIMIT when
 * the report would exceed BOUNCE_REPORT_MAX or n > BOUNCE_RCPT_MAX.
 * Nothing is left in the spool on failure.
 */
PST_MUST_CHECK int bounce_notify(const char *spool_dir, const char *reporting_mta,
                                 const struct spool_env *orig, int content_fd, off_t content_offset,
                                 uint64_t content_len, const struct bounce_rcpt *rcpts, size_t n,
                                 char qid_out[SPOOL_QID_LEN + 1]);

/* bounce_action_name - "failed", "delayed", "delivered", "relayed" (RFC 3464 2.3.3). */
const char *bounce_action_name(enum bounce_action a);

#endif
