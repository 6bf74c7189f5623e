/* loy_agg: see loy_agg.h. */
#include "loy_agg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../features/loy_feat.h"

/* An input partition this process owns. */
typedef struct part {
        char *topic;
        int32_t partition;
        int64_t held;      /* offset fence as in Redis; -1: none */
        int64_t batch_max; /* newest offset of the batch; -1: none */
        char field[LOY_SLOT_NAME_MAX + 8];
        char own[LOY_OWNER_FIELD_MAX]; /* its owner field */
        char expect[24], value[24];
} part_t;

/* A partition Kafka assigned, to be taken over before its first batch. */
typedef struct pending {
        char *topic;
        int32_t partition;
} pending_t;

/* A silence check: loaded from a fence (already in the aggregates), or
 * fired by this batch. */
typedef struct fire {
        char *cid;
        int64_t due;
        int32_t part;
        int seen; /* loaded ones: fired again by this batch */
} fire_t;

typedef struct fires {
        fire_t *v;
        int n, cap;
} fires_t;

/* A customer's counts: as a script listed them (loaded), or as this
 * batch moves them. */
typedef struct counted_ent {
        char cid[LOY_ID_MAX + 1];
        int32_t part;
        loy_agg_counted_t v;
        int seen;  /* loaded ones: settled by this batch */
        int ahead; /* loaded ones: the counts hold v, the hash
                    * does not (loy_agg_counted_get said 1) */
} counted_ent_t;

typedef struct counted_list {
        counted_ent_t *v;
        int n, cap;
} counted_list_t;

struct loy_agg {
        loy_batch_agg_t out;
        loy_kpi_delta_t *kpi;
        int nkpi, kpi_cap;

        /* the batch's count moves: dense per key, with the fields used */
        int64_t seg_delta[LOY_SEG__COUNT];
        int64_t *hist_delta; /* LOY_DIM__COUNT * LOY_HIST_BINS */
        int *used;           /* (dim + 1) * LOY_HIST_BINS + field */
        int nused, used_cap;
        loy_count_delta_t *count;
        int count_cap;
        counted_list_t cloaded, cbatch;

        part_t *parts;
        int nparts, parts_cap;
        fires_t loaded, batch;
        int known;
        int held; /* the current item is already in */

        /* loy_agg_fence_fields: "o:..." per part, then "f:<p>" and "v:<p>"
         * per number */
        char **fields;
        int32_t *field_part; /* for "f:" fields, the partition number */
        int nfields, nofields;

        loy_agg_fence_t *fence;
        int fence_cap;
        char **texts; /* fire lists being written, owned */
        int ntexts;

        char *owner; /* checked in every batch; NULL: not */
        pending_t *pending;
        int npending, pending_cap;
        const char **takeover; /* owner fields of loy_agg_takeover_fields */
};

loy_agg_t *loy_agg_new(void) {
        return calloc(1, sizeof(loy_agg_t));
}

static void fires_clear(fires_t *f) {
        for (int i = 0; i < f->n; i++)
                free(f->v[i].cid);
        f->n = 0;
}

static void fields_free(loy_agg_t *a) {
        for (int i = 0; i < a->nfields; i++)
                free(a->fields[i]);
        free(a->fields);
        free(a->field_part);
        a->fields = NULL;
        a->field_part = NULL;
        a->nfields = a->nofields = 0;
}

static void texts_free(loy_agg_t *a) {
        for (int i = 0; i < a->ntexts; i++)
                free(a->texts[i]);
        a->ntexts = 0;
}

static void parts_clear(loy_agg_t *a) {
        for (int i = 0; i < a->nparts; i++)
                free(a->parts[i].topic);
        a->nparts = 0;
}

void loy_agg_destroy(loy_agg_t *a) {
        if (!a)
                return;
        fires_clear(&a->loaded);
        fires_clear(&a->batch);
        free(a->loaded.v);
        free(a->batch.v);
        parts_clear(a);
        free(a->parts);
        fields_free(a);
        texts_free(a);
        free(a->texts);
        free(a->fence);
        free(a->kpi);
        free(a->hist_delta);
        free(a->used);
        free(a->count);
        free(a->cloaded.v);
        free(a->cbatch.v);
        free(a->owner);
        for (int i = 0; i < a->npending; i++)
                free(a->pending[i].topic);
        free(a->pending);
        free(a->takeover);
        free(a);
}

