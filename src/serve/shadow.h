/*
 * shadow: shadow traffic. A model's traffic split may name a shadow version and a percent
 * (PUT /deployments/<m>/traffic {"weights":{...},"shadow":{"version":"3","percent":20}}): that
 * share of the model's unversioned requests is, after the client has its answer from the split's
 * version, also run on the shadow version by a background worker. The shadow's answer is never
 * returned; it is counted in the shadow version's stats like any request (so its latency and
 * errors show in /models/stats and /v2/models/<m>/versions/<v>/stats) and compared with the
 * primary's: a different status or different outputs (names, datatypes, shapes, data; model
 * name/version and id ignored) adds to its mismatch_count.
 *
 * Off the client's path: the request thread only copies the request and response into a bounded
 * queue (max_queue entries); when the queue is full the copy is dropped and counted in the
 * shadow's shadow_dropped, and the client never waits. The workers run at SCHED_IDLE, so on a
 * saturated machine shadows yield the CPU to client requests (and get dropped). A copy whose shadow
 * version was undeployed before it ran is skipped (there is no deployment left to count it in).
 *
 * Thread-safety: shadow_offer runs on many HTTP threads; one mutex guards the queue (held for a
 * list push/pop only); workers run inference without it.
 */
#ifndef DS_SHADOW_H
#define DS_SHADOW_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "deploy.h"

typedef struct shadow shadow;

/* Start `workers` threads with a queue of max_queue copies. 0 or -1 (*out NULL). */
int shadow_new(size_t max_queue, int workers, deploy_manager *m, shadow **out);
/* Stop the workers (the copies still queued are dropped) and free. NULL is a no-op. */
void shadow_free(shadow *s);

/* A copy of one unversioned request for (model, shadow_version): the request body (with its
 * Inference-Header-Content-Length, or (size_t)-1) and the primary's answer (status, body with
 * its tail and its JSON part's length). Copies everything; false when the queue was full or memory
 * ran out (the copy is dropped and counted in the shadow's shadow_dropped). */
typedef struct shadow_copy {
    const char *model, *version;
    const char *body;
    size_t body_len, header_len;
    int primary_status;
    const char *primary_body;
    size_t primary_len, primary_json_len;
    const ds_span *primary_tail; /* bytes of the primary's answer after primary_body (its http */
    unsigned primary_tail_count; /* response's tail), or NULL: copied behind primary_body */
} shadow_copy;
bool shadow_offer(shadow *s, const shadow_copy *c);

/* Whether two OIP responses say the same: same status, and when both succeeded the same
 * "outputs" (and the same binary tail). Pure; exposed for unit tests. */
bool shadow_same(int status_a, const char *a, size_t a_len, size_t a_json, int status_b,
                 const char *b, size_t b_len, size_t b_json);

/* Copies handled so far (run and compared, or skipped), for tests. */
unsigned long long shadow_done(shadow *s);

#endif
