// SPDX-License-Identifier: GPL-2.0
/*
 * criutimers - a process for real CRIU to dump and restore, that checks its
 * own POSIX timers afterwards (vmtests/test_criu_real.py).
 *
 *   criutimers DIR loop|exact SPEC...
 *
 * Each SPEC is ID,CLOCK,NOTIFY,SIGNO,INTERVAL_MS,VALUE:
 *   CLOCK   r realtime, m monotonic, b boottime, p process CPU, t thread CPU
 *   NOTIFY  s signal to the process, t signal to the worker thread, n none
 *   INTERVAL_MS 0 leaves the timer disarmed; else it is armed periodic
 *   VALUE   its sigev_value (sival_int)
 * SPECs come in ascending ID order.  "loop" reaches each ID the way CRIU's
 * legacy restore does (create, delete the unwanted IDs); "exact" creates
 * each at its ID with prctl(PR_TIMER_CREATE_RESTORE_IDS).
 *
 * Once set up it writes DIR/ready ("PID WORKER_TID\n") and waits with every
 * signal blocked.  Each SIGUSR1 runs a self-check and writes
 * DIR/verify.N (N = 1, 2, ...: the count lives in memory, so after a
 * restore it proves the memory came back too):
 *   - every timer answers timer_gettime() under its ID with its interval
 *     (disarmed ones: zero; armed ones have 0 < time left <= interval), and
 *     /proc/self/timers lists exactly the SPEC IDs;
 *   - signals queued before the check are drained (and checked): CRIU puts
 *     queued signals back at restore, so they prove nothing;
 *   - every armed signalling timer then fires within a deadline with
 *     si_timerid its ID and si_value its VALUE, delivered to the right thread
 *     (the worker takes the thread-directed signals, the main thread the
 *     rest; the signal numbers do not overlap); CPU-clock timers get CPU to
 *     burn; a signal from a SIGEV_NONE or disarmed timer is a failure.
 * The file holds "ok" lines and "FAIL ..." lines, then "end".
 * SIGTERM ends the process.  SIGUSR2 deletes the first SPEC's timer behind
 * the self-check's back: the host test that shows the check can fail
 * (harness/tests/test_criutimers.py).  $CRIUTIMERS_DEADLINE_MS shortens the
 * wait for signals (default 20000).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>

#define PROG_NAME "criutimers"
#include "common.h"

#define MAX_TIMERS	64
#define FIRE_DEADLINE_MS	20000

static long fire_deadline_ms = FIRE_DEADLINE_MS;

struct spec {
	int id;
	char clock;
	char notify;
	int signo;
	long interval_ms;
	int value;
	int fired;
};

static struct spec specs[MAX_TIMERS];
static int nspecs;
static char dir[512];
static int verify_round;
static pid_t worker_tid;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int worker_go, worker_done;

static FILE *out;

static void __printf(1, 2) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	flockfile(out);		/* both threads report */
	fputs("FAIL ", out);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	funlockfile(out);
	va_end(ap);
}

static __noreturn void die(const char *what)
{
	fprintf(stderr, "criutimers: %s: %s\n", what, strerror(errno));
	exit(2);
}

static clockid_t clock_of(char c)
{
	switch (c) {
	case 'r': return CLOCK_REALTIME;
	case 'm': return CLOCK_MONOTONIC;
	case 'b': return CLOCK_BOOTTIME;
	case 'p': return CLOCK_PROCESS_CPUTIME_ID;
	case 't': return CLOCK_THREAD_CPUTIME_ID;
	}
	fprintf(stderr, "criutimers: bad clock '%c'\n", c);
	exit(2);
}

static void fill_sigevent(struct sigevent *sev, const struct spec *s)
{
	memset(sev, 0, sizeof(*sev));
	sev->sigev_value.sival_int = s->value;
	sev->sigev_signo = s->signo;
	switch (s->notify) {
	case 's':
		sev->sigev_notify = SIGEV_SIGNAL;
		break;
	case 't':
		sev->sigev_notify = SIGEV_THREAD_ID;
		sev->_sigev_un._tid = worker_tid;
		break;
	case 'n':
		sev->sigev_notify = SIGEV_NONE;
		break;
	default:
		fprintf(stderr, "criutimers: bad notify '%c'\n", s->notify);
		exit(2);
	}
}

