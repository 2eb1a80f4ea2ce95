/*
 * dir_pages.c - HTML of the directory's web form and its result pages.
 *
 * Structure of every page (HTML Living Standard; WCAG 2.1 AA):
 *   <!DOCTYPE html> <html lang="en"> head with charset, viewport, title,
 *   /style.css; a skip link to <main id="main">; a header naming the site;
 *   main with exactly one h1; a footer linking back to the form.
 * Forms use <label for=...>, required/autocomplete/inputmode hints, and no
 * tabindex tricks, so the focus order is the reading order. An error on the
 * form page is a role="alert" block before the form. Colours: #1b1b1b on
 * #ffffff (contrast 17:1), links #0b4f9e (8:1), buttons white on #0b4f9e.
 *
 * Escaping: every value from a request or the database goes through
 * dir_html_escape (& < > " ' -> entities), in text and in attributes (all
 * attributes are double-quoted). Static text is written as is.
 *
 * Failure policy: buffer errors (PST_ELIMIT, PST_ENOMEM) are returned.
 */
#include "directory/dir_pages.h"

#include <stdio.h>
#include <string.h>

#define DIR_PAGE_SITE "Postern directory"

const char DIR_PAGE_CSS[] =
    "html{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;font-size:100%;"
    "line-height:1.5;color:#1b1b1b;background:#fff}\n"
    "body{margin:0 auto;max-width:42rem;padding:0 1rem 2rem}\n"
    "a{color:#0b4f9e}\n"
    "a:focus,input:focus,select:focus,button:focus{outline:3px solid #b35900;outline-offset:2px}\n"
    ".skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff}\n"
    "header{border-bottom:1px solid #767676;margin-bottom:1rem}\n"
    "header p{margin:.75rem 0;font-weight:bold}\n"
    "label{display:block;font-weight:bold;margin-top:1rem}\n"
    ".hint{display:block;font-weight:normal;color:#474747}\n"
    "input,select{font:inherit;width:100%;box-sizing:border-box;padding:.4rem;"
    "border:2px solid #595959;border-radius:3px}\n"
    "button{font:inherit;margin-top:1rem;padding:.5rem 1.2rem;color:#fff;background:#0b4f9e;"
    "border:0;border-radius:3px;cursor:pointer}\n"
    ".alert{border:2px solid #a4000f;background:#fdf1f2;padding:.5rem 1rem;color:#1b1b1b}\n"
    ".ok{border:2px solid #1d6b2f;background:#f0f8f1;padding:.5rem 1rem}\n"
    "code{word-break:break-all}\n"
    "footer{margin-top:2rem;border-top:1px solid #767676;font-size:.9rem}\n";
const size_t DIR_PAGE_CSS_LEN = sizeof(DIR_PAGE_CSS) - 1;

int dir_html_escape(buf_t *out, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *ent;
        switch (s[i]) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            continue;
        }
        int rc = buf_append(out, s + start, i - start);
        if (rc == 0)
            rc = buf_append_str(out, ent);
        if (rc != 0)
            return rc;
        start = i + 1;
    }
    return buf_append(out, s + start, len - start);
}

static int dir_page_esc(buf_t *out, const char *s)
{
    return s ? dir_html_escape(out, s, strlen(s)) : 0;
}

/* dir_page_put - append static text pieces (NULL-terminated list); stops at the first error. */
static int dir_page_put(buf_t *out, const char *s)
{
    return buf_append_str(out, s);
}

static int dir_page_head(buf_t *out, const char *title)
{
    int rc = dir_page_put(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                               "<meta charset=\"utf-8\">\n"
                               "<meta name=\"viewport\" content=\"width=device-width, "
                               "initial-scale=1\">\n<title>");
    if (rc == 0)
        rc = dir_page_esc(out, title);
    if (rc == 0)
        rc = dir_page_put(out, " - " DIR_PAGE_SITE "</title>\n"
                               "<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n<body>\n"
                               "<a class=\"skip\" href=\"#main\">Skip to content</a>\n"
                               "<header><p><a href=\"/\">" DIR_PAGE_SITE "</a></p></header>\n"
                               "<main id=\"main\">\n<h1>");
    if (rc == 0)
        rc = dir_page_esc(out, title);
    if (rc == 0)
        rc = dir_page_put(out, "</h1>\n");
    return rc;
}

