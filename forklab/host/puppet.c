/*
 * forklab puppet: one real task of a forklab sandbox.
 *
 * It waits for one command at a time on its control channel (a SOCK_SEQPACKET socket),
 * makes exactly one system call for it and replies with the raw result (-errno on
 * failure). After a clone-family call the child is a puppet too, on a channel of its own.
 *
 * Freestanding x86-64: no C library, because a child made with CLONE_VM, CLONE_SETTLS or
 * CLONE_THREAD shares memory with its parent or gets an arbitrary TLS base, and the C
 * library's TLS, errno and stack canary would break. State that belongs to one task (its
 * channel, its buffers) lives on that task's stack; globals are per address space, which
 * is what the signal-handler tokens and the stack pool want.
 *
 * The wire format is mirrored in forklab/host/protocol.py.
 */

typedef unsigned long u64;
typedef long s64;
typedef unsigned int u32;
typedef int s32;
typedef unsigned char u8;

/* x86-64 system call numbers */
#define NR_read 0
#define NR_write 1
#define NR_open 2
#define NR_close 3
#define NR_rt_sigaction 13
#define NR_rt_sigprocmask 14
#define NR_sendfile 40
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_socketpair 53
#define NR_clone 56
#define NR_fork 57
#define NR_vfork 58
#define NR_execve 59
#define NR_exit 60
#define NR_fcntl 72
#define NR_chdir 80
#define NR_mkdir 83
#define NR_link 86
#define NR_umask 95
#define NR_pivot_root 155
#define NR_mount 165
#define NR_umount2 166
#define NR_sethostname 170
#define NR_setgroups 116
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_gettid 186
#define NR_exit_group 231
#define NR_dup3 292
#define NR_process_vm_readv 310
#define NR_process_vm_writev 311
#define NR_clone3 435
#define NR_close_range 436

#define EBADF 9
#define EINTR 4
#define ENOMEM 12
#define EINVAL 22

#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_CREAT 0100
#define O_EXCL 0200
#define O_TRUNC 01000
#define O_CLOEXEC 02000000
#define F_GETFD 1
#define AF_UNIX 1
#define SOCK_SEQPACKET 5
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_NOSIGNAL 0x4000
#define MSG_CMSG_CLOEXEC 0x40000000
#define SA_RESTORER 0x04000000
#define SIG_SETMASK 2
#define MS_NOSUID 2
#define MS_NODEV 4
#define MS_NOEXEC 8
#define MS_BIND 4096
#define MS_REC 16384
#define MS_PRIVATE (1 << 18)
#define MNT_DETACH 2

#define CLONE_VM 0x100
#define CLONE_FILES 0x400
#define CLONE_VFORK 0x4000
#define CLONE_PARENT 0x8000
#define CLONE_NEWNS 0x20000
#define CLONE_NEWUTS 0x4000000
#define CLONE_NEWIPC 0x8000000
#define CLONE_NEWUSER 0x10000000
#define CLONE_NEWPID 0x20000000

/* Protocol: keep in step with protocol.py. */
#define CHAN_FD 63          /* the root puppet's channel; children get the highest free fd */
#define RESERVED_LO 32      /* puppet fds live in [RESERVED_LO, 63] */
#define MAX_DATA 4096       /* payload bytes per message, either way */

#define OP_SYSCALL 1
#define OP_CLONE 2
#define OP_SIGACTION 3
#define OP_PEEK 4
#define OP_POKE 5
#define OP_READ_FILE 6
#define OP_WRITE_FILE 7
#define OP_GO 8

#define K_RESULT 1
#define K_HELLO 2
#define K_CHUNK 3
#define K_EXEC 4
#define K_BOOT 5
#define K_BOOTERR 6
#define K_FAULT 7

/* K_FAULT codes: the puppet could not do its own part of a call. */
#define FAULT_PROTO 1
#define FAULT_NOSTACK 2
#define FAULT_CHANNEL 3
#define FAULT_TOKENS 4

