/*
 * names: the one rule for the names dynserve accepts — model names, versions, endpoint names,
 * event kinds and plugin tensor names: ASCII letters, digits, '_', '.', '-', at most
 * NAME_MAX_LEN characters, and never "." or ".." (a name can become a path segment).
 *
 * Pure functions; thread-safe.
 */
#ifndef DS_NAMES_H
#define DS_NAMES_H

#include <stdbool.h>

#define NAME_MAX_LEN 64
/* The rule as clients read it in error messages. */
#define NAME_RULE "[A-Za-z0-9_.-]{1,64}"

/* true for a character a name may hold (locale-independent, ASCII only). */
bool name_char_ok(char c);
/* true when s is 1..NAME_MAX_LEN name characters and not "." or "..". NULL is not a name. */
bool name_valid(const char *s);

#endif
