/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Code shared by the test helpers ptimerctl and ptbench: string buffers,
 * errno names, time helpers and raw timer syscalls.
 *
 * Everything is static inline so that each program is still built from a
 * single source file.  Define PROG_NAME (used in fatal messages) before
 * including this header.
 */
#ifndef PTIMERS_HELPER_COMMON_H
#define PTIMERS_HELPER_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"

#ifndef PROG_NAME
#error "define PROG_NAME before including this header"
#endif

#define NSEC_PER_SEC		1000000000LL
#define NSEC_PER_MSEC		1000000LL

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define __printf(a, b)		__attribute__((format(printf, a, b)))
#define __noreturn		__attribute__((noreturn))

/* ------------------------------------------------------------------ */
/* Memory and growable string buffers                                  */
/* ------------------------------------------------------------------ */

static inline void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs(PROG_NAME ": out of memory\n", stderr);
		_exit(3);
	}
	return p;
}

/* Always NUL-terminated once anything was reserved */
struct sbuf {
	char *buf;
	size_t len;
	size_t cap;
};

static inline void sb_reserve(struct sbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return;
	while (sb->len + extra + 1 > sb->cap)
		sb->cap = sb->cap ? sb->cap * 2 : 128;
	sb->buf = xrealloc(sb->buf, sb->cap);
}

