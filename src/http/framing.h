/*
 * framing: the HTTP/1.1 message-framing rules CivetWeb 1.15 does not enforce (RFC 9112).
 *
 * CivetWeb 1.15 serves a request that carries both Content-Length and Transfer-Encoding by its
 * chunked body and keeps the connection open (so bytes after the last chunk run as a second
 * request: request smuggling), takes the first of two conflicting Content-Length headers, reads
 * "5abc" as 5, accepts bare-LF line endings, whitespace before a header's colon and folded
 * header lines, and silently ignores header fields after the 64th. A front proxy that parses the
 * same bytes differently would disagree with us about where a request ends. The http glue calls
 * framing_check() before any handler runs and answers 400 with "Connection: close" when it fails
 * (RFC 9112 §6.3, §5.1, §5.2, §2.2). The upstream fix is written out in
 * docs/upstream/civetweb-framing.patch.
 *
 * CivetWeb parses the request head in place: it overwrites every line terminator and the colon
 * with NUL and hands out pointers into that buffer. framing_check() reads the bytes around those
 * pointers to tell CRLF from a bare LF, which the parsed values no longer show. That is a
 * property of CivetWeb's parser (parse_http_request/parse_http_headers), the same in Debian's
 * 1.15 and in the copy vendored in third_party/civetweb, and guarded by the raw-socket tests in
 * test/integration/test_limits.py: if a new CivetWeb changes it, those tests fail. (The
 * vendored copy already refuses Content-Length with Transfer-Encoding itself.)
 *
 * Pure function, no allocation, thread-safe.
 */
#ifndef DS_HTTP_FRAMING_H
#define DS_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

/* One header field as CivetWeb parsed it: pointers into its request buffer. */
typedef struct framing_field {
    const char *name;
    const char *value;
} framing_field;

/* The parsed request head. `http_version` is CivetWeb's (the text after "HTTP/"). */
typedef struct framing_head {
    const char *http_version;
    const framing_field *fields;
    int nfields;
    int max_fields; /* CivetWeb's MG_MAX_HEADERS: a request with more fields is refused */
    /* false for heads that were not parsed in place by CivetWeb (unit tests of the header rules
     * alone): then only the Content-Length / Transfer-Encoding rules are checked. */
    bool check_line_endings;
} framing_head;

/* 0 when the head frames one unambiguous message; -1 with a one-line reason otherwise (the
 * caller answers 400 and closes the connection). */
int framing_check(const framing_head *head, char *err, size_t errlen);

/* The Content-Length / Transfer-Encoding rules alone (RFC 9112 §6.1-6.3): at most one
 * Transfer-Encoding, which must be exactly "chunked", never together with Content-Length,
 * never on HTTP/1.0; Content-Length is 1*DIGIT (at most 18), and repeated ones must agree.
 * 0 or -1 with a reason. */
int framing_check_length(const char *http_version, const framing_field *fields, int nfields,
                         char *err, size_t errlen);

#endif
