/*
 * dir_import.c - CSV and XML importers for the public directory.
 *
 * CSV (RFC 4180, section 2, read liberally where it is safe):
 *   - records end with CRLF, LF or a bare CR; the last one may lack it;
 *   - a field is either unquoted (no '"', CR or LF) or enclosed in double
 *     quotes, inside which CR, LF and ',' are data and '""' is one '"';
 *   - a UTF-8 byte order mark at the very start is skipped;
 *   - blank records (an empty line) are skipped; blanks and tabs around a
 *     field's value are trimmed (addresses never hold them);
 *   - the first record is a header when every field names a column
 *     (case-insensitively): smtp_address, type, alternative_address,
 *     bitmessage_address, dmail_address. A header that names an unknown
 *     column, or lacks smtp_address or any alternative column, refuses the
 *     file. Without a header the first record fixes the layout: two fields
 *     smtp,alternative or three smtp,type,alternative.
 *   Row-level refusals (the row is reported, the parse goes on at the next
 *   record): a field over DIR_IMPORT_FIELD_MAX bytes, more fields than the
 *   layout, a '"' inside an unquoted field, text after a closing quote, a
 *   NUL byte, a quoted field still open at the end of the file.
 *
 * XML (the seed's export; expat, streaming):
 *   <xml>                                        root, depth 1
 *     <record>                                   depth 2, one listing
 *       <smtp_address>a@example.org</smtp_address>       exactly one
 *       <bitmessage_address>BM-...</bitmessage_address>  one or more of these
 *       <dmail_address>dmail://...</dmail_address>       (any mix)
 *     </record>
 *   </xml>
 *   Attributes, comments and processing instructions are ignored. A DOCTYPE
 *   refuses the file (so no entity can be declared: no "billion laughs",
 *   no external entities), parameter entities are never parsed, nesting
 *   past DIR_IMPORT_XML_DEPTH_MAX refuses the file. An unknown element or
 *   an element nested inside a field rejects its record; so does a field
 *   over DIR_IMPORT_FIELD_MAX bytes.
 *
 * Failure policy: nothing here aborts; every problem is a return code or a
 * reported row. The importer keeps all its additions in one store
 * transaction and rolls it back on any error, or when a row was rejected
 * and opts->partial is not set.
 */
#include "directory/dir_import.h"

#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "directory/dir_addr.h"

#define DIR_CSV_NCOLNAMES 5

enum dir_csv_col {
    DIR_COL_NONE = 0,
    DIR_COL_SMTP,
    DIR_COL_TYPE,
    DIR_COL_ALT,
    DIR_COL_BM,
    DIR_COL_DMAIL
};

static const struct {
    const char *name;
    enum dir_csv_col col;
} dir_csv_colnames[DIR_CSV_NCOLNAMES] = {
    {"smtp_address", DIR_COL_SMTP},       {"type", DIR_COL_TYPE},
    {"alternative_address", DIR_COL_ALT}, {"bitmessage_address", DIR_COL_BM},
    {"dmail_address", DIR_COL_DMAIL},
};

enum dir_csv_state {
    DIR_CSV_FIELD_START = 0, /* at the start of a field */
    DIR_CSV_UNQUOTED,        /* inside an unquoted field */
    DIR_CSV_QUOTED,          /* inside a quoted field */
    DIR_CSV_QUOTE_SEEN,      /* a '"' inside a quoted field: "" or the closing quote */
    DIR_CSV_AFTER_QUOTE,     /* after the closing quote, before ',' or the record's end */
};

struct dir_csv_field {
    size_t len;
    bool quoted;
    char data[DIR_IMPORT_FIELD_MAX + 1];
};

enum dir_xml_field { DIR_XF_NONE = 0, DIR_XF_SMTP, DIR_XF_BM, DIR_XF_DMAIL };

struct dir_import_parser {
    enum dir_import_format fmt;
    dir_import_row_cb row_cb;
    dir_import_bad_cb bad_cb;
    void *arg;
    int failed;        /* sticky: file-level error or callback stop */
    const char *error; /* static text of the file-level error */
    unsigned long error_line;
    unsigned bom; /* BOM bytes matched at the start (CSV) */
    bool started; /* a byte other than the BOM was seen (CSV) */

