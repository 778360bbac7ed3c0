/*
 * phase_stats: the per-deployment counters behind Triton's statistics extension
 * (GET /v2/models[/<m>[/versions/<v>]]/stats): success and fail {count, ns}, the request phases
 * queue / compute_input / compute_infer / compute_output {count, ns}, inference and execution
 * counts, per-batch-size execution stats, and the shadow-traffic comparison counts.
 *
 * What the phases measure on our data path (infer.c times them with CLOCK_MONOTONIC):
 *   queue          waiting to execute: admission (max_in_flight queue) and the exec lock of a
 *                  plugin that is not thread-safe
 *   compute_input  decoding the OIP request and checking it against the model's metadata
 *   compute_infer  the plugin's execute()
 *   compute_output checking the outputs against the metadata and encoding the OIP response
 * As in Triton, the phase counts and batch stats cover successful requests only; a failed
 * request adds to `fail` alone. inference_count adds the batch size (the first dimension of the
 * first input when the model declares it variable, else 1); execution_count adds 1 per call of
 * the plugin: with dynamic batching one call serves several requests, so execution_count <
 * inference_count, and batch_stats are keyed by the rows of each execution (Triton's terms).
 *
 * Memory: one fixed allocation (~5 KiB). Counters are striped per thread like stats.c (relaxed
 * atomics, one stripe per cache line pair); batch stats live in an open-addressed table of
 * PHASE_BATCH_SLOTS sizes claimed with a CAS; executions of a size that finds the table full are
 * counted in `batch_overflow` instead.
 *
 * Thread-safety: phase_stats_success/_fail/_shadow may run on any number of threads at once;
 * phase_stats_snapshot may run concurrently with them (each counter exact, counters not read at
 * one instant). new/free are not concurrent with anything on the same object.
 */
#ifndef DS_PHASE_STATS_H
#define DS_PHASE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ds_phase_stats ds_phase_stats;

enum { PHASE_QUEUE, PHASE_INPUT, PHASE_INFER, PHASE_OUTPUT, PHASE_COUNT };

#define PHASE_BATCH_SLOTS 64

typedef struct phase_duration {
    uint64_t count;
    uint64_t ns;
} phase_duration;

/* One request's measured phases (ns) and its batch size (0 is counted as 1). batched: it ran
 * in a dynamic batch whose execution phase_stats_execution counted (so this request adds to
 * inference_count only); otherwise it was an execution of its own. */
typedef struct phase_sample {
    uint64_t ns[PHASE_COUNT];
    uint64_t batch_size;
    bool batched;
} phase_sample;

typedef struct phase_batch {
    uint64_t batch_size;
    phase_duration input, infer, output;
} phase_batch;

typedef struct phase_snapshot {
    phase_duration success, fail;
    phase_duration phase[PHASE_COUNT];
    uint64_t inference_count, execution_count;
    size_t batch_count; /* entries used in batch[], ascending batch_size */
    phase_batch batch[PHASE_BATCH_SLOTS];
    uint64_t batch_overflow;        /* executions whose size found the table full */
    uint64_t shadow_count;          /* shadow requests compared with their primary */
    uint64_t shadow_mismatch_count; /* ... whose status or outputs differed */
    uint64_t shadow_dropped;        /* shadow copies dropped because the queue was full */
} phase_snapshot;

/* Zeroed; caller owns, release with phase_stats_free. NULL when memory runs out. */
ds_phase_stats *phase_stats_new(void);
void phase_stats_free(ds_phase_stats *p);

/* A successful request: total_ns end to end, and its phases. Lock-free. */
void phase_stats_success(ds_phase_stats *p, uint64_t total_ns, const phase_sample *sample);
/* One execution of a dynamic batch of `batch_size` rows that took infer_ns (batch stats and
 * execution_count; its requests add their rows with phase_stats_success). Lock-free. */
void phase_stats_execution(ds_phase_stats *p, uint64_t batch_size, uint64_t infer_ns);
/* A failed request (any non-2xx answer): total_ns end to end. Lock-free. */
void phase_stats_fail(ds_phase_stats *p, uint64_t total_ns);
/* A shadow request of this deployment was compared with the primary's answer. */
void phase_stats_shadow(ds_phase_stats *p, bool mismatch);
/* A shadow copy for this deployment was dropped (queue full). */
void phase_stats_shadow_dropped(ds_phase_stats *p);

/* Copy every counter into *out (batch[] sorted by batch_size). */
void phase_stats_snapshot(const ds_phase_stats *p, phase_snapshot *out);

#endif
