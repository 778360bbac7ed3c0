/*
 * worker_proto: the wire between the server and a `dynserve worker` process. Shared by both
 * sides (worker.c in the server, worker_main.c in the child); nothing else includes it.
 *
 * Transport. The server starts the worker with posix_spawn and hands it, at fixed descriptor
 * numbers, one control socket and, per channel, a memfd:
 *
 *   fd 3              control (AF_UNIX SOCK_SEQPACKET): INIT, INIT_OK/INIT_ERR, STOP; its EOF
 *                     tells either side that the other one is gone (the worker then exits)
 *   fd 4 + i          channel i shared memory (memfd, sealed against shrinking): a doorbell
 *                     (wp_bell, futex words) and then the data area; EXEC -> DONE, one at a time
 *   fd 4 + count      the plugin file, opened read-only by the server (the worker dlopens
 *                     /proc/self/fd/N after dropping privileges, so it needs no access to the
 *                     data directory)
 *   fd 5 + count      a model directory version's artifact directory (O_DIRECTORY, read-only),
 *                     or nothing for a plain .so version: the instance is told
 *                     /proc/self/fd/N as its artifact_dir, for the same reason
 *
 * Messages on the control socket are one fixed wp_msg each. A channel's EXEC and DONE are futex
 * words in its doorbell (a socket round trip cost ~3 us more per call: bench/isolation). Everything
 * of variable size (tensors, names, the init parameters, metadata) travels in the channel's
 * data area, addressed by (offset, length) pairs from its start, so no JSON and no copying
 * through the kernel: the server writes the request there, the worker's plugin reads its inputs
 * in place, the worker writes the outputs over them and the server copies them into its
 * response.
 *
 * Trust: the worker runs plugin code, so the server treats every byte it reads back (message
 * fields and shared memory) as hostile and bounds-checks it (wp_str, wp_span); the memfd is
 * sealed with F_SEAL_SHRINK so a worker cannot truncate it under the server's mapping. The
 * server only ever compares a doorbell word the worker writes with the value it waits for, and
 * every wait on one is bounded, so a worker scribbling on its doorbell only delays its own calls.
 * Both sides run the same binary, so structs are sent in native layout.
 */
#ifndef DS_WORKER_PROTO_H
#define DS_WORKER_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dynserve/plugin.h"

#define WP_MAGIC        0x50575344u /* "DSWP" */
#define WP_FD_CTL       3
#define WP_FD_CHANNEL0  4
#define WP_MAX_CHANNELS 64 /* == WORKER_MAX_CHANNELS (worker.h) */
#define WP_SHM_INITIAL  (64u * 1024u)
#define WP_MAX_IO       256
#define WP_NAME_MAX     64

static inline int wp_fd_shm(unsigned i)
{
    return WP_FD_CHANNEL0 + (int)i;
}
static inline int wp_fd_plugin(unsigned channels)
{
    return WP_FD_CHANNEL0 + (int)channels;
}
static inline int wp_fd_artifact(unsigned channels)
{
    return WP_FD_CHANNEL0 + (int)channels + 1;
}
/* The highest descriptor number the server hands a worker. */
#define WP_FD_LAST (WP_FD_CHANNEL0 + WP_MAX_CHANNELS + 1)

typedef enum wp_type {
    WP_INIT = 1,    /* server -> worker on ctl; wp_init in channel 0's memory */
    WP_INIT_OK = 2, /* worker -> server on ctl; wp_meta in channel 0's memory, status = its bytes */
    WP_INIT_ERR = 3, /* worker -> server on ctl; wp_text (the message) in channel 0's memory */
    WP_STOP = 4,     /* server -> worker on ctl: destroy the instance and exit */
} wp_type;

/* One socket message. shm_size is the writer's view of the memfd size: the reader maps at
 * least that much (after checking the file really is that large) before reading. */
typedef struct wp_msg {
    uint32_t magic;
    uint32_t type; /* wp_type */
    uint64_t seq;  /* EXEC/DONE pair up by seq */
    uint64_t shm_size;
    int32_t status; /* DONE: ds_status of execute */
    uint32_t reserved;
} wp_msg;

/* A string or byte range in shared memory; len 0 with off 0 means "absent" (NULL). Strings are
 * followed by a NUL that is not counted in len. */
typedef struct wp_span {
    uint64_t off;
    uint64_t len;
} wp_span;

