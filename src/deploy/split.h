/*
 * split: the arithmetic of a model's traffic split, as pure functions over an array of integer
 * weights (percent, one per live version, newest version first, summing to 100 while a split is
 * in effect). The deployment manager owns the arrays and the locks; these functions only compute,
 * so they are tested without a manager, a registry or a plugin.
 *
 * Thread-safety: pure (split_point's random branch uses per-thread state only).
 */
#ifndef DS_SPLIT_H
#define DS_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

/* A number in [0, 100): from the hash of routing_key when non-NULL (sticky: one key, one point),
 * else per-thread pseudo-random. */
unsigned split_point(const char *routing_key);

/* The index whose cumulative weight first exceeds point (0..99); 0 when the weights sum to at
 * most point (a split sums below 100 only transiently: the newest version takes the rest). */
size_t split_pick(const int *weights, size_t n, unsigned point);

/* A version with `removed` weight has just left: spread it over the n remaining weights in
 * proportion to theirs (evenly when they all had 0), the rounding remainder to the largest.
 * Returns false when nothing is left to split (n == 0, or the removed version had all the
 * traffic and the rest none): the split ends and the newest version takes everything. */
bool split_spread_removed(int *weights, size_t n, int removed);

/* Weights of a stored split applied to fewer live versions: when they sum to neither 0 nor 100,
 * scale them back to 100 (remainder to the largest). Returns their sum before scaling (0: none of
 * the stored versions is live). */
int split_rescale(int *weights, size_t n);

/* The baseline of a split: the largest weight; on a tie the later index (the older version,
 * which served before the canary arrived). n > 0. */
size_t split_baseline(const int *weights, size_t n);

#endif
