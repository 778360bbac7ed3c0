/*
 * worker_main: the `dynserve worker` subcommand, the child side of process isolation (see
 * worker_main.c for what it does and worker_proto.h for the wire). Started only by the server
 * (worker.c), never by hand: it expects its descriptors at fixed numbers.
 */
#ifndef DS_WORKER_MAIN_H
#define DS_WORKER_MAIN_H

/* Run the worker; returns the process exit status. argv[0] is "worker". */
int worker_main(int argc, char **argv);

#endif