/* K_BOOTERR steps, named in protocol.py */
#define STEP_CGROUP 1
#define STEP_CLONE 2
#define STEP_GO 3
#define STEP_PRIVATE 4
#define STEP_ROOT 5
#define STEP_FILES 6
#define STEP_DEVNULL 7
#define STEP_TMP 8
#define STEP_PROC 9
#define STEP_PIVOT 10
#define STEP_HOSTNAME 11
#define STEP_STDIO 12
#define STEP_EXEC 13
#define STEP_IDS 14

#define NRELOC 4

struct req {
	u32 op, nr;
	u64 arg[6];
	u32 in_mask;        /* bit i: arg[i] is an offset into the payload */
	u32 out_mask;       /* bit i: arg[i] is an offset into the output buffer */
	u32 out_len;        /* output bytes to send back */
	u32 len;            /* payload bytes */
	u32 reloc_off[NRELOC]; /* runs of u64 payload offsets inside the payload ... */
	u32 reloc_cnt[NRELOC]; /* ... that become pointers (argv arrays, clone_args.set_tid) */
};

struct rep {
	s64 ret;
	u32 kind, len;
	u64 v[2];
};

struct inmsg {
	struct req h;
	u8 data[MAX_DATA];
} __attribute__((aligned(16)));

struct outmsg {
	struct rep h;
	u8 data[MAX_DATA];
} __attribute__((aligned(16)));

struct iovec { void *base; u64 len; };
struct msghdr {
	void *name; u32 namelen; struct iovec *iov; u64 iovlen;
	void *control; u64 controllen; s32 flags;
};
struct cmsg_fd { u64 len; s32 level, type; s32 fd; s32 pad; };
struct ksigaction { u64 handler, flags, restorer, mask; };

static inline s64 sys6(s64 n, s64 a, s64 b, s64 c, s64 d, s64 e, s64 f)
{
	register s64 r10 __asm__("r10") = d;
	register s64 r8 __asm__("r8") = e;
	register s64 r9 __asm__("r9") = f;
	s64 ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (s64)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (s64)(a), (s64)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (s64)(a), (s64)(b), (s64)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (s64)(a), (s64)(b), (s64)(c), (s64)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (s64)(a), (s64)(b), (s64)(c), (s64)(d), (s64)(e), 0)

