/*
 * guard: the automatic rollback rule of a traffic split, as pure functions — parse and print the
 * rule, and judge one canary's recent window against the baseline's. The deployment manager
 * calls guard_breached once a second per guarded model and moves the traffic itself.
 *
 * A canary is judged once it has at least min_requests in the window: it breaches when its 5xx
 * rate exceeds max_error_rate, or its p99 exceeds max_p99_ratio times the baseline's (when
 * max_p99_ratio > 0).
 *
 * Thread-safety: pure; a deploy_guard belongs to whoever holds it (the manager keeps one per
 * model under the model's lifecycle mutex).
 */
#ifndef DS_GUARD_H
#define DS_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "stats.h"

typedef struct deploy_guard {
    bool enabled;
    double max_error_rate; /* canary 5xx share over the window above this trips the guard */
    double max_p99_ratio;  /* canary p99 / baseline p99 above this trips it (0 = not checked) */
    uint64_t min_requests; /* canary requests in the window before it is judged */
    int window_s;          /* 1..60 */
    bool tripped;
    char reason[256];
} deploy_guard;

/* Parse a guard object {"max_error_rate","max_p99_ratio","min_requests","window_s"} (plus the
 * "state" and "reason" that guard_json writes), given as JSON text. Defaults: max_error_rate 1,
 * max_p99_ratio 0, min_requests 100, window_s 30. 0, or -1 with a message in err. */
int guard_parse(const char *json, deploy_guard *out, char *err, size_t errlen);

/* Append the guard as JSON ("null" when not enabled), with "state":"armed"|"tripped" and
 * "reason". */
void guard_json(const deploy_guard *g, ds_buf *out);

/* true (and a one-line reason naming both versions and the figures) when the canary's window
 * breaches the rule. */
bool guard_breached(const deploy_guard *g, const stats_window_view *canary,
                    const stats_window_view *baseline, const char *canary_version,
                    const char *baseline_version, char *reason, size_t len);

#endif
