/*
 * fuzz_model: libFuzzer target of the model-file parser.
 *
 * The input is a model file's text (loy_model_load_buffer). It must never
 * crash; a refusal must come with a message naming the file and must leave
 * the model untouched; an accepted model must pass loy_model_validate, and
 * scoring one typical customer with it must give what loy_model.h
 * promises (p_alive in [0, 1], finite non-negative expected purchases).
 * Scoring a model with extreme parameters can take 100 ms (r = 7e7): only
 * one accepted input in four, chosen by a hash of its bytes so a crash
 * reproduces, is scored; the parser itself runs on every input.
 * An accepted model is written with loy_model_write (to /dev/shm when
 * there is one) and must load back the same, bit for bit.
 *
 * Build: scripts/fuzz.sh (cmake -DLOY_FUZZ=ON with clang, build-fuzz/).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loy_model.h"
#include "fuzz.h"

#define NAME "fuzz.model"

static char out_path[128];

static void cleanup(void) {
        unlink(out_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        snprintf(out_path, sizeof(out_path), "%s/loy_fuzz_model.%ld",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
                 (long)getpid());
        atexit(cleanup);
        return 0;
}

#define SAME(f)                                                                \
        CHECK(!memcmp(&m.f, &back.f, sizeof(m.f)),                             \
              "field " #f " changed in the round trip")

/* loy_model_write, then loy_model_load: the same model. */
static void check_write(const loy_model_t *mp) {
        loy_model_t m = *mp, back;
        char err[512];

        CHECK(loy_model_write(&m, "note = fuzz\n", out_path, err,
                              sizeof(err)) == 0,
              "an accepted model is not written: %s", err);
        CHECK(loy_model_load(&back, out_path, err, sizeof(err)) == 0,
              "a written model does not load: %s", err);
        CHECK(!strcmp(m.version, back.version), "version '%s' became '%s'",
              m.version, back.version);
        SAME(variant);
        SAME(unit_days);
        SAME(r);
        SAME(alpha);
        SAME(a);
        SAME(b);
        SAME(has_gg);
        SAME(rfm);
        if (m.has_gg) {
                SAME(gg_p);
                SAME(gg_q);
                SAME(gg_gamma);
        }
        /* 0 is not written: -0 comes back as 0, the same rate */
        CHECK(m.discount_monthly == back.discount_monthly,
              "discount_monthly %.17g became %.17g", m.discount_monthly,
              back.discount_monthly);
}

static uint32_t fnv1a(const uint8_t *p, size_t n) {
        uint32_t h = 2166136261u;
        while (n--)
                h = (h ^ *p++) * 16777619u;
        return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        loy_model_t m, before;
        loy_model_input_t in = {3, 60, 200, 25, 20};
        loy_model_scores_t s;
        char err[512];
        int rc;

        memset(&m, 0xa5, sizeof(m));
        before = m;
        err[0] = '\0';
        rc = loy_model_load_buffer(&m, NAME, (const char *)data, size, err,
                                   sizeof(err));
        if (rc) {
                CHECK(rc == -1, "returned %d", rc);
                CHECK(err[0], "refused without a message");
                CHECK(!strncmp(err, NAME ":", strlen(NAME ":")),
                      "message does not name the file: %s", err);
                CHECK(!memcmp(&m, &before, sizeof(m)),
                      "a refused file changed the model");
                return 0;
        }
        CHECK(memchr(m.version, '\0', sizeof(m.version)) && m.version[0],
              "version is empty or not terminated");
        CHECK(loy_model_validate(&m, err, sizeof(err)) == 0,
              "accepted a model that does not validate: %s", err);
        check_write(&m);
        if (fnv1a(data, size) % 4)
                return 0;
        loy_model_score(&m, &in, 90, 0.3, &s);
        CHECK(s.p_alive >= 0 && s.p_alive <= 1, "p_alive %g", s.p_alive);
        CHECK(isfinite(s.exp_purchases) && s.exp_purchases >= 0,
              "expected purchases %g", s.exp_purchases);
        return 0;
}