void loy_agg_owner_field(const char *topic, int32_t partition, char *buf,
                         size_t size) {
        snprintf(buf, size, "own:%s:%" PRId32, topic, partition);
}

int loy_agg_set_owner(loy_agg_t *a, const char *owner) {
        char *copy = owner ? strdup(owner) : NULL;
        if (owner && !copy)
                return -1;
        free(a->owner);
        a->owner = copy;
        return 0;
}

int loy_agg_take_over(loy_agg_t *a, const char *topic, int32_t partition) {
        for (int i = 0; i < a->npending; i++)
                if (a->pending[i].partition == partition &&
                    !strcmp(a->pending[i].topic, topic))
                        return 0;
        if (a->npending == a->pending_cap) {
                int cap = a->pending_cap ? a->pending_cap * 2 : 16;
                pending_t *np = realloc(a->pending, sizeof(*np) * (size_t)cap);
                if (!np)
                        return -1;
                a->pending = np;
                a->pending_cap = cap;
        }
        if (!(a->pending[a->npending].topic = strdup(topic)))
                return -1;
        a->pending[a->npending++].partition = partition;
        return 0;
}

int loy_agg_takeover_fields(loy_agg_t *a, const char *const **fields, int *n) {
        const char **v =
            realloc(a->takeover, sizeof(*v) * (size_t)(a->nparts + 1));
        *n = 0;
        if (!v)
                return -1;
        a->takeover = v;
        for (int i = 0; i < a->nparts; i++)
                for (int j = 0; j < a->npending; j++)
                        if (a->pending[j].partition == a->parts[i].partition &&
                            !strcmp(a->pending[j].topic, a->parts[i].topic)) {
                                v[(*n)++] = a->parts[i].own;
                                break;
                        }
        *fields = v;
        return 0;
}

void loy_agg_takeover_done(loy_agg_t *a) {
        /* the pending partitions not among the owned ones were taken back
         * before their first batch: nothing to take over there */
        for (int i = 0; i < a->npending; i++)
                free(a->pending[i].topic);
        a->npending = 0;
}

static part_t *part_add(loy_agg_t *a, const char *topic, int32_t partition) {
        part_t *p;
        if (a->nparts == a->parts_cap) {
                int cap = a->parts_cap ? a->parts_cap * 2 : 16;
                part_t *np = realloc(a->parts, sizeof(*np) * (size_t)cap);
                if (!np)
                        return NULL;
                a->parts = np;
                a->parts_cap = cap;
        }
        p = &a->parts[a->nparts];
        memset(p, 0, sizeof(*p));
        p->topic = strdup(topic);
        if (!p->topic)
                return NULL;
        p->partition = partition;
        p->held = -1;
        p->batch_max = -1;
        snprintf(p->field, sizeof(p->field), "o:%s:%" PRId32, topic, partition);
        loy_agg_owner_field(topic, partition, p->own, sizeof(p->own));
        a->nparts++;
        return p;
}

static part_t *part_find(loy_agg_t *a, const char *topic, int32_t partition) {
        for (int i = 0; i < a->nparts; i++)
                if (a->parts[i].partition == partition &&
                    !strcmp(a->parts[i].topic, topic))
                        return &a->parts[i];
        return NULL;
}