/* Create timer s at its ID; the legacy way burns the IDs below it. */
static void create(const struct spec *s, bool exact)
{
	struct sigevent sev;
	int id;

	fill_sigevent(&sev, s);
	for (;;) {
		id = exact ? s->id : ID_POISON;
		if (sys_timer_create(clock_of(s->clock), &sev, &id))
			die("timer_create");
		if (id == s->id)
			break;
		if (exact || id > s->id) {
			fprintf(stderr, "criutimers: wanted ID %d, got %d\n", s->id, id);
			exit(2);
		}
		if (sys_timer_delete(id))
			die("timer_delete");
	}
	if (s->interval_ms) {
		struct itimerspec its = { 0 };

		its.it_interval.tv_sec = s->interval_ms / 1000;
		its.it_interval.tv_nsec = s->interval_ms % 1000 * NSEC_PER_MSEC;
		its.it_value = its.it_interval;
		if (syscall(SYS_timer_settime, (long)s->id, 0L, &its, NULL))
			die("timer_settime");
	}
}

static struct spec *find(int id)
{
	for (int i = 0; i < nspecs; i++)
		if (specs[i].id == id)
			return &specs[i];
	return NULL;
}

/*
 * Take one timer signal: right timer, right value, right thread, and only
 * from a timer that signals.  Only a fresh one (queued after the drain)
 * counts as the timer firing.
 */
static void account(const siginfo_t *si, bool in_worker, bool fresh)
{
	struct spec *s;

	if (si->si_code != SI_TIMER) {
		fail("signal %d with si_code %d, not SI_TIMER", si->si_signo, si->si_code);
		return;
	}
	s = find(si->si_timerid);
	if (!s) {
		fail("signal %d from unknown timer ID %d", si->si_signo, si->si_timerid);
		return;
	}
	if (s->signo != si->si_signo || s->value != si->si_value.sival_int)
		fail("timer %d: signal %d value %d, expected signal %d value %d", s->id,
		     si->si_signo, si->si_value.sival_int, s->signo, s->value);
	else if (s->notify == 'n' || !s->interval_ms)
		fail("timer %d (%s) sent signal %d", s->id,
		     s->notify == 'n' ? "SIGEV_NONE" : "disarmed", si->si_signo);
	else if ((s->notify == 't') != in_worker)
		fail("timer %d: signal taken by the %s thread", s->id,
		     in_worker ? "worker" : "main");
	else if (fresh)
		s->fired++;
}

/*
 * The worker waits for the thread-directed timers' signals, the main thread
 * for all others' (also those of SIGEV_NONE and disarmed timers: any is a
 * failure), burning CPU for the CPU clocks.  What is queued when the check
 * starts is drained first and only checked: CRIU puts queued signals back at
 * restore, so they prove nothing about the restored timers.
 */
static void collect(bool in_worker)
{
	struct timespec zero = { 0 }, start, now;
	sigset_t set;
	siginfo_t si;
	int missing;

	sigemptyset(&set);
	for (int i = 0; i < nspecs; i++)
		if ((specs[i].notify == 't') == in_worker)
			sigaddset(&set, specs[i].signo);
	while (sigtimedwait(&set, &si, &zero) > 0)
		account(&si, in_worker, false);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		while (sigtimedwait(&set, &si, &zero) > 0)
			account(&si, in_worker, true);
		missing = 0;
		for (int i = 0; i < nspecs; i++)
			if ((specs[i].notify == 't') == in_worker && specs[i].notify != 'n' &&
			    specs[i].interval_ms && !specs[i].fired)
				missing++;
		if (!missing)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / NSEC_PER_MSEC > fire_deadline_ms)
			break;
		/* CPU-clock timers only advance while we run */
		for (volatile int spin = 0; spin < 200000; spin++)
			;
	}
	for (int i = 0; i < nspecs; i++)
		if ((specs[i].notify == 't') == in_worker && specs[i].notify != 'n' &&
		    specs[i].interval_ms && !specs[i].fired)
			fail("timer %d (clock %c, signal %d) did not fire within %ld ms",
			     specs[i].id, specs[i].clock, specs[i].signo, fire_deadline_ms);
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	for (;;) {
		while (!worker_go)
			pthread_cond_wait(&cond, &lock);
		worker_go = 0;
		pthread_mutex_unlock(&lock);
		collect(true);
		pthread_mutex_lock(&lock);
		worker_done = 1;
		pthread_cond_broadcast(&cond);
	}
	return NULL;
}

