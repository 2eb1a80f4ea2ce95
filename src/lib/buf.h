/*
 * buf.h - bounded, binary-safe byte buffers.
 *
 * A buf_t carries its length and a hard maximum fixed at creation. An append
 * that would pass the maximum fails with PST_ELIMIT and leaves the buffer
 * unchanged: network data can never make a buffer grow without bound.
 * The data is always followed by a NUL byte (not counted in len) so it can be
 * handed to C string APIs when it is known to contain no NUL.
 *
 * Appends may move the data (realloc): pointers into buf->data are invalid
 * after any call that can grow the buffer.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

typedef struct buf {
    char *data;    /* read-only for users; NUL-terminated */
    size_t len;    /* read-only for users */
    size_t cap;    /* private */
    size_t max;    /* private: hard limit on len */
} buf_t;

/* buf_new - allocate an empty buffer that may hold up to max bytes. Caller frees with buf_free(). */
buf_t *buf_new(size_t max);

/* buf_free - free *b and set *b to NULL. Accepts NULL or *b == NULL. */
void buf_free(buf_t **b);

/* buf_init / buf_release - for a buf_t embedded in another struct. */
void buf_init(buf_t *b, size_t max);
void buf_release(buf_t *b);

PST_MUST_CHECK int buf_append(buf_t *b, const void *data, size_t len);
PST_MUST_CHECK int buf_append_str(buf_t *b, const char *s);
PST_MUST_CHECK int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
PST_MUST_CHECK int buf_vprintf(buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* buf_reset - set len to 0; keeps the allocation. */
void buf_reset(buf_t *b);

/* buf_consume - drop the first n bytes (n <= len); moves the rest to the front. */
void buf_consume(buf_t *b, size_t n);

#endif