    /* CSV */
    enum dir_csv_state state;
    unsigned long line;     /* current physical line */
    unsigned long rec_line; /* line where the current record started */
    bool pending_cr;        /* last byte was a CR ending a record or inside quotes */
    size_t nfields;
    const char *rec_bad; /* why the current record is refused, or NULL */
    bool layout_known;
    size_t ncols;
    enum dir_csv_col cols[DIR_IMPORT_COLUMNS_MAX];
    struct dir_csv_field *fields; /* DIR_IMPORT_COLUMNS_MAX */

    /* XML */
    XML_Parser xp;
    unsigned depth;
    unsigned long xrec_line;
    const char *xrec_bad;
    enum dir_xml_field xfield;
    bool xfield_long;
    size_t xlen;
    char xtext[DIR_IMPORT_FIELD_MAX + 1];
    bool has_smtp;
    char xsmtp[DIR_IMPORT_FIELD_MAX + 1];
    size_t xsmtp_len;
    size_t nalts;
    enum dir_xml_field alt_kind[DIR_IMPORT_XML_ALTS_MAX];
    char *alts; /* DIR_IMPORT_XML_ALTS_MAX * (DIR_IMPORT_FIELD_MAX + 1) */
    size_t alt_len[DIR_IMPORT_XML_ALTS_MAX];
};

static const unsigned char dir_bom[3] = {0xEF, 0xBB, 0xBF};

/* ---- shared ---- */

static int dir_imp_fail(struct dir_import_parser *p, int rc, const char *why, unsigned long line)
{
    if (!p->failed) {
        p->failed = rc;
        p->error = why;
        p->error_line = line;
    }
    return rc;
}

static int dir_imp_bad(struct dir_import_parser *p, unsigned long line, const char *why)
{
    if (p->bad_cb == NULL)
        return 0;
    return p->bad_cb(line, why, p->arg);
}

/* dir_imp_trim - strip blanks and tabs around s[0..*len) in place (moves the text). */
static void dir_imp_trim(char *s, size_t *len)
{
    size_t a = 0, b = *len;
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    if (a > 0)
        memmove(s, s + a, b - a);
    *len = b - a;
    s[*len] = '\0';
}

/* ---- CSV ---- */

static enum dir_csv_col dir_csv_colname(const char *s)
{
    for (size_t i = 0; i < DIR_CSV_NCOLNAMES; i++)
        if (strcasecmp(s, dir_csv_colnames[i].name) == 0)
            return dir_csv_colnames[i].col;
    return DIR_COL_NONE;
}

/* dir_csv_header - is the record a header? 1 yes (layout set), 0 no, negative: bad header. */
static int dir_csv_header(struct dir_import_parser *p)
{
    size_t known = 0;
    for (size_t i = 0; i < p->nfields; i++)
        if (dir_csv_colname(p->fields[i].data) != DIR_COL_NONE)
            known++;
    if (known == 0)
        return 0;
    if (known != p->nfields)
        return dir_imp_fail(p, PST_EINVAL, "unknown column in the header row", p->rec_line);
    bool smtp = false, alt = false;
    for (size_t i = 0; i < p->nfields; i++) {
        enum dir_csv_col c = dir_csv_colname(p->fields[i].data);
        for (size_t j = 0; j < i; j++)
            if (p->cols[j] == c)
                return dir_imp_fail(p, PST_EINVAL, "column named twice in the header row",
                                    p->rec_line);
        p->cols[i] = c;
        smtp = smtp || c == DIR_COL_SMTP;
        alt = alt || c == DIR_COL_ALT || c == DIR_COL_BM || c == DIR_COL_DMAIL;
    }
    if (!smtp || !alt)
        return dir_imp_fail(p, PST_EINVAL, "header row lacks smtp_address or an address column",
                            p->rec_line);
    p->ncols = p->nfields;
    p->layout_known = true;
    return 1;
}

static int dir_csv_default_layout(struct dir_import_parser *p)
{
    if (p->nfields == 2) {
        p->cols[0] = DIR_COL_SMTP;
        p->cols[1] = DIR_COL_ALT;
    } else if (p->nfields == 3) {
        p->cols[0] = DIR_COL_SMTP;
        p->cols[1] = DIR_COL_TYPE;
        p->cols[2] = DIR_COL_ALT;
    } else {
        return dir_imp_fail(p, PST_EINVAL, "first row has neither a header nor 2 or 3 columns",
                            p->rec_line);
    }
    p->ncols = p->nfields;
    p->layout_known = true;
    return 0;
}

