/*
 * loy_rconn: opening one hiredis connection the way the configuration
 * says: connect timeout, command timeout, AUTH (a password, or an ACL user
 * and its password) and SELECT of a database.
 *
 * Every connection loyaltyd and loyaltyctl open to a Redis they did not
 * start goes through here, so credentials are sent the same way
 * everywhere. Error messages name the step and carry the server's reply,
 * never the password.
 *
 * A refusal of the credentials or of the database (WRONGPASS, NOAUTH,
 * NOPERM, an AUTH the server has no password for, SELECT out of range or
 * on a Redis Cluster) is a configuration error: LOY_RCONN_ERR_AUTH, not to
 * be retried. A server that cannot be reached, or is still LOADING, is
 * LOY_RCONN_ERR_IO: try again later.
 */
#ifndef LOY_RCONN_H
#define LOY_RCONN_H

#include <stddef.h>

struct redisContext;

typedef struct loy_rconn_opts {
        const char *user;       /* ACL user (Redis 6+); NULL or "": none */
        const char *password;   /* NULL or "": no AUTH */
        int db;                 /* SELECT this database when > 0 */
        int connect_timeout_ms; /* 0: LOY_RCONN_TIMEOUT_MS */
        int command_timeout_ms; /* each reply wait; 0: the same */
} loy_rconn_opts_t;

#define LOY_RCONN_TIMEOUT_MS 2000

typedef enum {
        LOY_RCONN_OK = 0,
        LOY_RCONN_ERR_IO = -1,   /* not reachable now; retry */
        LOY_RCONN_ERR_AUTH = -2, /* credentials or database refused */
} loy_rconn_err_t;

/* A connection to host:port, authenticated and on its database. NULL with
 * *rc (may be NULL) and errstr ("host:port: AUTH: WRONGPASS ...") filled.
 * opts NULL: no AUTH, database 0, default timeouts. */
struct redisContext *loy_rconn_open(const char *host, int port,
                                    const loy_rconn_opts_t *opts, int *rc,
                                    char *errstr, size_t errstr_size);

/* Sends AUTH and SELECT on an open connection as opts say. LOY_RCONN_OK or
 * an error code with errstr ("AUTH: ..."). */
int loy_rconn_prepare(struct redisContext *c, const loy_rconn_opts_t *opts,
                      char *errstr, size_t errstr_size);

/* 1 when a Redis error reply to an ordinary command says this connection
 * may not run it (NOAUTH, NOPERM, WRONGPASS): a configuration error. */
int loy_rconn_is_auth_error(const char *reply_error);

#endif
