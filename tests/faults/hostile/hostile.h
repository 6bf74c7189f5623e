/*
 * hostile: a seeded corpus of bad input mixed with good events, for both
 * input topics. The same seed gives the same corpus, byte for byte.
 *
 * Every message carries the verdict the suite expects:
 *   HX_GOOD   a valid event of a known test customer: must be applied;
 *   HX_BAD    invalid by construction (the class says how): must be
 *             dead-lettered exactly once, with a reason;
 *   HX_AMBIG  a random mutation (bit flips, garbage after a zero byte) that
 *             may or may not still be a valid event; the suite asks
 *             loy_codec_decode (the decoder under test, as an oracle) and
 *             then holds loyaltyd to "applied xor dead-lettered".
 */
#ifndef LOY_HOSTILE_H
#define LOY_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

enum { HX_GOOD = 0, HX_BAD = 1, HX_AMBIG = 2 };

typedef struct hx_msg {
        int topic; /* 0 purchases, 1 browse */
        char *key; /* NULL: no key */
        size_t klen;
        void *val; /* NULL: tombstone */
        size_t len;
        int verdict;
        const char *cls; /* class name, e.g. "truncated-avro" */
        int cust;        /* HX_GOOD: index of the test customer */
        int action;      /* HX_GOOD browse: loy_browse_action_t */
        /* filled by the producer's delivery report */
        int32_t partition;
        int64_t offset;
        int delivered;
} hx_msg_t;

#define HX_CUSTOMERS 40

typedef struct hx_corpus {
        hx_msg_t *m;
        int n, cap;
        int good, bad, ambig;
        /* expected per test customer "hx-good-<i>" */
        int purchases[HX_CUSTOMERS];
        int browse[HX_CUSTOMERS][5];
} hx_corpus_t;

/* Builds the corpus: ngood good events, nbad bad or ambiguous messages
 * (every class at least once when nbad allows), plus one message of each
 * size in big[] (bytes, 0-terminated list). 0 or -1. */
int hx_generate(hx_corpus_t *c, uint64_t seed, int ngood, int nbad,
                const size_t *big);
void hx_free(hx_corpus_t *c);
/* Customer id of test customer i (static buffer). */
const char *hx_customer(int i);

#endif
