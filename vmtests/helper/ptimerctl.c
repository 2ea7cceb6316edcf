// SPDX-License-Identifier: GPL-2.0
/*
 * ptimerctl - drive POSIX timer syscalls from a JSON-lines protocol.
 *
 * Reads one JSON object per line from stdin, executes it and writes exactly
 * one JSON object per line to stdout.  Used by the pytest harness over SSH
 * inside the test guest, so it must be a static binary with no dependencies.
 *
 * Timers are driven with raw syscalls only: glibc's timer_create() rejects
 * unknown sigev_notify values and rewrites SIGEV_THREAD, and its timer_t is
 * not the kernel's integer ID.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#define PROG_NAME		"ptimerctl"

#include "compat.h"
#include "common.h"
#include "probe.h"

#define PTIMERCTL_VERSION	"1.0"
#define JSON_MAX_DEPTH		64

/*
 * On 32-bit userspace the classic timer_settime/gettime syscalls use a
 * 32-bit time_t; use the *64 variants with the kernel's __kernel_timespec
 * layout there.  On 64-bit, long is already 64 bits wide.
 */
#if defined(__NR_timer_settime64) && __SIZEOF_LONG__ == 4
#define NR_TIMER_SETTIME	__NR_timer_settime64
#define NR_TIMER_GETTIME	__NR_timer_gettime64
struct kts {
	long long tv_sec;
	long long tv_nsec;
};
#else
#define NR_TIMER_SETTIME	__NR_timer_settime
#define NR_TIMER_GETTIME	__NR_timer_gettime
struct kts {
	long tv_sec;
	long tv_nsec;
};
#endif

/* Same member order as the kernel's struct itimerspec */
struct kitimerspec {
	struct kts it_interval;
	struct kts it_value;
};

/* Set when any operation failed to parse or validate: exit status 2 */
static int had_error;

/*
 * Set once a create could not be confirmed (confirm_create()): the kernel's
 * timer array no longer matches what it reported.  Every later op is then
 * answered with "skipped" instead of run, down to a final "hold", so that
 * a broken kernel's state is not touched again (on the first version of
 * the series a later delete or /proc read reached freed memory) and the
 * caller still gets one line per op.
 */
static bool unconfirmed;

/* ------------------------------------------------------------------ */
/* Small utilities                                                     */
/* ------------------------------------------------------------------ */

static pid_t sys_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void set_error_flag(void)
{
	__atomic_store_n(&had_error, 1, __ATOMIC_RELAXED);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return len;
}

/*
 * Append s as a quoted JSON string.  Valid UTF-8 is copied; stray bytes
 * are escaped as if Latin-1, so the output is always valid UTF-8 JSON.
 */
static void sb_json_str(struct sbuf *sb, const char *s, size_t n)
{
	size_t i, len;

	sb_putc(sb, '"');
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x80) {
			len = utf8_len((const unsigned char *)s + i, n - i);
			if (len) {
				sb_putn(sb, s + i, len);
				i += len - 1;
			} else {
				sb_printf(sb, "\\u%04x", ch);
			}
			continue;
		}

		switch (ch) {
		case '"':
			sb_puts(sb, "\\\"");
			break;
		case '\\':
			sb_puts(sb, "\\\\");
			break;
		case '\n':
			sb_puts(sb, "\\n");
			break;
		case '\r':
			sb_puts(sb, "\\r");
			break;
		case '\t':
			sb_puts(sb, "\\t");
			break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				sb_printf(sb, "\\u%04x", ch);
			else
				sb_putc(sb, (char)ch);
		}
	}
	sb_putc(sb, '"');
}

/* ------------------------------------------------------------------ */
/* JSON values, parser and serializer                                  */
/* ------------------------------------------------------------------ */

enum jtype { J_NULL, J_BOOL, J_INT, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	long long num;		/* J_BOOL (0/1) and J_INT */
	char *str;		/* J_STR, NUL-terminated, no embedded NULs */
	size_t len;		/* J_STR: bytes, J_ARR/J_OBJ: members */
	char **keys;		/* J_OBJ */
	struct jval **items;	/* J_ARR and J_OBJ */
};

struct jparser {
	const char *start;
	const char *p;
	const char *end;
	int depth;
	char err[160];
};

static void jfree(struct jval *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->len && (v->type == J_ARR || v->type == J_OBJ);
	     i++) {
		jfree(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	free(v);
}

static struct jval *jnew(enum jtype type)
{
	struct jval *v = xrealloc(NULL, sizeof(*v));

	memset(v, 0, sizeof(*v));
	v->type = type;
	return v;
}

static void __printf(2, 3)
jp_fail(struct jparser *jp, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (jp->err[0])
		return;		/* keep the first, most precise error */
	va_start(ap, fmt);
	vsnprintf(jp->err, sizeof(jp->err), fmt, ap);
	va_end(ap);
	n = strlen(jp->err);
	snprintf(jp->err + n, sizeof(jp->err) - n, " at offset %ld",
		 (long)(jp->p - jp->start));
}

static void jp_ws(struct jparser *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' ||
				   *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static bool jp_lit(struct jparser *jp, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, lit, n))
		return false;
	jp->p += n;
	return true;
}

static int jp_hex4(struct jparser *jp, unsigned int *out)
{
	unsigned int v = 0;
	int i;

	if (jp->end - jp->p < 4) {
		jp_fail(jp, "truncated \\u escape");
		return -1;
	}
	for (i = 0; i < 4; i++) {
		char c = *jp->p++;

		v <<= 4;
		if (c >= '0' && c <= '9') {
			v |= (unsigned int)(c - '0');
		} else if (c >= 'a' && c <= 'f') {
			v |= (unsigned int)(c - 'a' + 10);
		} else if (c >= 'A' && c <= 'F') {
			v |= (unsigned int)(c - 'A' + 10);
		} else {
			jp_fail(jp, "bad hex digit in \\u escape");
			return -1;
		}
	}
	*out = v;
	return 0;
}

static void sb_utf8(struct sbuf *sb, unsigned int cp)
{
	if (cp < 0x80) {
		sb_putc(sb, (char)cp);
	} else if (cp < 0x800) {
		sb_putc(sb, (char)(0xc0 | (cp >> 6)));
		sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		sb_putc(sb, (char)(0xe0 | (cp >> 12)));
		sb_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
		sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
	} else {
		sb_putc(sb, (char)(0xf0 | (cp >> 18)));
		sb_putc(sb, (char)(0x80 | ((cp >> 12) & 0x3f)));
		sb_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3f)));
		sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
	}
}

/* Parses a string starting at the opening quote into a new sbuf */
static int jp_string(struct jparser *jp, struct sbuf *sb)
{
	unsigned int cp, lo;

	jp->p++;		/* opening quote */
	while (jp->p < jp->end) {
		unsigned char c = (unsigned char)*jp->p++;

		if (c == '"')
			return 0;
		if (c < 0x20) {
			jp->p--;
			jp_fail(jp, "control character in string");
			return -1;
		}
		if (c != '\\') {
			sb_putc(sb, (char)c);
			continue;
		}
		if (jp->p >= jp->end)
			break;
		c = (unsigned char)*jp->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			sb_putc(sb, (char)c);
			break;
		case 'b':
			sb_putc(sb, '\b');
			break;
		case 'f':
			sb_putc(sb, '\f');
			break;
		case 'n':
			sb_putc(sb, '\n');
			break;
		case 'r':
			sb_putc(sb, '\r');
			break;
		case 't':
			sb_putc(sb, '\t');
			break;
		case 'u':
			if (jp_hex4(jp, &cp))
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				jp_fail(jp, "lone low surrogate");
				return -1;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (!jp_lit(jp, "\\u") || jp_hex4(jp, &lo) ||
				    lo < 0xdc00 || lo > 0xdfff) {
					jp_fail(jp, "bad surrogate pair");
					return -1;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			}
			if (cp == 0) {
				jp_fail(jp, "\\u0000 is not supported");
				return -1;
			}
			sb_utf8(sb, cp);
			break;
		default:
			jp->p--;
			jp_fail(jp, "bad escape '\\%c'", c);
			return -1;
		}
	}
	jp_fail(jp, "unterminated string");
	return -1;
}

/* Integers only: the protocol has no use for fractions */
static struct jval *jp_number(struct jparser *jp)
{
	unsigned long long acc = 0, limit = LLONG_MAX;
	bool neg = false;
	struct jval *v;