/* The compiler may emit calls to these for struct copies and zeroing. */
void *memset(void *d, int c, u64 n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, u64 n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static __attribute__((noreturn)) void die(int status)
{
	for (;;)
		sys1(NR_exit_group, status);
}

/* ---- entry, clone trampoline, signal-handler table ---------------------------------- */

__attribute__((noreturn, used)) void entry(s64 *sp);
__attribute__((noreturn, used)) void child_main(s64 cend, s64 pchan, s64 info, s64 dend);
__attribute__((noreturn)) void serve(int chan);

/*
 * clone_tramp(struct birth *b): the clone-family call. Everything the child needs is
 * loaded into callee-saved registers before the syscall, because a CLONE_VM child must
 * not read its parent's stack, which the parent goes on using. A child whose caller
 * passed no stack but shares memory switches to a pool stack (r12) before touching rsp.
 */
struct birth {
	u64 nr, a[5];
	u64 pool_top, cend, pchan, info, dend;
};
s64 clone_tramp(struct birth *b);

__asm__(
	".text\n"
	".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	xor %ebp, %ebp\n"
	"	call entry\n"
	"	ud2\n"
	".globl clone_tramp\n"
	"clone_tramp:\n"
	"	push %rbx\n"
	"	push %rbp\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	push %r15\n"
	"	mov %rdi, %rbp\n"
	"	mov 0(%rbp), %rax\n"
	"	mov 8(%rbp), %rdi\n"
	"	mov 16(%rbp), %rsi\n"
	"	mov 24(%rbp), %rdx\n"
	"	mov 32(%rbp), %r10\n"
	"	mov 40(%rbp), %r8\n"
	"	mov 48(%rbp), %r12\n"
	"	mov 56(%rbp), %r13\n"
	"	mov 64(%rbp), %r14\n"
	"	mov 72(%rbp), %r15\n"
	"	mov 80(%rbp), %rbx\n"
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jz 1f\n"
	"	pop %r15\n"
	"	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	pop %rbp\n"
	"	pop %rbx\n"
	"	ret\n"
	"1:	test %r12, %r12\n"
	"	jz 2f\n"
	"	mov %r12, %rsp\n"
	"2:	and $-16, %rsp\n"
	"	xor %ebp, %ebp\n"
	"	mov %r13, %rdi\n"
	"	mov %r14, %rsi\n"
	"	mov %r15, %rdx\n"
	"	mov %rbx, %rcx\n"
	"	call child_main\n"
	"	ud2\n"
	/* The C library's job for sa_restorer: return from a handler. */
	".globl restore_rt\n"
	"restore_rt:\n"
	"	mov $15, %eax\n"
	"	syscall\n"
	"	ud2\n"
	/* One-byte no-op handlers: handler i stands for the i-th token of this address space. */
	".globl handler_table\n"
	"handler_table:\n"
	"	.fill 1024, 1, 0xc3\n");

#define MAX_TOKENS 1024
extern const u8 handler_table[MAX_TOKENS];
extern const u8 restore_rt[];

/* Per address space: shared by CLONE_VM tasks, copied by fork, as the handlers are. */
static u64 tokens[MAX_TOKENS];
static u32 ntokens;

#define POOL_SLOTS 32
#define POOL_STACK 32768
static u8 pool[POOL_SLOTS][POOL_STACK] __attribute__((aligned(64)));
static u8 pool_busy[POOL_SLOTS];

/* ---- small helpers ----------------------------------------------------------------- */

static int prefixed(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return 1;
}

static s64 send_rep(int fd, struct rep *h, const void *data, u32 len, int pass_fd)
{
	struct iovec iov[2] = {{h, sizeof *h}, {(void *)data, len}};
	struct cmsg_fd c = {sizeof(u64) + 2 * sizeof(s32) + sizeof(s32), SOL_SOCKET, SCM_RIGHTS, pass_fd, 0};
	struct msghdr m = {0, 0, iov, len ? 2 : 1, 0, 0, 0};
	h->len = len;
	if (pass_fd >= 0) {
		m.control = &c;
		m.controllen = sizeof c;
	}
	return sys3(NR_sendmsg, fd, &m, MSG_NOSIGNAL);
}

static void reply(int chan, s64 ret, u32 kind, u64 v0, u64 v1, const void *data, u32 len)
{
	struct rep h = {ret, kind, 0, {v0, v1}};
	send_rep(chan, &h, data, len, -1);
}

static void fault(int chan, s64 code, s64 err)
{
	reply(chan, err, K_FAULT, (u64)code, 0, 0, 0);
}

static s64 recv_req(int chan, struct inmsg *in)
{
	struct iovec iov = {in, sizeof *in};
	struct msghdr m = {0, 0, &iov, 1, 0, 0, 0};
	s64 n;
	do
		n = sys3(NR_recvmsg, chan, &m, MSG_CMSG_CLOEXEC);
	while (n == -EINTR);
	return n;
}

/* Close every puppet fd but ours: other tasks' channel ends copied into this table. */
static void close_reserved_except(int keep)
{
	if (keep > RESERVED_LO)
		sys3(NR_close_range, RESERVED_LO, keep - 1, 0);
	if (keep < CHAN_FD)
		sys3(NR_close_range, keep + 1, CHAN_FD, 0);
}

/* Move fd to the highest free slot of [RESERVED_LO, 63], out of the tested fds' way.
 * Consumes fd: on failure it is closed and a negative errno returned. */
static s64 to_high(int fd)
{
	for (int hi = CHAN_FD; hi >= RESERVED_LO; hi--) {
		if (hi == fd)
			return fd;
		if (sys2(NR_fcntl, hi, F_GETFD) != -EBADF)
			continue;
		s64 r = sys3(NR_dup3, fd, hi, 0);
		sys1(NR_close, fd);
		return r;
	}
	sys1(NR_close, fd);
	return -EBADF;
}

/* Copy between our memory and any address without faulting: the kernel says EFAULT. By our
 * own tid: the process's leader may be a zombie with no memory while this thread lives on. */
static s64 vm_copy(int to_remote, void *local, u64 remote, u64 n)
{
	struct iovec l = {local, n}, r = {(void *)remote, n};
	s64 pid = sys0(NR_gettid);
	return sys6(to_remote ? NR_process_vm_writev : NR_process_vm_readv, pid, (s64)&l, 1, (s64)&r, 1, 0);
}

/* ---- requests --------------------------------------------------------------------- */

static int request_ok(const struct req *h, s64 n)
{
	if (n < (s64)sizeof *h || h->len > MAX_DATA || h->out_len > MAX_DATA || (s64)(sizeof *h + h->len) != n)
		return 0;
	for (int i = 0; i < 6; i++) {
		if ((h->in_mask >> i & 1) && h->arg[i] > h->len)
			return 0;
		if ((h->out_mask >> i & 1) && h->arg[i] > h->out_len)
			return 0;
	}
	for (int i = 0; i < NRELOC; i++)
		if (h->reloc_cnt[i] && (h->reloc_off[i] % 8 || h->reloc_off[i] + 8 * (u64)h->reloc_cnt[i] > h->len))
			return 0;
	return 1;
}

/* Turn payload and output-buffer offsets into addresses in this task's memory. */
static void relocate(struct inmsg *in, u8 *out)
{
	struct req *h = &in->h;
	for (int i = 0; i < 6; i++) {
		if (h->in_mask >> i & 1)
			h->arg[i] += (u64)in->data;
		if (h->out_mask >> i & 1)
			h->arg[i] += (u64)out;
	}
	for (int i = 0; i < NRELOC; i++) {
		u64 *slot = (u64 *)(in->data + h->reloc_off[i]);
		for (u32 j = 0; j < h->reloc_cnt[i]; j++)
			slot[j] += (u64)in->data;
	}
}

static void do_syscall(int chan, struct inmsg *in, struct outmsg *out)
{
	u64 *a = in->h.arg;
	s64 ret = sys6(in->h.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	reply(chan, ret, K_RESULT, 0, 0, out->data, in->h.out_len);
}

static int pool_take(void)
{
	for (int i = 0; i < POOL_SLOTS; i++)
		if (!pool_busy[i]) {
			pool_busy[i] = 1;
			return i;
		}
	return -1;
}

/* The flags and stack a clone-family call will use, read without faulting. */
static void clone_shape(const struct req *h, int args_in_payload, u64 *flags, u64 *stack)
{
	u64 head[6] = {0};
	*flags = 0;
	*stack = 0;
	switch (h->nr) {
	case NR_vfork:
		*flags = CLONE_VM | CLONE_VFORK;
		break;
	case NR_clone:
		*flags = h->arg[0];
		*stack = h->arg[1];
		break;
	case NR_clone3:
		if (h->arg[1] < 48)
			break;
		if (args_in_payload)
			memcpy(head, (void *)h->arg[0], sizeof head);
		else if (vm_copy(0, head, h->arg[0], sizeof head) != sizeof head)
			break;
		*flags = head[0];
		*stack = head[5];
		break;
	}
}

static void do_clone(int chan, struct inmsg *in)
{
	struct req *h = &in->h;
	u64 flags, stack;
	s32 sv[2];
	clone_shape(h, h->in_mask & 1, &flags, &stack);
	int slot = -1;
	if (stack == 0 && (flags & CLONE_VM) && (slot = pool_take()) < 0) {
		fault(chan, FAULT_NOSTACK, -ENOMEM);
		return;
	}
	s64 r = sys4(NR_socketpair, AF_UNIX, SOCK_SEQPACKET, 0, sv);
	s64 dend = r < 0 ? r : to_high(sv[0]);
	s64 cend = r < 0 ? r : to_high(sv[1]);
	if (dend < 0 || cend < 0) {
		sys1(NR_close, dend);
		sys1(NR_close, cend);
		if (slot >= 0)
			pool_busy[slot] = 0;
		fault(chan, FAULT_CHANNEL, dend < 0 ? dend : cend);
		return;
	}
	struct birth b = {h->nr, {h->arg[0], h->arg[1], h->arg[2], h->arg[3], h->arg[4]},
			  slot >= 0 ? (u64)(pool[slot] + POOL_STACK) : 0, (u64)cend, (u64)chan,
			  flags & CLONE_FILES, (u64)dend};
	s64 ret = clone_tramp(&b);
	/* With a shared table the child owns cend and closes dend itself. */
	if (!(ret > 0 && (flags & CLONE_FILES))) {
		sys1(NR_close, dend);
		sys1(NR_close, cend);
	}
	/* A vfork child has let go of our memory by now; any other CLONE_VM child still runs on its slot. */
	if (slot >= 0 && !(ret > 0 && !(flags & CLONE_VFORK)))
		pool_busy[slot] = 0;
	reply(chan, ret, K_RESULT, 0, 0, 0, 0);
}

void child_main(s64 cend, s64 pchan, s64 info, s64 dend)
{
	struct rep h = {0, K_HELLO, 0, {(u64)sys0(NR_gettid), (u64)cend}};
	send_rep((int)pchan, &h, 0, 0, (int)dend);
	if (info & CLONE_FILES)
		sys1(NR_close, dend);
	else
		close_reserved_except((int)cend);
	serve((int)cend);
}

static s64 handler_for(u64 token)
{
	if (token <= 1)
		return (s64)token; /* SIG_DFL, SIG_IGN */
	for (u32 i = 0; i < ntokens; i++)
		if (tokens[i] == token)
			return (s64)(handler_table + i);
	if (ntokens == MAX_TOKENS)
		return -1;
	tokens[ntokens] = token;
	return (s64)(handler_table + ntokens++);
}

static u64 token_of(u64 handler)
{
	u64 base = (u64)handler_table;
	if (handler >= base && handler < base + ntokens)
		return tokens[handler - base];
	return handler;
}

/* arg: sig, handler token, flags, query-only, mask */
static void do_sigaction(int chan, const struct req *h)
{
	struct ksigaction act = {0, h->arg[2] | SA_RESTORER, (u64)restore_rt, h->arg[4]}, old = {0, 0, 0, 0};
	s64 handler = handler_for(h->arg[1]);
	if (handler < 0) {
		fault(chan, FAULT_TOKENS, -ENOMEM);
		return;
	}
	act.handler = (u64)handler;
	s64 ret = sys4(NR_rt_sigaction, h->arg[0], h->arg[3] ? 0 : &act, &old, 8);
	reply(chan, ret, K_RESULT, token_of(old.handler), old.flags & ~(u64)SA_RESTORER, 0, 0);
}

static void do_read_file(int chan, const struct inmsg *in, struct outmsg *out)
{
	s64 fd = sys3(NR_open, in->data, O_RDONLY | O_CLOEXEC, 0);
	s64 total = 0, n;
	if (fd < 0) {
		reply(chan, fd, K_RESULT, 0, 0, 0, 0);
		return;
	}
	while ((n = sys3(NR_read, fd, out->data, MAX_DATA)) > 0) {
		reply(chan, n, K_CHUNK, 0, 0, out->data, (u32)n);
		total += n;
	}
	sys1(NR_close, fd);
	reply(chan, n < 0 ? n : total, K_RESULT, 0, 0, 0, 0);
}

/* payload: path, NUL, data; arg[0] is the data's offset */
static void do_write_file(int chan, const struct inmsg *in)
{
	s64 fd = sys3(NR_open, in->data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	u64 off = in->h.arg[0];
	s64 total = 0, n = 0;
	if (fd < 0) {
		reply(chan, fd, K_RESULT, 0, 0, 0, 0);
		return;
	}
	while (off + (u64)total < in->h.len &&
	       (n = sys3(NR_write, fd, in->data + off + total, in->h.len - off - (u64)total)) > 0)
		total += n;
	sys1(NR_close, fd);
	reply(chan, n < 0 ? n : total, K_RESULT, 0, 0, 0, 0);
}

__attribute__((noreturn)) void serve(int chan)
{
	struct inmsg in;
	struct outmsg out;
	for (;;) {
		s64 n = recv_req(chan, &in);
		if (n <= 0)
			die(0); /* the driver is gone */
		if (!request_ok(&in.h, n)) {
			fault(chan, FAULT_PROTO, -EINVAL);
			continue;
		}
		memset(out.data, 0, in.h.out_len);
		relocate(&in, out.data);
		switch (in.h.op) {
		case OP_SYSCALL:
			do_syscall(chan, &in, &out);
			break;
		case OP_CLONE:
			do_clone(chan, &in);
			break;
		case OP_SIGACTION:
			do_sigaction(chan, &in.h);
			break;
		case OP_PEEK:
			n = in.h.arg[1] > MAX_DATA ? -EINVAL : vm_copy(0, out.data, in.h.arg[0], in.h.arg[1]);
			reply(chan, n, K_RESULT, 0, 0, out.data, n > 0 ? (u32)n : 0);
			break;
		case OP_POKE:
			reply(chan, vm_copy(1, in.data, in.h.arg[0], in.h.len), K_RESULT, 0, 0, 0, 0);
			break;
		case OP_READ_FILE:
			do_read_file(chan, &in, &out);
			break;
		case OP_WRITE_FILE:
			do_write_file(chan, &in);
			break;
		default:
			fault(chan, FAULT_PROTO, -EINVAL);
		}
	}
}

/* ---- the sandbox's birth ----------------------------------------------------------- */

static __attribute__((noreturn)) void boot_fail(int step, s64 err)
{
	reply(CHAN_FD, err, K_BOOTERR, (u64)step, 0, 0, 0);
	die(1);
}

static void check(int step, s64 r)
{
	if (r < 0)
		boot_fail(step, r);
}

static s64 copy_file(s64 src, const char *dst)
{
	s64 out = sys3(NR_open, dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755), n;
	if (out < 0)
		return out;
	while ((n = sys4(NR_sendfile, out, src, 0, 1 << 30)) > 0)
		;
	sys1(NR_close, out);
	return n;
}

/* The sandbox's root file system: a tmpfs (our cwd) holding the puppet, open as ``src``,
 * under the model's names. */
static void build_root(s64 src)
{
	static const char *const dirs[] = {"sbin", "bin", "dev", "tmp", "proc"};
	static const char *const names[] = {"sbin/getty", "bin/sh", "bin/login", "bin/ls"};
	for (u32 i = 0; i < sizeof dirs / sizeof *dirs; i++)
		check(STEP_FILES, sys2(NR_mkdir, dirs[i], 0755));
	check(STEP_FILES, copy_file(src, "sbin/init"));
	sys1(NR_close, src);
	for (u32 i = 0; i < sizeof names / sizeof *names; i++)
		check(STEP_FILES, sys2(NR_link, "sbin/init", names[i]));
	s64 fd = sys3(NR_open, "dev/null", O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	check(STEP_DEVNULL, fd);
	sys1(NR_close, fd);
	check(STEP_DEVNULL, sys5(NR_mount, "/dev/null", "dev/null", 0, MS_BIND, 0));
	check(STEP_TMP, sys5(NR_mount, "tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m"));
	/* Mount proc while the host's is still visible: the kernel wants a fully visible one. */
	check(STEP_PROC, sys5(NR_mount, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0));
	check(STEP_PIVOT, sys2(NR_pivot_root, ".", "."));
	check(STEP_PIVOT, sys2(NR_umount2, ".", MNT_DETACH));
	check(STEP_PIVOT, sys1(NR_chdir, "/"));
}

/* Pid 1 of the sandbox, before it becomes /sbin/init. argv: self, flag, cgroup.procs, binary, mountpoint */
static __attribute__((noreturn)) void init_setup(char **argv)
{
	static char *const init_argv[] = {"/sbin/init", 0};
	static char *const init_envp[] = {"HOME=/", "TERM=linux", "FORKLAB_CHAN=63", 0};
	struct inmsg go;
	/* The driver writes uid_map and gid_map, then says go. */
	s64 n = recv_req(CHAN_FD, &go);
	if (n < (s64)sizeof go.h || go.h.op != OP_GO)
		boot_fail(STEP_GO, n < 0 ? n : -EINVAL);
	check(STEP_PRIVATE, sys5(NR_mount, 0, "/", 0, MS_REC | MS_PRIVATE, 0));
	/* While still the host's root (the binary's cache directory may be private): open the
	 * binary, mount the root tmpfs (uid=0 is read in our namespace: its root owns it) and go
	 * into it. Then become the namespace's root, a host uid of the sandbox's own range. */
	s64 src = sys3(NR_open, argv[3], O_RDONLY | O_CLOEXEC, 0);
	check(STEP_FILES, src);
	check(STEP_ROOT, sys5(NR_mount, "forklab", argv[4], "tmpfs", 0, "mode=755,size=64m,uid=0,gid=0"));
	check(STEP_ROOT, sys1(NR_chdir, argv[4]));
	check(STEP_IDS, sys2(NR_setgroups, 0, 0));
	check(STEP_IDS, sys3(NR_setresgid, 0, 0, 0));
	check(STEP_IDS, sys3(NR_setresuid, 0, 0, 0));
	build_root(src);
	check(STEP_HOSTNAME, sys2(NR_sethostname, "forklab", 7));
	s64 null = sys3(NR_open, "/dev/null", O_RDWR, 0);
	check(STEP_STDIO, null);
	for (int fd = 0; fd < 3; fd++)
		if (fd != null)
			check(STEP_STDIO, sys3(NR_dup3, null, fd, 0));
	if (null > 2)
		sys1(NR_close, null);
	sys1(NR_umask, 022);
	boot_fail(STEP_EXEC, sys3(NR_execve, "/sbin/init", init_argv, init_envp));
}

/* Every signal to SIG_DFL and none blocked, whatever the driver's process had ignored or masked. */
static void default_signals(void)
{
	struct ksigaction dfl = {0, SA_RESTORER, (u64)restore_rt, 0};
	u64 none = 0;
	for (int sig = 1; sig <= 64; sig++)
		sys4(NR_rt_sigaction, sig, &dfl, 0, 8);
	sys4(NR_rt_sigprocmask, SIG_SETMASK, &none, 0, 8);
}

/* Run on the host by the driver: join the cgroup, make pid 1 of the sandbox, report it. */
static __attribute__((noreturn)) void launch(char **argv)
{
	sys3(NR_close_range, 3, CHAN_FD - 1, 0);
	sys3(NR_close_range, CHAN_FD + 1, ~0U, 0);
	default_signals();
	s64 fd = sys3(NR_open, argv[2], O_WRONLY | O_CLOEXEC, 0);
	check(STEP_CGROUP, fd);
	check(STEP_CGROUP, sys3(NR_write, fd, "0", 1));
	sys1(NR_close, fd);
	/* CLONE_PARENT: the driver, not this short-lived launcher, is pid 1's parent and reaps it. */
	s64 pid = sys5(NR_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PARENT,
		       0, 0, 0, 0);
	if (pid == 0)
		init_setup(argv);
	check(STEP_CLONE, pid);
	reply(CHAN_FD, pid, K_BOOT, 0, 0, 0, 0);
	die(0);
}

static s64 parse_fd(const char *s)
{
	s64 v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > CHAN_FD)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

void entry(s64 *sp)
{
	s64 argc = sp[0], chan = -1;
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	/* The driver appends its variable last, after whatever the caller passed. */
	for (char **e = envp; *e; e++)
		if (prefixed(*e, "FORKLAB_CHAN="))
			chan = parse_fd(*e + 13);
	if (chan >= RESERVED_LO) {
		/* A successful execve: the same task, a new image, the same channel. */
		close_reserved_except((int)chan);
		reply((int)chan, 0, K_EXEC, (u64)sys0(NR_gettid), (u64)chan, 0, 0);
		serve((int)chan);
	}
	if (argc == 5 && prefixed(argv[1], "--forklab-boot") && !argv[1][14])
		launch(argv);
	static const char msg[] = "forklab puppet: run by forklab.host.Sandbox, not by hand\n";
	sys3(NR_write, 2, msg, sizeof msg - 1);
	die(2);
}
