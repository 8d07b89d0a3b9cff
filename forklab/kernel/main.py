"""init/main.c and kernel/kthread.c: booting the model.

``start_kernel`` builds the initial everything (init_task, the initial namespaces,
credentials, files and fs), the idle task of every other CPU, then ``rest_init`` creates
kernel_init (pid 1) and kthreadd (pid 2) with kernel_clone, and lets them run: pid 1 execs
/sbin/init, kthreadd waits for requests to make kernel threads.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from forklab.kernel.cgroup.cgroup import CgroupRoot
from forklab.kernel.cgroup.namespace import PROC_CGROUP_INIT_INO, CgroupNamespace
from forklab.kernel.cred import make_init_cred
from forklab.kernel.errors import WouldBlock
from forklab.kernel.exec import do_execve
from forklab.kernel.fork import fork_idle, kernel_thread, user_mode_thread
from forklab.kernel.fs.file import FilesStruct, alloc_file, fd_install, get_unused_fd_flags
from forklab.kernel.fs.fs_struct import FsStruct
from forklab.kernel.fs.namespace import PROC_MNT_INIT_INO, MntNamespace, Mount
from forklab.kernel.fs.proc import make_proc_root
from forklab.kernel.fs.vfs import ELF_MAGIC, S_IFCHR, S_IFREG, Inode, InodeOps, Vfs
from forklab.kernel.ipc import PROC_IPC_INIT_INO, IpcNamespace
from forklab.kernel.machine import Machine
from forklab.kernel.net import NetNamespace
from forklab.kernel.nsproxy import make_init_nsproxy
from forklab.kernel.pid import Pid
from forklab.kernel.pid_namespace import get_pid_ns, make_init_pid_ns
from forklab.kernel.sched.core import DEFAULT_PRIO, Rq, SchedEntity, wake_up_process
from forklab.kernel.sched.deadline import DlBw, SchedDlEntity, fair_server_init
from forklab.kernel.sched.fair import sched_base_slice
from forklab.kernel.signal import DEFAULT_ACTIONS, SighandStruct, SignalStruct, SigPending
from forklab.kernel.sys import init_rlimits
from forklab.kernel.syscall import KTHREAD_FUNCTIONS, run_woken
from forklab.kernel.task import (
    PF_IDLE,
    PF_KTHREAD,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    Task,
    ThreadStruct,
)
from forklab.kernel.time_namespace import make_init_time_ns
from forklab.kernel.trace import TraceBuffer
from forklab.kernel.ucount import UCOUNT_COUNTS, UcountsTable
from forklab.kernel.user_namespace import make_init_user_ns
from forklab.kernel.utsname import make_init_uts_ns
from forklab.kernel.version import KernelVersion
from forklab.kernel.wait import WaitQueue
from forklab.uapi.fcntl import O_RDWR
from forklab.uapi.sched import CLONE_FILES, CLONE_FS, SCHED_NORMAL
from forklab.uapi.signal import SIG_IGN, SIGCHLD

if TYPE_CHECKING:
    from forklab.kernel.fs.file import File

PROC_NET_INIT_INO = 0xEFFFFFF9
PROGRAMS = ("/sbin/init", "/bin/sh", "/sbin/getty", "/bin/login", "/bin/ls")


class NullOps(InodeOps):
    """/dev/null: reads are at end of file, writes vanish."""

    def read(self, k: Machine, current: Task, file: File, count: int) -> bytes:
        return b""

    def write(self, k: Machine, current: Task, file: File, data: bytes) -> int:
        return len(data)


class ConsoleOps(NullOps):
    """/dev/console: what tasks write is kept in ``k.console``; there is no keyboard."""

    def write(self, k: Machine, current: Task, file: File, data: bytes) -> int:
        k.console += data
        return len(data)


def build_rootfs() -> Vfs:
    vfs = Vfs()
    root = vfs.root
    for name in ("bin", "sbin", "dev", "etc", "proc", "root", "sys"):
        vfs.mkdir(root, name)
    vfs.mkdir(root, "tmp", 0o1777)
    vfs.mkdir(vfs.mkdir(vfs.path("/sys"), "fs"), "cgroup")
    for path in PROGRAMS:
        directory, name = path.rsplit("/", 1)
        program = vfs.add(vfs.path(directory), Inode(name, S_IFREG | 0o755))
        assert program.data is not None
        program.data += ELF_MAGIC + b"\x02\x01\x01\x00" + f"forklab program {name}\n".encode()
    dev = vfs.path("/dev")
    vfs.add(dev, Inode("null", S_IFCHR | 0o666, ops=NullOps()))
    vfs.add(dev, Inode("console", S_IFCHR | 0o600, ops=ConsoleOps()))
    vfs.proc_root = make_proc_root()
    return vfs


def start_kernel(version: str, cpus: int, seed: int, memory: int, trace: bool) -> Machine:
    k = Machine(KernelVersion.of(version), cpus, seed, memory)
    k.trace = TraceBuffer()
    k.trace.enabled = False
    k.ucounts = UcountsTable()
    k.kthread_create_list = KthreadCreateList()
    user_ns = k.init_user_ns = make_init_user_ns()
    user_ns.ucount_max = [k.max_threads // 2] * UCOUNT_COUNTS
    k.vfs = build_rootfs()
    pid_ns = k.init_pid_ns = make_init_pid_ns(k, user_ns)
    k.cgroup_root = CgroupRoot()
    k.rq = [Rq(cpu) for cpu in range(cpus)]
    k.dl_bw = DlBw()
    fair_server_init(k)
    mnt_ns = init_mount_tree(k)
    cgroup_ns = CgroupNamespace(user_ns, PROC_CGROUP_INIT_INO, None)
    cgroup_ns.root_cset = k.cgroup_root.init_css_set
    k.init_nsproxy = make_init_nsproxy(
        mnt_ns,
        make_init_uts_ns(user_ns, k.version.uname_release),
        IpcNamespace(user_ns, PROC_IPC_INIT_INO, None),
        pid_ns,
        cgroup_ns,
        NetNamespace(user_ns, PROC_NET_INIT_INO, None),
        make_init_time_ns(user_ns),
    )
    init_task = k.init_task = make_init_task(k, mnt_ns)
    k.current = init_task
    k.idle_tasks = [init_task] + [fork_idle(k, init_task, cpu) for cpu in range(1, cpus)]
    for cpu, idle in enumerate(k.idle_tasks):
        k.rq[cpu].idle = idle
    rest_init(k)
    k.current = None
    k.trace.enabled = trace
    return k


def init_mount_tree(k: Machine) -> MntNamespace:
    """The initial mount namespace: the root file system, and procfs on /proc."""
    ns = MntNamespace(k.init_user_ns, PROC_MNT_INIT_INO, None)
    root = Mount("rootfs", k.vfs.root, None, None)
    proc = Mount("proc", k.vfs.proc_root, root, k.vfs.path("/proc"))
    proc.proc_ns = get_pid_ns(k.init_pid_ns)
    ns.mounts = [root, proc]
    return ns


def make_init_task(k: Machine, mnt_ns: MntNamespace) -> Task:
    """init_task: pid 0, swapper/0, the idle task of CPU 0 and the ancestor of everything."""
    p = Task()
    p.comm = "swapper/0"
    p.state = TASK_RUNNING
    p.flags = PF_KTHREAD | PF_IDLE
    p.exit_state = p.exit_code = p.exit_signal = 0
    p.pdeath_signal = 0
    p.cpu = 0
    p.on_rq = 0
    p.prio = p.static_prio = p.normal_prio = DEFAULT_PRIO
    p.policy = SCHED_NORMAL
    p.rt_priority = 0
    p.sched_reset_on_fork = False
    p.se = SchedEntity(1024, sched_base_slice(k))
    p.dl = SchedDlEntity()
    p.real_parent = p.parent = p.group_leader = p
    p.children = {}
    p.ptraced = {}
    p.ptrace = p.jobctl = p.ptrace_message = 0
    p.last_siginfo = None
    p.mm = None
    p.active_mm = None
    p.cred = p.real_cred = make_init_cred(k)
    p.cred.usage = 2
    root = (mnt_ns.root, k.vfs.root)
    p.fs = FsStruct(root, root, 0o022)
    p.files = FilesStruct()
    rlim = init_rlimits(k.max_threads // 2)
    p.signal = SignalStruct(rlim, 0, 0)
    p.signal.thread_head.append(p)
    p.sighand = SighandStruct(DEFAULT_ACTIONS)
    p.nsproxy = k.init_nsproxy
    p.sysvsem = None
    p.io_context = None
    p.blocked = p.real_blocked = p.saved_sigmask = 0
    p.pending = SigPending()
    p.tif_sigpending = False
    p.user_dumpable = False
    p.sas_ss_sp = p.sas_ss_size = 0
    p.personality = 0
    p.self_exec_id = p.parent_exec_id = 0
    p.set_child_tid = p.clear_child_tid = 0
    p.vfork_done = None
    p.in_execve = False
    p.pending_call = None
    p.thread = ThreadStruct(None)
    p.cgroups = k.cgroup_root.init_css_set
    p.usage = 1
    p.rcu_users = 2
    p.stack = True
    p.fail_nth = 0
    p.start_time = p.start_boottime = 0
    # init_struct_pid: number 0, never in the idr; init_task points at it for every type but is
    # on none of its task lists (a signal to process group 0 never reaches the idle task).
    init_pid = Pid(((0, k.init_pid_ns),))
    p.thread_pid = init_pid
    p.signal.pids = [init_pid, init_pid, init_pid, init_pid]
    p.pid = p.tgid = 0
    return p


def rest_init(k: Machine) -> None:
    """pid 1 (kernel_init, becomes /sbin/init) first, then pid 2 (kthreadd); then let them run."""
    init_task = k.init_task
    user_mode_thread(k, init_task, kernel_init, None, CLONE_FS)
    kernel_thread(k, init_task, kthreadd, None, None, CLONE_FS | CLONE_FILES)
    run_woken(k)


def kernel_init(k: Machine, me: Task) -> int:
    """pid 1's kernel half: console on fds 0, 1, 2, then exec /sbin/init."""
    console = k.vfs.path("/dev/console")
    mnt_ns = k.init_nsproxy.mnt_ns
    file = alloc_file(k, me, mnt_ns.root, console, O_RDWR)
    fd = get_unused_fd_flags(k, me, 0)
    fd_install(me, fd, file)
    for _ in (1, 2):
        fd_install(me, get_unused_fd_flags(k, me, 0), file)
        file.f_count += 1
    return do_execve(k, me, "/sbin/init", ("/sbin/init",), ())


