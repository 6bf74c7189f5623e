/* loy_sigpipe: see loy_sigpipe.h. */
#include "loy_sigpipe.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

void loy_sigpipe_block(loy_sigpipe_t *g) {
        sigset_t set, pend;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pend);
        sigpending(&pend);
        g->was_pending = sigismember(&pend, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void loy_sigpipe_restore(loy_sigpipe_t *g) {
        sigset_t set, pend;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        sigemptyset(&pend);
        if (!g->was_pending && sigpending(&pend) == 0 &&
            sigismember(&pend, SIGPIPE)) {
                struct timespec zero = {0, 0};
                while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
