/*
 * canary: versioned traffic splits of a model — set, promote, roll back, keep them through
 * undeploys and restarts — and the automatic rollback guard that takes a failing canary's
 * traffic away.
 *
 * A split gives each live version an integer weight, summing to 100. The unversioned infer route
 * picks a version per request: by the hash of the routing key (sticky: one key, one version, as
 * long as the split is unchanged) or at random. A split is swapped under the model's write lock,
 * so a request sees the old split or the new one, never a mix. Every change is stored in the
 * registry (history kept for rollback) with an event.
 *
 * The guard compares each canary (every version but the baseline, the one with the largest
 * weight, the older version on a tie) with the baseline over a recent window, once a second: when
 * the canary has at least min_requests and its 5xx rate exceeds max_error_rate, or its p99 exceeds
 * max_p99_ratio times the baseline's, its weight moves to the baseline, the guard is marked tripped
 * with the figures, and an event records why.
 *
 * Thread-safety: every function takes the model's lifecycle mutex (except where noted), so they
 * are serialized with deploy/undeploy of the same model and may be called from any thread.
 */
#ifndef DS_CANARY_H
#define DS_CANARY_H

#include <stddef.h>

#include "deploy.h"

typedef struct canary_guard canary_guard;

/* Make {versions[i]: weights[i]} the model's split. Every version must be live (409 otherwise);
 * weights are 0..100 and sum to 100 (400). guard may be NULL (no guard). 200 on success. */
deploy_result canary_set(deploy_manager *m, const char *model, const char *const *versions,
                         const int *weights, size_t n, const canary_guard *guard,
                         const char *reason);
/* All traffic to one live version. */
deploy_result canary_promote(deploy_manager *m, const char *model, const char *version);
/* Back to the split before the last change (versions no longer live are dropped and their weight
 * spread over the rest). 404 when there is no earlier split. */
deploy_result canary_rollback(deploy_manager *m, const char *model);

/* Parse a guard object {"max_error_rate","max_p99_ratio","min_requests","window_s"}, cJSON
 * given as its text. 0, or -1 with a message. */
int canary_guard_parse(const char *json, canary_guard *out, char *err, size_t errlen);

/* Current splits of every model as JSON text appended to out:
 * [{"model_name","weights":{"1":90,...},"guard":{...,"state":"armed"|"tripped","reason"}}]. */
void canary_describe(deploy_manager *m, ds_buf *out);

/* ---- used by the deployment manager -------------------------------------------------------- */

/* With dm->lock held for writing, right after a version left dm->versions: spread its weight
 * over the remaining versions in proportion (the split ends when none is left). */
void canary_on_removed_locked(deploy_model *dm, int removed_weight);
/* With dm->lifecycle held: store the model's current split in the registry (after an undeploy
 * changed it). */
void canary_persist(deploy_manager *m, deploy_model *dm, const char *reason);
/* After deploy_restore: re-apply every model's stored split and guard. */
void canary_restore(deploy_manager *m);
/* Once a second: evaluate the guards. */
void canary_tick(deploy_manager *m);

#endif
