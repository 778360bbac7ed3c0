/*
 * conn_guard: per-connection accounting and eviction of slow or idle clients. See conn_guard.h.
 *
 * The table has twice as many slots as workers (a worker's next connection may be opened a
 * moment before the previous one's close is recorded). A slot is free when `used` is false.
 * Searching it is linear, once per connection open; workers are at most a few hundred.
 */
#include "conn_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct conn_slot {
    bool used;                  /* guarded by the mutex */
    conn_peer peer;             /* set at open, read under the mutex */
    atomic_int state;           /* conn_state, changed by the connection's own worker */
    atomic_uint_fast64_t since; /* ms when the current state began */
} conn_slot;

struct conn_guard {
    conn_guard_config cfg;
    conn_guard_kick_fn kick;
    void *kick_ud;
    pthread_mutex_t lock; /* guards slot allocation (used, peer) and the kick */
    int nslots;
    conn_slot *slots;
    atomic_int waiting; /* slots in IDLE or BODY */
    atomic_int open;
    atomic_uint_fast64_t evicted, refused;
};

static bool conn_waiting(int state)
{
    return state == CONN_IDLE || state == CONN_KEEPALIVE || state == CONN_BODY;
}

/* Lower is evicted first (see conn_guard.h). */
static int conn_victim_rank(int state)
{
    return state == CONN_IDLE ? 0 : state == CONN_BODY ? 1 : 2;
}

conn_guard *conn_guard_new(const conn_guard_config *cfg, conn_guard_kick_fn kick, void *ud)
{
    conn_guard *g = calloc(1, sizeof *g);
    int n = cfg->slots > 0 ? cfg->slots * 2 : 2;
    if (g == NULL || (g->slots = calloc((size_t)n, sizeof *g->slots)) == NULL) {
        free(g);
        return NULL;
    }
    g->cfg = *cfg;
    if (g->cfg.reserve > g->cfg.slots - 1)
        g->cfg.reserve = g->cfg.slots - 1;
    if (g->cfg.reserve < 0)
        g->cfg.reserve = 0;
    g->nslots = n;
    g->kick = kick;
    g->kick_ud = ud;
    pthread_mutex_init(&g->lock, NULL);
    return g;
}

void conn_guard_free(conn_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->lock);
    free(g->slots);
    free(g);
}

/* Mark slot i kicked and close it; caller holds the lock. */
static void conn_kick_slot(conn_guard *g, int i)
{
    int old = atomic_exchange(&g->slots[i].state, CONN_KICKED);
    if (conn_waiting(old))
        atomic_fetch_sub(&g->waiting, 1);
    g->kick(&g->slots[i].peer, g->kick_ud);
}

/* The first victim (by rank, then age) other than `except`, of `addr` when not NULL, or -1.
 * Caller holds the lock. */
static int conn_oldest_waiting(conn_guard *g, const char *addr, int except)
{
    int best = -1, best_rank = 0;
    uint64_t best_since = 0;
    for (int i = 0; i < g->nslots; i++) {
        conn_slot *s = &g->slots[i];
        int st = atomic_load(&s->state);
        if (!s->used || i == except || !conn_waiting(st))
            continue;
        if (addr != NULL && strcmp(s->peer.addr, addr) != 0)
            continue;
        uint64_t since = atomic_load(&s->since);
        int rank = conn_victim_rank(st);
        bool better = best < 0 || rank < best_rank || (rank == best_rank && since < best_since);
        if (better) {
            best = i;
            best_rank = rank;
            best_since = since;
        }
    }
    return best;
}

/* Connections of `addr` that still count against its cap (not kicked); caller holds the lock. */
static int conn_count_addr(conn_guard *g, const char *addr)
{
    int n = 0;
    for (int i = 0; i < g->nslots; i++)
        if (g->slots[i].used && atomic_load(&g->slots[i].state) != CONN_KICKED &&
            strcmp(g->slots[i].peer.addr, addr) == 0)
            n++;
    return n;
}