/* dir_csv_emit - hand over the rows of one complete, well-formed record. */
static int dir_csv_emit(struct dir_import_parser *p)
{
    if (p->nfields != p->ncols)
        return dir_imp_bad(p, p->rec_line, "wrong number of columns");
    struct dir_import_row row = {.line = p->rec_line};
    for (size_t i = 0; i < p->ncols; i++) {
        if (p->cols[i] == DIR_COL_SMTP) {
            row.smtp = p->fields[i].data;
            row.smtp_len = p->fields[i].len;
        } else if (p->cols[i] == DIR_COL_TYPE && p->fields[i].len > 0) {
            row.type = p->fields[i].data;
        }
    }
    size_t emitted = 0;
    for (size_t i = 0; i < p->ncols; i++) {
        enum dir_csv_col c = p->cols[i];
        if ((c != DIR_COL_ALT && c != DIR_COL_BM && c != DIR_COL_DMAIL) || p->fields[i].len == 0)
            continue;
        struct dir_import_row r = row;
        if (c == DIR_COL_BM)
            r.type = "bitmessage";
        else if (c == DIR_COL_DMAIL)
            r.type = "dmail";
        r.alt = p->fields[i].data;
        r.alt_len = p->fields[i].len;
        int rc = p->row_cb != NULL ? p->row_cb(&r, p->arg) : 0;
        if (rc < 0)
            return rc;
        emitted++;
    }
    return emitted > 0 ? 0 : dir_imp_bad(p, p->rec_line, "no alternative address in the row");
}

/* dir_csv_end_record - a record ended (its line terminator or the end of the file). */
static int dir_csv_end_record(struct dir_import_parser *p)
{
    int rc = 0;
    for (size_t i = 0; i < p->nfields && p->rec_bad == NULL; i++)
        dir_imp_trim(p->fields[i].data, &p->fields[i].len);
    bool blank =
        p->rec_bad == NULL &&
        (p->nfields == 0 || (p->nfields == 1 && p->fields[0].len == 0 && !p->fields[0].quoted));
    if (blank) {
        /* an empty line */
    } else if (p->rec_bad != NULL) {
        rc = dir_imp_bad(p, p->rec_line, p->rec_bad);
    } else if (!p->layout_known) {
        rc = dir_csv_header(p);
        if (rc == 0 && (rc = dir_csv_default_layout(p)) == 0)
            rc = dir_csv_emit(p);
        else if (rc == 1)
            rc = 0;
    } else {
        rc = dir_csv_emit(p);
    }
    p->nfields = 0;
    p->rec_bad = NULL;
    p->state = DIR_CSV_FIELD_START;
    if (rc < 0 && !p->failed)
        p->failed = rc;
    return rc < 0 ? rc : 0;
}

/* dir_csv_put - one data byte into the current field. */
static void dir_csv_put(struct dir_import_parser *p, char ch)
{
    if (p->rec_bad != NULL)
        return;
    if (p->nfields == 0) {
        p->nfields = 1;
        p->fields[0].len = 0;
        p->fields[0].quoted = false;
    }
    struct dir_csv_field *f = &p->fields[p->nfields - 1];
    if (ch == '\0') {
        p->rec_bad = "NUL byte in the row";
        return;
    }
    if (f->len >= DIR_IMPORT_FIELD_MAX) {
        p->rec_bad = "field too long";
        return;
    }
    f->data[f->len++] = ch;
    f->data[f->len] = '\0';
}

/* dir_csv_new_field - start a field (the first of a record or after a ','). */
static void dir_csv_new_field(struct dir_import_parser *p, bool after_comma)
{
    if (p->nfields == 0) {
        p->nfields = 1;
        p->fields[0].len = 0;
        p->fields[0].quoted = false;
        p->fields[0].data[0] = '\0';
    }
    if (!after_comma || p->rec_bad != NULL)
        return;
    if (p->nfields >= DIR_IMPORT_COLUMNS_MAX) {
        p->rec_bad = "too many columns";
        return;
    }
    struct dir_csv_field *f = &p->fields[p->nfields++];
    f->len = 0;
    f->quoted = false;
    f->data[0] = '\0';
}

