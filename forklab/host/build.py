"""Building the puppet: compiled once per source version, cached, shared by every sandbox."""

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


def _source() -> bytes:
    return resources.files("forklab.host").joinpath("puppet.c").read_bytes()


def binary_path() -> Path:
    """Where the puppet for this source and these flags lives once built."""
    key = hashlib.sha256(_source() + "\0".join(CFLAGS).encode()).hexdigest()[:16]
    return cache_dir() / f"puppet-{key}"


def compiler() -> str | None:
    return shutil.which("cc")


@functools.cache
def puppet_binary() -> str:
    """The puppet's path, compiling it first if this version is not in the cache yet."""
    path = binary_path()
    if path.exists():
        return str(path)
    cc = compiler()
    if cc is None:
        raise HostUnavailable("no C compiler (cc) on PATH to build the puppet")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent builders never see half a file.
    fd, tmp = tempfile.mkstemp(prefix=".puppet-", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cc, *CFLAGS, "-o", tmp, "-x", "c", "-"], input=_source(), capture_output=True, check=False
        )
        if done.returncode != 0:
            text = done.stderr.decode(errors="replace").strip()
            raise HostUnavailable(f"cc could not build the puppet:\n{text[-2000:]}")
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
