/*
 * loy_hash: the one non-cryptographic hash of the engine, 64-bit FNV-1a.
 *
 * Its values are kept: event keys in customer hashes, holdout groups,
 * trigger ids. Changing it changes them, so every table and id uses this
 * one (tests/test_rules.c checks the published FNV-1a test vectors).
 */
#ifndef LOY_HASH_H
#define LOY_HASH_H

#include <stddef.h>
#include <stdint.h>

#define LOY_HASH_OFFSET 0xcbf29ce484222325ULL /* FNV-1a offset basis */

/* FNV-1a of len bytes at data, from the offset basis xor seed. */
uint64_t loy_hash64(const void *data, size_t len, uint64_t seed);

/* Goes on hashing len more bytes into h (a value of loy_hash64 or of
 * this), so parts hash as one string without being joined. */
uint64_t loy_hash64_update(uint64_t h, const void *data, size_t len);

/* loy_hash64(s, strlen(s), 0). */
uint64_t loy_hash64_str(const char *s);

#endif