static void dir_csv_bad(struct dir_import_parser *p, const char *why)
{
    if (p->rec_bad == NULL)
        p->rec_bad = why;
}

/* dir_csv_newline - CR or LF outside quotes: end of the record; count the line. */
static int dir_csv_newline(struct dir_import_parser *p, char ch)
{
    if (p->pending_cr && ch == '\n') { /* the LF of a CRLF: already ended */
        p->pending_cr = false;
        return 0;
    }
    p->pending_cr = ch == '\r';
    int rc = dir_csv_end_record(p);
    p->line++;
    p->rec_line = p->line;
    return rc;
}

static int dir_csv_byte(struct dir_import_parser *p, char ch)
{
    if (p->state != DIR_CSV_QUOTED && (ch == '\r' || ch == '\n')) {
        if (p->state == DIR_CSV_QUOTE_SEEN)
            p->state = DIR_CSV_AFTER_QUOTE;
        return dir_csv_newline(p, ch);
    }
    bool was_cr = p->pending_cr;
    p->pending_cr = false;
    switch (p->state) {
    case DIR_CSV_FIELD_START:
        dir_csv_new_field(p, false);
        if (ch == ',') {
            dir_csv_new_field(p, true);
        } else if (ch == '"') {
            p->fields[p->nfields - 1].quoted = true;
            p->state = DIR_CSV_QUOTED;
        } else {
            dir_csv_put(p, ch);
            p->state = DIR_CSV_UNQUOTED;
        }
        break;
    case DIR_CSV_UNQUOTED:
        if (ch == ',') {
            dir_csv_new_field(p, true);
            p->state = DIR_CSV_FIELD_START;
        } else if (ch == '"') {
            dir_csv_bad(p, "quote inside an unquoted field");
        } else {
            dir_csv_put(p, ch);
        }
        break;
    case DIR_CSV_QUOTED:
        if (ch == '"') {
            p->state = DIR_CSV_QUOTE_SEEN;
        } else {
            if (ch == '\n' && !was_cr)
                p->line++;
            else if (ch == '\r')
                p->line++, p->pending_cr = true;
            dir_csv_put(p, ch);
        }
        break;
    case DIR_CSV_QUOTE_SEEN:
        if (ch == '"') {
            dir_csv_put(p, '"');
            p->state = DIR_CSV_QUOTED;
            break;
        }
        p->state = DIR_CSV_AFTER_QUOTE;
        __attribute__((fallthrough));
    case DIR_CSV_AFTER_QUOTE:
        if (ch == ',') {
            dir_csv_new_field(p, true);
            p->state = DIR_CSV_FIELD_START;
        } else if (ch != ' ' && ch != '\t') {
            dir_csv_bad(p, "text after a closing quote");
        }
        break;
    }
    return 0;
}

static int dir_csv_feed(struct dir_import_parser *p, const unsigned char *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int rc = dir_csv_byte(p, (char)d[i]);
        if (rc < 0)
            return rc;
        if (p->failed)
            return p->failed;
    }
    return 0;
}

static int dir_csv_finish(struct dir_import_parser *p)
{
    if (p->state == DIR_CSV_QUOTED) {
        dir_csv_bad(p, "quoted field not closed at the end of the file");
        p->state = DIR_CSV_FIELD_START;
    }
    if (p->nfields > 0 || p->rec_bad != NULL)
        return dir_csv_end_record(p);
    return 0;
}

/* ---- XML ---- */

static enum dir_xml_field dir_xml_fieldname(const XML_Char *name)
{
    if (strcmp(name, "smtp_address") == 0)
        return DIR_XF_SMTP;
    if (strcmp(name, "bitmessage_address") == 0)
        return DIR_XF_BM;
    if (strcmp(name, "dmail_address") == 0)
        return DIR_XF_DMAIL;
    return DIR_XF_NONE;
}

static unsigned long dir_xml_line(struct dir_import_parser *p)
{
    return (unsigned long)XML_GetCurrentLineNumber(p->xp);
}

static void dir_xml_stop(struct dir_import_parser *p, int rc, const char *why)
{
    (void)dir_imp_fail(p, rc, why, dir_xml_line(p));
    XML_StopParser(p->xp, XML_FALSE);
}

