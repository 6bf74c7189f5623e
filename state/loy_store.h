/*
 * loy_store: the Redis state store (hiredis). Owns the public key layout
 * (docs/redis-keys.md); every key starts with the configured namespace.
 *
 *   <ns>:c:{<cid>}            hash   customer features, scores, offsets
 *   <ns>:{agg}:seg            hash   customers per segment
 *   <ns>:{agg}:hist:<dim>     hash   population histogram bin -> customers
 *   <ns>:rank:churn, :rank:clv zset  customer -> churn_prob / clv
 *   <ns>:{agg}:kpi:<yyyy-mm-dd> hash daily KPIs
 *   <ns>:{agg}:kpi_days       zset   the KPI days there are
 *   <ns>:{agg}:kpi_closed     stream the KPIs of each day once closed
 *   <ns>:stats                hash   processor counters
 *   <ns>:timers:<partition>   zset   customer -> due time (ms, event time)
 *   <ns>:outbox               hash   trigger_id -> framed Avro trigger
 *   <ns>:clock                hash   "<topic>:<partition>" -> newest
 *                                    event time applied there (ms)
 *   <ns>:{agg}:fence          hash   what the aggregates already hold,
 *                                    per input partition
 *
 * Every command names keys of one hash slot, so the same commands run on a
 * Redis Cluster (state/loy_cluster routes them): a customer's keys share
 * the tag {<cid>}, the aggregates that one script sums with their fence
 * share {agg}.
 *
 * Never one round trip per event: loads are one pipeline per batch; a
 * batch's write is two (loy_store_write_batch): first the batch's KPIs,
 * summed and applied by one script behind their own fence; then the outbox
 * entries, and one command per customer (its hash with its offset fence:
 * the atomic unit) with the batch's timers and ranks grouped around them.
 *
 * Errors: LOY_STORE_OK, or LOY_STORE_ERR_IO (connection lost; reconnect and
 * retry the batch), LOY_STORE_ERR_BUSY (the server refused for now: OOM,
 * READONLY, MISCONF, LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN,
 * NOREPLICAS; nothing is wrong with the data, retry after a pause),
 * LOY_STORE_ERR_FENCED (another process wrote the batch's partitions since
 * this one last did: nothing was written, the batch is not this process's
 * to write), LOY_STORE_ERR_AUTH (the server refused the credentials, the
 * database, or a command for this user: NOAUTH, WRONGPASS, NOPERM; a
 * configuration error, retrying does not help) or LOY_STORE_ERR (a reply
 * that makes no sense), with errstr filled.
 */
#ifndef LOY_STORE_H
#define LOY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../features/loy_feat.h"
#include "../features/loy_rfm.h"
#include "../models/loy_reco.h"

/* The aggregate keys after "<ns>:", for tools that read them. */
#define LOY_KEY_SEG "{agg}:seg"
#define LOY_KEY_RANK_CHURN "rank:churn"
#define LOY_KEY_RANK_CLV "rank:clv"
#define LOY_KEY_STATS "stats"
#define LOY_KEY_HIST "{agg}:hist:" /* + dimension name */
#define LOY_KEY_KPI "{agg}:kpi:"   /* + yyyy-mm-dd */
#define LOY_KEY_FENCE "{agg}:fence"
/* zset: each KPI day ("yyyy-mm-dd", score: days since 1970-01-01) */
#define LOY_KEY_KPI_DAYS "{agg}:kpi_days"
/* stream: one entry per closed KPI day (loy_store_kpi_close) */
#define LOY_KEY_KPI_CLOSED "{agg}:kpi_closed"

typedef enum {
        LOY_STORE_OK = 0,
        LOY_STORE_ERR_IO = -1,
        LOY_STORE_ERR = -2,
        LOY_STORE_ERR_BUSY = -3,
        LOY_STORE_ERR_FENCED = -4,
        LOY_STORE_ERR_AUTH = -5,
} loy_store_err_t;

/* 1 when a Redis error reply (its text, e.g. "OOM command not allowed")
 * is a refusal that goes away by itself, 0 when it is about the command or
 * the data. */
int loy_store_is_refusal(const char *reply_error);

typedef struct loy_store loy_store_t;

/* Connects. NULL with errstr when the address is unusable; a server that is
 * down is not an error here: the store starts disconnected and
 * loy_store_connect() retries. Free with loy_store_destroy().
 * ns NULL or "" means "loy"; timeout_ms (connect and each command) 0 means
 * 2000. SIGPIPE from a dead server is blocked and consumed inside the
 * store's calls, so applications need not ignore it. */