int loy_agg_fence_fields(loy_agg_t *a, const char *const *topics,
                         const int32_t *parts, int n,
                         const char *const **fields, int *nfields) {
        int nnum = 0;
        fields_free(a);
        parts_clear(a);
        fires_clear(&a->loaded);
        a->known = 0;
        a->cloaded.n = 0;
        a->fields = calloc((size_t)(3 * n + 1), sizeof(*a->fields));
        a->field_part = calloc((size_t)(3 * n + 1), sizeof(*a->field_part));
        if (!a->fields || !a->field_part)
                goto nomem;
        for (int i = 0; i < n; i++) {
                part_t *p = part_add(a, topics[i], parts[i]);
                if (!p || !(a->fields[a->nfields] = strdup(p->field)))
                        goto nomem;
                a->nfields++;
        }
        a->nofields = a->nfields;
        for (int i = 0; i < n; i++) {
                char f[32];
                int seen = 0;
                for (int j = 0; j < nnum && !seen; j++)
                        seen = a->field_part[a->nofields + 2 * j] == parts[i];
                if (seen)
                        continue;
                snprintf(f, sizeof(f), "f:%" PRId32, parts[i]);
                if (!(a->fields[a->nfields] = strdup(f)))
                        goto nomem;
                a->field_part[a->nfields++] = parts[i];
                snprintf(f, sizeof(f), "v:%" PRId32, parts[i]);
                if (!(a->fields[a->nfields] = strdup(f)))
                        goto nomem;
                a->field_part[a->nfields++] = parts[i];
                nnum++;
        }
        *fields = (const char *const *)a->fields;
        *nfields = a->nfields;
        return 0;
nomem:
        fields_free(a);
        parts_clear(a);
        return -1;
}

static int fire_push(fires_t *f, const char *cid, size_t len, int64_t due,
                     int32_t part) {
        fire_t *e;
        if (f->n == f->cap) {
                int cap = f->cap ? f->cap * 2 : 64;
                fire_t *nv = realloc(f->v, sizeof(*nv) * (size_t)cap);
                if (!nv)
                        return -1;
                f->v = nv;
                f->cap = cap;
        }
        e = &f->v[f->n];
        e->cid = malloc(len + 1);
        if (!e->cid)
                return -1;
        memcpy(e->cid, cid, len);
        e->cid[len] = '\0';
        e->due = due;
        e->part = part;
        e->seen = 0;
        f->n++;
        return 0;
}

static int parse_i64(const char *s, const char *end, int64_t *v) {
        char *e;
        long long x;
        errno = 0;
        x = strtoll(s, &e, 10);
        if (errno || e == s || e != end)
                return -1;
        *v = x;
        return 0;
}

/* "<due> <cid>\n" per check. */
static int parse_fires(loy_agg_t *a, const char *text, int32_t part) {
        const char *q = text;
        while (*q) {
                const char *nl = strchr(q, '\n');
                const char *sp =
                    memchr(q, ' ', nl ? (size_t)(nl - q) : strlen(q));
                int64_t due;
                if (!nl)
                        nl = q + strlen(q);
                if (!sp || sp + 1 >= nl || parse_i64(q, sp, &due) ||
                    fire_push(&a->loaded, sp + 1, (size_t)(nl - sp - 1), due,
                              part))
                        return -1;
                q = *nl ? nl + 1 : nl;
        }
        return 0;
}

static counted_ent_t *counted_push(counted_list_t *l) {
        if (l->n == l->cap) {
                int cap = l->cap ? l->cap * 2 : 256;
                counted_ent_t *nv = realloc(l->v, sizeof(*nv) * (size_t)cap);
                if (!nv)
                        return NULL;
                l->v = nv;
                l->cap = cap;
        }
        memset(&l->v[l->n], 0, sizeof(l->v[0]));
        return &l->v[l->n++];
}

static int cmp_counted(const void *x, const void *y) {
        return strcmp(((const counted_ent_t *)x)->cid,
                      ((const counted_ent_t *)y)->cid);
}

/* "<seg> <recency> <frequency> <monetary> <loyalty> <cid>\n" per
 * customer. */
static int parse_counted(loy_agg_t *a, const char *text, int32_t part) {
        const char *q = text;
        while (*q) {
                const char *nl = strchr(q, '\n');
                const char *f = q;
                int64_t x[1 + LOY_DIM__COUNT];
                counted_ent_t *e;
                size_t len;
                if (!nl)
                        nl = q + strlen(q);
                for (int k = 0; k <= LOY_DIM__COUNT; k++) {
                        const char *sp = memchr(f, ' ', (size_t)(nl - f));
                        int64_t max = k ? LOY_HIST_BINS : LOY_SEG__COUNT;
                        if (!sp || parse_i64(f, sp, &x[k]) || x[k] < -1 ||
                            x[k] >= max)
                                return -1;
                        f = sp + 1;
                }
                len = (size_t)(nl - f);
                if (len == 0 || len > LOY_ID_MAX ||
                    !(e = counted_push(&a->cloaded)))
                        return -1;
                memcpy(e->cid, f, len);
                e->cid[len] = '\0';
                e->part = part;
                e->v.seg = (int)x[0];
                for (int d = 0; d < LOY_DIM__COUNT; d++)
                        e->v.bins[d] = (int)x[1 + d];
                q = *nl ? nl + 1 : nl;
        }
        return 0;
}