static void dir_xml_rec_bad(struct dir_import_parser *p, const char *why)
{
    if (p->xrec_bad == NULL)
        p->xrec_bad = why;
}

static void XMLCALL dir_xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct dir_import_parser *p = ud;
    (void)attrs;
    if (p->failed)
        return;
    p->depth++;
    if (p->depth > DIR_IMPORT_XML_DEPTH_MAX) {
        dir_xml_stop(p, PST_ELIMIT, "XML elements nested too deep");
        return;
    }
    if (p->depth == 1) {
        if (strcmp(name, "xml") != 0)
            dir_xml_stop(p, PST_EINVAL, "the root element is not <xml>");
        return;
    }
    if (p->depth == 2) {
        p->xrec_line = dir_xml_line(p);
        p->xrec_bad = strcmp(name, "record") == 0 ? NULL : "unknown element (expected <record>)";
        p->has_smtp = false;
        p->nalts = 0;
        return;
    }
    if (p->depth == 3) {
        p->xfield = dir_xml_fieldname(name);
        p->xlen = 0;
        p->xfield_long = false;
        if (p->xfield == DIR_XF_NONE)
            dir_xml_rec_bad(p, "unknown element in <record>");
        return;
    }
    dir_xml_rec_bad(p, "element nested inside an address");
}

static void XMLCALL dir_xml_text(void *ud, const XML_Char *s, int len)
{
    struct dir_import_parser *p = ud;
    if (p->failed || p->depth != 3 || p->xfield == DIR_XF_NONE || len <= 0)
        return;
    if (p->xfield_long || (size_t)len > DIR_IMPORT_FIELD_MAX - p->xlen) {
        p->xfield_long = true;
        return;
    }
    memcpy(p->xtext + p->xlen, s, (size_t)len);
    p->xlen += (size_t)len;
    p->xtext[p->xlen] = '\0';
}

/* dir_xml_end_field - a field element of a record closed. */
static void dir_xml_end_field(struct dir_import_parser *p)
{
    if (p->xfield == DIR_XF_NONE)
        return;
    if (p->xfield_long) {
        dir_xml_rec_bad(p, "field too long");
        return;
    }
    if (memchr(p->xtext, '\0', p->xlen) != NULL) {
        dir_xml_rec_bad(p, "NUL byte in the row");
        return;
    }
    p->xtext[p->xlen] = '\0';
    dir_imp_trim(p->xtext, &p->xlen);
    if (p->xfield == DIR_XF_SMTP) {
        if (p->has_smtp) {
            dir_xml_rec_bad(p, "two <smtp_address> in one record");
            return;
        }
        memcpy(p->xsmtp, p->xtext, p->xlen + 1);
        p->xsmtp_len = p->xlen;
        p->has_smtp = true;
        return;
    }
    if (p->nalts >= DIR_IMPORT_XML_ALTS_MAX) {
        dir_xml_rec_bad(p, "too many addresses in one record");
        return;
    }
    char *slot = p->alts + p->nalts * (DIR_IMPORT_FIELD_MAX + 1);
    memcpy(slot, p->xtext, p->xlen + 1);
    p->alt_len[p->nalts] = p->xlen;
    p->alt_kind[p->nalts] = p->xfield;
    p->nalts++;
}

