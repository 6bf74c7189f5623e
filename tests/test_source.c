/*
 * loy_source: readers of the real transaction files.
 *
 * Expected values were worked out independently of the reader (Python's csv
 * module and awk over the same files); see the comments at each block.
 */
#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "loy_source.h"
#include "tu.h"

static loy_source_t *open_src(const char *rel, loy_source_format_t fmt) {
        char err[256] = "";
        loy_source_t *s =
            loy_source_open(tu_src_path(rel), fmt, err, sizeof(err));
        if (!s)
                fprintf(stderr, "open %s: %s\n", rel, err);
        return s;
}

typedef struct want_stats {
        int64_t rows, events, purchases, returns, no_customer, bad, lines;
        int64_t first_ts, last_ts, customers, skipped_invoices;
} want_stats_t;

static void check_stats(const loy_source_t *s, const want_stats_t *w) {
        const loy_source_stats_t *st = loy_source_stats(s);
        CU_ASSERT_EQUAL(st->rows, w->rows);
        CU_ASSERT_EQUAL(st->events, w->events);
        CU_ASSERT_EQUAL(st->purchases, w->purchases);
        CU_ASSERT_EQUAL(st->returns, w->returns);
        CU_ASSERT_EQUAL(st->skipped_no_customer, w->no_customer);
        CU_ASSERT_EQUAL(st->skipped_bad, w->bad);
        CU_ASSERT_EQUAL(st->lines, w->lines);
        CU_ASSERT_EQUAL(st->first_ts_ms, w->first_ts);
        CU_ASSERT_EQUAL(st->last_ts_ms, w->last_ts);
        CU_ASSERT_EQUAL(st->customers, w->customers);
        CU_ASSERT_EQUAL(st->skipped_invoices, w->skipped_invoices);
        /* every row ends up somewhere */
        CU_ASSERT_EQUAL(st->rows,
                        st->lines + st->skipped_no_customer + st->skipped_bad);
}

static void check_line(const loy_event_t *ev, int i, const char *sku,
                       int32_t qty, double price) {
        CU_ASSERT_FATAL(i < ev->nlines);
        CU_ASSERT_STRING_EQUAL(ev->lines[i].sku, sku);
        CU_ASSERT_STRING_EQUAL(ev->lines[i].category, "");
        CU_ASSERT_EQUAL(ev->lines[i].quantity, qty);
        CU_ASSERT_DOUBLE_EQUAL(ev->lines[i].unit_price, price, 1e-9);
}

static void check_event(const loy_event_t *ev, const char *event_id,
                        const char *order_id, const char *cust, int64_t ts,
                        const char *currency, const char *channel, int nlines) {
        CU_ASSERT_EQUAL(ev->kind, LOY_EV_PURCHASE);
        CU_ASSERT_STRING_EQUAL(ev->event_id, event_id);
        CU_ASSERT_STRING_EQUAL(ev->order_id, order_id);
        CU_ASSERT_STRING_EQUAL(ev->customer_id, cust);
        CU_ASSERT_EQUAL(ev->ts_ms, ts);
        CU_ASSERT_STRING_EQUAL(ev->currency, currency);
        CU_ASSERT_STRING_EQUAL(ev->channel, channel);
        CU_ASSERT_EQUAL(ev->nlines, nlines);
}

/* Writes content to a fresh temp file; path in buf. */
static int write_tmp(char *buf, size_t size, const void *data, size_t len) {
        int fd;
        snprintf(buf, size, "/tmp/loy_test_source_XXXXXX");
        fd = mkstemp(buf);
        if (fd < 0)
                return -1;
        if (write(fd, data, len) != (ssize_t)len) {
                close(fd);
                unlink(buf);
                return -1;
        }
        close(fd);
        return 0;
}

/* ------------------------------------------------------------------------ */