	if (*jp->p == '-') {
		neg = true;
		limit = (unsigned long long)LLONG_MAX + 1;
		jp->p++;
	}
	if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') {
		jp_fail(jp, "bad number");
		return NULL;
	}
	if (*jp->p == '0' && jp->p + 1 < jp->end &&
	    jp->p[1] >= '0' && jp->p[1] <= '9') {
		jp_fail(jp, "leading zero in number");
		return NULL;
	}
	while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
		unsigned int d = (unsigned int)(*jp->p - '0');

		if (acc > (limit - d) / 10) {
			jp_fail(jp, "integer out of 64-bit range");
			return NULL;
		}
		acc = acc * 10 + d;
		jp->p++;
	}
	if (jp->p < jp->end &&
	    (*jp->p == '.' || *jp->p == 'e' || *jp->p == 'E')) {
		jp_fail(jp, "only integers are supported");
		return NULL;
	}
	v = jnew(J_INT);
	/* Two's complement wrap gives LLONG_MIN for -2^63 */
	v->num = neg ? (long long)(0ULL - acc) : (long long)acc;
	return v;
}

static struct jval *jp_value(struct jparser *jp);

static void jv_append(struct jval *v, char *key, struct jval *item)
{
	v->items = xrealloc(v->items, (v->len + 1) * sizeof(*v->items));
	if (v->type == J_OBJ) {
		v->keys = xrealloc(v->keys, (v->len + 1) * sizeof(*v->keys));
		v->keys[v->len] = key;
	}
	v->items[v->len++] = item;
}

static const struct jval *jget(const struct jval *obj, const char *key)
{
	size_t i;

	for (i = 0; i < obj->len; i++) {
		if (!strcmp(obj->keys[i], key))
			return obj->items[i];
	}
	return NULL;
}

/* Shared by arrays and objects: "close" is ']' or '}' */
static struct jval *jp_container(struct jparser *jp, enum jtype type,
				 char close)
{
	struct jval *v = jnew(type), *item;
	struct sbuf key;

	jp->p++;
	jp_ws(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		return v;
	}
	for (;;) {
		memset(&key, 0, sizeof(key));
		jp_ws(jp);
		if (type == J_OBJ) {
			if (jp->p >= jp->end || *jp->p != '"') {
				jp_fail(jp, "expected object key");
				goto err;
			}
			sb_putn(&key, "", 0);
			if (jp_string(jp, &key))
				goto err_key;
			if (jget(v, key.buf)) {
				jp_fail(jp, "duplicate key '%s'", key.buf);
				goto err_key;
			}
			jp_ws(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				jp_fail(jp, "expected ':'");
				goto err_key;
			}
			jp->p++;
		}
		item = jp_value(jp);
		if (!item)
			goto err_key;
		jv_append(v, key.buf, item);
		jp_ws(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return v;
		}
		jp_fail(jp, "expected ',' or '%c'", close);
		goto err;
	}
err_key:
	sb_free(&key);
err:
	jfree(v);
	return NULL;
}

static struct jval *jp_value(struct jparser *jp)
{
	struct jval *v = NULL;
	struct sbuf sb = { 0 };

	jp_ws(jp);
	if (jp->p >= jp->end) {
		jp_fail(jp, "unexpected end of input");
		return NULL;
	}
	if (++jp->depth > JSON_MAX_DEPTH) {
		jp_fail(jp, "nesting too deep");
		return NULL;
	}
	switch (*jp->p) {
	case '{':
		v = jp_container(jp, J_OBJ, '}');
		break;
	case '[':
		v = jp_container(jp, J_ARR, ']');
		break;
	case '"':
		sb_putn(&sb, "", 0);
		if (jp_string(jp, &sb)) {
			sb_free(&sb);
			break;
		}
		v = jnew(J_STR);
		v->str = sb.buf;
		v->len = sb.len;
		break;
	case 't':
	case 'f':
	case 'n':
		if (jp_lit(jp, "true")) {
			v = jnew(J_BOOL);
			v->num = 1;
		} else if (jp_lit(jp, "false")) {
			v = jnew(J_BOOL);
		} else if (jp_lit(jp, "null")) {
			v = jnew(J_NULL);
		} else {
			jp_fail(jp, "bad literal");
		}
		break;
	default:
		if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9'))
			v = jp_number(jp);
		else
			jp_fail(jp, "unexpected character '%c'", *jp->p);
	}
	jp->depth--;
	return v;
}

/* Parses exactly one JSON value spanning all of text[0..len) */
static struct jval *jparse(const char *text, size_t len, char *err,
			   size_t errlen)
{
	struct jparser jp = { .start = text, .p = text, .end = text + len };
	struct jval *v;

	v = jp_value(&jp);
	if (v) {
		jp_ws(&jp);
		if (jp.p != jp.end) {
			jp_fail(&jp, "trailing garbage");
			jfree(v);
			v = NULL;
		}
	}
	if (!v)
		snprintf(err, errlen, "%s", jp.err);
	return v;
}

