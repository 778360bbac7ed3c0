/*
 * path: URL path and query-string helpers for route handlers. Pure; thread-safe.
 */
#ifndef DS_PATH_H
#define DS_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Split a URL path into at most `max` segments ("/a/b/" -> "a","b"), copied into buf. Returns
 * the count, or -1 when there are more segments or they do not fit. */
int path_segments(const char *path, char *buf, size_t buflen, const char **segs, int max);

/* Value of `key` in a query string "a=1&b=2" (NULL allowed) copied into out (truncated to
 * len); false when absent. */
bool path_query_value(const char *query, const char *key, char *out, size_t len);

#endif
