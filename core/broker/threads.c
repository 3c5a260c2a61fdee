/*
 * threads.c - see threads.h.
 */
#include "threads.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Linux: PRIO_PROCESS with a thread id sets that thread's nice value */
static void lower(id_t tid)
{
    int now = getpriority(PRIO_PROCESS, tid);
    if (now < SC_THREAD_BACKGROUND_NICE)
        (void)setpriority(PRIO_PROCESS, tid, SC_THREAD_BACKGROUND_NICE);
}

void sc_thread_background(void) { lower((id_t)syscall(SYS_gettid)); }

int sc_thread_background_named(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f))
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        if (strcmp(name, comm) == 0) {
            lower((id_t)strtol(e->d_name, NULL, 10));
            n++;
        }
    }
    closedir(d);
    return n;
}
