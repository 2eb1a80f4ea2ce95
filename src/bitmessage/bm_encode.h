/*
 * bm_encode.h - Bitmessage wire primitives: var_int, var_str, var_int_list
 * and big-endian integers, read through a bounded reader and written to a
 * buf_t.
 *
 * Wire formats (Bitmessage protocol v3, wiki "Protocol specification"):
 *   var_int       value < 0xfd            1 byte:  value
 *                 value <= 0xffff         3 bytes: 0xfd, u16 big-endian
 *                 value <= 0xffffffff     5 bytes: 0xfe, u32 big-endian
 *                 otherwise               9 bytes: 0xff, u64 big-endian
 *                 A value must use the shortest form; a longer form is
 *                 malformed (PyBitmessage decodeVarint raises on it).
 *   var_str       var_int length, then that many bytes
 *   var_int_list  var_int count, then that many var_ints
 *   uN            unsigned big-endian ("network byte order")
 *
 * Reader contract: a getter either succeeds and advances pos, or fails and
 * leaves pos unchanged. It never reads at or past ptr + len. Truncated or
 * malformed input gives PST_EINVAL; a well-formed length or count above the
 * caller's maximum gives PST_ELIMIT. Pointers handed out by the reader are
 * borrowed views into the reader's data.
 *
 * Writers append to a buf_t and fail with the buf_append() error (PST_ELIMIT
 * past the buffer's maximum, PST_ENOMEM). A writer that appends in several
 * steps (var_str, var_int_list) may leave a partial prefix on failure: the
 * caller discards a message under construction when any writer fails.
 */
#ifndef POSTERN_BM_ENCODE_H
#define POSTERN_BM_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Longest var_int encoding (0xff + u64). */
#define BM_VARINT_MAX_LEN 9

typedef struct bm_reader {
    const uint8_t *ptr; /* borrowed; never read at or past ptr + len */
    size_t len;
    size_t pos; /* bytes consumed; pos <= len always */
} bm_reader_t;

/* bm_reader_init - read len bytes at data (borrowed; must outlive the reader). */
void bm_reader_init(bm_reader_t *r, const void *data, size_t len);

/* bm_reader_remaining - bytes not yet consumed. */
size_t bm_reader_remaining(const bm_reader_t *r);

/* Fixed-size getters: PST_EINVAL if fewer bytes remain. */
PST_MUST_CHECK int bm_get_u8(bm_reader_t *r, uint8_t *out);
PST_MUST_CHECK int bm_get_u16(bm_reader_t *r, uint16_t *out);
PST_MUST_CHECK int bm_get_u32(bm_reader_t *r, uint32_t *out);
PST_MUST_CHECK int bm_get_u64(bm_reader_t *r, uint64_t *out);
/* bm_get_i64 - signed big-endian 64-bit (the version message's timestamp). */
PST_MUST_CHECK int bm_get_i64(bm_reader_t *r, int64_t *out);

/* bm_get_bytes - copy n bytes to out (caller's storage of at least n bytes). */
PST_MUST_CHECK int bm_get_bytes(bm_reader_t *r, void *out, size_t n);

/* bm_get_view - point *out at the next n bytes (borrowed) and consume them. */
PST_MUST_CHECK int bm_get_view(bm_reader_t *r, size_t n, const uint8_t **out);

/* bm_skip - consume n bytes. */
PST_MUST_CHECK int bm_skip(bm_reader_t *r, size_t n);

/* bm_get_rest - point *out at all remaining bytes (borrowed), *outlen = count; consumes them. */
void bm_get_rest(bm_reader_t *r, const uint8_t **out, size_t *outlen);

/* bm_get_varint - PST_EINVAL if truncated or not minimally encoded. */
PST_MUST_CHECK int bm_get_varint(bm_reader_t *r, uint64_t *out);

/*
 * bm_get_varstr - a var_str: *out points at its bytes (borrowed, not
 * NUL-terminated, may contain NUL), *outlen = its length.
 * PST_ELIMIT if the length exceeds max; PST_EINVAL if malformed or the
 * length exceeds the remaining bytes.
 */
PST_MUST_CHECK int bm_get_varstr(bm_reader_t *r, size_t max, const uint8_t **out, size_t *outlen);

/*
 * bm_get_varint_list - a var_int_list into out[0..max_count), *count = number
 * read. PST_ELIMIT if the count exceeds max_count; PST_EINVAL if malformed,
 * truncated, or the count exceeds the remaining bytes. out may be NULL only
 * when max_count is 0.
 */
PST_MUST_CHECK int bm_get_varint_list(bm_reader_t *r, uint64_t *out, size_t max_count,
                                      size_t *count);

/*
 * bm_varint_decode - decode one var_int from the start of data[0..len).
 * *used = bytes taken. Same errors as bm_get_varint.
 */
PST_MUST_CHECK int bm_varint_decode(const void *data, size_t len, uint64_t *out, size_t *used);

/* bm_varint_size - length in bytes (1, 3, 5 or 9) of the encoding of v. */
size_t bm_varint_size(uint64_t v);

/* bm_varint_encode - write the minimal encoding of v to out; returns its length. */
size_t bm_varint_encode(uint64_t v, uint8_t out[BM_VARINT_MAX_LEN]);

/* Writers: append to b (borrowed). Errors as buf_append(). */
PST_MUST_CHECK int bm_put_u8(buf_t *b, uint8_t v);
PST_MUST_CHECK int bm_put_u16(buf_t *b, uint16_t v);
PST_MUST_CHECK int bm_put_u32(buf_t *b, uint32_t v);
PST_MUST_CHECK int bm_put_u64(buf_t *b, uint64_t v);
PST_MUST_CHECK int bm_put_i64(buf_t *b, int64_t v);
PST_MUST_CHECK int bm_put_bytes(buf_t *b, const void *data, size_t len);
PST_MUST_CHECK int bm_put_varint(buf_t *b, uint64_t v);
/* bm_put_varstr - var_int(len) then the len bytes at data (may be NULL if len is 0). */
PST_MUST_CHECK int bm_put_varstr(buf_t *b, const void *data, size_t len);
/* bm_put_varint_list - var_int(n) then each of v[0..n). */
PST_MUST_CHECK int bm_put_varint_list(buf_t *b, const uint64_t *v, size_t n);

/* Big-endian helpers on raw memory (p has at least 2/4/8 bytes). */
uint16_t bm_be16_load(const uint8_t *p);
uint32_t bm_be32_load(const uint8_t *p);
uint64_t bm_be64_load(const uint8_t *p);
void bm_be16_store(uint8_t *p, uint16_t v);
void bm_be32_store(uint8_t *p, uint32_t v);
void bm_be64_store(uint8_t *p, uint64_t v);

#endif