int loy_agg_fence_load(loy_agg_t *a, char *const *values, char *errstr,
                       size_t errstr_size) {
        for (int i = 0; i < a->nfields; i++) {
                const char *v = values[i];
                if (!v)
                        continue;
                if (i < a->nofields) {
                        if (parse_i64(v, v + strlen(v), &a->parts[i].held) ||
                            a->parts[i].held < 0) {
                                snprintf(errstr, errstr_size,
                                         "aggregate "
                                         "fence %s: bad offset \"%s\"",
                                         a->fields[i], v);
                                return -1;
                        }
                } else if ((i - a->nofields) % 2 == 0) {
                        if (parse_fires(a, v, a->field_part[i])) {
                                snprintf(errstr, errstr_size,
                                         "aggregate "
                                         "fence %s: bad list of checks",
                                         a->fields[i]);
                                fires_clear(&a->loaded);
                                return -1;
                        }
                } else if (parse_counted(a, v, a->field_part[i])) {
                        snprintf(errstr, errstr_size,
                                 "aggregate fence %s: "
                                 "bad list of counted customers",
                                 a->fields[i]);
                        a->cloaded.n = 0;
                        return -1;
                }
        }
        if (a->cloaded.n)
                qsort(a->cloaded.v, (size_t)a->cloaded.n,
                      sizeof(a->cloaded.v[0]), cmp_counted);
        a->known = 1;
        return 0;
}

int loy_agg_owed_count(const loy_agg_t *a) {
        return a->loaded.n;
}

void loy_agg_owed_get(const loy_agg_t *a, int i, const char **cid,
                      int64_t *due_ms) {
        *cid = a->loaded.v[i].cid;
        *due_ms = a->loaded.v[i].due;
}

void loy_agg_owed_settle(loy_agg_t *a, const int *owed) {
        int w = 0;
        for (int i = 0; i < a->loaded.n; i++) {
                if (!owed[i]) {
                        free(a->loaded.v[i].cid);
                        continue;
                }
                a->loaded.v[w++] = a->loaded.v[i];
        }
        a->loaded.n = w;
}

int loy_agg_fences_known(const loy_agg_t *a) {
        return a->known;
}

void loy_agg_fences_forget(loy_agg_t *a) {
        a->known = 0;
}

void loy_agg_counted_of(const loy_cust_t *c, int existed,
                        loy_agg_counted_t *v) {
        /* the record of an erasure is nobody: counted nowhere */
        int counted = existed && !loy_feat_is_forgotten(c);
        v->seg = counted ? c->segment : -1;
        for (int d = 0; d < LOY_DIM__COUNT; d++)
                v->bins[d] = counted ? loy_rfm_bin(c, (loy_dim_t)d) : -1;
}

static int same_counted(const loy_agg_counted_t *x,
                        const loy_agg_counted_t *y) {
        if (x->seg != y->seg)
                return 0;
        for (int d = 0; d < LOY_DIM__COUNT; d++)
                if (x->bins[d] != y->bins[d])
                        return 0;
        return 1;
}

static counted_ent_t *counted_find(loy_agg_t *a, const char *cid) {
        counted_ent_t key;
        size_t len = strlen(cid);
        if (!a->cloaded.n || len > LOY_ID_MAX)
                return NULL;
        memcpy(key.cid, cid, len + 1);
        return bsearch(&key, a->cloaded.v, (size_t)a->cloaded.n, sizeof(key),
                       cmp_counted);
}

