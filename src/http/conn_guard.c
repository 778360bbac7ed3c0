/*
 * conn_guard: connection accounting and eviction of slow or idle clients. See conn_guard.h.
 *
 * The table has twice as many slots as workers (a worker's next connection may be opened a
 * moment before the previous one's close is recorded). A slot is free when `used` is false.
 */
#include "conn_guard.h"

/* Least time between two scans started by conn_guard_open. */
#define CONN_GUARD_SCAN_GAP_MS 10

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn_slot {
    bool used;                  /* guarded by the mutex */
    conn_peer peer;             /* set by begin (the connection's own worker), read in a scan */
    atomic_bool known;          /* peer is valid */
    atomic_int state;           /* conn_state */
    atomic_uint_fast64_t since; /* ms when the current state began */
    atomic_bool kicked;         /* shut for reading by a kick: the next answer says close */
    int fd; /* the connection's socket once conn_guard_conn_fd found it, else -1; read and
             * written only by the connection's own worker (open/close reset it) */
} conn_slot;

struct conn_guard {
    conn_guard_config cfg;
    pthread_mutex_t lock; /* guards slot allocation and the scan + kicks */
    int nslots;
    conn_slot *slots;
    atomic_int open, busy;
    uint64_t last_scan_ms; /* guarded by the mutex: the last scan conn_guard_open ran */
    atomic_uint_fast64_t evicted, over_cap;
    pthread_t ticker; /* conn_guard_start's thread */
    bool ticking;
    atomic_bool stopping;
};

conn_guard *conn_guard_new(const conn_guard_config *cfg)
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

void conn_guard_set_ports(conn_guard *g, const int *ports, int n)
{
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < CONN_GUARD_PORTS; i++)
        g->cfg.ports[i] = i < n ? ports[i] : 0;
    pthread_mutex_unlock(&g->lock);
}

/* Victim order (conn_guard.h): lower rank first, then older. */
static int conn_rank(conn_state st)
{
    return st == CONN_WAITING ? 0 : st == CONN_BODY ? 1 : 2;
}

static bool conn_before(const conn_sock *a, const conn_sock *b)
{
    int ra = conn_rank(a->state), rb = conn_rank(b->state);
    if (ra != rb)
        return ra < rb;
    if (a->since != b->since)
        return a->since < b->since;
    return a->ino < b->ino;
}

/* The first victim among sockets not yet marked, of `addr` when not NULL, or -1. */
static int conn_next_victim(const conn_sock *s, int n, const char *addr, uint64_t now_ms)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (s[i].kick || s[i].state == CONN_BUSY || s[i].state == CONN_QUEUED)
            continue;
        uint64_t grace =
            s[i].state == CONN_KEEPALIVE ? CONN_GUARD_IDLE_GRACE_MS : CONN_GUARD_GRACE_MS;
        if (now_ms < s[i].since + grace)
            continue;
        if (addr != NULL && strcmp(s[i].peer.addr, addr) != 0)
            continue;
        if (best < 0 || conn_before(&s[i], &s[best]))
            best = i;
    }
    return best;
}

int conn_guard_plan(conn_sock *socks, int n, int max_per_client, int max_waiting, uint64_t now_ms,
                    int *over_cap)
{
    int marked = 0;
    *over_cap = 0;
    for (int i = 0; max_per_client > 0 && i < n; i++) {
        int count = 0;
        for (int j = 0; j < n; j++)
            if (!socks[j].kick && strcmp(socks[j].peer.addr, socks[i].peer.addr) == 0)
                count++;
        while (count > max_per_client) {
            int v = conn_next_victim(socks, n, socks[i].peer.addr, now_ms);
            if (v < 0)
                break; /* all of them are being served: none is cut off mid-request */
            socks[v].kick = true;
            count--;
            marked++;
            (*over_cap)++;
        }
    }
    int waiting = 0;
    for (int i = 0; i < n; i++)
        waiting += !socks[i].kick && socks[i].state != CONN_BUSY && socks[i].state != CONN_QUEUED;
    while (waiting > max_waiting) {
        int v = conn_next_victim(socks, n, NULL, now_ms);
        if (v < 0)
            break;
        socks[v].kick = true;
        waiting--;
        marked++;
    }
    return marked;
}

