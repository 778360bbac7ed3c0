/*
 * body: the JSON request bodies of the management API and /predict — an object whose keys are
 * all known (unknown fields are a 400), and name fields that follow base/names.h. Parsed with
 * cJSON (not the hot path). On a bad body these write the 400 themselves.
 *
 * Thread-safety: pure over the request and response given.
 */
#ifndef DS_BODY_H
#define DS_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

struct cJSON;

/* Parse a JSON object body (any keys). NULL after writing a 400 — also when a string in it
 * holds an escaped NUL (base/jsonscan.h). The caller owns the result (cJSON_Delete). */
struct cJSON *body_parse(const http_request *req, http_response *resp);

/* The same, and every key must be in `allowed` (NULL-terminated). */
struct cJSON *body_object(const http_request *req, http_response *resp, const char *const *allowed);

/* A name field of obj: a string, or for "version" also a whole number ({"version": 2}, as
 * Triton clients send it). Returns NULL when absent; *bad set (and a 400 written) when present
 * but of another type or not a valid name. buf holds at least NAME_MAX_LEN + 1 bytes; the
 * result points into it. */
const char *body_name_field(const struct cJSON *obj, const char *key, char *buf, size_t len,
                            bool *bad, http_response *resp);

#endif
