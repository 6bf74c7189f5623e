/* loy_pseudo: see loy_pseudo.h. */
#include "loy_pseudo.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/loy_config.h"

#define KEY_MIN 16 /* bytes: a short key is a guessable key */

struct loy_pseudo {
        size_t len;
        unsigned char key[];
};

loy_pseudo_t *loy_pseudo_create(const void *key, size_t len, char *errstr,
                                size_t errstr_size) {
        loy_pseudo_t *p;
        if (len < KEY_MIN) {
                snprintf(errstr, errstr_size,
                         "pseudonym key of %zu bytes: "
                         "at least %d wanted (e.g. openssl rand -hex 32)",
                         len, KEY_MIN);
                return NULL;
        }
        p = malloc(sizeof(*p) + len);
        if (!p) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        p->len = len;
        memcpy(p->key, key, len);
        return p;
}

void loy_pseudo_destroy(loy_pseudo_t *p) {
        if (!p)
                return;
        explicit_bzero(p->key, p->len);
        free(p);
}

int loy_pseudo_of(const loy_pseudo_t *p, const char *id,
                  char out[LOY_PSEUDO_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (!HMAC(EVP_sha256(), p->key, (int)p->len, (const unsigned char *)id,
                  strlen(id), md, &n) ||
            n < LOY_PSEUDO_LEN / 2)
                return -1;
        for (int i = 0; i < LOY_PSEUDO_LEN / 2; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[LOY_PSEUDO_LEN] = '\0';
        return 0;
}

loy_pseudo_t *loy_pseudo_from_config(const loy_config_t *conf, char *errstr,
                                     size_t errstr_size) {
        char key[512];
        loy_pseudo_t *p;
        errstr[0] = '\0';
        if (!conf->pseudonymize)
                return NULL;
        if (loy_config_read_secret(conf->pseudonym_key_file, "privacy.key.file",
                                   key, sizeof(key), errstr, errstr_size))
                return NULL;
        p = loy_pseudo_create(key, strlen(key), errstr, errstr_size);
        explicit_bzero(key, sizeof(key));
        return p;
}
