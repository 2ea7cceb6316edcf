// SPDX-License-Identifier: GPL-2.0
/*
 * ptbench - micro-benchmarks for the POSIX timer ID implementations.
 *
 *   ptbench CASE [key=value ...]
 *   ptbench --probe
 *   ptbench --help
 *
 * Each run prints exactly one JSON object line on stdout:
 *
 *   {"case":"...","params":{...},<case fields>,"rlimit_sigpending":N}
 *
 * or, on any failure, {"case":...,"params":{...},"error":"...","errno":"E..."}
 * with exit status 1.  Every case runs under an alarm() watchdog (key
 * timeout=, seconds) so that a benchmark never hangs the guest: on expiry
 * all children are killed and an error line is printed.
 *
 * Timers are driven with raw syscalls and int IDs: glibc's timer_create()
 * rejects unknown sigev_notify values such as SIGEV_TIMER_ID.  All timers
 * are CLOCK_MONOTONIC with SIGEV_NONE, so no signal is ever delivered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG_NAME		"ptbench"

#include "compat.h"
#include "common.h"
#include "probe.h"

#define NCHUNKS			5
#define SIGPENDING_WANT		4000000
#define MAX_WORKERS		1024
#define MAX_CHILDREN		(MAX_WORKERS + 8)
#define DEFAULT_TIMEOUT		600

/* ------------------------------------------------------------------ */
/* JSON writer                                                         */
/* ------------------------------------------------------------------ */

/* Our strings are identifiers, cache names and messages: escape minimally */
static void sb_json_str(struct sbuf *sb, const char *s)
{
	sb_printf(sb, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			sb_printf(sb, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			sb_printf(sb, "\\u%04x", ch);
		else
			sb_printf(sb, "%c", ch);
	}
	sb_printf(sb, "\"");
}

/*
 * A tiny streaming JSON writer.  Each nesting level remembers whether it
 * needs a comma before the next member.
 */
struct json {
	struct sbuf sb;
	int depth;
	bool first[16];
};

static void j_key(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		sb_printf(&j->sb, ",");
	j->first[j->depth] = false;
	if (key) {
		sb_json_str(&j->sb, key);
		sb_printf(&j->sb, ":");
	}
}

static void j_open(struct json *j, const char *key, char bracket)
{
	if (j->depth >= 0)
		j_key(j, key);
	sb_printf(&j->sb, "%c", bracket);
	j->depth++;
	j->first[j->depth] = true;
}

static void j_close(struct json *j, char bracket)
{
	j->depth--;
	sb_printf(&j->sb, "%c", bracket);
}

static void j_obj(struct json *j, const char *key)  { j_open(j, key, '{'); }
static void j_end(struct json *j)                   { j_close(j, '}'); }
static void j_arr(struct json *j, const char *key)  { j_open(j, key, '['); }
static void j_arr_end(struct json *j)               { j_close(j, ']'); }

static void j_int(struct json *j, const char *key, long long v)
{
	j_key(j, key);
	sb_printf(&j->sb, "%lld", v);
}

static void j_dbl(struct json *j, const char *key, double v)
{
	j_key(j, key);
	/* inf and nan are not JSON */
	if (v != v || v > 1e300 || v < -1e300)
		sb_printf(&j->sb, "null");
	else
		sb_printf(&j->sb, "%.6g", v);
}

static void j_str(struct json *j, const char *key, const char *s)
{
	j_key(j, key);
	sb_json_str(&j->sb, s);
}

static void j_bool(struct json *j, const char *key, bool v)
{
	j_key(j, key);
	sb_printf(&j->sb, v ? "true" : "false");
}

static void j_init(struct json *j)
{
	memset(j, 0, sizeof(*j));
	j->depth = -1;
}

static void j_int_array(struct json *j, const char *key,
			const long long *v, int n)
{
	int i;

	j_arr(j, key);
	for (i = 0; i < n; i++)
		j_int(j, NULL, v[i]);
	j_arr_end(j);
}

/* ------------------------------------------------------------------ */
/* Parameters                                                          */
/* ------------------------------------------------------------------ */

/* A case parameter: an integer, or a string when choices is set */
struct param {
	const char *name;
	long long def;
	long long min;
	long long max;
	const char *const *choices;	/* NULL-terminated; first is default */
};

struct bench_case {
	const char *name;
	void (*run)(struct json *j);
	const struct param *params;
	const char *help;
};

#define MAX_PARAMS 16

/* Values of the running case's parameters, in table order */
static const struct bench_case *cur_case;
static long long pval_int[MAX_PARAMS];
static const char *pval_str[MAX_PARAMS];
static const char *case_name = "?";

/* Parameters every case takes */
static const struct param common_params[] = {
	{ "timeout", DEFAULT_TIMEOUT, 1, 86400, NULL },
};

static int param_index(const char *name)
{
	int i;

	for (i = 0; cur_case && cur_case->params[i].name; i++) {
		if (!strcmp(cur_case->params[i].name, name))
			return i;
	}
	return -1;
}

static long long param_int(const char *name)
{
	int i = param_index(name);

	return i >= 0 ? pval_int[i] : 0;
}

static const char *param_str(const char *name)
{
	int i = param_index(name);

	return i >= 0 ? pval_str[i] : "";
}

/* Lets a case record what "auto" resolved to */
static void param_set_str(const char *name, const char *val)
{
	int i = param_index(name);

	if (i >= 0)
		pval_str[i] = val;
}

static long long timeout_s = DEFAULT_TIMEOUT;

static void params_json(struct json *j)
{
	int i;

	j_obj(j, "params");
	for (i = 0; cur_case && cur_case->params[i].name; i++) {
		if (cur_case->params[i].choices)
			j_str(j, cur_case->params[i].name, pval_str[i]);
		else
			j_int(j, cur_case->params[i].name, pval_int[i]);
	}
	j_int(j, common_params[0].name, timeout_s);
	j_end(j);
}

/* ------------------------------------------------------------------ */
/* Errors, children and the watchdog                                   */
/* ------------------------------------------------------------------ */

/* Set in forked children: they report through shared memory, never stdout */
static bool in_child;
static pid_t main_pid;

/* Live children, killed by the watchdog; only touched by the main process */
static volatile pid_t children[MAX_CHILDREN];

/* Preformatted so that the SIGALRM handler only needs write() */
static char watchdog_msg[4096];
static size_t watchdog_len;

static void error_line(struct sbuf *out, int err, const char *msg)
{
	struct json j;
	char buf[16];

	j_init(&j);
	j_obj(&j, NULL);
	j_str(&j, "case", case_name);
	if (cur_case)
		params_json(&j);
	j_str(&j, "error", msg);
	j_str(&j, "errno", errno_name(err, buf, sizeof(buf)));
	j_end(&j);
	sb_printf(&j.sb, "\n");
	*out = j.sb;
}

static void kill_children(void)
{
	size_t i;

	for (i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	}
}

/* Print the error line and exit 1; children just exit with status 2 */
static __noreturn void __printf(2, 3)
die(int err, const char *fmt, ...)
{
	struct sbuf out;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (in_child) {
		fprintf(stderr, "ptbench child: %s\n", msg);
		_exit(2);
	}
	kill_children();
	error_line(&out, err, msg);
	fputs(out.buf, stdout);
	fflush(stdout);
	exit(1);
}

static void watchdog(int sig)
{
	(void)sig;
	if (getpid() != main_pid)
		_exit(2);
	kill_children();
	if (write(STDOUT_FILENO, watchdog_msg, watchdog_len) < 0)
		_exit(1);
	_exit(1);
}

static void arm_watchdog(void)
{
	struct sigaction sa = { .sa_handler = watchdog };
	struct sbuf out;
	char msg[128];

	snprintf(msg, sizeof(msg),
		 "watchdog: case did not finish within %lld s", timeout_s);
	error_line(&out, ETIME, msg);
	watchdog_len = out.len < sizeof(watchdog_msg) ? out.len :
			sizeof(watchdog_msg) - 1;
	memcpy(watchdog_msg, out.buf, watchdog_len);
	free(out.buf);
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned int)timeout_s);
}

static void child_track(pid_t pid, bool add)
{
	size_t i;

	for (i = 0; i < MAX_CHILDREN; i++) {
		if (add ? children[i] == 0 : children[i] == pid) {
			children[i] = add ? pid : 0;
			return;
		}
	}
}

/*
 * fork() a child that dies with us: a benchmark must never leave timer
 * holders behind if the main process is killed.
 */
