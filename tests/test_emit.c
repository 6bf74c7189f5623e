/*
 * loy_emit against a real redis-server (delivery reports as librdkafka
 * hands them, no broker): a confirmed trigger leaves the outbox, a failed
 * one stays there and marks the emitter failed; an ack Redis refuses is
 * kept for the next try.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loy_emit.h"
#include "tu.h"

static void report(loy_emit_t *e, const char *id, rd_kafka_resp_err_t err) {
        rd_kafka_message_t m;
        memset(&m, 0, sizeof(m));
        m.err = err;
        m._private = strdup(id);
        loy_emit_delivered(e, &m);
}

static void test_acks(void) {
        tu_redis_t r;
        loy_proc_stats_t st;
        loy_store_t *store;
        loy_emit_t *e;
        char err[256], *v;
        memset(&st, 0, sizeof(st));
        CU_ASSERT_EQUAL_FATAL(tu_redis_start(&r, 0), 0);
        store =
            loy_store_create("127.0.0.1", r.port, NULL, 500, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(store);
        CU_ASSERT_EQUAL_FATAL(loy_store_connect(store, err, sizeof(err)), 0);
        e = loy_emit_create("triggers", NULL, &st);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        free(tu_redis_cli(&r, "HSET loy:outbox t1 a t2 b t3 c"));
        report(e, "t1", RD_KAFKA_RESP_ERR_NO_ERROR);
        report(e, "t2", RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
        report(e, "t3", RD_KAFKA_RESP_ERR_NO_ERROR);
        CU_ASSERT_EQUAL(st.triggers_acked, 2);
        CU_ASSERT_EQUAL(loy_emit_failed(e), 1);
        /* nothing removed before the ack */
        v = tu_redis_cli(&r, "HLEN loy:outbox");
        CU_ASSERT_STRING_EQUAL(v ? v : "", "3");
        free(v);
        loy_emit_ack(e, store);
        v = tu_redis_cli(&r, "HKEYS loy:outbox");
        CU_ASSERT_STRING_EQUAL(v ? v : "", "t2");
        free(v);
        /* an ack Redis does not take is kept and tried again */
        free(tu_redis_cli(&r, "HSET loy:outbox t4 d"));
        report(e, "t4", RD_KAFKA_RESP_ERR_NO_ERROR);
        {
                loy_store_t *down = loy_store_create(
                    "127.0.0.1", tu_free_port(), NULL, 200, err, sizeof(err));
                CU_ASSERT_PTR_NOT_NULL_FATAL(down);
                loy_emit_ack(e, down);
                loy_store_destroy(down);
        }
        v = tu_redis_cli(&r, "HKEYS loy:outbox");
        CU_ASSERT_STRING_EQUAL(v ? v : "", "t2\nt4");
        free(v);
        loy_emit_ack(e, store);
        v = tu_redis_cli(&r, "HKEYS loy:outbox");
        CU_ASSERT_STRING_EQUAL(v ? v : "", "t2");
        free(v);
        /* queued ids are freed by destroy */
        report(e, "t5", RD_KAFKA_RESP_ERR_NO_ERROR);
        loy_emit_destroy(e);
        loy_store_destroy(store);
        tu_redis_stop(&r);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"delivery reports and acks", test_acks},
        };
        return tu_cunit_main("loy_emit", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