static void test_format_names(void) {
        CU_ASSERT_EQUAL(loy_source_format_parse("online_retail"),
                        LOY_SRC_ONLINE_RETAIL);
        CU_ASSERT_EQUAL(loy_source_format_parse("cdnow_master"),
                        LOY_SRC_CDNOW_MASTER);
        CU_ASSERT_EQUAL(loy_source_format_parse("cdnow_sample"),
                        LOY_SRC_CDNOW_SAMPLE);
        CU_ASSERT_EQUAL(loy_source_format_parse("generic"), LOY_SRC_GENERIC);
        CU_ASSERT_EQUAL(loy_source_format_parse("auto"), LOY_SRC_AUTO);
        CU_ASSERT_EQUAL(loy_source_format_parse("csv"), LOY_SRC_UNKNOWN);
        CU_ASSERT_EQUAL(loy_source_format_parse(NULL), LOY_SRC_UNKNOWN);
        for (int f = LOY_SRC_AUTO; f <= LOY_SRC_GENERIC; f++)
                CU_ASSERT_EQUAL(loy_source_format_parse(loy_source_format_name(
                                    (loy_source_format_t)f)),
                                f);
        CU_ASSERT_STRING_EQUAL(loy_source_format_name(LOY_SRC_UNKNOWN),
                               "unknown");
}

/* First 300 lines of online_retail.csv.gz (header + 299 rows, all with a
 * customer): 34 invoices, 3 of them cancellations, 24 customers. */
static const want_stats_t or_head300 = {
    .rows = 299,
    .events = 34,
    .purchases = 31,
    .returns = 3,
    .no_customer = 0,
    .bad = 0,
    .lines = 299,
    .first_ts = 1291191960000LL, /* 2010-12-01 08:26:00 */
    .last_ts = 1291200720000LL,  /* 2010-12-01 10:52:00 */
    .customers = 24,
    .skipped_invoices = 0,
};

static void check_or_head300(const char *rel) {
        loy_source_t *s = open_src(rel, LOY_SRC_AUTO);
        loy_event_t ev = {0};
        int n = 0;
        int64_t prev = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_source_format(s), LOY_SRC_ONLINE_RETAIL);
        check_stats(s, &or_head300);
        while (loy_source_next(s, &ev) == 1) {
                CU_ASSERT(ev.ts_ms >= prev);
                prev = ev.ts_ms;
                switch (n) {
                case 0:
                        check_event(&ev, "or-536365", "536365", "17850",
                                    1291191960000LL, "GBP", "United Kingdom",
                                    7);
                        check_line(&ev, 0, "85123A", 6, 2.55);
                        check_line(&ev, 6, "21730", 6, 4.25);
                        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev), 139.12,
                                               1e-6);
                        break;
                case 5:
                        check_event(&ev, "or-536370", "536370", "12583",
                                    1291193100000LL, "GBP", "France", 20);
                        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev), 855.86,
                                               1e-6);
                        break;
                /* 536380, 536381, C536379 share 09:41:00: file order */
                case 14:
                        CU_ASSERT_STRING_EQUAL(ev.event_id, "or-536380");
                        break;
                case 15:
                        /* holds "AIRLINE LOUNGE,METAL SIGN" */
                        check_event(&ev, "or-536381", "536381", "15311",
                                    1291196460000LL, "GBP", "United Kingdom",
                                    35);
                        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev), 449.98,
                                               1e-6);
                        break;
                case 16:
                        check_event(&ev, "or-C536379", "C536379", "14527",
                                    1291196460000LL, "GBP", "United Kingdom",
                                    1);
                        check_line(&ev, 0, "D", -1, 27.5);
                        break;
                case 26:
                        check_event(&ev, "or-C536391", "C536391", "17548",
                                    1291199040000LL, "GBP", "United Kingdom",
                                    7);
                        check_line(&ev, 0, "22556", -12, 1.65);
                        check_line(&ev, 6, "22553", -24, 1.65);
                        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev),
                                               -141.48, 1e-6);
                        break;
                case 33:
                        check_event(&ev, "or-536398", "536398", "13448",
                                    1291200720000LL, "GBP", "United Kingdom",
                                    1);
                        break;
                }
                n++;
        }
        CU_ASSERT_EQUAL(n, 34);
        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);
        loy_event_free(&ev);
        loy_source_close(s);
}

static void test_or_head300_plain(void) {
        check_or_head300("tests/data/online_retail_head300.csv");
}

static void test_or_head300_gz(void) {
        check_or_head300("tests/data/online_retail_head300.csv.gz");
}

