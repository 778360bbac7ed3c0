/*
 * conn_guard: keeps slow and idle clients from taking every CivetWeb worker.
 *
 * CivetWeb 1.15 gives each connection a worker thread from the moment it is picked up until it
 * closes, including while it waits for request headers and between keep-alive requests. So a
 * few hundred connections that send nothing, or a header byte now and then (slowloris), hold
 * every worker and nothing else is served until their timeouts run out. CivetWeb has no hook at
 * accept time, keeps each connection's socket private, and does not even tell init_connection
 * the client's address. What it does offer: init_connection when a worker picks a connection up,
 * begin_request (the head is complete: address known) and end_request around each request, and
 * connection_close before it closes the socket. The guard counts connections with those and
 * knows the state of each served one: BODY (its body is being read), BUSY (a handler runs or
 * the response is written) or KEEPALIVE (served, waiting for its next request).
 *
 * When a worker picks up a connection and either more than slots - reserve connections are
 * waiting for their client, or more than max_per_client are open at all, the guard looks at
 * this process's sockets (/proc/self/fd: local port one of ours, peer a client), matches them
 * with what it knows, and shuts them for reading with shutdown(SHUT_RD) — the "kick": the
 * worker wakes, reads what the client has sent by then (a request that crossed the kick is
 * still served, with "Connection: close"), sees end-of-file after it and CivetWeb closes the
 * connection as usual —
 *   - per client address, all but max_per_client of its connections, never a BUSY one;
 *   - anywhere, the oldest waiting connections until at most slots - reserve wait.
 * Victims are taken in this order: a connection that never sent a whole request (unknown to
 * the guard: what a slowloris client looks like; its age is how long the client has sent
 * nothing, from TCP_INFO, and one quiet for less than CONN_GUARD_GRACE_MS is left alone), then
 * BODY (a slow upload, likewise), then KEEPALIVE (a served client quiet for at least
 * CONN_GUARD_IDLE_GRACE_MS, which CivetWeb would close after the keep-alive timeout anyway);
 * the quietest first. nginx does
 * the same under pressure (ngx_drain_connections closes idle keep-alive connections).
 * conn_guard_pressure() asks the glue to answer "Connection: close" instead of keeping a
 * connection alive while the pool is short.
 *
 * The scan costs two system calls per open descriptor and runs only under pressure.
 *
 * Thread-safety: every function may be called from any CivetWeb worker. open, close, the scan
 * and the kicks hold the guard's mutex; close takes it before CivetWeb closes the socket, so a
 * descriptor found by the scan cannot be closed and reused by another connection meanwhile.
 * State changes of a served connection are atomic stores, no lock (they happen per request).
 */
#ifndef DS_HTTP_CONN_GUARD_H
#define DS_HTTP_CONN_GUARD_H

#include <stdbool.h>
#include <stdint.h>

typedef struct conn_guard conn_guard;

/* CONN_WAITING: picked up, no whole request yet (the guard does not know its address). */
typedef enum conn_state {
    CONN_WAITING = 1,
    CONN_BODY,
    CONN_BUSY,
    CONN_KEEPALIVE,
    CONN_QUEUED, /* seen by a scan with unread input: sent something no worker read yet */
} conn_state;

/* A connection that has not sent a whole request is not closed before its client has been
 * quiet this long: a client that just connected, or is sending, gets the time to finish. */
#define CONN_GUARD_GRACE_MS 100
/* A served connection (KEEPALIVE) is not closed before it has been quiet this long: an active
 * client is between two requests, and under pressure its next answer says "Connection: close"
 * anyway (conn_guard_pressure), which hands its worker on without any race. */
#define CONN_GUARD_IDLE_GRACE_MS 1000
/* How often the guard's own thread checks for pressure (a worker busy with a slow client cannot
 * do it, and when all of them are, no new connection is picked up to trigger it). */
#define CONN_GUARD_TICK_MS 50

#define CONN_GUARD_PORTS 4

typedef struct conn_guard_config {
    int slots;                   /* worker threads: connections served at once */
    int max_per_client;          /* connections one client address may hold; 0 = no cap */
    int reserve;                 /* workers kept free for new connections (clamped to slots - 1) */
    int ports[CONN_GUARD_PORTS]; /* our listening ports (0 = unused) */
} conn_guard_config;

/* A client's side of a connection: numeric address ("127.0.0.1", "::1") and port. */
typedef struct conn_peer {
    char addr[48];
    int port;
} conn_peer;

