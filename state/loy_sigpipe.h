/*
 * loy_sigpipe: SIGPIPE held off around a library's socket writes.
 *
 * hiredis writes with write(2): a server that died turns the next write
 * into SIGPIPE, whose default action kills the process. A library must not
 * need the application to ignore it, so SIGPIPE is blocked in the calling
 * thread around the I/O and a SIGPIPE raised meanwhile is consumed (EPIPE
 * is then seen as an ordinary I/O error). One raised before, by someone
 * else, is left pending for its owner.
 */
#ifndef LOY_SIGPIPE_H
#define LOY_SIGPIPE_H

#include <signal.h>

typedef struct loy_sigpipe {
        sigset_t old;
        int was_pending;
} loy_sigpipe_t;

void loy_sigpipe_block(loy_sigpipe_t *g);
void loy_sigpipe_restore(loy_sigpipe_t *g);

#endif
