/*
 * loy_cluster: slot-aware routing of raw RESP pipelines to a Redis Cluster
 * (hiredis), or to one plain redis-server through the same code path
 * (docs/cluster.md).
 *
 * A router knows the slot map (CLUSTER SLOTS) and keeps one blocking
 * hiredis connection per node, opened on first use. A pipe holds "units":
 * one or more RESP commands that go to one node in order (a lone HSET, a
 * MULTI ... EXEC of one slot, or a mix), with the slot of their keys.
 * Executing a pipe groups the units per node, writes every node's commands
 * before reading any node's replies (the nodes work in parallel), follows
 * MOVED and ASK redirections, and hands back every unit's replies in the
 * order the units were added.
 *
 * What is re-sent, and why it is safe: a node that answers MOVED or ASK
 * (or EXECABORT after a queued command got MOVED/ASK, or MOVED/ASK to EXEC
 * itself) did not execute that command, or that transaction. Only those
 * parts of a unit are re-sent: a lone command that was redirected, or the
 * whole MULTI ... EXEC block that held it. A part that executed is never
 * sent again, so nothing is applied twice. MOVED updates the map (and
 * CLUSTER SLOTS is read again once per round); ASK sends ASKING and the part
 * to the target once, the map unchanged. At most LOY_CLUSTER_MAX_REDIRECTS
 * redirections per part, then the unit fails with LOY_CLUSTER_ERR.
 *
 * Nothing else is retried: TRYAGAIN and CLUSTERDOWN make the unit
 * LOY_CLUSTER_ERR_BUSY (not executed; back off and send it again), a
 * failed connection LOY_CLUSTER_ERR_IO (the unit may or may not have been
 * applied; the connection is dropped and opened again on the next call).
 * Any other error reply (WRONGTYPE, OOM, ...) is the caller's to read.
 *
 * One thread uses a router and its pipes. SIGPIPE from a dead node is
 * blocked and consumed inside the calls (as in loy_store).
 */
#ifndef LOY_CLUSTER_H
#define LOY_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

typedef enum {
        LOY_CLUSTER_OK = 0,
        LOY_CLUSTER_ERR_IO = -1,   /* connection failed or lost */
        LOY_CLUSTER_ERR = -2,      /* bad argument, protocol, redirect loop */
        LOY_CLUSTER_ERR_BUSY = -3, /* TRYAGAIN, CLUSTERDOWN: not now */
        LOY_CLUSTER_ERR_AUTH = -4, /* credentials or database refused */
} loy_cluster_err_t;

#define LOY_CLUSTER_SLOTS 16384
#define LOY_CLUSTER_MAX_REDIRECTS 5

/* The Redis Cluster hash slot of a key: CRC16 (XMODEM) mod 16384 of the
 * key, or of the part between the first '{' and the first '}' after it
 * when that part is not empty. key may hold any bytes. */
unsigned loy_cluster_slot(const char *key, size_t len);

typedef struct loy_cluster loy_cluster_t;

/* A router for seeds "host:port[,host:port...]" (an IPv6 host in [ ]).
 * timeout_ms bounds each connect and each reply wait; 0 means 2000. Reads
 * the slot map from the first seed that answers; a single redis-server
 * (CLUSTER SLOTS: cluster support disabled) gets every slot. A cluster
 * that cannot be reached yet is not an error here: the map is read again
 * before the next pipe is sent. NULL with errstr when the seeds or the
 * timeout are unusable, or out of memory. Free with loy_cluster_destroy(). */
loy_cluster_t *loy_cluster_create(const char *seeds, int timeout_ms,
                                  char *errstr, size_t errstr_size);
/* Closes every connection. Destroy the router's pipes first. NULL ok. */
void loy_cluster_destroy(loy_cluster_t *cl);

/* Reads the slot map again (CLUSTER SLOTS), from the nodes already known
 * and then the seeds, until one answers. LOY_CLUSTER_ERR_IO when none does
 * (the old map is kept), LOY_CLUSTER_ERR for a reply that makes no sense
 * or while a pipe is in flight. */
int loy_cluster_refresh(loy_cluster_t *cl, char *errstr, size_t errstr_size);

/* 1: a cluster; 0: a single redis-server; -1: not known yet. */
int loy_cluster_is_cluster(const loy_cluster_t *cl);