int loy_agg_counted_get(loy_agg_t *a, const char *cid, loy_agg_counted_t *v) {
        counted_ent_t *e = counted_find(a, cid);
        if (!e)
                return 0;
        if (same_counted(&e->v, v)) {
                /* the hash holds it: nothing left to remember */
                e->seen = 1;
                return 0;
        }
        e->ahead = 1;
        *v = e->v;
        return 1;
}

void loy_agg_begin(loy_agg_t *a) {
        for (int i = 0; i < a->nused; i++) {
                int u = a->used[i];
                if (u < LOY_HIST_BINS)
                        a->seg_delta[u] = 0;
                else
                        a->hist_delta[u - LOY_HIST_BINS] = 0;
        }
        a->nused = 0;
        a->cbatch.n = 0;
        for (int i = 0; i < a->cloaded.n; i++)
                a->cloaded.v[i].seen = a->cloaded.v[i].ahead = 0;
        a->nkpi = 0;
        a->held = 0;
        fires_clear(&a->batch);
        for (int i = 0; i < a->nparts; i++)
                a->parts[i].batch_max = -1;
        for (int i = 0; i < a->loaded.n; i++)
                a->loaded.v[i].seen = 0;
}

static part_t *part_get(loy_agg_t *a, const char *topic, int32_t partition) {
        part_t *p = part_find(a, topic, partition);
        if (!p) {
                /* not in the assignment the fences were read for: written
                 * as new, so the check fails if another process has it,
                 * and read back before the next batch */
                p = part_add(a, topic, partition);
                a->known = 0;
        }
        return p;
}

void loy_agg_note_offset(loy_agg_t *a, const char *topic, int32_t partition,
                         int64_t offset) {
        part_t *p = part_get(a, topic, partition);
        if (p && offset > p->batch_max)
                p->batch_max = offset;
}

int loy_agg_on_event(loy_agg_t *a, const char *topic, int32_t partition,
                     int64_t offset) {
        part_t *p = part_get(a, topic, partition);
        if (p && offset > p->batch_max)
                p->batch_max = offset;
        a->held = p && offset <= p->held;
        return a->held;
}

int loy_agg_on_fire(loy_agg_t *a, const char *cid, int64_t due_ms,
                    int32_t part) {
        int held = 0;
        for (int i = 0; i < a->loaded.n; i++) {
                fire_t *f = &a->loaded.v[i];
                if (f->due == due_ms && !strcmp(f->cid, cid)) {
                        f->seen = 1;
                        held = 1;
                }
        }
        if (fire_push(&a->batch, cid, strlen(cid), due_ms, part))
                return -1;
        a->held = held;
        return held;
}

int loy_agg_held(const loy_agg_t *a) {
        return a->held;
}

static int64_t day_start(int64_t ms) {
        int64_t d = ms / LOY_MS_PER_DAY;
        if (ms % LOY_MS_PER_DAY < 0)
                d--;
        return d * LOY_MS_PER_DAY;
}

int loy_agg_kpi(loy_agg_t *a, int64_t day_ms, const char *field,
                int64_t delta) {
        int64_t day = day_start(day_ms);
        if (a->held)
                return 0;
        /* few distinct days and fields per batch; recent ones first */
        for (int i = a->nkpi - 1; i >= 0; i--)
                if (a->kpi[i].day_ms == day &&
                    (a->kpi[i].field == field ||
                     !strcmp(a->kpi[i].field, field))) {
                        a->kpi[i].delta += delta;
                        return 0;
                }
        if (a->nkpi == a->kpi_cap) {
                int cap = a->kpi_cap ? a->kpi_cap * 2 : 64;
                loy_kpi_delta_t *nk =
                    realloc(a->kpi, sizeof(*nk) * (size_t)cap);
                if (!nk)
                        return -1;
                a->kpi = nk;
                a->kpi_cap = cap;
        }
        a->kpi[a->nkpi].day_ms = day;
        a->kpi[a->nkpi].field = field;
        a->kpi[a->nkpi].delta = delta;
        a->nkpi++;
        return 0;
}

