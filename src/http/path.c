/* path: URL path and query helpers. See path.h. */
#include "path.h"

#include <stdio.h>
#include <string.h>

int path_segments(const char *path, char *buf, size_t buflen, const char **segs, int max)
{
    int n = 0;
    size_t used = 0;
    while (*path) {
        while (*path == '/')
            path++;
        if (*path == '\0')
            break;
        size_t len = strcspn(path, "/");
        if (n == max || used + len + 1 > buflen)
            return -1;
        memcpy(buf + used, path, len);
        buf[used + len] = '\0';
        segs[n++] = buf + used;
        used += len + 1;
        path += len;
    }
    return n;
}

bool path_query_value(const char *query, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = strcspn(p + klen + 1, "&");
            snprintf(out, len, "%.*s", (int)vlen, p + klen + 1);
            return true;
        }
    }
    return false;
}
