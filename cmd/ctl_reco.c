/*
 * loyaltyctl reco-eval, reco-bench: the item-to-item recommender on real
 * baskets (Online Retail) and its cost.
 *
 * reco-eval: time split. Everything before --split (2011-11-01) trains;
 * every later purchase of a customer seen in training is a test case whose
 * truth is the set of distinct products it holds. Static: models and
 * histories frozen at the split. Progressive: everything keeps learning,
 * each invoice is scored just before it is learned. Methods: the stream
 * recommender (several configurations) and two baselines, global
 * popularity (invoices holding the item) and repeat-buy (the customer's
 * own most-bought items, most recent first on ties, filled up with popular
 * items).
 *
 * reco-bench: events/s of learning + scoring on the real file (purchases,
 * and the same lines replayed as views), and the memory of a model fed a
 * million synthetic distinct items, each in a child process so its RSS is
 * its own.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "loy_hash.h"
#include "loy_reco.h"

#define DEFAULT_DATA "../shared/data/online_retail.csv.gz"
#define SPLIT_MS 1320105600000LL /* 2011-11-01T00:00:00Z */
#define MS_DAY 86400000LL

/* ------------------------------------------------------------------------
 * A string interner (skus and customers of the evaluation)
 * ------------------------------------------------------------------------ */

typedef struct strtab {
        char **s;
        int n, cap;
        int *h; /* index + 1 */
        int hcap;
} strtab_t;

static uint64_t st_hash(const char *s) {
        return loy_hash64_str(s);
}

static int st_find(const strtab_t *t, const char *s) {
        if (!t->hcap)
                return -1;
        for (int i = (int)(st_hash(s) & (uint64_t)(t->hcap - 1)); t->h[i];
             i = (i + 1) & (t->hcap - 1))
                if (!strcmp(t->s[t->h[i] - 1], s))
                        return t->h[i] - 1;
        return -1;
}

static int st_intern(strtab_t *t, const char *s) {
        int id = st_find(t, s), i;

        if (id >= 0)
                return id;
        if (t->n * 2 >= t->hcap) {
                int ncap = t->hcap ? t->hcap * 2 : 1024;
                int *nh = calloc(ncap, sizeof(*nh));
                char **ns = realloc(t->s, (ncap / 2) * sizeof(*ns));
                if (!nh || !ns) {
                        free(nh);
                        if (ns)
                                t->s = ns;
                        return -1;
                }
                t->s = ns;
                free(t->h);
                t->h = nh;
                t->hcap = ncap;
                for (int k = 0; k < t->n; k++) {
                        i = (int)(st_hash(t->s[k]) & (uint64_t)(ncap - 1));
                        while (t->h[i])
                                i = (i + 1) & (ncap - 1);
                        t->h[i] = k + 1;
                }
        }
        t->s[t->n] = strdup(s);
        if (!t->s[t->n])
                return -1;
        i = (int)(st_hash(s) & (uint64_t)(t->hcap - 1));
        while (t->h[i])
                i = (i + 1) & (t->hcap - 1);
        t->h[i] = t->n + 1;
        return t->n++;
}