static void jwrite(struct sbuf *sb, const struct jval *v)
{
	size_t i;

	switch (v->type) {
	case J_NULL:
		sb_puts(sb, "null");
		break;
	case J_BOOL:
		sb_puts(sb, v->num ? "true" : "false");
		break;
	case J_INT:
		sb_printf(sb, "%lld", v->num);
		break;
	case J_STR:
		sb_json_str(sb, v->str, v->len);
		break;
	case J_ARR:
	case J_OBJ:
		sb_putc(sb, v->type == J_ARR ? '[' : '{');
		for (i = 0; i < v->len; i++) {
			if (i)
				sb_putc(sb, ',');
			if (v->type == J_OBJ) {
				sb_json_str(sb, v->keys[i],
					    strlen(v->keys[i]));
				sb_putc(sb, ':');
			}
			jwrite(sb, v->items[i]);
		}
		sb_putc(sb, v->type == J_ARR ? ']' : '}');
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Results and execution context                                       */
/* ------------------------------------------------------------------ */

/* Handler return codes */
enum { OP_ERR = -1, OP_OK = 0, OP_STOP = 1, OP_HOLD = 2 };

struct ctx {
	struct sbuf *collect;	/* NULL: print each result to stdout */
	size_t ncollected;
	bool in_thread;		/* running a "threads" sub-script */
	char err[256];		/* message for OP_ERR */
};

static void res_begin(struct sbuf *r, const char *op)
{
	sb_puts(r, "{\"op\":");
	sb_json_str(r, op, strlen(op));
}

static void res_key(struct sbuf *r, const char *key)
{
	sb_putc(r, ',');
	sb_json_str(r, key, strlen(key));
	sb_putc(r, ':');
}

static void res_int(struct sbuf *r, const char *key, long long v)
{
	res_key(r, key);
	sb_printf(r, "%lld", v);
}

static void res_str(struct sbuf *r, const char *key, const char *s)
{
	res_key(r, key);
	sb_json_str(r, s, strlen(s));
}

static void res_bool(struct sbuf *r, const char *key, bool v)
{
	res_key(r, key);
	sb_puts(r, v ? "true" : "false");
}

static void res_errno(struct sbuf *r, int err)
{
	char buf[16];

	res_str(r, "errno", errno_name(err, buf, sizeof(buf)));
}

/* "ret", plus "errno" when the syscall-like operation failed */
static void res_ret(struct sbuf *r, long ret, int err)
{
	res_int(r, "ret", ret);
	if (ret == -1)
		res_errno(r, err);
}

static void emit(struct ctx *c, const struct sbuf *line)
{
	if (c->collect) {
		if (c->ncollected++)
			sb_putc(c->collect, ',');
		sb_putn(c->collect, line->buf, line->len);
		return;
	}
	fwrite(line->buf, 1, line->len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void emit_error(struct ctx *c, const char *msg)
{
	struct sbuf r = { 0 };

	set_error_flag();
	res_begin(&r, "error");
	res_str(&r, "error", msg);
	sb_putc(&r, '}');
	emit(c, &r);
	sb_free(&r);
}

static int __printf(2, 3)
fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return OP_ERR;
}

/* ------------------------------------------------------------------ */
/* Argument helpers: all return 0 or OP_ERR with c->err set            */
/* ------------------------------------------------------------------ */

static int check_keys(struct ctx *c, const struct jval *op,
		      const char *const *keys)
{
	const char *const *k;
	size_t i;

	for (i = 0; i < op->len; i++) {
		if (!strcmp(op->keys[i], "op"))
			continue;
		for (k = keys; *k; k++) {
			if (!strcmp(*k, op->keys[i]))
				break;
		}
		if (!*k)
			return fail(c, "unknown key '%s'", op->keys[i]);
	}
	return 0;
}

static int arg_int(struct ctx *c, const struct jval *op, const char *key,
		   bool required, long long def, long long min, long long max,
		   long long *out)
{
	const struct jval *v = jget(op, key);

	if (!v) {
		if (required)
			return fail(c, "missing required key '%s'", key);
		*out = def;
		return 0;
	}
	if (v->type != J_INT)
		return fail(c, "'%s' must be an integer", key);
	if (v->num < min || v->num > max)
		return fail(c, "'%s' out of range [%lld, %lld]", key, min,
			    max);
	*out = v->num;
	return 0;
}

/* Optional int-sized argument, the common case */
static int arg_i32(struct ctx *c, const struct jval *op, const char *key,
		   int def, int *out)
{
	long long v;

	if (arg_int(c, op, key, false, def, INT_MIN, INT_MAX, &v))
		return OP_ERR;
	*out = (int)v;
	return 0;
}

/* Required int-sized argument */
static int arg_req_i32(struct ctx *c, const struct jval *op, const char *key,
		       int *out)
{
	long long v;

	if (arg_int(c, op, key, true, 0, INT_MIN, INT_MAX, &v))
		return OP_ERR;
	*out = (int)v;
	return 0;
}

static int arg_bool(struct ctx *c, const struct jval *op, const char *key,
		    bool *out)
{
	const struct jval *v = jget(op, key);

	*out = false;
	if (!v)
		return 0;
	if (v->type != J_BOOL)
		return fail(c, "'%s' must be true or false", key);
	*out = v->num;
	return 0;
}

static int arg_array(struct ctx *c, const struct jval *op, const char *key,
		     const struct jval **out)
{
	const struct jval *v = jget(op, key);

	*out = v;
	if (!v || v->type != J_ARR)
		return fail(c, "'%s' must be an array", key);
	return 0;
}

/* Maps a string argument through a NULL-terminated name table */
struct name_val {
	const char *name;
	int val;
};

static int lookup_name(struct ctx *c, const char *what,
		       const struct name_val *tab, const struct jval *v,
		       int *out)
{
	if (v->type != J_STR)
		return fail(c, "'%s' must be a string", what);
	for (; tab->name; tab++) {
		if (!strcmp(tab->name, v->str)) {
			*out = tab->val;
			return 0;
		}
	}
	return fail(c, "unknown %s '%s'", what, v->str);
}

/* ------------------------------------------------------------------ */
/* Timer syscalls                                                      */
/* ------------------------------------------------------------------ */

enum tid_mode { TID_GIVEN, TID_SELF, TID_MAIN };

struct create_args {
	clockid_t clock;
	int notify;		/* raw sigev_notify, flags included */
	int signo;
	long long value;
	enum tid_mode tid_mode;
	pid_t tid;
	int id;			/* initial value of the ID variable */
	bool id_given;		/* "id" was in the op: an exact create is meant */
	bool null_sev;
	bool bad_sev;
	bool bad_id;
	bool ro_id;		/* the ID readable but not writable */
};

static const struct name_val clock_names[] = {
	{ "realtime", CLOCK_REALTIME },
	{ "monotonic", CLOCK_MONOTONIC },
	{ "process_cputime", CLOCK_PROCESS_CPUTIME_ID },
	{ "thread_cputime", CLOCK_THREAD_CPUTIME_ID },
	{ "monotonic_raw", CLOCK_MONOTONIC_RAW },
	{ "realtime_coarse", CLOCK_REALTIME_COARSE },
	{ "monotonic_coarse", CLOCK_MONOTONIC_COARSE },
	{ "boottime", CLOCK_BOOTTIME },
	{ "realtime_alarm", CLOCK_REALTIME_ALARM },
	{ "boottime_alarm", CLOCK_BOOTTIME_ALARM },
	{ "tai", CLOCK_TAI },
	{ NULL, 0 }
};

static const struct name_val cpuclock_kinds[] = {
	{ "prof", CPUCLOCK_PROF },
	{ "virt", CPUCLOCK_VIRT },
	{ "sched", CPUCLOCK_SCHED },
	{ NULL, 0 }
};

static const struct name_val notify_names[] = {
	{ "signal", SIGEV_SIGNAL },
	{ "none", SIGEV_NONE },
	/* Passed raw: the kernel treats SIGEV_THREAD like SIGEV_SIGNAL */
	{ "thread", SIGEV_THREAD },
	{ "thread_id", SIGEV_THREAD_ID },
	{ "null", -1 },
	{ NULL, 0 }
};

static const char *const cpu_clock_keys[] = { "cpu_pid", "kind", "thread",
					      NULL };

static int parse_clock(struct ctx *c, const struct jval *v, clockid_t *out)
{
	const struct jval *kind;
	long long pid;
	bool thread;
	int k = CPUCLOCK_SCHED, named;

	if (!v) {
		*out = CLOCK_MONOTONIC;
		return 0;
	}
	switch (v->type) {
	case J_INT:
		if (v->num < INT_MIN || v->num > INT_MAX)
			return fail(c, "'clock' out of range");
		*out = (clockid_t)v->num;
		return 0;
	case J_STR:
		if (lookup_name(c, "clock", clock_names, v, &named))
			return OP_ERR;
		*out = named;
		return 0;
	case J_OBJ:
		if (check_keys(c, v, cpu_clock_keys) ||
		    arg_int(c, v, "cpu_pid", true, 0, INT_MIN, INT_MAX, &pid) ||
		    arg_bool(c, v, "thread", &thread))
			return OP_ERR;
		kind = jget(v, "kind");
		if (kind && lookup_name(c, "kind", cpuclock_kinds, kind, &k))
			return OP_ERR;
		*out = thread ? MAKE_THREAD_CPUCLOCK(pid, k) :
				MAKE_PROCESS_CPUCLOCK(pid, k);
		return 0;
	default:
		return fail(c, "'clock' must be a name, integer or object");
	}
}

static int parse_create_args(struct ctx *c, const struct jval *op,
			     struct create_args *a)
{
	const struct jval *v;
	int notify;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->tid_mode = TID_SELF;
	if (parse_clock(c, jget(op, "clock"), &a->clock) ||
	    arg_i32(c, op, "signo", SIGALRM, &a->signo) ||
	    arg_int(c, op, "value", false, 0, LLONG_MIN, LLONG_MAX,
		    &a->value) ||
	    arg_i32(c, op, "id", ID_POISON, &a->id) ||
	    arg_bool(c, op, "bad_sev_ptr", &a->bad_sev) ||
	    arg_bool(c, op, "bad_id_ptr", &a->bad_id) ||
	    arg_bool(c, op, "ro_id_ptr", &a->ro_id))
		return OP_ERR;

	a->id_given = jget(op, "id") != NULL;
	a->notify = SIGEV_SIGNAL;
	v = jget(op, "notify");
	if (v) {
		if (lookup_name(c, "notify", notify_names, v, &notify))
			return OP_ERR;
		if (notify == -1)
			a->null_sev = true;
		else
			a->notify = notify;
	}
	/* notify_raw wins so that any sigev_notify value can be tried */
	if (jget(op, "notify_raw")) {
		if (arg_i32(c, op, "notify_raw", 0, &a->notify))
			return OP_ERR;
		a->null_sev = false;
	}

	v = jget(op, "flags");
	if (v) {
		if (v->type != J_ARR)
			return fail(c, "'flags' must be an array");
		for (i = 0; i < v->len; i++) {
			const struct jval *f = v->items[i];

			if (f->type != J_STR || strcmp(f->str, "timer_id"))
				return fail(c, "unknown create flag");
			a->notify |= SIGEV_TIMER_ID;
		}
	}

	v = jget(op, "tid");
	if (v && v->type == J_STR && !strcmp(v->str, "self")) {
		a->tid_mode = TID_SELF;
	} else if (v && v->type == J_STR && !strcmp(v->str, "main")) {
		a->tid_mode = TID_MAIN;
	} else if (v) {
		if (arg_i32(c, op, "tid", 0, &a->tid))
			return fail(c, "'tid' must be an integer, %s",
				    "\"self\" or \"main\"");
		a->tid_mode = TID_GIVEN;
	}
	return 0;
}

/*
 * One raw timer_create().  *id is preset to want, which the kernel reads
 * for SIGEV_TIMER_ID and in PR_TIMER_CREATE_RESTORE_IDS mode; a plain
 * create presets ID_POISON, so that a kernel which reports success without
 * writing an ID shows as a negative ID instead of the wanted one.
 */
/*
 * "ro_id_ptr": the ID variable on a read-only page, so an exact create
 * reads the wanted ID and then fails to copy the new ID out (EFAULT after
 * the timer was stored), which "bad_id_ptr" (unreadable) cannot reach.
 */
static long create_ro_id(clockid_t clock, void *sevp, int want)
{
	long page = sysconf(_SC_PAGESIZE), ret;
	int *ro, err;

	ro = mmap(NULL, page, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED) {
		fputs(PROG_NAME ": mmap failed\n", stderr);
		_exit(3);
	}
	*ro = want;
	if (mprotect(ro, page, PROT_READ)) {
		fputs(PROG_NAME ": mprotect failed\n", stderr);
		_exit(3);
	}
	ret = sys_timer_create(clock, sevp, ro);
	err = errno;
	munmap(ro, page);
	errno = err;
	return ret;
}

static long do_create(const struct create_args *a, int want, int *id)
{
	struct sigevent sev;
	void *sevp = &sev, *idp = id;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = a->notify;
	sev.sigev_signo = a->signo;
	sev.sigev_value.sival_ptr = (void *)(intptr_t)a->value;
	switch (a->tid_mode) {
	case TID_SELF:
		sev._sigev_un._tid = sys_gettid();
		break;
	case TID_MAIN:
		sev._sigev_un._tid = getpid();
		break;
	default:
		sev._sigev_un._tid = a->tid;
	}
	if (a->null_sev)
		sevp = NULL;
	if (a->bad_sev)
		sevp = (void *)1;
	if (a->bad_id)
		idp = (void *)1;
	*id = want;
	if (a->ro_id)
		return create_ro_id(a->clock, sevp, want);
	return sys_timer_create(a->clock, sevp, idp);
}

static void ns_to_kts(long long ns, struct kts *ts)
{
	ts->tv_sec = ns / NSEC_PER_SEC;
	ts->tv_nsec = ns % NSEC_PER_SEC;
}

static long long kts_to_ns(const struct kts *ts)
{
	return (long long)ts->tv_sec * NSEC_PER_SEC + ts->tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Signals                                                             */
/* ------------------------------------------------------------------ */

/*
 * Kernel sigsets (unsigned long long, bit signo - 1) are used directly so
 * that glibc's internal signals 32/33 can be blocked and waited for as
 * well, and the raw rt_sigtimedwait keeps si_code as the kernel set it
 * (glibc folds SI_TKILL into SI_USER).
 */

#if defined(__NR_rt_sigtimedwait_time64) && __SIZEOF_LONG__ == 4
#define NR_SIGTIMEDWAIT		__NR_rt_sigtimedwait_time64
#else
#define NR_SIGTIMEDWAIT		__NR_rt_sigtimedwait
#endif

static unsigned long long blocked_mask(void)
{
	unsigned long long set = 0;

	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &set, sizeof(set));
	return set;
}

/* Returns the signal number or -1 with errno set */
static int wait_sig(unsigned long long set, long long timeout_ms, siginfo_t *si)
{
	struct kts ts;
	long ret;

	ns_to_kts(timeout_ms * NSEC_PER_MSEC, &ts);
	do {
		memset(si, 0, sizeof(*si));
		ret = syscall(NR_SIGTIMEDWAIT, &set, si,
			      timeout_ms < 0 ? NULL : &ts, sizeof(set));
	} while (ret == -1 && errno == EINTR);
	return (int)ret;
}

static const char *si_code_name(int code, char *buf, size_t len)
{
	switch (code) {
	case SI_TIMER:
		return "SI_TIMER";
	case SI_USER:
		return "SI_USER";
	case SI_QUEUE:
		return "SI_QUEUE";
	case SI_TKILL:
		return "SI_TKILL";
	case SI_KERNEL:
		return "SI_KERNEL";
	case SI_MESGQ:
		return "SI_MESGQ";
	case SI_ASYNCIO:
		return "SI_ASYNCIO";
	}
	snprintf(buf, len, "%d", code);
	return buf;
}

/*
 * Fields of a dequeued signal after "signo"; timerid and overrun read the
 * timer member of the union, meaningful for SI_TIMER only.
 */
static void put_siginfo(struct sbuf *r, const siginfo_t *si)
{
	char buf[16];

	res_int(r, "code", si->si_code);
	res_str(r, "code_name", si_code_name(si->si_code, buf, sizeof(buf)));
	res_int(r, "timerid", si->si_timerid);
	res_int(r, "overrun", si->si_overrun);
	res_int(r, "value", (long long)(intptr_t)si->si_value.sival_ptr);
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */
/* ------------------------------------------------------------------ */

static int run_script(struct ctx *c, const struct jval *script);

/*
 * Checks a successful create by other means than its return value: the
 * timer answers under the reported ID and, for exact creates where
 * /proc/self/timers can be read, the file lists it exactly once and holds
 * one record more than before.  Inside "threads" the others may create and delete any ID
 * meanwhile (the storms do), so there only the ID itself is checked.
 * NULL if all holds.
 */
static const char *confirm_create(int id, int before, bool counted,
				  bool in_thread, char *buf, size_t len)
{
	int n, total = 0;

	if (id == ID_POISON)
		return "timer_create() returned 0 but wrote no ID";
	if (id < 0)
		return "timer_create() returned 0 and a negative ID";
	if (in_thread)
		return NULL;
	if (sys_timer_getoverrun(id)) {
		snprintf(buf, len, "the new timer %d does not answer timer_getoverrun() (%s)",
			 id, strerror(errno));
		return buf;
	}
	if (!counted)
		return NULL;
	n = proc_count_id(id, &total);
	if (n == -2)
		return "/proc/self/timers exists but could not be read";
	if (n < 0)
		return NULL;
	if (n != 1 || total != before + 1) {
		snprintf(buf, len,
			 "after creating ID %d /proc/self/timers lists it %d times in %d records (%d before)",
			 id, n, total, before);
		return buf;
	}
	return NULL;
}

static int op_create(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	struct create_args a;
	const char *bad;
	char buf[160];
	int id, err, before = 0;
	bool counted, verify;
	long ret;

	if (parse_create_args(c, op, &a))
		return OP_ERR;
	/*
	 * /proc/self/timers is read before and after exact creates only, where
	 * the wanted ID preset in the variable could pass for a result; plain
	 * creates are checked by the poison and timer_getoverrun(), which
	 * keeps a process with thousands of timers from reading its file
	 * twice per create.  "verify": true asks for the count anyway.
	 */
	if (arg_bool(c, op, "verify", &verify))
		return OP_ERR;
	counted = (verify || a.id_given || (a.notify & SIGEV_TIMER_ID)) &&
		  !c->in_thread && proc_count_id(-1, &before) != -1;
	ret = do_create(&a, a.id, &id);
	err = errno;
	res_ret(r, ret, err);
	if (!ret && a.ro_id) {
		/* Where would the kernel have written the ID? */
		res_str(r, "confirm_error",
			"timer_create() returned 0 with a read-only ID variable");
		unconfirmed = true;
		return OP_OK;
	}
	if (ret || a.bad_id)
		return OP_OK;
	res_int(r, "id", id);
	bad = confirm_create(id, before, counted, c->in_thread, buf, sizeof(buf));
	if (bad) {
		res_str(r, "confirm_error", bad);
		unconfirmed = true;
	}
	return OP_OK;
}

/* Both probes, for the pytest plugin: see probe.h */
static int op_probe(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	struct probe_result flag, pr;

	(void)c;
	(void)op;
	probe_timer_id_flag(&flag);
	probe_restore_ids_prctl(&pr);
	res_int(r, "ret", 0);
	res_str(r, "flag", probe_state_name(flag.state));
	res_str(r, "flag_detail", flag.detail);
	res_str(r, "prctl", probe_state_name(pr.state));
	res_str(r, "prctl_detail", pr.detail);
	return OP_OK;
}

static int op_delete(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	long ret;
	int id;

	if (arg_req_i32(c, op, "id", &id))
		return OP_ERR;
	ret = sys_timer_delete(id);
	res_ret(r, ret, errno);
	return OP_OK;
}

static int op_settime(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	struct kitimerspec new, old;
	long long value, interval;
	bool abs;
	long ret;
	int id;

	if (arg_req_i32(c, op, "id", &id) ||
	    arg_int(c, op, "value_ns", true, 0, LLONG_MIN, LLONG_MAX,
		    &value) ||
	    arg_int(c, op, "interval_ns", false, 0, LLONG_MIN, LLONG_MAX,
		    &interval) ||
	    arg_bool(c, op, "abs", &abs))
		return OP_ERR;
	memset(&old, 0, sizeof(old));
	ns_to_kts(value, &new.it_value);
	ns_to_kts(interval, &new.it_interval);
	ret = syscall(NR_TIMER_SETTIME, (long)id, abs ? TIMER_ABSTIME : 0,
		      &new, &old);
	res_ret(r, ret, errno);
	if (!ret) {
		res_int(r, "old_value_ns", kts_to_ns(&old.it_value));
		res_int(r, "old_interval_ns", kts_to_ns(&old.it_interval));
	}
	return OP_OK;
}

static int op_gettime(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	struct kitimerspec cur;
	long ret;
	int id;

	if (arg_req_i32(c, op, "id", &id))
		return OP_ERR;
	memset(&cur, 0, sizeof(cur));
	ret = syscall(NR_TIMER_GETTIME, (long)id, &cur);
	res_ret(r, ret, errno);
	if (!ret) {
		res_int(r, "value_ns", kts_to_ns(&cur.it_value));
		res_int(r, "interval_ns", kts_to_ns(&cur.it_interval));
	}
	return OP_OK;
}

static int op_getoverrun(struct ctx *c, const struct jval *op,
			 struct sbuf *r)
{
	long ret;
	int id;

	if (arg_req_i32(c, op, "id", &id))
		return OP_ERR;
	ret = sys_timer_getoverrun(id);
	res_ret(r, ret, errno);
	return OP_OK;
}

static int op_wait_signal(struct ctx *c, const struct jval *op,
			  struct sbuf *r)
{
	long long timeout;
	unsigned long long set;
	siginfo_t si;
	int signo, ret;

	if (arg_i32(c, op, "signo", 0, &signo) ||
	    arg_int(c, op, "timeout_ms", false, 2000, -1,
		    LLONG_MAX / NSEC_PER_MSEC, &timeout))
		return OP_ERR;
	if (jget(op, "signo")) {
		if (signo < 1 || signo > 64)
			return fail(c, "'signo' must be in [1, 64]");
		set = 1ULL << (signo - 1);
	} else {
		set = blocked_mask();
	}
	/* timeout_ms -1 waits forever */
	ret = wait_sig(set, timeout, &si);
	res_ret(r, ret, errno);
	if (ret > 0) {
		res_int(r, "signo", si.si_signo);
		put_siginfo(r, &si);
	}
	return OP_OK;
}

static int op_drain(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	unsigned long long set = blocked_mask();
	siginfo_t si;
	long long max, n;

	/* A periodic timer with a tiny interval could requeue forever */
	if (arg_int(c, op, "max", false, 100000, 0, LLONG_MAX, &max))
		return OP_ERR;
	res_int(r, "ret", 0);
	res_key(r, "signals");
	sb_putc(r, '[');
	for (n = 0; n < max && wait_sig(set, 0, &si) > 0; n++) {
		sb_printf(r, "%s{\"signo\":%d", n ? "," : "", si.si_signo);
		put_siginfo(r, &si);
		sb_putc(r, '}');
	}
	sb_putc(r, ']');
	return OP_OK;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/*
 * An ID listed twice in a /proc/<pid>/timers text (each timer has one ID,
 * one record), or -1.  No kernel lists a timer twice; one that does keeps
 * a timer in two slots of its array.
 */
static int duplicate_id(const char *text)
{
	int *ids = NULL, n = 0, cap = 0, dup = -1, id, i;
	const char *p;

	for (p = text; (p = strstr(p, "ID: ")); p++) {
		if (p != text && p[-1] != '\n')
			continue;
		if (sscanf(p, "ID: %d", &id) != 1)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[n++] = id;
	}
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_int);
	for (i = 1; i < n && dup < 0; i++)
		if (ids[i] == ids[i - 1])
			dup = ids[i];
	free(ids);
	return dup;
}

static int op_proc_timers(struct ctx *c, const struct jval *op,
			  struct sbuf *r)
{
	struct sbuf text = { 0 };
	char path[64], msg[96];
	int pid, fd, ret, err, dup;
	bool repeats_ok;

	/*
	 * "repeats_ok": 6.12 lists newest first with the list position as the
	 * seq_file cursor, so a read split over several read() calls while
	 * other threads create timers repeats records.  Only a caller that
	 * knows the kernel lists that way (no proc_timers_by_id) sets it.
	 */
	if (arg_i32(c, op, "pid", getpid(), &pid) ||
	    arg_bool(c, op, "repeats_ok", &repeats_ok))
		return OP_ERR;
	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		res_ret(r, -1, errno);
		return OP_OK;
	}
	/* seq_file output may need several reads */
	ret = sb_read_fd(&text, fd, 4096);
	err = errno;
	close(fd);
	if (ret) {
		res_ret(r, -1, err);
	} else {
		res_int(r, "ret", 0);
		res_key(r, "text");
		sb_json_str(r, text.buf, text.len);
		dup = repeats_ok ? -1 : duplicate_id(text.buf);
		if (dup >= 0) {
			snprintf(msg, sizeof(msg), "/proc/%d/timers lists ID %d more than once",
				 pid, dup);
			res_str(r, "confirm_error", msg);
			/* Our own array is corrupted: touch it no more */
			if (pid == getpid())
				unconfirmed = true;
		}
	}
	sb_free(&text);
	return OP_OK;
}

/*
 * Re-read another process' /proc/<pid>/timers in small read() calls while
 * that process tears its timers down (exit, exec): each read() restarts
 * the seq_file walk at the saved position, which is the window in which a
 * reader can meet a timer that is being freed.  Stops once the file was
 * seen non-empty and then empty, when it cannot be opened any more, or
 * after max_ms.
 */
static int op_proc_read_loop(struct ctx *c, const struct jval *op,
			     struct sbuf *r)
{
	long long chunk, max_ms, passes = 0, full = 0, most = 0, end;
	long long prev = 0, shrunk = 0;
	const char *stop = "timeout";
	char path[64], buf[4096];
	int pid, fd, err = 0;
	bool seen = false;

	if (arg_i32(c, op, "pid", 0, &pid) ||
	    arg_int(c, op, "chunk", false, 256, 1, sizeof(buf), &chunk) ||
	    arg_int(c, op, "max_ms", false, 20000, 1,
		    LLONG_MAX / NSEC_PER_MSEC, &max_ms))
		return OP_ERR;
	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	end = now_ns(CLOCK_MONOTONIC) + max_ms * NSEC_PER_MSEC;
	while (now_ns(CLOCK_MONOTONIC) < end) {
		long long bytes = 0;
		ssize_t n;

		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			/* Only a process that no longer exists is gone */
			stop = err == ENOENT || err == ESRCH ? "gone" : "open error";
			break;
		}
		while ((n = read(fd, buf, (size_t)chunk)) > 0)
			bytes += n;
		if (n < 0)
			err = errno;
		close(fd);
		passes++;
		/* The owner was reaped between open() and read() */
		if (n < 0 && err == ESRCH) {
			stop = "gone";
			break;
		}
		if (n < 0) {
			stop = "read error";
			break;
		}
		/* Fewer timers than the pass before: read during the teardown */
		if (bytes && bytes < prev)
			shrunk++;
		prev = bytes;
		if (bytes) {
			seen = true;
			full++;
			if (bytes > most)
				most = bytes;
		} else if (seen) {
			stop = "emptied";
			break;
		}
	}
	res_ret(r, strstr(stop, "error") ? -1 : 0, err);
	res_str(r, "stop", stop);
	res_int(r, "passes", passes);
	res_int(r, "nonempty_passes", full);
	res_int(r, "max_bytes", most);
	res_int(r, "shrunk_passes", shrunk);
	return OP_OK;
}

static int op_getpid(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	(void)c;
	(void)op;
	res_int(r, "ret", 0);
	res_int(r, "pid", getpid());
	res_int(r, "tid", sys_gettid());
	return OP_OK;
}

static int op_spin(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	long long ms, end;
	unsigned long sink = 0;
	int i;

	if (arg_int(c, op, "ms", true, 0, 0, LLONG_MAX / NSEC_PER_MSEC, &ms))
		return OP_ERR;
	/* Mostly user time, so that CPUCLOCK_VIRT timers advance too */
	end = now_ns(CLOCK_THREAD_CPUTIME_ID) + ms * NSEC_PER_MSEC;
	while (now_ns(CLOCK_THREAD_CPUTIME_ID) < end) {
		for (i = 0; i < 10000; i++) {
			sink += (unsigned long)i;
			/* Keep the compiler from folding the loop away */
			asm volatile("" : "+r" (sink));
		}
	}
	res_int(r, "ret", 0);
	return OP_OK;
}

static int op_sleep(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	long long ms;

	if (arg_int(c, op, "ms", true, 0, 0, LLONG_MAX / NSEC_PER_MSEC, &ms))
		return OP_ERR;
	/* Blocked signals do not interrupt; restart on stop/continue */
	sleep_ms(ms);
	res_int(r, "ret", 0);
	return OP_OK;
}

/*
 * Write a string to a file, e.g. /proc/self/make-it-fail or a fault
 * injection knob, from this very process so that the knob applies to the
 * next operations of the script and to nothing else.
 */
static int op_write_file(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	const struct jval *path = jget(op, "path");
	const struct jval *data = jget(op, "data");
	ssize_t n = -1;
	int fd, err = 0;

	if (!path || path->type != J_STR || !data || data->type != J_STR)
		return fail(c, "'path' and 'data' must be strings");
	fd = open(path->str, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = write(fd, data->str, data->len);
		err = errno;
		close(fd);
	} else {
		err = errno;
	}
	res_ret(r, n == (ssize_t)data->len ? 0 : -1, err);
	return OP_OK;
}

/*
 * Lock all current and future pages in memory, so that the process takes
 * no page faults (on the host's 9p root) while fault injection is aimed at
 * it: a failed page cache read there is a SIGBUS, not a test result.
 */
static int op_mlockall(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	int ret = mlockall(MCL_CURRENT | MCL_FUTURE);

	(void)c;
	(void)op;
	res_ret(r, ret, errno);
	return OP_OK;
}

static int op_prctl(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	long long a[5];
	static const char *const names[] = { "option", "arg2", "arg3",
					     "arg4", "arg5" };
	long ret;
	int i;

	for (i = 0; i < 5; i++) {
		if (arg_int(c, op, names[i], i == 0, 0, LLONG_MIN, LLONG_MAX,
			    &a[i]))
			return OP_ERR;
	}
	ret = syscall(SYS_prctl, (long)a[0], (unsigned long)a[1],
		      (unsigned long)a[2], (unsigned long)a[3],
		      (unsigned long)a[4]);
	res_ret(r, ret, errno);
	return OP_OK;
}

static const struct name_val rlimit_names[] = {
	{ "sigpending", RLIMIT_SIGPENDING },
	{ "nofile", RLIMIT_NOFILE },
	{ "nproc", RLIMIT_NPROC },
	{ NULL, 0 }
};

static int op_rlimit(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	const struct jval *v = jget(op, "resource");
	struct rlimit rl;
	long long value;
	int res, ret;

	if (!v)
		return fail(c, "missing required key 'resource'");
	if (lookup_name(c, "resource", rlimit_names, v, &res) ||
	    arg_int(c, op, "value", true, 0, -1, LLONG_MAX, &value))
		return OP_ERR;
	/* -1 means unlimited */
	rl.rlim_cur = value < 0 ? RLIM_INFINITY : (rlim_t)value;
	rl.rlim_max = rl.rlim_cur;
	ret = setrlimit(res, &rl);
	res_ret(r, ret, errno);
	return OP_OK;
}

static void close_fds_from(int lowfd)
{
	long max, fd;

#ifdef SYS_close_range
	if (!syscall(SYS_close_range, (long)lowfd, ~0UL, 0L))
		return;
#endif
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/*
 * Child output is one JSON object per line.  Re-validate each line so that
 * the parent always prints well-formed JSON, even if the child died
 * mid-line.
 */
static void lines_to_array(struct sbuf *r, const struct sbuf *out)
{
	const char *p = out->buf, *end = out->buf + out->len, *nl;
	struct jval *v;
	char err[160];
	bool first = true;

	sb_putc(r, '[');
	while (p && p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (nl > p) {
			if (!first)
				sb_putc(r, ',');
			first = false;
			v = jparse(p, (size_t)(nl - p), err, sizeof(err));
			if (v) {
				sb_putn(r, p, (size_t)(nl - p));
			} else {
				sb_puts(r, "{\"op\":\"error\",\"error\":");
				sb_json_str(r, "bad child output", 16);
				sb_putc(r, '}');
			}
			jfree(v);
		}
		p = nl + 1;
	}
	sb_putc(r, ']');
}

static int op_fork(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	const struct jval *script;
	struct sbuf out = { 0 };
	int pfd[2], wstatus = 0;
	pid_t pid;

	if (arg_array(c, op, "script", &script))
		return OP_ERR;
	/* Nothing buffered may be duplicated into the child */
	fflush(stdout);
	if (pipe2(pfd, O_CLOEXEC)) {
		res_ret(r, -1, errno);
		return OP_OK;
	}
	pid = fork();
	if (pid < 0) {
		res_ret(r, -1, errno);
		close(pfd[0]);
		close(pfd[1]);
		return OP_OK;
	}
	if (pid == 0) {
		struct ctx child = { 0 };

		/*
		 * Results go to the pipe line by line, so that an "exit" or a
		 * crash keeps what was produced.  Drop every other fd: pipes
		 * of concurrent forks must not be held open by us.
		 */
		dup2(pfd[1], STDOUT_FILENO);
		close_fds_from(3);
		had_error = 0;
		run_script(&child, script);
		fflush(stdout);
		_exit(had_error ? 2 : 0);
	}
	close(pfd[1]);
	sb_read_fd(&out, pfd[0], 4096);
	close(pfd[0]);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	res_int(r, "ret", 0);
	res_int(r, "pid", pid);
	res_int(r, "status", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
	res_int(r, "signal", WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0);
	res_key(r, "results");
	lines_to_array(r, &out);
	sb_free(&out);
	return OP_OK;
}

/* Start gate: threads wait here until all exist (or creation failed) */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state;		/* 0 wait, 1 go, -1 abort */
	pthread_barrier_t barrier;
};

struct worker {
	const struct jval *script;
	struct gate *gate;
	struct sbuf out;
	size_t nout;
	pid_t tid;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct gate *g = w->gate;
	struct ctx c = { .collect = &w->out, .in_thread = true };
	int state;

	w->tid = sys_gettid();
	pthread_mutex_lock(&g->lock);
	while (!g->state)
		pthread_cond_wait(&g->cond, &g->lock);
	state = g->state;
	pthread_mutex_unlock(&g->lock);
	if (state < 0)
		return NULL;
	/* The barrier releases all threads as close together as possible */
	pthread_barrier_wait(&g->barrier);
	run_script(&c, w->script);
	w->nout = c.ncollected;
	return NULL;
}

static int op_threads(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	const struct jval *scripts;
	struct gate g = { .lock = PTHREAD_MUTEX_INITIALIZER,
			  .cond = PTHREAD_COND_INITIALIZER };
	struct worker *w;
	pthread_t *th;
	pthread_attr_t attr;
	size_t i, n, started = 0;
	int err = 0;

	if (arg_array(c, op, "scripts", &scripts))
		return OP_ERR;
	n = scripts->len;
	for (i = 0; i < n; i++) {
		if (scripts->items[i]->type != J_ARR)
			return fail(c, "'scripts' must be an array of arrays");
	}
	w = xrealloc(NULL, (n + 1) * sizeof(*w));
	th = xrealloc(NULL, (n + 1) * sizeof(*th));
	memset(w, 0, (n + 1) * sizeof(*w));
	if (n)
		pthread_barrier_init(&g.barrier, NULL, (unsigned int)n);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1 << 20);
	for (i = 0; i < n; i++) {
		w[i].script = scripts->items[i];
		w[i].gate = &g;
		err = pthread_create(&th[i], &attr, worker_main, &w[i]);
		if (err)
			break;
		started++;
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&g.lock);
	g.state = err ? -1 : 1;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);

	if (err) {
		res_ret(r, -1, err);
	} else {
		res_int(r, "ret", 0);
		res_key(r, "tids");
		for (i = 0; i < n; i++)
			sb_printf(r, "%s%d", i ? "," : "[", (int)w[i].tid);
		sb_puts(r, n ? "]" : "[]");
		res_key(r, "results");
		for (i = 0; i < n; i++) {
			sb_puts(r, i ? ",[" : "[[");
			if (w[i].out.len)
				sb_putn(r, w[i].out.buf, w[i].out.len);
			sb_putc(r, ']');
		}
		sb_puts(r, n ? "]" : "[]");
	}
	for (i = 0; i < n; i++)
		sb_free(&w[i].out);
	if (n)
		pthread_barrier_destroy(&g.barrier);
	free(w);
	free(th);
	return OP_OK;
}

static int op_exec(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	const struct jval *script;
	struct sbuf arg = { 0 }, line = { 0 };
	char arg0[] = "ptimerctl", arg1[] = "--script";
	char *argv[4];

	if (c->in_thread)
		return fail(c, "not allowed inside threads");
	if (arg_array(c, op, "script", &script))
		return OP_ERR;
	jwrite(&arg, script);
	res_begin(&line, "exec");
	res_int(&line, "ret", 0);
	sb_putc(&line, '}');
	emit(c, &line);
	sb_free(&line);
	argv[0] = arg0;
	argv[1] = arg1;
	argv[2] = arg.buf;
	argv[3] = NULL;
	execv("/proc/self/exe", argv);
	/* Only reached on failure: a second line reports it */
	res_ret(r, -1, errno);
	sb_free(&arg);
	return OP_OK;
}

static const char *const create_many_keys[] = {
	"count", "clock", "notify", "notify_raw", "signo", "value", "tid",
	"flags", "bad_sev_ptr", "bad_id_ptr", "arm_ns", NULL
};

static int op_create_many(struct ctx *c, const struct jval *op,
			  struct sbuf *r)
{
	struct create_args a;
	struct kitimerspec its;
	long long count, k, start, arm;
	int id, first = -1, last = -1, err = 0;
	bool contiguous = true;

	if (arg_int(c, op, "count", true, 0, 0, LLONG_MAX, &count) ||
	    arg_int(c, op, "arm_ns", false, 0, 0, LLONG_MAX, &arm) ||
	    parse_create_args(c, op, &a))
		return OP_ERR;
	/* arm_ns: arm each timer with that value and interval */
	ns_to_kts(arm, &its.it_value);
	ns_to_kts(arm, &its.it_interval);
	start = now_ns(CLOCK_MONOTONIC);
	for (k = 0; k < count; k++) {
		if (do_create(&a, ID_POISON, &id)) {
			err = errno;
			break;
		}
		/* Success without an ID written out (or a negative one) */
		if (id < 0) {
			err = EPROTO;
			break;
		}
		if (arm && syscall(NR_TIMER_SETTIME, (long)id, 0, &its, NULL)) {
			err = errno;
			break;
		}
		if (k == 0)
			first = id;
		else if (id != last + 1)
			contiguous = false;
		last = id;
	}
	res_ret(r, k == count ? 0 : -1, err);
	res_int(r, "created", k);
	res_int(r, "first", first);
	res_int(r, "last", last);
	res_bool(r, "contiguous", contiguous);
	res_int(r, "elapsed_ns", now_ns(CLOCK_MONOTONIC) - start);
	return OP_OK;
}

/*
 * count create+delete pairs of its own timer, going on after failures:
 * "ids" lists each pair's ID in order, or -1 where the create failed (the
 * errno counted in "eagain"/"other_errors").  With several threads doing
 * this at once, 6.12's cursor hands every pair a new ID until it wraps.
 */
static int op_churn(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	long long count, k, eagain = 0, other = 0, bad_delete = 0;
	struct create_args a;
	int id;

	if (arg_int(c, op, "count", true, 0, 0, 1000000, &count) ||
	    parse_create_args(c, op, &a))
		return OP_ERR;
	res_int(r, "ret", 0);
	res_key(r, "ids");
	sb_putc(r, '[');
	for (k = 0; k < count; k++) {
		if (k)
			sb_putc(r, ',');
		if (do_create(&a, ID_POISON, &id)) {
			if (errno == EAGAIN)
				eagain++;
			else
				other++;
			sb_puts(r, "-1");
			continue;
		}
		sb_printf(r, "%d", id);
		if (sys_timer_delete(id))
			bad_delete++;
	}
	sb_putc(r, ']');
	res_int(r, "eagain", eagain);
	res_int(r, "other_errors", other);
	res_int(r, "failed_deletes", bad_delete);
	return OP_OK;
}

/*
 * Keep this process, and with it its timers, alive after the last result
 * until a signal ends it: a test can compare the results first and decide
 * whether the exit may run (on a broken kernel the exit of a corrupted
 * timer array can take the whole guest down, and with it the shrinking of
 * a failing example).  Output must go to a file, not to the SSH channel.
 */
static int op_hold(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	(void)c;
	(void)op;
	res_int(r, "ret", 0);
	res_int(r, "pid", getpid());
	return OP_HOLD;
}

static int op_delete_range(struct ctx *c, const struct jval *op,
			   struct sbuf *r)
{
	long long i, ok = 0, bad = 0;
	int first, last;

	if (arg_req_i32(c, op, "first", &first) ||
	    arg_req_i32(c, op, "last", &last))
		return OP_ERR;
	for (i = first; i <= last; i++) {
		if (sys_timer_delete((int)i))
			bad++;
		else
			ok++;
	}
	res_int(r, "ret", 0);
	res_int(r, "deleted", ok);
	res_int(r, "failed", bad);
	return OP_OK;
}

static const char *const criu_restore_keys[] = {
	"ids", "mode", "max_calls", "clock", "notify", "notify_raw", "signo",
	"value", "tid", "flags", NULL
};

enum restore_mode { RESTORE_LEGACY, RESTORE_FLAG, RESTORE_PRCTL };

static const struct name_val restore_modes[] = {
	{ "legacy", RESTORE_LEGACY },
	{ "flag", RESTORE_FLAG },
	{ "prctl", RESTORE_PRCTL },
	{ NULL, 0 }
};

/*
 * One timer_create() for restore_one(); arg is the struct create_args.  An
 * exact create is confirmed: *got starts as the wanted ID, so only the
 * timer answering under it shows that the kernel created it there
 * (ENOENT, reported as a failed timer_create, if not).
 */
static int restore_create(const void *arg, int id, int *got)
{
	if (do_create(arg, id, got))
		return -1;
	if (id != ID_POISON && sys_timer_getoverrun(*got)) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

static int op_criu_restore(struct ctx *c, const struct jval *op,
			   struct sbuf *r)
{
	struct restore_state st = { 0 };
	const struct jval *ids, *mode_v;
	struct create_args a;
	long long start;
	size_t i;
	int mode = RESTORE_LEGACY;

	if (arg_array(c, op, "ids", &ids) ||
	    arg_int(c, op, "max_calls", false, 1LL << 31, 0, LLONG_MAX,
		    &st.max_calls) ||
	    parse_create_args(c, op, &a))
		return OP_ERR;
	for (i = 0; i < ids->len; i++) {
		const struct jval *v = ids->items[i];

		if (v->type != J_INT || v->num < INT_MIN || v->num > INT_MAX)
			return fail(c, "'ids' must be an array of int IDs");
	}
	mode_v = jget(op, "mode");
	if (mode_v && lookup_name(c, "mode", restore_modes, mode_v, &mode))
		return OP_ERR;
	if (mode == RESTORE_FLAG)
		a.notify |= SIGEV_TIMER_ID;

	start = now_ns(CLOCK_MONOTONIC);
	if (mode == RESTORE_PRCTL && restore_ids_mode(true)) {
		st.err = errno;
		st.reason = "prctl";
	}
	for (i = 0; !st.reason && i < ids->len; i++) {
		if (restore_one(&st, mode == RESTORE_LEGACY,
				(int)ids->items[i]->num, restore_create, &a))
			break;
		st.restored++;
	}
	if (mode == RESTORE_PRCTL)
		restore_ids_mode(false);

	res_ret(r, st.reason ? -1 : 0, st.err);
	if (st.reason) {
		res_str(r, "reason", st.reason);
		if (i < ids->len && strcmp(st.reason, "prctl"))
			res_int(r, "failed_id", ids->items[i]->num);
	}
	res_int(r, "restored", st.restored);
	res_int(r, "syscalls", st.calls);
	res_int(r, "elapsed_ns", now_ns(CLOCK_MONOTONIC) - start);
	return OP_OK;
}

static int op_exit(struct ctx *c, const struct jval *op, struct sbuf *r)
{
	bool thread;
	int status;

	if (arg_i32(c, op, "status", 0, &status) ||
	    arg_bool(c, op, "thread", &thread))
		return OP_ERR;
	if (thread) {
		/* Ends only this thread's script; the thread then returns */
		if (!c->in_thread)
			return fail(c, "'thread' is only valid inside threads");
		res_int(r, "ret", 0);
		return OP_STOP;
	}
	fflush(stdout);
	_exit(status);
}

/* ------------------------------------------------------------------ */
/* Dispatcher                                                          */
/* ------------------------------------------------------------------ */

struct op_desc {
	const char *name;
	int (*fn)(struct ctx *c, const struct jval *op, struct sbuf *r);
	const char *const *keys;	/* allowed keys besides "op" */
};

static const char *const create_keys[] = {
	"clock", "notify", "notify_raw", "signo", "value", "tid", "id",
	"flags", "bad_sev_ptr", "bad_id_ptr", "ro_id_ptr", "verify", NULL
};

static const char *const id_keys[] = { "id", NULL };

static const char *const settime_keys[] = { "id", "value_ns", "interval_ns",
					    "abs", NULL };

static const char *const wait_signal_keys[] = { "signo", "timeout_ms", NULL };

static const char *const drain_keys[] = { "max", NULL };

static const char *const proc_timers_keys[] = { "pid", "repeats_ok", NULL };

static const char *const no_keys[] = { NULL };

static const char *const ms_keys[] = { "ms", NULL };

static const char *const write_file_keys[] = { "path", "data", NULL };

static const char *const prctl_keys[] = { "option", "arg2", "arg3", "arg4",
					  "arg5", NULL };

static const char *const rlimit_keys[] = { "resource", "value", NULL };

static const char *const script_keys[] = { "script", NULL };

static const char *const threads_keys[] = { "scripts", NULL };

static const char *const range_keys[] = { "first", "last", NULL };

static const char *const exit_keys[] = { "status", "thread", NULL };

static const char *const churn_keys[] = { "count", "clock", "notify",
					  "notify_raw", "signo", "value",
					  "tid", NULL };

static const char *const proc_read_loop_keys[] = { "pid", "chunk", "max_ms",
						   NULL };

static const struct op_desc ops[] = {
	{ "create", op_create, create_keys },
	{ "probe", op_probe, no_keys },
	{ "delete", op_delete, id_keys },
	{ "settime", op_settime, settime_keys },
	{ "gettime", op_gettime, id_keys },
	{ "getoverrun", op_getoverrun, id_keys },
	{ "wait_signal", op_wait_signal, wait_signal_keys },
	{ "drain", op_drain, drain_keys },
	{ "proc_timers", op_proc_timers, proc_timers_keys },
	{ "proc_read_loop", op_proc_read_loop, proc_read_loop_keys },
	{ "getpid", op_getpid, no_keys },
	{ "spin", op_spin, ms_keys },
	{ "sleep", op_sleep, ms_keys },
	{ "write_file", op_write_file, write_file_keys },
	{ "mlockall", op_mlockall, no_keys },
	{ "prctl", op_prctl, prctl_keys },
	{ "rlimit", op_rlimit, rlimit_keys },
	{ "fork", op_fork, script_keys },
	{ "threads", op_threads, threads_keys },
	{ "exec", op_exec, script_keys },
	{ "create_many", op_create_many, create_many_keys },
	{ "delete_range", op_delete_range, range_keys },
	{ "churn", op_churn, churn_keys },
	{ "hold", op_hold, no_keys },
	{ "criu_restore", op_criu_restore, criu_restore_keys },
	{ "exit", op_exit, exit_keys },
};

static int run_op(struct ctx *c, const struct jval *op);

/* One "skipped" line per op, including those an exec's new image would run */
static void skip_op(struct ctx *c, const struct jval *op)
{
	const struct jval *name = op->type == J_OBJ ? jget(op, "op") : NULL;
	const struct jval *script;
	struct sbuf r = { 0 };
	size_t i;

	res_begin(&r, name && name->type == J_STR ? name->str : "?");
	res_str(&r, "skipped", "an earlier create could not be confirmed");
	sb_putc(&r, '}');
	emit(c, &r);
	sb_free(&r);
	script = name && name->type == J_STR && !strcmp(name->str, "exec") ?
		 jget(op, "script") : NULL;
	/* run_op() skips them too, but for a "hold", which must still hold */
	if (script && script->type == J_ARR)
		for (i = 0; i < script->len; i++)
			run_op(c, script->items[i]);
}

/* Runs one operation and emits its result; OP_STOP ends a thread script */
static int run_op(struct ctx *c, const struct jval *op)
{
	const struct op_desc *d = NULL;
	const struct jval *name;
	struct sbuf r = { 0 };
	char msg[320];
	size_t i;
	int rc;

	if (op->type != J_OBJ) {
		emit_error(c, "operation must be a JSON object");
		return OP_OK;
	}
	name = jget(op, "op");
	if (!name || name->type != J_STR) {
		emit_error(c, "missing or non-string 'op'");
		return OP_OK;
	}
	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		if (!strcmp(ops[i].name, name->str))
			d = &ops[i];
	}
	if (!d) {
		snprintf(msg, sizeof(msg), "unknown op '%s'", name->str);
		emit_error(c, msg);
		return OP_OK;
	}

	if (unconfirmed && strcmp(d->name, "hold")) {
		skip_op(c, op);
		return OP_OK;
	}
	c->err[0] = '\0';
	rc = check_keys(c, op, d->keys);
	if (!rc) {
		res_begin(&r, d->name);
		rc = d->fn(c, op, &r);
	}
	if (rc == OP_ERR) {
		snprintf(msg, sizeof(msg), "%s: %s", d->name, c->err);
		emit_error(c, msg);
	} else {
		sb_putc(&r, '}');
		emit(c, &r);
	}
	sb_free(&r);
	if (rc == OP_HOLD && !c->in_thread) {
		/* Until SIGTERM or SIGKILL, which are not blocked */
		fflush(stdout);
		for (;;)
			pause();
	}
	return rc == OP_STOP ? OP_STOP : OP_OK;
}

static int run_script(struct ctx *c, const struct jval *script)
{
	size_t i;

	for (i = 0; i < script->len; i++) {
		if (run_op(c, script->items[i]) == OP_STOP)
			return OP_STOP;
	}
	return OP_OK;
}

/* ------------------------------------------------------------------ */
/* Start-up                                                            */
/* ------------------------------------------------------------------ */

/*
 * Block everything but fatal, job-control and child signals, so timer
 * signals stay queued for sigtimedwait.  Done with the raw syscall so that
 * glibc's internal signals 32 and 33 are blocked too, and before any
 * thread exists so that all threads inherit the mask.
 */
static void block_signals(void)
{
	static const int keep[] = {
		SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGCHLD,
		SIGINT, SIGTERM, SIGKILL, SIGSTOP
	};
	unsigned long long set = ~0ULL;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(keep); i++)
		set &= ~(1ULL << (keep[i] - 1));
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &set, NULL, sizeof(set));
}

