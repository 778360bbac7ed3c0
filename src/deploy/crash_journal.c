/* crash_journal: see crash_journal.h. The file holds one record, written only by the handler. */
#include "crash_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CJ_MAGIC 0x4a435344u /* "DSCJ" */

typedef struct cj_page {
    volatile uint32_t magic; /* written last: a record is complete when it is set */
    volatile int32_t signo;
    volatile int64_t deployment_id;
    volatile int64_t at_unix;
} cj_page;

_Thread_local int64_t crash_journal_current;

/* Set at startup before threads and handlers exist; read by the handler. */
static cj_page *cj_map;
static int cj_fd = -1;
static const int cj_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define CJ_NSIG (sizeof cj_signals / sizeof cj_signals[0])
static struct sigaction cj_previous[CJ_NSIG];
static bool cj_installed;

int crash_journal_open(const char *data_dir, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/crash.journal", data_dir);
    cj_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (cj_fd < 0 || ftruncate(cj_fd, (off_t)sizeof(cj_page)) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (cj_fd >= 0)
            close(cj_fd);
        cj_fd = -1;
        return -1;
    }
    void *p = mmap(NULL, sizeof(cj_page), PROT_READ | PROT_WRITE, MAP_SHARED, cj_fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        close(cj_fd);
        cj_fd = -1;
        return -1;
    }
    cj_map = p;
    return 0;
}

bool crash_journal_take(crash_record *out)
{
    if (cj_map == NULL || cj_map->magic != CJ_MAGIC)
        return false;
    out->deployment_id = cj_map->deployment_id;
    out->signo = cj_map->signo;
    out->at_unix = cj_map->at_unix;
    cj_map->magic = 0;
    msync(cj_map, sizeof *cj_map, MS_SYNC);
    return out->deployment_id > 0;
}

static void cj_handler(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    size_t i = 0;
    while (i < CJ_NSIG && cj_signals[i] != sig)
        i++;
    if (cj_map != NULL && crash_journal_current > 0) {
        cj_map->deployment_id = crash_journal_current;
        cj_map->signo = sig;
        cj_map->at_unix = (int64_t)time(NULL);
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the fields before the magic */
        cj_map->magic = CJ_MAGIC;
    }
    /* Hand the signal back to whoever had it: a fault re-executes and faults into the previous
     * handler; a signal sent with raise()/abort() is raised again. */
    if (i < CJ_NSIG)
        sigaction(sig, &cj_previous[i], NULL);
    else
        signal(sig, SIG_DFL);
    if (info == NULL || info->si_code <= 0)
        raise(sig);
}

void crash_journal_install(void)
{
    if (cj_map == NULL)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = cj_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < CJ_NSIG; i++)
        sigaction(cj_signals[i], &sa, &cj_previous[i]);
    cj_installed = true;
}

void crash_journal_close(void)
{
    if (cj_installed) {
        for (size_t i = 0; i < CJ_NSIG; i++)
            sigaction(cj_signals[i], &cj_previous[i], NULL);
        cj_installed = false;
    }
    if (cj_map != NULL) {
        munmap(cj_map, sizeof *cj_map);
        cj_map = NULL;
    }
    if (cj_fd >= 0)
        close(cj_fd);
    cj_fd = -1;
}