loy_store_t *loy_store_create(const char *host, int port, const char *ns,
                              int timeout_ms, char *errstr, size_t errstr_size);
void loy_store_destroy(loy_store_t *s);

/* How connections are opened from now on: AUTH (password, or ACL user and
 * password), SELECT of a database, connect and command timeouts
 * (state/loy_rconn.h; 0 keeps create's). Strings are copied. The next
 * loy_store_connect() opens them so. LOY_STORE_OK or LOY_STORE_ERR. */
struct loy_rconn_opts;
int loy_store_set_conn(loy_store_t *s, const struct loy_rconn_opts *o,
                       char *errstr, size_t errstr_size);

/* What the router did since the store was created (redirections followed,
 * slot maps read, connections opened and lost, units refused). */
struct loy_cluster_stats;
void loy_store_router_stats(const loy_store_t *s, struct loy_cluster_stats *st);

/* (Re)connects if needed and PINGs. 0 when usable. */
int loy_store_connect(loy_store_t *s, char *errstr, size_t errstr_size);
int loy_store_is_connected(const loy_store_t *s);
const char *loy_store_ns(const loy_store_t *s);

/* Loads n customers in one pipeline. custs[i] must be loy_feat_init()'ed
 * with its id; stored fields are parsed into it. found[i] (may be NULL) is
 * set to 1 when the customer existed. */
int loy_store_load(loy_store_t *s, loy_cust_t *const *custs, int n, int *found,
                   char *errstr, size_t errstr_size);

/* A customer from the reply to HGETALL of its hash (a hiredis
 * redisReply), as loy_pack_from_hash reads it: c must be loy_feat_init()'ed
 * with its id. For tools that read Redis themselves. -1 with *bad set to
 * the field at fault ("HGETALL" when the reply is not a hash's). */
struct redisReply;
int loy_store_cust_from_reply(const struct redisReply *r, loy_cust_t *c,
                              const char **bad);

/* Replaces rfm's counts with the <ns>:{agg}:hist:* hashes. */
int loy_store_load_hist(loy_store_t *s, loy_rfm_t *rfm, char *errstr,
                        size_t errstr_size);

typedef struct loy_kpi_delta {
        int64_t day_ms;    /* any time within the UTC day */
        const char *field; /* "purchases", "revenue_micros", ... */
        /* integers only (counts, money in micro-units): HINCRBY sums do
         * not depend on the order of the additions, floating-point sums
         * do in their last digits */
        int64_t delta;
} loy_kpi_delta_t;

typedef struct loy_outbox_entry {
        const char *trigger_id;
        const void *payload; /* framed Avro trigger */
        size_t len;
} loy_outbox_entry_t;

/* What a customer's hash holds, as last loaded or written, so that a write
 * sends only the fields that changed (fewer bytes to format, fewer listpack
 * entries for Redis to rewrite). The caller keeps it beside its cached
 * customer and must drop it with the customer whenever the cache may
 * disagree with Redis (a failed write, a rebalance). valid 0: unknown, the
 * next write sends every field. */
#define LOY_SHADOW_FIELDS 64
typedef struct loy_shadow {
        int valid;
        int nslots;
        uint64_t views_hash;
        double num[LOY_SHADOW_FIELDS]; /* loy_feat_field_number per field */
        int64_t slot[LOY_SLOTS_MAX];
} loy_shadow_t;

/* Fills sh from c as the store writes it (derived fields at c's scoring
 * time): for a customer just loaded from Redis, whose hash holds exactly
 * that, since numbers are stored so they read back exactly. */
void loy_store_shadow_take(loy_shadow_t *sh, const loy_cust_t *c,
                           const loy_feat_conf_t *fconf);

/* What one customer's write changes: its hash (fields that differ from the
 * shadow, slots: offsets and cooldowns), its timer entry, its rank scores
 * and, with recommendations, its history and top N. One HSET, or one
 * MULTI/EXEC when its recommendations change with it (all of them keys of
 * the customer's own hash slot). The segment and histogram counts it moves
 * are the batch's (loy_batch_agg_t). */