static pid_t spawn(void)
{
	pid_t parent = getpid(), pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die(errno, "fork: %s", strerror(errno));
	if (pid == 0) {
		in_child = true;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(2);
		return 0;
	}
	child_track(pid, true);
	return pid;
}

/* waitpid() and insist on a clean exit */
static void reap(pid_t pid, const char *what)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			die(errno, "waitpid(%s): %s", what, strerror(errno));
	}
	child_track(pid, false);
	if (WIFSIGNALED(status))
		die(ECHILD, "%s child killed by signal %d", what,
		    WTERMSIG(status));
	if (WEXITSTATUS(status))
		die(ECHILD, "%s child exited with status %d", what,
		    WEXITSTATUS(status));
}

/* Kill a child that is expected to be blocked, reap it, return its status */
static int kill_reap(pid_t pid)
{
	int status = 0;

	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	child_track(pid, false);
	return status;
}

/*
 * A child that could not get ready exits with its errno as the status;
 * reap it and report that errno.
 */
static __noreturn void die_child_failed(pid_t pid, const char *what)
{
	int status = kill_reap(pid), err = ECHILD;

	if (WIFEXITED(status) && WEXITSTATUS(status))
		err = WEXITSTATUS(status);
	die(err, "%s: %s", what, strerror(err));
}

static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die(errno, "mmap(%zu): %s", size, strerror(errno));
	memset(p, 0, size);
	return p;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		die(ENOMEM, "out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static void xpipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC))
		die(errno, "pipe: %s", strerror(errno));
}

