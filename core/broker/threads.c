/*
 * threads.c - see threads.h.
 */
#include "threads.h"

#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

void sc_thread_name(const char *role, const char *detail)
{
    char name[16];
    if (detail && *detail)
        snprintf(name, sizeof name, "sc-%s:%s", role, detail);
    else
        snprintf(name, sizeof name, "sc-%s", role);
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

void sc_thread_background(void)
{
    /* Linux: PRIO_PROCESS with a thread id sets that thread's nice value */
    id_t tid = (id_t)syscall(SYS_gettid);
    int now = getpriority(PRIO_PROCESS, tid);
    if (now < SC_THREAD_BACKGROUND_NICE)
        (void)setpriority(PRIO_PROCESS, tid, SC_THREAD_BACKGROUND_NICE);
}
