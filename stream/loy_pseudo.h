/*
 * loy_pseudo: keyed pseudonyms for customer ids (docs/privacy.md). With
 * [privacy] pseudonymize = yes every customer id is replaced, as its event
 * is decoded, by HMAC-SHA256(key, id): the first 16 bytes as 32 lowercase
 * hex digits. The same id and key always give the same pseudonym, so
 * state, ranks and triggers work as before; without the key nobody can
 * tell which id it was, and a shop can compute the pseudonyms of its own
 * ids (loyaltyctl pseudonym) to match triggers to customers.
 */
#ifndef LOY_PSEUDO_H
#define LOY_PSEUDO_H

#include <stddef.h>

#define LOY_PSEUDO_LEN 32 /* hex digits of a pseudonym */

typedef struct loy_pseudo loy_pseudo_t;

/* From the key (copied; len >= 16 bytes, or errstr). NULL with errstr.
 * Free with loy_pseudo_destroy() (the key is wiped). */
loy_pseudo_t *loy_pseudo_create(const void *key, size_t len, char *errstr,
                                size_t errstr_size);
void loy_pseudo_destroy(loy_pseudo_t *p);

/* From conf's [privacy] (the key file read here): NULL with *errstr
 * empty when pseudonymize is off, NULL with errstr on an error. */
struct loy_config;
loy_pseudo_t *loy_pseudo_from_config(const struct loy_config *conf,
                                     char *errstr, size_t errstr_size);

/* The pseudonym of id into out (LOY_PSEUDO_LEN + 1 bytes). 0, or -1 when
 * the digest fails (out of memory in OpenSSL). */
int loy_pseudo_of(const loy_pseudo_t *p, const char *id,
                  char out[LOY_PSEUDO_LEN + 1]);

#endif