static int dir_page_tail(buf_t *out)
{
    return dir_page_put(out, "</main>\n<footer><p><a href=\"/\">Back to the directory's "
                             "form</a></p></footer>\n</body>\n</html>\n");
}

/* dir_page_duration - "48 hours", "30 minutes", "2 days" for the explanation texts. */
static void dir_page_duration(int64_t secs, char *out, size_t outsz)
{
    int n;
    if (secs >= 3 * 86400 && secs % 86400 == 0)
        n = snprintf(out, outsz, "%lld days", (long long)(secs / 86400));
    else if (secs >= 2 * 3600)
        n = snprintf(out, outsz, "%lld hours", (long long)(secs / 3600));
    else
        n = snprintf(out, outsz, "%lld minutes", (long long)(secs / 60 > 0 ? secs / 60 : 1));
    if (n < 0 || (size_t)n >= outsz)
        snprintf(out, outsz, "a limited time");
}

static int dir_page_selected(buf_t *out, const char *type, const char *want)
{
    if (type != NULL && strcmp(type, want) == 0)
        return dir_page_put(out, " selected");
    return 0;
}

static int dir_page_form_register(buf_t *out, const struct dir_page_form *f)
{
    int rc = dir_page_put(out, "<h2 id=\"register\">List your addresses</h2>\n"
                               "<form method=\"post\" action=\"/register\">\n"
                               "<input type=\"hidden\" name=\"csrf\" value=\"");
    if (rc == 0)
        rc = dir_page_esc(out, f->csrf);
    if (rc == 0)
        rc = dir_page_put(out, "\">\n<label for=\"smtp\">Your email (SMTP) address"
                               "<span class=\"hint\" id=\"smtp-hint\">For example "
                               "alice@example.org</span></label>\n"
                               "<input id=\"smtp\" name=\"smtp\" type=\"email\" required "
                               "maxlength=\"320\" autocomplete=\"email\" "
                               "aria-describedby=\"smtp-hint\" value=\"");
    if (rc == 0)
        rc = dir_page_esc(out, f->smtp);
    if (rc == 0)
        rc = dir_page_put(out, "\">\n<label for=\"alt\">Your alternative address"
                               "<span class=\"hint\" id=\"alt-hint\">A Bitmessage address "
                               "(BM-...) or a direct mail address (dmail://...)</span></label>\n"
                               "<input id=\"alt\" name=\"alt\" type=\"text\" required "
                               "maxlength=\"512\" autocomplete=\"off\" spellcheck=\"false\" "
                               "aria-describedby=\"alt-hint\" value=\"");
    if (rc == 0)
        rc = dir_page_esc(out, f->alt);
    if (rc == 0)
        rc = dir_page_put(out, "\">\n<label for=\"type\">Type of the alternative address</label>\n"
                               "<select id=\"type\" name=\"type\">\n<option value=\"\"");
    if (rc == 0)
        rc = dir_page_selected(out, f->type, "");
    if (rc == 0)
        rc = dir_page_put(out, ">Recognise it from the address</option>\n"
                               "<option value=\"bitmessage\"");
    if (rc == 0)
        rc = dir_page_selected(out, f->type, "bitmessage");
    if (rc == 0)
        rc = dir_page_put(out, ">Bitmessage</option>\n<option value=\"dmail\"");
    if (rc == 0)
        rc = dir_page_selected(out, f->type, "dmail");
    if (rc == 0)
        rc = dir_page_put(out, ">Direct mail (dmail)</option>\n</select>\n"
                               "<button type=\"submit\">Send the two confirmation links</button>\n"
                               "</form>\n");
    return rc;
}

static int dir_page_form_remove(buf_t *out, const struct dir_page_form *f)
{
    int rc = dir_page_put(out, "<h2 id=\"remove\">Remove a listing</h2>\n"
                               "<p>Enter the email address of the listing. A removal link goes "
                               "to that address; the listing disappears once it is followed."
                               "</p>\n<form method=\"post\" action=\"/remove\">\n"
                               "<input type=\"hidden\" name=\"csrf\" value=\"");
    if (rc == 0)
        rc = dir_page_esc(out, f->csrf);
    if (rc == 0)
        rc = dir_page_put(out, "\">\n<label for=\"rsmtp\">Email (SMTP) address of the listing"
                               "</label>\n<input id=\"rsmtp\" name=\"smtp\" type=\"email\" "
                               "required maxlength=\"320\" autocomplete=\"email\">\n"
                               "<button type=\"submit\">Send the removal link</button>\n"
                               "</form>\n");
    return rc;
}

