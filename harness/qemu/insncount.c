// SPDX-License-Identifier: GPL-2.0
/*
 * insncount - a QEMU TCG plugin counting guest instructions in windows that
 * the guest opens and closes itself.
 *
 * Under TCG, wall-clock medians move 10-30 % between runs; the number of
 * guest instructions a loop executes does not.  ptbench brackets each
 * measured loop with two marker instructions, multi-byte NOPs that no
 * compiler emits (nopl 0x7b425450(%rax), "PTB{", and nopl 0x7d425450(%rax),
 * "PTB}").  At translation time every instruction is compared with them;
 * a marker gets an execution callback, every translation block one that
 * adds its instruction count to the executing vCPU's counter.  A window's
 * count is the sum over all vCPUs between its two markers, so work done by
 * other threads, forked children and the kernel on any vCPU is included,
 * and so is whatever else the guest ran meanwhile (sshd, kernel threads:
 * small, and the same for every kernel).
 *
 * A block is counted in full when it is entered; one left early by an
 * exception or interrupt is over-counted by its remaining instructions,
 * the block holding the begin marker is not counted and the one holding
 * the end marker is: at most a block per window, nothing against loops
 * of thousands of system calls.  A begin marker in an open window
 * restarts it.  Only ptbench's main thread executes markers.  The out=
 * path must not contain a comma (QEMU splits plugin arguments there).
 *
 * Each closed window appends one line to the file named by out=PATH:
 *   "window SEQ INSNS\n"
 * With profile=on, followed by one line per translation block executed in
 * the window, "tb PC INSNS\n" (the block's guest start address and the
 * instructions it contributed), for attributing a loop's instructions to
 * the guest kernel's functions.  Profiling costs an atomic add per block.
 * Built against qemu-plugin.h from Debian's QEMU source package (API 1).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_VCPUS	256
#define MARK_LEN	7

static const uint8_t mark_begin[MARK_LEN] = { 0x0f, 0x1f, 0x80, 'P', 'T', 'B', '{' };
static const uint8_t mark_end[MARK_LEN] = { 0x0f, 0x1f, 0x80, 'P', 'T', 'B', '}' };

/* One cache line per vCPU: each is written by its own vCPU thread only */
static struct {
	uint64_t insns;
	uint8_t pad[56];
} counters[MAX_VCPUS];

/* profile=on: every translated block, to report per-block counts */
struct tb_prof {
	uint64_t pc;
	uint64_t n;
	uint64_t execs;		/* executions inside the window */
	struct tb_prof *next;
};

static struct tb_prof *prof_list;
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static int profile;

static uint64_t window_start;
static uint64_t window_seq;
static int window_open;
static FILE *out;

static uint64_t total(void)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; i < MAX_VCPUS; i++)
		sum += __atomic_load_n(&counters[i].insns, __ATOMIC_RELAXED);
	return sum;
}

static void tb_exec(unsigned int vcpu, void *udata)
{
	uint64_t *c = &counters[vcpu % MAX_VCPUS].insns;

	__atomic_store_n(c, *c + (uintptr_t)udata, __ATOMIC_RELAXED);
}

static void tb_exec_prof(unsigned int vcpu, void *udata)
{
	struct tb_prof *p = udata;
	uint64_t *c = &counters[vcpu % MAX_VCPUS].insns;

	__atomic_store_n(c, *c + p->n, __ATOMIC_RELAXED);
	if (__atomic_load_n(&window_open, __ATOMIC_RELAXED))
		__atomic_fetch_add(&p->execs, 1, __ATOMIC_RELAXED);
}

static void on_begin(unsigned int vcpu, void *udata)
{
	if (profile) {
		struct tb_prof *p;

		/* Blocks run in a window that was never closed count nowhere */
		pthread_mutex_lock(&prof_lock);
		for (p = prof_list; p; p = p->next)
			__atomic_store_n(&p->execs, 0, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&prof_lock);
	}
	__atomic_store_n(&window_start, total(), __ATOMIC_RELEASE);
	__atomic_store_n(&window_open, 1, __ATOMIC_RELAXED);
}

static void on_end(unsigned int vcpu, void *udata)
{
	if (!__atomic_exchange_n(&window_open, 0, __ATOMIC_ACQ_REL) || !out)
		return;
	fprintf(out, "window %llu %llu\n", (unsigned long long)++window_seq,
		(unsigned long long)(total() -
				     __atomic_load_n(&window_start, __ATOMIC_ACQUIRE)));
	if (profile) {
		struct tb_prof *p;

		pthread_mutex_lock(&prof_lock);
		for (p = prof_list; p; p = p->next) {
			uint64_t execs = __atomic_exchange_n(&p->execs, 0, __ATOMIC_RELAXED);

			if (execs)
				fprintf(out, "tb %llx %llu\n", (unsigned long long)p->pc,
					(unsigned long long)(execs * p->n));
		}
		pthread_mutex_unlock(&prof_lock);
	}
	fflush(out);
}

static int is_mark(struct qemu_plugin_insn *insn, const uint8_t *mark)
{
	return qemu_plugin_insn_size(insn) == MARK_LEN &&
	       !memcmp(qemu_plugin_insn_data(insn), mark, MARK_LEN);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb), i;

	if (profile) {
		struct tb_prof *p = calloc(1, sizeof(*p));

		if (!p)
			abort();
		p->pc = qemu_plugin_tb_vaddr(tb);
		p->n = n;
		pthread_mutex_lock(&prof_lock);
		p->next = prof_list;
		prof_list = p;
		pthread_mutex_unlock(&prof_lock);
		qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec_prof, QEMU_PLUGIN_CB_NO_REGS, p);
	} else {
		qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
						     (void *)(uintptr_t)n);
	}
	for (i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		if (is_mark(insn, mark_begin))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin,
							       QEMU_PLUGIN_CB_NO_REGS, NULL);
		else if (is_mark(insn, mark_end))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end,
							       QEMU_PLUGIN_CB_NO_REGS, NULL);
	}
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
	if (out)
		fclose(out);
	out = NULL;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *path = NULL;
	int i;

	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
		else if (!strncmp(argv[i], "arg=out=", 8))
			path = argv[i] + 8;
		else if (!strcmp(argv[i], "profile=on"))
			profile = 1;
	}
	if (!path) {
		fprintf(stderr, "insncount: give out=PATH\n");
		return -1;
	}
	out = fopen(path, "a");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
