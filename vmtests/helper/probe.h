/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one implementation of the feature probes, shared by ptimerctl (whose
 * "probe" op the pytest plugin asks) and ptbench.
 *
 * A probe has three answers, not two.  "absent" is exactly what a kernel
 * without the interface says (EINVAL, and nothing created); "present" is
 * the call succeeding *and* the timer existing under the wanted ID, alone;
 * anything else is "broken", and the caller fails rather than skipping: a
 * kernel whose new interface half works must not pass as an old kernel.
 *
 * Include after common.h.
 */
#ifndef PTIMERS_HELPER_PROBE_H
#define PTIMERS_HELPER_PROBE_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

enum probe_state {
	PROBE_ABSENT,
	PROBE_PRESENT,
	PROBE_BROKEN,
};

struct probe_result {
	enum probe_state state;
	char detail[240];
};

static inline const char *probe_state_name(enum probe_state s)
{
	switch (s) {
	case PROBE_ABSENT:
		return "absent";
	case PROBE_PRESENT:
		return "present";
	default:
		return "broken";
	}
}

/* The ID the probes ask for: not 0, so that a cursor ID cannot pass */
#define PROBE_ID		4242

/*
 * Counts the records of /proc/self/timers: all of them in *total, those
 * with ID id as the return value.  -1 if the file does not exist (no
 * CONFIG_CHECKPOINT_RESTORE or no /proc): the caller then has only
 * timer_getoverrun() to go by.  -2 if it exists but cannot be read, which
 * no kernel should do to its own process: the caller reports that.
 */
