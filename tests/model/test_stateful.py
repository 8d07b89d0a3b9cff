"""Random sequences of fork, clone, clone3, vfork, exec, exit, wait, waitid, unshare, kill, job
control, pidfds, ptrace and injected faults, with the model's invariants checked after every
step; at the end everything is killed and reaped, and every count must be back where boot left it."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import forklab
from forklab import (
    __WALL,
    __WCLONE,
    CLONE_CHILD_CLEARTID,
    CLONE_CHILD_SETTID,
    CLONE_FILES,
    CLONE_FS,
    CLONE_IO,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_PARENT,
    CLONE_PARENT_SETTID,
    CLONE_PIDFD,
    CLONE_SETTLS,
    CLONE_SIGHAND,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    O_RDWR,
    P_ALL,
    P_PGID,
    P_PID,
    P_PIDFD,
    PIDFD_NONBLOCK,
    PIDFD_SIGNAL_PROCESS_GROUP,
    PIDFD_SIGNAL_THREAD,
    PIDFD_SIGNAL_THREAD_GROUP,
    PIDFD_THREAD,
    PTRACE_ATTACH,
    PTRACE_CONT,
    PTRACE_DETACH,
    PTRACE_INTERRUPT,
    PTRACE_KILL,
    PTRACE_O_EXITKILL,
    PTRACE_O_TRACESYSGOOD,
    PTRACE_SEIZE,
    PTRACE_SETOPTIONS,
    SIGCHLD,
    SIGCONT,
    SIGKILL,
    SIGSTOP,
    SIGTSTP,
    SIGUSR1,
    WCONTINUED,
    WEXITED,
    WNOHANG,
    WNOWAIT,
    WSTOPPED,
)
from forklab.kernel.fs.file import File
from forklab.kernel.pidfd import PidfdInfo
from forklab.kernel.signal import send_sig
from forklab.kernel.syscall import run_woken
from forklab.kernel.task import Task

FLAG_BITS = [
    CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD, CLONE_SYSVSEM, CLONE_SETTLS,
    CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID, CLONE_PARENT, CLONE_VFORK, CLONE_IO,
    CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_PIDFD,
]  # fmt: skip

# What the rules may leave in init itself and a real init would keep too: its own mappings,
# its SysV undo list and private futex hash. check() covers them all along.
INIT_OWNED = {"slab:vm_area_struct", "slab:anon_vma_chain", "slab:sem_undo_list", "slab:futex_private_hash"}


def files_of(task: forklab.TaskHandle) -> dict[int, File | None]:
    files = task.task_struct.files
    return files.fd if files is not None else {}


def is_pidfd(file: File | None) -> bool:
    return file is not None and isinstance(file.private, PidfdInfo)


# Names starting with two underscores would be mangled inside the class body.
WALL, WCLONE = __WALL, __WCLONE
WAIT_OPTIONS = [WNOHANG, WNOHANG | WALL, WNOHANG | WCLONE, 0, WALL]

flag_words = st.lists(st.sampled_from(FLAG_BITS), max_size=6).map(lambda bits: sum(set(bits)))
# waitid's options: mostly WNOHANG, so that a waiter seldom sleeps for good.
waitid_options = st.tuples(
    st.lists(st.sampled_from([WEXITED, WSTOPPED, WCONTINUED, WNOWAIT, WALL]), max_size=3),
    st.sampled_from([WNOHANG, WNOHANG, WNOHANG, 0]),
).map(lambda chosen: sum(set(chosen[0])) | chosen[1])
pidfd_scopes = st.sampled_from([0, 0, PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP])
ptrace_options = st.sampled_from([0, PTRACE_O_EXITKILL, PTRACE_O_TRACESYSGOOD])


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.k = forklab.boot(trace=False)
        self.base = self.k.counts()
        init = self.k.task(1)
        self.boot_fs = init.task_struct.fs  # init_fs, shared with pid 0 and kthreadd
        self.scratch = init.mmap(1 << 20)  # stacks and tid words, inherited by every fork

    def ready(self) -> list[forklab.TaskHandle]:
        return [
            t for t in self.k.tasks()
            if t.alive and t.state == "R" and t.task_struct.pending_call is None
            and not t.task_struct.flags & 0x00200000 and t.task_struct.mm is not None
        ]  # fmt: skip

    def pick(self, data: st.DataObject, include_init: bool = True) -> forklab.TaskHandle | None:
        tasks = [t for t in self.ready() if include_init or t.pid != 1]
        return data.draw(st.sampled_from(tasks)) if tasks else None

    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        task = self.pick(data)
        if task is not None:
            try:
                task.fork()
            except OSError:
                pass

    @rule(data=st.data(), flags=flag_words, exit_signal=st.sampled_from([0, SIGCHLD, SIGUSR1]))
    def clone(self, data: st.DataObject, flags: int, exit_signal: int) -> None:
        task = self.pick(data)
        if task is None or task.task_struct.mm is None:
            return
        word = self.scratch + 4096 * data.draw(st.integers(0, 15))
        stack = self.scratch + (1 << 19) if flags & CLONE_VM else 0
        try:
            if data.draw(st.booleans()):
                task.clone(flags | exit_signal, stack=stack, parent_tid=word, child_tid=word, tls=stack)
            else:
                task.clone3(flags=flags, pidfd=word, child_tid=word, parent_tid=word + 8,
                            exit_signal=0 if flags & (CLONE_THREAD | CLONE_PARENT) else exit_signal,
                            stack=stack and stack - 65536, stack_size=65536 if stack else 0, tls=stack)  # fmt: skip
        except OSError:
            pass

    @rule(data=st.data())
    def vfork(self, data: st.DataObject) -> None:
        task = self.pick(data)
        if task is not None:
            try:
                task.vfork()
            except OSError:
                pass

    @rule(data=st.data())
    def execve(self, data: st.DataObject) -> None:
        task = self.pick(data, include_init=False)
        if task is not None:
            try:
                task.execve(data.draw(st.sampled_from(["/bin/sh", "/bin/ls", "/nope", "/tmp"])))
            except OSError:
                pass

    @rule(data=st.data(), code=st.integers(0, 255), group=st.booleans())
    def exit(self, data: st.DataObject, code: int, group: bool) -> None:
        task = self.pick(data, include_init=False)
        if task is None:
            return
        if group and task.tgid == 1:
            return  # init's group would die with it: a panic, as in the kernel (tested elsewhere)
        (task.exit_group if group else task.exit)(code)

    @rule(data=st.data(), options=st.sampled_from(WAIT_OPTIONS))
    def wait(self, data: st.DataObject, options: int) -> None:
        task = self.pick(data)
        if task is not None:
            try:
                task.wait4(-1, options)
            except OSError:
                pass

    @rule(data=st.data(), flags=flag_words)
    def unshare(self, data: st.DataObject, flags: int) -> None:
        task = self.pick(data, include_init=False)
        if task is not None:
            try:
                task.unshare(flags)
            except OSError:
                pass

    @rule(data=st.data(), sig=st.sampled_from([SIGKILL, SIGUSR1, SIGCHLD]))
    def kill(self, data: st.DataObject, sig: int) -> None:
        sender = self.pick(data)
        targets = [t for t in self.k.tasks() if t.alive and t.pid != 1]
        if sender is not None and targets:
            target = data.draw(st.sampled_from(targets))
            try:
                sender.kill(target.pid_in(sender) or 999999, sig)
            except OSError:
                pass

    def handle(self, task: Task) -> forklab.TaskHandle:
        return next(h for h in self.k.tasks() if h.task_struct is task)

    def others(self, data: st.DataObject, actor: forklab.TaskHandle) -> forklab.TaskHandle | None:
        """A live task other than init's group: mostly one of ``actor``'s children."""
        tasks = [t for t in self.k.tasks() if t.alive and t.tgid != 1 and t.pid > 2]
        children = [t for t in tasks if t.task_struct.real_parent is actor.task_struct]
        pool = children if children and data.draw(st.integers(0, 4)) else tasks
        return data.draw(st.sampled_from(pool)) if pool else None

    @rule(data=st.data(), sig=st.sampled_from([SIGSTOP, SIGTSTP, SIGCONT, SIGCONT]), thread=st.booleans())
    def job_control(self, data: st.DataObject, sig: int, thread: bool) -> None:
        sender = self.pick(data)
        target = self.others(data, sender) if sender is not None else None
        if sender is None or target is None:
            return
        nr = target.pid_in(sender) or 999999
        try:
            if thread:
                sender.tgkill(self.handle(target.task_struct.group_leader).pid_in(sender) or 999999, nr, sig)
            else:
                sender.kill(nr, sig)
        except OSError:
            pass

    @rule(data=st.data())
    def own_process_group(self, data: st.DataObject) -> None:
        task = self.pick(data, include_init=False)
        if task is not None:
            try:
                task.setpgid(0, 0)  # job-control stops act only outside an orphaned group
            except OSError:
                pass

    @rule(data=st.data(), idtype=st.sampled_from([P_ALL, P_PID, P_PGID]), options=waitid_options)
    def waitid(self, data: st.DataObject, idtype: int, options: int) -> None:
        task = self.pick(data)
        if task is None:
            return
        target = self.others(data, task)
        ident = 0 if idtype == P_ALL or target is None else target.pid_in(task)
        try:
            task.waitid(idtype, ident, options)
        except OSError:
            pass

    @rule(data=st.data(), flags=st.sampled_from([0, PIDFD_THREAD, PIDFD_NONBLOCK, PIDFD_THREAD | PIDFD_NONBLOCK]),
          sig=st.sampled_from([SIGSTOP, SIGCONT, SIGKILL, SIGUSR1, 0]), scope=pidfd_scopes, wait=st.booleans(),
          options=waitid_options)  # fmt: skip
    def pidfd(self, data: st.DataObject, flags: int, sig: int, scope: int, wait: bool, options: int) -> None:
        """Use a pidfd the task has (signal or wait through it), or open one first."""
        task = self.pick(data)
        if task is None:
            return
        fds = [fd for fd, file in files_of(task).items() if is_pidfd(file)]
        try:
            if not fds or not data.draw(st.integers(0, 2)):
                target = self.others(data, task)
                if target is None:
                    return
                fds = [task.pidfd_open(target.pid_in(task) or 999999, flags)]
            fd = data.draw(st.sampled_from(fds))
            if wait:
                task.waitid(P_PIDFD, fd, options)
            else:
                task.pidfd_send_signal(fd, sig, scope)
        except OSError:
            pass

    @rule(data=st.data(), seize=st.booleans(), options=ptrace_options)
    def trace(self, data: st.DataObject, seize: bool, options: int) -> None:
        tracer = self.pick(data)
        tracee = self.others(data, tracer) if tracer is not None else None
        if tracer is None or tracee is None:
            return
        nr = tracee.pid_in(tracer) or 999999
        try:
            if seize:
                tracer.ptrace(PTRACE_SEIZE, nr, 0, options)
            else:
                tracer.ptrace(PTRACE_ATTACH, nr)
        except OSError:
            pass

    @rule(data=st.data(), seize=st.booleans(), then=st.sampled_from([PTRACE_INTERRUPT, PTRACE_CONT, -1]))
    def trace_a_child(self, data: st.DataObject, seize: bool, then: int) -> None:
        """A new child, traced at once, then stopped, let go or waited for."""
        tracer = self.pick(data)
        if tracer is None:
            return
        try:
            pid = tracer.fork()
            tracer.ptrace(PTRACE_SEIZE if seize else PTRACE_ATTACH, pid)
            if then == -1:
                tracer.wait4(pid, WALL | WNOHANG)
            else:
                tracer.ptrace(then, pid)
        except (OSError, forklab.TaskBlocked):
            pass

    @rule(data=st.data(), request=st.sampled_from([PTRACE_CONT, PTRACE_CONT, PTRACE_DETACH, PTRACE_INTERRUPT,
                                                   PTRACE_KILL, PTRACE_SETOPTIONS, -1]),
          sig=st.sampled_from([0, 0, SIGCONT, SIGSTOP, SIGUSR1]), options=ptrace_options)  # fmt: skip
    def tracer_request(self, data: st.DataObject, request: int, sig: int, options: int) -> None:
        tracers = [t for t in self.ready() if t.task_struct.ptraced]
        if not tracers:
            return
        tracer = data.draw(st.sampled_from(tracers))
        tracee = self.handle(data.draw(st.sampled_from(list(tracer.task_struct.ptraced))))
        nr = tracee.pid_in(tracer) or 999999
        try:
            if request == -1:
                tracer.wait4(nr, WALL | WNOHANG)
            else:
                tracer.ptrace(request, nr, 0, options if request == PTRACE_SETOPTIONS else sig)
        except OSError:
            pass

    @rule(data=st.data(), uid=st.sampled_from([0, 1000]), nproc=st.integers(1, 8))
    def drop_privileges(self, data: st.DataObject, uid: int, nproc: int) -> None:
        task = self.pick(data, include_init=False)
        if task is not None:
            try:
                task.setrlimit(forklab.RLIMIT_NPROC, (nproc, nproc))
                task.setresuid(uid, uid, uid)
            except OSError:
                pass

    @rule(data=st.data(), nth=st.integers(1, 30))
    def injected_fault(self, data: st.DataObject, nth: int) -> None:
        task = self.pick(data)
        if task is None:
            return
        try:
            fd = task.open("/proc/thread-self/fail-nth", O_RDWR)
            task.write(fd, str(nth))
            task.fork()
        except OSError:
            pass
        finally:
            if task.alive and task.state == "R" and task.task_struct.pending_call is None:
                task.task_struct.fail_nth = 0

    @invariant()
    def consistent(self) -> None:
        self.k.check()

    def teardown(self) -> None:
        """Kill everything but init, let init reap it all: every count is back at its boot value."""
        machine = self.k.machine
        init = self.k.task(1)
        for handle in self.k.tasks():
            if handle.pid > 2 and handle.alive:
                send_sig(machine, SIGKILL, handle.task_struct)
        run_woken(machine)
        # Threads of init share its immunity to SIGKILL (tgid 1): they exit by themselves.
        for handle in self.k.tasks():
            if handle.tgid == 1 and handle.pid != 1 and handle.alive and handle.state == "R":
                handle.exit(0)
        init.task_struct.fail_nth = 0
        files = init.task_struct.files
        assert files is not None
        for fd in [fd for fd in files.fd if fd > 2]:
            init.close(fd)  # pidfds hold their pid: close them as an exiting init would
        while True:
            try:
                pid, _ = init.wait4(-1, WALL | WNOHANG)  # type: ignore[misc]
            except OSError:
                break
            assert pid, "a child of init is still alive after SIGKILL"
        self.k.check()
        after = self.k.counts()
        changed = {key for key in after.keys() | self.base.keys() if after.get(key) != self.base.get(key)}
        owned = set(INIT_OWNED)
        if init.task_struct.fs is not self.boot_fs:
            # A thread of init made without CLONE_FS exec'd and became pid 1: one fs_struct more.
            assert after["slab:fs_cache"] == self.base["slab:fs_cache"] + 1
            owned.add("slab:fs_cache")
        assert changed <= owned, {key: (self.base.get(key), after.get(key)) for key in changed}


Lifecycle.TestCase.settings = settings(
    max_examples=int(os.environ.get("FORKLAB_EXAMPLES", "60")),  # more for a long soak
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # CI draws the same programs every run; a soak (FORKLAB_EXAMPLES set) explores new ones.
    derandomize="FORKLAB_EXAMPLES" not in os.environ,
)
test_lifecycle = Lifecycle.TestCase