static void show_help(void)
{
	fputs("usage: ptimerctl [--script JSON_ARRAY | --version]\n"
	      "Reads JSON operations, one per line, from stdin.\n", stderr);
}

static int run_script_arg(const char *text)
{
	struct ctx c = { 0 };
	struct jval *script;
	char err[160], msg[200];

	script = jparse(text, strlen(text), err, sizeof(err));
	if (!script || script->type != J_ARR) {
		snprintf(msg, sizeof(msg), "--script: %s",
			 script ? "not a JSON array" : err);
		emit_error(&c, msg);
	} else {
		run_script(&c, script);
	}
	jfree(script);
	return had_error ? 2 : 0;
}

static bool is_blank(const char *s, size_t n)
{
	while (n--) {
		if (!strchr(" \t\r\n", s[n]))
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct ctx c = { 0 };
	char *line = NULL, err[160], msg[200];
	size_t cap = 0;
	ssize_t n;

	/* The guest leaks virtio-serial fds into our SSH session */
	close_fds_from(3);
	block_signals();

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("ptimerctl %s (%d-bit)\n", PTIMERCTL_VERSION,
		       (int)sizeof(long) * 8);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--script"))
		return run_script_arg(argv[2]);
	if (argc != 1) {
		show_help();
		return 2;
	}

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		struct jval *op;

		if (is_blank(line, (size_t)n))
			continue;
		op = jparse(line, (size_t)n, err, sizeof(err));
		if (!op) {
			snprintf(msg, sizeof(msg), "bad JSON: %s", err);
			emit_error(&c, msg);
			continue;
		}
		run_op(&c, op);
		jfree(op);
	}
	free(line);
	return had_error ? 2 : 0;
}