typedef struct loy_cust_write {
        const loy_cust_t *cust;
        /* NULL, or what the hash holds: only the fields that differ are
         * sent, and it is updated to what this write sends */
        loy_shadow_t *shadow;
        int32_t partition;    /* timers live per partition */
        int64_t old_timer_ms; /* 0 when no timer was set */
        /* The timer entry that fired for this customer, if any: always
         * removed (wherever it was), so an entry the customer's hash does
         * not know about cannot fire forever. */
        int timer_fired;
        int32_t fired_partition;
        /* Only remove the fired timer entry; the customer is not written
         * (a timer left behind by a customer Redis no longer has). */
        int timer_only;
        /* A forget request was applied (loyaltyctl forget): the hash and
         * the recommendations go first, and the customer leaves the rank
         * boards unless it bought again since (then shadow must be
         * invalid). A customer that is only the record of its erasure
         * (loy_feat_is_forgotten) is written as the packed state,
         * forgotten_ms and the offset fences. */
        int erase;
        /* Recommendations (all optional): the customer's history as text,
         * stored in <ns>:c:{cid}:rh when not NULL; with recs_set, the
         * sorted set <ns>:c:{cid}:recs is replaced by the nrecs given. */
        const char *hist_text;
        int recs_set;
        int nrecs;
        const char *const *rec_items;
        const double *rec_scores;
} loy_cust_write_t;

/* One field of <ns>:{agg}:fence. "o:<topic>:<partition>" holds the newest
 * offset of that input partition whose effect the aggregates hold;
 * "f:<partition>" the silence checks (lines "<due ms> <cid>") of the last
 * batch that fired any there; "v:<partition>" what the segment and
 * histogram counts hold of the customers whose counts the last batch there
 * moved (lines "<segment> <recency bin> <frequency bin> <monetary bin>
 * <loyalty bin> <cid>", -1 for none), plus those of a failed batch not
 * written since. With check, the field must still hold expect
 * (NULL: must not exist) or nothing of the batch is written: a field that
 * moved was written by another process (a member the group gave up on,
 * writing late). value "" removes the field. */
typedef struct loy_agg_fence {
        const char *field;
        int check;
        const char *expect;
        const char *value;
} loy_agg_fence_t;

/* A move of the population counts: dim -1 is <ns>:{agg}:seg (field: the
 * segment's name), otherwise <ns>:{agg}:hist:<dim> (field: the bin). */
typedef struct loy_count_delta {
        int dim;
        int field;
        int64_t delta;
} loy_count_delta_t;

/* A batch's aggregates, summed by the caller: daily KPI deltas (one per
 * day and field), segment and histogram count moves, and the fences that
 * make them count once. Sums are not idempotent, so they are not fenced
 * by the customers' offsets: a redo after the aggregates landed but
 * customers did not must leave out what the fences say is in. */
typedef struct loy_batch_agg {
        const loy_kpi_delta_t *kpi;
        int nkpi;
        const loy_count_delta_t *count; /* one per key and field */
        int ncount;
        const loy_agg_fence_t *fence;
        int nfence;
} loy_batch_agg_t;

/* Writes a batch in two round trips. First the aggregates with their
 * fences (agg NULL: none), by one script: all or nothing; KPIs derived from
 * counters, such as repurchase_rate, are recomputed for each day it moves.
 * A fence that moved returns LOY_STORE_ERR_FENCED with nothing written.
 * Then the outbox entries (idempotent: keyed by trigger id) ahead of the
 * customers, as loy_store_write. A failed second part leaves the first
 * applied: the caller re-reads the fences before it does the batch again. */
int loy_store_write_batch(loy_store_t *s, const loy_outbox_entry_t *outbox,
                          int noutbox, const loy_batch_agg_t *agg,
                          const loy_cust_write_t *w, int n, int64_t now_ms,
                          const loy_feat_conf_t *fconf, char *errstr,
                          size_t errstr_size);
/* The same write up to the customers sent: the aggregates applied, the
 * outbox and customers on their way, their replies not read. *sent is 1
 * when loy_store_write_recv() must read them before anything else uses
 * the store (0: the write was done or failed whole). Lets the caller
 * apply its next batch while Redis writes this one. */
int loy_store_write_batch_send(loy_store_t *s, const loy_outbox_entry_t *outbox,
                               int noutbox, const loy_batch_agg_t *agg,
                               const loy_cust_write_t *w, int n, int64_t now_ms,
                               const loy_feat_conf_t *fconf, int *sent,
                               char *errstr, size_t errstr_size);

