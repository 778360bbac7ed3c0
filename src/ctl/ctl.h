/*
 * ctl: `dynserve ctl`, the command-line client for operators and scripts. It talks to a running
 * server over its REST API (libcurl: HTTP and HTTPS, with the same TLS verification as curl),
 * prints human tables by default and the server's JSON with --json, and exits with codes
 * scripts can rely on (CTL_EXIT_*). See `dynserve ctl --help` and the README.
 *
 * Not thread-safe (a process runs one command); nothing here is used by the server.
 */
#ifndef DS_CTL_H
#define DS_CTL_H

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_ERROR = 1,       /* the server answered with an error not listed below */
    CTL_EXIT_USAGE = 2,       /* bad command line */
    CTL_EXIT_UNREACHABLE = 3, /* no answer: connection refused, TLS failure, timeout */
    CTL_EXIT_NOT_FOUND = 4,   /* 404 */
    CTL_EXIT_CONFLICT = 5,    /* 409 */
    CTL_EXIT_AUTH = 6,        /* 401 or 403 */
    CTL_EXIT_UNAVAILABLE = 7, /* 429, 502, 503 or 504: worth retrying later */
};

/* argv[0] is "ctl". Returns the process exit code. */
int ctl_main(int argc, char **argv);

#endif
