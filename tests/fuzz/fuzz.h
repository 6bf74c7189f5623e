/*
 * What every libFuzzer target here shares: CHECK, an invariant that must
 * hold for every input; when it does not, the target says where and why
 * and aborts, which libFuzzer reports as a crash with the input saved.
 */
#ifndef LOY_FUZZ_H
#define LOY_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                       \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__,     \
                                #cond);                                        \
                        fprintf(stderr, __VA_ARGS__);                          \
                        fputc('\n', stderr);                                   \
                        abort();                                               \
                }                                                              \
        } while (0)

#endif
