/* ctl_http: one HTTP request with libcurl, the reply body gathered in memory. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_internal.h"

typedef struct ctl_sink {
    char *data;
    size_t len, cap;
    bool oom;
} ctl_sink;

static size_t ctl_write(char *p, size_t size, size_t n, void *ud)
{
    ctl_sink *s = ud;
    size_t add = size * n;
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + add + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (d == NULL) {
            s->oom = true;
            return 0; /* makes curl fail the transfer */
        }
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, add);
    s->len += add;
    s->data[s->len] = '\0';
    return add;
}

void ctl_reply_free(ctl_reply *r)
{
    free(r->body);
    r->body = NULL;
}

void ctl_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (; *s && j + 4 <= outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    out[j] = '\0';
}

static struct curl_slist *ctl_headers(const ctl_opts *o, const char *content_type)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip for uploads */
    char line[4096 + 32];
    if (content_type != NULL) {
        snprintf(line, sizeof line, "Content-Type: %s", content_type);
        h = curl_slist_append(h, line);
    }
    if (o->token != NULL && o->token[0] != '\0') {
        snprintf(line, sizeof line, "Authorization: Bearer %s", o->token);
        h = curl_slist_append(h, line);
    }
    return h;
}

long ctl_http(const ctl_opts *o, const char *method, const char *path, const char *content_type,
              const void *body, size_t body_len, ctl_reply *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(out->error, sizeof out->error, "cannot initialise libcurl");
        return 0;
    }
    size_t url_len = strlen(o->server) + strlen(path) + 1;
    char *url = malloc(url_len);
    ctl_sink sink = {0};
    struct curl_slist *h = ctl_headers(o, content_type);
    if (url == NULL || h == NULL) {
        snprintf(out->error, sizeof out->error, "out of memory");
        goto done;
    }
    snprintf(url, url_len, "%s%s", o->server, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (o->cacert != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
    if (o->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(out->error, sizeof out->error, "%s: %s", o->server,
                 sink.oom ? "out of memory" : curl_easy_strerror(rc));
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = sink.data ? sink.data : calloc(1, 1);
    out->body_len = sink.len;
    sink.data = NULL;
done:
    free(sink.data);
    free(url);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return out->status;
}
