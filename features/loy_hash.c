/* loy_hash: see loy_hash.h. */
#include "loy_hash.h"

#include <string.h>

#define FNV_PRIME 0x100000001b3ULL

uint64_t loy_hash64_update(uint64_t h, const void *data, size_t len) {
        const unsigned char *p = data;
        for (size_t i = 0; i < len; i++) {
                h ^= p[i];
                h *= FNV_PRIME;
        }
        return h;
}

uint64_t loy_hash64(const void *data, size_t len, uint64_t seed) {
        return loy_hash64_update(LOY_HASH_OFFSET ^ seed, data, len);
}

uint64_t loy_hash64_str(const char *s) {
        return loy_hash64(s, strlen(s), 0);
}
