/* ctl_model: see ctl_model.h. */
#include "ctl_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loy_date.h"
#include "loy_event.h"
#include "loy_hash.h"
#include "loy_model.h"

#define DAY_MS 86400000LL

double ctl_mono_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int32_t floor_day(int64_t ms) {
        int64_t d = ms / DAY_MS;
        if (ms < 0 && d * DAY_MS != ms)
                d--;
        return (int32_t)d;
}

int ctl_parse_day(const char *s, int32_t *day) {
        int y, m, d, n = 0;
        if (sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || s[n] || m < 1 ||
            m > 12 || d < 1 || d > 31)
                return -1;
        *day = (int32_t)loy_date_to_days(y, m, d);
        return 0;
}

void ctl_format_day(int32_t day, char *buf, size_t size) {
        loy_date_format(day, buf, size);
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */
/* ------------------------------------------------------------------ */

static uint64_t fnv(const char *s) {
        return loy_hash64_str(s);
}

int ctl_data_load(ctl_data_t *d, const char *path, loy_source_format_t fmt,
                  char *errstr, size_t errstr_size) {
        loy_source_t *src;
        loy_event_t ev;
        uint32_t *slot = NULL;
        size_t nslot, ids_cap;
        double t0 = ctl_mono_seconds();
        int rc;

        memset(d, 0, sizeof(*d));
        src = loy_source_open(path, fmt, errstr, errstr_size);
        if (!src)
                return -1;
        d->stats = *loy_source_stats(src);
        d->format = loy_source_format(src);
        ids_cap = (size_t)d->stats.customers + 1;
        nslot = 16;
        while (nslot < 2 * ids_cap)
                nslot *= 2;
        slot = malloc(nslot * sizeof(*slot));
        d->ids = calloc(ids_cap, sizeof(*d->ids));
        d->tx = malloc(((size_t)d->stats.events + 1) * sizeof(*d->tx));
        if (!slot || !d->ids || !d->tx)
                goto nomem;
        memset(slot, 0xff, nslot * sizeof(*slot));
        memset(&ev, 0, sizeof(ev));
        while ((rc = loy_source_next(src, &ev)) != 0) {
                size_t h;
                ctl_tx_t *t;

                if (rc < 0 || d->ntx >= (size_t)d->stats.events)
                        continue;
                h = fnv(ev.customer_id) & (nslot - 1);
                while (slot[h] != UINT32_MAX &&
                       strcmp(d->ids[slot[h]], ev.customer_id))
                        h = (h + 1) & (nslot - 1);
                if (slot[h] == UINT32_MAX) {
                        if (d->ncust >= ids_cap)
                                continue; /* cannot happen: stats count */
                        d->ids[d->ncust] = strdup(ev.customer_id);
                        if (!d->ids[d->ncust]) {
                                loy_event_free(&ev);
                                goto nomem;
                        }
                        slot[h] = (uint32_t)d->ncust++;
                }
                t = &d->tx[d->ntx++];
                t->cust = slot[h];
                t->day = floor_day(ev.ts_ms);
                t->t_days = (double)ev.ts_ms / (double)DAY_MS;
                t->value = loy_event_net_value(&ev);
        }
        loy_event_free(&ev);
        loy_source_close(src);
        free(slot);
        d->read_seconds = ctl_mono_seconds() - t0;
        return 0;
nomem:
        loy_source_close(src);
        free(slot);
        ctl_data_free(d);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
}

void ctl_data_free(ctl_data_t *d) {
        if (d->ids)
                for (size_t i = 0; i < d->ncust; i++)
                        free(d->ids[i]);
        free(d->ids);
        free(d->tx);
        memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------------------ */
/* Summaries                                                            */
/* ------------------------------------------------------------------ */

size_t ctl_data_summarise(const ctl_data_t *d, int32_t cutoff,
                          int32_t holdout_days, int merge, ctl_sum_t *s) {
        /* per customer: first and last transaction time (days), the last
         * holdout day counted */
        double *first = malloc((d->ncust + 1) * sizeof(double));
        double *last = malloc((d->ncust + 1) * sizeof(double));
        int32_t *hday = malloc((d->ncust + 1) * sizeof(int32_t));
        size_t cohort = 0;

        memset(s, 0, d->ncust * sizeof(*s));
        if (!first || !last || !hday) {
                free(first);
                free(last);
                free(hday);
                return 0;
        }
        for (size_t i = 0; i < d->ncust; i++) {
                first[i] = last[i] = -1;
                hday[i] = INT32_MIN;
        }
        for (size_t k = 0; k < d->ntx; k++) {
                const ctl_tx_t *t = &d->tx[k];
                ctl_sum_t *c = &s[t->cust];
                double tm = merge ? (double)t->day : t->t_days;

                if (t->day > cutoff) {
                        if (t->day > cutoff + holdout_days || !c->in_cohort)
                                continue;
                        c->hold_value += t->value;
                        if (t->value < 0)
                                continue;
                        if (!merge || t->day != hday[t->cust])
                                c->hold_n++;
                        hday[t->cust] = t->day;
                        continue;
                }
                if (t->value < 0) {
                        /* a return before the first purchase has nothing
                         * to reverse in this window */
                        if (c->in_cohort)
                                c->returned += -t->value;
                        continue;
                }
                /* a free order (value 0) is still a transaction: CDNOW
                 * has eight customers whose first CD cost $0 */
                if (!c->in_cohort) {
                        c->in_cohort = 1;
                        first[t->cust] = last[t->cust] = tm;
                        c->first_value = t->value;
                        c->gross = t->value;
                        cohort++;
                        continue;
                }
                c->gross += t->value;
                if (merge && tm == last[t->cust]) {
                        if (tm == first[t->cust])
                                c->first_value += t->value;
                        continue;
                }
                c->x++;
                last[t->cust] = tm;
        }
        for (size_t i = 0; i < d->ncust; i++) {
                ctl_sum_t *c = &s[i];
                if (!c->in_cohort)
                        continue;
                c->t_x = last[i] - first[i];
                c->T = (double)cutoff - first[i];
                if (!merge)
                        c->T += 1; /* to the end of the cutoff day */
                if (c->T < c->t_x)
                        c->T = c->t_x;
        }
        free(first);
        free(last);
        free(hday);
        return cohort;
}

size_t ctl_fit_rows(const ctl_sum_t *s, size_t n, double unit_days,
                    loy_fit_cust_t *fc, size_t *idx) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (!s[i].in_cohort)
                        continue;
                fc[k].x = s[i].x;
                fc[k].t_x = s[i].t_x / unit_days;
                fc[k].T = s[i].T / unit_days;
                fc[k].mean_value = loy_model_net_mean_value(
                    s[i].gross, s[i].first_value, s[i].returned, s[i].x);
                fc[k].monetary = s[i].gross - s[i].returned;
                if (idx)
                        idx[k] = i;
                k++;
        }
        return k;
}