/*
 * Ownership of input partitions, against a frozen process (SIGSTOP, a
 * stalled VM) that wakes up after the group gave its partitions to
 * another one and writes what it held (docs/guarantees.md).
 *
 * Each partition has an owner field in <ns>:{agg}:fence naming the
 * process that took it last; the batch's aggregate script checks it like
 * the other fences (loy_agg adds the check), so an old owner's batch is
 * refused with LOY_STORE_ERR_FENCED. The store's connections carry the
 * owner's name (CLIENT SETNAME), and loy_store_take_over closes the old
 * owner's: a batch whose aggregates were accepted before the take-over
 * cannot send its customers (loy_store_write_batch opens no connection in
 * the middle of a write).
 */
#define LOY_OWNER_MAX 96

/* This process's owner name: 1..LOY_OWNER_MAX printable characters, unique
 * among the processes of the group (loyaltyd: host, pid and a random
 * part). Names the store's connections. */
int loy_store_set_owner(loy_store_t *s, const char *owner, char *errstr,
                        size_t errstr_size);
const char *loy_store_owner(const loy_store_t *s);
/* Makes this process the owner of the n owner fields (partitions Kafka
 * just assigned to it), then closes the connections of each process that
 * owned one before; *nclosed counts them. */
int loy_store_take_over(loy_store_t *s, const char *const *fields, int n,
                        int *nclosed, char *errstr, size_t errstr_size);
/* Clears the owner fields that still name this process (partitions Kafka
 * took back), so that their next owner has no connection to close. */
int loy_store_release(loy_store_t *s, const char *const *fields, int n,
                      char *errstr, size_t errstr_size);

/* Called by loy_store_write_batch once a batch's aggregates were accepted,
 * before its customers are sent: fault injection (tests, and loyaltyd's
 * LOY_FAILPOINT) stops the process or writes as another one there. NULL
 * removes it. */
typedef void(loy_store_hook_fn)(loy_store_t *s, void *opaque);
void loy_store_set_after_agg_hook(loy_store_t *s, loy_store_hook_fn *fn,
                                  void *opaque);

/* HMGET of n fields of <ns>:{agg}:fence: values[i] malloc'ed (caller frees)
 * or NULL when absent. */
int loy_store_fence_get(loy_store_t *s, const char *const *fields, int n,
                        char **values, char *errstr, size_t errstr_size);

/* Writes n customers in one pipeline: timer entries added first (an entry
 * ahead of its hash fires as a no-op; a hash ahead of a missing entry would
 * never fire), then rank scores, then each customer, then the timer entries
 * removed. Derived fields such as recency_days are computed at each
 * customer's scored_ms, or at now_ms (event time) for one never scored. */
int loy_store_write(loy_store_t *s, const loy_cust_write_t *w, int n,
                    int64_t now_ms, const loy_feat_conf_t *fconf, char *errstr,
                    size_t errstr_size);

/* The two halves of loy_store_write, so a processor can keep one batch in
 * flight while it prepares the next: _send checks, queues and transmits the
 * batch without waiting for Redis; _recv waits for its replies and returns
 * what loy_store_write would have. w and the customers it points to must
 * stay valid until _recv. Until then every other call on the store fails
 * with LOY_STORE_ERR (the replies of the write come first on the
 * connection). After an error from _send nothing is in flight. */
int loy_store_write_send(loy_store_t *s, const loy_cust_write_t *w, int n,
                         int64_t now_ms, const loy_feat_conf_t *fconf,
                         char *errstr, size_t errstr_size);
int loy_store_write_recv(loy_store_t *s, char *errstr, size_t errstr_size);

/* Closes the KPI days before the one holding clock_ms (event time: no
 * event of theirs is still expected) that are not closed yet: appends each
 * day's KPI hash, as it stands, to <ns>:{agg}:kpi_closed with the entry id
 * "<the day's first ms>-1" and a field "day" (yyyy-mm-dd), so a time-series
 * reader (Grafana's Redis data source, XRANGE) charts one point per day at
 * its date. Days close in order and each once: an entry id at or below the
 * stream's last is never added, so two processes or a redo close nothing
 * twice. At most max days per call; *nclosed (may be NULL) says how many
 * were (== max: call again). */
int loy_store_kpi_close(loy_store_t *s, int64_t clock_ms, int max, int *nclosed,
                        char *errstr, size_t errstr_size);

/* Adds deltas to <ns>:stats and sets gauges there, in one round trip.
 * Either array may be empty. */
int loy_store_stats(loy_store_t *s, const char *const *incr_fields,
                    const double *incr, int nincr,
                    const char *const *set_fields, const double *set, int nset,
                    char *errstr, size_t errstr_size);

/* Up to max customer ids whose timer in partition is due at or before
 * clock_ms, earliest first. *ids is an array of malloc'ed strings the caller
 * frees with loy_store_free_ids(). */
