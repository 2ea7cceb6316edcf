/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fallback definitions for constants that the build host's headers may not
 * know yet (the kernel under test is newer than the userspace headers).
 */
#ifndef PTIMERCTL_COMPAT_H
#define PTIMERCTL_COMPAT_H

#include <signal.h>
#include <sys/prctl.h>

#ifndef SIGEV_THREAD_ID
#define SIGEV_THREAD_ID			4
#endif

/* New flag under test: timer_create() takes the wanted ID from *timer_id */
#ifndef SIGEV_TIMER_ID
#define SIGEV_TIMER_ID			8
#endif

/* Upstream (6.16+) per-process "restore IDs" mode used by CRIU */
#ifndef PR_TIMER_CREATE_RESTORE_IDS
#define PR_TIMER_CREATE_RESTORE_IDS	77
#endif
#ifndef PR_TIMER_CREATE_RESTORE_IDS_OFF
#define PR_TIMER_CREATE_RESTORE_IDS_OFF	0
#endif
#ifndef PR_TIMER_CREATE_RESTORE_IDS_ON
#define PR_TIMER_CREATE_RESTORE_IDS_ON	1
#endif
#ifndef PR_TIMER_CREATE_RESTORE_IDS_GET
#define PR_TIMER_CREATE_RESTORE_IDS_GET	2
#endif

/* CPU clock IDs, see include/linux/posix-timers_types.h */
#ifndef CPUCLOCK_PROF
#define CPUCLOCK_PROF			0
#endif
#ifndef CPUCLOCK_VIRT
#define CPUCLOCK_VIRT			1
#endif
#ifndef CPUCLOCK_SCHED
#define CPUCLOCK_SCHED			2
#endif
#ifndef CPUCLOCK_PERTHREAD_MASK
#define CPUCLOCK_PERTHREAD_MASK		4
#endif

/*
 * The kernel computes ((~pid) << 3) | clock; do the shift on an unsigned
 * value so that it is well defined C for any pid.
 */
#ifndef MAKE_PROCESS_CPUCLOCK
#define MAKE_PROCESS_CPUCLOCK(pid, clock) \
	((clockid_t)((~(unsigned int)(pid)) << 3) | (clockid_t)(clock))
#endif
#ifndef MAKE_THREAD_CPUCLOCK
#define MAKE_THREAD_CPUCLOCK(tid, clock) \
	(MAKE_PROCESS_CPUCLOCK(tid, clock) | CPUCLOCK_PERTHREAD_MASK)
#endif

#endif /* PTIMERCTL_COMPAT_H */