static int dir_xml_end_record(struct dir_import_parser *p)
{
    if (p->xrec_bad != NULL)
        return dir_imp_bad(p, p->xrec_line, p->xrec_bad);
    if (!p->has_smtp)
        return dir_imp_bad(p, p->xrec_line, "record without <smtp_address>");
    if (p->nalts == 0)
        return dir_imp_bad(p, p->xrec_line, "record without an alternative address");
    for (size_t i = 0; i < p->nalts; i++) {
        struct dir_import_row r = {
            .line = p->xrec_line,
            .smtp = p->xsmtp,
            .smtp_len = p->xsmtp_len,
            .type = p->alt_kind[i] == DIR_XF_BM ? "bitmessage" : "dmail",
            .alt = p->alts + i * (DIR_IMPORT_FIELD_MAX + 1),
            .alt_len = p->alt_len[i],
        };
        int rc = p->row_cb != NULL ? p->row_cb(&r, p->arg) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void XMLCALL dir_xml_end(void *ud, const XML_Char *name)
{
    struct dir_import_parser *p = ud;
    (void)name;
    if (p->failed)
        return;
    if (p->depth == 3)
        dir_xml_end_field(p);
    if (p->depth == 3)
        p->xfield = DIR_XF_NONE;
    int rc = p->depth == 2 ? dir_xml_end_record(p) : 0;
    if (p->depth > 0)
        p->depth--;
    if (rc < 0) {
        p->failed = rc;
        XML_StopParser(p->xp, XML_FALSE);
    }
}

static void XMLCALL dir_xml_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                    const XML_Char *pubid, int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    dir_xml_stop(ud, PST_EINVAL, "DOCTYPE not allowed");
}

static void XMLCALL dir_xml_entity(void *ud, const XML_Char *name, int pe, const XML_Char *value,
                                   int vlen, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
    (void)name, (void)pe, (void)value, (void)vlen, (void)base, (void)sysid, (void)pubid;
    (void)notation;
    dir_xml_stop(ud, PST_EINVAL, "entity declarations not allowed");
}

static int dir_xml_setup(struct dir_import_parser *p)
{
    p->xp = XML_ParserCreate(NULL);
    p->alts = malloc((size_t)DIR_IMPORT_XML_ALTS_MAX * (DIR_IMPORT_FIELD_MAX + 1));
    if (p->xp == NULL || p->alts == NULL)
        return PST_ENOMEM;
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, dir_xml_start, dir_xml_end);
    XML_SetCharacterDataHandler(p->xp, dir_xml_text);
    XML_SetStartDoctypeDeclHandler(p->xp, dir_xml_doctype);
    XML_SetEntityDeclHandler(p->xp, dir_xml_entity);
    if (!XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER))
        return PST_EINVAL;
    return 0;
}

static int dir_xml_parse(struct dir_import_parser *p, const char *d, size_t len, bool final)
{
    while (len > 0 || final) {
        int n = len > (size_t)DIR_IMPORT_CHUNK ? (int)DIR_IMPORT_CHUNK : (int)len;
        bool last = final && (size_t)n == len;
        enum XML_Status st = XML_Parse(p->xp, d, n, last);
        if (st != XML_STATUS_OK) {
            if (p->failed)
                return p->failed;
            return dir_imp_fail(p, PST_EINVAL, XML_ErrorString(XML_GetErrorCode(p->xp)),
                                dir_xml_line(p));
        }
        if (p->failed)
            return p->failed;
        d += n;
        len -= (size_t)n;
        if (last)
            break;
    }
    return 0;
}

/* ---- public ---- */

struct dir_import_parser *dir_import_parser_new(enum dir_import_format fmt, dir_import_row_cb row,
                                                dir_import_bad_cb bad, void *arg)
{
    struct dir_import_parser *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->fmt = fmt;
    p->row_cb = row;
    p->bad_cb = bad;
    p->arg = arg;
    p->line = p->rec_line = 1;
    p->error = "";
    int rc = 0;
    if (fmt == DIR_IMPORT_XML) {
        rc = dir_xml_setup(p);
    } else {
        p->fields = calloc(DIR_IMPORT_COLUMNS_MAX, sizeof(*p->fields));
        rc = p->fields == NULL ? PST_ENOMEM : 0;
    }
    if (rc != 0)
        dir_import_parser_free(&p);
    return p;
}

void dir_import_parser_free(struct dir_import_parser **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    struct dir_import_parser *p = *pp;
    if (p->xp != NULL)
        XML_ParserFree(p->xp);
    free(p->alts);
    free(p->fields);
    free(p);
    *pp = NULL;
}

int dir_import_parser_feed(struct dir_import_parser *p, const void *data, size_t len)
{
    if (p->failed)
        return p->failed;
    if (p->fmt == DIR_IMPORT_XML)
        return dir_xml_parse(p, data, len, false);
    const unsigned char *d = data;
    while (!p->started && len > 0) { /* a UTF-8 BOM, possibly split across calls */
        if (d[0] == dir_bom[p->bom]) {
            d++, len--;
            if (++p->bom == sizeof(dir_bom))
                p->started = true;
            continue;
        }
        p->started = true;
        int rc = dir_csv_feed(p, dir_bom, p->bom); /* a false start: those bytes are data */
        if (rc < 0)
            return rc;
    }
    return dir_csv_feed(p, d, len);
}

