/*
 * buf.c - bounded, binary-safe byte buffers (see buf.h).
 *
 * Invariants (checked by PST_ASSERT where cheap):
 *   - data is never NULL and data[len] == '\0';
 *   - len <= max;
 *   - cap == 0 means data points at a shared, read-only empty string and
 *     nothing is owned; otherwise data is a heap block of cap bytes and
 *     len + 1 <= cap <= max + 1.
 *
 * Growth doubles the allocation, clamped to max + 1, so an append costs
 * amortised O(n) and never allocates more than the limit allows.
 *
 * Failure policy: an append that would pass max returns PST_ELIMIT, an
 * allocation failure returns PST_ENOMEM; in both cases the buffer is left
 * exactly as it was. Misuse (consuming more than len) is a bug and asserts.
 */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 64 /* smallest heap block; avoids tiny reallocs */

static char buf_empty[1]; /* shared "" for buffers that own nothing yet */

static void buf_set_empty(buf_t *b)
{
    b->data = buf_empty; /* never written: static storage is already "" */
    b->len = 0;
    b->cap = 0;
}

void buf_init(buf_t *b, size_t max)
{
    PST_ASSERT(b != NULL);
    PST_ASSERT(max < SIZE_MAX);
    buf_set_empty(b);
    b->max = max;
}

void buf_release(buf_t *b)
{
    if (b == NULL)
        return;
    if (b->cap > 0)
        free(b->data);
    buf_set_empty(b);
}

buf_t *buf_new(size_t max)
{
    buf_t *b;

    if (max >= SIZE_MAX)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    buf_init(b, max);
    return b;
}

void buf_free(buf_t **b)
{
    if (b == NULL || *b == NULL)
        return;
    buf_release(*b);
    free(*b);
    *b = NULL;
}

/* buf_reserve - make room for extra more bytes plus the NUL. May move data. */
static int buf_reserve(buf_t *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > b->max - b->len)
        return PST_ELIMIT;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    ncap = b->cap < BUF_MIN_ALLOC ? BUF_MIN_ALLOC : b->cap;
    while (ncap < need && ncap <= SIZE_MAX / 2)
        ncap *= 2;
    if (ncap < need)
        ncap = need;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    if (b->cap == 0) {
        p = malloc(ncap);
        if (p == NULL)
            return PST_ENOMEM;
        p[0] = '\0';
    } else {
        p = realloc(b->data, ncap);
        if (p == NULL)
            return PST_ENOMEM;
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int buf_append(buf_t *b, const void *data, size_t len)
{
    int rc;

    PST_ASSERT(b != NULL);
    if (len == 0)
        return 0;
    PST_ASSERT(data != NULL);
    rc = buf_reserve(b, len);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_append_str(buf_t *b, const char *s)
{
    PST_ASSERT(s != NULL);
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;
    size_t avail;

    PST_ASSERT(b != NULL && fmt != NULL);
    avail = b->cap > b->len ? b->cap - b->len : 0;
    if (avail > 0) {
        va_copy(ap2, ap);
        n = vsnprintf(b->data + b->len, avail, fmt, ap2);
        va_end(ap2);
        if (n < 0) {
            b->data[b->len] = '\0';
            return PST_EINVAL;
        }
        if ((size_t)n < avail) {
            b->len += (size_t)n;
            return 0;
        }
        b->data[b->len] = '\0'; /* vsnprintf wrote a partial result past len */
    } else {
        va_copy(ap2, ap);
        n = vsnprintf(NULL, 0, fmt, ap2);
        va_end(ap2);
        if (n < 0)
            return PST_EINVAL;
    }
    rc = buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_copy(ap2, ap);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    va_end(ap2);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->data[b->len] = '\0';
        return PST_EINVAL;
    }
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void buf_reset(buf_t *b)
{
    PST_ASSERT(b != NULL);
    b->len = 0;
    if (b->cap > 0)
        b->data[0] = '\0';
}

void buf_consume(buf_t *b, size_t n)
{
    PST_ASSERT(b != NULL);
    PST_ASSERT(n <= b->len);
    if (n == 0)
        return;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
