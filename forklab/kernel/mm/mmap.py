"""mm/mmap.c, mm/vma.c and mm/madvise.c: creating, removing and advising mappings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forklab.kernel.errors import KernelError, NotModelled
from forklab.kernel.mm.mm import (
    DEFAULT_MAX_MAP_COUNT,
    TASK_SIZE,
    VM_DONTCOPY,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WIPEONFORK,
    VM_WRITE,
    MmStruct,
    Shmem,
    Vma,
    vm_area_alloc,
    vm_area_free,
    vm_stat_account,
)
from forklab.kernel.mm.pages import PAGE_SHIFT, PAGE_SIZE, clear_range
from forklab.uapi import errno as E
from forklab.uapi import mman as M

if TYPE_CHECKING:
    from forklab.kernel.machine import Machine
    from forklab.kernel.task import Task

# The advice values madvise accepts without changing anything the model keeps.
HARMLESS_ADVICE = frozenset(
    (
        M.MADV_NORMAL,
        M.MADV_RANDOM,
        M.MADV_SEQUENTIAL,
        M.MADV_WILLNEED,
        M.MADV_MERGEABLE,
        M.MADV_UNMERGEABLE,
        M.MADV_HUGEPAGE,
        M.MADV_NOHUGEPAGE,
        M.MADV_DONTDUMP,
        M.MADV_DODUMP,
        M.MADV_FREE,
    )
)


def page_align(length: int) -> int:
    return (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def prot_flags(prot: int, shared: bool) -> int:
    flags = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if prot & M.PROT_READ:
        flags |= VM_READ
    if prot & M.PROT_WRITE:
        flags |= VM_WRITE
    if prot & M.PROT_EXEC:
        flags |= VM_EXEC
    if shared:
        flags |= VM_SHARED | VM_MAYSHARE
    return flags


def get_unmapped_area(mm: MmStruct, length: int) -> int:
    """Top-down: the highest gap of ``length`` bytes below mmap_base."""
    end = mm.mmap_base
    for vma in reversed(mm.vmas):
        if vma.vm_start >= end:
            continue
        if vma.vm_end <= end and end - vma.vm_end >= length:
            return end - length
        end = vma.vm_start
    if end - length < PAGE_SIZE * 16:
        raise KernelError(E.ENOMEM, "get_unmapped_area: no gap of that size below mmap_base")
    return end - length


def do_mmap(k: Machine, current: Task, addr: int, length: int, prot: int, flags: int, name: str = "") -> int:
    """Anonymous mappings only; private ones start as zero pages."""
    mm = current.mm
    if mm is None:
        raise KernelError(E.EINVAL, "do_mmap: a kernel thread has no user address space")
    if not flags & M.MAP_ANONYMOUS:
        raise NotModelled("mmap of a file (only anonymous mappings are modelled)")
    kind = flags & (M.MAP_SHARED | M.MAP_PRIVATE)
    if kind not in (M.MAP_SHARED, M.MAP_PRIVATE):
        raise KernelError(E.EINVAL, "do_mmap: exactly one of MAP_SHARED and MAP_PRIVATE is required")
    if length <= 0:
        raise KernelError(E.EINVAL, "do_mmap: length must be positive")
    length = page_align(length)
    if length > TASK_SIZE:
        raise KernelError(E.ENOMEM, "do_mmap: longer than the address space")
    if flags & M.MAP_FIXED:
        if addr & (PAGE_SIZE - 1):
            raise KernelError(E.EINVAL, "do_mmap: MAP_FIXED address is not page aligned")
        if addr + length > TASK_SIZE:
            raise KernelError(E.ENOMEM, "do_mmap: MAP_FIXED range is beyond the address space")
        do_munmap(k, current, mm, addr, length)
        start = addr
    else:
        start = get_unmapped_area(mm, length)
    if mm.map_count >= DEFAULT_MAX_MAP_COUNT:
        raise KernelError(E.ENOMEM, "do_mmap: max_map_count reached")
    vm_flags = prot_flags(prot, kind == M.MAP_SHARED)
    if flags & M.MAP_GROWSDOWN:
        vm_flags |= VM_GROWSDOWN
    shmem = Shmem() if kind == M.MAP_SHARED else None
    if shmem is None:
        clear_range(mm.anon, start >> PAGE_SHIFT, (start + length) >> PAGE_SHIFT)
    if not (shmem is None and merge_with_neighbours(k, mm, start, start + length, vm_flags, name)):
        vm_area_alloc(k, current, anon=shmem is None)
        mm.insert_vma(Vma(start, start + length, vm_flags, name, shmem))
    return start


def merge_with_neighbours(k: Machine, mm: MmStruct, start: int, end: int, flags: int, name: str) -> bool:
    """vma_merge for a new private anonymous range: grow an adjacent twin instead of adding a VMA."""
    before = mm.find_vma(start - 1) if start else None
    after = mm.find_vma(end)
    if before is not None and not (before.vm_end == start and mergeable(before, flags, name)):
        before = None
    if after is not None and not (after.vm_start == end and mergeable(after, flags, name)):
        after = None
    if before is None and after is None:
        return False
    vm_stat_account(mm, flags, (end - start) >> PAGE_SHIFT)
    if before is not None:
        before.vm_end = end
        if after is not None:
            before.vm_end = after.vm_end
            index = mm.vmas.index(after)
            mm.vmas.pop(index)
            del mm.starts[index]
            vm_area_free(k, after)
    elif after is not None:
        after.vm_start = start
        mm.starts[mm.vmas.index(after)] = start
    return True


def mergeable(vma: Vma, flags: int, name: str) -> bool:
    return vma.shmem is None and vma.vm_flags == flags and vma.name == name


def split_vma(k: Machine, current: Task | None, mm: MmStruct, vma: Vma, addr: int) -> Vma:
    """Split ``vma`` at ``addr``; returns the upper half (a new VMA)."""
    if mm.map_count >= DEFAULT_MAX_MAP_COUNT:
        raise KernelError(E.ENOMEM, "split_vma: max_map_count reached")
    vm_area_alloc(k, current, anon=vma.shmem is None)
    upper = vma.copy()
    upper.vm_start = addr
    if vma.shmem is not None:
        upper.vm_pgoff = vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)
    index = mm.vmas.index(vma)
    vm_stat_account(mm, vma.vm_flags, -vma.pages())
    vma.vm_end = addr
    vm_stat_account(mm, vma.vm_flags, vma.pages())
    mm.vmas.insert(index + 1, upper)
    mm.starts.insert(index + 1, addr)
    vm_stat_account(mm, upper.vm_flags, upper.pages())
    return upper


def do_munmap(k: Machine, current: Task | None, mm: MmStruct, start: int, length: int) -> None:
    if start & (PAGE_SIZE - 1) or start < 0 or start + length > TASK_SIZE:
        raise KernelError(E.EINVAL, "do_munmap: start is not page aligned or beyond the address space")
    if length <= 0:
        raise KernelError(E.EINVAL, "do_munmap: length must be positive")
    end = start + page_align(length)
    for vma in list(mm.vmas):
        if vma.vm_end <= start or vma.vm_start >= end:
            continue
        target = vma
        if target.vm_start < start:
            target = split_vma(k, current, mm, target, start)
        if target.vm_end > end:
            split_vma(k, current, mm, target, end)
        index = mm.vmas.index(target)
        removed = mm.remove_vma_at(index)
        if removed.shmem is None:
            mm.rss_anon -= clear_range(mm.anon, removed.vm_start >> PAGE_SHIFT, removed.vm_end >> PAGE_SHIFT)
        vm_area_free(k, removed)


def do_madvise(k: Machine, current: Task, start: int, length: int, advice: int) -> None:
    mm = current.mm
    if mm is None:
        raise KernelError(E.EINVAL, "madvise: a kernel thread has no user address space")
    if start & (PAGE_SIZE - 1):
        raise KernelError(E.EINVAL, "madvise: start is not page aligned")
    if advice not in HARMLESS_ADVICE and advice not in (
        M.MADV_DONTNEED,
        M.MADV_DONTFORK,
        M.MADV_DOFORK,
        M.MADV_WIPEONFORK,
        M.MADV_KEEPONFORK,
    ):
        raise KernelError(E.EINVAL, f"madvise: advice {advice} is not known")
    length = page_align(length)
    if length == 0:
        return
    end = start + length
    if end < start or end > TASK_SIZE:
        raise KernelError(E.EINVAL, "madvise: range wraps or leaves the address space")
    hole = False
    at = start
    for vma in [v for v in mm.vmas if v.vm_end > start and v.vm_start < end]:
        low, high = max(start, vma.vm_start), min(end, vma.vm_end)
        if low > at:
            hole = True
        madvise_vma(k, current, mm, vma, low, high, advice)
        at = high
    if hole or at < end:
        raise KernelError(E.ENOMEM, "madvise: the range includes unmapped addresses")


def madvise_vma(k: Machine, current: Task, mm: MmStruct, vma: Vma, start: int, end: int, advice: int) -> None:
    if advice in HARMLESS_ADVICE:
        return
    if advice == M.MADV_DONTNEED:
        if vma.shmem is None:
            mm.rss_anon -= clear_range(mm.anon, start >> PAGE_SHIFT, end >> PAGE_SHIFT)
        return
    if advice in (M.MADV_WIPEONFORK, M.MADV_KEEPONFORK) and (vma.shmem is not None or vma.vm_flags & VM_SHARED):
        raise KernelError(E.EINVAL, "madvise: MADV_WIPEONFORK applies to private anonymous memory only")
    set_bits = {M.MADV_DONTFORK: VM_DONTCOPY, M.MADV_WIPEONFORK: VM_WIPEONFORK}.get(advice, 0)
    clear_bits = {M.MADV_DOFORK: VM_DONTCOPY, M.MADV_KEEPONFORK: VM_WIPEONFORK}.get(advice, 0)
    new_flags = (vma.vm_flags | set_bits) & ~clear_bits
    if new_flags == vma.vm_flags:
        return
    target = vma
    if target.vm_start < start:
        target = split_vma(k, current, mm, target, start)
    if target.vm_end > end:
        split_vma(k, current, mm, target, end)
    target.vm_flags = new_flags
    merge_adjacent(k, mm, target)


def merge_adjacent(k: Machine, mm: MmStruct, vma: Vma) -> None:
    """After a flag change, fold ``vma`` into identical anonymous neighbours (vma_modify's merge)."""
    index = mm.vmas.index(vma)
    if index + 1 < len(mm.vmas):
        nxt = mm.vmas[index + 1]
        if nxt.vm_start == vma.vm_end and vma.shmem is None and mergeable(nxt, vma.vm_flags, vma.name):
            vma.vm_end = nxt.vm_end
            mm.vmas.pop(index + 1)
            del mm.starts[index + 1]
            vm_area_free(k, nxt)
    if index > 0:
        prev = mm.vmas[index - 1]
        if prev.vm_end == vma.vm_start and vma.shmem is None and mergeable(prev, vma.vm_flags, vma.name):
            prev.vm_end = vma.vm_end
            mm.vmas.pop(index)
            del mm.starts[index]
            vm_area_free(k, vma)


def maps_text(mm: MmStruct) -> str:
    """/proc/<pid>/maps."""
    lines = []
    for vma in mm.vmas:
        flags = vma.vm_flags
        perms = (
            ("r" if flags & VM_READ else "-")
            + ("w" if flags & VM_WRITE else "-")
            + ("x" if flags & VM_EXEC else "-")
            + ("s" if flags & VM_MAYSHARE else "p")
        )
        offset = vma.vm_pgoff << PAGE_SHIFT
        head = f"{vma.vm_start:08x}-{vma.vm_end:08x} {perms} {offset:08x} 00:00 0"
        lines.append(f"{head:<72} {vma.name}".rstrip() if vma.name else head)
    return "".join(line + "\n" for line in lines)
