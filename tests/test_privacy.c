/*
 * loy_pseudo: keyed pseudonyms of customer ids (HMAC-SHA256, first 16
 * bytes in hex), the key read from [privacy] key.file, and the errors a
 * shop meets setting it up.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loy_config.h"
#include "loy_pseudo.h"
#include "tu.h"

#define KEY "0123456789abcdef0123456789abcdef"

static void test_known_answer(void) {
        char err[256], out[LOY_PSEUDO_LEN + 1], again[LOY_PSEUDO_LEN + 1];
        loy_pseudo_t *p = loy_pseudo_create(KEY, strlen(KEY), err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        /* python3 -c "import hmac,hashlib; print(hmac.new(b'0123456789abcdef
         * 0123456789abcdef', b'17850', hashlib.sha256).hexdigest()[:32])" */
        CU_ASSERT_EQUAL(loy_pseudo_of(p, "17850", out), 0);
        CU_ASSERT_STRING_EQUAL(out, "3611394a44c6460d6b3d57b38e3a210e");
        CU_ASSERT_EQUAL(loy_pseudo_of(p, "", out), 0);
        CU_ASSERT_STRING_EQUAL(out, "796cd3078af14636753d26b3b5555422");
        /* the same id, the same pseudonym; another id, another */
        CU_ASSERT_EQUAL(loy_pseudo_of(p, "17850", again), 0);
        CU_ASSERT_EQUAL(loy_pseudo_of(p, "17851", out), 0);
        CU_ASSERT_STRING_NOT_EQUAL(out, again);
        loy_pseudo_destroy(p);
        /* a short key is refused */
        CU_ASSERT_PTR_NULL(loy_pseudo_create("short", 5, err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "at least 16"));
}

static void test_from_config(void) {
        char dir[] = "/tmp/loy-privacy-XXXXXX", path[128], conf_path[160];
        char err[768], out[LOY_PSEUDO_LEN + 1];
        loy_config_t conf;
        loy_pseudo_t *p;
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
        /* off: no pseudonyms, no error */
        loy_config_defaults(&conf);
        CU_ASSERT_PTR_NULL(loy_pseudo_from_config(&conf, err, sizeof(err)));
        CU_ASSERT_STRING_EQUAL(err, "");

        /* on without a key file: the config says so */
        snprintf(conf_path, sizeof(conf_path), "%s/loyaltyd.conf", dir);
        CU_ASSERT_EQUAL_FATAL(
            tu_write_file(conf_path, "[privacy]\npseudonymize = yes\n"), 0);
        CU_ASSERT_EQUAL(loy_config_load(&conf, conf_path, err, sizeof(err)),
                        -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "privacy.key.file"));

        /* a key file beside the config, named relative to it */
        CU_ASSERT_EQUAL_FATAL(tu_write_file(conf_path,
                                            "[privacy]\npseudonymize = yes\n"
                                            "key.file = pseudonym.key\n"),
                              0);
        loy_config_defaults(&conf);
        CU_ASSERT_EQUAL_FATAL(
            loy_config_load(&conf, conf_path, err, sizeof(err)), 0);
        /* not there yet: the file and the key named */
        CU_ASSERT_PTR_NULL(loy_pseudo_from_config(&conf, err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "pseudonym.key"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "privacy.key.file"));
        snprintf(path, sizeof(path), "%s/pseudonym.key", dir);
        CU_ASSERT_EQUAL_FATAL(tu_write_file(path, KEY "\n"), 0);
        p = loy_pseudo_from_config(&conf, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL(loy_pseudo_of(p, "17850", out), 0);
        CU_ASSERT_STRING_EQUAL(out, "3611394a44c6460d6b3d57b38e3a210e");
        loy_pseudo_destroy(p);
        /* an empty first line is no key */
        CU_ASSERT_EQUAL_FATAL(tu_write_file(path, "\n" KEY "\n"), 0);
        CU_ASSERT_PTR_NULL(loy_pseudo_from_config(&conf, err, sizeof(err)));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "the first line is empty"));
        loy_config_free(&conf);
        unlink(path);
        unlink(conf_path);
        rmdir(dir);
}

int main(void) {
        static const tu_test_t tests[] = {
            {"pseudonyms: HMAC-SHA256, known answers, short keys",
             test_known_answer},
            {"the key from [privacy] key.file", test_from_config},
        };
        return tu_cunit_main("privacy", tests,
                             (int)(sizeof(tests) / sizeof(tests[0])));
}