int dir_page_form(buf_t *out, const struct dir_page_form *f)
{
    char ttl[48];
    dir_page_duration(f->link_ttl, ttl, sizeof ttl);
    int rc = dir_page_head(out, "Public address directory");
    if (rc == 0 && f->error) {
        rc = dir_page_put(out, "<div class=\"alert\" role=\"alert\" tabindex=\"-1\" "
                               "id=\"error\"><p><strong>Your request was not accepted:</strong> ");
        if (rc == 0)
            rc = dir_page_esc(out, f->error);
        if (rc == 0)
            rc = dir_page_put(out, "</p></div>\n");
    }
    if (rc == 0)
        rc = dir_page_put(
            out, "<p>This directory tells mail gateways that a person who has an ordinary email "
                 "address can also be reached on another, more private system: "
                 "<strong>Bitmessage</strong> or <strong>direct mail</strong>. When someone "
                 "writes to your email address through a gateway that consults this directory, "
                 "the message travels to your alternative address instead.</p>\n"
                 "<h2>What happens next</h2>\n<ol>\n"
                 "<li>You enter your email address and your alternative address below.</li>\n"
                 "<li>We send one confirmation link to your email address and another to your "
                 "alternative address.</li>\n"
                 "<li>Follow <em>both</em> links and press the button on each page. Only then "
                 "does your listing go live; until then nothing is published.</li>\n"
                 "<li>The links expire after ");
    if (rc == 0)
        rc = dir_page_esc(out, ttl);
    if (rc == 0)
        rc = dir_page_put(
            out, ". Unconfirmed requests are deleted then.</li>\n</ol>\n"
                 "<p>A live listing is public: anyone can look up which alternative address "
                 "belongs to your email address, and the reverse. You can remove it at any time "
                 "with the second form on this page.</p>\n");
    if (rc == 0)
        rc = dir_page_form_register(out, f);
    if (rc == 0)
        rc = dir_page_form_remove(out, f);
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}

int dir_page_registered(buf_t *out, const char *smtp, const char *type, const char *alt,
                        int64_t link_ttl)
{
    char ttl[48];
    dir_page_duration(link_ttl, ttl, sizeof ttl);
    int rc = dir_page_head(out, "Check both inboxes");
    if (rc == 0)
        rc = dir_page_put(out, "<div class=\"ok\"><p>We have sent two confirmation links: one "
                               "to <strong>");
    if (rc == 0)
        rc = dir_page_esc(out, smtp);
    if (rc == 0)
        rc = dir_page_put(out, "</strong> by email, and one to <strong><code>");
    if (rc == 0)
        rc = dir_page_esc(out, alt);
    if (rc == 0)
        rc = dir_page_put(out, "</code></strong> by ");
    if (rc == 0)
        rc = dir_page_put(out,
                          type && strcmp(type, "bitmessage") == 0 ? "Bitmessage" : "direct mail");
    if (rc == 0)
        rc = dir_page_put(out, ".</p></div>\n<p>Open each message, follow its link and press the "
                               "button on the page it opens. Your listing goes live when both "
                               "are confirmed. Bitmessage can take several minutes to arrive."
                               "</p>\n<p>The links expire after ");
    if (rc == 0)
        rc = dir_page_esc(out, ttl);
    if (rc == 0)
        rc = dir_page_put(out, ". If you did not ask for this, do nothing: nothing is published "
                               "without both confirmations.</p>\n");
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}

int dir_page_confirm_ask(buf_t *out, const char *token, const char *csrf)
{
    int rc = dir_page_head(out, "Confirm");
    if (rc == 0)
        rc = dir_page_put(out, "<p>Press the button to confirm. (Opening this link alone "
                               "changes nothing, so that mail programs that check links "
                               "cannot confirm for you.)</p>\n"
                               "<form method=\"post\" action=\"/confirm\">\n"
                               "<input type=\"hidden\" name=\"t\" value=\"");
    if (rc == 0)
        rc = dir_page_esc(out, token);
    if (rc == 0)
        rc = dir_page_put(out, "\">\n<input type=\"hidden\" name=\"csrf\" value=\"");
    if (rc == 0)
        rc = dir_page_esc(out, csrf);
    if (rc == 0)
        rc = dir_page_put(out, "\">\n<button type=\"submit\">Confirm</button>\n</form>\n");
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}

