/*
 * conn_guard: keeps slow and idle clients from taking every CivetWeb worker.
 *
 * CivetWeb 1.15 gives each connection a worker thread from the moment it is accepted until it
 * closes, including while it waits for request headers and between keep-alive requests. So a
 * few hundred connections that send nothing, or send a header byte now and then (slowloris),
 * hold every worker and nothing else is served until their timeouts run out. CivetWeb has no
 * hook at accept time, but it calls init_connection on the worker that picks a connection up,
 * begin_request/end_request around each request and connection_close before it closes the
 * socket. With those the guard tracks every connection (one slot per worker) and its state
 * (conn_state below); IDLE, KEEPALIVE and BODY connections are "waiting" for their client.
 * When a worker picks up a connection it:
 *   - caps connections per client address (max_per_client): over the cap, the address's oldest
 *     waiting connection is closed to make room, or the new one when none of its connections is
 *     waiting (all are being served);
 *   - keeps `reserve` workers for new connections: when waiting connections would exceed
 *     slots - reserve, the oldest waiting one is closed.
 * Victims are chosen in this order: IDLE (never sent a whole request: what a slowloris client
 * looks like), then BODY (a slow upload), then KEEPALIVE (a client that was served and may come
 * back, and which CivetWeb closes after the keep-alive timeout anyway); the oldest first.
 * A connection is closed with shutdown(2) on its socket (the "kick"), which wakes its worker
 * with end-of-file; CivetWeb then closes it as usual. nginx does the same under worker pressure
 * (ngx_drain_connections closes idle keep-alive connections). conn_guard_pressure() tells the
 * glue to answer "Connection: close" instead of keeping a connection alive when the pool is
 * short.
 *
 * Thread-safety: every function may be called from any CivetWeb worker. open/close take the
 * guard's mutex (once per connection, not per request); state changes are atomic stores.
 * The kick runs with the mutex held, and close takes it before CivetWeb closes the socket, so a
 * kicked descriptor cannot have been closed and reused by another connection meanwhile.
 */
#ifndef DS_HTTP_CONN_GUARD_H
#define DS_HTTP_CONN_GUARD_H

#include <stdbool.h>
#include <stdint.h>

typedef struct conn_guard conn_guard;

/* IDLE: waiting for the first request's headers; KEEPALIVE: waiting for a later request's;
 * BODY: its request body is being read; BUSY: a handler runs or the response is written. */
typedef enum conn_state {
    CONN_IDLE = 1,
    CONN_KEEPALIVE,
    CONN_BODY,
    CONN_BUSY,
    CONN_KICKED
} conn_state;

typedef struct conn_guard_config {
    int slots;          /* worker threads: connections served at once */
    int max_per_client; /* connections one client address may hold; 0 = no cap */
    int reserve;        /* workers kept free for new connections (clamped to slots - 1) */
} conn_guard_config;

/* A connection as the server sees it: the client's address and port, and our local port. */
typedef struct conn_peer {
    char addr[48]; /* numeric, as CivetWeb prints it ("127.0.0.1", "::1") */
    int port;
    int local_port;
} conn_peer;

/* Closes the connection of `peer` now (the real one: conn_guard_kick_socket). Called with the
 * guard's mutex held. */
typedef void (*conn_guard_kick_fn)(const conn_peer *peer, void *ud);

typedef struct conn_guard_stats {
    int open;         /* connections tracked now */
    int waiting;      /* of which IDLE or BODY */
    uint64_t evicted; /* slow or idle connections closed to make room */
    uint64_t refused; /* new connections closed at once (client over its cap) */
} conn_guard_stats;

/* New guard (owned by the caller, conn_guard_free), or NULL when memory runs out. */
conn_guard *conn_guard_new(const conn_guard_config *cfg, conn_guard_kick_fn kick, void *ud);
void conn_guard_free(conn_guard *g);

/* A worker picked up a new connection (state IDLE). Returns its slot (>= 0), or -1 when it is
 * not tracked (table full: cannot happen with one slot per worker) or was refused; *refused is
 * set when the guard kicked the new connection itself. */
int conn_guard_open(conn_guard *g, const conn_peer *peer, uint64_t now_ms, bool *refused);
/* The connection in `slot` changes state (BODY, BUSY, KEEPALIVE after a response). */
void conn_guard_set_state(conn_guard *g, int slot, conn_state state, uint64_t now_ms);
/* The connection in `slot` closes (CivetWeb's connection_close). */
void conn_guard_close(conn_guard *g, int slot);
/* True when waiting connections leave fewer than `reserve` workers free: the response
 * being written should close its connection instead of keeping it alive. */
bool conn_guard_pressure(conn_guard *g);
void conn_guard_get_stats(conn_guard *g, conn_guard_stats *out);

/* The real kick: finds this process's socket whose local port is peer->local_port and whose
 * peer is peer->addr:peer->port (by scanning /proc/self/fd) and shuts it down. CivetWeb keeps
 * the descriptor private, so this is the one way to reach it; it runs only when a connection is
 * evicted or refused. 0 when found, -1 otherwise. */
int conn_guard_kick_socket(const conn_peer *peer);

#endif