/* The gzip and the plain copy give the very same events, field by field. */
static void test_or_gz_equals_plain(void) {
        loy_source_t *a = open_src("tests/data/online_retail_head300.csv",
                                   LOY_SRC_ONLINE_RETAIL);
        loy_source_t *b = open_src("tests/data/online_retail_head300.csv.gz",
                                   LOY_SRC_ONLINE_RETAIL);
        loy_event_t x = {0}, y = {0};
        int n = 0, ra, rb;

        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        for (;;) {
                ra = loy_source_next(a, &x);
                rb = loy_source_next(b, &y);
                CU_ASSERT_EQUAL(ra, rb);
                if (ra != 1 || rb != 1)
                        break;
                n++;
                CU_ASSERT_STRING_EQUAL(x.event_id, y.event_id);
                CU_ASSERT_STRING_EQUAL(x.customer_id, y.customer_id);
                CU_ASSERT_EQUAL(x.ts_ms, y.ts_ms);
                CU_ASSERT_FATAL(x.nlines == y.nlines);
                for (int i = 0; i < x.nlines; i++) {
                        CU_ASSERT_STRING_EQUAL(x.lines[i].sku, y.lines[i].sku);
                        CU_ASSERT_EQUAL(x.lines[i].quantity,
                                        y.lines[i].quantity);
                        CU_ASSERT_EQUAL(x.lines[i].unit_price,
                                        y.lines[i].unit_price);
                }
        }
        CU_ASSERT_EQUAL(n, 34);
        loy_event_free(&x);
        loy_event_free(&y);
        loy_source_close(a);
        loy_source_close(b);
}

/* Hand-made rows (tests/data/online_retail_edge.csv): quoted descriptions
 * with commas and "" escapes, an invoice whose rows are not contiguous and
 * span two minutes, an invoice earlier in time than the rows before it, a
 * cancellation, two guest rows of one invoice, a bad-debt adjustment with a
 * negative price, a description holding a newline, three malformed rows
 * (quantity "x", an unquoted comma, 30 February) and a last row without a
 * trailing newline. */
static void test_or_edge(void) {
        static const want_stats_t w = {
            .rows = 13,
            .events = 6,
            .purchases = 5,
            .returns = 1,
            .no_customer = 2,
            .bad = 3,
            .lines = 8,
            .first_ts = 1298937599000LL, /* 2011-02-28 23:59:59 */
            .last_ts = 1299196800000LL,  /* 2011-03-04 00:00:00 */
            .customers = 5,
            .skipped_invoices = 1,
        };
        loy_source_t *s =
            open_src("tests/data/online_retail_edge.csv", LOY_SRC_AUTO);
        loy_event_t ev = {0};
        char err[256];

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        check_stats(s, &w);

        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-600001", "600001", "17850", 1298937599000LL, "GBP",
                    "EIRE", 1);
        check_line(&ev, 0, "21212", 24, 0.55);

        /* grouped across the file; earliest minute; lines in file order */
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-600002", "600002", "12345", 1298973600000LL, "GBP",
                    "United Kingdom", 3);
        check_line(&ev, 0, "85123A", 2, 2.55);
        check_line(&ev, 1, "22633", 3, 1.85);
        check_line(&ev, 2, "84879", 8, 1.69);
        CU_ASSERT_EQUAL(loy_event_validate(&ev, 0, err, sizeof(err)), 0);

        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-C600004", "C600004", "12345", 1299052800000LL,
                    "GBP", "United Kingdom", 1);
        check_line(&ev, 0, "85123A", -1, 2.55);
        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev), -2.55, 1e-9);
        CU_ASSERT_EQUAL(loy_event_validate(&ev, 0, err, sizeof(err)), 0);

        /* kept as written: the engine's validator dead-letters it */
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-A600005", "A600005", "99999", 1299153600000LL,
                    "GBP", "United Kingdom", 1);
        check_line(&ev, 0, "B", 1, -11062.06);
        CU_ASSERT_EQUAL(loy_event_validate(&ev, 0, err, sizeof(err)), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "unit_price"));

        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-600006", "600006", "12346", 1299157200000LL, "GBP",
                    "France", 1);
        check_line(&ev, 0, "22222", 1, 1.0);

        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-600010", "600010", "12347", 1299196800000LL, "GBP",
                    "Spain", 1);
        check_line(&ev, 0, "22226", 1, 3.5);

        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);
        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);

        /* a second pass gives the same first event */
        loy_source_rewind(s);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        CU_ASSERT_STRING_EQUAL(ev.event_id, "or-600001");
        loy_event_free(&ev);
        loy_source_close(s);
}