static void st_free(strtab_t *t) {
        for (int i = 0; i < t->n; i++)
                free(t->s[i]);
        free(t->s);
        free(t->h);
        memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------ */

typedef struct cnt {
        int item;
        int count;
        int64_t last;
} cnt_t;

typedef struct cust {
        cnt_t *c;
        int n, cap;
        int trained; /* bought before the split */
} cust_t;

typedef struct metric {
        double hr, recall, ndcg;
        int64_t cases;
} metric_t;

enum { M_POP, M_REPEAT, M_RECO_MAX = 8 };

typedef struct variant {
        const char *name;
        loy_reco_conf_t conf;
        loy_reco_t *r;
        loy_reco_hist_t *hist; /* per customer */
        metric_t m;
} variant_t;

typedef struct eval {
        strtab_t items, custs;
        cust_t *cust;
        int cust_cap;
        int64_t *pop; /* invoices holding the item */
        int pop_cap;
        variant_t v[M_RECO_MAX];
        int nv;
        metric_t base[2];
        int topn;
} eval_t;

static int grow_int64(int64_t **a, int *cap, int need) {
        int ncap = *cap ? *cap : 1024;
        int64_t *na;
        if (need <= *cap)
                return 0;
        while (ncap < need)
                ncap *= 2;
        na = realloc(*a, ncap * sizeof(*na));
        if (!na)
                return -1;
        memset(na + *cap, 0, (ncap - *cap) * sizeof(*na));
        *a = na;
        *cap = ncap;
        return 0;
}

static int ensure_cust(eval_t *e, int id) {
        int ncap = e->cust_cap ? e->cust_cap : 1024;
        cust_t *nc;

        if (id < e->cust_cap)
                return 0;
        while (ncap <= id)
                ncap *= 2;
        nc = realloc(e->cust, ncap * sizeof(*nc));
        if (!nc)
                return -1;
        memset(nc + e->cust_cap, 0, (ncap - e->cust_cap) * sizeof(*nc));
        e->cust = nc;
        for (int k = 0; k < e->nv; k++) {
                loy_reco_hist_t *nh = realloc(e->v[k].hist, ncap * sizeof(*nh));
                if (!nh)
                        return -1;
                memset(nh + e->cust_cap, 0, (ncap - e->cust_cap) * sizeof(*nh));
                e->v[k].hist = nh;
        }
        e->cust_cap = ncap;
        return 0;
}

static int cust_count(cust_t *c, int item, int64_t ts) {
        for (int i = 0; i < c->n; i++)
                if (c->c[i].item == item) {
                        c->c[i].count++;
                        c->c[i].last = ts;
                        return 0;
                }
        if (c->n == c->cap) {
                int ncap = c->cap ? c->cap * 2 : 16;
                cnt_t *nc = realloc(c->c, ncap * sizeof(*nc));
                if (!nc)
                        return -1;
                c->c = nc;
                c->cap = ncap;
        }
        c->c[c->n].item = item;
        c->c[c->n].count = 1;
        c->c[c->n++].last = ts;
        return 0;
}

/* Distinct products of a purchase, as evaluation item ids. */
static int basket(eval_t *e, const loy_reco_t *r, const loy_event_t *ev,
                  int *out) {
        int n = 0;
        for (int i = 0; i < ev->nlines; i++) {
                int id, j;
                if (ev->lines[i].quantity <= 0 ||
                    !loy_reco_is_product(r, ev->lines[i].sku))
                        continue;
                id = st_intern(&e->items, ev->lines[i].sku);
                if (id < 0)
                        return -1;
                for (j = 0; j < n && out[j] != id; j++)
                        ;
                if (j == n)
                        out[n++] = id;
        }
        return n;
}

static void score_list(metric_t *m, const int *rec, int nrec, const int *truth,
                       int ntruth, int topn) {
        double dcg = 0, idcg = 0;
        int hits = 0;

        for (int i = 0; i < nrec && i < topn; i++)
                for (int j = 0; j < ntruth; j++)
                        if (rec[i] == truth[j]) {
                                hits++;
                                dcg += 1.0 / log2(i + 2.0);
                                break;
                        }
        for (int i = 0; i < ntruth && i < topn; i++)
                idcg += 1.0 / log2(i + 2.0);
        m->hr += hits > 0;
        m->recall += (double)hits / ntruth;
        m->ndcg += dcg / idcg;
        m->cases++;
}

/* Top n items of the global popularity (count, then id: file order). */
static int pop_top(const eval_t *e, int *out, int n, const int *skip, int nskip,
                   int k) {
        while (k < n) {
                int best = -1;
                for (int i = 0; i < e->items.n; i++) {
                        int used = 0;
                        if (!e->pop[i])
                                continue;
                        if (best >= 0 && e->pop[i] <= e->pop[best])
                                continue;
                        for (int j = 0; j < k && !used; j++)
                                used = out[j] == i;
                        for (int j = 0; j < nskip && !used; j++)
                                used = skip[j] == i;
                        if (!used)
                                best = i;
                }
                if (best < 0)
                        break;
                out[k++] = best;
        }
        return k;
}

static int cnt_better(const cnt_t *a, const cnt_t *b) {
        if (a->count != b->count)
                return a->count > b->count;
        if (a->last != b->last)
                return a->last > b->last;
        return a->item < b->item;
}

static int repeat_top(const eval_t *e, const cust_t *c, int *out, int n) {
        cnt_t top[LOY_RECO_N_MAX];
        int k = 0, j;

        for (int i = 0; i < c->n; i++) {
                if (k == n && !cnt_better(&c->c[i], &top[n - 1]))
                        continue;
                j = k < n ? k++ : n - 1;
                for (; j > 0 && cnt_better(&c->c[i], &top[j - 1]); j--)
                        top[j] = top[j - 1];
                top[j] = c->c[i];
        }
        for (j = 0; j < k; j++)
                out[j] = top[j].item;
        return pop_top(e, out, n, NULL, 0, k);
}

static void score_case(eval_t *e, int cid, const loy_event_t *ev,
                       const int *truth, int ntruth) {
        int rec[LOY_RECO_N_MAX], nrec;
        loy_reco_rec_t rr[LOY_RECO_N_MAX];

        nrec = pop_top(e, rec, e->topn, NULL, 0, 0);
        score_list(&e->base[M_POP], rec, nrec, truth, ntruth, e->topn);
        nrec = repeat_top(e, &e->cust[cid], rec, e->topn);
        score_list(&e->base[M_REPEAT], rec, nrec, truth, ntruth, e->topn);
        for (int k = 0; k < e->nv; k++) {
                variant_t *v = &e->v[k];
                int n = loy_reco_recommend(v->r, &v->hist[cid], ev->ts_ms, rr,
                                           e->topn);
                for (int i = 0; i < n; i++)
                        rec[i] = st_find(&e->items, rr[i].sku);
                score_list(&v->m, rec, n, truth, ntruth, e->topn);
        }
}

/* One pass over the file; progressive: keep learning after the split. */
static int eval_pass(eval_t *e, loy_source_t *src, int64_t split, int64_t until,
                     int progressive, int64_t *customers) {
        loy_event_t ev = {0};
        int *truth = malloc(LOY_LINES_MAX * sizeof(*truth)), rc = 0, got;

        if (!truth)
                return -1;
        loy_source_rewind(src);
        while ((got = loy_source_next(src, &ev)) != 0) {
                int cid, nt, test;
                if (got < 0 || ev.kind != LOY_EV_PURCHASE)
                        continue;
                if (ev.ts_ms >= until)
                        break;
                if (ev.ts_ms >= split && !progressive) {
                        /* frozen: score only */
                        cid = st_find(&e->custs, ev.customer_id);
                        if (cid < 0 || !e->cust[cid].trained)
                                continue;
                        nt = basket(e, e->v[0].r, &ev, truth);
                        if (nt > 0)
                                score_case(e, cid, &ev, truth, nt);
                        continue;
                }
                cid = st_intern(&e->custs, ev.customer_id);
                if (cid < 0 || ensure_cust(e, cid)) {
                        rc = -1;
                        break;
                }
                nt = basket(e, e->v[0].r, &ev, truth);
                if (nt < 0 || grow_int64(&e->pop, &e->pop_cap, e->items.n)) {
                        rc = -1;
                        break;
                }
                test = ev.ts_ms >= split && e->cust[cid].trained;
                if (test && nt > 0)
                        score_case(e, cid, &ev, truth, nt);
                for (int i = 0; i < nt; i++) {
                        e->pop[truth[i]]++;
                        if (cust_count(&e->cust[cid], truth[i], ev.ts_ms))
                                rc = -1;
                }
                if (ev.ts_ms < split && nt > 0 && !e->cust[cid].trained) {
                        e->cust[cid].trained = 1;
                        (*customers)++;
                }
                for (int k = 0; k < e->nv; k++)
                        if (loy_reco_observe(e->v[k].r, &e->v[k].hist[cid],
                                             &ev))
                                rc = -1;
        }
        loy_event_free(&ev);
        free(truth);
        return rc;
}

static void eval_reset(eval_t *e) {
        for (int i = 0; i < e->cust_cap; i++)
                free(e->cust[i].c);
        free(e->cust);
        e->cust = NULL;
        e->cust_cap = 0;
        free(e->pop);
        e->pop = NULL;
        e->pop_cap = 0;
        st_free(&e->items);
        st_free(&e->custs);
        for (int k = 0; k < e->nv; k++) {
                loy_reco_destroy(e->v[k].r);
                free(e->v[k].hist);
                e->v[k].r = NULL;
                e->v[k].hist = NULL;
                memset(&e->v[k].m, 0, sizeof(e->v[k].m));
        }
        memset(e->base, 0, sizeof(e->base));
}

static void print_metric(const char *method, const char *mode,
                         const metric_t *m, int topn) {
        double n = m->cases ? (double)m->cases : 1;
        printf("| %-28s | %-11s | %6.4f | %6.4f | %6.4f |\n", method, mode,
               m->hr / n, m->recall / n, m->ndcg / n);
        (void)topn;
}

void ctl_reco_eval_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl reco-eval [options]\n"
                "  --data PATH          Online Retail file (default %s)\n"
                "  --split YYYY-MM-DD   train before this day (2011-11-01)\n"
                "  --until YYYY-MM-DD   test only before this day (none):\n"
                "                       tune on --split 2011-10-01 --until\n"
                "                       2011-11-01, report on the default\n"
                "  -n N                 list length (10)\n"
                "  -X KEY=VALUE         a model setting of the [reco] section\n"
                "                       (docs/configuration.md), e.g. -X\n"
                "                       max_basket=50; repeatable. Defaults:\n"
                "                       the daemon's\n"
                "  --mode static|progressive|both (both)\n",
                DEFAULT_DATA);
}

