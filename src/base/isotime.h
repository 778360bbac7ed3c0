/*
 * isotime: a Unix time as the registry and the API write times, ISO-8601 UTC to the second
 * ("2026-12-03T18:23:29Z", 21 bytes with the NUL; ISO_TIME_LEN).
 * Thread-safety: pure (gmtime_r); any thread.
 */
#ifndef DS_BASE_ISOTIME_H
#define DS_BASE_ISOTIME_H

#include <stddef.h>
#include <time.h>

#define ISO_TIME_LEN 21

/* Write t into out (len >= ISO_TIME_LEN, else it is cut short). 0, or -1 for a time gmtime_r
 * cannot break down (out is then ""). */
static inline int iso_time_format(time_t t, char *out, size_t len)
{
    struct tm tm;
    if (len == 0)
        return -1;
    out[0] = '\0';
    if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return -1;
    return 0;
}

#endif