/* Real lines 78085-78128 of online_retail.csv: invoice 542806 is
 * interrupted by the cancellation C542805 (the one non-contiguous invoice in
 * the file) and both share 11:19; 542806 has 39 rows in all. The reused
 * event must not keep the 39 lines when the 2-line one follows. */
static void test_or_interleaved(void) {
        static const want_stats_t w = {
            .rows = 44,
            .events = 4,
            .purchases = 2,
            .returns = 2,
            .no_customer = 0,
            .bad = 0,
            .lines = 44,
            .first_ts = 1296558720000LL, /* 2011-02-01 11:12:00 */
            .last_ts = 1296559140000LL,  /* 2011-02-01 11:19:00 */
            .customers = 2,
            .skipped_invoices = 0,
        };
        loy_source_t *s = open_src("tests/data/online_retail_interleaved.csv",
                                   LOY_SRC_ONLINE_RETAIL);
        loy_event_t ev = {0};

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        check_stats(s, &w);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-C542799", "C542799", "14606", 1296558720000LL,
                    "GBP", "United Kingdom", 1);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-542800", "542800", "14606", 1296558960000LL, "GBP",
                    "United Kingdom", 2);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-542806", "542806", "12836", 1296559140000LL, "GBP",
                    "United Kingdom", 39);
        check_line(&ev, 0, "48194", 1, 7.95);
        check_line(&ev, 3, "48188", 2, 7.95);
        check_line(&ev, 4, "22692", 2, 7.95); /* after C542805's rows */
        check_line(&ev, 38, "21755", 10, 5.95);
        CU_ASSERT_DOUBLE_EQUAL(loy_event_net_value(&ev), 846.69, 1e-6);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-C542805", "C542805", "14606", 1296559140000LL,
                    "GBP", "United Kingdom", 2);
        check_line(&ev, 0, "22156", -1, 0.85);
        check_line(&ev, 1, "85054", -1, 2.95);
        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* First 100 lines of cdnow_sample.txt (CRLF, no header); awk: 35
 * customers, last date 19980620 on line 25, dollars sum 3405.31. */
static void test_cdnow_sample(void) {
        static const want_stats_t w = {
            .rows = 100,
            .events = 100,
            .purchases = 100,
            .returns = 0,
            .no_customer = 0,
            .bad = 0,
            .lines = 100,
            .first_ts = 852076800000LL, /* 1997-01-01 */
            .last_ts = 898300800000LL,  /* 1998-06-20 */
            .customers = 35,
            .skipped_invoices = 0,
        };
        loy_source_t *s =
            open_src("tests/data/cdnow_sample_head100.txt", LOY_SRC_AUTO);
        loy_event_t ev = {0};
        double sum = 0;
        int n = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_source_format(s), LOY_SRC_CDNOW_SAMPLE);
        check_stats(s, &w);
        while (loy_source_next(s, &ev) == 1) {
                sum += loy_event_net_value(&ev);
                if (n == 0) {
                        /* line 1: " 00004 0001 19970101  2   29.33" */
                        check_event(&ev, "cd-00004-19970101-1",
                                    "cd-00004-19970101-1", "00004",
                                    852076800000LL, "USD", "", 1);
                        check_line(&ev, 0, "cd", 2, 29.33 / 2);
                }
                if (n == 1) {
                        /* line 5: " 00021 0002 19970101  3   63.34" */
                        CU_ASSERT_STRING_EQUAL(ev.event_id,
                                               "cd-00021-19970101-5");
                        check_line(&ev, 0, "cd", 3, 63.34 / 3);
                }
                n++;
        }
        CU_ASSERT_EQUAL(n, 100);
        /* line 25: " 00111 0006 19980620  3   55.47" */
        check_event(&ev, "cd-00111-19980620-25", "cd-00111-19980620-25",
                    "00111", 898300800000LL, "USD", "", 1);
        check_line(&ev, 0, "cd", 3, 55.47 / 3);
        CU_ASSERT_DOUBLE_EQUAL(sum, 3405.31, 1e-6);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* Header + first 100 rows of cdnow_master.txt.gz, gzipped; awk: 32
 * customers, last date 19980608 on lines 40 and 73 (file order breaks the
 * tie), dollars sum 3987.82. */