/* Does `sa` name a TCP endpoint? Fills text and port. */
static bool conn_endpoint(const struct sockaddr_storage *sa, char *text, size_t len, int *port)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *port = ntohs(in->sin_port);
        return inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)len) != NULL;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        *port = ntohs(in6->sin6_port);
        return inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)len) != NULL;
    }
    return false;
}

int conn_guard_scan(const int *ports, int nports, uint64_t now_ms, conn_sock *out, int max)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while (n < max && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        struct sockaddr_storage local, peer;
        socklen_t llen = sizeof local, plen = sizeof peer;
        char addr[INET6_ADDRSTRLEN], link[64], path[64];
        int lport = 0, pport = 0;
        if (fd == dirfd(d) || getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
            !conn_endpoint(&local, addr, sizeof addr, &lport))
            continue;
        bool ours = false;
        for (int i = 0; i < nports; i++)
            ours |= ports[i] != 0 && ports[i] == lport;
        if (!ours || getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
            !conn_endpoint(&peer, addr, sizeof addr, &pport))
            continue; /* a listening socket has no peer */
        char c;
        ssize_t pending = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (pending == 0)
            continue; /* end-of-file: kicked already (or the client left); closing anyway */
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(path, link, sizeof link - 1);
        link[k > 0 ? k : 0] = '\0';
        unsigned long ino = 0;
        sscanf(link, "socket:[%lu]", &ino);
        /* How long the client has sent nothing (since it connected, if it never sent). */
        struct tcp_info ti;
        socklen_t tlen = sizeof ti;
        uint64_t quiet = 0;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0)
            quiet = ti.tcpi_last_data_recv;
        conn_sock *s = &out[n++];
        *s = (conn_sock){.fd = fd,
                         .ino = ino,
                         /* unread input: the client has spoken, and no worker has
                          * read it yet (still queued): not an idle connection */
                         .state = pending > 0 ? CONN_QUEUED : CONN_WAITING,
                         .since = now_ms > quiet ? now_ms - quiet : 0,
                         .peer.port = pport};
        snprintf(s->peer.addr, sizeof s->peer.addr, "%s", addr);
    }
    closedir(d);
    return n;
}

int conn_guard_find(int local_port, const conn_peer *peer)
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
        struct sockaddr_storage local, remote;
        socklen_t llen = sizeof local, rlen = sizeof remote;
        char addr[INET6_ADDRSTRLEN];
        int lport = 0, rport = 0;
        if (fd != dirfd(d) && getsockname(fd, (struct sockaddr *)&local, &llen) == 0 &&
            conn_endpoint(&local, addr, sizeof addr, &lport) && lport == local_port &&
            getpeername(fd, (struct sockaddr *)&remote, &rlen) == 0 &&
            conn_endpoint(&remote, addr, sizeof addr, &rport) && rport == peer->port &&
            strcmp(addr, peer->addr) == 0)
            found = fd;
    }
    closedir(d);
    return found;
}

int conn_guard_conn_fd(conn_guard *g, int slot, int local_port, const conn_peer *peer)
{
    if (g == NULL || slot < 0 || slot >= g->nslots)
        return conn_guard_find(local_port, peer);
    conn_slot *s = &g->slots[slot];
    if (s->fd < 0)
        s->fd = conn_guard_find(local_port, peer);
    return s->fd;
}

bool conn_socket_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))
        return true;
    char c;
    return (p.revents & POLLIN) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static uint64_t conn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* How many connections may wait for their clients: the workers left once the busy ones and
 * the reserve are taken out. Busy ones count, so when handlers (say, stalled plugin calls) hold
 * most workers, idle connections are not left to hold the rest until --keep-alive-ms. */