/* "host:port" of the node the map gives slot to, into addr. 0, or -1 when
 * no node serves it (or addr is too small). */
int loy_cluster_node_of(const loy_cluster_t *cl, unsigned slot, char *addr,
                        size_t addr_size);

/* The name (CLIENT SETNAME) of every connection the router has and
 * opens, so that another process can close them (loy_cluster_kill_named).
 * 1..128 printable characters without blanks; NULL for none. Not while a
 * pipe is in flight. LOY_CLUSTER_OK, or LOY_CLUSTER_ERR with errstr. A
 * connection that cannot be named now is dropped and named when opened
 * again. */
int loy_cluster_set_name(loy_cluster_t *cl, const char *name, char *errstr,
                         size_t errstr_size);

/* How every connection is opened from now on (loy_rconn): timeouts, AUTH
 * as an ACL user or with a password, SELECT of a database (a Redis Cluster
 * has only database 0 and refuses SELECT). The strings are copied; the
 * open connections are closed and opened again this way when next used.
 * The map reads and connects that follow return LOY_CLUSTER_ERR_AUTH when
 * a node refuses the credentials, the database or CLUSTER SLOTS for this
 * user (NOAUTH, WRONGPASS, NOPERM): a configuration error, not worth
 * retrying. command_timeout_ms 0 keeps create's. Not while a pipe is in
 * flight. */
struct loy_rconn_opts;
int loy_cluster_set_conn(loy_cluster_t *cl, const struct loy_rconn_opts *o,
                         char *errstr, size_t errstr_size);

/* A guard over a write of several pipes that must all go over the
 * connections the first one went over: connects every master of the map,
 * then, until _guard_end, opens no connection. A connection lost (or
 * closed by CLIENT KILL) meanwhile fails its units with
 * LOY_CLUSTER_ERR_IO instead of being opened again, and so does a
 * redirection to a node not connected at _guard_begin. Why: a process
 * whose connections another one closed must not write what it held
 * through that on a new connection (loy_store). LOY_CLUSTER_OK, or
 * LOY_CLUSTER_ERR_IO (a master cannot be reached; not guarded) or
 * LOY_CLUSTER_ERR (a pipe in flight). */
int loy_cluster_guard_begin(loy_cluster_t *cl, char *errstr,
                            size_t errstr_size);
void loy_cluster_guard_end(loy_cluster_t *cl);

/* Closes, on every master, the client connections called name (CLIENT
 * LIST, CLIENT KILL ID), other processes' as well as this one's; *nkilled
 * (may be NULL) counts them. Not while a pipe is in flight.
 * LOY_CLUSTER_OK, or an error with errstr; connections closed before the
 * error stay closed. */
int loy_cluster_kill_named(loy_cluster_t *cl, const char *name, int *nkilled,
                           char *errstr, size_t errstr_size);

/* Counters since the router was created. */
typedef struct loy_cluster_stats {
        uint64_t moved;     /* MOVED replies followed */
        uint64_t ask;       /* ASK replies followed */
        uint64_t refreshes; /* slot maps read */
        uint64_t connects;  /* connections opened */
        uint64_t io_errors; /* connections that failed or were lost */
        uint64_t refused;   /* units failed with LOY_CLUSTER_ERR_BUSY */
} loy_cluster_stats_t;
void loy_cluster_stats(const loy_cluster_t *cl, loy_cluster_stats_t *st);

typedef struct loy_cluster_pipe loy_cluster_pipe_t;

/* An empty pipe on cl. NULL with errstr when out of memory. Its memory is
 * kept from one use to the next (loy_cluster_pipe_reset). */
loy_cluster_pipe_t *loy_cluster_pipe_create(loy_cluster_t *cl, char *errstr,
                                            size_t errstr_size);
/* Frees the pipe and the replies it holds. A pipe in flight (sent, not
 * received) drops the connections its replies would have come on. NULL
 * ok. */
void loy_cluster_pipe_destroy(loy_cluster_pipe_t *p);
/* Empties the pipe for the next use: frees its replies, keeps its memory.
 * A pipe in flight drops its connections as in _destroy. */
void loy_cluster_pipe_reset(loy_cluster_pipe_t *p);

