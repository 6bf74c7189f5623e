/* tu_batch: see tu_batch.h. */
#include "tu_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tu.h"

int tu_batch_init(tu_batch_t *t, int redis_port, int reco) {
        loy_batch_t *b = &t->b;
        char err[512];
        memset(t, 0, sizeof(*t));
        loy_config_defaults(&t->conf);
        if (loy_config_load(&t->conf, tu_src_path("config/loyaltyd.conf"), err,
                            sizeof(err)) ||
            loy_model_load(&t->model, t->conf.model_path, err, sizeof(err))) {
                fprintf(stderr, "tu_batch: %s\n", err);
                return -1;
        }
        t->conf.rules.n = 0;
        t->conf.batch_max = 64;
        t->conf.timer_batch = 16;
        if (loy_batch_init(b, &t->conf, err, sizeof(err)))
                goto fail;
        b->model = &t->model;
        b->stats = &t->stats;
        b->codec = loy_codec_create(NULL, err, sizeof(err));
        if (!b->codec)
                goto fail;
        if (redis_port) {
                b->store = loy_store_create("127.0.0.1", redis_port, NULL, 2000,
                                            err, sizeof(err));
                if (!b->store || loy_store_connect(b->store, err, sizeof(err)))
                        goto fail;
        }
        if (reco) {
                loy_reco_conf_t rc = t->conf.reco;
                rc.track_pending = 1;
                b->reco = loy_reco_create(&rc, err, sizeof(err));
                if (!b->reco)
                        goto fail;
        }
        b->cache = loy_cache_create_ext(1000, sizeof(loy_cust_ext_t));
        b->rfm = loy_rfm_create();
        b->clock = loy_clock_create(t->conf.lateness_ms, t->conf.idle_ms);
        b->agg = loy_agg_new();
        b->stale_ms = 60000;
        if (!b->cache || !b->rfm || !b->clock || !b->agg) {
                snprintf(err, sizeof(err), "out of memory");
                goto fail;
        }
        loy_batch_restart(b);
        loy_agg_begin(b->agg);
        return 0;
fail:
        fprintf(stderr, "tu_batch: %s\n", err);
        tu_batch_free(t);
        return -1;
}

void tu_batch_free(tu_batch_t *t) {
        loy_batch_t *b = &t->b;
        loy_batch_drop(b);
        loy_codec_destroy(b->codec);
        if (b->store)
                loy_store_destroy(b->store);
        loy_reco_destroy(b->reco);
        if (b->cache)
                loy_cache_destroy(b->cache);
        if (b->rfm)
                loy_rfm_destroy(b->rfm);
        loy_clock_destroy(b->clock);
        loy_agg_destroy(b->agg);
        loy_batch_free(b);
        loy_config_free(&t->conf);
}

int tu_batch_rule(tu_batch_t *t, const char *name, const char *when,
                  int on_timer) {
        loy_rules_t *rs = &t->conf.rules;
        loy_rule_t *r = &rs->rule[rs->n];
        char err[256];
        loy_rule_init(r, name);
        if (loy_rule_parse_when(r, when, err, sizeof(err))) {
                fprintf(stderr, "tu_batch: %s\n", err);
                return -1;
        }
        r->on = on_timer ? LOY_ON_TIMER : LOY_ON_EVENT;
        r->reward_value = 15;
        r->reward_expiry_days = 30;
        rs->n++;
        loy_batch_name_rule(&t->b, rs->n - 1);
        return 0;
}

loy_event_t *tu_batch_purchase(tu_batch_t *t, const char *eid, const char *cid,
                               int64_t ts, const char *sku, double price,
                               int32_t partition, int64_t offset) {
        loy_batch_t *b = &t->b;
        loy_event_t *ev = &b->events[b->nevents];
        char json[512], err[256];
        int n = snprintf(json, sizeof(json),
                         "{\"event_id\":\"%s\",\"customer_id\":\"%s\","
                         "\"ts\":%lld,\"order_id\":\"o-%s\",\"lines\":"
                         "[{\"sku\":\"%s\",\"quantity\":1,"
                         "\"unit_price\":%g}]}",
                         eid, cid, (long long)ts, eid, sku, price);
        if (loy_codec_decode(b->codec, json, (size_t)n, LOY_EV_PURCHASE, ts, ev,
                             err, sizeof(err))) {
                fprintf(stderr, "tu_batch: %s\n", err);
                return NULL;
        }
        ev->topic = t->conf.topic_purchase;
        ev->partition = partition;
        ev->offset = offset;
        b->event_msg[b->nevents] = -1;
        b->order[b->nevents] = b->nevents;
        b->nevents++;
        return ev;
}

void tu_batch_next(tu_batch_t *t) {
        loy_batch_t *b = &t->b;
        loy_batch_drop(b);
        loy_batch_restart(b);
        loy_agg_begin(b->agg);
}