int dir_import_parser_finish(struct dir_import_parser *p)
{
    if (p->failed)
        return p->failed;
    if (p->fmt == DIR_IMPORT_XML)
        return dir_xml_parse(p, "", 0, true);
    if (!p->started && p->bom > 0) {
        p->started = true;
        int rc = dir_csv_feed(p, dir_bom, p->bom);
        if (rc < 0)
            return rc;
    }
    return dir_csv_finish(p);
}

const char *dir_import_parser_error(const struct dir_import_parser *p, unsigned long *line)
{
    if (line != NULL)
        *line = p->error_line;
    return p->error != NULL ? p->error : "";
}

enum dir_import_format dir_import_format_guess(const char *path, const void *head, size_t len)
{
    size_t n = path != NULL ? strlen(path) : 0;
    if (n >= 4 && strcasecmp(path + n - 4, ".xml") == 0)
        return DIR_IMPORT_XML;
    if (n >= 4 && strcasecmp(path + n - 4, ".csv") == 0)
        return DIR_IMPORT_CSV;
    const unsigned char *d = head;
    size_t i = 0;
    if (len >= 3 && memcmp(d, dir_bom, 3) == 0)
        i = 3;
    while (i < len && isspace(d[i]))
        i++;
    return i < len && d[i] == '<' ? DIR_IMPORT_XML : DIR_IMPORT_CSV;
}

/* ---- importer ---- */

struct dir_imp_ctx {
    struct dir_store *st;
    const struct dir_import_opts *opts;
    struct dir_import_report *rep;
};

static void dir_imp_tally(struct dir_imp_ctx *c, unsigned long line, const char *why,
                          const char *smtp)
{
    struct dir_import_report *rep = c->rep;
    rep->rejected++;
    size_t i = 0;
    while (i < rep->nreasons && strcmp(rep->reasons[i].why, why) != 0)
        i++;
    if (i == rep->nreasons) {
        if (rep->nreasons == DIR_IMPORT_REASONS_MAX) {
            i = DIR_IMPORT_REASONS_MAX - 1; /* the last slot collects the rest */
            rep->reasons[i].why = "other reasons";
        } else {
            rep->nreasons++;
            rep->reasons[i].why = why;
            rep->reasons[i].count = 0;
            rep->reasons[i].first_line = line;
        }
    }
    rep->reasons[i].count++;
    if (c->opts->on_reject != NULL)
        c->opts->on_reject(line, why, smtp != NULL ? smtp : "", c->opts->arg);
}

static int dir_imp_bad_row(unsigned long line, const char *why, void *arg)
{
    struct dir_imp_ctx *c = arg;
    c->rep->rows++;
    dir_imp_tally(c, line, why, "");
    return 0;
}

/* dir_imp_type - the row's type, lower-cased into out, or guessed from the alternative. */
static const char *dir_imp_type(const struct dir_import_row *row, char *out, size_t outsz)
{
    if (row->type == NULL)
        return dir_addr_guess_type(row->alt, row->alt_len);
    size_t n = strlen(row->type);
    if (n >= outsz)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)row->type[i]);
    return dir_addr_type_valid(out) ? out : NULL;
}

static int dir_imp_row(const struct dir_import_row *row, void *arg)
{
    struct dir_imp_ctx *c = arg;
    c->rep->rows++;
    struct dir_record rec;
    memset(&rec, 0, sizeof(rec));
    const char *why = NULL;
    if (dir_addr_smtp_normalize(row->smtp, row->smtp_len, c->opts->case_sensitive, rec.smtp,
                                sizeof(rec.smtp), &why) != 0) {
        dir_imp_tally(c, row->line, why != NULL ? why : "bad SMTP address", row->smtp);
        return 0;
    }
    char tbuf[DIR_TYPE_MAX + 1];
    const char *type = dir_imp_type(row, tbuf, sizeof(tbuf));
    if (type == NULL) {
        dir_imp_tally(c, row->line,
                      row->type != NULL ? "unknown address type"
                                        : "cannot tell the alternative address's type",
                      rec.smtp);
        return 0;
    }
    memcpy(rec.type, type, strlen(type) + 1);
    if (dir_addr_alt_normalize(rec.type, row->alt, row->alt_len, rec.alt, sizeof(rec.alt), &why) !=
        0) {
        dir_imp_tally(c, row->line, why != NULL ? why : "bad alternative address", rec.smtp);
        return 0;
    }
    memcpy(rec.source, "import", sizeof("import"));
    rec.created = c->opts->now;
    int64_t id = 0;
    int rc = dir_store_add(c->st, &rec, DIR_LIVE, c->opts->now, &id);
    if (rc == PST_EEXIST) {
        dir_imp_tally(c, row->line, "duplicate (already listed, or earlier in the file)", rec.smtp);
        return 0;
    }
    if (rc != 0)
        return rc;
    c->rep->accepted++;
    return 0;
}