/* Adds one unit: len bytes of RESP commands (arrays of bulk strings, as
 * loy_store builds them), copied, whose keys are all in slot. nreplies is
 * the number of commands, checked against resp. A MULTI must be closed by
 * EXEC or DISCARD within the unit. Only on a pipe being built (new or
 * reset). LOY_CLUSTER_OK, or LOY_CLUSTER_ERR with errstr (bad RESP, count,
 * slot, out of memory; the pipe is unchanged). */
int loy_cluster_pipe_add(loy_cluster_pipe_t *p, unsigned slot, const void *resp,
                         size_t len, int nreplies, char *errstr,
                         size_t errstr_size);
/* Cuts len bytes of RESP commands into units and adds them: each lone
 * command is a unit, and so is each MULTI ... EXEC (or DISCARD) block.
 * A unit's slot is its first key's: a command's first argument, or the
 * first key of an EVAL or EVALSHA; commands without a key (PING, MULTI,
 * SCRIPT, INFO, ...) go with the block's key, or to slot 0's node. A
 * caller that builds whole pipelines of single-slot commands needs no slot
 * bookkeeping of its own. *nunits (may be NULL) the units added; on
 * LOY_CLUSTER_ERR (bad RESP, out of memory) the units before the bad one
 * stay added. */
int loy_cluster_pipe_add_cmds(loy_cluster_pipe_t *p, const void *resp,
                              size_t len, size_t *nunits, char *errstr,
                              size_t errstr_size);
/* Units added so far. */
size_t loy_cluster_pipe_units(const loy_cluster_pipe_t *p);

/* Sends the units added since the pipe was last pushed, and goes on
 * building: Redis starts on a long pipe while the rest is built. The pipe
 * is in flight from its first push (nothing else may use the router until
 * its _recv, or its _reset, which drops the connections it wrote to). A
 * node whose connection is lost loses the rest of the pipe too: a new
 * connection would take the replies of the sends before. OK or
 * LOY_CLUSTER_ERR (not a pipe being built, another pipe in flight). */
int loy_cluster_pipe_push(loy_cluster_pipe_t *p, char *errstr,
                          size_t errstr_size);
/* Sends every unit (every node written, none read) and returns without
 * waiting for replies, so the caller can build the next pipe meanwhile.
 * One pipe per router is in flight at a time: until its _recv every other
 * send and refresh on the router fails with LOY_CLUSTER_ERR. A unit whose
 * node cannot be reached fails now; the others are in flight. OK, or
 * LOY_CLUSTER_ERR (not a pipe being built, another pipe in flight). */
int loy_cluster_pipe_send(loy_cluster_pipe_t *p, char *errstr,
                          size_t errstr_size);
/* Reads the replies of a sent pipe, following redirections (more rounds
 * of sends and reads) until every unit has its replies or has failed.
 * LOY_CLUSTER_OK when every unit has its replies; otherwise the worst
 * failure among the units (ERR_IO, then ERR, then ERR_BUSY), with errstr
 * counting them and telling the first; loy_cluster_pipe_status() tells
 * each unit's. */
int loy_cluster_pipe_recv(loy_cluster_pipe_t *p, char *errstr,
                          size_t errstr_size);
/* _send then _recv. */
int loy_cluster_pipe_exec(loy_cluster_pipe_t *p, char *errstr,
                          size_t errstr_size);

/* After _recv: LOY_CLUSTER_OK when unit has all its replies (some may be
 * error replies the caller must judge), else why it has not. A unit with
 * several parts (lone commands, transactions) that failed may still have
 * had some parts applied: put writes that must not be repeated into one
 * MULTI ... EXEC so that a unit is one part. LOY_CLUSTER_ERR for a unit
 * out of range or not received yet. */
int loy_cluster_pipe_status(const loy_cluster_pipe_t *p, size_t unit);
/* After _recv: unit's replies, one per command in the order of its
 * commands (ASKING replies are not among them), *n set to their count.
 * Owned by the pipe until its reset or destroy. A reply is NULL when it
 * was not received (unit failed with LOY_CLUSTER_ERR_IO). NULL for a unit
 * out of range or not received yet. */
struct redisReply *const *loy_cluster_pipe_replies(const loy_cluster_pipe_t *p,
                                                   size_t unit, int *n);

/* After _recv: takes reply i of unit out of the pipe; the caller frees it
 * (freeReplyObject). NULL when out of range, not received, or taken. */
struct redisReply *loy_cluster_pipe_take(loy_cluster_pipe_t *p, size_t unit,
                                         int i);

#endif
