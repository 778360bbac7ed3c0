/*
 * crash_journal: which in-process deployment was running when the server died of a signal, so
 * the next start does not load it blind (issue: a plugin that segfaults in execute would crash
 * every restart again).
 *
 * How: each thread that calls into an in-process plugin (execute, and create during restore)
 * marks the deployment id in a thread-local first (two stores per request, no syscall). A handler
 * for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT writes {deployment id, signal} of the crashing
 * thread into a small file mapped shared (<data-dir>/crash.journal) — the page survives the
 * process — and then lets the signal take its previous course (the default action, or a
 * sanitizer's handler). At the next start crash_journal_take() returns that record once.
 * A kill -9 or a crash outside plugin code leaves no record: nothing is blamed on a guess.
 *
 * Thread-safety: open/take/install run once at startup before other threads; enter/leave are
 * per-thread.
 */
#ifndef DS_CRASH_JOURNAL_H
#define DS_CRASH_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct crash_record {
    int64_t deployment_id;
    int signo;
    int64_t at_unix; /* seconds */
} crash_record;

/* Map <data_dir>/crash.journal (created if missing). 0, or -1 with err. */
int crash_journal_open(const char *data_dir, char *err, size_t errlen);
/* The record a crash left, cleared as it is returned; false when the last stop left none. */
bool crash_journal_take(crash_record *out);
/* Install the signal handlers (after crash_journal_open). */
void crash_journal_install(void);
void crash_journal_close(void);

/* The deployment the calling thread is about to run plugin code for; 0 when none. */
extern _Thread_local int64_t crash_journal_current;

static inline void crash_journal_enter(int64_t deployment_id)
{
    crash_journal_current = deployment_id;
}
static inline void crash_journal_leave(void)
{
    crash_journal_current = 0;
}

#endif