static int dir_imp_read(int fd, struct dir_import_parser *p, struct dir_imp_ctx *c, char *chunk,
                        size_t n0, uint64_t total)
{
    uint64_t done = 0;
    size_t n = n0;
    for (;;) {
        if (n > 0) {
            int rc = dir_import_parser_feed(p, chunk, n);
            if (rc < 0)
                return rc;
            done += n;
            if (c->opts->on_progress != NULL)
                c->opts->on_progress(done, total, c->rep->rows, c->opts->arg);
        }
        ssize_t r = read(fd, chunk, DIR_IMPORT_CHUNK);
        if (r < 0 && errno == EINTR) {
            n = 0;
            continue;
        }
        if (r < 0)
            return PST_EIO;
        if (r == 0)
            break;
        n = (size_t)r;
    }
    return dir_import_parser_finish(p);
}

/* dir_imp_run - parse from fd (the first n0 bytes already in chunk) inside one transaction. */
static int dir_imp_run(struct dir_store *st, int fd, enum dir_import_format fmt, char *chunk,
                       size_t n0, const struct dir_import_opts *opts, struct dir_import_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct dir_imp_ctx c = {.st = st, .opts = opts, .rep = rep};
    struct stat sb;
    uint64_t total = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
    struct dir_import_parser *p = dir_import_parser_new(fmt, dir_imp_row, dir_imp_bad_row, &c);
    if (p == NULL)
        return PST_ENOMEM;
    int rc = dir_store_begin(st);
    if (rc != 0) {
        dir_import_parser_free(&p);
        return rc;
    }
    rc = dir_imp_read(fd, p, &c, chunk, n0, total);
    if (rc == PST_EINVAL || rc == PST_ELIMIT) {
        unsigned long line = 0;
        const char *why = dir_import_parser_error(p, &line);
        int n = snprintf(rep->error, sizeof(rep->error), "%s", why[0] ? why : err_str(rc));
        if (n < 0 || (size_t)n >= sizeof(rep->error))
            rep->error[sizeof(rep->error) - 1] = '\0';
        rep->error_line = line;
    }
    dir_import_parser_free(&p);
    if (rc == 0 && (rep->rejected == 0 || opts->partial)) {
        rc = dir_store_commit(st);
        rep->committed = rc == 0;
        if (rc != 0)
            dir_store_rollback(st);
        return rc;
    }
    dir_store_rollback(st);
    return rc;
}

int dir_import_fd(struct dir_store *st, int fd, enum dir_import_format fmt,
                  const struct dir_import_opts *opts, struct dir_import_report *report)
{
    char *chunk = malloc(DIR_IMPORT_CHUNK);
    if (chunk == NULL)
        return PST_ENOMEM;
    int rc = dir_imp_run(st, fd, fmt, chunk, 0, opts, report);
    free(chunk);
    return rc;
}

int dir_import_file(struct dir_store *st, const char *path, const struct dir_import_opts *opts,
                    struct dir_import_report *report)
{
    memset(report, 0, sizeof(*report));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PST_ENOENT : PST_EIO;
    char *chunk = malloc(DIR_IMPORT_CHUNK);
    if (chunk == NULL) {
        close(fd);
        return PST_ENOMEM;
    }
    ssize_t n;
    do
        n = read(fd, chunk, DIR_IMPORT_CHUNK);
    while (n < 0 && errno == EINTR);
    int rc = PST_EIO;
    if (n >= 0) {
        enum dir_import_format fmt = dir_import_format_guess(path, chunk, (size_t)n);
        rc = dir_imp_run(st, fd, fmt, chunk, (size_t)n, opts, report);
    }
    free(chunk);
    close(fd);
    return rc;
}
