/* tu_http: see tu.h. */
#include "loy_http.h"
#include "tu.h"

int tu_http(int port, const char *method, const char *path, char **body) {
        return loy_http_request(port, method, path, 5000, body);
}
