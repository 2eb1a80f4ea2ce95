/*
 * dir_import.h - bulk loading of directory listings from CSV or XML files
 * (`postern directory import`).
 *
 * Two layers:
 *   1. Streaming parsers (dir_import_parser_*): bytes in, rows out through a
 *      callback, with every input bounded (field length, columns, XML
 *      element depth). They know nothing of addresses or the store; the
 *      fuzz targets drive them alone.
 *   2. The importer (dir_import_fd / dir_import_file): validates each row
 *      with dir_addr.h, adds it as a live record (source "import") through
 *      dir_store.h inside ONE transaction, and reports accepted and
 *      rejected rows with their line numbers and reasons. All-or-nothing:
 *      one rejected row and nothing is stored, unless opts->partial.
 *
 * Formats (full description at the top of dir_import.c):
 *   CSV  RFC 4180 (quoted fields, "" inside quotes, CRLF or LF, optional
 *        UTF-8 BOM). Optional header row naming the columns:
 *          smtp_address,type,alternative_address
 *          smtp_address,bitmessage_address        (the seed's export)
 *          smtp_address,dmail_address
 *        Without a header: 2 columns = smtp,alternative (type guessed from
 *        the alternative's prefix), 3 columns = smtp,type,alternative.
 *   XML  the seed's format:
 *          <xml><record><smtp_address>a@b</smtp_address>
 *                       <bitmessage_address>BM-..</bitmessage_address>
 *               </record>...</xml>
 *        with <dmail_address> for dmail; a record may carry several
 *        alternatives. Parsed with expat; a DOCTYPE (and so any entity
 *        declaration) is refused, parameter entities are never parsed.
 *
 * Errors: a malformed file as a whole (bad XML, DOCTYPE, nesting past the
 * limit, unknown CSV header column) stops the import with PST_EINVAL and
 * stores nothing, even with partial; a problem confined to a row rejects
 * that row. PST_EDB / PST_EIO abort the import (rolled back).
 */
#ifndef POSTERN_DIR_IMPORT_H
#define POSTERN_DIR_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/dir_store.h"
#include "lib/err.h"

#define DIR_IMPORT_FIELD_MAX 1024     /* bytes in one CSV field or XML text field */
#define DIR_IMPORT_COLUMNS_MAX 8      /* CSV fields in one record */
#define DIR_IMPORT_XML_DEPTH_MAX 16   /* nesting past this aborts the file */
#define DIR_IMPORT_XML_ALTS_MAX 64    /* alternatives in one XML record */
#define DIR_IMPORT_REASONS_MAX 32     /* distinct rejection reasons tallied */
#define DIR_IMPORT_CHUNK (64u * 1024) /* bytes read per read(2) */

enum dir_import_format { DIR_IMPORT_CSV = 0, DIR_IMPORT_XML };

/* One row as the parser found it: fields borrowed for the callback's duration, NUL-terminated,
 * NOT validated. type is NULL when the file does not say it (guess from alt). */
struct dir_import_row {
    unsigned long line; /* 1-based line where the row (CSV record / XML record) starts */
    const char *smtp;
    size_t smtp_len;
    const char *type;
    const char *alt;
    size_t alt_len;
};

/* A row is handed over: return 0 to go on, a negative PST_E* to stop the parse with it. */
typedef int (*dir_import_row_cb)(const struct dir_import_row *row, void *arg);
/* A row the parser itself refuses (why: static text). Return 0 to go on, negative to stop. */
typedef int (*dir_import_bad_cb)(unsigned long line, const char *why, void *arg);

struct dir_import_parser;

/* dir_import_parser_new - a parser for fmt; callbacks and arg borrowed. NULL on ENOMEM.
 * Caller frees with dir_import_parser_free(). */
struct dir_import_parser *dir_import_parser_new(enum dir_import_format fmt, dir_import_row_cb row,
                                                dir_import_bad_cb bad, void *arg);

/*
 * dir_import_parser_feed - the next len bytes of the file (any split).
 * Returns 0, a callback's negative code, or PST_EINVAL / PST_ELIMIT for a
 * file-level error (text in dir_import_parser_error()). After an error the
 * parser refuses more input.
 */
PST_MUST_CHECK int dir_import_parser_feed(struct dir_import_parser *p, const void *data,
                                          size_t len);

/* dir_import_parser_finish - end of input: the last CSV record, or the XML document's end. */
PST_MUST_CHECK int dir_import_parser_finish(struct dir_import_parser *p);

/* dir_import_parser_error - static text and line of the file-level error ("" / 0 if none). */
const char *dir_import_parser_error(const struct dir_import_parser *p, unsigned long *line);

void dir_import_parser_free(struct dir_import_parser **p);

/* dir_import_format_guess - from the file name (".csv", ".xml", any case), else from the first
 * non-blank byte of head ('<' = XML). */
enum dir_import_format dir_import_format_guess(const char *path, const void *head, size_t len);

/* ---- importer ---- */

struct dir_import_opts {
    bool partial;        /* store the good rows even if some are rejected */
    bool case_sensitive; /* cfg->dir_case_sensitive */
    int64_t now;         /* live_since of the new records */
    /* each rejected row (may be NULL): line, reason (static), the row's SMTP field or "" */
    void (*on_reject)(unsigned long line, const char *why, const char *smtp, void *arg);
    /* progress (may be NULL): bytes consumed of total (0 = unknown), rows seen so far */
    void (*on_progress)(uint64_t done, uint64_t total, uint64_t rows, void *arg);
    void *arg;
};

struct dir_import_reason {
    const char *why; /* static */
    uint64_t count;
    unsigned long first_line;
};

struct dir_import_report {
    uint64_t rows;     /* rows seen */
    uint64_t accepted; /* rows valid and added (stored only if committed) */
    uint64_t rejected;
    bool committed; /* the transaction was committed */
    size_t nreasons;
    struct dir_import_reason reasons[DIR_IMPORT_REASONS_MAX]; /* the rest counted as "other" */
    char error[160];                                          /* file-level error, or "" */
    unsigned long error_line;
};

/*
 * dir_import_fd - read fd to its end as fmt and import it into st (borrowed).
 * Returns 0 when the file was read through (check report->committed and
 * report->rejected), PST_EINVAL / PST_ELIMIT for a file-level error
 * (report->error), PST_EDB / PST_EIO / PST_ENOMEM otherwise; nothing is
 * stored in any error case.
 */
PST_MUST_CHECK int dir_import_fd(struct dir_store *st, int fd, enum dir_import_format fmt,
                                 const struct dir_import_opts *opts,
                                 struct dir_import_report *report);

/* dir_import_file - the same for the file at path; the format is guessed (dir_import_format_guess).
 */
PST_MUST_CHECK int dir_import_file(struct dir_store *st, const char *path,
                                   const struct dir_import_opts *opts,
                                   struct dir_import_report *report);

#endif
