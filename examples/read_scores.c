/*
 * read_scores: one customer's features and scores as loyaltyd keeps them in
 * Redis, the way a dashboard or a coupon service reads them.
 *
 * Shows: the public key layout (docs/redis-keys.md): the customer hash
 * <ns>:c:{<cid>} (the braces are a Redis Cluster hash tag) and its top
 * recommended items <ns>:c:{<cid>}:recs, both read in one round trip with
 * hiredis' append-then-read pipelining. The hash's readable fields are
 * decimal text (times in ms since the epoch, event time); the fields e0,
 * e1 ... are loyaltyd's packed state, binary, and are skipped here. Only
 * hiredis and libc.
 *
 *   read_scores -p 6379 17850          # "field value" lines
 *   read_scores -j 17850               # one JSON object
 *
 * A password is taken from REDISCLI_AUTH, as redis-cli does. Exit 0, 1 when
 * the customer is not in Redis (or was erased) or Redis fails, 2 on wrong
 * arguments. Build: cc read_scores.c $(pkg-config --cflags --libs hiredis).
 */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static void usage(FILE *fp) {
        fprintf(fp, "usage: read_scores [-H HOST] [-p PORT] [-n NAMESPACE] "
                    "[-j] CUSTOMER_ID\n"
                    "  -H  Redis host (127.0.0.1)\n"
                    "  -p  Redis port (6379)\n"
                    "  -n  key namespace, loyaltyd's redis.namespace (loy)\n"
                    "  -j  print one JSON object instead of field value "
                    "lines\n");
}

/* loyaltyd's packed state: e0, e1 ... */
static int packed(const char *field) {
        if (field[0] != 'e' || !field[1])
                return 0;
        for (const char *p = field + 1; *p; p++)
                if (!isdigit((unsigned char)*p))
                        return 0;
        return 1;
}

/* s as a JSON value: a decimal number as it is, anything else a string
 * (nan, names). */
static void json_value(const char *s, int force_string) {
        char *end;
        double d = strtod(s, &end);
        if (!force_string && (*s == '-' || isdigit((unsigned char)*s)) &&
            !*end && isfinite(d) && !strpbrk(s, "xX")) {
                fputs(s, stdout);
                return;
        }
        putchar('"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        printf("\\%c", *p);
                else if (*p < 0x20)
                        printf("\\u%04x", *p);
                else
                        putchar(*p);
        }
        putchar('"');
}

int main(int argc, char **argv) {
        const char *host = "127.0.0.1", *ns = "loy", *cid, *auth;
        static const struct option help[] = {{"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        int port = 6379, json = 0, opt, rc = 1, found = 0;
        char key[512];
        redisContext *c = NULL;
        redisReply *hash = NULL, *recs = NULL, *r = NULL;

        while ((opt = getopt_long(argc, argv, "H:p:n:jh", help, NULL)) != -1) {
                switch (opt) {
                case 'H':
                        host = optarg;
                        break;
                case 'p':
                        port = atoi(optarg);
                        break;
                case 'n':
                        ns = optarg;
                        break;
                case 'j':
                        json = 1;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (argc - optind != 1 || port <= 0 || port > 65535) {
                usage(stderr);
                return 2;
        }
        cid = argv[optind];

        c = redisConnect(host, port);
        if (!c || c->err) {
                fprintf(stderr, "redis %s:%d: %s\n", host, port,
                        c ? c->errstr : "out of memory");
                goto out;
        }
        if ((auth = getenv("REDISCLI_AUTH")) && *auth) {
                r = redisCommand(c, "AUTH %s", auth);
                if (!r || r->type == REDIS_REPLY_ERROR) {
                        fprintf(stderr, "redis AUTH: %s\n",
                                r ? r->str : c->errstr);
                        goto out;
                }
        }
        /* two commands, one round trip */
        snprintf(key, sizeof(key), "%s:c:{%s}", ns, cid);
        if (redisAppendCommand(c, "HGETALL %s", key) != REDIS_OK ||
            redisAppendCommand(c, "ZREVRANGE %s:recs 0 9 WITHSCORES", key) !=
                REDIS_OK ||
            redisGetReply(c, (void **)&hash) != REDIS_OK ||
            redisGetReply(c, (void **)&recs) != REDIS_OK) {
                fprintf(stderr, "redis: %s\n", c->errstr);
                goto out;
        }
        if (hash->type != REDIS_REPLY_ARRAY ||
            recs->type != REDIS_REPLY_ARRAY) {
                fprintf(stderr, "redis: %s: %s\n", key,
                        hash->type == REDIS_REPLY_ERROR   ? hash->str
                        : recs->type == REDIS_REPLY_ERROR ? recs->str
                                                          : "not a hash");
                goto out;
        }
        /* a customer has last_event_ms; the record of an erasure has not */
        for (size_t i = 0; i + 1 < hash->elements; i += 2)
                found |= !strcmp(hash->element[i]->str, "last_event_ms");
        if (!found) {
                fprintf(stderr, "customer %s: %s (namespace %s)\n", cid,
                        hash->elements ? "erased" : "not found", ns);
                goto out;
        }

        if (json) {
                printf("{\"customer_id\":");
                json_value(cid, 1);
                printf(",\"key\":");
                json_value(key, 1);
                printf(",\"fields\":{");
        }
        for (size_t i = 0, n = 0; i + 1 < hash->elements; i += 2) {
                const char *f = hash->element[i]->str;
                const char *v = hash->element[i + 1]->str;
                if (packed(f))
                        continue;
                if (!json) {
                        printf("%s %s\n", f, v);
                        continue;
                }
                if (n++)
                        putchar(',');
                json_value(f, 1);
                putchar(':');
                json_value(v, 0);
        }
        /* best first: item, score */
        if (json)
                printf("},\"recs\":[");
        for (size_t i = 0; i + 1 < recs->elements; i += 2) {
                if (!json) {
                        printf("rec %s %s\n", recs->element[i]->str,
                               recs->element[i + 1]->str);
                        continue;
                }
                printf("%s[", i ? "," : "");
                json_value(recs->element[i]->str, 1);
                putchar(',');
                json_value(recs->element[i + 1]->str, 0);
                putchar(']');
        }
        if (json)
                printf("]}\n");
        rc = fflush(stdout) ? 1 : 0;
out:
        if (r)
                freeReplyObject(r);
        if (hash)
                freeReplyObject(hash);
        if (recs)
                freeReplyObject(recs);
        if (c)
                redisFree(c);
        return rc;
}