/* dim -1: the segment counts. */
static int count_move(loy_agg_t *a, int dim, int field, int64_t by) {
        int u = (dim + 1) * LOY_HIST_BINS + field;
        int64_t *slot;
        if (field < 0)
                return 0;
        if (dim >= 0 && !a->hist_delta &&
            !(a->hist_delta = calloc((size_t)LOY_DIM__COUNT * LOY_HIST_BINS,
                                     sizeof(*a->hist_delta))))
                return -1;
        slot =
            dim < 0 ? &a->seg_delta[field] : &a->hist_delta[u - LOY_HIST_BINS];
        if (*slot == 0) {
                /* a field that went back to 0 is listed again: harmless,
                 * build skips zero deltas and duplicates add 0 */
                if (a->nused == a->used_cap) {
                        int cap = a->used_cap ? a->used_cap * 2 : 256;
                        int *nu = realloc(a->used, sizeof(*nu) * (size_t)cap);
                        if (!nu)
                                return -1;
                        a->used = nu;
                        a->used_cap = cap;
                }
                a->used[a->nused++] = u;
        }
        *slot += by;
        return 0;
}

int loy_agg_cust(loy_agg_t *a, const char *cid, int32_t part,
                 const loy_agg_counted_t *from, const loy_agg_counted_t *to) {
        counted_ent_t *e = counted_find(a, cid);
        size_t len = strlen(cid);
        int ahead = e && e->ahead;
        if (e)
                e->seen = 1; /* its hash is written by this batch */
        /* Nothing moves, but a customer the counts hold ahead of its hash
         * stays listed until this batch's write of the hash lands: the
         * counts land first, and a crash in between must not make the
         * next redo move it again from its hash. */
        if (same_counted(from, to) && !ahead)
                return 0;
        if (len > LOY_ID_MAX)
                return -1;
        if (from->seg != to->seg &&
            (count_move(a, -1, from->seg, -1) || count_move(a, -1, to->seg, 1)))
                return -1;
        for (int d = 0; d < LOY_DIM__COUNT; d++)
                if (from->bins[d] != to->bins[d] &&
                    (count_move(a, d, from->bins[d], -1) ||
                     count_move(a, d, to->bins[d], 1)))
                        return -1;
        if (!(e = counted_push(&a->cbatch)))
                return -1;
        memcpy(e->cid, cid, len + 1);
        e->part = part;
        e->v = *to;
        return 0;
}

static int cmp_int(const void *x, const void *y) {
        int a = *(const int *)x, b = *(const int *)y;
        return (a > b) - (a < b);
}

/* The batch's count moves for the store, each field once (a field whose
 * sum went back to 0 and moved again is listed twice). */
static int counts_build(loy_agg_t *a) {
        int n = 0;
        if (a->nused > a->count_cap) {
                loy_count_delta_t *nc =
                    realloc(a->count, sizeof(*nc) * (size_t)a->nused);
                if (!nc)
                        return -1;
                a->count = nc;
                a->count_cap = a->nused;
        }
        if (a->nused)
                qsort(a->used, (size_t)a->nused, sizeof(*a->used), cmp_int);
        for (int i = 0; i < a->nused; i++) {
                int u = a->used[i];
                int64_t d = u < LOY_HIST_BINS
                                ? a->seg_delta[u]
                                : a->hist_delta[u - LOY_HIST_BINS];
                if (!d || (i > 0 && a->used[i - 1] == u))
                        continue;
                a->count[n].dim = u / LOY_HIST_BINS - 1;
                a->count[n].field = u % LOY_HIST_BINS;
                a->count[n].delta = d;
                n++;
        }
        a->out.count = a->count;
        a->out.ncount = n;
        return 0;
}

static loy_agg_fence_t *fence_next(loy_agg_t *a) {
        if (a->out.nfence == a->fence_cap) {
                int cap = a->fence_cap ? a->fence_cap * 2 : 16;
                loy_agg_fence_t *nf =
                    realloc(a->fence, sizeof(*nf) * (size_t)cap);
                if (!nf)
                        return NULL;
                a->fence = nf;
                a->fence_cap = cap;
        }
        return &a->fence[a->out.nfence++];
}

