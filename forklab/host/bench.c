/* forklab bench, the host's side: real fork, vfork and pthreads, timed the way programs use them.
 *
 * bench launch PROCS IDBASE SECONDS PROGRAM ARGS...
 *     run PROGRAM as pid 1 of fresh user, pid and mount namespaces: its task joins the pids
 *     cgroup whose cgroup.procs is PROCS, ids 0..65535 map to host ids from IDBASE (never host
 *     root), and it is killed after SECONDS; the exit status is PROGRAM's.
 * bench fork N | vfork N | thread N      N create+exit+wait cycles; prints the total ns
 * bench memfork BYTES N                  map and touch BYTES, then fork N times; prints the
 *                                        ns to touch, then the median and fastest fork() calls
 * bench bomb PIDMAX                      set this pid namespace's pid_max (if the kernel has
 *                                        one per namespace), fork until fork fails; prints
 *                                        "children errno per_namespace_pid_max"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ID_RANGE 65536

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fail(const char *what)
{
	fprintf(stderr, "forklab bench: %s: %s\n", what, strerror(errno));
	exit(3);
}

static long number(const char *text)
{
	char *end;
	long value = strtol(text, &end, 10);
	if (!*text || *end || value < 0) {
		fprintf(stderr, "forklab bench: not a count: %s\n", text);
		exit(2);
	}
	return value;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail(path);
	close(fd);
}

/* ---- the fence ---------------------------------------------------------------------- */

static pid_t fenced;

static void on_alarm(int sig)
{
	(void)sig;
	kill(fenced, SIGKILL);
}

/* pid 1, once the launcher has mapped its ids: no way back to the host's root, then the program. */
static void enter(int go, int program, char **argv)
{
	char byte;
	if (read(go, &byte, 1) != 1)
		_exit(3); /* the launcher gave up */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		fail("prctl");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("mount --make-rprivate /");
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		fail("becoming the namespace's root");
	if (chdir("/") < 0)
		fail("chdir /");
	/* Opened before the ids changed: the program's directory may be closed to others. */
	fexecve(program, argv, environ);
	fail("fexecve");
}

static int launch(char **argv)
{
	char path[64], map[64];
	int go[2], status;
	long base = number(argv[3]);
	int program = open(argv[5], O_RDONLY | O_CLOEXEC);
	if (program < 0)
		fail(argv[5]);
	if (pipe2(go, O_CLOEXEC) < 0)
		fail("pipe2");
	fenced = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
	if (fenced < 0)
		fail("clone");
	if (fenced == 0) {
		close(go[1]);
		enter(go[0], program, argv + 5);
	}
	close(go[0]);
	/* Only pid 1 joins the cgroup (this launcher stays out): pids.max counts the fenced tasks alone. */
	snprintf(path, sizeof path, "%d\n", fenced);
	write_file(argv[2], path);
	snprintf(map, sizeof map, "0 %ld %d\n", base, ID_RANGE);
	snprintf(path, sizeof path, "/proc/%d/uid_map", fenced);
	write_file(path, map);
	snprintf(path, sizeof path, "/proc/%d/gid_map", fenced);
	write_file(path, map);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)number(argv[4]));
	if (write(go[1], "g", 1) != 1)
		fail("starting pid 1");
	while (waitpid(fenced, &status, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "forklab bench: %s was killed by signal %d%s\n", argv[6] ? argv[6] : argv[5],
			WTERMSIG(status), WTERMSIG(status) == SIGKILL ? " (time limit)" : "");
		return 4;
	}
	return WEXITSTATUS(status);
}

/* ---- the measurements --------------------------------------------------------------- */

static void reap(pid_t pid)
{
	if (pid < 0)
		fail("fork");
	if (waitpid(pid, NULL, 0) != pid)
		fail("waitpid");
}

static void *thread_body(void *arg)
{
	return arg;
}

static long long cycles(const char *kind, long n)
{
	long long start = now_ns();
	for (long i = 0; i < n; i++) {
		if (!strcmp(kind, "fork")) {
			pid_t pid = fork();
			if (pid == 0)
				_exit(0);
			reap(pid);
		} else if (!strcmp(kind, "vfork")) {
			pid_t pid = vfork();
			if (pid == 0)
				_exit(0);
			reap(pid);
		} else {
			pthread_t thread;
			errno = pthread_create(&thread, NULL, thread_body, NULL);
			if (errno)
				fail("pthread_create");
			pthread_join(thread, NULL);
		}
	}
	return now_ns() - start;
}

static int by_value(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static void memfork(long bytes, long n)
{
	long long *took = calloc((size_t)n, sizeof *took);
	char *memory = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			    -1, 0);
	if (memory == MAP_FAILED || !took)
		fail("mmap");
	long long start = now_ns();
	for (long at = 0; at < bytes; at += 4096)
		memory[at] = 1;
	long long touched = now_ns() - start;
	for (long i = 0; i < n; i++) {
		long long before = now_ns();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		took[i] = now_ns() - before;
		reap(pid);
	}
	qsort(took, (size_t)n, sizeof *took, by_value);
	printf("%lld %lld %lld\n", touched, took[n / 2], took[0]);
}

/* Children that wait, holding their pids, until the bomb is over. */
static void bomb(long pid_max)
{
	char text[32];
	int hold[2], per_namespace = 0, err = 0;
	long children = 0;
	if (pid_max > 0) {
		int fd = open("/proc/sys/kernel/pid_max", O_WRONLY | O_CLOEXEC);
		snprintf(text, sizeof text, "%ld\n", pid_max);
		per_namespace = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text);
		if (fd >= 0)
			close(fd);
	}
	if (pipe(hold) < 0)
		fail("pipe");
	for (;;) {
		pid_t pid = fork();
		if (pid == 0) {
			char byte;
			close(hold[1]);
			_exit(read(hold[0], &byte, 1) < 0);
		}
		if (pid < 0) {
			err = errno;
			break;
		}
		children++;
	}
	printf("%ld %d %d\n", children, err, per_namespace);
	fflush(stdout);
	close(hold[1]);
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "launch"))
		return launch(argv);
	if (argc == 3 && (!strcmp(argv[1], "fork") || !strcmp(argv[1], "vfork") || !strcmp(argv[1], "thread"))) {
		printf("%lld\n", cycles(argv[1], number(argv[2])));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "memfork")) {
		long forks = number(argv[3]);
		memfork(number(argv[2]), forks > 0 ? forks : 1);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "bomb")) {
		bomb(number(argv[2]));
		return 0;
	}
	fprintf(stderr, "forklab bench: run by forklab.host.bench, not by hand\n");
	return 2;
}
