"""mm_struct and vm_area_struct (include/linux/mm_types.h), user memory access, and the
fork and exit side of an address space (kernel/fork.c dup_mm/copy_mm, mm_release, mmput).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError
from forklab.kernel.ftrace import traced
from forklab.kernel.futex import futex_hash_free, futex_wake
from forklab.kernel.mm.pages import (
    PAGE_SHIFT,
    PAGE_SIZE,
    Layer,
    clear_range,
    fork_layers,
    put_layer,
    read_page,
    writable_page,
)
from forklab.kernel.wait import wake_up
from forklab.uapi import errno as E
from forklab.uapi.sched import CLONE_VM

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task
    from forklab.kernel.user_namespace import UserNamespace

VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_ACCOUNT = 0x00100000
VM_WIPEONFORK = 0x02000000
VM_STACK = VM_GROWSDOWN

MMF_MULTIPROCESS = 1 << 26
# get_dumpable() values: not dumpable, dumpable by its user, dumpable by root only.
SUID_DUMP_DISABLE = 0
SUID_DUMP_USER = 1
SUID_DUMP_ROOT = 2
TASK_SIZE = 0x7FFFFFFFF000
DEFAULT_MAX_MAP_COUNT = 65530


class Shmem:
    """The object behind a MAP_SHARED|MAP_ANONYMOUS mapping: pages by offset, shared by all."""

    __slots__ = ("pages",)

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}


class Vma:
    """struct vm_area_struct: [vm_start, vm_end) with its flags and what backs it."""

    __slots__ = ("name", "shmem", "vm_end", "vm_flags", "vm_pgoff", "vm_start")

    def __init__(self, start: int, end: int, flags: int, name: str = "", shmem: Shmem | None = None, pgoff: int = 0):
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.name = name
        self.shmem = shmem
        self.vm_pgoff = pgoff

    def __repr__(self) -> str:
        return f"<vma {self.vm_start:#x}-{self.vm_end:#x} {self.vm_flags:#x} {self.name}>"

    def copy(self) -> Vma:
        return Vma(self.vm_start, self.vm_end, self.vm_flags, self.name, self.shmem, self.vm_pgoff)

    def pages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT


class MmStruct:
    """struct mm_struct: the VMAs (sorted by start), the anonymous page layers, the counters."""

    __slots__ = (
        "anon",
        "dumpable",
        "exe_path",
        "exec_vm",
        "flags",
        "futex_buckets",
        "hiwater_rss",
        "hiwater_vm",
        "mm_count",
        "mm_users",
        "mmap_base",
        "owner",
        "pgd",
        "rss_anon",
        "rss_file",
        "stack_vm",
        "starts",
        "total_vm",
        "user_ns",
        "vmas",
    )

    def __init__(self) -> None:
        self.mm_users = 1
        self.mm_count = 1
        self.vmas: list[Vma] = []
        self.starts: list[int] = []  # vm_start of each VMA, for bisect
        self.anon = Layer()
        self.total_vm = 0
        self.exec_vm = 0
        self.stack_vm = 0
        self.hiwater_vm = 0
        self.hiwater_rss = 0
        self.rss_anon = 0
        self.rss_file = 0
        self.flags = 0
        self.mmap_base = 0x7FFFF7FFF000
        self.owner: Task | None = None
        self.exe_path = ""
        self.pgd = False
        self.futex_buckets = 0
        self.dumpable = SUID_DUMP_USER  # MMF_DUMPABLE: who may dump or inspect it
        self.user_ns: UserNamespace | None = None  # whose root owns it when it is not dumpable

    def __repr__(self) -> str:
        return f"<mm users={self.mm_users} vmas={len(self.vmas)}>"

    @property
    def map_count(self) -> int:
        return len(self.vmas)

    def find_vma(self, addr: int) -> Vma | None:
        """The VMA containing ``addr``, or None."""
        index = bisect.bisect_right(self.starts, addr) - 1
        if index >= 0:
            vma = self.vmas[index]
            if addr < vma.vm_end:
                return vma
        return None

    def insert_vma(self, vma: Vma) -> None:
        index = bisect.bisect_left(self.starts, vma.vm_start)
        self.vmas.insert(index, vma)
        self.starts.insert(index, vma.vm_start)
        vm_stat_account(self, vma.vm_flags, vma.pages())

    def remove_vma_at(self, index: int) -> Vma:
        vma = self.vmas.pop(index)
        del self.starts[index]
        vm_stat_account(self, vma.vm_flags, -vma.pages())
        return vma

    def data_vm(self) -> int:
        return sum(v.pages() for v in self.vmas if v.vm_flags & (VM_WRITE | VM_SHARED | VM_STACK) == VM_WRITE)


def vm_stat_account(mm: MmStruct, flags: int, npages: int) -> None:
    mm.total_vm += npages
    if flags & (VM_EXEC | VM_WRITE) == VM_EXEC:
        mm.exec_vm += npages
    elif flags & VM_STACK:
        mm.stack_vm += npages
    mm.hiwater_vm = max(mm.hiwater_vm, mm.total_vm)


# ---- user memory access (copy_from_user, copy_to_user, get_user, put_user) ------------------


def _check(mm: MmStruct | None, addr: int, length: int, need: int) -> None:
    if mm is None or addr < 0 or addr + length > TASK_SIZE:
        raise KernelError(E.EFAULT, f"uaccess: {addr:#x}+{length} is not a user address")
    end = addr + length
    at = addr
    while at < end:
        vma = mm.find_vma(at)
        if vma is None or not vma.vm_flags & need:
            raise KernelError(
                E.EFAULT, f"uaccess: {at:#x} is not mapped {'writable' if need == VM_WRITE else 'readable'}"
            )
        at = vma.vm_end


def copy_from_user(mm: MmStruct | None, addr: int, length: int) -> bytes:
    if length == 0:
        return b""
    _check(mm, addr, length, VM_READ)
    assert mm is not None
    out = bytearray()
    at = addr
    end = addr + length
    vma = None
    while at < end:
        page = at >> PAGE_SHIFT
        offset = at & (PAGE_SIZE - 1)
        take = min(PAGE_SIZE - offset, end - at)
        if vma is None or at >= vma.vm_end:
            vma = mm.find_vma(at)
            assert vma is not None
        if vma.shmem is not None:
            data = vma.shmem.pages.get(shmem_index(vma, page))
            out += data[offset : offset + take] if data is not None else bytes(take)
        else:
            out += read_page(mm.anon, page)[offset : offset + take]
        at += take
    return bytes(out)


def copy_to_user(mm: MmStruct | None, addr: int, data: bytes) -> None:
    if not data:
        return
    length = len(data)
    _check(mm, addr, length, VM_WRITE)
    assert mm is not None
    at = addr
    pos = 0
    vma = None
    while pos < length:
        page = at >> PAGE_SHIFT
        offset = at & (PAGE_SIZE - 1)
        take = min(PAGE_SIZE - offset, length - pos)
        if vma is None or at >= vma.vm_end:
            vma = mm.find_vma(at)
            assert vma is not None
        if vma.shmem is not None:
            index = shmem_index(vma, page)
            target = vma.shmem.pages.get(index)
            if target is None:
                target = vma.shmem.pages[index] = bytearray(PAGE_SIZE)
        else:
            target, fresh = writable_page(mm.anon, page)
            if fresh:
                mm.rss_anon += 1
                mm.hiwater_rss = max(mm.hiwater_rss, mm.rss_anon + mm.rss_file)
        target[offset : offset + take] = data[pos : pos + take]
        at += take
        pos += take


def shmem_index(vma: Vma, page: int) -> int:
    return page - (vma.vm_start >> PAGE_SHIFT) + vma.vm_pgoff


def get_user_u32(mm: MmStruct | None, addr: int) -> int:
    return int.from_bytes(copy_from_user(mm, addr, 4), "little")


def put_user_u32(mm: MmStruct | None, addr: int, value: int) -> None:
    copy_to_user(mm, addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))


def put_user_u64(mm: MmStruct | None, addr: int, value: int) -> None:
    copy_to_user(mm, addr, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))


def get_user_u64(mm: MmStruct | None, addr: int) -> int:
    return int.from_bytes(copy_from_user(mm, addr, 8), "little")


def copy_struct_from_user(mm: MmStruct | None, addr: int, ksize: int, usize: int) -> bytes:
    """An extensible struct of ``usize`` bytes as the kernel's ``ksize``: a shorter one is
    zero-filled; a longer one must hold only zeros past ``ksize`` (E2BIG otherwise)."""
    if usize > ksize:
        tail = copy_from_user(mm, addr + ksize, usize - ksize)
        if any(tail):
            raise KernelError(E.E2BIG, "copy_struct_from_user: non-zero bytes past the fields this kernel knows")
    return copy_from_user(mm, addr, min(usize, ksize)).ljust(ksize, b"\0")


def access_ok(addr: int, size: int) -> bool:
    return addr >= 0 and size >= 0 and addr + size <= TASK_SIZE


# ---- fork ----------------------------------------------------------------------------------


@traced
def dup_mmap(k: Machine, current: Task, mm: MmStruct, oldmm: MmStruct) -> None:
    """Copy every VMA but the MADV_DONTFORK ones; anonymous pages become copy-on-write."""
    parent_top, child_top = fork_layers(oldmm.anon)
    oldmm.anon = parent_top
    mm.anon = child_top
    # The child's counters are the parent's, less what it does not inherit.
    mm.total_vm, mm.exec_vm, mm.stack_vm = oldmm.total_vm, oldmm.exec_vm, oldmm.stack_vm
    vmas, starts = mm.vmas, mm.starts
    # Without an injected failure to place, the slab objects are counted once at the end.
    one_by_one = bool(current.fail_nth)
    chains = 0
    for vma in oldmm.vmas:
        flags = vma.vm_flags
        if flags & VM_DONTCOPY:
            vm_stat_account(mm, flags, -vma.pages())
            continue
        anon = vma.shmem is None
        if one_by_one:
            # anon_vma_fork(): the child's chain links to the parent's anon_vma.
            vm_area_alloc(k, current, anon)
        chains += anon
        copy = Vma(vma.vm_start, vma.vm_end, flags, vma.name, vma.shmem, vma.vm_pgoff)
        vmas.append(copy)
        starts.append(copy.vm_start)
        if flags & VM_WIPEONFORK:
            clear_range(child_top, copy.vm_start >> PAGE_SHIFT, copy.vm_end >> PAGE_SHIFT)
    if not one_by_one:
        k.kmem_cache_charge("vm_area_struct", len(vmas))
        k.kmem_cache_charge("anon_vma_chain", chains)


@traced
def dup_mm(k: Machine, current: Task, tsk: Task, oldmm: MmStruct) -> MmStruct:
    k.kmem_cache_alloc(current, "mm_struct")
    mm = MmStruct()
    mm.mmap_base = oldmm.mmap_base
    mm.exe_path = oldmm.exe_path
    mm.dumpable = oldmm.dumpable
    mm.user_ns = oldmm.user_ns
    mm.owner = tsk
    try:
        k.kmem_cache_alloc(current, "pgd")
        mm.pgd = True
        dup_mmap(k, current, mm, oldmm)
    except KernelError:
        mmput(k, mm)
        raise
    mm.rss_anon = oldmm.rss_anon
    mm.rss_file = oldmm.rss_file
    mm.hiwater_rss = mm.rss_anon + mm.rss_file
    mm.hiwater_vm = mm.total_vm
    return mm


@traced
def copy_mm(k: Machine, current: Task, clone_flags: int, tsk: Task) -> None:
    """CLONE_VM shares the address space; otherwise dup_mm copies it. Kernel threads have none."""
    tsk.mm = None
    tsk.active_mm = None
    oldmm = current.mm
    if oldmm is None:
        tsk.active_mm = current.active_mm
        return
    if clone_flags & CLONE_VM:
        oldmm.mm_users += 1
        mm = oldmm
    else:
        mm = dup_mm(k, current, tsk, oldmm)
    tsk.mm = tsk.active_mm = mm


def vm_area_alloc(k: Machine, current: Task | None, anon: bool) -> None:
    """A vm_area_struct and, for anonymous memory, its anon_vma_chain link; nothing if either fails."""
    k.kmem_cache_alloc(current, "vm_area_struct")
    if anon:
        try:
            k.kmem_cache_alloc(current, "anon_vma_chain")
        except KernelError:
            k.kmem_cache_free("vm_area_struct")
            raise


def vm_area_free(k: Machine, vma: Vma) -> None:
    if vma.shmem is None:
        k.kmem_cache_free("anon_vma_chain")
    k.kmem_cache_free("vm_area_struct")


def exit_mmap(k: Machine, mm: MmStruct) -> None:
    futex_hash_free(k, mm)
    k.kmem_cache_charge("anon_vma_chain", -[vma.shmem for vma in mm.vmas].count(None))
    k.kmem_cache_charge("vm_area_struct", -len(mm.vmas))
    mm.vmas = []
    mm.starts = []
    put_layer(mm.anon)
    mm.anon = Layer()


@traced
def mmput(k: Machine, mm: MmStruct) -> None:
    """Drop a user of the address space; the last one tears it down."""
    mm.mm_users -= 1
    if mm.mm_users:
        return
    exit_mmap(k, mm)
    if mm.pgd:
        mm.pgd = False
        k.kmem_cache_free("pgd")
    mmdrop(k, mm)


def mmdrop(k: Machine, mm: MmStruct) -> None:
    mm.mm_count -= 1
    if mm.mm_count == 0:
        k.kmem_cache_free("mm_struct")


def mm_release(k: Machine, tsk: Task, mm: MmStruct) -> None:
    """The task lets go of ``mm`` (exit or exec): clear its child tid, release a vfork parent."""
    if tsk.clear_child_tid:
        # A lone task's memory is about to vanish; only a sharer could read the word.
        if mm.mm_users > 1:
            try:
                put_user_u32(mm, tsk.clear_child_tid, 0)
            except KernelError:
                pass
            futex_wake(k, mm, tsk.clear_child_tid, 1)
        tsk.clear_child_tid = 0
    if tsk.vfork_done is not None:
        complete_vfork_done(k, tsk)


def complete_vfork_done(k: Machine, tsk: Task) -> None:
    vfork = tsk.vfork_done
    assert vfork is not None
    tsk.vfork_done = None
    vfork.done = True
    wake_up(k, vfork.wait)
