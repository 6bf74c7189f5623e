/*
 * loy_source: readers of real transaction files, turned into purchase events
 * in event-time order (loyaltyctl replay, the demo, benchmarks, the fitter).
 *
 * loy_source_open() reads the whole file (gzip or plain: zlib's gzopen reads
 * both) into compact tables -- interned strings and one small record per
 * line -- sorts the events by time and closes the file. loy_source_next()
 * then hands them out one by one (the full Online Retail file: ~0.5 s of
 * CPU, most of it inflating, and ~23 MB peak RSS). Malformed rows never fail
 * the open: they are skipped and counted in the stats.
 *
 * Formats (see data/README.md):
 *
 * LOY_SRC_ONLINE_RETAIL  UCI Online Retail CSV (RFC 4180 quoting), header
 *   InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,
 *   CustomerID,Country (the header may reorder columns; the Online Retail II
 *   names Invoice, Price and "Customer ID" are accepted too). One invoice =
 *   one event: event_id "or-<InvoiceNo>", order_id <InvoiceNo>, customer_id
 *   CustomerID without the ".0", ts = the invoice's earliest InvoiceDate
 *   taken as UTC, currency "GBP", channel = Country, one line per row (sku =
 *   StockCode, category "" -- the file has no category and the first word
 *   of Description is mostly a colour --, quantity, unit_price as written;
 *   non-product codes such as POST, M, D, C2, BANK CHARGES stay). Invoices
 *   starting with 'C' are returns (their quantities are already negative).
 *   Rows without a CustomerID are skipped. Rows with a negative UnitPrice are
 *   kept as they are: the engine's validator dead-letters them.
 *   Rows are grouped by InvoiceNo wherever they are in the file.
 *
 * LOY_SRC_CDNOW_MASTER   "customer_id YYYYMMDD cds dollars" per line.
 * LOY_SRC_CDNOW_SAMPLE   "master_id sample_id YYYYMMDD cds dollars".
 *   One event per row: customer_id as written (leading zeros kept, so the
 *   master and the sample agree), event_id = order_id =
 *   "cd-<customer>-<YYYYMMDD>-<line number in the file>", ts = the date at
 *   00:00 UTC, currency "USD", channel "", one line sku "cd" with quantity
 *   = cds and unit_price = dollars / cds. A row with 0 cds (or negative
 *   dollars) is skipped as bad.
 *
 * LOY_SRC_GENERIC        CSV "customer_id,timestamp,amount", header optional;
 *   timestamp is an integer in ms or a date as below (UTC). One
 *   event per row: event_id = order_id = "gen-<line number>", one line sku
 *   "item", quantity 1, unit_price = amount; a negative amount is a return
 *   (quantity -1, unit_price = -amount). Currency and channel are "".
 *
 * LOY_SRC_AUTO           decided from the first line: a comma-separated line
 *   of 8 fields (or an InvoiceNo header) is Online Retail, other CSV is
 *   generic; whitespace-separated lines of 4 / 5 tokens are CDNOW master /
 *   sample.
 *
 * Dates: "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" (or 'T', optional 'Z'),
 * or the spreadsheet export "M/D/YYYY H:MM[:SS]", all taken as UTC.
 *
 * Headers: Online Retail's column-name row and the generic format's
 * optional "customer_id,timestamp,amount" row (its amount is not a number)
 * are recognised on the first line; in CDNOW files any line whose first
 * token does not start with a digit is a header. Headers and blank lines
 * are not rows. Lines end in LF or CRLF; a UTF-8 byte order mark is skipped.
 *
 * Events with equal timestamps keep their order of first appearance in the
 * file. An invoice of more than LOY_LINES_MAX lines cannot be one
 * loy_event_t: it is dropped and its rows count as skipped_bad. Every row
 * ends up in exactly one of lines, skipped_no_customer, skipped_bad.
 *
 * Online Retail as it is (loy_source_stats, checked by tests/test_source.c):
 * 541,909 rows; 135,080 without a customer (3,710 whole invoices);
 * 22,190 invoices with a customer, 3,654 of them cancellations; 406,829
 * lines; 4,372 customers. Its only negative prices are two "Adjust bad
 * debt" rows without a customer, so they never become events.
 */
#ifndef LOY_SOURCE_H
#define LOY_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "../features/loy_event.h"

typedef enum {
        LOY_SRC_AUTO = 0,
        LOY_SRC_ONLINE_RETAIL,
        LOY_SRC_CDNOW_MASTER,
        LOY_SRC_CDNOW_SAMPLE,
        LOY_SRC_GENERIC,
        LOY_SRC_UNKNOWN = -1, /* loy_source_format_parse() of a bad name */
} loy_source_format_t;

/* Totals over the whole file; all known as soon as the open succeeded. */
typedef struct loy_source_stats {
        int64_t rows;   /* data rows read (no header, no blank) */
        int64_t events; /* purchases + returns */
        int64_t purchases;
        int64_t returns;
        int64_t skipped_no_customer; /* rows without a customer id */
        int64_t skipped_bad;         /* rows that did not parse or fit */
        int64_t lines;               /* purchase lines over all events */
        int64_t first_ts_ms;         /* earliest / latest event time, 0 */
        int64_t last_ts_ms;          /* when there is no event */
        int64_t customers;           /* distinct customer ids in events */
        /* Online Retail: invoices none of whose rows has a customer id */
        int64_t skipped_invoices;
} loy_source_stats_t;

typedef struct loy_source loy_source_t;

/*
 * Reads the file at path (gzip or plain) in format fmt (LOY_SRC_AUTO to
 * detect it). Returns a source to be freed with loy_source_close(), or NULL
 * with the reason in errstr (file missing or unreadable, corrupt gzip data,
 * format not recognised, out of memory).
 */
loy_source_t *loy_source_open(const char *path, loy_source_format_t fmt,
                              char *errstr, size_t errstr_size);

/*
 * Writes the next event in time order into ev: ev is reset first (its line
 * buffer is kept and grown through loy_event_add_line(); the caller still
 * owns ev and frees it with loy_event_free()). Returns 1 when an event was
 * written, 0 at the end, -1 if the event's lines could not be allocated
 * (ev is then incomplete; the source moves on to the next event).
 */
int loy_source_next(loy_source_t *src, loy_event_t *ev);

/* Rewinds to the first event, so a loaded file can be replayed again. */
void loy_source_rewind(loy_source_t *src);

/* The format actually read (the detected one for LOY_SRC_AUTO). */
loy_source_format_t loy_source_format(const loy_source_t *src);

/* Totals; the pointer stays valid until loy_source_close(). */
const loy_source_stats_t *loy_source_stats(const loy_source_t *src);

/* "auto", "online_retail", "cdnow_master", "cdnow_sample", "generic";
 * "unknown" for a value out of range. */
const char *loy_source_format_name(loy_source_format_t f);

/* The inverse of loy_source_format_name(); LOY_SRC_UNKNOWN for any other
 * name. */
loy_source_format_t loy_source_format_parse(const char *name);

/* Frees the source; NULL is accepted. */
void loy_source_close(loy_source_t *src);

#endif