int dir_page_confirmed(buf_t *out, const struct dir_record *r, enum dir_purpose side, bool live)
{
    int rc = dir_page_head(out, live ? "Your listing is live" : "Address confirmed");
    if (rc == 0)
        rc = dir_page_put(out, "<div class=\"ok\"><p>Confirmed: <strong><code>");
    if (rc == 0)
        rc = dir_page_esc(out, side == DIR_CONFIRM_SMTP ? r->smtp : r->alt);
    if (rc == 0)
        rc = dir_page_put(out, "</code></strong> (");
    if (rc == 0)
        rc = dir_page_put(out, side == DIR_CONFIRM_SMTP ? "your email address"
                                                        : "your alternative address");
    if (rc == 0)
        rc = dir_page_put(out, ").</p></div>\n");
    if (rc == 0 && live) {
        rc = dir_page_put(out, "<p>Both addresses are confirmed. From now on the directory "
                               "answers <strong>");
        if (rc == 0)
            rc = dir_page_esc(out, r->smtp);
        if (rc == 0)
            rc = dir_page_put(out, "</strong> with <strong><code>");
        if (rc == 0)
            rc = dir_page_esc(out, r->alt);
        if (rc == 0)
            rc = dir_page_put(out, "</code></strong>.</p>\n");
    } else if (rc == 0) {
        rc = dir_page_put(out, "<p>Your listing is <strong>not live yet</strong>: follow the "
                               "link we sent to ");
        if (rc == 0)
            rc = dir_page_put(out, side == DIR_CONFIRM_SMTP ? "your alternative address"
                                                            : "your email address");
        if (rc == 0)
            rc = dir_page_put(out, " as well.</p>\n");
    }
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}

int dir_page_removal_sent(buf_t *out, const char *smtp, int64_t link_ttl)
{
    char ttl[48];
    dir_page_duration(link_ttl, ttl, sizeof ttl);
    int rc = dir_page_head(out, "Check your inbox");
    if (rc == 0)
        rc = dir_page_put(out, "<div class=\"ok\"><p>We have sent a removal link to <strong>");
    if (rc == 0)
        rc = dir_page_esc(out, smtp);
    if (rc == 0)
        rc = dir_page_put(out, "</strong>.</p></div>\n<p>Follow it and press the button to "
                               "remove the listing. The link expires after ");
    if (rc == 0)
        rc = dir_page_esc(out, ttl);
    if (rc == 0)
        rc = dir_page_put(out, ".</p>\n");
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}

int dir_page_removed(buf_t *out, const struct dir_record *r)
{
    int rc = dir_page_head(out, "Listing removed");
    if (rc == 0)
        rc = dir_page_put(out, "<div class=\"ok\"><p>The directory no longer lists <strong>"
                               "<code>");
    if (rc == 0)
        rc = dir_page_esc(out, r->alt);
    if (rc == 0)
        rc = dir_page_put(out, "</code></strong> for <strong>");
    if (rc == 0)
        rc = dir_page_esc(out, r->smtp);
    if (rc == 0)
        rc = dir_page_put(out, "</strong>.</p></div>\n<p>Gateways that cached the old answer "
                               "may use it for a few more minutes.</p>\n");
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}

int dir_page_error(buf_t *out, int status, const char *title, const char *detail)
{
    int rc = dir_page_head(out, title);
    if (rc == 0)
        rc = dir_page_put(out, "<div class=\"alert\" role=\"alert\"><p>");
    if (rc == 0)
        rc = dir_page_esc(out, detail);
    if (rc == 0)
        rc = dir_page_put(out, "</p></div>\n<p>Nothing was changed.");
    if (rc == 0)
        rc = buf_printf(out, " (HTTP status %d.)</p>\n", status);
    if (rc == 0)
        rc = dir_page_tail(out);
    return rc;
}