static int conn_guard_max_waiting(conn_guard *g)
{
    int m = g->cfg.slots - g->cfg.reserve - atomic_load(&g->busy);
    return m > 0 ? m : 0;
}

/* The slot a scanned socket belongs to (its client's address and port), or -1. Caller holds
 * the lock. */
static int conn_guard_match(conn_guard *g, const conn_sock *sock)
{
    for (int j = 0; j < g->nslots; j++) {
        conn_slot *s = &g->slots[j];
        if (s->used && atomic_load(&s->known) && s->peer.port == sock->peer.port &&
            strcmp(s->peer.addr, sock->peer.addr) == 0)
            return j;
    }
    return -1;
}

/* Scan, match with the slots, plan and kick. Caller holds the lock.
 *
 * A kick is shutdown(SHUT_RD), never SHUT_WR: the worker wakes, and whatever its client has
 * sent by then is still read (Linux keeps queueing and delivering data after SHUT_RD; only an
 * empty queue reads as end-of-file). So a request that arrives at the moment of the kick is
 * served — answered with "Connection: close" (conn_guard_kicked) — and only a connection whose
 * client really sent nothing is closed, by its own worker, exactly as a keep-alive timeout
 * closes it. Shutting both directions, as this did first, made a request that crossed the kick
 * fail at the TCP level ("Remote end closed connection without response"): with 12 keep-alive
 * clients on 8 workers, 2,448 of 17,000 requests. */
static void conn_guard_enforce(conn_guard *g)
{
    uint64_t now_ms = conn_now_ms();

    int max = g->nslots + 256;
    conn_sock *socks = calloc((size_t)max, sizeof *socks);
    int *slot_of = calloc((size_t)max, sizeof *slot_of);
    if (socks == NULL || slot_of == NULL) {
        free(socks);
        free(slot_of);
        return;
    }
    int n = conn_guard_scan(g->cfg.ports, CONN_GUARD_PORTS, now_ms, socks, max);
    for (int i = 0; i < n; i++) {
        int j = slot_of[i] = conn_guard_match(g, &socks[i]);
        /* Unread input outranks what the slot says: a kept-alive connection whose next
         * request is waiting is not idle. Otherwise the slot's state, quiet since the later of
         * its change and the client's last bytes (a worker may have read the next head
         * already and not yet reached begin_request). */
        if (j < 0 || socks[i].state == CONN_QUEUED)
            continue;
        uint64_t since = atomic_load(&g->slots[j].since);
        socks[i].state = (conn_state)atomic_load(&g->slots[j].state);
        socks[i].since = since > socks[i].since ? since : socks[i].since;
    }
    int over_cap = 0;
    int marked = conn_guard_plan(socks, n, g->cfg.max_per_client, conn_guard_max_waiting(g), now_ms,
                                 &over_cap);
    for (int i = 0; i < n && marked > 0; i++) {
        if (!socks[i].kick)
            continue;
        if (slot_of[i] >= 0)
            atomic_store(&g->slots[slot_of[i]].kicked, true);
        shutdown(socks[i].fd, SHUT_RD);
    }
    atomic_fetch_add(&g->over_cap, (uint64_t)over_cap);
    atomic_fetch_add(&g->evicted, (uint64_t)(marked - over_cap));
    free(slot_of);
    free(socks);
}

/* More connections wait for their clients than leave `reserve` workers free, or more are open
 * than one address may hold (then some address may be over its cap). */
static bool conn_guard_needs_check(conn_guard *g)
{
    int open = atomic_load(&g->open), busy = atomic_load(&g->busy);
    return open - busy > conn_guard_max_waiting(g) ||
           (g->cfg.max_per_client > 0 && open > g->cfg.max_per_client);
}

