/* Real data into the mock cluster for tests (see tu.h). */
#include <CUnit/Basic.h>
#include <string.h>

#include "loy_codec.h"
#include "loy_source.h"
#include "tu.h"

int64_t tu_produce_file(tu_kafka_t *k, const char *topic, const char *path,
                        int skip, int limit) {
        char err[256];
        loy_source_t *src =
            loy_source_open(path, LOY_SRC_AUTO, err, sizeof(err));
        loy_codec_t *codec = loy_codec_create(NULL, err, sizeof(err));
        loy_event_t ev;
        int64_t n = 0, i = 0;
        if (!src || !codec) {
                fprintf(stderr, "tu_produce_file: %s\n", err);
                loy_source_close(src);
                if (codec)
                        loy_codec_destroy(codec);
                return -1;
        }
        memset(&ev, 0, sizeof(ev));
        while (loy_source_next(src, &ev) == 1) {
                size_t len;
                const void *buf;
                if (i++ < skip)
                        continue;
                if (limit && n == limit)
                        break;
                buf =
                    loy_codec_encode_event(codec, &ev, &len, err, sizeof(err));
                if (!buf || tu_kafka_produce_async(k, topic, -1, ev.customer_id,
                                                   buf, len) != 0) {
                        n = -1;
                        break;
                }
                n++;
        }
        if (n >= 0 && tu_kafka_flush(k, 30000) != 0)
                n = -1;
        loy_event_free(&ev);
        loy_codec_destroy(codec);
        loy_source_close(src);
        return n;
}
