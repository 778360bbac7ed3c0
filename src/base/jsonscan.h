/*
 * jsonscan: checks on raw JSON text that a parsed cJSON tree can no longer show.
 *
 * cJSON decodes "\u0000" inside a string to a NUL byte and hands out C strings, so
 * {"name":"x\u0000y"} reads as the name "x": the rest is silently dropped. Management bodies
 * are refused when any string in them carries an escaped NUL.
 *
 * Pure functions, thread-safe.
 */
#ifndef DS_BASE_JSONSCAN_H
#define DS_BASE_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

/* True when a JSON string in text[0..len) contains the escape \u0000 (any hex case). Escaped
 * backslashes are followed ("\\u0000" is the six characters, not a NUL). Text that is not JSON
 * is scanned the same way; the parser refuses it anyway. */
bool json_has_escaped_nul(const char *text, size_t len);

#endif