/* The IDs /proc/self/timers lists, each checked against the SPECs. */
static void check_proc(void)
{
	char line[256];
	int listed = 0, id;
	FILE *f = fopen("/proc/self/timers", "r");

	if (!f) {
		fail("cannot open /proc/self/timers: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "ID: %d", &id) != 1)
			continue;
		listed++;
		if (!find(id))
			fail("/proc/self/timers lists ID %d, which is no SPEC's", id);
	}
	fclose(f);
	if (listed != nspecs)
		fail("/proc/self/timers lists %d timers, expected %d", listed, nspecs);
}

static void verify(void)
{
	char path[600], tmp[640];
	struct itimerspec its;

	verify_round++;
	snprintf(path, sizeof(path), "%s/verify.%d", dir, verify_round);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	out = fopen(tmp, "w");
	if (!out)
		die("open verify file");
	for (int i = 0; i < nspecs; i++) {
		struct spec *s = &specs[i];
		long long want = s->interval_ms * NSEC_PER_MSEC;
		long long got;

		s->fired = 0;
		if (syscall(SYS_timer_gettime, (long)s->id, &its)) {
			fail("timer %d: timer_gettime: %s", s->id, strerror(errno));
			continue;
		}
		got = its.it_interval.tv_sec * NSEC_PER_SEC + its.it_interval.tv_nsec;
		if (got != want)
			fail("timer %d: interval %lld ns, expected %lld", s->id, got, want);
		got = its.it_value.tv_sec * NSEC_PER_SEC + its.it_value.tv_nsec;
		if (!s->interval_ms && got)
			fail("timer %d: disarmed timer came back armed", s->id);
		if (s->interval_ms && (got <= 0 || got > want))
			fail("timer %d: armed with interval %lld ns but %lld ns left", s->id, want,
			     got);
	}
	check_proc();
	/* The worker collects the thread-directed signals meanwhile. */
	pthread_mutex_lock(&lock);
	worker_go = 1;
	worker_done = 0;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	collect(false);
	pthread_mutex_lock(&lock);
	while (!worker_done)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < nspecs; i++)
		fprintf(out, "ok timer %d clock %c notify %c fired %d\n", specs[i].id,
			specs[i].clock, specs[i].notify, specs[i].fired);
	fputs("end\n", out);
	fclose(out);
	if (rename(tmp, path))
		die("rename verify file");
}

static void parse_spec(const char *arg, struct spec *s)
{
	if (sscanf(arg, "%d,%c,%c,%d,%ld,%d", &s->id, &s->clock, &s->notify, &s->signo,
		   &s->interval_ms, &s->value) != 6) {
		fprintf(stderr, "criutimers: bad SPEC '%s'\n", arg);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	char path[600], tmp[600];
	pthread_t thread;
	sigset_t all, wait;
	bool exact;
	int sig;
	FILE *f;

	if (argc < 4 || argc - 3 > MAX_TIMERS) {
		fprintf(stderr, "usage: criutimers DIR loop|exact SPEC... (at most %d)\n",
			MAX_TIMERS);
		return 2;
	}
	/* Inherited descriptors (vng's virtio ports) are not ours to dump. */
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	if (getenv("CRIUTIMERS_DEADLINE_MS"))
		fire_deadline_ms = atol(getenv("CRIUTIMERS_DEADLINE_MS"));
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	exact = !strcmp(argv[2], "exact");
	nspecs = argc - 3;
	for (int i = 0; i < nspecs; i++)
		parse_spec(argv[3 + i], &specs[i]);

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&lock);
	if (pthread_create(&thread, NULL, worker, NULL))
		die("pthread_create");
	while (!worker_tid)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	if (exact && restore_ids_mode(true))
		die("prctl(PR_TIMER_CREATE_RESTORE_IDS, ON)");
	for (int i = 0; i < nspecs; i++)
		create(&specs[i], exact);
	if (exact && restore_ids_mode(false))
		die("prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF)");

	snprintf(path, sizeof(path), "%s/ready.tmp", dir);
	f = fopen(path, "w");
	if (!f)
		die("open ready file");
	fprintf(f, "%d %d\n", getpid(), worker_tid);
	fclose(f);
	snprintf(tmp, sizeof(tmp), "%s/ready", dir);
	if (rename(path, tmp))	/* whole or not there: the test polls for it */
		die("rename ready file");

	sigemptyset(&wait);
	sigaddset(&wait, SIGUSR1);
	sigaddset(&wait, SIGUSR2);
	sigaddset(&wait, SIGTERM);
	for (;;) {
		sig = sigwaitinfo(&wait, NULL);
		if (sig == SIGUSR1)
			verify();
		else if (sig == SIGUSR2)
			sys_timer_delete(specs[0].id);
		else if (sig == SIGTERM)
			return 0;
	}
}
