/* tu_http: see tu.h (and tu_write_file, the other file helper). */
#include <stdarg.h>
#include <stdio.h>

#include "loy_http.h"
#include "tu.h"

int tu_write_file(const char *path, const char *fmt, ...) {
        FILE *fp = fopen(path, "w");
        va_list ap;
        int ok;
        if (!fp)
                return -1;
        va_start(ap, fmt);
        ok = vfprintf(fp, fmt, ap) >= 0;
        va_end(ap);
        return fclose(fp) == 0 && ok ? 0 : -1;
}

int tu_http(int port, const char *method, const char *path, char **body) {
        return loy_http_request(port, method, path, 5000, body);
}