static void test_cdnow_master(void) {
        static const want_stats_t w = {
            .rows = 100,
            .events = 100,
            .purchases = 100,
            .returns = 0,
            .no_customer = 0,
            .bad = 0,
            .lines = 100,
            .first_ts = 852076800000LL, /* 1997-01-01 */
            .last_ts = 897264000000LL,  /* 1998-06-08 */
            .customers = 32,
            .skipped_invoices = 0,
        };
        loy_source_t *s = open_src("tests/data/cdnow_master_head100.txt.gz",
                                   LOY_SRC_CDNOW_MASTER);
        loy_event_t ev = {0};
        char prev_id[LOY_ID_MAX + 1] = "";
        double sum = 0;
        int n = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        check_stats(s, &w);
        while (loy_source_next(s, &ev) == 1) {
                sum += loy_event_net_value(&ev);
                if (n == 0) {
                        /* line 2: " 00001 19970101  1   11.77" */
                        check_event(&ev, "cd-00001-19970101-2",
                                    "cd-00001-19970101-2", "00001",
                                    852076800000LL, "USD", "", 1);
                        check_line(&ev, 0, "cd", 1, 11.77);
                }
                snprintf(prev_id, sizeof(prev_id), "%s", ev.event_id);
                n++;
        }
        CU_ASSERT_EQUAL(n, 100);
        CU_ASSERT_STRING_EQUAL(prev_id, "cd-00025-19980608-73");
        check_line(&ev, 0, "cd", 2, 24.98 / 2);
        CU_ASSERT_DOUBLE_EQUAL(sum, 3987.82, 1e-6);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* Hand-made: header, 0 cds (bad), a good row, 30 February (bad), a row
 * missing its dollars (bad), a blank line, a good row. */
static void test_cdnow_edge(void) {
        static const want_stats_t w = {
            .rows = 5,
            .events = 2,
            .purchases = 2,
            .returns = 0,
            .no_customer = 0,
            .bad = 3,
            .lines = 2,
            .first_ts = 857606400000LL, /* 1997-03-06 */
            .last_ts = 883526400000LL,  /* 1997-12-31 */
            .customers = 2,
            .skipped_invoices = 0,
        };
        loy_source_t *s =
            open_src("tests/data/cdnow_master_edge.txt", LOY_SRC_AUTO);
        loy_event_t ev = {0};

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_source_format(s), LOY_SRC_CDNOW_MASTER);
        check_stats(s, &w);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "cd-00007-19970306-3", "cd-00007-19970306-3", "00007",
                    857606400000LL, "USD", "", 1);
        check_line(&ev, 0, "cd", 3, 10.0);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "cd-00010-19971231-7", "cd-00010-19971231-7", "00010",
                    883526400000LL, "USD", "", 1);
        check_line(&ev, 0, "cd", 4, 2.5);
        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* tests/data/generic.csv (CRLF, header): ms and date timestamps, a
 * negative amount, a row without a customer, an unreadable time, an
 * unreadable amount and a blank line. Three events share 2011-01-01 00:00
 * UTC and keep their file order (lines 3, 4, 9). */
static void test_generic(void) {
        static const want_stats_t w = {
            .rows = 7,
            .events = 4,
            .purchases = 3,
            .returns = 1,
            .no_customer = 1,
            .bad = 2,
            .lines = 4,
            .first_ts = 1293840000000LL, /* 2011-01-01 00:00:00 */
            .last_ts = 1293937445000LL,  /* 2011-01-02 03:04:05 */
            .customers = 2,
            .skipped_invoices = 0,
        };
        loy_source_t *s = open_src("tests/data/generic.csv", LOY_SRC_AUTO);
        loy_event_t ev = {0};

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_source_format(s), LOY_SRC_GENERIC);
        check_stats(s, &w);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "gen-3", "gen-3", "bob", 1293840000000LL, "", "", 1);
        check_line(&ev, 0, "item", 1, 7.0);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "gen-4", "gen-4", "alice", 1293840000000LL, "", "", 1);
        check_line(&ev, 0, "item", -1, 2.5);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "gen-9", "gen-9", "bob", 1293840000000LL, "", "", 1);
        check_line(&ev, 0, "item", 1, 4.25);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "gen-2", "gen-2", "alice", 1293937445000LL, "", "", 1);
        check_line(&ev, 0, "item", 1, 12.5);
        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* A file read as the wrong explicit format loads, but every row is bad.
 * As CDNOW, the 11 lines of online_retail_edge.csv that start with a digit
 * are rows (the others look like headers) and none splits into 4 numbers. */
