/*
 * loy_pack: a customer as one compact binary string, the engine's copy of
 * its state in the hash (fields "e0", "e1" ... of <ns>:c:{<cid>}).
 *
 * Why: a customer written as ~50 readable fields costs Redis a listpack
 * rewrite of every field on each write (measured 20-50 us per HSET) and
 * the engine a parse of every field on each load. The engine reads and
 * writes this one string instead; the hash keeps a readable view of the
 * fields dashboards use (loy_field_t.view), written when they change.
 *
 * The string is cut into chunks of at most LOY_PACK_CHUNK bytes, one hash
 * field each: Redis keeps a hash in its compact listpack encoding only
 * while every value is at most hash-max-listpack-value (64) bytes long, and
 * converts it to a hash table, three times the memory, for one longer
 * value.
 *
 * Layout, all integers little-endian:
 *   byte    format version (LOY_PACK_VERSION)
 *   varint  length of the rest (so a reader knows how many chunks hold
 *           it; chunks after those, left by a longer earlier state, are
 *           ignored)
 *   varint  number of slots, then per slot: varint name length, the name,
 *           zigzag varint value
 *   varint  number of fields, then the stored (not derived) fields of
 *           loy_feat_fields in table order: I64 and INT as zigzag varints,
 *           DBL as the 8 bytes of the IEEE double, STR (recent_views) as a
 *           count and a varint length and bytes per sku, KEYS
 *           (recent_event_keys) as a count and 8 bytes per key.
 * The field table only grows at its end, so a reader that knows fewer
 * fields than a string holds reads those it knows and ignores the rest,
 * and one that knows more leaves the missing ones at their defaults.
 * Doubles are kept bit for bit: a customer reloaded is the customer
 * written, and two runs of the same input write the same bytes.
 *
 * Pure: no I/O.
 */
#ifndef LOY_PACK_H
#define LOY_PACK_H

#include <stddef.h>

#include "loy_feat.h"

#define LOY_PACK_VERSION 1
#define LOY_PACK_CHUNK 64      /* bytes per chunk field, at most */
#define LOY_PACK_CHUNKS_MAX 64 /* chunk fields "e0" .. "e63" */

/* Large enough for any customer (and within LOY_PACK_CHUNKS_MAX). */
#define LOY_PACK_MAX                                                           \
        (16 + LOY_SLOTS_MAX * (LOY_SLOT_NAME_MAX + 16) + 64 * 10 +             \
         LOY_RECENT_VIEWS * (LOY_SKU_MAX + 4) + 4 + LOY_RECENT_EVENTS * 8)

/* Packs c into buf. Returns the length, or -1 when it does not fit. */
int loy_pack_cust(const loy_cust_t *c, unsigned char *buf, size_t size);

/* Unpacks into c, which must be loy_feat_init()'ed with its id. Returns
 * 0, or -1 for a string that is not one (truncated, another version, a
 * value out of range), with c then unspecified. Bytes after the length
 * the string gives are ignored. */
int loy_pack_unpack(loy_cust_t *c, const void *buf, size_t len);

/* The whole string's length as its first bytes (at least the first chunk)
 * say, so a reader that fetched the first chunks knows whether it has it
 * all; -1 when those bytes are not the start of one. */
long loy_pack_length(const void *buf, size_t len);

/* Chunk i's field name ("e<i>"); name must hold 8 bytes. */
void loy_pack_chunk_name(int i, char *name);
/* The chunk number of a field name, or -1 when it is not one. */
int loy_pack_chunk_of(const char *name);

/* Fills c (loy_feat_init()'ed) from a customer hash's n fields as read by
 * HGETALL: from its chunks when it has them (the readable view is ignored
 * then), else field by field (a hash written before the packed state
 * existed, or by hand). Returns 0, or -1 with *bad set to the field at
 * fault. */
int loy_pack_from_hash(loy_cust_t *c, const char *const *fields,
                       const char *const *values, const size_t *lens, size_t n,
                       const char **bad);

#endif
