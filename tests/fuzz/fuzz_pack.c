/*
 * fuzz_pack: libFuzzer target of the packed customer state (features/
 * loy_pack), the one parser that reads what Redis holds for a customer.
 *
 * The input is a packed string. It must never crash; an accepted one must
 * pack again to a string that unpacks to the same customer and packs to
 * the same bytes (a reload never drifts), and the same string cut into
 * chunks (with view fields between, and a stale chunk after) must read the
 * same through loy_pack_from_hash.
 *
 * Build: scripts/fuzz.sh (cmake -DLOY_FUZZ=ON with clang, build-fuzz/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_feat.h"
#include "loy_pack.h"
#include "fuzz.h"

static loy_cust_t a, b, c;
static unsigned char p1[LOY_PACK_MAX], p2[LOY_PACK_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *names[LOY_PACK_CHUNKS_MAX + 2],
            *vals[LOY_PACK_CHUNKS_MAX + 2];
        char nm[LOY_PACK_CHUNKS_MAX + 2][8];
        size_t lens[LOY_PACK_CHUNKS_MAX + 2];
        const char *bad;
        int n1, n2, k = 0;

        loy_feat_init(&a, "fuzz");
        if (loy_pack_unpack(&a, data, size))
                return 0;
        n1 = loy_pack_cust(&a, p1, sizeof(p1));
        CHECK(n1 > 0, "an accepted customer does not pack");
        loy_feat_init(&b, "fuzz");
        CHECK(loy_pack_unpack(&b, p1, (size_t)n1) == 0,
              "a packed customer does not unpack");
        n2 = loy_pack_cust(&b, p2, sizeof(p2));
        CHECK(n2 == n1 && !memcmp(p1, p2, (size_t)n1),
              "the round trip changed the bytes");

        /* the same in chunks, last first, with a view field and a stale
         * chunk after the last */
        for (int off = 0; off < n1; off += LOY_PACK_CHUNK, k++) {
                loy_pack_chunk_name(k, nm[k]);
                names[k] = nm[k];
                vals[k] = (const char *)p1 + off;
                lens[k] = (size_t)(n1 - off < LOY_PACK_CHUNK ? n1 - off
                                                             : LOY_PACK_CHUNK);
        }
        CHECK(k < LOY_PACK_CHUNKS_MAX, "%d chunks", k);
        loy_pack_chunk_name(k, nm[k]);
        names[k] = nm[k];
        vals[k] = (const char *)data;
        lens[k] = size < LOY_PACK_CHUNK ? size : LOY_PACK_CHUNK;
        names[k + 1] = "orders";
        vals[k + 1] = "x";
        lens[k + 1] = 1;
        loy_feat_init(&c, "fuzz");
        CHECK(loy_pack_from_hash(&c, names, vals, lens, (size_t)k + 2, &bad) ==
                  0,
              "the chunks do not read (%s)", bad);
        n2 = loy_pack_cust(&c, p2, sizeof(p2));
        CHECK(n2 == n1 && !memcmp(p1, p2, (size_t)n1),
              "the chunks read otherwise");
        return 0;
}
