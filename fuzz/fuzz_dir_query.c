/*
 * fuzz_dir_query.c - the directory's query-string / form-body parser
 * (src/directory/dir_query.c): any bytes must give 0 or a clean error, and
 * on success every key and value must obey the documented invariants.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory/dir_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dir_query q;
    const char *why = NULL;
    int rc = dir_query_parse(&q, (const char *)data, size, &why);
    if (rc != 0) {
        if (why == NULL || (rc != PST_EINVAL && rc != PST_ELIMIT))
            abort();
        return 0;
    }
    if (size > DIR_QUERY_MAX_LEN || q.n > DIR_QUERY_MAX_PARAMS)
        abort();
    for (size_t i = 0; i < q.n; i++) {
        size_t klen = strlen(q.p[i].key);
        if (klen == 0 || klen > DIR_QUERY_KEY_MAX || q.p[i].vlen > DIR_QUERY_VALUE_MAX ||
            strlen(q.p[i].value) != q.p[i].vlen || !dir_utf8_valid(q.p[i].value, q.p[i].vlen))
            abort();
        if (dir_query_get(&q, q.p[i].key) != q.p[i].value)
            abort(); /* keys are unique */
    }
    return 0;
}