class KthreadCreateList:
    """kthread_create_list: requests for kthreadd, and the queue it sleeps on."""

    def __init__(self) -> None:
        self.requests: deque[str] = deque()
        self.wait = WaitQueue()


def kthreadd(k: Machine, me: Task) -> int:
    """pid 2: ignores all signals, then makes a kernel thread for each request."""
    me.comm = "kthreadd"
    assert me.sighand is not None
    me.sighand.action = ((SIG_IGN, 0, 0),) * len(me.sighand.action)
    return kthreadd_loop(k, me)


def kthreadd_loop(k: Machine, me: Task) -> int:
    requests = k.kthread_create_list.requests
    while requests:
        name = requests.popleft()
        kernel_thread(k, me, kthread, None, name, CLONE_FS | CLONE_FILES | SIGCHLD)
    raise WouldBlock(k.kthread_create_list.wait, lambda: kthreadd_loop(k, me), TASK_INTERRUPTIBLE)


def kthread(k: Machine, me: Task) -> int:
    """A kernel thread made by kthreadd: it sleeps until work comes (none does in the model)."""
    raise WouldBlock(WaitQueue(), lambda: kthread(k, me), TASK_INTERRUPTIBLE)


def kthread_create(k: Machine, name: str) -> None:
    """Ask kthreadd for a kernel thread named ``name``; it is made when kthreadd next runs."""
    k.kthread_create_list.requests.append(name)
    for task in list(k.kthread_create_list.wait.waiters):
        wake_up_process(k, task)
    run_woken(k)


KTHREAD_FUNCTIONS.update(kernel_init=kernel_init, kthreadd=kthreadd, kthread=kthread)
