"""cgroup v2 in the model: the file system, migration, threaded mode, the pids controller, CLONE_INTO_CGROUP."""

from __future__ import annotations

import errno

import pytest

import forklab
from forklab import SIGCHLD
from forklab.api import TaskHandle
from forklab.kernel.cgroup.cgroup import PIDS, bind_to_legacy, kstrtoll
from forklab.kernel.errors import KernelBug, KernelError
from forklab.uapi.fcntl import O_DIRECTORY, O_RDONLY, O_RDWR
from forklab.uapi.sched import CLONE_INTO_CGROUP, CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWUSER, CLONE_THREAD, CLONE_VM
from tests.conftest import clone_args

CG = "/sys/fs/cgroup"
THREAD = CLONE_VM | forklab.CLONE_FS | forklab.CLONE_FILES | forklab.CLONE_SIGHAND | CLONE_THREAD


@pytest.fixture
def k() -> forklab.Kernel:
    kernel = forklab.boot()
    kernel.task(1).mount("cgroup2", CG, "cgroup2")
    return kernel


def fails(code: int, call: object, *args: object, **kwargs: object) -> None:
    with pytest.raises(OSError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.errno == code, caught.value


def read(t: TaskHandle, name: str) -> str:
    return t.read_file(f"{CG}/{name}")


def pids_child(k: forklab.Kernel, name: str = "a", limit: str = "max") -> TaskHandle:
    init = k.task(1)
    init.write_file(f"{CG}/cgroup.subtree_control", "+pids")
    init.mkdir(f"{CG}/{name}")
    init.write_file(f"{CG}/{name}/pids.max", limit)
    return init


def test_root_lists_tasks_but_no_idle_task(k: forklab.Kernel) -> None:
    assert read(k.task(1), "cgroup.procs").split() == ["1", "2"]
    assert read(k.task(1), "cgroup.controllers") == "pids\n"
    fails(errno.ENOENT, read, k.task(1), "cgroup.type")  # not on the root


def test_mkdir_and_rmdir_rules(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    fails(errno.EEXIST, init.mkdir, f"{CG}/a")
    fails(errno.ENOENT, init.mkdir, f"{CG}/x/y")
    fails(errno.EPERM, init.mkdir, "/proc/x")
    init.mkdir(f"{CG}/a/b")
    fails(errno.EBUSY, init.rmdir, f"{CG}/a")  # a child cgroup
    fails(errno.ENOTDIR, init.rmdir, f"{CG}/a/cgroup.procs")
    fails(errno.EINVAL, init.rmdir, f"{CG}/a/.")
    fails(errno.EBUSY, init.rmdir, CG)  # a mountpoint
    init.rmdir(f"{CG}/a/b")
    init.rmdir(f"{CG}/a")
    fails(errno.ENOENT, init.rmdir, f"{CG}/a")
    init.mkdir("/tmp/plain")
    init.rmdir("/tmp/plain")


def test_migration_and_populated(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    child = k.task(init.fork())
    init.write_file(f"{CG}/a/cgroup.procs", child.pid)
    assert read(init, "a/cgroup.procs") == f"{child.pid}\n"
    assert read(init, "a/cgroup.events") == "populated 1\nfrozen 0\n"
    fails(errno.EBUSY, init.rmdir, f"{CG}/a")
    for text, code in (("x", errno.EINVAL), ("-1", errno.EINVAL), ("1 2", errno.EINVAL), ("999", errno.ESRCH)):
        fails(code, init.write_file, f"{CG}/a/cgroup.procs", text)
    child.exit(0)
    # A zombie is no longer in the cgroup: it may go while the zombie waits to be reaped.
    assert read(init, "a/cgroup.events") == "populated 0\nfrozen 0\n"
    init.rmdir(f"{CG}/a")
    init.wait4(child.pid)
    k.check()


def test_a_thread_group_moves_whole_and_threads_cannot_leave_their_domain(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    proc = k.task(init.fork())
    tid = proc.clone(THREAD, stack=proc.mmap(1 << 16) + (1 << 16))
    init.write_file(f"{CG}/a/cgroup.procs", tid)  # names the thread, moves the group
    assert read(init, "a/cgroup.threads").split() == [str(proc.pid), str(tid)]
    assert read(init, "a/cgroup.procs").split() == [str(proc.pid)]
    fails(errno.EOPNOTSUPP, init.write_file, f"{CG}/cgroup.threads", tid)


def test_threaded_mode(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    init.mkdir(f"{CG}/a/t")
    fails(errno.EINVAL, init.write_file, f"{CG}/a/t/cgroup.type", "domain")
    init.write_file(f"{CG}/a/t/cgroup.type", "threaded")
    assert read(init, "a/cgroup.type") == "domain threaded\n"
    assert read(init, "a/t/cgroup.type") == "threaded\n"
    init.mkdir(f"{CG}/a/t/u")
    assert read(init, "a/t/u/cgroup.type") == "domain invalid\n"
    fails(errno.EOPNOTSUPP, read, init, "a/t/cgroup.procs")
    fails(errno.EOPNOTSUPP, init.write_file, f"{CG}/a/t/u/cgroup.procs", 0)
    proc = k.task(init.fork())
    init.write_file(f"{CG}/a/cgroup.procs", proc.pid)
    tid = proc.clone(THREAD, stack=proc.mmap(1 << 16) + (1 << 16))
    init.write_file(f"{CG}/a/t/cgroup.threads", tid)  # within the domain: allowed
    assert read(init, "a/t/cgroup.threads") == f"{tid}\n"
    assert read(init, "a/cgroup.procs") == f"{proc.pid}\n"
    init.mkdir(f"{CG}/b")
    init.write_file(f"{CG}/b/cgroup.procs", 0)
    fails(errno.EOPNOTSUPP, init.write_file, f"{CG}/b/cgroup.type", "threaded")  # populated


def test_pids_limit_is_hierarchical_and_counted(k: forklab.Kernel) -> None:
    init = pids_child(k, "a", "3")
    init.write_file(f"{CG}/a/cgroup.subtree_control", "+pids")
    init.mkdir(f"{CG}/a/b")
    init.write_file(f"{CG}/a/b/pids.max", "10")
    t = k.task(init.fork())
    init.write_file(f"{CG}/a/b/cgroup.procs", t.pid)
    t.fork()
    t.fork()
    fails(errno.EAGAIN, t.fork)  # a's max refuses, below b's
    assert read(init, "a/pids.current") == "3\n"
    assert read(init, "a/pids.events") == "max 1\n"
    assert read(init, "a/pids.events.local") == "max 1\n"
    assert read(init, "a/b/pids.events") == "max 0\n"
    assert read(init, "a/b/pids.peak") == "4\n"  # raised on the way up before a refused
    init.write_file(f"{CG}/a/pids.max", "1")
    assert read(init, "a/pids.current") == "3\n"  # a lower limit takes nothing back
    k.check()


def test_pids_max_values(k: forklab.Kernel) -> None:
    init = pids_child(k)
    for text in ("-1", "x", str((1 << 63) - 1), "1 2"):
        fails(errno.EINVAL, init.write_file, f"{CG}/a/pids.max", text)
    fails(errno.ERANGE, init.write_file, f"{CG}/a/pids.max", str(1 << 63))
    init.write_file(f"{CG}/a/pids.max", "0x10")
    assert read(init, "a/pids.max") == "16\n"
    init.write_file(f"{CG}/a/pids.max", "max\n")
    assert read(init, "a/pids.max") == "max\n"


def test_migration_may_pass_the_limit(k: forklab.Kernel) -> None:
    init = pids_child(k, "a", "0")
    child = init.fork()
    init.write_file(f"{CG}/a/cgroup.procs", child)
    assert read(init, "a/pids.current") == "1\n"
    fails(errno.EAGAIN, k.task(child).fork)


def test_subtree_control_rules(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    fails(errno.EINVAL, init.write_file, f"{CG}/cgroup.subtree_control", "+memory")
    fails(errno.EINVAL, init.write_file, f"{CG}/cgroup.subtree_control", "pids")
    fails(errno.ENOENT, init.write_file, f"{CG}/a/cgroup.subtree_control", "+pids")  # not enabled above
    init.write_file(f"{CG}/cgroup.subtree_control", "+pids")
    assert read(init, "a/pids.max") == "max\n"
    init.write_file(f"{CG}/a/cgroup.subtree_control", "+pids")
    fails(errno.EBUSY, init.write_file, f"{CG}/cgroup.subtree_control", "-pids")
    init.write_file(f"{CG}/a/cgroup.subtree_control", "-pids +pids -pids")
    init.write_file(f"{CG}/cgroup.subtree_control", "-pids")
    fails(errno.ENOENT, read, init, "a/pids.max")


def test_no_internal_processes(k: forklab.Kernel) -> None:
    """With a populated domain child, a cgroup with controllers for its children takes no task."""
    init = pids_child(k)
    init.write_file(f"{CG}/a/cgroup.subtree_control", "+pids")
    init.mkdir(f"{CG}/a/b")
    child = init.fork()
    init.write_file(f"{CG}/a/cgroup.procs", child)  # pids is threaded: allowed while a may be a thread root
    init.write_file(f"{CG}/a/b/cgroup.procs", init.fork())
    fails(errno.EBUSY, init.write_file, f"{CG}/a/cgroup.procs", 0)


def test_pids_bound_to_v1() -> None:
    k = forklab.boot()
    bind_to_legacy(k.machine.cgroup_root, PIDS)
    init = k.task(1)
    init.mount("cgroup2", CG, "cgroup2")
    assert read(init, "cgroup.controllers") == ""
    fails(errno.ENOENT, init.write_file, f"{CG}/cgroup.subtree_control", "+pids")
    with pytest.raises(KernelError):
        bind_to_legacy(k.machine.cgroup_root, PIDS)


def test_clone_into_cgroup(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    fd = init.open(f"{CG}/a", O_RDONLY | O_DIRECTORY)
    pid = init.clone3(flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=fd)
    assert read(init, "a/cgroup.procs") == f"{pid}\n"
    fails(errno.EBADF, init.clone3, flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=99)
    tmp = init.open("/tmp", O_RDONLY | O_DIRECTORY)
    fails(errno.EBADF, init.clone3, flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=tmp)
    procs = init.open(f"{CG}/a/cgroup.procs", O_RDONLY)
    fails(errno.EBADF, init.clone3, flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=procs)
    stack = init.mmap(1 << 16) + (1 << 16)
    fails(errno.EOPNOTSUPP, init.clone3, flags=CLONE_INTO_CGROUP | THREAD, stack=stack - (1 << 16),
          stack_size=1 << 16, cgroup=fd)  # fmt: skip
    init.mkdir(f"{CG}/b")
    gone = init.open(f"{CG}/b", O_RDONLY | O_DIRECTORY)
    init.rmdir(f"{CG}/b")
    fails(errno.ENOENT, init.clone3, flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=gone)
    k.check()


def test_clone_into_cgroup_charges_the_destination(k: forklab.Kernel) -> None:
    init = pids_child(k, "a", "0")
    fd = init.open(f"{CG}/a", O_RDONLY | O_DIRECTORY)
    fails(errno.EAGAIN, init.clone3, flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=fd)
    assert read(init, "a/pids.events") == "max 1\n"


def test_delegation_in_a_user_namespace(k: forklab.Kernel) -> None:
    """Without a cgroup namespace of its own a user namespace cannot mount cgroup2, and
    files its root does not own stay closed to it."""
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    user = k.task(init.fork())
    user.setresuid(1000, 1000, 1000)
    child = k.task(user.clone(CLONE_NEWUSER | SIGCHLD))
    fails(errno.EPERM, child.mount, "cgroup2", "/tmp", "cgroup2")
    fails(errno.EACCES, child.mkdir, f"{CG}/a/b")
    fails(errno.EACCES, child.write_file, f"{CG}/a/cgroup.procs", 0)
    fd = child.open(f"{CG}/a", O_RDONLY | O_DIRECTORY)
    fails(errno.EACCES, child.clone3, flags=CLONE_INTO_CGROUP, exit_signal=SIGCHLD, cgroup=fd)
    child.unshare(CLONE_NEWCGROUP | CLONE_NEWNS)
    child.mount("cgroup2", "/tmp", "cgroup2")


def test_nsdelegate_keeps_migrations_inside_the_namespace(k: forklab.Kernel) -> None:
    k.machine.cgroup_root.ns_delegate = True
    init = pids_child(k)
    init.mkdir(f"{CG}/b")
    child = k.task(init.fork())
    init.write_file(f"{CG}/a/cgroup.procs", child.pid)
    child.unshare(CLONE_NEWCGROUP)
    fails(errno.ENOENT, child.write_file, f"{CG}/b/cgroup.procs", 0)
    fails(errno.EPERM, child.write_file, f"{CG}/a/pids.max", "5")  # its namespace's root


def test_hierarchy_limits_and_unmodelled_files(k: forklab.Kernel) -> None:
    init = k.task(1)
    init.mkdir(f"{CG}/a")
    init.write_file(f"{CG}/a/cgroup.max.depth", "1")
    init.mkdir(f"{CG}/a/b")
    fails(errno.EAGAIN, init.mkdir, f"{CG}/a/b/c")
    init.write_file(f"{CG}/a/cgroup.max.descendants", "1")
    fails(errno.EAGAIN, init.mkdir, f"{CG}/a/d")
    fails(errno.ERANGE, init.write_file, f"{CG}/a/cgroup.max.depth", "-1")
    fails(errno.ENOSYS, read, init, "a/cgroup.freeze")  # NotModelled


def test_kstrtoll() -> None:
    assert [kstrtoll(t) for t in ("10", "-10", "+7", "010", "0x1f", "0")] == [10, -10, 7, 8, 31, 0]
    for text in ("", "0x", "1_000", "9z", " 1"):
        with pytest.raises(KernelError):
            kstrtoll(text)


def test_check_finds_a_lost_pids_charge(k: forklab.Kernel) -> None:
    init = pids_child(k)
    init.write_file(f"{CG}/a/cgroup.procs", init.fork())
    k.check()
    css = k.machine.cgroup_root.root.children["a"].pids
    assert css is not None
    css.counter += 1
    with pytest.raises(KernelBug, match="counts 2 tasks but 1"):
        k.check()


def test_failed_forks_leave_no_charge(k: forklab.Kernel) -> None:
    """An allocation failing anywhere in copy_process leaves pids.current as it was."""
    init = pids_child(k)
    init.write_file(f"{CG}/a/cgroup.procs", 0)
    css = k.machine.cgroup_root.root.children["a"].pids
    assert css is not None
    fail_nth = init.open("/proc/thread-self/fail-nth", O_RDWR)
    for nth in range(1, 100):
        init.write(fail_nth, str(nth))
        try:
            init.fork()
            break
        except OSError as err:
            assert err.errno == errno.ENOMEM
        k.check()
        assert css.counter == 1
    assert css.counter == 2


@pytest.mark.parametrize(("version", "peak", "parent_events", "child_events"),
                         [("5.15", False, "max 0\n", "max 1\n"), ("6.6", True, "max 0\n", "max 1\n"),
                          ("6.18", True, "max 1\n", "max 0\n")])  # fmt: skip
def test_pids_files_by_version(version: str, peak: bool, parent_events: str, child_events: str) -> None:
    """Before 6.12 pids.events counted forks refused in that cgroup; since, refusals by its limit or below."""
    k = forklab.boot(version=version)
    init = k.task(1)
    init.mount("cgroup2", CG, "cgroup2")
    pids_child(k, "a", "1")
    init.write_file(f"{CG}/a/cgroup.subtree_control", "+pids")
    init.mkdir(f"{CG}/a/b")
    init.write_file(f"{CG}/a/b/cgroup.procs", init.fork())
    init.write_file(f"{CG}/a/b/cgroup.procs", 0)
    fails(errno.EAGAIN, init.fork)
    assert (read(init, "a/pids.events"), read(init, "a/b/pids.events")) == (parent_events, child_events)
    if peak:
        assert read(init, "a/b/pids.peak") == "3\n"  # b counted the refused fork before a refused it
    else:
        fails(errno.ENOENT, read, init, "a/pids.peak")
    if version != "6.18":
        fails(errno.ENOENT, read, init, "a/pids.events.local")


def test_clone_into_cgroup_needs_the_whole_struct(k: forklab.Kernel) -> None:
    """Before looking at the fd: a struct of 88 bytes (CLONE_ARGS_SIZE_VER2) and an fd within int."""
    init = k.task(1)
    fd = init.open(CG, O_RDONLY | O_DIRECTORY)
    addr = init.mmap(4096)
    init.poke(addr, clone_args(CLONE_INTO_CGROUP, fd))
    assert init.syscall("clone3", addr, 80) == -errno.EINVAL
    init.poke(addr, clone_args(CLONE_INTO_CGROUP, 1 << 31))
    assert init.syscall("clone3", addr, 88) == -errno.EINVAL
    init.poke(addr, clone_args(CLONE_INTO_CGROUP, fd))
    assert init.syscall("clone3", addr, 88) > 0


def test_the_same_superblock_cannot_cover_its_own_mount(k: forklab.Kernel) -> None:
    """do_add_mount: EBUSY on the root of a mount of the same superblock (one for cgroup2, one
    per pid namespace for proc), after the permission checks."""
    init = k.task(1)
    fails(errno.EBUSY, init.mount, "cgroup2", CG, "cgroup2")
    fails(errno.EBUSY, init.mount, "proc", "/proc", "proc")
    init.mkdir(f"{CG}/a")
    init.mount("cgroup2", f"{CG}/a", "cgroup2")  # not a mount's root yet
    child = k.task(init.clone(forklab.CLONE_NEWPID | forklab.CLONE_NEWNS | SIGCHLD))
    child.mount("proc", "/proc", "proc")
    k.check()