static inline int proc_count_id(int id, int *total)
{
	struct sbuf sb = { 0 };
	int fd, n = 0, lid;
	char *p;

	fd = open("/proc/self/timers", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -1 : -2;
	if (sb_read_fd(&sb, fd, 4096)) {
		close(fd);
		sb_free(&sb);
		return -2;
	}
	close(fd);
	*total = 0;
	for (p = sb.buf; (p = strstr(p, "ID: ")); p++) {
		if (p != sb.buf && p[-1] != '\n')
			continue;
		(*total)++;
		if (sscanf(p, "ID: %d", &lid) == 1 && lid == id)
			n++;
	}
	sb_free(&sb);
	return n;
}

static inline __printf(3, 4)
void probe_set(struct probe_result *res, enum probe_state s,
	       const char *fmt, ...)
{
	va_list ap;

	res->state = s;
	va_start(ap, fmt);
	vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
}

/*
 * The wanted timer exists under PROBE_ID, as the only timer of this fresh
 * process.  timer_getoverrun() answers 0 for any existing timer and EINVAL
 * otherwise, the same on every ABI (no struct timespec to get wrong).
 */
static inline void probe_check_alone(struct probe_result *res, const char *how)
{
	char e[32];
	int n, total = 0;

	if (sys_timer_getoverrun(PROBE_ID) != 0) {
		probe_set(res, PROBE_BROKEN,
			  "%s returned ID %d but timer_getoverrun(%d) failed with %s",
			  how, PROBE_ID, PROBE_ID, errno_name(errno, e, sizeof(e)));
		return;
	}
	if (sys_timer_getoverrun(0) == 0) {
		probe_set(res, PROBE_BROKEN, "%s also created a timer at ID 0", how);
		return;
	}
	n = proc_count_id(PROBE_ID, &total);
	if (n >= 0 && (n != 1 || total != 1)) {
		probe_set(res, PROBE_BROKEN,
			  "after %s /proc/self/timers lists ID %d %d times in %d records (want 1 in 1)",
			  how, PROBE_ID, n, total);
		return;
	}
	probe_set(res, PROBE_PRESENT, "%s created ID %d%s", how, PROBE_ID,
		  n < 0 ? " (no /proc/self/timers to cross-check)" : "");
}

static inline void probe_flag_child(struct probe_result *res)
{
	struct sigevent sev;
	char e[32];
	int id = PROBE_ID;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE | SIGEV_TIMER_ID;
	if (sys_timer_create(CLOCK_MONOTONIC, &sev, &id)) {
		if (errno != EINVAL) {
			probe_set(res, PROBE_BROKEN,
				  "timer_create(SIGEV_NONE|SIGEV_TIMER_ID, %d) failed with %s; a kernel without the flag says EINVAL",
				  PROBE_ID, errno_name(errno, e, sizeof(e)));
			return;
		}
		if (sys_timer_getoverrun(PROBE_ID) == 0 ||
		    sys_timer_getoverrun(0) == 0) {
			probe_set(res, PROBE_BROKEN,
				  "timer_create(SIGEV_TIMER_ID) said EINVAL but left a timer behind");
			return;
		}
		probe_set(res, PROBE_ABSENT, "timer_create(SIGEV_TIMER_ID) is EINVAL");
		return;
	}
	if (id != PROBE_ID) {
		probe_set(res, PROBE_BROKEN,
			  "timer_create(SIGEV_TIMER_ID, %d) succeeded with ID %d",
			  PROBE_ID, id);
		return;
	}
	probe_check_alone(res, "timer_create(SIGEV_TIMER_ID)");
}

static inline void probe_prctl_child(struct probe_result *res)
{
	struct sigevent sev;
	char e[32];
	int ret, id = PROBE_ID;

	ret = prctl(PR_TIMER_CREATE_RESTORE_IDS,
		    PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0);
	if (ret == -1 && errno == EINVAL) {
		probe_set(res, PROBE_ABSENT, "prctl(%d) is EINVAL",
			  PR_TIMER_CREATE_RESTORE_IDS);
		return;
	}
	if (ret != 0) {
		probe_set(res, PROBE_BROKEN,
			  "prctl(%d, GET) in a fresh process returned %d (%s); want 0 or EINVAL",
			  PR_TIMER_CREATE_RESTORE_IDS, ret,
			  ret < 0 ? errno_name(errno, e, sizeof(e)) : "no error");
		return;
	}
	if (restore_ids_mode(true) ||
	    prctl(PR_TIMER_CREATE_RESTORE_IDS,
		  PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) != 1) {
		probe_set(res, PROBE_BROKEN,
			  "prctl(%d, ON) did not switch the mode on (%s)",
			  PR_TIMER_CREATE_RESTORE_IDS, errno_name(errno, e, sizeof(e)));
		return;
	}
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	if (sys_timer_create(CLOCK_MONOTONIC, &sev, &id)) {
		probe_set(res, PROBE_BROKEN,
			  "in restore mode timer_create(id %d) failed with %s",
			  PROBE_ID, errno_name(errno, e, sizeof(e)));
		return;
	}
	if (id != PROBE_ID) {
		probe_set(res, PROBE_BROKEN,
			  "in restore mode timer_create(id %d) returned ID %d",
			  PROBE_ID, id);
		return;
	}
	probe_check_alone(res, "timer_create() in restore mode");
}

/*
 * Runs fn in a child, so that the caller's ID cursor, timers and prctl
 * mode stay as they were; a child that dies is itself a broken answer.
 */
static inline void probe_in_child(void (*fn)(struct probe_result *),
				  struct probe_result *res)
{
	struct probe_result child;
	int pfd[2], status = 0;
	ssize_t n = 0;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe2(pfd, O_CLOEXEC)) {
		probe_set(res, PROBE_BROKEN, "pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		probe_set(res, PROBE_BROKEN, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		memset(&child, 0, sizeof(child));
		fn(&child);
		_exit(write(pfd[1], &child, sizeof(child)) == sizeof(child) ?
		      0 : 1);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], res, sizeof(*res))) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(*res) || !WIFEXITED(status) || WEXITSTATUS(status))
		probe_set(res, PROBE_BROKEN,
			  "the probe's child died (wait status 0x%x)", status);
	res->detail[sizeof(res->detail) - 1] = '\0';
}

static inline void probe_timer_id_flag(struct probe_result *res)
{
	probe_in_child(probe_flag_child, res);
}

static inline void probe_restore_ids_prctl(struct probe_result *res)
{
	probe_in_child(probe_prctl_child, res);
}

#endif /* PTIMERS_HELPER_PROBE_H */
