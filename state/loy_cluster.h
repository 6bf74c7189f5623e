/*
 * loy_cluster: slot-aware routing to a Redis Cluster (docs/cluster.md).
 * First piece: the hash slot of a key.
 */
#ifndef LOY_CLUSTER_H
#define LOY_CLUSTER_H

#include <stddef.h>

#define LOY_CLUSTER_SLOTS 16384

/* The Redis Cluster hash slot of a key: CRC16 (XMODEM) mod 16384 of the
 * key, or of the part between the first '{' and the first '}' after it
 * when that part is not empty. key may hold any bytes. */
unsigned loy_cluster_slot(const char *key, size_t len);

#endif
