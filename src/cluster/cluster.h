/*
 * cluster: this replica's part in scale-out (README "Scale-out"). N replicas share one registry
 * (PostgreSQL); a background thread here
 *   - reconciles the replica to the registry's desired state (deploy_reconcile) promptly after a
 *     change — it polls the registry's change sequence every poll_ms — and in full every
 *     full_ms whatever the sequence says, so a missed change cannot leave the replica wrong;
 *   - heartbeats into the registry (replicas table: id, address, version, last seen);
 *   - reports what it actually serves (replica_deployments) whenever that changes;
 *   - writes its live stats per deployment (replica_stats) for /models/stats?scope=cluster.
 * It never writes the desired state (deployments, traffic splits): only requests do.
 * With the embedded SQLite registry there is one replica and a pass changes nothing.
 *
 * Thread-safety: cluster_start/cluster_stop from the main thread only; cluster_replica_id from
 * any thread (the id never changes).
 */
#ifndef DS_CLUSTER_H
#define DS_CLUSTER_H

#include <stddef.h>

#include "deploy.h"
#include "registry.h"

typedef struct cluster cluster;

typedef struct cluster_config {
    registry *reg;          /* outlives the cluster */
    deploy_manager *deploy; /* outlives the cluster */
    const char *replica_id; /* [A-Za-z0-9_.:-]{1,128}; copied */
    const char *address;    /* where it is reached, e.g. http://10.0.0.7:8080; copied */
    const char *version;    /* the dynserve version; copied */
    int poll_ms;            /* change sequence poll (0: 100) */
    int full_ms;            /* full reconcile at least this often (0: 2000) */
    int heartbeat_ms;       /* heartbeat and stats report (0: 1000) */
} cluster_config;

/* Heartbeat once (so the replica is listed when this returns), then start the thread. *out owned
 * by the caller; release with cluster_stop. 0, or -1 with a message. */
int cluster_start(const cluster_config *cfg, cluster **out, char *err, size_t errlen);
/* Stop the thread (waits for a pass in progress) and remove the replica's rows from the registry.
 * NULL is a no-op. Call before the HTTP server stops (a pass adds and removes routes). */
void cluster_stop(cluster *c);
const char *cluster_replica_id(const cluster *c);

#endif
