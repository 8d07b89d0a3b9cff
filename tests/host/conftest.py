"""Host tests run real system calls in sandboxes; skipped, with the reason, where that cannot work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forklab.host import Sandbox, host_available

AVAILABLE, WHY_NOT = host_available()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("host") and not AVAILABLE:
            item.add_marker(pytest.mark.skip(reason=WHY_NOT))


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(max_tasks=32, timeout=5.0) as sandbox:
        yield sandbox
