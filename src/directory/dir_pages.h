/*
 * dir_pages.h - the directory's server-rendered HTML: the registration and
 * removal form, the "check both inboxes" page, the confirmation pages, and
 * one page for every error.
 *
 * Pages work without JavaScript and without inline style or script (the
 * Content-Security-Policy is default-src 'self'; the style sheet is
 * DIR_PAGE_CSS, served at /style.css). Every page has lang="en", one h1,
 * labelled inputs in a natural focus order, and text/background contrast
 * above WCAG AA. Everything that comes from a request or the database is
 * HTML-escaped by these functions; callers pass raw text.
 *
 * Every function appends to out (borrowed) and returns 0 or PST_ELIMIT /
 * PST_ENOMEM from buf.h; on failure out holds a partial page.
 */
#ifndef POSTERN_DIR_PAGES_H
#define POSTERN_DIR_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/dir_store.h"
#include "lib/buf.h"
#include "lib/err.h"

/* The style sheet (static text) and its length. */
extern const char DIR_PAGE_CSS[];
extern const size_t DIR_PAGE_CSS_LEN;

/* What the form shows: prefilled values (may be NULL) and an error (NULL for none). */
struct dir_page_form {
    const char *csrf; /* hidden field value; required */
    const char *smtp; /* previous input to show again */
    const char *alt;
    const char *type;  /* "", "bitmessage", "dmail": the selected option */
    const char *error; /* shown above the form, and focusable */
    int64_t link_ttl;  /* seconds, for the explanation */
};

/* dir_html_escape - append len bytes of text with & < > " ' escaped. */
PST_MUST_CHECK int dir_html_escape(buf_t *out, const char *s, size_t len);

/* dir_page_form - GET /: what the directory is, the registration form, the removal form. */
PST_MUST_CHECK int dir_page_form(buf_t *out, const struct dir_page_form *f);

/* dir_page_registered - after POST /register: both confirmations are on their way. */
PST_MUST_CHECK int dir_page_registered(buf_t *out, const char *smtp, const char *type,
                                       const char *alt, int64_t link_ttl);

/* dir_page_confirm_ask - GET /confirm?t=: the button that confirms (a POST). */
PST_MUST_CHECK int dir_page_confirm_ask(buf_t *out, const char *token, const char *csrf);

/* dir_page_confirmed - one side of r confirmed; live says whether the listing is now live. */
PST_MUST_CHECK int dir_page_confirmed(buf_t *out, const struct dir_record *r, enum dir_purpose side,
                                      bool live);

/* dir_page_removal_sent - after POST /remove: the removal link went to the SMTP address. */
PST_MUST_CHECK int dir_page_removal_sent(buf_t *out, const char *smtp, int64_t link_ttl);

/* dir_page_removed - the listing r is removed. */
PST_MUST_CHECK int dir_page_removed(buf_t *out, const struct dir_record *r);

/* dir_page_error - an error page: status (for the title), title and explanation (plain text). */
PST_MUST_CHECK int dir_page_error(buf_t *out, int status, const char *title, const char *detail);

#endif
