/* loy_eval: see loy_eval.h. */
#include "loy_eval.h"

#include <math.h>
#include <stdlib.h>

struct item {
        double key;
        size_t idx;
};

static int cmp_asc(const void *pa, const void *pb) {
        const struct item *a = pa, *b = pb;
        if (a->key != b->key)
                return a->key < b->key ? -1 : 1;
        return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_desc(const void *pa, const void *pb) {
        const struct item *a = pa, *b = pb;
        if (a->key != b->key)
                return a->key > b->key ? -1 : 1;
        return a->idx < b->idx ? -1 : a->idx > b->idx;
}

double loy_eval_auc(const double *score, const int *label, size_t n) {
        struct item *it;
        double npos = 0, nneg = 0, rank_sum = 0;
        size_t i = 0;

        for (size_t k = 0; k < n; k++) {
                if (isnan(score[k]))
                        return NAN;
                if (label[k])
                        npos++;
                else
                        nneg++;
        }
        if (npos == 0 || nneg == 0)
                return NAN;
        it = malloc(n * sizeof(*it));
        if (!it)
                return NAN;
        for (size_t k = 0; k < n; k++) {
                it[k].key = score[k];
                it[k].idx = k;
        }
        qsort(it, n, sizeof(*it), cmp_asc);
        /* midranks of tied runs: a tie counts one half */
        while (i < n) {
                size_t j = i;
                double mid;
                while (j + 1 < n && it[j + 1].key == it[i].key)
                        j++;
                mid = ((double)i + (double)j) / 2 + 1;
                for (size_t k = i; k <= j; k++)
                        if (label[it[k].idx])
                                rank_sum += mid;
                i = j + 1;
        }
        free(it);
        return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg);
}

double loy_eval_mae(const double *pred, const double *actual, size_t n) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
                s += fabs(pred[i] - actual[i]);
        return n ? s / (double)n : 0;
}

int loy_eval_rank_groups(const double *key, size_t n, int ngroups, int *group) {
        struct item *it;
        size_t base, extra, pos = 0;

        if (ngroups < 1)
                return -1;
        if (!n)
                return 0;
        it = malloc(n * sizeof(*it));
        if (!it)
                return -1;
        for (size_t k = 0; k < n; k++) {
                it[k].key = key[k];
                it[k].idx = k;
        }
        qsort(it, n, sizeof(*it), cmp_desc);
        base = n / (size_t)ngroups;
        extra = n % (size_t)ngroups;
        for (int g = 0; g < ngroups; g++) {
                size_t size = base + ((size_t)g < extra ? 1 : 0);
                for (size_t k = 0; k < size; k++)
                        group[it[pos++].idx] = g;
        }
        free(it);
        return 0;
}