static void test_wrong_format(void) {
        loy_source_t *s =
            open_src("tests/data/online_retail_edge.csv", LOY_SRC_CDNOW_MASTER);
        const loy_source_stats_t *st;

        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        st = loy_source_stats(s);
        CU_ASSERT_EQUAL(st->events, 0);
        CU_ASSERT_EQUAL(st->first_ts_ms, 0);
        CU_ASSERT_EQUAL(st->rows, 11);
        CU_ASSERT_EQUAL(st->skipped_bad, 11);
        loy_source_close(s);

        /* as generic CSV the 8-field header is not the optional 3-column
         * one, so it is a (bad) row too; the quoted newline keeps 600006
         * one record: 14 rows */
        s = open_src("tests/data/online_retail_edge.csv", LOY_SRC_GENERIC);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        st = loy_source_stats(s);
        CU_ASSERT_EQUAL(st->events, 0);
        CU_ASSERT_EQUAL(st->rows, 14);
        CU_ASSERT_EQUAL(st->skipped_bad, 14);
        loy_source_close(s);
}

static void test_open_errors(void) {
        char err[256], path[64];
        loy_source_t *s;
        FILE *f;
        unsigned char gz[8192];
        size_t n;

        err[0] = '\0';
        s = loy_source_open("/nonexistent/x.csv.gz", LOY_SRC_AUTO, err,
                            sizeof(err));
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/x.csv.gz"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));

        s = loy_source_open(tu_src_path("tests/data/generic.csv"),
                            (loy_source_format_t)17, err, sizeof(err));
        CU_ASSERT_PTR_NULL(s);

        /* empty file: nothing to detect from; named, it is just empty */
        CU_ASSERT_EQUAL_FATAL(write_tmp(path, sizeof(path), "", 0), 0);
        err[0] = '\0';
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot tell the format"));
        s = loy_source_open(path, LOY_SRC_GENERIC, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_source_stats(s)->rows, 0);
        CU_ASSERT_EQUAL(loy_source_stats(s)->events, 0);
        loy_source_close(s);
        unlink(path);

        CU_ASSERT_EQUAL_FATAL(write_tmp(path, sizeof(path), "hello\n", 6), 0);
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        CU_ASSERT_PTR_NULL(s);
        unlink(path);

        /* a gzip file cut short is an error, not a short file */
        f = fopen(tu_src_path("tests/data/online_retail_head300.csv.gz"), "rb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        n = fread(gz, 1, sizeof(gz), f);
        fclose(f);
        CU_ASSERT_FATAL(n > 3000);
        CU_ASSERT_EQUAL_FATAL(write_tmp(path, sizeof(path), gz, 3000), 0);
        err[0] = '\0';
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "read error"));
        loy_source_close(s);
        unlink(path);
}

/* Online Retail II spells three columns differently, and a header may put
 * the columns in any order; the spreadsheet export writes "M/D/YYYY H:MM".
 * A header without a needed column is an error. */
static void test_or_header_variants(void) {
        static const char ii[] =
            "Customer ID,Country,Invoice,StockCode,Description,"
            "Quantity,InvoiceDate,Price\n"
            "13085.0,United Kingdom,489434,85048,\"15CM, LIGHTS\",12,"
            "12/1/2009 7:45,6.95\n"
            "13085.0,United Kingdom,489434,79323P,PINK LIGHTS,12,"
            "2009-12-01 07:45:00,6.75\n";
        static const char nocust[] =
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,"
            "UnitPrice,Country\n"
            "536365,85123A,X,6,2010-12-01 08:26:00,2.55,United Kingdom\n";
        char path[64], err[256];
        loy_source_t *s;
        loy_event_t ev = {0};

        CU_ASSERT_EQUAL_FATAL(write_tmp(path, sizeof(path), ii, sizeof(ii) - 1),
                              0);
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        unlink(path);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(loy_source_format(s), LOY_SRC_ONLINE_RETAIL);
        CU_ASSERT_EQUAL(loy_source_stats(s)->rows, 2);
        CU_ASSERT_EQUAL(loy_source_stats(s)->events, 1);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        /* 2009-12-01 07:45:00 UTC */
        check_event(&ev, "or-489434", "489434", "13085", 1259653500000LL, "GBP",
                    "United Kingdom", 2);
        check_line(&ev, 0, "85048", 12, 6.95);
        check_line(&ev, 1, "79323P", 12, 6.75);
        loy_event_free(&ev);
        loy_source_close(s);

        CU_ASSERT_EQUAL_FATAL(
            write_tmp(path, sizeof(path), nocust, sizeof(nocust) - 1), 0);
        err[0] = '\0';
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        unlink(path);
        CU_ASSERT_PTR_NULL(s);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "CustomerID"));
}

