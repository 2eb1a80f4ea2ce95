/*
 * fuzz_dir_xml.c - the directory's XML importer parser (dir_import.h), parse
 * only: rows and refusals go to callbacks that check and discard them. The
 * input is fed in two pieces split at a point taken from its first byte, so
 * chunk boundaries are exercised too.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "directory/dir_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_dir_row(const struct dir_import_row *r, void *arg)
{
    (void)arg;
    /* the fields must be NUL-terminated where the lengths say, and bounded */
    if (strlen(r->smtp) != r->smtp_len || strlen(r->alt) != r->alt_len ||
        r->smtp_len > DIR_IMPORT_FIELD_MAX || r->alt_len > DIR_IMPORT_FIELD_MAX || r->line == 0)
        __builtin_trap();
    return 0;
}

static int fuzz_dir_bad(unsigned long line, const char *why, void *arg)
{
    (void)arg;
    if (why == NULL || line == 0)
        __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dir_import_parser *p =
        dir_import_parser_new(DIR_IMPORT_XML, fuzz_dir_row, fuzz_dir_bad, NULL);
    if (p == NULL)
        return 0;
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    if (dir_import_parser_feed(p, data, cut) == 0 &&
        dir_import_parser_feed(p, data + cut, size - cut) == 0)
        (void)dir_import_parser_finish(p);
    unsigned long line = 0;
    (void)dir_import_parser_error(p, &line);
    dir_import_parser_free(&p);
    return 0;
}