/* INIT parameters (at offset 0 of channel 0). */
typedef struct wp_init {
    uint32_t channels;
    uint32_t probe;          /* 1: create, destroy, report, exit */
    int64_t memory_bytes;    /* RLIMIT_AS, 0 = unlimited */
    int64_t open_files;      /* RLIMIT_NOFILE, 0 = inherit */
    int64_t cpu_ms_per_call; /* thread CPU time per execute, 0 = unlimited */
    uint32_t drop_uid;       /* when the server runs as root: setuid/setgid to these */
    uint32_t drop_gid;
    uint32_t drop;       /* 1 when drop_uid/drop_gid apply */
    uint32_t unused;     /* padding, 0 */
    wp_span plugin_name; /* the path as the server knows it, for messages */
    wp_span config_json;
    /* ABI 1.1 instance context (absent spans: not known, e.g. the registration probe) */
    wp_span model_name;
    wp_span model_version;
    wp_span deployment_id;   /* the server's "model/version#n": the worker's logf names it */
    wp_span artifact_dir;    /* the path as the server knows it (messages); the instance gets
                              * /proc/self/fd/<wp_fd_artifact> when has_artifact */
    uint32_t instance_count; /* 1..64 instances the worker creates (0 = 1) */
    uint32_t has_artifact;   /* 1: the artifact directory descriptor is at wp_fd_artifact */
} wp_init;

/* One declared input or output, in metadata. */
typedef struct wp_io {
    wp_span name;
    int32_t datatype;
    int32_t rank;
    int64_t shape[DS_MAX_RANK];
} wp_io;

/* INIT_OK payload: the plugin's table flags and model description. */
typedef struct wp_meta {
    uint32_t api_flags;
    uint32_t model_flags;
    uint32_t input_count;
    uint32_t output_count;
    wp_span name;
    wp_span platform;
    /* then input_count + output_count wp_io records, then strings */
} wp_meta;

/* A tensor in a request (input) or response (output). */
typedef struct wp_tensor {
    wp_span name;
    wp_span data;
    wp_span parameters; /* inputs only */
    int32_t datatype;
    uint32_t rank;
    int64_t shape[DS_MAX_RANK];
    uint64_t element_count;
} wp_tensor;

/* EXEC payload. */
typedef struct wp_request {
    wp_span id;
    wp_span parameters;
    uint32_t input_count;
    uint32_t requested_count;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC (system-wide) deadline for is_cancelled; 0 = none */
    /* then input_count wp_tensor, requested_count wp_span, then strings and data */
} wp_request;

/* DONE payload. */
typedef struct wp_response {
    int32_t status; /* ds_status */
    uint32_t output_count;
    char message[DS_ERROR_MESSAGE_MAX];
    /* then output_count wp_tensor, then names and data */
} wp_response;

/* ---- shared memory ------------------------------------------------------------------------ */

/* A channel's doorbell, at the start of its memfd. One call at a time: the server writes the
 * request into the data area, then exec_size and `exec` (release), and rings the worker's run
 * queue; the worker answers in the data area, then done_size and `done` (release) and wakes the
 * server. Sequence numbers are the low 32 bits of the call's; 0 is never used.
 *
 * The run queue is channel 0's `ring` and `awake`: every worker thread serves any channel, and
 * idle ones wait on `ring`. The server bumps `ring` after every EXEC and wakes a thread only while
 * fewer threads are awake than it has CPUs, so on a busy worker one wake-up serves every call
 * that queued meanwhile (bench/isolation: one context switch per call fewer). A call still not
 * `taken` after a wait slice wakes another thread, so a plugin that blocks delays the others by
 * one slice at most. */
typedef struct wp_bell {
    _Atomic uint32_t exec;   /* server: the call written */
    _Atomic uint32_t done;   /* worker: the call answered (futex word the server waits on) */
    _Atomic uint32_t cancel; /* server: the call whose client went away (is_cancelled) */
    _Atomic uint32_t taken;  /* worker: the call a worker thread has picked up */
    uint64_t exec_size;      /* server: its data-area size with the call (the worker follows it) */
    uint64_t done_size; /* worker: its data-area size with the answer (the server follows it) */
    /* channel 0's doorbell only: the run queue */
    _Atomic uint32_t ring;  /* server: bumped after every EXEC (futex word idle threads wait on) */
    _Atomic uint32_t awake; /* worker: its threads not waiting on ring */
} wp_bell;
#define WP_BELL_SIZE 64u /* the data area starts here: one cache line of its own */
_Static_assert(sizeof(wp_bell) <= WP_BELL_SIZE, "the doorbell fits its cache line");