int conn_guard_open(conn_guard *g, const conn_peer *peer, uint64_t now_ms, bool *refused)
{
    *refused = false;
    pthread_mutex_lock(&g->lock);
    int slot = -1;
    for (int i = 0; i < g->nslots && slot < 0; i++)
        if (!g->slots[i].used)
            slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&g->lock);
        return -1;
    }
    conn_slot *s = &g->slots[slot];
    s->used = true;
    s->peer = *peer;
    atomic_store(&s->since, now_ms);
    atomic_store(&s->state, CONN_IDLE);
    atomic_fetch_add(&g->waiting, 1);
    atomic_fetch_add(&g->open, 1);

    if (g->cfg.max_per_client > 0 && conn_count_addr(g, peer->addr) > g->cfg.max_per_client) {
        int victim = conn_oldest_waiting(g, peer->addr, slot);
        if (victim < 0) {
            conn_kick_slot(g, slot);
            atomic_fetch_add(&g->refused, 1);
            *refused = true;
        } else {
            conn_kick_slot(g, victim);
            atomic_fetch_add(&g->evicted, 1);
        }
    }
    while (!*refused && atomic_load(&g->waiting) > g->cfg.slots - g->cfg.reserve) {
        int victim = conn_oldest_waiting(g, NULL, slot);
        if (victim < 0)
            break;
        conn_kick_slot(g, victim);
        atomic_fetch_add(&g->evicted, 1);
    }
    pthread_mutex_unlock(&g->lock);
    return *refused ? -1 : slot;
}

void conn_guard_set_state(conn_guard *g, int slot, conn_state state, uint64_t now_ms)
{
    if (slot < 0 || slot >= g->nslots)
        return;
    conn_slot *s = &g->slots[slot];
    int old = atomic_load(&s->state);
    /* Only the connection's own worker changes a live state; a kick may race and wins. */
    if (old == CONN_KICKED || old == (int)state)
        return;
    if (!atomic_compare_exchange_strong(&s->state, &old, (int)state))
        return;
    atomic_store(&s->since, now_ms);
    if (conn_waiting(old) && !conn_waiting((int)state))
        atomic_fetch_sub(&g->waiting, 1);
    else if (!conn_waiting(old) && conn_waiting((int)state))
        atomic_fetch_add(&g->waiting, 1);
}

void conn_guard_close(conn_guard *g, int slot)
{
    if (slot < 0 || slot >= g->nslots)
        return;
    pthread_mutex_lock(&g->lock);
    conn_slot *s = &g->slots[slot];
    if (s->used) {
        int old = atomic_exchange(&s->state, 0);
        if (conn_waiting(old))
            atomic_fetch_sub(&g->waiting, 1);
        s->used = false;
        atomic_fetch_sub(&g->open, 1);
    }
    pthread_mutex_unlock(&g->lock);
}

bool conn_guard_pressure(conn_guard *g)
{
    return atomic_load(&g->waiting) >= g->cfg.slots - g->cfg.reserve;
}

void conn_guard_get_stats(conn_guard *g, conn_guard_stats *out)
{
    out->open = atomic_load(&g->open);
    out->waiting = atomic_load(&g->waiting);
    out->evicted = atomic_load(&g->evicted);
    out->refused = atomic_load(&g->refused);
}

/* Does the socket address `sa` name addr:port? */
static bool conn_addr_matches(const struct sockaddr_storage *sa, const char *addr, int port)
{
    char text[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return ntohs(in->sin_port) == port &&
               inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) && strcmp(text, addr) == 0;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return ntohs(in6->sin6_port) == port &&
               inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text) && strcmp(text, addr) == 0;
    }
    return false;
}

static int conn_local_port(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    if (sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&sa)->sin_port);
    if (sa.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&sa)->sin6_port);
    return -1;
}

int conn_guard_kick_socket(const conn_peer *peer)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        if (fd == dirfd(d) || getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
            continue;
        if (conn_addr_matches(&sa, peer->addr, peer->port) &&
            conn_local_port(fd) == peer->local_port) {
            shutdown(fd, SHUT_RDWR);
            found = fd;
        }
    }
    closedir(d);
    return found >= 0 ? 0 : -1;
}