/* An unterminated quote must not swallow the rest of the file: the record
 * is dropped after 64 KiB and reading resumes at the next line. Also a
 * file without a header and ms timestamps. */
static void test_runaway_quote(void) {
        const int good = 5000;
        size_t cap = 200000, len = 0;
        char *buf = malloc(cap), path[64], err[256];
        loy_source_t *s;
        loy_event_t ev = {0};
        const loy_source_stats_t *st;

        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        len += (size_t)snprintf(buf + len, cap - len, "x,\"1300000000000,1\n");
        for (int i = 0; i < good; i++)
                len += (size_t)snprintf(buf + len, cap - len, "c%d,%lld,2\n", i,
                                        1300000000000LL - i * 1000LL);
        CU_ASSERT_FATAL(len > 64 * 1024 + 100 && len < cap);
        CU_ASSERT_EQUAL_FATAL(write_tmp(path, sizeof(path), buf, len), 0);
        free(buf);
        s = loy_source_open(path, LOY_SRC_GENERIC, err, sizeof(err));
        unlink(path);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        st = loy_source_stats(s);
        CU_ASSERT_EQUAL(st->rows, good + 1);
        CU_ASSERT_EQUAL(st->skipped_bad, 1);
        CU_ASSERT_EQUAL(st->events, good);
        CU_ASSERT_EQUAL(st->customers, good);
        CU_ASSERT_EQUAL(st->first_ts_ms, 1300000000000LL - (good - 1) * 1000LL);
        /* the last row of the file is the earliest event */
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        CU_ASSERT_STRING_EQUAL(ev.customer_id, "c4999");
        CU_ASSERT_STRING_EQUAL(ev.event_id, "gen-5001");
        check_line(&ev, 0, "item", 1, 2.0);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* An invoice of LOY_LINES_MAX + 1 rows cannot be one event: dropped and
 * counted; one of exactly LOY_LINES_MAX rows still is one. */
static void test_oversized_invoice(void) {
        size_t cap = 64 * (2 * LOY_LINES_MAX + 4), len = 0;
        char *buf = malloc(cap), path[64], err[256];
        loy_source_t *s;
        loy_event_t ev = {0};
        const loy_source_stats_t *st;

        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        for (int i = 0; i < LOY_LINES_MAX + 1; i++)
                len += (size_t)snprintf(buf + len, cap - len,
                                        "1,S%d,D,1,2011-01-01 10:00:00,1.5,"
                                        "7.0,UK\n",
                                        i);
        for (int i = 0; i < LOY_LINES_MAX; i++)
                len += (size_t)snprintf(buf + len, cap - len,
                                        "2,S%d,D,2,2011-01-02 10:00:00,1.5,"
                                        "8.0,UK\n",
                                        i);
        CU_ASSERT_FATAL(len < cap);
        CU_ASSERT_EQUAL_FATAL(write_tmp(path, sizeof(path), buf, len), 0);
        free(buf);
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        unlink(path);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        st = loy_source_stats(s);
        CU_ASSERT_EQUAL(st->rows, 2 * LOY_LINES_MAX + 1);
        CU_ASSERT_EQUAL(st->skipped_bad, LOY_LINES_MAX + 1);
        CU_ASSERT_EQUAL(st->events, 1);
        CU_ASSERT_EQUAL(st->customers, 1);
        CU_ASSERT_EQUAL_FATAL(loy_source_next(s, &ev), 1);
        check_event(&ev, "or-2", "2", "8", 1293962400000LL, "GBP", "UK",
                    LOY_LINES_MAX);
        check_line(&ev, LOY_LINES_MAX - 1, "S4095", 2, 1.5);
        CU_ASSERT_EQUAL(loy_source_next(s, &ev), 0);
        loy_event_free(&ev);
        loy_source_close(s);
}

/* The whole UCI file. Totals counted independently with Python's csv
 * module: 541,909 rows; 135,080 without a CustomerID (3,710 invoices have
 * no customer at all); 406,829 rows in 22,190 invoices with a customer,
 * 3,654 of them cancellations; 4,372 customers; net 8,300,065.81; the two
 * negative-price rows ("Adjust bad debt", A563186/A563187) have no
 * customer. */
static void test_full_online_retail(void) {
        static const want_stats_t w = {
            .rows = 541909,
            .events = 22190,
            .purchases = 18536,
            .returns = 3654,
            .no_customer = 135080,
            .bad = 0,
            .lines = 406829,
            .first_ts = 1291191960000LL, /* 2010-12-01 08:26:00 */
            .last_ts = 1323435000000LL,  /* 2011-12-09 12:50:00 */
            .customers = 4372,
            .skipped_invoices = 3710,
        };
        const char *path = tu_src_path("../shared/data/online_retail.csv.gz");
        loy_source_t *s;
        loy_event_t ev = {0};
        int64_t prev = 0, n = 0, returns = 0, unordered = 0, neg_price = 0;
        double net = 0;
        char err[256];

        if (access(path, R_OK) != 0) {
                CU_PASS("online_retail.csv.gz not present: skipped");
                return;
        }
        s = loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        check_stats(s, &w);
        while (loy_source_next(s, &ev) == 1) {
                if (ev.ts_ms < prev)
                        unordered++;
                prev = ev.ts_ms;
                net += loy_event_net_value(&ev);
                returns += ev.order_id[0] == 'C';
                for (int i = 0; i < ev.nlines; i++)
                        neg_price += ev.lines[i].unit_price < 0;
                if (!strcmp(ev.event_id, "or-536591")) {
                        /* rows at 16:57 and 16:58: the invoice starts at
                         * its first minute */
                        CU_ASSERT_EQUAL(ev.ts_ms, 1291222620000LL);
                        CU_ASSERT_EQUAL(ev.nlines, 40);
                }
                if (!strcmp(ev.event_id, "or-542806")) {
                        CU_ASSERT_EQUAL(n, 2966);
                        CU_ASSERT_EQUAL(ev.nlines, 39);
                }
                n++;
        }
        CU_ASSERT_EQUAL(n, 22190);
        CU_ASSERT_EQUAL(returns, 3654);
        CU_ASSERT_EQUAL(unordered, 0);
        CU_ASSERT_EQUAL(neg_price, 0);
        CU_ASSERT(fabs(net - 8300065.81) < 0.01);
        check_event(&ev, "or-581587", "581587", "12680", 1323435000000LL, "GBP",
                    "France", 15);
        loy_event_free(&ev);
        loy_source_close(s);
}

int main(void) {
        CU_pSuite s;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return CU_get_error();
        s = CU_add_suite("source", NULL, NULL);
        if (!s || !CU_add_test(s, "format names", test_format_names) ||
            !CU_add_test(s, "online retail head300 plain",
                         test_or_head300_plain) ||
            !CU_add_test(s, "online retail head300 gz", test_or_head300_gz) ||
            !CU_add_test(s, "gz equals plain", test_or_gz_equals_plain) ||
            !CU_add_test(s, "online retail edge rows", test_or_edge) ||
            !CU_add_test(s, "online retail interleaved invoice",
                         test_or_interleaved) ||
            !CU_add_test(s, "cdnow sample", test_cdnow_sample) ||
            !CU_add_test(s, "cdnow master gz", test_cdnow_master) ||
            !CU_add_test(s, "cdnow edge rows", test_cdnow_edge) ||
            !CU_add_test(s, "generic csv", test_generic) ||
            !CU_add_test(s, "wrong explicit format", test_wrong_format) ||
            !CU_add_test(s, "open errors", test_open_errors) ||
            !CU_add_test(s, "online retail header variants",
                         test_or_header_variants) ||
            !CU_add_test(s, "runaway quote", test_runaway_quote) ||
            !CU_add_test(s, "oversized invoice", test_oversized_invoice) ||
            !CU_add_test(s, "full online retail file",
                         test_full_online_retail)) {
                CU_cleanup_registry();
                return CU_get_error();
        }
        return tu_cunit_run();
}