/* -X KEY=VALUE: one row of loy_reco_conf_map. 0, or -1 said on stderr. */
static int set_reco_key(loy_reco_conf_t *conf, const char *arg) {
        char key[64], why[200];
        const char *eq = strchr(arg, '=');
        const loy_confmap_t *row;
        if (!eq || (size_t)(eq - arg) >= sizeof(key)) {
                fprintf(stderr, "reco-eval: -X %s: expected KEY=VALUE\n", arg);
                return -1;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
        row = loy_confmap_find(loy_reco_conf_map, key);
        if (!row) {
                fprintf(stderr,
                        "reco-eval: -X %s: no such [reco] model setting "
                        "(docs/configuration.md)\n",
                        key);
                return -1;
        }
        if (loy_confmap_set(row, conf, eq + 1, why, sizeof(why))) {
                fprintf(stderr, "reco-eval: -X %s: %s\n", key, why);
                return -1;
        }
        return 0;
}

static int64_t parse_day(const char *s) {
        int y, m, d;
        struct tm tm = {0};
        if (sscanf(s, "%d-%d-%d", &y, &m, &d) != 3)
                return -1;
        tm.tm_year = y - 1900;
        tm.tm_mon = m - 1;
        tm.tm_mday = d;
        return (int64_t)timegm(&tm) * 1000;
}

int ctl_reco_eval_main(int argc, char **argv) {
        static const struct option lo[] = {
            {"data", 1, 0, 'd'},  {"split", 1, 0, 's'}, {"mode", 1, 0, 'm'},
            {"until", 1, 0, 'u'}, {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
        const char *data = DEFAULT_DATA, *mode = "both";
        int64_t split = SPLIT_MS, until = INT64_MAX, customers;
        loy_reco_conf_t base;
        loy_source_t *src;
        char err[512];
        eval_t e;
        int opt, rc = 0;

        memset(&e, 0, sizeof(e));
        e.topn = 10;
        loy_reco_conf_default(&base);
        /* the whole data set fits, as it would in a daemon given room */
        base.mem_limit = 256u << 20;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "n:X:h", lo, NULL)) != -1) {
                switch (opt) {
                case 'd':
                        data = optarg;
                        break;
                case 's':
                        split = parse_day(optarg);
                        if (split < 0) {
                                ctl_reco_eval_usage(stderr);
                                return 2;
                        }
                        break;
                case 'u':
                        until = parse_day(optarg);
                        if (until < 0) {
                                ctl_reco_eval_usage(stderr);
                                return 2;
                        }
                        break;
                case 'n':
                        e.topn = atoi(optarg);
                        break;
                case 'X':
                        if (set_reco_key(&base, optarg))
                                return 2;
                        break;
                case 'm':
                        mode = optarg;
                        break;
                case 'h':
                        ctl_reco_eval_usage(stdout);
                        return 0;
                default:
                        ctl_reco_eval_usage(stderr);
                        return 2;
                }
        }
        if (e.topn < 1 || e.topn > LOY_RECO_N_MAX ||
            (strcmp(mode, "both") && strcmp(mode, "static") &&
             strcmp(mode, "progressive"))) {
                ctl_reco_eval_usage(stderr);
                return 2;
        }
        /* the default blend, then what each of its parts is worth */
        e.v[0].name = "reco (default blend)";
        e.v[0].conf = base;
        e.v[1].name = "reco, no popularity term";
        e.v[1].conf = base;
        e.v[1].conf.pop_weight = 0;
        e.v[2].name = "reco, neighbours only";
        e.v[2].conf = base;
        e.v[2].conf.pop_weight = 0;
        e.v[2].conf.repeat_weight = 0;
        e.v[3].name = "reco, exclude bought";
        e.v[3].conf = base;
        e.v[3].conf.include_bought = 0;
        e.v[4].name = "reco, no decay";
        e.v[4].conf = base;
        e.v[4].conf.half_life_days = 0;
        e.v[4].conf.hist_half_life_days = 0;
        e.nv = 5;

        src = loy_source_open(data, LOY_SRC_ONLINE_RETAIL, err, sizeof(err));
        if (!src) {
                fprintf(stderr, "reco-eval: %s\n", err);
                return 1;
        }
        printf("# reco-eval: %s, train before %s, top %d\n", data,
               split == SPLIT_MS ? "2011-11-01" : "--split", e.topn);
        printf("# non-products excluded: %s; returns ignored\n\n",
               base.exclude);
        printf("| %-28s | %-11s | HR@%-3d | Rec@%-2d | NDCG@%-1d |\n", "method",
               "variant", e.topn, e.topn, e.topn);
        printf("|------------------------------|-------------|--------|"
               "--------|--------|\n");
        for (int prog = 0; prog < 2 && !rc; prog++) {
                const char *mname = prog ? "progressive" : "static";
                if (strcmp(mode, "both") && strcmp(mode, mname))
                        continue;
                for (int k = 0; k < e.nv; k++) {
                        e.v[k].r =
                            loy_reco_create(&e.v[k].conf, err, sizeof(err));
                        if (!e.v[k].r) {
                                fprintf(stderr, "reco-eval: %s\n", err);
                                rc = 1;
                        }
                }
                customers = 0;
                if (!rc && eval_pass(&e, src, split, until, prog, &customers)) {
                        fprintf(stderr, "reco-eval: out of memory\n");
                        rc = 1;
                }
                if (!rc) {
                        print_metric("popularity", mname, &e.base[M_POP],
                                     e.topn);
                        print_metric("repeat-buy", mname, &e.base[M_REPEAT],
                                     e.topn);
                        for (int k = 0; k < e.nv; k++)
                                print_metric(e.v[k].name, mname, &e.v[k].m,
                                             e.topn);
                        fflush(stdout);
                        fprintf(stderr,
                                "# %s: %" PRId64 " test invoices, %" PRId64
                                " training customers\n",
                                mname, e.base[M_POP].cases, customers);
                }
                eval_reset(&e);
        }
        loy_source_close(src);
        return rc;
}

