/* http_client: see http_client.h. */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

const char *reply_header(const reply *r, const char *name, char *out, size_t n)
{
    size_t name_len = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line != NULL && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (eol == NULL)
            return NULL;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)(eol - v), v);
            return out;
        }
        line = eol;
    }
    return NULL;
}

int read_reply(int fd, reply *r, bool head_only)
{
    char buf[8192];
    size_t used = 0;
    char *end = NULL;
    memset(r, 0, sizeof *r);
    while ((end = memmem(buf, used, "\r\n\r\n", 4)) == NULL) {
        if (used == sizeof buf)
            return -1;
        ssize_t n = recv(fd, buf + used, sizeof buf - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        used += (size_t)n;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    if (head_len >= sizeof r->head)
        return -1;
    memcpy(r->head, buf, head_len);
    r->head[head_len] = '\0';
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    char value[64];
    size_t length = 0;
    if (!head_only && reply_header(r, "Content-Length", value, sizeof value) != NULL)
        length = (size_t)strtoull(value, NULL, 10);
    r->body = malloc(length + 1);
    if (r->body == NULL)
        return -1;
    size_t have = used - head_len < length ? used - head_len : length;
    memcpy(r->body, buf + head_len, have);
    while (have < length) {
        ssize_t n = recv(fd, r->body + have, length - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            reply_free(r);
            return -1;
        }
        have += (size_t)n;
    }
    r->body[length] = '\0';
    r->body_len = length;
    return 0;
}

/* Send one request on fd. `headers` are extra "Name: value\r\n" lines or NULL. A body (even an
 * empty one) gets a Content-Length. */