/* Room for need more bytes (and a NUL) in a growing text. */
static int text_room(char **buf, size_t *len, size_t *cap, size_t need) {
        if (*len + need + 1 > *cap) {
                size_t c = *cap ? *cap * 2 : 1024;
                char *nb;
                while (c < *len + need + 1)
                        c *= 2;
                nb = realloc(*buf, c);
                if (!nb)
                        return -1;
                *buf = nb;
                *cap = c;
        }
        return 0;
}

/* Appends an integer and then sep (room made by the caller). */
static void text_int(char *buf, size_t *len, size_t cap, int64_t v, char sep) {
        int n = loy_fmt_i64(buf + *len, cap - *len, v);
        *len += n > 0 ? (size_t)n : 0;
        buf[(*len)++] = sep;
}

static void text_cid(char *buf, size_t *len, const char *cid) {
        size_t n = strlen(cid);
        memcpy(buf + *len, cid, n);
        *len += n;
        buf[(*len)++] = '\n';
        buf[*len] = '\0';
}

/* Appends "<due> <cid>\n". */
static int text_add(char **buf, size_t *len, size_t *cap, const fire_t *f) {
        if (text_room(buf, len, cap, strlen(f->cid) + 24))
                return -1;
        text_int(*buf, len, *cap, f->due, ' ');
        text_cid(*buf, len, f->cid);
        return 0;
}

/* Keeps buf (owned from now on) as the value of a fence named name that
 * this batch writes unchecked; the name lives beside its text. */
static int list_fence(loy_agg_t *a, const char *name, char *buf) {
        size_t tl = strlen(buf), nl = strlen(name);
        char **nt;
        char *both;
        loy_agg_fence_t *f;
        if (!(both = realloc(buf, tl + nl + 2))) {
                free(buf);
                return -1;
        }
        nt = realloc(a->texts, sizeof(*nt) * (size_t)(a->ntexts + 1));
        if (!nt) {
                free(both);
                return -1;
        }
        a->texts = nt;
        a->texts[a->ntexts++] = both;
        memcpy(both + tl + 1, name, nl + 1);
        if (!(f = fence_next(a)))
                return -1;
        f->field = both + tl + 1;
        f->value = both;
        f->check = 0;
        f->expect = NULL;
        return 0;
}

/* The list "f:<part>" is to hold: this batch's checks there, and the
 * loaded ones there it did not fire again (a failed batch's, still owed
 * to their customers). */
static int fires_fence(loy_agg_t *a, int32_t part) {
        char *buf = NULL;
        size_t len = 0, cap = 0;
        char name[32];
        for (int i = 0; i < a->batch.n; i++)
                if (a->batch.v[i].part == part &&
                    text_add(&buf, &len, &cap, &a->batch.v[i]))
                        goto nomem;
        for (int i = 0; i < a->loaded.n; i++)
                if (a->loaded.v[i].part == part && !a->loaded.v[i].seen &&
                    text_add(&buf, &len, &cap, &a->loaded.v[i]))
                        goto nomem;
        if (!buf && !(buf = calloc(1, 1)))
                return -1;
        buf[len] = '\0';
        snprintf(name, sizeof(name), "f:%" PRId32, part);
        return list_fence(a, name, buf);
nomem:
        free(buf);
        return -1;
}

/* Appends "<seg> <4 bins> <cid>\n". */
static int counted_add(char **buf, size_t *len, size_t *cap,
                       const counted_ent_t *e) {
        if (text_room(buf, len, cap, strlen(e->cid) + 64))
                return -1;
        text_int(*buf, len, *cap, e->v.seg, ' ');
        for (int d = 0; d < LOY_DIM__COUNT; d++)
                text_int(*buf, len, *cap, e->v.bins[d], ' ');
        text_cid(*buf, len, e->cid);
        return 0;
}

/* The list "v:<part>" is to hold: the customers whose counts this batch
 * moves there, and the loaded ones there not settled (a failed batch's
 * customers whose hashes may not hold what the counts do). */
