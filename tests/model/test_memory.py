"""Address spaces across fork: copy-on-write, CLONE_VM, MADV_DONTFORK/WIPEONFORK, tid pointers, EFAULT."""

from __future__ import annotations

import pytest

import forklab
from forklab import (
    CLONE_CHILD_CLEARTID,
    CLONE_CHILD_SETTID,
    CLONE_NEWPID,
    CLONE_PARENT_SETTID,
    CLONE_VM,
    EFAULT,
    EINVAL,
    ENOMEM,
    MADV_DOFORK,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_KEEPONFORK,
    MADV_NORMAL,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    PTHREAD_FLAGS,
    SIGCHLD,
    SyscallError,
)
from forklab.kernel.mm.pages import depth

PAGE = 4096


def errno_of(call: object) -> int:
    with pytest.raises(SyscallError) as info:
        call()  # type: ignore[operator]
    return int(info.value.errno)


def test_copy_on_write_both_ways(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(4 * PAGE)
    init.poke(addr, b"before")
    child = k.task(init.fork())
    assert child.peek(addr, 6) == b"before"
    init.poke(addr, b"parent")
    child.poke(addr + PAGE, b"child")
    assert child.peek(addr, 6) == b"before"
    assert init.peek(addr + PAGE, 5) == bytes(5)
    assert child.peek(addr + PAGE, 5) == b"child"


def test_copy_on_write_across_generations(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(PAGE)
    init.poke(addr, b"g0")
    child = k.task(init.fork())
    child.poke(addr, b"g1")
    grandchild = child.task(child.fork())
    init.poke(addr, b"G0")
    child.poke(addr, b"G1")
    assert (init.peek(addr, 2), child.peek(addr, 2), grandchild.peek(addr, 2)) == (b"G0", b"G1", b"g1")


def test_fork_copies_vmas_not_pages(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A terabyte mapped and its last page written: the fork copies one VMA and no page."""
    tib = 1 << 40
    addr = init.mmap(tib)
    init.poke(addr + tib - 8, b"far end!")
    vmas_before = k.counts()["slab:vm_area_struct"]
    child = k.task(init.fork())
    mm = child.task_struct.mm
    assert mm is not None and not mm.anon.pages  # nothing copied: both sides share the frozen layer
    assert k.counts()["slab:vm_area_struct"] - vmas_before == len(mm.vmas)
    assert child.peek(addr + tib - 8, 8) == b"far end!"
    assert child.status()["VmSize"].split()[0] == init.status()["VmSize"].split()[0]


def test_layers_fold_once_children_are_reaped(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A parent that forks, writes and reaps 1,000 times keeps a shallow layer stack; every
    child saw the memory as it was at its fork, and the parent sees its own last writes.
    (Three layers: the parent's top, the one frozen at its last fork, and init's, still shared.)"""
    parent = k.task(init.fork())
    addr = parent.mmap(16 * PAGE)
    expected = bytearray(16 * PAGE)
    for round_ in range(1000):
        child = k.task(parent.fork())
        at = (round_ * 7 % 16) * PAGE + round_ % 64
        word = round_.to_bytes(4, "little")
        parent.poke(addr + at, word)
        assert child.peek(addr, 16 * PAGE) == bytes(expected)
        expected[at : at + 4] = word
        if round_ % 50 == 49:
            # A cleared range in the parent's top hides pages of the layer it folds in next.
            parent.madvise(addr + 4 * PAGE, 2 * PAGE, MADV_DONTNEED)
            expected[4 * PAGE : 6 * PAGE] = bytes(2 * PAGE)
        if round_ % 3 == 0:
            child.poke(addr + at, b"kid!")  # the child's own copy: never seen by the parent
        child.exit(0)
        parent.wait4(-1, 0)
    mm = parent.task_struct.mm
    assert mm is not None and depth(mm.anon) == 3
    assert parent.peek(addr, 16 * PAGE) == bytes(expected)
    k.check()


def test_clone_vm_shares_every_write(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(PAGE)
    child = k.task(init.clone(CLONE_VM | SIGCHLD))
    child.poke(addr, b"x")
    assert init.peek(addr, 1) == b"x"
    late = init.mmap(PAGE)  # a mapping made after the clone is seen too
    init.poke(late, b"y")
    assert child.peek(late, 1) == b"y"


def test_map_shared_anonymous_is_shared_after_fork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    child = k.task(init.fork())
    child.poke(addr, b"shm")
    assert init.peek(addr, 3) == b"shm"


def test_madv_dontfork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(3 * PAGE)
    init.poke(addr + PAGE, b"secret")
    init.madvise(addr + PAGE, PAGE, MADV_DONTFORK)
    child = k.task(init.fork())
    assert errno_of(lambda: child.peek(addr + PAGE, 1)) == EFAULT
    assert child.peek(addr, 1) == b"\0" and child.peek(addr + 2 * PAGE, 1) == b"\0"
    assert init.peek(addr + PAGE, 6) == b"secret"
    init.madvise(addr + PAGE, PAGE, MADV_DOFORK)
    assert k.task(init.fork()).peek(addr + PAGE, 6) == b"secret"


def test_madv_wipeonfork(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(2 * PAGE)
    init.poke(addr, b"keep")
    init.poke(addr + PAGE, b"wipe")
    init.madvise(addr + PAGE, PAGE, MADV_WIPEONFORK)
    child = k.task(init.fork())
    assert child.peek(addr, 4) == b"keep"
    assert child.peek(addr + PAGE, 4) == bytes(4)
    assert init.peek(addr + PAGE, 4) == b"wipe"
    # The flag is inherited: the child's own children get zeros there too.
    child.poke(addr + PAGE, b"new!")
    assert child.task(child.fork()).peek(addr + PAGE, 4) == bytes(4)
    init.madvise(addr + PAGE, PAGE, MADV_KEEPONFORK)
    assert k.task(init.fork()).peek(addr + PAGE, 4) == b"wipe"


def test_madvise_errors(init: forklab.TaskHandle) -> None:
    addr = init.mmap(2 * PAGE)
    shared = init.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS)
    assert errno_of(lambda: init.madvise(addr + 1, PAGE, MADV_NORMAL)) == EINVAL
    assert errno_of(lambda: init.madvise(addr, PAGE, 9999)) == EINVAL
    assert errno_of(lambda: init.madvise(shared, PAGE, MADV_WIPEONFORK)) == EINVAL
    init.munmap(addr + PAGE, PAGE)
    assert errno_of(lambda: init.madvise(addr, 2 * PAGE, MADV_NORMAL)) == ENOMEM


def test_madv_dontneed_zeroes_private_pages(init: forklab.TaskHandle) -> None:
    addr = init.mmap(PAGE)
    init.poke(addr, b"data")
    init.madvise(addr, PAGE, MADV_DONTNEED)
    assert init.peek(addr, 4) == bytes(4)


def test_efault(init: forklab.TaskHandle) -> None:
    assert errno_of(lambda: init.peek(0, 1)) == EFAULT
    assert errno_of(lambda: init.peek(0x7FFFFFFFF000, 1)) == EFAULT
    text = 0x555555554000
    assert init.peek(text, 4) == bytes(4)
    assert errno_of(lambda: init.poke(text, b"x")) == EFAULT  # text is not writable
    addr = init.mmap(PAGE, PROT_READ)
    assert errno_of(lambda: init.poke(addr, b"x")) == EFAULT
    init.munmap(addr, PAGE)
    assert errno_of(lambda: init.peek(addr, 1)) == EFAULT


def test_adjacent_mappings_merge_and_munmap_splits(init: forklab.TaskHandle) -> None:
    before = init.read_file("/proc/self/maps").count("\n")
    a = init.mmap(PAGE)
    b = init.mmap(PAGE)
    assert b == a - PAGE  # top-down
    assert init.read_file("/proc/self/maps").count("\n") == before + 1
    c = init.mmap(3 * PAGE)
    init.munmap(c + PAGE, PAGE)
    assert init.read_file("/proc/self/maps").count("\n") == before + 2


def test_parent_settid_writes_the_pid_the_parent_sees(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    word = init.mmap(PAGE)
    pid = init.clone(CLONE_PARENT_SETTID | CLONE_NEWPID | SIGCHLD, parent_tid=word)
    assert init.read_u32(word) == pid


def test_child_settid_writes_the_pid_the_child_sees_in_its_own_memory(
    k: forklab.Kernel, init: forklab.TaskHandle
) -> None:
    word = init.mmap(PAGE)
    pid = init.clone(CLONE_CHILD_SETTID | CLONE_NEWPID | SIGCHLD, child_tid=word)
    child = k.task(pid)
    assert child.read_u32(word) == 1  # pid 1 of its namespace
    assert init.read_u32(word) == 0  # written after the copy: the parent's page is untouched


def test_child_cleartid_at_thread_exit(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    stack = init.mmap(1 << 16)
    word = init.mmap(PAGE)
    tid = init.clone(PTHREAD_FLAGS, stack=stack + (1 << 16), parent_tid=word, child_tid=word, tls=stack)
    assert init.read_u32(word) == tid
    k.task(tid).exit(0)
    assert init.read_u32(word) == 0


def test_child_cleartid_of_a_lone_process_is_not_written(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """mm_release writes the tid word only while another task shares the mm."""
    word = init.mmap(PAGE)
    init.write_u32(word, 0xDEAD)
    pid = init.clone(CLONE_CHILD_CLEARTID | SIGCHLD, child_tid=word)
    child = k.task(pid)
    mm = child.task_struct.mm
    assert mm is not None and mm.mm_users == 1
    child.exit(0)
    assert init.read_u32(word) == 0xDEAD


def test_child_cleartid_written_at_exec_when_memory_is_shared(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    """A vfork-like child that execs releases the shared mm: the word is cleared in the parent's memory."""
    word = init.mmap(PAGE)
    init.write_u32(word, 0xBEEF)
    pid = init.clone(CLONE_VM | CLONE_CHILD_CLEARTID | SIGCHLD, child_tid=word)
    k.task(pid).execve("/bin/ls", ["ls"])
    assert init.read_u32(word) == 0


def test_exec_gives_a_fresh_address_space(k: forklab.Kernel, init: forklab.TaskHandle) -> None:
    addr = init.mmap(PAGE)
    child = k.task(init.fork())
    child.execve("/bin/ls", ["ls", "-l"])
    assert errno_of(lambda: child.peek(addr, 1)) == EFAULT
    maps = child.read_file("/proc/self/maps")
    assert "[stack]" in maps and " ls" in maps
    # The argument strings sit at the very top of the new stack.
    assert child.peek(0x7FFFFFFFF000 - 6, 6) == b"ls\0-l\0"
