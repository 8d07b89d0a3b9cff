"""Building the host's C programs (the puppet, the bench): compiled once per source version and
flags, cached, shared by every sandbox."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from forklab.host.cgroup import pids_hierarchy
from forklab.host.errors import HostUnavailable

# Freestanding: children sharing memory or given a TLS base cannot run C library code.
CFLAGS = (
    "-nostdlib",
    "-static",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-tree-loop-distribute-patterns",
    "-fcf-protection=none",
    "-fno-asynchronous-unwind-tables",
    "-fno-pie",
    "-no-pie",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--build-id=none",
)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/forklab``, else ``~/.cache/forklab``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "forklab"


# The bench is an ordinary C library program: it times fork, vfork and pthreads as programs make them.
BENCH_CFLAGS = ("-O2", "-pthread", "-Wall", "-Wextra", "-Werror")


def _source(name: str) -> bytes:
    return resources.files("forklab.host").joinpath(name).read_bytes()


def binary_path(name: str = "puppet.c", flags: tuple[str, ...] = CFLAGS) -> Path:
    """Where the program built from ``name`` with ``flags`` lives once built."""
    key = hashlib.sha256(_source(name) + "\0".join(flags).encode()).hexdigest()[:16]
    return cache_dir() / f"{name.removesuffix('.c')}-{key}"


def compiler() -> str | None:
    return shutil.which("cc")


@functools.cache
def puppet_binary() -> str:
    """The puppet's path, compiling it first if this version is not in the cache yet."""
    return compiled("puppet.c", CFLAGS)


@functools.cache
def bench_binary() -> str:
    """The host side of ``forklab bench`` (bench.c), compiled at first use."""
    return compiled("bench.c", BENCH_CFLAGS)


def compiled(name: str, flags: tuple[str, ...]) -> str:
    path = binary_path(name, flags)
    if path.exists():
        return str(path)
    what = name.removesuffix(".c")
    cc = compiler()
    if cc is None:
        raise HostUnavailable(f"no C compiler (cc) on PATH to build the {what}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent builders never see half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{what}-", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *flags, "-o", tmp, "-x", "c", "-"], input=_source(name), capture_output=True, check=False
        )
        if done.returncode != 0:
            text = done.stderr.decode(errors="replace").strip()
            raise HostUnavailable(f"cc could not build the {what}:\n{text[-2000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return str(path)


@functools.cache
def host_available() -> tuple[bool, str]:
    """``(True, "")`` when sandboxes can run here, else ``(False, why not)``."""
    if not sys.platform.startswith("linux"):
        return False, "needs Linux"
    if os.geteuid() != 0:
        return False, "needs root"
    if platform.machine() != "x86_64":
        return False, "needs x86-64 (the puppet is x86-64 assembly and system call numbers)"
    if compiler() is None and not binary_path().exists():
        return False, "no C compiler (cc) on PATH to build the puppet"
    if Path("/proc/sys/user/max_user_namespaces").read_text().strip() == "0":
        return False, "user namespaces are disabled (user.max_user_namespaces is 0)"
    if pids_hierarchy() is None:
        return False, "no pids cgroup controller (cgroup v1 pids or v2 with pids enabled)"
    return True, ""
