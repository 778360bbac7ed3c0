/*
 * errors: the error codes of every module that does not speak HTTP, declared together so that
 * the one table turning them into HTTP statuses (http/reply.c) needs no module but base.
 * Each module returns only its own enum: the registry reg_status, the OIP codec oip_code, the
 * deployment manager deploy_status, auth its auth_verdict, and plugins the ABI's ds_status
 * (dynserve/plugin.h).
 * Codes are only ever appended; every new one gets a row in http/reply.c.
 */
#ifndef DS_ERRORS_H
#define DS_ERRORS_H

/* registry/registry.h */
typedef enum reg_status {
    REG_OK = 0,
    REG_NOT_FOUND = 1, /* no such model, version or deployment */
    REG_EXISTS = 2,    /* unique constraint: already registered / already deployed */
    REG_CONFLICT = 3,  /* refused because of other state (e.g. delete while deployed) */
    REG_INVALID = 4,   /* bad argument (invalid name, bad JSON text, ...) */
    REG_TOO_NEW = 5,   /* database schema is newer than this binary knows */
    REG_ERROR = 6      /* SQLite or I/O failure */
} reg_status;

/* src/oip/oip.h */
typedef enum oip_code {
    OIP_OK = 0,
    OIP_BAD_REQUEST = 1, /* the request (or what it asks for) is malformed or does not fit */
    OIP_INTERNAL = 2,    /* out of memory, or the plugin produced something inconsistent */
    OIP_TOO_LARGE = 3,   /* the response would pass its buffer's cap (--max-response-bytes) */
} oip_code;

/* src/deploy/deploy.h */
typedef enum deploy_status {
    DEPLOY_OK = 0,
    DEPLOY_INVALID = 1,      /* bad argument: a name, a weight, an empty split */
    DEPLOY_NOT_FOUND = 2,    /* no such registered version / deployment / earlier split */
    DEPLOY_CONFLICT = 3,     /* refused because of other state (already deployed, not live) */
    DEPLOY_INTERNAL = 4,     /* plugin failed to load, registry or memory failure */
    DEPLOY_DRAINING = 5,     /* undeployed, but a call still runs: released when it returns (202) */
    DEPLOY_BAD_ARTIFACT = 6, /* the backend refused the version's files or config (422) */
} deploy_status;

/* src/plugin/worker.h: what an isolated deployment's execute returns beyond ds_status. */
#define DS_STATUS_WORKER_CRASHED 100 /* the worker process died during the call (502) */
#define DS_STATUS_WORKER_TIMEOUT 101 /* no answer by the deadline; worker killed (504) */

/* src/auth/auth.h: what to do with a request */
typedef enum auth_verdict {
    AUTH_ALLOW = 0,           /* serve it */
    AUTH_PREFLIGHT = 1,       /* a CORS preflight from an allowed origin, answered empty */
    AUTH_UNAUTHENTICATED = 2, /* no token, or a bad, expired or revoked one */
    AUTH_FORBIDDEN = 3,       /* the wrong role, a foreign Origin, a rebinding Host */
} auth_verdict;

#endif