int conn_guard_open(conn_guard *g)
{
    pthread_mutex_lock(&g->lock);
    int slot = -1;
    for (int i = 0; i < g->nslots && slot < 0; i++)
        if (!g->slots[i].used)
            slot = i;
    if (slot >= 0) {
        conn_slot *s = &g->slots[slot];
        s->used = true;
        atomic_store(&s->known, false);
        atomic_store(&s->kicked, false);
        atomic_store(&s->state, CONN_WAITING);
        atomic_store(&s->since, conn_now_ms());
        s->fd = -1;
        atomic_fetch_add(&g->open, 1);
    }
    /* At most one scan per CONN_GUARD_SCAN_GAP_MS from here: under pressure every new
     * connection would scan otherwise (the ticker still checks every CONN_GUARD_TICK_MS). */
    uint64_t now_ms = conn_now_ms();
    if (conn_guard_needs_check(g) && now_ms >= g->last_scan_ms + CONN_GUARD_SCAN_GAP_MS) {
        g->last_scan_ms = now_ms;
        conn_guard_enforce(g);
    }
    pthread_mutex_unlock(&g->lock);
    return slot;
}

static void *conn_guard_ticker(void *arg)
{
    conn_guard *g = arg;
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = CONN_GUARD_TICK_MS * 1000000L};
    while (!atomic_load(&g->stopping)) {
        nanosleep(&pause, NULL);
        if (conn_guard_needs_check(g)) {
            pthread_mutex_lock(&g->lock);
            conn_guard_enforce(g);
            pthread_mutex_unlock(&g->lock);
        }
    }
    return NULL;
}

int conn_guard_start(conn_guard *g)
{
    if (pthread_create(&g->ticker, NULL, conn_guard_ticker, g) != 0)
        return -1;
    g->ticking = true;
    return 0;
}

void conn_guard_stop(conn_guard *g)
{
    if (g == NULL || !g->ticking)
        return;
    atomic_store(&g->stopping, true);
    pthread_join(g->ticker, NULL);
    g->ticking = false;
}

void conn_guard_set_state(conn_guard *g, int slot, conn_state state, uint64_t now_ms)
{
    if (slot < 0 || slot >= g->nslots)
        return;
    conn_slot *s = &g->slots[slot];
    int old = atomic_exchange(&s->state, (int)state);
    if (old == (int)state)
        return;
    atomic_store(&s->since, now_ms);
    if (old == CONN_BUSY)
        atomic_fetch_sub(&g->busy, 1);
    if (state == CONN_BUSY)
        atomic_fetch_add(&g->busy, 1);
}

void conn_guard_begin(conn_guard *g, int slot, const conn_peer *peer, uint64_t now_ms)
{
    if (slot < 0 || slot >= g->nslots)
        return;
    conn_slot *s = &g->slots[slot];
    if (!atomic_load(&s->known)) {
        /* Written before `known` is published; a scan reads peer only after seeing known. */
        s->peer = *peer;
        atomic_store(&s->known, true);
    }
    conn_guard_set_state(g, slot, CONN_BUSY, now_ms);
}

void conn_guard_close(conn_guard *g, int slot)
{
    if (slot < 0 || slot >= g->nslots)
        return;
    pthread_mutex_lock(&g->lock);
    conn_slot *s = &g->slots[slot];
    if (s->used) {
        if (atomic_exchange(&s->state, 0) == CONN_BUSY)
            atomic_fetch_sub(&g->busy, 1);
        atomic_store(&s->known, false);
        s->fd = -1;
        s->used = false;
        atomic_fetch_sub(&g->open, 1);
    }
    pthread_mutex_unlock(&g->lock);
}

bool conn_guard_pressure(conn_guard *g)
{
    return atomic_load(&g->open) - atomic_load(&g->busy) >= g->cfg.slots - g->cfg.reserve;
}

bool conn_guard_kicked(conn_guard *g, int slot)
{
    return slot >= 0 && slot < g->nslots && atomic_load(&g->slots[slot].kicked);
}

void conn_guard_get_stats(conn_guard *g, conn_guard_stats *out)
{
    out->open = atomic_load(&g->open);
    out->busy = atomic_load(&g->busy);
    out->evicted = atomic_load(&g->evicted);
    out->over_cap = atomic_load(&g->over_cap);
}