/* Blocking one-byte handshakes over pipes; EOF or errors give -1 */
static int send_byte(int fd, char c)
{
	ssize_t n;

	do {
		n = write(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

static int recv_byte(int fd)
{
	unsigned char c;
	ssize_t n;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? c : -1;
}

/*
 * spawn() with a pipe each way.  On both sides *rfd and *wfd are that
 * side's ends; the other side's ends are closed.
 */
static pid_t spawn_piped(int *rfd, int *wfd)
{
	int up[2], down[2];
	pid_t pid;

	xpipe(up);
	xpipe(down);
	pid = spawn();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		*rfd = down[0];
		*wfd = up[1];
	} else {
		close(up[1]);
		close(down[0]);
		*rfd = up[0];
		*wfd = down[1];
	}
	return pid;
}

/* ------------------------------------------------------------------ */
/* Timer syscalls                                                      */
/* ------------------------------------------------------------------ */

/*
 * timer_create() with SIGEV_NONE plus extra notify flags.  *id is both the
 * wanted ID (read by the kernel with SIGEV_TIMER_ID or in prctl restore
 * mode) and the created one.
 */
static int tcreate(int notify_flags, int *id)
{
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE | notify_flags;
	return (int)sys_timer_create(CLOCK_MONOTONIC, &sev, id);
}

static int tcreate_plain(int *id)
{
	*id = ID_POISON;
	return tcreate(0, id);
}

enum exact_method { EXACT_NONE, EXACT_FLAG, EXACT_PRCTL };

static const char *const exact_names[] = { "none", "flag", "prctl", NULL };

/* Switch the prctl restore mode on for EXACT_PRCTL; nothing otherwise */
static int exact_begin(int m)
{
	if (m != EXACT_PRCTL)
		return 0;
	return restore_ids_mode(true) < 0 ? -1 : 0;
}

static void exact_end(int m)
{
	if (m == EXACT_PRCTL)
		restore_ids_mode(false);
}

/* Create a timer with ID want; the method's mode must be active */
static int create_exact(int m, int want, int *got)
{
	*got = want;
	return tcreate(m == EXACT_FLAG ? SIGEV_TIMER_ID : 0, got);
}

/*
 * The probes of probe.h, shared with ptimerctl.  A broken answer ends the
 * benchmark: timing an interface that half works would be meaningless.
 */
static bool probe_present(void (*probe)(struct probe_result *),
			  const char *what)
{
	struct probe_result res;

	probe(&res);
	if (res.state == PROBE_BROKEN)
		die(EIO, "the %s probe: %s", what, res.detail);
	return res.state == PROBE_PRESENT;
}

static bool probe_flag(void)
{
	return probe_present(probe_timer_id_flag, "SIGEV_TIMER_ID");
}

static bool probe_prctl(void)
{
	return probe_present(probe_restore_ids_prctl, "PR_TIMER_CREATE_RESTORE_IDS");
}

/*
 * Resolve an exact= style parameter; "auto" picks the flag, then prctl,
 * then (if allow_none) the legacy loop.
 */
static int exact_param(const char *key, bool allow_none)
{
	const char *s = param_str(key);
	int i;

	if (!strcmp(s, "auto")) {
		if (probe_flag())
			s = "flag";
		else if (probe_prctl())
			s = "prctl";
		else if (allow_none)
			s = "none";
		else
			die(EOPNOTSUPP, "no exact creation method (neither SIGEV_TIMER_ID nor prctl %d)",
			    PR_TIMER_CREATE_RESTORE_IDS);
		param_set_str(key, s);
	}
	for (i = 0; exact_names[i]; i++) {
		if (!strcmp(s, exact_names[i]))
			return i;
	}
	if (!strcmp(s, "legacy"))
		return EXACT_NONE;
	die(EINVAL, "bad %s '%s'", key, s);
}

/* ------------------------------------------------------------------ */
/* Helpers: random IDs, medians, chunked timing                        */
/* ------------------------------------------------------------------ */

/* xorshift64*: deterministic across kernels and libcs */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_seed(long long seed)
{
	/* xorshift must not start at 0 */
	return (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
}

/* Uniform in [0, m) for m <= 2^32 */
static uint32_t rng_below(uint64_t *s, uint64_t m)
{
	return (uint32_t)(((rng_next(s) >> 32) * m) >> 32);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/*
 * count sorted unique IDs in [0, span); the same seed gives the same set
 * everywhere.  Dense sets use selection sampling (Knuth's algorithm S),
 * sparse ones draw, sort, dedupe and top up: collisions are rare there.
 */
static int *sparse_ids(long long count, long long span, long long seed)
{
	uint64_t s = rng_seed(seed);
	int *ids = xcalloc((size_t)count, sizeof(int));
	long long have = 0, i, u;

	if (count > span)
		die(EINVAL, "count %lld > span %lld", count, span);
	if (count * 4 >= span) {
		for (i = 0; i < span && have < count; i++) {
			if (rng_below(&s, (uint64_t)(span - i)) <
			    (uint64_t)(count - have))
				ids[have++] = (int)i;
		}
		return ids;
	}
	while (have < count) {
		for (i = have; i < count; i++)
			ids[i] = (int)rng_below(&s, (uint64_t)span);
		qsort(ids, (size_t)count, sizeof(int), cmp_int);
		for (i = 1, u = 1; i < count; i++) {
			if (ids[i] != ids[u - 1])
				ids[u++] = ids[i];
		}
		have = u;
	}
	return ids;
}

static long long median_ll(const long long *v, int n)
{
	long long *tmp;
	long long m;

	if (n <= 0)
		return 0;
	tmp = xcalloc((size_t)n, sizeof(*tmp));
	memcpy(tmp, v, (size_t)n * sizeof(*tmp));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_ll);
	m = n & 1 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
	free(tmp);
	return m;
}

static long long min_ll(const long long *v, int n)
{
	long long m = n ? v[0] : 0;

	while (n-- > 0)
		m = v[n] < m ? v[n] : m;
	return m;
}

static long long max_ll(const long long *v, int n)
{
	long long m = n ? v[0] : 0;

	while (n-- > 0)
		m = v[n] > m ? v[n] : m;
	return m;
}

/*
 * Split total operations into up to NCHUNKS chunks; chunk c covers
 * [chunk_start(c), chunk_start(c + 1)).
 */
static int nchunks(long long total)
{
	return total < NCHUNKS ? (int)total : NCHUNKS;
}

static long long chunk_start(long long total, int c)
{
	return total * c / nchunks(total);
}

/*
 * Create count timers with normal IDs; ids may be NULL.  Returns how many
 * were created; errno tells why it stopped short.
 */
static long long create_n(long long count, int *ids)
{
	long long i;
	int id;

	for (i = 0; i < count; i++) {
		if (tcreate_plain(&id))
			break;
		if (ids)
			ids[i] = id;
	}
	return i;
}

/* create_n() that dies unless all count timers were created */
static void create_all(long long count, int *ids)
{
	long long done = create_n(count, ids);

	if (done != count)
		die(errno, "timer_create after %lld timers: %s", done,
		    strerror(errno));
}

/*
 * Fork a child that creates count plain timers, answers 'r' and then
 * holds them until it is told to exit (any byte or EOF on *wfd) or is
 * killed.  If the child cannot create them, die with its errno.
 */
static pid_t spawn_holder(long long count, int *rfd, int *wfd,
			  const char *what)
{
	pid_t pid = spawn_piped(rfd, wfd);

	if (pid == 0) {
		if (create_n(count, NULL) != count)
			_exit(errno & 0xff);
		send_byte(*wfd, 'r');
		/* Sleep in read() until told to go or killed */
		recv_byte(*rfd);
		_exit(0);
	}
	if (recv_byte(*rfd) != 'r')
		die_child_failed(pid, what);
	return pid;
}

/* ------------------------------------------------------------------ */
/* Instruction-count windows                                           */
/* ------------------------------------------------------------------ */

/*
 * Under QEMU TCG with harness/qemu/insncount.c loaded, the guest
 * instructions executed between window_begin() and window_end() (on all
 * vCPUs) are counted by the host; the two markers are multi-byte NOPs no
 * compiler emits, so without the plugin they cost one NOP each.  The JSON
 * lists the windows in order with the operations each timed, which is how
 * the harness turns the plugin's counts into instructions per operation.
 */
#define MAX_WINDOWS		256

static struct {
	const char *name;
	long long ops;
} windows[MAX_WINDOWS];
static int nwindows;

static inline void window_begin(void)
{
#if defined(__x86_64__) || defined(__i386__)
	asm volatile(".byte 0x0f, 0x1f, 0x80, 0x50, 0x54, 0x42, 0x7b" ::: "memory");
#endif
}

/* The end marker alone: a child that ran the loop closes its window */
static inline void window_mark_end(void)
{
#if defined(__x86_64__) || defined(__i386__)
	asm volatile(".byte 0x0f, 0x1f, 0x80, 0x50, 0x54, 0x42, 0x7d" ::: "memory");
#endif
}

/*
 * The bookkeeping alone: the parent records a window its child closed
 * (the child's copy of windows[] dies with it).  Windows of one name are
 * added up by the harness: repeated loops give one count per operation.
 */
static void window_record(const char *name, long long ops)
{
	if (nwindows == MAX_WINDOWS)
		die(EOVERFLOW, "more than %d instruction windows", MAX_WINDOWS);
	windows[nwindows].name = name;
	windows[nwindows++].ops = ops;
}

static void window_end(const char *name, long long ops)
{
	window_mark_end();
	window_record(name, ops);
}

static void windows_json(struct json *j)
{
	int i;

	j_arr(j, "windows");
	for (i = 0; i < nwindows; i++) {
		j_obj(j, NULL);
		j_str(j, "name", windows[i].name);
		j_int(j, "ops", windows[i].ops);
		j_end(j);
	}
	j_arr_end(j);
}

/* Random live IDs to look up, drawn before timing */
static int *lookup_sequence(const int *ids, long long n, long long lookups,
			    long long seed)
{
	int *seq = xcalloc((size_t)lookups, sizeof(int));
	uint64_t s = rng_seed(seed);
	long long i;

	for (i = 0; i < lookups; i++)
		seq[i] = ids[rng_below(&s, (uint64_t)n)];
	return seq;
}

/*
 * timer_getoverrun() over seq in NCHUNKS chunks; per-chunk ns/lookup into
 * per[], median returned.  A short warm-up pass primes the caches.
 */
static long long time_lookups(const int *seq, long long lookups,
			      long long *per, const char *window)
{
	long long i, t0, a, b;
	int c;

	for (i = 0; i < lookups && i < 10000; i++) {
		if (sys_timer_getoverrun(seq[i]) < 0)
			die(errno, "timer_getoverrun(%d): %s", seq[i],
			    strerror(errno));
	}
	window_begin();
	for (c = 0; c < nchunks(lookups); c++) {
		a = chunk_start(lookups, c);
		b = chunk_start(lookups, c + 1);
		t0 = mono_ns();
		for (i = a; i < b; i++) {
			if (sys_timer_getoverrun(seq[i]) < 0)
				die(errno, "timer_getoverrun(%d): %s", seq[i],
				    strerror(errno));
		}
		per[c] = (mono_ns() - t0) / (b - a);
	}
	window_end(window, lookups);
	return median_ll(per, nchunks(lookups));
}

/* ------------------------------------------------------------------ */
/* Restoring a set of IDs (CRIU)                                       */
/* ------------------------------------------------------------------ */

/*
 * One timer_create() for restore_one(); arg points to the method.  With
 * EXACT_NONE and id ID_POISON this is a plain create.
 */
static int restore_create(const void *arg, int id, int *got)
{
	return create_exact(*(const int *)arg, id, got);
}

static void restore_ids(struct restore_state *st, int m, const int *ids,
			long long count)
{
	long long i;

	if (exact_begin(m)) {
		st->err = errno;
		st->reason = "prctl";
		return;
	}
	for (i = 0; i < count; i++) {
		if (restore_one(st, m == EXACT_NONE, ids[i], restore_create,
				&m))
			break;
		st->restored++;
	}
	exact_end(m);
}

/* ------------------------------------------------------------------ */
/* Workers: threads and processes released together                    */
/* ------------------------------------------------------------------ */

struct worker_slot {
	long long start_ns;
	long long end_ns;
	long long ops;
	int err;
};

/* In MAP_SHARED memory; the counters are futex words */
struct gate {
	uint32_t ready;		/* workers waiting to start */
	uint32_t go;		/* 1: start */
	uint32_t done;		/* workers finished */
	uint32_t quit;		/* 1: workers may exit, timers go */
	struct worker_slot slot[];
};

struct worker_arg {
	struct gate *g;
	int index;
	long long count;
	int (*body)(long long count, long long *ops);
};

static void futex_wait(uint32_t *addr, uint32_t val)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	/* Shared (not PRIVATE) futex: waiters live in different processes */
	syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void gate_add(uint32_t *addr)
{
	__atomic_fetch_add(addr, 1, __ATOMIC_SEQ_CST);
	futex_wake(addr);
}

static void gate_set(uint32_t *addr)
{
	__atomic_store_n(addr, 1, __ATOMIC_SEQ_CST);
	futex_wake(addr);
}

/* Wait until *addr >= target; sleeping, not spinning */
static void gate_wait(uint32_t *addr, uint32_t target)
{
	uint32_t v;

	while ((v = __atomic_load_n(addr, __ATOMIC_SEQ_CST)) < target)
		futex_wait(addr, v);
}

static void *worker_main(void *p)
{
	struct worker_arg *a = p;
	struct worker_slot *s = &a->g->slot[a->index];

	gate_add(&a->g->ready);
	gate_wait(&a->g->go, 1);
	s->start_ns = mono_ns();
	if (a->body(a->count, &s->ops))
		s->err = errno ? errno : EIO;
	s->end_ns = mono_ns();
	gate_add(&a->g->done);
	/* Keep the timers alive until every worker is done */
	gate_wait(&a->g->quit, 1);
	return NULL;
}

/* One worker process: threads workers sharing one timer ID space */
static __noreturn void worker_process(struct gate *g, int first, int threads,
				      long long count,
				      int (*body)(long long, long long *))
{
	struct worker_arg *args = xcalloc((size_t)threads, sizeof(*args));
	pthread_t *tids = xcalloc((size_t)threads, sizeof(*tids));
	bool *started = xcalloc((size_t)threads, sizeof(*started));
	int t;

	for (t = 0; t < threads; t++) {
		args[t] = (struct worker_arg){ g, first + t, count, body };
		if (threads == 1)
			break;
		started[t] = !pthread_create(&tids[t], NULL, worker_main,
					     &args[t]);
		if (!started[t]) {
			/* Account for it so that nobody waits forever */
			g->slot[first + t].err = EAGAIN;
			gate_add(&g->ready);
			gate_add(&g->done);
		}
	}
	if (threads == 1) {
		worker_main(&args[0]);
		_exit(0);
	}
	for (t = 0; t < threads; t++) {
		if (started[t])
			pthread_join(tids[t], NULL);
	}
	_exit(0);
}

/* Has any worker process died before it should have? */
static pid_t dead_worker(const pid_t *pids, int n)
{
	siginfo_t si;
	int i;

	for (i = 0; i < n; i++) {
		memset(&si, 0, sizeof(si));
		if (!waitid(P_PID, (id_t)pids[i], &si,
			    WEXITED | WNOHANG | WNOWAIT) && si.si_pid)
			return pids[i];
	}
	return 0;
}

/* gate_wait() that notices crashed worker processes */
static void gate_wait_workers(uint32_t *addr, uint32_t target,
			      const pid_t *pids, int n)
{
	uint32_t v;
	pid_t dead;

	while ((v = __atomic_load_n(addr, __ATOMIC_SEQ_CST)) < target) {
		dead = dead_worker(pids, n);
		if (dead)
			die(ECHILD, "worker process %d died early", (int)dead);
		futex_wait(addr, v);
	}
}

struct workers_result {
	long long elapsed_ns;	/* release to last finish */
	int workers;
	long long *worker_ns;	/* per worker, own start to own finish */
	long long total_ops;
};

/*
 * Run body(count) in procs * threads workers (threads per process), all
 * released at once after everybody is ready.  Timers live until all are
 * finished.
 */
static void run_workers(long long procs, long long threads, long long count,
			int (*body)(long long, long long *),
			struct workers_result *res)
{
	int workers = (int)(procs * threads), i;
	size_t size = sizeof(struct gate) +
		      (size_t)workers * sizeof(struct worker_slot);
	struct gate *g;
	pid_t *pids;
	long long release, last = 0;
	char buf[16];

	if (workers > MAX_WORKERS)
		die(EINVAL, "procs*threads must be <= %d", MAX_WORKERS);
	g = shared_alloc(size);
	pids = xcalloc((size_t)procs, sizeof(*pids));
	for (i = 0; i < procs; i++) {
		pids[i] = spawn();
		if (pids[i] == 0)
			worker_process(g, i * (int)threads, (int)threads,
				       count, body);
	}
	gate_wait_workers(&g->ready, (uint32_t)workers, pids, (int)procs);
	window_begin();
	release = mono_ns();
	gate_set(&g->go);
	gate_wait_workers(&g->done, (uint32_t)workers, pids, (int)procs);
	window_end("workers", (long long)workers * count);

	res->workers = workers;
	res->worker_ns = xcalloc((size_t)workers, sizeof(long long));
	res->total_ops = 0;
	for (i = 0; i < workers; i++) {
		struct worker_slot *s = &g->slot[i];

		if (s->err) {
			gate_set(&g->quit);
			die(s->err, "worker %d failed after %lld ops: %s", i,
			    s->ops, errno_name(s->err, buf, sizeof(buf)));
		}
		res->worker_ns[i] = s->end_ns - s->start_ns;
		res->total_ops += s->ops;
		last = s->end_ns > last ? s->end_ns : last;
	}
	res->elapsed_ns = last - release;
	gate_set(&g->quit);
	for (i = 0; i < procs; i++)
		reap(pids[i], "worker");
	free(pids);
	munmap(g, size);
}

static void workers_json(struct json *j, const struct workers_result *r,
			 long long per_worker_ops, const char *per_key)
{
	long long *per = xcalloc((size_t)r->workers, sizeof(long long));
	int i;

	for (i = 0; i < r->workers; i++)
		per[i] = per_worker_ops ? r->worker_ns[i] / per_worker_ops : 0;
	j_int(j, "workers", r->workers);
	j_int(j, "elapsed_ns", r->elapsed_ns);
	j_int(j, per_key, median_ll(per, r->workers));
	j_int(j, "worker_ns_max", max_ll(r->worker_ns, r->workers));
	if (r->workers <= 64)
		j_int_array(j, "worker_ns", r->worker_ns, r->workers);
	free(per);
}

/* ------------------------------------------------------------------ */
/* /proc/slabinfo                                                      */
/* ------------------------------------------------------------------ */

struct slab {
	char name[64];
	long long active_bytes;		/* active_objs * objsize */
	long long objsize;
	long long pages_bytes;		/* num_slabs * pagesperslab * PAGE_SIZE */
};

struct slabinfo {
	struct slab *s;
	int n;
};

static int read_whole(const char *path, struct sbuf *sb)
{
	int ret, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	sb->len = 0;
	ret = sb_read_fd(sb, fd, 65536);
	close(fd);
	return ret;
}

static void slabinfo_read(struct slabinfo *si)
{
	static struct sbuf sb;
	long page = sysconf(_SC_PAGESIZE);
	char *line, *save = NULL;

	if (read_whole("/proc/slabinfo", &sb))
		die(errno, "cannot read /proc/slabinfo: %s", strerror(errno));
	si->n = 0;
	si->s = xcalloc(sb.len / 40 + 1, sizeof(struct slab));
	for (line = strtok_r(sb.buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct slab *s = &si->s[si->n];
		unsigned long act, num, size, per, pps, aslabs, nslabs;

		if (sscanf(line, "%63s %lu %lu %lu %lu %lu : tunables %*u %*u %*u : slabdata %lu %lu",
			   s->name, &act, &num, &size, &per, &pps,
			   &aslabs, &nslabs) != 8)
			continue;	/* the two header lines */
		s->active_bytes = (long long)act * (long long)size;
		s->objsize = (long long)size;
		s->pages_bytes = (long long)nslabs * (long long)pps * page;
		si->n++;
	}
	if (!si->n)
		die(EPROTO, "no caches parsed from /proc/slabinfo");
}

static const struct slab *slab_find(const struct slabinfo *si,
				    const char *name)
{
	int i;

	for (i = 0; i < si->n; i++) {
		if (!strcmp(si->s[i].name, name))
			return &si->s[i];
	}
	return NULL;
}

/*
 * SLUB merges compatible caches: a merged cache is not in /proc/slabinfo,
 * its /sys/kernel/slab entry is a link to the same ":A-..." node as the
 * cache that is.  Returns the listed cache's name, or NULL.
 */
static const char *slab_merged_into(const struct slabinfo *si,
				    const char *name)
{
	char path[128], want[128], got[128];
	ssize_t n;
	int i;

	snprintf(path, sizeof(path), "/sys/kernel/slab/%s", name);
	n = readlink(path, want, sizeof(want) - 1);
	if (n <= 0)
		return NULL;
	want[n] = '\0';
	for (i = 0; i < si->n; i++) {
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s",
			 si->s[i].name);
		n = readlink(path, got, sizeof(got) - 1);
		if (n <= 0)
			continue;
		got[n] = '\0';
		if (!strcmp(got, want))
			return si->s[i].name;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

static const char *const exact_choices[] = { "auto", "flag", "prctl", NULL };

/*
 * 1. The legacy restore loop: create+delete pairs, IDs advance.  start > 0
 * first places the cursor there with an exact create of start - 1 (and its
 * delete), so the loop runs at that depth of the ID space: the per-pair
 * cost of an xarray depends on the height of the tree at the cursor.
 */
static const struct param pairs_params[] = {
	{ "n", 200000, 1, INT_MAX, NULL },
	{ "start", 0, 0, INT_MAX, NULL },
	{ "exact", 0, 0, 0, exact_choices },
	{ NULL, 0, 0, 0, NULL }
};

static void case_pairs(struct json *j)
{
	long long n = param_int("n"), per[NCHUNKS], i, a, b, t0, total = 0;
	int c, id = -1, start = (int)param_int("start");

	if (start > 0) {
		int m = exact_param("exact", false);

		if (exact_begin(m) || create_exact(m, start - 1, &id))
			die(errno, "%s timer_create(%d): %s", exact_names[m],
			    start - 1, strerror(errno));
		exact_end(m);
		if (id != start - 1 || sys_timer_delete(id))
			die(EPROTO, "placing the cursor at %d gave ID %d",
			    start, id);
	}
	window_begin();
	for (c = 0; c < nchunks(n); c++) {
		a = chunk_start(n, c);
		b = chunk_start(n, c + 1);
		t0 = mono_ns();
		for (i = a; i < b; i++) {
			if (tcreate_plain(&id))
				die(errno, "timer_create #%lld: %s", i,
				    strerror(errno));
			if (sys_timer_delete(id))
				die(errno, "timer_delete(%d): %s", id,
				    strerror(errno));
		}
		t0 = mono_ns() - t0;
		total += t0;
		per[c] = t0 / (b - a);
	}
	window_end("pairs", n);
	j_int(j, "pairs", n);
	j_int(j, "start", start);
	j_int(j, "ns_per_pair", median_ll(per, nchunks(n)));
	j_int(j, "ns_per_pair_total", total / n);
	j_int(j, "total_ns", total);
	j_int_array(j, "chunk_ns_per_pair", per, nchunks(n));
	j_int(j, "last_id", id);
}

/* 2. One exact create of a high ID in a fresh process, reps times */

static const struct param exact_high_params[] = {
	{ "exact", 0, 0, 0, exact_choices },
	{ "id", INT_MAX - 1, 0, INT_MAX, NULL },
	{ "reps", 50, 1, 100000, NULL },
	{ NULL, 0, 0, 0, NULL }
};

struct one_create {
	long long ns;
	int id;
	int err;
};

/*
 * The first create in a fresh child: exact with method m, or a plain one
 * (m < 0) as the baseline.  Only the timer_create() call is timed.
 */
static void first_create(struct one_create *res, int m, int want)
{
	pid_t pid;

	memset(res, 0, sizeof(*res));
	pid = spawn();
	if (pid == 0) {
		long long t0;
		int err;

		if (m >= 0 && exact_begin(m)) {
			res->err = errno;
			_exit(0);
		}
		t0 = mono_ns();
		window_begin();
		err = m >= 0 ? create_exact(m, want, &res->id) :
			       tcreate_plain(&res->id);
		window_mark_end();
		res->ns = mono_ns() - t0;
		if (err)
			res->err = errno;
		_exit(0);
	}
	reap(pid, "exact_high");
	/* A child that failed before its create opened no window */
	if (!res->err)
		window_record(m >= 0 ? "exact" : "plain", 1);
	if (res->err)
		die(res->err, "%s timer_create(%d): %s",
		    m >= 0 ? exact_names[m] : "plain", want,
		    strerror(res->err));
}

static void case_exact_high(struct json *j)
{
	int m = exact_param("exact", false), want = (int)param_int("id");
	int reps = (int)param_int("reps"), r, ok = 0;
	struct one_create *res = shared_alloc(sizeof(*res));
	long long *ns = xcalloc((size_t)reps, sizeof(long long));
	long long *plain = xcalloc((size_t)reps, sizeof(long long));

	for (r = 0; r < reps; r++) {
		first_create(res, m, want);
		ok += res->id == want;
		ns[r] = res->ns;
		first_create(res, -1, -1);
		plain[r] = res->ns;
	}
	j_int(j, "reps", reps);
	/* "ns" is the headline number (the median), as harness/bench.py reads it */
	j_int(j, "ns", median_ll(ns, reps));
	j_int(j, "ns_median", median_ll(ns, reps));
	j_int(j, "ns_min", min_ll(ns, reps));
	j_int(j, "ns_max", max_ll(ns, reps));
	j_bool(j, "id_ok", ok == reps);
	/* The same measurement for a plain first create, as a baseline */
	j_int(j, "plain_ns_median", median_ll(plain, reps));
}

/* 3. Restore a sparse set of IDs, legacy loop or exact */
static const char *const restore_choices[] = {
	"legacy", "flag", "prctl", "auto", NULL
};

static const struct param sparse_params[] = {
	{ "mode", 0, 0, 0, restore_choices },
	{ "count", 1000, 1, 10000000, NULL },
	{ "span", 1000000, 1, 1LL << 31, NULL },
	{ "seed", 1, 0, LLONG_MAX, NULL },
	{ "max_calls", 1LL << 31, 1, LLONG_MAX, NULL },
	{ NULL, 0, 0, 0, NULL }
};

struct restore_result {
	struct restore_state st;
	long long elapsed_ns;
};

static void case_sparse_restore(struct json *j)
{
	int m = exact_param("mode", true);
	long long count = param_int("count"), span = param_int("span");
	int *ids = sparse_ids(count, span, param_int("seed"));
	struct restore_result *res = shared_alloc(sizeof(*res));
	bool exceeded;
	pid_t pid;

	if (m == EXACT_NONE)
		param_set_str("mode", "legacy");
	res->st.max_calls = param_int("max_calls");
	pid = spawn();
	if (pid == 0) {
		long long t0 = mono_ns();

		window_begin();
		restore_ids(&res->st, m, ids, count);
		window_mark_end();
		res->elapsed_ns = mono_ns() - t0;
		_exit(0);
	}
	reap(pid, "sparse_restore");
	window_record("restore", res->st.restored);
	exceeded = res->st.reason && !strcmp(res->st.reason, "max_calls");
	if (res->st.reason && !exceeded)
		die(res->st.err, "restore failed at ID %d (%s) after %lld syscalls",
		    ids[res->st.restored], res->st.reason, res->st.calls);
	j_int(j, "elapsed_ns", res->elapsed_ns);
	j_int(j, "syscalls", res->st.calls);
	j_int(j, "restored", res->st.restored);
	j_int(j, "requested", count);
	j_bool(j, "exceeded", exceeded);
	j_int(j, "ns_per_timer",
	      res->st.restored ? res->elapsed_ns / res->st.restored : 0);
	j_int(j, "first_id", ids[0]);
	j_int(j, "last_id", ids[count - 1]);
}

/* 4. Concurrent creation of many timers in threads and/or processes */
static const struct param workers_params[] = {
	{ "n", 100000, 1, INT_MAX, NULL },
	{ "threads", 1, 1, MAX_WORKERS, NULL },
	{ "procs", 1, 1, MAX_WORKERS, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static int body_create(long long count, long long *ops)
{
	int id;

	for (*ops = 0; *ops < count; (*ops)++) {
		if (tcreate_plain(&id))
			return -1;
	}
	return 0;
}

static void case_create_many(struct json *j)
{
	long long n = param_int("n");
	struct workers_result r;

	run_workers(param_int("procs"), param_int("threads"), n,
		    body_create, &r);
	workers_json(j, &r, n, "ns_per_create");
	j_int(j, "total_creates", r.total_ops);
}

/* 5. Lookup cost: timer_getoverrun() on random live IDs */
static const struct param lookup_params[] = {
	{ "n", 100000, 1, INT_MAX, NULL },
	{ "lookups", 200000, 1, INT_MAX, NULL },
	{ "seed", 1, 0, LLONG_MAX, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static void case_lookup(struct json *j)
{
	long long n = param_int("n"), lookups = param_int("lookups");
	int *ids = xcalloc((size_t)n, sizeof(int)), *seq;
	long long per[NCHUNKS], t0, create_ns;

	t0 = mono_ns();
	create_all(n, ids);
	create_ns = mono_ns() - t0;
	seq = lookup_sequence(ids, n, lookups, param_int("seed"));
	j_int(j, "ns_per_lookup", time_lookups(seq, lookups, per, "lookups"));
	j_int_array(j, "chunk_ns_per_lookup", per, nchunks(lookups));
	j_int(j, "lookups", lookups);
	j_int(j, "timers", n);
	j_int(j, "elapsed_ns", create_ns);
}

/*
 * 5b. The 2025 hash rework's own test ("posix-timers: Improve hash table
 * performance"): one process creates n timers, then calls
 * timer_getoverrun() once on each, in creation order; total time per phase.
 */
static const struct param create_getoverrun_params[] = {
	{ "n", 20000, 1, INT_MAX, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static void case_create_getoverrun(struct json *j)
{
	long long n = param_int("n"), i, t0, create_ns, get_ns;
	int *ids = xcalloc((size_t)n, sizeof(int));

	window_begin();
	t0 = mono_ns();
	create_all(n, ids);
	create_ns = mono_ns() - t0;
	window_end("create", n);
	window_begin();
	t0 = mono_ns();
	for (i = 0; i < n; i++) {
		if (sys_timer_getoverrun(ids[i]) < 0)
			die(errno, "timer_getoverrun(%d): %s", ids[i],
			    strerror(errno));
	}
	get_ns = mono_ns() - t0;
	window_end("getoverrun", n);
	j_int(j, "timers", n);
	j_int(j, "create_ns", create_ns);
	j_int(j, "getoverrun_ns", get_ns);
}

/* 6. create+delete churn in threads and/or processes */
static const struct param churn_params[] = {
	{ "iters", 100000, 1, INT_MAX, NULL },
	{ "threads", 1, 1, MAX_WORKERS, NULL },
	{ "procs", 1, 1, MAX_WORKERS, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static int body_churn(long long count, long long *ops)
{
	int id;

	for (*ops = 0; *ops < count; (*ops)++) {
		if (tcreate_plain(&id) || sys_timer_delete(id))
			return -1;
	}
	return 0;
}

static void case_churn(struct json *j)
{
	long long iters = param_int("iters");
	struct workers_result r;

	run_workers(param_int("procs"), param_int("threads"), iters,
		    body_churn, &r);
	workers_json(j, &r, iters, "ns_per_pair");
	j_int(j, "total_pairs", r.total_ops);
	/* One op is one create+delete pair */
	j_dbl(j, "ops_per_sec",
	      r.elapsed_ns ? (double)r.total_ops * 1e9 / (double)r.elapsed_ns
			   : 0);
}

/* 7. Does another process's pile of timers slow our lookups down? */
static const struct param neighbour_params[] = {
	{ "hold", 60000, 0, INT_MAX, NULL },
	{ "lookups", 200000, 1, INT_MAX, NULL },
	{ "victim_timers", 100, 1, INT_MAX, NULL },
	{ "seed", 1, 0, LLONG_MAX, NULL },
	{ NULL, 0, 0, 0, NULL }
};

static void case_neighbour(struct json *j)
{
	long long vt = param_int("victim_timers"), hold = param_int("hold");
	long long lookups = param_int("lookups"), per[NCHUNKS];
	long long alone, with, after;
	int *ids = xcalloc((size_t)vt, sizeof(int)), *seq;
	int rfd, wfd;
	pid_t pid;

	if (create_n(vt, ids) != vt)
		die(errno, "victim timer_create: %s", strerror(errno));
	seq = lookup_sequence(ids, vt, lookups, param_int("seed"));
	alone = time_lookups(seq, lookups, per, "alone");

	pid = spawn_holder(hold, &rfd, &wfd,
			   "neighbour failed to create its timers");
	with = time_lookups(seq, lookups, per, "with_neighbour");
	kill_reap(pid);
	close(rfd);
	close(wfd);
	after = time_lookups(seq, lookups, per, "after");

	j_int(j, "alone_ns", alone);
	j_int(j, "with_neighbour_ns", with);
	j_dbl(j, "ratio", alone ? (double)with / (double)alone : 0);
	j_int(j, "after_ns", after);
	j_int(j, "neighbour_timers", hold);
}

/* 8. Kernel memory per timer, from /proc/slabinfo deltas */
static const char *const pattern_choices[] = {
	"dense", "churn", "offset", "sparse", NULL
};
static const char *const mem_exact_choices[] = {
	"auto", "flag", "prctl", "none", NULL
};

static const struct param memory_params[] = {
	{ "pattern", 0, 0, 0, pattern_choices },
	{ "n", 10000, 1, 10000000, NULL },
	{ "offset", 512, 1, INT_MAX, NULL },
	{ "span", 1000000, 1, 1LL << 31, NULL },
	{ "seed", 1, 0, LLONG_MAX, NULL },
	{ "exact", 0, 0, 0, mem_exact_choices },
	{ "reps", 3, 1, 99, NULL },
	{ "settle_ms", 200, 0, 60000, NULL },
	{ "procs", 1, 1, 256, NULL },
	{ NULL, 0, 0, 0, NULL }
};

/* Short-lived timers per long-lived one in the churn pattern */
#define CHURN_SHORT 9

/* The IDs a pattern wants, or NULL for dense/churn (plain creates) */
static int *pattern_ids(const char *pattern, long long n)
{
	long long i, offset = param_int("offset");
	int *ids;

	if (!strcmp(pattern, "sparse"))
		return sparse_ids(n, param_int("span"), param_int("seed"));
	if (strcmp(pattern, "offset"))
		return NULL;
	if ((n - 1) * offset > INT_MAX)
		die(EINVAL, "(n-1)*offset exceeds INT_MAX");
	ids = xcalloc((size_t)n, sizeof(int));
	for (i = 0; i < n; i++)
		ids[i] = (int)(i * offset);
	return ids;
}

static void make_pattern(struct restore_state *st, const char *pattern,
			 int m, const int *ids, long long n)
{
	int shorts[CHURN_SHORT], id, k;
	long long i;

	if (ids) {
		restore_ids(st, m, ids, n);
		return;
	}
	for (i = 0; i < n; i++) {
		st->calls++;
		if (tcreate_plain(&id))
			goto fail;
		st->restored++;
		if (strcmp(pattern, "churn"))
			continue;
		for (k = 0; k < CHURN_SHORT; k++) {
			st->calls++;
			if (tcreate_plain(&shorts[k]))
				goto fail;
		}
		for (k = 0; k < CHURN_SHORT; k++) {
			st->calls++;
			if (sys_timer_delete(shorts[k]))
				goto fail;
		}
	}
	return;
fail:
	st->err = errno;
	st->reason = "syscall";
}

/*
 * Child side of one memory rep: prepare, report ready so the parent takes
 * the "before" sample (fork noise is not in the delta), create on command,
 * report done, and keep the timers until told to go.
 */
static __noreturn void memory_child(struct restore_state *st, int rfd,
				    int wfd, const char *pattern, int m,
				    const int *ids, long long n)
{
	send_byte(wfd, 'r');
	if (recv_byte(rfd) != 'c')
		_exit(0);
	make_pattern(st, pattern, m, ids, n);
	send_byte(wfd, 'd');
	recv_byte(rfd);
	_exit(0);
}

/* Per-cache deltas of all reps, keyed by cache name */
struct cache_delta {
	char name[64];
	long long *active;	/* [reps] */
	long long *pages;	/* [reps] */
};

struct delta_table {
	struct cache_delta *c;
	int n;
	int cap;
	int reps;
};

static struct cache_delta *delta_get(struct delta_table *t, const char *name)
{
	int i;

	for (i = 0; i < t->n; i++) {
		if (!strcmp(t->c[i].name, name))
			return &t->c[i];
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 256;
		t->c = realloc(t->c, (size_t)t->cap * sizeof(*t->c));
		if (!t->c)
			die(ENOMEM, "out of memory");
	}
	memset(&t->c[t->n], 0, sizeof(t->c[t->n]));
	snprintf(t->c[t->n].name, sizeof(t->c[t->n].name), "%s", name);
	t->c[t->n].active = xcalloc((size_t)t->reps, sizeof(long long));
	t->c[t->n].pages = xcalloc((size_t)t->reps, sizeof(long long));
	return &t->c[t->n++];
}

/* after - before for every cache in either sample */
static void delta_add(struct delta_table *t, int rep,
		      const struct slabinfo *before,
		      const struct slabinfo *after)
{
	const struct slab *o;
	struct cache_delta *d;
	int i;

	for (i = 0; i < after->n; i++) {
		o = slab_find(before, after->s[i].name);
		d = delta_get(t, after->s[i].name);
		d->active[rep] = after->s[i].active_bytes -
				 (o ? o->active_bytes : 0);
		d->pages[rep] = after->s[i].pages_bytes -
				(o ? o->pages_bytes : 0);
	}
	for (i = 0; i < before->n; i++) {
		if (slab_find(after, before->s[i].name))
			continue;
		d = delta_get(t, before->s[i].name);
		d->active[rep] = -before->s[i].active_bytes;
		d->pages[rep] = -before->s[i].pages_bytes;
	}
}

/*
 * Deleted timers (and the previous rep's exited child) are freed by RCU
 * callbacks; let those run so they do not show up in the next sample.
 * MEMBARRIER_CMD_GLOBAL is a synchronize_rcu(); the sleep covers the
 * callbacks and kfree_rcu() batching.  Errors only mean more noise.
 */
static void slab_settle(void)
{
	long long ms = param_int("settle_ms");

	if (!ms)
		return;
	syscall(SYS_membarrier, 1 /* MEMBARRIER_CMD_GLOBAL */, 0, 0);
	sleep_ms(ms);
}

/*
 * One rep: procs children each build the pattern in their own process
 * (timers per process and their layout are what the case is about; more
 * processes only make the slab delta large against SLUB's per-CPU
 * slack).  Returns the syscall count of all children.
 */
static long long memory_rep(struct delta_table *t, int rep,
			    const char *pattern, int m, const int *ids,
			    long long n, int procs)
{
	struct restore_state *st = shared_alloc((size_t)procs * sizeof(*st));
	int *rfd = xcalloc((size_t)procs, sizeof(int));
	int *wfd = xcalloc((size_t)procs, sizeof(int));
	pid_t *pid = xcalloc((size_t)procs, sizeof(pid_t));
	struct slabinfo before, after;
	long long calls = 0;
	int k, bad;

	for (k = 0; k < procs; k++) {
		st[k].max_calls = LLONG_MAX;
		pid[k] = spawn_piped(&rfd[k], &wfd[k]);
		if (pid[k] == 0)
			memory_child(&st[k], rfd[k], wfd[k], pattern, m, ids, n);
		if (recv_byte(rfd[k]) != 'r')
			die(ECHILD, "memory child did not start");
	}
	slab_settle();
	slabinfo_read(&before);
	for (k = 0; k < procs; k++)
		send_byte(wfd[k], 'c');
	for (k = 0; k < procs; k++) {
		if (recv_byte(rfd[k]) != 'd')
			die(ECHILD, "memory child died while creating timers");
	}
	for (bad = 0; bad < procs && !st[bad].reason; bad++)
		;
	if (bad < procs) {
		for (k = 0; k < procs; k++) {
			send_byte(wfd[k], 'x');
			reap(pid[k], "memory");
		}
		die(st[bad].err, "creating the %s pattern failed (%s) after %lld timers",
		    pattern, st[bad].reason, st[bad].restored);
	}
	slab_settle();
	slabinfo_read(&after);
	for (k = 0; k < procs; k++) {
		send_byte(wfd[k], 'x');
		close(rfd[k]);
		close(wfd[k]);
		reap(pid[k], "memory");
		calls += st[k].calls;
	}
	delta_add(t, rep, &before, &after);
	free(before.s);
	free(after.s);
	munmap(st, (size_t)procs * sizeof(*st));
	free(rfd);
	free(wfd);
	free(pid);
	return calls;
}

static const char *const memory_named[] = {
	"posix_timers_cache", "radix_tree_node", "sigqueue", NULL
};

static bool is_named_cache(const char *name)
{
	int i;

	for (i = 0; memory_named[i]; i++) {
		if (!strcmp(memory_named[i], name))
			return true;
	}
	return false;
}

static void cache_json(struct json *j, const char *key,
		       const struct cache_delta *d, int reps,
		       const char *merged_into, long long objsize)
{
	j_obj(j, key);
	j_int(j, "delta_bytes", median_ll(d->active, reps));
	j_int(j, "slab_pages_bytes", median_ll(d->pages, reps));
	if (objsize)
		j_int(j, "objsize", objsize);
	if (merged_into)
		j_str(j, "merged_into", merged_into);
	j_end(j);
}

/* Object size of a named cache, or of the cache SLUB merged it into */
static long long cache_objsize(const struct slabinfo *names, const char *name)
{
	const struct slab *o = slab_find(names, name);
	const char *into;

	if (!o && (into = slab_merged_into(names, name)))
		o = slab_find(names, into);
	return o ? o->objsize : 0;
}

/*
 * The sum over the timer caches only (merged ones counted once): less
 * exposed to unrelated activity on the system than the total.
 */
static void named_json(struct json *j, struct delta_table *t,
		       const struct slabinfo *names, long long n)
{
	const char *seen[ARRAY_SIZE(memory_named)] = { NULL };
	long long *sum = xcalloc((size_t)t->reps, sizeof(long long)), med, obj;
	const char *c;
	int i, k, r;

	for (i = 0; memory_named[i]; i++) {
		c = slab_find(names, memory_named[i]) ? memory_named[i] :
		    slab_merged_into(names, memory_named[i]);
		for (k = 0; c && k < i; k++) {
			if (seen[k] && !strcmp(seen[k], c))
				c = NULL;
		}
		seen[i] = c;
		if (!c)
			continue;
		for (r = 0; r < t->reps; r++)
			sum[r] += delta_get(t, c)->active[r];
	}
	med = median_ll(sum, t->reps);
	j_int(j, "timer_caches_delta_bytes", med);
	/*
	 * The least a live timer can cost: its k_itimer, plus the sigqueue
	 * 6.12 preallocates separately (upstream since 6.13 embeds it in the
	 * timer: counted only if that cache grew by half an object per timer
	 * or more).  A per-timer figure below this is slab noise.
	 */
	obj = cache_objsize(names, memory_named[0]);
	{
		long long sq = cache_objsize(names, memory_named[2]);
		const char *c2 = slab_find(names, memory_named[2]) ?
				 memory_named[2] :
				 slab_merged_into(names, memory_named[2]);
		long long grew = c2 ? median_ll(delta_get(t, c2)->active, t->reps) : 0;

		if (sq && grew * 2 >= sq * n)
			obj += sq;
	}
	j_int(j, "timer_object_bytes", obj);
	j_dbl(j, "timer_caches_bytes_per_timer", (double)med / (double)n);
	free(sum);
}

static void case_memory(struct json *j)
{
	const char *pattern = param_str("pattern");
	long long n = param_int("n"), calls = 0;
	int reps = (int)param_int("reps"), procs = (int)param_int("procs"), m, r, i;
	long long total;
	struct delta_table t = { .reps = reps };
	long long *tot_active, *tot_pages, active, pages;
	struct slabinfo names;
	int *ids;

	/* Fail early and clearly where slabinfo is not readable */
	slabinfo_read(&names);
	m = strcmp(pattern, "offset") && strcmp(pattern, "sparse") ?
	    EXACT_NONE : exact_param("exact", true);
	if (m == EXACT_NONE && !strcmp(param_str("exact"), "auto"))
		param_set_str("exact", "none");
	ids = pattern_ids(pattern, n);

	for (r = 0; r < reps; r++)
		calls = memory_rep(&t, r, pattern, m, ids, n, procs);
	total = n * procs;

	tot_active = xcalloc((size_t)reps, sizeof(long long));
	tot_pages = xcalloc((size_t)reps, sizeof(long long));
	for (i = 0; i < t.n; i++) {
		for (r = 0; r < reps; r++) {
			tot_active[r] += t.c[i].active[r];
			tot_pages[r] += t.c[i].pages[r];
		}
	}
	active = median_ll(tot_active, reps);
	pages = median_ll(tot_pages, reps);

	j_obj(j, "caches");
	for (i = 0; i < t.n; i++) {
		if (median_ll(t.c[i].active, reps) ||
		    median_ll(t.c[i].pages, reps) ||
		    is_named_cache(t.c[i].name))
			cache_json(j, t.c[i].name, &t.c[i], reps, NULL,
				   is_named_cache(t.c[i].name) ?
				   cache_objsize(&names, t.c[i].name) : 0);
	}
	/* Named caches that SLUB merged into another one */
	for (i = 0; memory_named[i]; i++) {
		const char *into;
		struct cache_delta *d;

		if (slab_find(&names, memory_named[i]))
			continue;
		into = slab_merged_into(&names, memory_named[i]);
		if (!into)
			continue;
		d = delta_get(&t, into);
		cache_json(j, memory_named[i], d, reps, into,
			   cache_objsize(&names, memory_named[i]));
	}
	j_end(j);
	named_json(j, &t, &names, total);
	j_arr(j, "caches_missing");
	for (i = 0; memory_named[i]; i++) {
		if (!slab_find(&names, memory_named[i]) &&
		    !slab_merged_into(&names, memory_named[i]))
			j_str(j, NULL, memory_named[i]);
	}
	j_arr_end(j);
	j_int(j, "total_delta_bytes", active);
	j_int(j, "total_slab_pages_bytes", pages);
	j_dbl(j, "bytes_per_timer", (double)active / (double)total);
	j_dbl(j, "slab_pages_bytes_per_timer", (double)pages / (double)total);
	j_int(j, "timers", total);
	j_int(j, "syscalls", calls);
	j_int(j, "reps", reps);
}

/* 9. Reading /proc/self/timers with many timers */
static const struct param proc_read_params[] = {
	{ "n", 10000, 0, INT_MAX, NULL },
	{ "reads", 20, 1, 1000000, NULL },
	{ NULL, 0, 0, 0, NULL }
};

/* Read the whole file; returns its size and counts "ID:" lines */
static long long read_timers_file(char *buf, size_t size, long long *entries)
{
	long long total = 0;
	ssize_t n;
	char *p;
	int fd = open("/proc/self/timers", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			die(ENOENT, "no /proc/self/timers");
		die(errno, "open /proc/self/timers: %s", strerror(errno));
	}
	*entries = 0;
	while ((n = read(fd, buf, size - 1)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(errno, "read /proc/self/timers: %s",
			    strerror(errno));
		}
		buf[n] = '\0';
		/* Records start with "ID: " at a line start; reads end on lines */
		for (p = buf; (p = strstr(p, "ID: ")); p += 4) {
			if (p == buf || p[-1] == '\n')
				(*entries)++;
		}
		total += n;
	}
	close(fd);
	return total;
}

static void case_proc_read(struct json *j)
{
	long long n = param_int("n"), entries = 0, bytes = 0, t0;
	int reads = (int)param_int("reads"), r;
	long long *ns = xcalloc((size_t)reads, sizeof(long long));
	size_t size = 1 << 16;
	char *buf = xcalloc(size, 1);

	create_all(n, NULL);
	for (r = 0; r < reads; r++) {
		t0 = mono_ns();
		bytes = read_timers_file(buf, size, &entries);
		ns[r] = mono_ns() - t0;
	}
	j_int(j, "ns_per_read", median_ll(ns, reads));
	j_int(j, "ns_per_read_min", min_ll(ns, reads));
	j_int(j, "bytes", bytes);
	j_int(j, "entries", entries);
	j_int(j, "timers", n);
}

/* 10. Process exit with many timers */
static const struct param exit_params[] = {
	{ "n", 100000, 0, INT_MAX, NULL },
	{ "reps", 3, 1, 1000, NULL },
	{ NULL, 0, 0, 0, NULL }
};

/* Fork a child holding count timers; time "exit now" to waitpid() */
static long long time_exit(long long count)
{
	int rfd, wfd;
	long long t0;
	pid_t pid;

	pid = spawn_holder(count, &rfd, &wfd,
			   "exit child failed to create its timers");
	t0 = mono_ns();
	if (count)
		window_begin();
	send_byte(wfd, 'x');
	reap(pid, "exit");
	if (count)
		window_end("exit", count);
	t0 = mono_ns() - t0;
	close(rfd);
	close(wfd);
	return t0;
}

static void case_exit(struct json *j)
{
	long long n = param_int("n");
	int reps = (int)param_int("reps"), r;
	long long *ns = xcalloc((size_t)reps, sizeof(long long));
	long long *empty = xcalloc((size_t)reps, sizeof(long long));

	for (r = 0; r < reps; r++) {
		/* Baseline: the same handshake and exit without timers */
		empty[r] = time_exit(0);
		ns[r] = time_exit(n);
	}
	j_int(j, "exit_ns", median_ll(ns, reps));
	j_int(j, "exit_ns_min", min_ll(ns, reps));
	j_int(j, "exit_ns_max", max_ll(ns, reps));
	j_int(j, "empty_exit_ns", median_ll(empty, reps));
	j_int(j, "reps", reps);
	j_int(j, "timers", n);
}

static const struct bench_case cases[] = {
	{ "pairs", case_pairs, pairs_params,
	  "n create+delete pairs (legacy restore loop)" },
	{ "exact_high", case_exact_high, exact_high_params,
	  "one exact create of a high ID in a fresh process" },
	{ "sparse_restore", case_sparse_restore, sparse_params,
	  "restore count IDs spread over [0, span)" },
	{ "create_many", case_create_many, workers_params,
	  "each worker creates n timers" },
	{ "lookup", case_lookup, lookup_params,
	  "timer_getoverrun() on random live IDs" },
	{ "create_getoverrun", case_create_getoverrun, create_getoverrun_params,
	  "create n timers, then timer_getoverrun() each once (2025 rework's test)" },
	{ "churn", case_churn, churn_params,
	  "each worker does iters create+delete pairs" },
	{ "neighbour", case_neighbour, neighbour_params,
	  "lookups alone and next to a process holding many timers" },
	{ "memory", case_memory, memory_params,
	  "/proc/slabinfo deltas for a pattern of timers" },
	{ "proc_read", case_proc_read, proc_read_params,
	  "read /proc/self/timers with n timers" },
	{ "exit", case_exit, exit_params,
	  "exit of a process holding n timers" },
};

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	const struct param *p;
	size_t i;

	fprintf(f, "usage: ptbench CASE [key=value ...] | --probe | --help\n\n");
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		fprintf(f, "  %-15s %s\n   ", cases[i].name, cases[i].help);
		for (p = cases[i].params; p->name; p++) {
			if (p->choices)
				fprintf(f, " %s=%s", p->name, p->choices[0]);
			else
				fprintf(f, " %s=%lld", p->name, p->def);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "\nall cases: timeout=%d (watchdog, seconds)\n",
		DEFAULT_TIMEOUT);
}

static bool parse_ll(const char *s, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 0);
	return !errno && end != s && !*end;
}

static void set_param(const char *arg)
{
	const char *eq = strchr(arg, '='), *val;
	const struct param *p;
	size_t klen;
	long long v;
	int i, k;

	if (!eq)
		die(EINVAL, "expected key=value, got '%s'", arg);
	klen = (size_t)(eq - arg);
	val = eq + 1;
	if (klen == strlen(common_params[0].name) &&
	    !strncmp(arg, common_params[0].name, klen)) {
		if (!parse_ll(val, &v) || v < 1 || v > 86400)
			die(EINVAL, "timeout must be 1..86400");
		timeout_s = v;
		return;
	}
	for (i = 0; (p = &cur_case->params[i])->name; i++) {
		if (strlen(p->name) != klen || strncmp(p->name, arg, klen))
			continue;
		if (p->choices) {
			for (k = 0; p->choices[k]; k++) {
				if (!strcmp(p->choices[k], val)) {
					pval_str[i] = p->choices[k];
					return;
				}
			}
			die(EINVAL, "bad value '%s' for %s", val, p->name);
		}
		if (!parse_ll(val, &v) || v < p->min || v > p->max)
			die(EINVAL, "%s must be an integer in [%lld, %lld]",
			    p->name, p->min, p->max);
		pval_int[i] = v;
		return;
	}
	die(EINVAL, "unknown parameter '%.*s' for case %s", (int)klen, arg,
	    cur_case->name);
}

/*
 * Every timer charges a preallocated sigqueue to RLIMIT_SIGPENDING; lift
 * it so that the counts are limited by the kernel, not the rlimit.
 */
static long long raise_sigpending(void)
{
	struct rlimit rl = { SIGPENDING_WANT, SIGPENDING_WANT };

	if (setrlimit(RLIMIT_SIGPENDING, &rl) && !getrlimit(RLIMIT_SIGPENDING, &rl)) {
		/* Not root: take what the hard limit allows */
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_SIGPENDING, &rl);
	}
	getrlimit(RLIMIT_SIGPENDING, &rl);
	return rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
}

/* {"case":...,"params":{...}, then the fields of the case's object */
static void print_result(const struct json *fields)
{
	struct json h;

	j_init(&h);
	j_obj(&h, NULL);
	j_str(&h, "case", cur_case->name);
	params_json(&h);
	/* fields->sb.buf is "{...}": drop its "{" and keep its "}" */
	printf("%s,%s\n", h.sb.buf, fields->sb.buf + 1);
	fflush(stdout);
}

static int do_probe(void)
{
	main_pid = getpid();
	printf("{\"flag\":%s,\"prctl\":%s}\n", probe_flag() ? "true" : "false",
	       probe_prctl() ? "true" : "false");
	return 0;
}

int main(int argc, char **argv)
{
	const struct param *p;
	struct json j;
	long long sigpending;
	size_t i;
	int k;

	main_pid = getpid();
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--probe"))
		return do_probe();

	case_name = argv[1];
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		if (!strcmp(cases[i].name, argv[1]))
			cur_case = &cases[i];
	}
	if (!cur_case)
		die(EINVAL, "unknown case '%s' (see --help)", argv[1]);
	for (k = 0; (p = &cur_case->params[k])->name; k++) {
		pval_int[k] = p->def;
		pval_str[k] = p->choices ? p->choices[0] : NULL;
	}
	for (k = 2; k < argc; k++)
		set_param(argv[k]);

	sigpending = raise_sigpending();
	arm_watchdog();

	/*
	 * The case writes its fields into their own object; "case" and
	 * "params" go first but are only known afterwards ("auto" values are
	 * resolved by the case).
	 */
	j_init(&j);
	j_obj(&j, NULL);
	cur_case->run(&j);
	alarm(0);
	windows_json(&j);
	j_int(&j, "rlimit_sigpending", sigpending);
	j_end(&j);
	print_result(&j);
	return 0;
}
