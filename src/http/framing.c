/* framing: HTTP/1.1 framing rules on top of CivetWeb's parser. See framing.h. */
#include "framing.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Length of a field value without trailing optional whitespace (CivetWeb strips only the
 * leading OWS). */
static size_t framing_trimmed_len(const char *v)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n;
}

/* Content-Length = 1*DIGIT; at most 18 digits so the value fits an int64. */
static bool framing_length_valid(const char *v, size_t n)
{
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

int framing_check_length(const char *http_version, const framing_field *fields, int nfields,
                         char *err, size_t errlen)
{
    const char *length = NULL, *coding = NULL;
    size_t length_len = 0;
    for (int i = 0; i < nfields; i++) {
        const char *v = fields[i].value;
        size_t n = framing_trimmed_len(v);
        if (strcasecmp(fields[i].name, "Content-Length") == 0) {
            if (!framing_length_valid(v, n)) {
                snprintf(err, errlen, "Content-Length must be a decimal number");
                return -1;
            }
            if (length != NULL && (n != length_len || memcmp(v, length, n) != 0)) {
                snprintf(err, errlen, "conflicting Content-Length headers");
                return -1;
            }
            length = v;
            length_len = n;
        } else if (strcasecmp(fields[i].name, "Transfer-Encoding") == 0) {
            if (coding != NULL) {
                snprintf(err, errlen, "more than one Transfer-Encoding header");
                return -1;
            }
            if (n != 7 || strncasecmp(v, "chunked", 7) != 0) {
                snprintf(err, errlen, "Transfer-Encoding must be \"chunked\"");
                return -1;
            }
            coding = v;
        }
    }
    if (coding != NULL && length != NULL) {
        snprintf(err, errlen, "both Content-Length and Transfer-Encoding");
        return -1;
    }
    if (coding != NULL && strcmp(http_version, "1.0") == 0) {
        snprintf(err, errlen, "Transfer-Encoding in an HTTP/1.0 request");
        return -1;
    }
    return 0;
}

/*
 * Line endings, from what CivetWeb 1.15 leaves in its buffer (framing.h). For a head
 *   "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\r\n"
 * the parser NULs each CR and LF after the version and after each value, NULs the colon, and
 * NULs the very last LF; the final CR survives. So with CRLF endings:
 *   - the first field name starts exactly 2 bytes after the version's end (both NUL);
 *   - each next field name starts exactly 2 bytes after the previous value's end (both NUL);
 *   - after the last value come NUL, NUL, '\r', NUL.
 * A bare LF leaves one byte instead of two; a folded line, whitespace at the start of a line,
 * or fields beyond the 64th leave something other than "\0\0\r\0" after the last value.
 * Whitespace before a colon is NULed too, so a NUL between a name's end and its colon shows it.
 */
static int framing_check_lines(const framing_head *h, char *err, size_t errlen)
{
    const char *end = h->http_version + strlen(h->http_version);
    if (h->nfields == 0) {
        /* Only HTTP/1.0 may omit Host (RFC 9112 §3.2); its head must end "\r\n\r\n". */
        if (strcmp(h->http_version, "1.0") != 0) {
            snprintf(err, errlen, "HTTP/1.1 request without a Host header");
            return -1;
        }
        if (end[1] != '\0' || end[2] != '\0' || end[3] != '\0')
            goto bare_lf;
        return 0;
    }
    if (h->fields[0].name != end + 2 || end[1] != '\0')
        goto bare_lf;
    for (int i = 0; i < h->nfields; i++) {
        const char *name = h->fields[i].name, *value = h->fields[i].value;
        const char *name_end = name + strlen(name);
        for (const char *p = name_end + 1; p < value; p++) {
            if (*p == '\0') {
                snprintf(err, errlen, "whitespace between a header name and its colon");
                return -1;
            }
        }
        end = value + strlen(value);
        if (end[1] != '\0')
            goto bare_lf;
        if (i + 1 < h->nfields) {
            if (h->fields[i + 1].name != end + 2)
                goto bare_lf;
        } else if (end[2] != '\r' || end[3] != '\0') {
            if (h->nfields >= h->max_fields)
                snprintf(err, errlen, "more than %d header fields", h->max_fields);
            else
                snprintf(err, errlen, "folded or malformed header line");
            return -1;
        }
    }
    return 0;
bare_lf:
    snprintf(err, errlen, "request lines must end with CRLF");
    return -1;
}

int framing_check(const framing_head *head, char *err, size_t errlen)
{
    if (head->check_line_endings && framing_check_lines(head, err, errlen) != 0)
        return -1;
    return framing_check_length(head->http_version, head->fields, head->nfields, err, errlen);
}