static int counted_fence(loy_agg_t *a, int32_t part) {
        char *buf = NULL;
        size_t len = 0, cap = 0;
        char name[32];
        for (int i = 0; i < a->cbatch.n; i++)
                if (a->cbatch.v[i].part == part &&
                    counted_add(&buf, &len, &cap, &a->cbatch.v[i]))
                        goto nomem;
        for (int i = 0; i < a->cloaded.n; i++)
                if (a->cloaded.v[i].part == part && !a->cloaded.v[i].seen &&
                    counted_add(&buf, &len, &cap, &a->cloaded.v[i]))
                        goto nomem;
        if (!buf && !(buf = calloc(1, 1)))
                return -1;
        buf[len] = '\0';
        snprintf(name, sizeof(name), "v:%" PRId32, part);
        return list_fence(a, name, buf);
nomem:
        free(buf);
        return -1;
}

int loy_agg_build(loy_agg_t *a, const loy_batch_agg_t **out) {
        *out = NULL;
        texts_free(a);
        a->out.nfence = 0;
        for (int i = 0; i < a->nparts; i++) {
                part_t *p = &a->parts[i];
                loy_agg_fence_t *f;
                if (p->batch_max <= p->held)
                        continue;
                if (!(f = fence_next(a)))
                        return -1;
                loy_fmt_i64(p->expect, sizeof(p->expect), p->held);
                loy_fmt_i64(p->value, sizeof(p->value), p->batch_max);
                f->field = p->field;
                f->check = 1;
                f->expect = p->held >= 0 ? p->expect : NULL;
                f->value = p->value;
        }
        for (int i = 0; i < a->batch.n; i++) {
                int32_t part = a->batch.v[i].part;
                int done = 0;
                for (int j = 0; j < i && !done; j++)
                        done = a->batch.v[j].part == part;
                if (!done && fires_fence(a, part))
                        return -1;
        }
        /* Where counts moved. A list is not rewritten only to drop
         * settled entries: those still hold what the counts do, and a
         * replay must not write at all. */
        {
                /* few partitions, many customers: against the parts done */
                int32_t done[64];
                int ndone = 0, more = 0;
                for (int i = 0; i < a->cbatch.n; i++) {
                        int32_t part = a->cbatch.v[i].part;
                        int seen = 0;
                        for (int j = 0; j < ndone && !seen; j++)
                                seen = done[j] == part;
                        for (int j = 0; more && !seen && j < i; j++)
                                seen = a->cbatch.v[j].part == part;
                        if (seen)
                                continue;
                        if (counted_fence(a, part))
                                return -1;
                        if (ndone < 64)
                                done[ndone++] = part;
                        else
                                more = 1;
                }
        }
        if (counts_build(a))
                return -1;
        /* A batch that writes anything first proves that this process
         * still owns every partition it holds (loy_store_take_over). */
        if (a->owner && (a->out.nfence || a->nkpi || a->out.ncount)) {
                for (int i = 0; i < a->nparts; i++) {
                        loy_agg_fence_t *f = fence_next(a);
                        if (!f)
                                return -1;
                        f->field = a->parts[i].own;
                        f->check = 1;
                        f->expect = a->owner;
                        f->value = a->owner;
                }
        }
        a->out.kpi = a->kpi;
        a->out.nkpi = a->nkpi;
        a->out.fence = a->fence;
        if (a->out.nfence || a->nkpi || a->out.ncount)
                *out = &a->out;
        return 0;
}

void loy_agg_written(loy_agg_t *a) {
        int w = 0;
        for (int i = 0; i < a->nparts; i++)
                if (a->parts[i].batch_max > a->parts[i].held)
                        a->parts[i].held = a->parts[i].batch_max;
        /* a loaded check fired again is now in its customer's hash too */
        for (int i = 0; i < a->loaded.n; i++) {
                if (a->loaded.v[i].seen) {
                        free(a->loaded.v[i].cid);
                        continue;
                }
                a->loaded.v[w++] = a->loaded.v[i];
        }
        a->loaded.n = w;
        /* a settled customer's hash now holds what the counts do */
        w = 0;
        for (int i = 0; i < a->cloaded.n; i++)
                if (!a->cloaded.v[i].seen)
                        a->cloaded.v[w++] = a->cloaded.v[i];
        a->cloaded.n = w;
}