/* One side's mapping of a channel's memfd. Owned by whoever created it; one thread at a time
 * (the bell's words excepted: the peer writes them). base and size are the data area's, so
 * every offset in the wire is from the end of the doorbell. */
typedef struct wp_shm {
    int fd;
    wp_bell *bell; /* the mapping's start; moves when the mapping grows */
    uint8_t *base; /* the data area: bell + WP_BELL_SIZE */
    size_t size;   /* data bytes mapped (the file holds at least WP_BELL_SIZE more) */
} wp_shm;

/* Wait while *word == expect, at most timeout_ms (-1 forever): 0 woken or changed, -2 timed out.
 * wp_wake wakes one waiter. Both work across processes (a MAP_SHARED futex). */
int wp_wait(_Atomic uint32_t *word, uint32_t expect, int timeout_ms);
void wp_wake(_Atomic uint32_t *word);

/* Create a memfd with a `size`-byte data area (and the doorbell, zeroed) sealed against
 * shrinking, mapped. 0, or -1 with errno. */
int wp_shm_create(wp_shm *s, size_t size);
/* Map an existing memfd (the worker's side); size 0 maps the file's current size. 0 or -1. */
int wp_shm_attach(wp_shm *s, int fd, size_t size);
/* Make the file and the mapping's data area at least `need` bytes (grows by doubling). 0, or -1
 * with errno; the old mapping stays valid on failure. */
int wp_shm_reserve(wp_shm *s, size_t need);
/* Map a data area of at least `size` bytes because the peer says the file has grown; -1 when
 * the file is not that large (a lying peer) or mapping fails. */
int wp_shm_follow(wp_shm *s, size_t size);
void wp_shm_close(wp_shm *s);
/* Give the memory of the data area beyond `keep` bytes back (a hole: the size stays, so neither
 * side's mapping breaks; the next write there faults in zeroed pages). */
void wp_shm_trim(wp_shm *s, size_t keep);
/* A second, fixed mapping of a channel's doorbell: the run queue and the words other threads
 * read while the channel's owner may remap the data area (wp_shm_reserve, wp_shm_follow). NULL
 * with errno; wp_bell_unmap(NULL) does nothing. */
wp_bell *wp_bell_map(int fd);
void wp_bell_unmap(wp_bell *b);

/* The CPUs this process may run on (its affinity), between 1 and `most`: how many worker
 * threads are worth keeping awake, and how many to start with. */
unsigned wp_run_cpus(unsigned most);

/* ---- layout helpers ------------------------------------------------------------------------ */

/* A bump writer over a shared-memory area: wp_put* return the span written. The caller sizes the
 * area first (wp_size_* below) so writes never fail. */
typedef struct wp_writer {
    uint8_t *base;
    size_t pos;
} wp_writer;

static inline size_t wp_align(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}
/* Bytes wp_put_str needs for a string of len bytes (with its NUL, aligned). */
static inline size_t wp_str_size(size_t len)
{
    return wp_align(len + 1);
}
void *wp_alloc(wp_writer *w, size_t n); /* aligned, uninitialised */
wp_span wp_put(wp_writer *w, const void *data, size_t n);
wp_span wp_put_str(wp_writer *w, const char *s); /* NULL -> absent span */

/* The string at `sp` when it lies within [base, base+size) and is NUL-terminated there; NULL for
 * an absent span, and NULL with *bad = 1 when the span is out of bounds or unterminated. */
const char *wp_str(const uint8_t *base, size_t size, wp_span sp, int *bad);
/* The bytes at `sp` when they lie within the area, else NULL (sets *bad). */
const void *wp_bytes(const uint8_t *base, size_t size, wp_span sp, int *bad);

/* ---- sockets ---------------------------------------------------------------------------- */

/* Send one message (MSG_NOSIGNAL, retried on EINTR). 0 or -1. */
int wp_send(int fd, uint32_t type, uint64_t seq, uint64_t shm_size, int32_t status);
/* Receive one message, waiting at most timeout_ms (-1 forever). 1 received (and checked: size
 * and magic), 0 the peer is gone (EOF, reset, or a malformed message), -2 timed out, -1 other
 * error. */
int wp_recv(int fd, wp_msg *m, int timeout_ms);

#endif
