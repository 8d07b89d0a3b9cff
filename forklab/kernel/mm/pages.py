"""Page contents of private anonymous memory, copy-on-write by layers.

An address space's private anonymous pages live in a stack of layers. Writes go to the top
layer; reads fall through to the first layer that has the page. Forking freezes the
parent's top layer and puts a fresh empty layer on it for each side, so a fork costs the
same whatever is mapped or written, and a write afterwards copies only the page it touches
(the kernel's copy-on-write fault). A ``cleared`` range in a layer hides everything below
it: fresh mmaps, MADV_DONTNEED and MADV_WIPEONFORK in a child read as zeros.

Layers count their users (the address space whose top a layer is, and the layers over it).
Once a child's address space is gone, the frozen layer under its parent's top has one user
left, and the parent's next fork folds it into the top, as the kernel's page reuses its
anonymous page once no one else maps it: a process that forks, writes and reaps over and
over keeps a stack two layers deep.
"""

from __future__ import annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
ZERO_PAGE = bytes(PAGE_SIZE)


class Layer:
    """One layer: its own pages (page number -> content) and zero-filled ranges."""

    __slots__ = ("below", "cleared", "pages", "users")

    def __init__(self, below: Layer | None = None) -> None:
        self.pages: dict[int, bytearray] = {}
        self.cleared: list[tuple[int, int]] = []  # [start, end) page numbers
        self.below = below
        self.users = 1  # whoever takes the new layer: an address space, as its top
        if below is not None:
            below.users += 1

    def empty(self) -> bool:
        return not self.pages and not self.cleared


def hides(layer: Layer, page: int) -> bool:
    return any(start <= page < end for start, end in layer.cleared)


def find_page(top: Layer, page: int) -> bytes | bytearray | None:
    """The content of ``page`` as this layer stack shows it; None if it was never written."""
    layer: Layer | None = top
    while layer is not None:
        data = layer.pages.get(page)
        if data is not None:
            return data
        if hides(layer, page):
            return None
        layer = layer.below
    return None


def read_page(top: Layer, page: int) -> bytes | bytearray:
    data = find_page(top, page)
    return ZERO_PAGE if data is None else data


def writable_page(top: Layer, page: int) -> tuple[bytearray, bool]:
    """The top layer's own copy of ``page`` (copying it up if needed); True if it is new memory."""
    data = top.pages.get(page)
    if data is not None:
        return data, False
    below = None if hides(top, page) else (find_page(top.below, page) if top.below else None)
    data = bytearray(below) if below is not None else bytearray(PAGE_SIZE)
    top.pages[page] = data
    return data, below is None


def clear_range(top: Layer, start: int, end: int) -> int:
    """Zero pages [start, end): drop this layer's copies and hide the layers below. Returns pages dropped."""
    dropped = [p for p in top.pages if start <= p < end]
    for page in dropped:
        del top.pages[page]
    if top.below is not None:
        top.cleared.append((start, end))
    return len(dropped)


def fork_layers(top: Layer) -> tuple[Layer, Layer]:
    """New top layers for parent and child over what both see now."""
    if top.empty():
        return top, Layer(top.below)  # nothing written since the last fork: the stack does not grow
    fold_unshared(top)
    parent = Layer(top)
    top.users -= 1  # the parent's address space now holds its new top instead
    return parent, Layer(top)


def put_layer(layer: Layer | None) -> None:
    """An address space lets go of its top layer; a layer left unused lets go of the one below."""
    while layer is not None:
        layer.users -= 1
        if layer.users:
            return
        layer = layer.below


def fold_unshared(top: Layer) -> None:
    """Fold into ``top`` each layer under it that only ``top`` still sees (its sharers are gone).

    The pages move by whichever dict is smaller; ``top``'s own copies win, and the pages its
    cleared ranges hide are left behind. The folded layer's cleared ranges still hide what is
    below it, so ``top`` keeps them while anything is.
    """
    below = top.below
    while below is not None and below.users == 1:
        pages = below.pages
        if top.cleared:
            pages = {page: data for page, data in pages.items() if not hides(top, page)}
        if len(pages) > len(top.pages):
            pages.update(top.pages)
            top.pages = pages
        else:
            for page, data in pages.items():
                top.pages.setdefault(page, data)
        top.cleared = top.cleared + below.cleared if below.below is not None else []
        top.below = below = below.below


def depth(top: Layer) -> int:
    count = 0
    layer: Layer | None = top
    while layer is not None:
        count += 1
        layer = layer.below
    return count
