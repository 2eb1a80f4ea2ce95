/*
 * fuzz_pop3_reply.c - feed arbitrary bytes to the POP3 reply parsers: every
 * LF-separated line goes through the status, STAT, LIST, UIDL, CAPA and
 * multi-line parsers (results checked for consistency), and the whole input
 * goes through the body decoder twice - at once and in pieces of a size
 * taken from the input - which must agree byte for byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_line(const char *l, size_t n)
{
    struct pop3_status_line st;
    if (pop3_reply_status(l, n, &st) == 0) {
        if (st.text < l || st.text + st.textlen != l + n)
            abort();
        if (strlen(st.code) >= sizeof(st.code))
            abort();
    }
    uint32_t no;
    uint64_t sz;
    if (pop3_reply_listing(l, n, &no, &sz) == 0 &&
        (no == 0 || no > POP3_MSGNO_MAX || sz > POP3_SIZE_MAX))
        abort();
    if (pop3_reply_stat(l, n, &no, &sz) == 0 && sz > POP3_SIZE_MAX)
        abort();
    char uid[POP3_UIDL_MAX + 1];
    if (pop3_reply_uidl(l, n, &no, uid) == 0) {
        size_t ul = strlen(uid);
        if (ul == 0 || ul > POP3_UIDL_MAX || no == 0)
            abort();
        for (size_t i = 0; i < ul; i++)
            if ((unsigned char)uid[i] < 0x21 || (unsigned char)uid[i] > 0x7e)
                abort();
    }
    unsigned caps = 0;
    (void)pop3_reply_capa(l, n, &caps);
    const char *o;
    size_t on;
    if (pop3_reply_multiline(l, n, &o, &on) == 0 && (o < l || o + on != l + n))
        abort();
}

/* fuzz_body - decode in pieces of step; returns the output (malloc'd) and its length. */
static char *fuzz_body(const uint8_t *data, size_t size, size_t step, size_t *olen, size_t *used)
{
    struct pop3_body b;
    pop3_body_init(&b);
    char *out = malloc(size + 2);
    char *tmp = malloc(step + 1);
    if (!out || !tmp)
        abort();
    size_t o = 0, off = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        size_t ol, u;
        int end = pop3_body_feed(&b, (const char *)data + off, n, tmp, &ol, &u);
        if (ol > n + 1 || u > n || (!end && u != n))
            abort();
        memcpy(out + o, tmp, ol);
        o += ol;
        off += u;
        if (end)
            break;
    }
    free(tmp);
    *olen = o;
    *used = off;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || s[i] == '\n') {
            size_t n = i - start;
            if (n > 0 && s[start + n - 1] == '\r')
                n--;
            fuzz_line(s + start, n);
            start = i + 1;
        }
    }
    size_t step = size > 0 ? (size_t)data[0] % 13 + 1 : 1;
    size_t la, ua, lb, ub;
    char *a = fuzz_body(data, size, size > 0 ? size : 1, &la, &ua);
    char *b = fuzz_body(data, size, step, &lb, &ub);
    if (ua != ub || la != lb || memcmp(a, b, la) != 0)
        abort();
    free(a);
    free(b);
    return 0;
}