/* One server-side socket seen by a scan, with what the guard knows of it. */
typedef struct conn_sock {
    int fd;
    unsigned long ino; /* socket inode number (a tie-break only) */
    conn_peer peer;
    conn_state state; /* CONN_WAITING when the guard knows nothing of it */
    uint64_t since;   /* ms it has been quiet since: the later of its state's start and the
                       * client's last bytes (for an unknown one, the last bytes) */
    bool kick;        /* set by conn_guard_plan */
} conn_sock;

typedef struct conn_guard_stats {
    int open;          /* connections picked up and not closed */
    int busy;          /* of which BUSY */
    uint64_t evicted;  /* waiting connections closed to keep workers free */
    uint64_t over_cap; /* connections closed because their address was over its cap */
} conn_guard_stats;

/* New guard (owned by the caller, conn_guard_free), or NULL when memory runs out. */
conn_guard *conn_guard_new(const conn_guard_config *cfg);
void conn_guard_free(conn_guard *g);
/* Our listening ports, once known (after the listeners are bound; port 0 picks one). */
void conn_guard_set_ports(conn_guard *g, const int *ports, int n);

/* A worker picked up a connection. Returns its slot (>= 0; -1 when the table is full, which
 * one slot per worker rules out); kicks other connections when under pressure. */
int conn_guard_open(conn_guard *g);
/* The connection's head is complete: it becomes BUSY and its client is known. */
void conn_guard_begin(conn_guard *g, int slot, const conn_peer *peer, uint64_t now_ms);
/* The connection in `slot` changes state (BODY, BUSY, KEEPALIVE after a response). */
void conn_guard_set_state(conn_guard *g, int slot, conn_state state, uint64_t now_ms);
/* The connection in `slot` closes (CivetWeb's connection_close). */
void conn_guard_close(conn_guard *g, int slot);
/* True once a kick shut the connection in `slot` for reading: a request it still serves (one
 * that had arrived) must answer "Connection: close". */
bool conn_guard_kicked(conn_guard *g, int slot);
/* True when waiting connections leave fewer than `reserve` workers free. */
bool conn_guard_pressure(conn_guard *g);
void conn_guard_get_stats(conn_guard *g, conn_guard_stats *out);

/* The policy alone: mark (kick = true) the sockets to close so that no address holds more
 * than max_per_client (0 = no cap) and at most max_waiting hold a worker without being BUSY.
 * Never marked: BUSY and QUEUED ones, KEEPALIVE ones quiet for less than
 * CONN_GUARD_IDLE_GRACE_MS and the others quiet for less than CONN_GUARD_GRACE_MS at now_ms.
 * Returns how many were marked; *over_cap of them for the cap. Pure. */
int conn_guard_plan(conn_sock *socks, int n, int max_per_client, int max_waiting, uint64_t now_ms,
                    int *over_cap);

/* Start / stop the guard's thread that enforces the limits every CONN_GUARD_TICK_MS under
 * pressure. start: 0 or -1; stop joins it (call before conn_guard_free). */
int conn_guard_start(conn_guard *g);
void conn_guard_stop(conn_guard *g);

/* This process's server-side TCP sockets on one of `ports` (up to max), from /proc/self/fd,
 * except those at end-of-file (kicked already, or the client left); state CONN_QUEUED when
 * input is waiting unread (see conn_state), else CONN_WAITING; and
 * since = when the client last sent data, or connected (TCP_INFO's tcpi_last_data_recv).
 * Returns the count. */
int conn_guard_scan(const int *ports, int nports, uint64_t now_ms, conn_sock *out, int max);

/* This process's TCP socket whose local port is local_port and whose peer is `peer`, from
 * /proc/self/fd (also one at end-of-file: that is what a caller looking for a client that left
 * wants); -1 when there is none. Three system calls per open descriptor. The caller must know
 * the connection stays open meanwhile (its own request's, served on its thread). */
int conn_guard_find(int local_port, const conn_peer *peer);

/* conn_guard_find for the connection in `slot`, once per connection: the socket is kept in the
 * slot, so a keep-alive connection's later requests cost nothing (the /proc/self/fd scan is
 * O(open descriptors): per request it took ~40% of the CPU of a small model's inference).
 * Called only by the connection's own worker while it serves a request; g NULL or no slot:
 * a plain conn_guard_find. */
int conn_guard_conn_fd(conn_guard *g, int slot, int local_port, const conn_peer *peer);

/* true when the client of socket fd has closed its side or the connection broke: a poll(2)
 * without waiting (POLLRDHUP, POLLHUP, POLLERR), and a 1-byte MSG_PEEK | MSG_DONTWAIT that reads
 * end-of-file. Unread pipelined input is not "gone". nginx's 499 test, the same way. */
bool conn_socket_gone(int fd);

#endif
