/* loy_rconn: see loy_rconn.h. */
#include "loy_rconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

static void seterr(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *errstr, size_t size, const char *fmt, ...) {
        va_list ap;
        if (!errstr || !size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, size, fmt, ap);
        va_end(ap);
}

static struct timeval tv_of(int ms) {
        struct timeval tv;
        if (ms <= 0)
                ms = LOY_RCONN_TIMEOUT_MS;
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
        return tv;
}

int loy_rconn_is_auth_error(const char *e) {
        static const char *const refused[] = {"NOAUTH ", "NOPERM ",
                                              "WRONGPASS ", NULL};
        if (!e)
                return 0;
        for (int i = 0; refused[i]; i++)
                if (!strncmp(e, refused[i], strlen(refused[i])))
                        return 1;
        return 0;
}

/* One command of the handshake; what its failure means. */
static int step(redisContext *c, const char *what, int argc, const char **argv,
                char *errstr, size_t size) {
        size_t lens[3];
        redisReply *r;
        int rc = LOY_RCONN_OK;
        for (int i = 0; i < argc; i++)
                lens[i] = strlen(argv[i]);
        r = redisCommandArgv(c, argc, argv, lens);
        if (!r) {
                seterr(errstr, size, "%s: %s", what,
                       c->errstr[0] ? c->errstr : "no reply");
                return LOY_RCONN_ERR_IO;
        }
        if (r->type == REDIS_REPLY_ERROR) {
                /* a server still loading its data file refuses everything
                 * for a while; anything else is about the settings */
                rc = !strncmp(r->str, "LOADING ", 8) ? LOY_RCONN_ERR_IO
                                                     : LOY_RCONN_ERR_AUTH;
                seterr(errstr, size, "%s: %s", what, r->str);
        } else if (r->type != REDIS_REPLY_STATUS) {
                rc = LOY_RCONN_ERR_IO;
                seterr(errstr, size, "%s: unexpected reply", what);
        }
        freeReplyObject(r);
        return rc;
}

int loy_rconn_prepare(redisContext *c, const loy_rconn_opts_t *o, char *errstr,
                      size_t size) {
        char db[16];
        int rc;
        if (!o)
                return LOY_RCONN_OK;
        if (o->password && *o->password) {
                const char *argv[3] = {"AUTH", NULL, NULL};
                int argc = 1;
                if (o->user && *o->user)
                        argv[argc++] = o->user;
                argv[argc++] = o->password;
                if ((rc = step(c, "AUTH", argc, argv, errstr, size)))
                        return rc;
        } else if (o->user && *o->user) {
                seterr(errstr, size, "AUTH: user \"%s\" without a password",
                       o->user);
                return LOY_RCONN_ERR_AUTH;
        }
        if (o->db > 0) {
                const char *argv[2] = {"SELECT", db};
                char what[32];
                snprintf(db, sizeof(db), "%d", o->db);
                snprintf(what, sizeof(what), "SELECT %d", o->db);
                if ((rc = step(c, what, 2, argv, errstr, size)))
                        return rc;
        }
        return LOY_RCONN_OK;
}

redisContext *loy_rconn_open(const char *host, int port,
                             const loy_rconn_opts_t *o, int *rcp, char *errstr,
                             size_t size) {
        char addr[300];
        int ctms = o ? o->connect_timeout_ms : 0;
        int cmdms = o && o->command_timeout_ms ? o->command_timeout_ms : ctms;
        redisContext *c;
        int rc = LOY_RCONN_ERR_IO;
        char why[256];
        snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
                 host, port);
        c = redisConnectWithTimeout(host, port, tv_of(ctms));
        if (!c) {
                seterr(errstr, size, "%s: out of memory", addr);
        } else if (c->err || redisSetTimeout(c, tv_of(cmdms)) != REDIS_OK) {
                seterr(errstr, size, "%s: %s", addr,
                       c->errstr[0] ? c->errstr : "cannot connect");
        } else if ((rc = loy_rconn_prepare(c, o, why, sizeof(why)))) {
                seterr(errstr, size, "%s: %s", addr, why);
        } else {
                if (rcp)
                        *rcp = LOY_RCONN_OK;
                return c;
        }
        if (c)
                redisFree(c);
        if (rcp)
                *rcp = rc;
        return NULL;
}
