/* server: helpers over the shared server state. See server.h. */
#include "server.h"

#include <string.h>

int server_path_segments(const char *path, char *buf, size_t buflen, const char **segs, int max)
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
