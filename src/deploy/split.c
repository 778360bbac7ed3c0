/* split: traffic-split arithmetic over weight arrays. See split.h. */
#include "split.h"

#include <stdint.h>
#include <time.h>

static uint64_t split_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

unsigned split_point(const char *routing_key)
{
    if (routing_key != NULL)
        return (unsigned)(split_hash(routing_key) % 100);
    static _Thread_local uint64_t state; /* per thread: xorshift64*, seeded on first use */
    if (state == 0)
        state = (uint64_t)(uintptr_t)&state ^ (uint64_t)time(NULL) ^ 0x9E3779B97F4A7C15ULL;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (unsigned)((state * 2685821657736338717ULL) >> 32) % 100;
}

size_t split_pick(const int *weights, size_t n, unsigned point)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (unsigned)weights[i];
        if (point < sum)
            return i;
    }
    return 0;
}

bool split_spread_removed(int *weights, size_t n, int removed)
{
    int rest = 0;
    for (size_t i = 0; i < n; i++)
        rest += weights[i];
    if (n == 0 || (rest == 0 && removed == 100))
        return false;
    int given = 0;
    size_t largest = 0;
    for (size_t i = 0; i < n; i++) {
        int w = weights[i];
        int share = rest > 0 ? removed * w / rest : removed / (int)n;
        weights[i] = w + share;
        given += share;
        if (weights[i] > weights[largest])
            largest = i;
    }
    weights[largest] += removed - given; /* rounding remainder */
    return true;
}

int split_rescale(int *weights, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += weights[i];
    if (sum > 0 && sum != 100) {
        int total = 0;
        size_t largest = 0;
        for (size_t i = 0; i < n; i++) {
            weights[i] = weights[i] * 100 / sum;
            total += weights[i];
            if (weights[i] > weights[largest])
                largest = i;
        }
        weights[largest] += 100 - total;
    }
    return sum;
}

size_t split_baseline(const int *weights, size_t n)
{
    size_t base = 0;
    for (size_t i = 1; i < n; i++)
        if (weights[i] >= weights[base])
            base = i;
    return base;
}