/* ------------------------------------------------------------------------
 * Benchmark
 * ------------------------------------------------------------------------ */

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* kB of a /proc/self/status line (VmRSS, VmHWM). */
static long proc_kb(const char *key) {
        char line[256];
        long v = -1;
        size_t kl = strlen(key);
        FILE *f = fopen("/proc/self/status", "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (!strncmp(line, key, kl) && line[kl] == ':')
                        v = atol(line + kl + 1);
        fclose(f);
        return v;
}

/* The file as compact arrays: customer index and sku index per line. */
typedef struct bench_data {
        loy_event_t *ev;
        int nev;
        int ncust;
        int *cust;
        int64_t lines;
} bench_data_t;

static int load_events(loy_source_t *src, bench_data_t *d, strtab_t *custs) {
        const loy_source_stats_t *st = loy_source_stats(src);
        loy_event_t ev = {0};
        int got;

        d->ev = calloc(st->events, sizeof(*d->ev));
        d->cust = calloc(st->events, sizeof(*d->cust));
        if (!d->ev || !d->cust)
                return -1;
        loy_source_rewind(src);
        while ((got = loy_source_next(src, &ev)) != 0) {
                loy_event_t *e = &d->ev[d->nev];
                if (got < 0)
                        continue;
                *e = ev;
                e->lines = malloc(ev.nlines * sizeof(*e->lines) + 1);
                if (!e->lines)
                        return -1;
                memcpy(e->lines, ev.lines, ev.nlines * sizeof(*e->lines));
                e->lines_cap = ev.nlines;
                d->cust[d->nev] = st_intern(custs, ev.customer_id);
                if (d->cust[d->nev] < 0)
                        return -1;
                d->lines += ev.nlines;
                d->nev++;
        }
        d->ncust = custs->n;
        loy_event_free(&ev);
        return 0;
}

/* One run over the file. views: every line is replayed as a view in a
 * session per invoice instead of a purchase. score: top-10 after each
 * event. Returns events/s (purchases or views). */
static double bench_run(const bench_data_t *d, const loy_reco_conf_t *conf,
                        int views, int score, int64_t *nevents) {
        loy_reco_hist_t *h = calloc(d->ncust, sizeof(*h));
        loy_reco_rec_t out[10];
        loy_reco_t *r;
        loy_event_t v;
        char err[256];
        double t0, t1;
        int64_t n = 0;
        volatile int sink = 0;

        r = loy_reco_create(conf, err, sizeof(err));
        if (!r || !h) {
                fprintf(stderr, "reco-bench: %s\n", r ? "out of memory" : err);
                loy_reco_destroy(r);
                free(h);
                return -1;
        }
        memset(&v, 0, sizeof(v));
        v.kind = LOY_EV_BROWSE;
        v.action = LOY_ACT_VIEW;
        t0 = now_s();
        for (int i = 0; i < d->nev; i++) {
                const loy_event_t *e = &d->ev[i];
                loy_reco_hist_t *hc = &h[d->cust[i]];
                if (!views) {
                        loy_reco_observe(r, hc, e);
                        if (score)
                                sink += loy_reco_recommend(r, hc, e->ts_ms, out,
                                                           10);
                        n++;
                        continue;
                }
                memcpy(v.session_id, e->order_id, sizeof(v.session_id));
                v.ts_ms = e->ts_ms;
                for (int j = 0; j < e->nlines; j++) {
                        memcpy(v.sku, e->lines[j].sku, sizeof(v.sku));
                        loy_reco_observe(r, hc, &v);
                        if (score)
                                sink +=
                                    loy_reco_recommend(r, hc, v.ts_ms, out, 10);
                        n++;
                }
        }
        t1 = now_s();
        (void)sink;
        loy_reco_destroy(r);
        free(h);
        *nevents = n;
        return n / (t1 - t0);
}

/* A million distinct items in synthetic baskets, in a child process.
 * Prints one table row. */
static int bench_memory(size_t limit, int64_t items, int basket,
                        int track_pending) {
        loy_reco_conf_t conf;
        loy_reco_stats_t st;
        loy_reco_t *r;
        char err[256], skus[64][24];
        const char *sp[64];
        long rss0, rss1, hwm;
        uint64_t x = 88172645463325252ULL;
        int64_t ts = 1291161600000LL, nb = 0, i, failed = 0;
        double t0, t1;

        loy_reco_conf_default(&conf);
        conf.mem_limit = limit;
        conf.track_pending = track_pending;
        if (basket > 64)
                basket = 64;
        rss0 = proc_kb("VmRSS");
        r = loy_reco_create(&conf, err, sizeof(err));
        if (!r) {
                fprintf(stderr, "reco-bench: %s\n", err);
                return 1;
        }
        t0 = now_s();
        /* basket b: item b (so every one of the `items` appears) and
         * basket-1 items drawn log-uniformly (Zipf s=1) from all of them;
         * a minute apart */
        for (i = 0; i < items; i++, nb++) {
                for (int j = 0; j < basket; j++) {
                        uint64_t id;
                        if (!j) {
                                id = (uint64_t)i;
                        } else {
                                double u;
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                u = (x >> 11) * (1.0 / 9007199254740992.0);
                                id = (uint64_t)exp(u * log((double)items));
                                if (id >= (uint64_t)items)
                                        id = items - 1;
                        }
                        snprintf(skus[j], sizeof(skus[j]), "SYN%08" PRIu64, id);
                        sp[j] = skus[j];
                }
                if (loy_reco_learn_basket(r, sp, NULL, basket, ts, 1.0))
                        failed++;
                ts += 60000;
                /* the processor flushes once a batch (1000 events) */
                if (track_pending && nb % 1000 == 999)
                        loy_reco_pending_clear(r);
        }
        t1 = now_s();
        loy_reco_stats(r, &st);
        rss1 = proc_kb("VmRSS");
        hwm = proc_kb("VmHWM");
        printf("| %6zu MiB | %8" PRId64 " | %7.1f MiB | %7.1f MiB | %7.1f "
               "MiB | %7.1f MiB | %8" PRId64 " | %9" PRId64 " | %8" PRId64
               " | %6" PRId64 " | %7.0f |\n",
               limit >> 20, items, st.bytes / 1048576.0,
               st.bytes_peak / 1048576.0, (rss1 - rss0) / 1024.0, hwm / 1024.0,
               st.items, st.pairs, st.items_evicted, failed, nb / (t1 - t0));
        fflush(stdout);
        loy_reco_destroy(r);
        return st.bytes_peak <= limit ? 0 : 3;
}

static int bench_memory_child(size_t limit, int64_t items, int basket,
                              int pend) {
        int status;
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -1;
        if (!pid)
                _exit(bench_memory(limit, items, basket, pend));
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

void ctl_reco_bench_usage(FILE *fp) {
        fprintf(fp,
                "usage: loyaltyctl reco-bench [options]\n"
                "  --data PATH        Online Retail file (default %s)\n"
                "  --runs N           runs per figure, median (5)\n"
                "  --items N          synthetic distinct items (1000000)\n"
                "  --basket N         synthetic basket size (8)\n"
                "  --mem-limit MIB    model limit, repeatable (64 and 256)\n"
                "  --no-speed | --no-memory\n",
                DEFAULT_DATA);
}

int ctl_reco_bench_main(int argc, char **argv) {
        static const struct option lo[] = {{"data", 1, 0, 'd'},
                                           {"runs", 1, 0, 'r'},
                                           {"items", 1, 0, 'i'},
                                           {"basket", 1, 0, 'b'},
                                           {"mem-limit", 1, 0, 'l'},
                                           {"no-speed", 0, 0, 'S'},
                                           {"no-memory", 0, 0, 'M'},
                                           {"help", 0, 0, 'h'},
                                           {0, 0, 0, 0}};
        const char *data = DEFAULT_DATA;
        int runs = 5, basket = 8, speed = 1, memory = 1, nlim = 0, opt;
        int64_t items = 1000000;
        size_t limits[8];
        int rc = 0;

        optind = 1;
        while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
                switch (opt) {
                case 'd':
                        data = optarg;
                        break;
                case 'r':
                        runs = atoi(optarg);
                        break;
                case 'i':
                        items = atoll(optarg);
                        break;
                case 'b':
                        basket = atoi(optarg);
                        break;
                case 'l':
                        if (nlim < 8)
                                limits[nlim++] = (size_t)atol(optarg) << 20;
                        break;
                case 'S':
                        speed = 0;
                        break;
                case 'M':
                        memory = 0;
                        break;
                case 'h':
                        ctl_reco_bench_usage(stdout);
                        return 0;
                default:
                        ctl_reco_bench_usage(stderr);
                        return 2;
                }
        }
        if (runs < 1 || runs > 99 || items < 1 || basket < 2) {
                ctl_reco_bench_usage(stderr);
                return 2;
        }
        if (!nlim) {
                limits[nlim++] = 64u << 20;
                limits[nlim++] = 256u << 20;
        }
        if (memory) {
                printf("# memory: %" PRId64 " distinct synthetic items, "
                       "baskets of %d (one new item + Zipf draws)\n",
                       items, basket);
                printf("| limit      | items    | model now   | model peak  |"
                       " RSS delta   | VmHWM       | alive    | pairs     |"
                       " evicted  | failed | baskets/s |\n|---|---|---|---|"
                       "---|---|---|---|---|---|---|\n");
                for (int i = 0; i < nlim; i++) {
                        int c = bench_memory_child(limits[i], items, basket, 1);
                        if (c) {
                                fprintf(stderr,
                                        "reco-bench: memory run %s"
                                        "\n",
                                        c == 3 ? "exceeded the limit"
                                               : "failed");
                                rc = 1;
                        }
                }
                printf("\n");
        }
        if (speed) {
                static const struct {
                        const char *what;
                        int views, score, reco;
                } cases[] = {
                    {"purchases: iterate only (recommender off)", 0, 0, 0},
                    {"purchases: learn", 0, 0, 1},
                    {"purchases: learn + top-10", 0, 1, 1},
                    {"views: learn", 1, 0, 1},
                    {"views: learn + top-10", 1, 1, 1},
                };
                loy_reco_conf_t conf;
                loy_source_t *src;
                bench_data_t d = {0};
                strtab_t custs = {0};
                char err[512];

                loy_reco_conf_default(&conf);
                src = loy_source_open(data, LOY_SRC_ONLINE_RETAIL, err,
                                      sizeof(err));
                if (!src) {
                        fprintf(stderr, "reco-bench: %s\n", err);
                        return 1;
                }
                if (load_events(src, &d, &custs)) {
                        fprintf(stderr, "reco-bench: out of memory\n");
                        rc = 1;
                        goto out;
                }
                printf("# speed: %s, %d events, %" PRId64 " lines, median "
                       "of %d runs, default config\n",
                       data, d.nev, d.lines, runs);
                printf("| case | events | events/s | lines/s | us/event "
                       "|\n|---|---|---|---|---|\n");
                for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                        double v[99], med;
                        int64_t n = 0;
                        for (int k = 0; k < runs; k++) {
                                if (!cases[c].reco) {
                                        double t0 = now_s(), t1;
                                        volatile int64_t s = 0;
                                        for (int i = 0; i < d.nev; i++)
                                                s += d.ev[i].nlines;
                                        (void)s; /* a sink, only written */
                                        t1 = now_s();
                                        n = d.nev;
                                        v[k] = n / (t1 - t0 + 1e-9);
                                        continue;
                                }
                                v[k] = bench_run(&d, &conf, cases[c].views,
                                                 cases[c].score, &n);
                        }
                        med = median(v, runs);
                        printf("| %s | %" PRId64 " | %.0f | %.0f | %.2f |\n",
                               cases[c].what, n, med,
                               cases[c].views ? med : med * d.lines / d.nev,
                               1e6 / med);
                }
        out:
                for (int i = 0; i < d.nev; i++)
                        free(d.ev[i].lines);
                free(d.ev);
                free(d.cust);
                st_free(&custs);
                loy_source_close(src);
        }
        return rc;
}