static inline void sb_putn(struct sbuf *sb, const char *s, size_t n)
{
	sb_reserve(sb, n);
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

static inline void sb_puts(struct sbuf *sb, const char *s)
{
	sb_putn(sb, s, strlen(s));
}

static inline void sb_putc(struct sbuf *sb, char c)
{
	sb_putn(sb, &c, 1);
}

static inline void __printf(2, 3)
sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_reserve(sb, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

static inline void sb_free(struct sbuf *sb)
{
	free(sb->buf);
	memset(sb, 0, sizeof(*sb));
}

/*
 * Append everything that can be read from fd, up to chunk bytes per
 * read().  Returns 0 at EOF, or -1 with errno set; sb->buf is never NULL
 * afterwards.
 */
static inline int sb_read_fd(struct sbuf *sb, int fd, size_t chunk)
{
	ssize_t n;

	for (;;) {
		sb_reserve(sb, chunk);
		n = read(fd, sb->buf + sb->len, sb->cap - sb->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sb->len += (size_t)n;
	}
	sb->buf[sb->len] = '\0';
	return n < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* errno names                                                         */
/* ------------------------------------------------------------------ */

struct errname {
	int num;
	const char *name;
};

/*
 * Aliases (EWOULDBLOCK, EDEADLOCK, ENOTSUP) are left out so that lookups
 * give the canonical name.  The kernel-internal codes at the end should
 * never reach userspace; naming them makes such bugs obvious.
 */
static const struct errname errnames[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" },
	{ EINTR, "EINTR" }, { EIO, "EIO" }, { ENXIO, "ENXIO" },
	{ E2BIG, "E2BIG" }, { ENOEXEC, "ENOEXEC" }, { EBADF, "EBADF" },
	{ ECHILD, "ECHILD" }, { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" },
	{ EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { ENOTBLK, "ENOTBLK" },
	{ EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { EXDEV, "EXDEV" },
	{ ENODEV, "ENODEV" }, { ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" },
	{ EINVAL, "EINVAL" }, { ENFILE, "ENFILE" }, { EMFILE, "EMFILE" },
	{ ENOTTY, "ENOTTY" }, { ETXTBSY, "ETXTBSY" }, { EFBIG, "EFBIG" },
	{ ENOSPC, "ENOSPC" }, { ESPIPE, "ESPIPE" }, { EROFS, "EROFS" },
	{ EMLINK, "EMLINK" }, { EPIPE, "EPIPE" }, { EDOM, "EDOM" },
	{ ERANGE, "ERANGE" }, { EDEADLK, "EDEADLK" },
	{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOLCK, "ENOLCK" },
	{ ENOSYS, "ENOSYS" }, { ENOTEMPTY, "ENOTEMPTY" }, { ELOOP, "ELOOP" },
	{ ENOMSG, "ENOMSG" }, { EIDRM, "EIDRM" }, { ECHRNG, "ECHRNG" },
	{ EL2NSYNC, "EL2NSYNC" }, { EL3HLT, "EL3HLT" }, { EL3RST, "EL3RST" },
	{ ELNRNG, "ELNRNG" }, { EUNATCH, "EUNATCH" }, { ENOCSI, "ENOCSI" },
	{ EL2HLT, "EL2HLT" }, { EBADE, "EBADE" }, { EBADR, "EBADR" },
	{ EXFULL, "EXFULL" }, { ENOANO, "ENOANO" }, { EBADRQC, "EBADRQC" },
	{ EBADSLT, "EBADSLT" }, { EBFONT, "EBFONT" }, { ENOSTR, "ENOSTR" },
	{ ENODATA, "ENODATA" }, { ETIME, "ETIME" }, { ENOSR, "ENOSR" },
	{ ENONET, "ENONET" }, { ENOPKG, "ENOPKG" }, { EREMOTE, "EREMOTE" },
	{ ENOLINK, "ENOLINK" }, { EADV, "EADV" }, { ESRMNT, "ESRMNT" },
	{ ECOMM, "ECOMM" }, { EPROTO, "EPROTO" }, { EMULTIHOP, "EMULTIHOP" },
	{ EDOTDOT, "EDOTDOT" }, { EBADMSG, "EBADMSG" },
	{ EOVERFLOW, "EOVERFLOW" }, { ENOTUNIQ, "ENOTUNIQ" },
	{ EBADFD, "EBADFD" }, { EREMCHG, "EREMCHG" }, { ELIBACC, "ELIBACC" },
	{ ELIBBAD, "ELIBBAD" }, { ELIBSCN, "ELIBSCN" },
	{ ELIBMAX, "ELIBMAX" }, { ELIBEXEC, "ELIBEXEC" },
	{ EILSEQ, "EILSEQ" }, { ERESTART, "ERESTART" },
	{ ESTRPIPE, "ESTRPIPE" }, { EUSERS, "EUSERS" },
	{ ENOTSOCK, "ENOTSOCK" }, { EDESTADDRREQ, "EDESTADDRREQ" },
	{ EMSGSIZE, "EMSGSIZE" }, { EPROTOTYPE, "EPROTOTYPE" },
	{ ENOPROTOOPT, "ENOPROTOOPT" },
	{ EPROTONOSUPPORT, "EPROTONOSUPPORT" },
	{ ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	{ EPFNOSUPPORT, "EPFNOSUPPORT" }, { EAFNOSUPPORT, "EAFNOSUPPORT" },
	{ EADDRINUSE, "EADDRINUSE" }, { EADDRNOTAVAIL, "EADDRNOTAVAIL" },
	{ ENETDOWN, "ENETDOWN" }, { ENETUNREACH, "ENETUNREACH" },
	{ ENETRESET, "ENETRESET" }, { ECONNABORTED, "ECONNABORTED" },
	{ ECONNRESET, "ECONNRESET" }, { ENOBUFS, "ENOBUFS" },
	{ EISCONN, "EISCONN" }, { ENOTCONN, "ENOTCONN" },
	{ ESHUTDOWN, "ESHUTDOWN" }, { ETOOMANYREFS, "ETOOMANYREFS" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { ECONNREFUSED, "ECONNREFUSED" },
	{ EHOSTDOWN, "EHOSTDOWN" }, { EHOSTUNREACH, "EHOSTUNREACH" },
	{ EALREADY, "EALREADY" }, { EINPROGRESS, "EINPROGRESS" },
	{ ESTALE, "ESTALE" }, { EUCLEAN, "EUCLEAN" }, { ENOTNAM, "ENOTNAM" },
	{ ENAVAIL, "ENAVAIL" }, { EISNAM, "EISNAM" },
	{ EREMOTEIO, "EREMOTEIO" }, { EDQUOT, "EDQUOT" },
	{ ENOMEDIUM, "ENOMEDIUM" }, { EMEDIUMTYPE, "EMEDIUMTYPE" },
	{ ECANCELED, "ECANCELED" }, { ENOKEY, "ENOKEY" },
	{ EKEYEXPIRED, "EKEYEXPIRED" }, { EKEYREVOKED, "EKEYREVOKED" },
	{ EKEYREJECTED, "EKEYREJECTED" }, { EOWNERDEAD, "EOWNERDEAD" },
	{ ENOTRECOVERABLE, "ENOTRECOVERABLE" }, { ERFKILL, "ERFKILL" },
	{ EHWPOISON, "EHWPOISON" },
	{ 512, "ERESTARTSYS" }, { 513, "ERESTARTNOINTR" },
	{ 514, "ERESTARTNOHAND" }, { 515, "ENOIOCTLCMD" },
	{ 516, "ERESTART_RESTARTBLOCK" }, { 517, "EPROBE_DEFER" },
	{ 518, "EOPENSTALE" }, { 519, "ENOPARAM" }, { 521, "EBADHANDLE" },
	{ 522, "ENOTSYNC" }, { 523, "EBADCOOKIE" }, { 524, "ENOTSUPP" },
	{ 525, "ETOOSMALL" }, { 526, "ESERVERFAULT" }, { 527, "EBADTYPE" },
	{ 528, "EJUKEBOX" }, { 529, "EIOCBQUEUED" }, { 530, "ERECALLCONFLICT" },
	{ 531, "ENOGRACE" },
};

/* Returns a static name, or formats "E<num>" into buf */
static inline const char *errno_name(int num, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(errnames); i++) {
		if (errnames[i].num == num)
			return errnames[i].name;
	}
	snprintf(buf, len, "E%d", num);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

static inline long long now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static inline long long mono_ns(void)
{
	return now_ns(CLOCK_MONOTONIC);
}

/* Sleep for ms milliseconds; signals do not cut the sleep short */
static inline void sleep_ms(long long ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000 * NSEC_PER_MSEC);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Raw timer syscalls                                                  */
/* ------------------------------------------------------------------ */

/*
 * glibc's timer_create() rejects unknown sigev_notify values and its
 * timer_t is not the kernel's integer ID, so the helpers go around it.
 * *idp is read by the kernel for SIGEV_TIMER_ID and in the prctl restore
 * mode.
 */
/*
 * What a plain create presets the ID variable with: negative, so never an
 * ID, and unlike 0 or a wanted ID it cannot pass for one if a kernel
 * reports success without writing the variable.
 */
#define ID_POISON		(-0x21524111)	/* 0xdeadbeef */

static inline long sys_timer_create(clockid_t clock, void *sevp, void *idp)
{
	return syscall(SYS_timer_create, (long)clock, sevp, idp);
}

static inline long sys_timer_delete(int id)
{
	return syscall(SYS_timer_delete, (long)id);
}

static inline long sys_timer_getoverrun(int id)
{
	return syscall(SYS_timer_getoverrun, (long)id);
}

/* Switch the per-process PR_TIMER_CREATE_RESTORE_IDS mode on or off */
static inline int restore_ids_mode(bool on)
{
	return prctl(PR_TIMER_CREATE_RESTORE_IDS,
		     on ? PR_TIMER_CREATE_RESTORE_IDS_ON :
			  PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Restoring timer IDs (CRIU)                                          */
/* ------------------------------------------------------------------ */

struct restore_state {
	long long calls;	/* timer_create + timer_delete */
	long long max_calls;
	long long restored;	/* for the caller to count */
	int err;		/* errno for the result */
	const char *reason;	/* why the restore stopped; a static string */
};

/*
 * Creates a timer with ID want.  legacy is CRIU's algorithm for kernels
 * without ID control: create and delete until the per-process counter
 * reaches want.  Like CRIU, an overshooting timer is deleted before giving
 * up.  Exact methods create once.
 *
 * create(arg, id, &got) makes one timer_create() call asking for id
 * (ID_POISON in legacy mode) and returns non-zero with errno set on failure.
 */
static inline int restore_one(struct restore_state *st, bool legacy, int want,
			      int (*create)(const void *arg, int id, int *got),
			      const void *arg)
{
	int got;

	for (;;) {
		if (st->calls >= st->max_calls) {
			st->err = E2BIG;
			st->reason = "max_calls";
			return -1;
		}
		st->calls++;
		if (create(arg, legacy ? ID_POISON : want, &got)) {
			st->err = errno;
			st->reason = "timer_create";
			return -1;
		}
		if (got == want)
			return 0;
		if (!legacy) {
			st->err = EIO;
			st->reason = "id_mismatch";
			return -1;
		}
		st->calls++;
		if (sys_timer_delete(got)) {
			st->err = errno;
			st->reason = "timer_delete";
			return -1;
		}
		if (got > want) {
			st->err = ENOSPC;
			st->reason = "id_skipped";
			return -1;
		}
	}
}

#endif /* PTIMERS_HELPER_COMMON_H */
