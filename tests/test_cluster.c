/*
 * loy_cluster against real servers: the slot function against CLUSTER
 * KEYSLOT of a real 3-master cluster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <hiredis/hiredis.h>

#include "loy_cluster.h"
#include "tu_cluster.h"

static tu_cluster_t C;

/* --------------------------------------------------- slot (no server) */

static unsigned slot_of(const char *k) {
        return loy_cluster_slot(k, strlen(k));
}

static void test_slot_vectors(void) {
        /* CRC16/XMODEM check value of "123456789" is 0x31C3. */
        CU_ASSERT_EQUAL(slot_of("123456789"), 0x31C3u & 16383u);
        CU_ASSERT_EQUAL(slot_of(""), 0u);
        CU_ASSERT_EQUAL(slot_of("foo"), 12182u);
        CU_ASSERT_EQUAL(slot_of("bar"), 5061u);
        /* The cluster spec's hash tag examples. */
        CU_ASSERT_EQUAL(slot_of("{user1000}.following"), slot_of("user1000"));
        CU_ASSERT_EQUAL(slot_of("{user1000}.followers"), slot_of("user1000"));
        CU_ASSERT_EQUAL(slot_of("foo{}{bar}"),
                        loy_cluster_slot("foo{}{bar}", 10));
        CU_ASSERT_NOT_EQUAL(slot_of("foo{}{bar}"), slot_of("bar"));
        CU_ASSERT_EQUAL(slot_of("foo{{bar}}zap"), slot_of("{bar"));
        CU_ASSERT_EQUAL(slot_of("foo{bar}{zap}"), slot_of("bar"));
        CU_ASSERT_EQUAL(slot_of("loy:c:{42}"), slot_of("42"));
        CU_ASSERT_EQUAL(slot_of("loy:c:{42}:recs"), slot_of("loy:c:{42}"));
        /* Bytes after a NUL count. */
        CU_ASSERT_NOT_EQUAL(loy_cluster_slot("a\0b", 3),
                            loy_cluster_slot("a\0c", 3));
        for (int i = 0; i < 1000; i++) {
                char k[32];
                snprintf(k, sizeof(k), "key:%d", i);
                CU_ASSERT(slot_of(k) < LOY_CLUSTER_SLOTS);
        }
}

/* ------------------------------------------------- cluster (3 masters) */

static int cluster_init(void) {
        if (tu_cluster_start(&C, 3)) {
                fprintf(stderr, "\n  cannot start a 3-master cluster\n");
                return -1;
        }
        return 0;
}

static int cluster_clean(void) {
        tu_cluster_stop(&C);
        return 0;
}

/* Keys that exercise the hash tag rules, then random ones. */
#define NKEYS 4000
static void test_keyslot_server(void) {
        static const char *const special[] = {
            "loy:c:{42}", "loy:c:{42}:recs", "{}", "{a}{b}", "a{}b{c}",
            "{}{a}", "{", "}", "}{", "{{a}}", "a{b", "a}b{", "{a", "a}",
            "{}}", "{{}}", "x{}", "x{ }y", "{\xff}", "", "foo{}{bar}",
            "foo{{bar}}zap", "foo{bar}{zap}", "{user1000}.following",
            "loy:i:sku-1:nbrs", "loy:kpi:2024-03-05"};
        const int nspecial = (int)(sizeof(special) / sizeof(*special));
        static char keys[NKEYS][24];
        static size_t lens[NKEYS];
        redisContext *ctx = tu_cluster_connect(&C, 0);
        unsigned seed = 12345;
        int bad = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        for (int i = 0; i < NKEYS; i++) {
                if (i < nspecial) {
                        lens[i] = strlen(special[i]);
                        memcpy(keys[i], special[i], lens[i]);
                        continue;
                }
                /* Random bytes, NULs and braces often. */
                lens[i] = (size_t)(i % 23);
                for (size_t k = 0; k < lens[i]; k++) {
                        seed = seed * 1103515245u + 12345u;
                        switch ((seed >> 16) % 8) {
                        case 0: keys[i][k] = '{'; break;
                        case 1: keys[i][k] = '}'; break;
                        case 2: keys[i][k] = '\0'; break;
                        default: keys[i][k] = (char)(seed >> 8); break;
                        }
                }
        }
        for (int i = 0; i < NKEYS; i++)
                redisAppendCommand(ctx, "CLUSTER KEYSLOT %b", keys[i],
                                   lens[i]);
        for (int i = 0; i < NKEYS; i++) {
                void *v = NULL;
                redisReply *r;
                CU_ASSERT_EQUAL_FATAL(redisGetReply(ctx, &v), REDIS_OK);
                r = v;
                CU_ASSERT_EQUAL(r->type, REDIS_REPLY_INTEGER);
                if (r->integer != (long long)loy_cluster_slot(keys[i],
                                                              lens[i])) {
                        if (bad++ < 5)
                                fprintf(stderr, "\n  key %d (%zu bytes): "
                                        "server %lld, ours %u\n", i,
                                        lens[i], r->integer,
                                        loy_cluster_slot(keys[i], lens[i]));
                }
                freeReplyObject(r);
        }
        CU_ASSERT_EQUAL(bad, 0);
        redisFree(ctx);
}

/* ------------------------------------------------------------------ main */

int main(void) {
        CU_pSuite su;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        su = CU_add_suite("slot", NULL, NULL);
        if (!su)
                return CU_get_error();
        CU_add_test(su, "CRC16 and hash tags", test_slot_vectors);
        su = CU_add_suite("cluster", cluster_init, cluster_clean);
        if (!su)
                return CU_get_error();
        CU_add_test(su, "slot = CLUSTER KEYSLOT", test_keyslot_server);
        return tu_cluster_cunit_run();
}