int loy_store_timers_due(loy_store_t *s, int32_t partition, int64_t clock_ms,
                         int max, char ***ids, int *n, char *errstr,
                         size_t errstr_size);
void loy_store_free_ids(char **ids, int n);
/* The same, with each entry's due time in *due (malloc'ed, caller frees). */
int loy_store_timers_due_at(loy_store_t *s, int32_t partition, int64_t clock_ms,
                            int max, char ***ids, int64_t **due, int *n,
                            char *errstr, size_t errstr_size);

/* Calls cb for each outbox entry (used at start-up to re-send triggers that
 * were written but whose delivery was never confirmed). cb returns 0 to go
 * on. */
typedef int(loy_outbox_cb_t)(const char *trigger_id, const void *payload,
                             size_t len, void *opaque);
int loy_store_outbox_scan(loy_store_t *s, loy_outbox_cb_t *cb, void *opaque,
                          char *errstr, size_t errstr_size);

/* Calls cb for each of the n ids that the outbox holds (one HMGET); cb
 * returns 0 to go on. */
int loy_store_outbox_get(loy_store_t *s, const char *const *ids, int n,
                         loy_outbox_cb_t *cb, void *opaque, char *errstr,
                         size_t errstr_size);

/* Removes delivered triggers from the outbox, one round trip. */
int loy_store_outbox_ack(loy_store_t *s, const char *const *ids, int n,
                         char *errstr, size_t errstr_size);

/* Raw hiredis-free helpers for tools and tests: HGETALL of a full key name
 * printed as "field value" lines through cb. */
typedef void(loy_kv_cb_t)(const char *field, const char *value, void *opaque);
int loy_store_hgetall(loy_store_t *s, const char *key, loy_kv_cb_t *cb,
                      void *opaque, char *errstr, size_t errstr_size);

/* The event clock's partitions as last applied: HSET of <ns>:clock fields
 * "<topic>:<partition>" to the newest event time applied there, n of them
 * in one round trip. Written after each batch, so a process that starts
 * (or takes a partition over) knows where event time stood. */
int loy_store_clock_save(loy_store_t *s, const char *const *parts,
                         const int64_t *newest_ts, int n, char *errstr,
                         size_t errstr_size);
/* Calls cb with each field of <ns>:clock. */
int loy_store_clock_load(loy_store_t *s, loy_kv_cb_t *cb, void *opaque,
                         char *errstr, size_t errstr_size);

/* Pipelined GET of <ns>:c:{id}<suffix> for n customers: texts[i] is a
 * malloc'ed copy (caller frees) or NULL when the key does not exist. */
int loy_store_get_texts(loy_store_t *s, const char *suffix,
                        const char *const *ids, int n, char **texts,
                        char *errstr, size_t errstr_size);

/* Pipelined HGET of one field of n customers' hashes: values[i] malloc'ed
 * (caller frees) or NULL when absent. */
int loy_store_hget_custs(loy_store_t *s, const char *field,
                         const char *const *ids, int n, char **values,
                         char *errstr, size_t errstr_size);

/* Adds the recommender's pending increments to the shared model, one
 * pipeline of HINCRBYFLOAT: n(a) into hash <ns>:i:n; c(a,b) into hash
 * <ns>:i:<x>:co field <y>, x the alphabetically smaller of a and b.
 * Increments are sums, so several processes build one model. */
int loy_store_reco_flush(loy_store_t *s, const loy_reco_incr_t *incr, size_t n,
                         char *errstr, size_t errstr_size);

/* Rebuilds the neighbour lists <ns>:i:<sku>:nbrs of n items from the shared
 * counts. Item i's candidates are cands[i*ncand ...] (NULL-terminated when
 * fewer than ncand: the caller's local neighbours) and the members of its
 * shared list (candidates other processes found); their similarity is
 * sim(opaque, c_ab, n_a, n_b) on the shared counts, the best top_k are kept
 * and cb (may be NULL) gets each new list. Three round trips in all. */
typedef double(loy_sim_fn_t)(void *opaque, double c_ab, double n_a, double n_b);
typedef void(loy_nbrs_cb_t)(void *opaque, const char *sku,
                            const char *const *nbrs, const double *sims, int n);
int loy_store_reco_refresh(loy_store_t *s, const char *const *skus, int n,
                           const char *const *cands, int ncand, int top_k,
                           loy_sim_fn_t *sim, loy_nbrs_cb_t *cb, void *opaque,
                           char *errstr, size_t errstr_size);

#endif
