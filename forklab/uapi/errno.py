"""Linux errno numbers (asm-generic/errno-base.h, errno.h) and the kernel-internal restart codes.

Defined here rather than taken from Python's ``errno`` module so the model gives Linux's
numbers on any host.
"""

from __future__ import annotations

EPERM = 1
ENOENT = 2
ESRCH = 3
EINTR = 4
EIO = 5
ENXIO = 6
E2BIG = 7
ENOEXEC = 8
EBADF = 9
ECHILD = 10
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
EXDEV = 18
ENODEV = 19
ENOTDIR = 20
EISDIR = 21
EINVAL = 22
ENFILE = 23
EMFILE = 24
ENOTTY = 25
ETXTBSY = 26
EFBIG = 27
ENOSPC = 28
ESPIPE = 29
EROFS = 30
EMLINK = 31
EPIPE = 32
ERANGE = 34
EDEADLK = 35
ENAMETOOLONG = 36
ENOSYS = 38
ENOTEMPTY = 39
ELOOP = 40
EUSERS = 87
EOPNOTSUPP = 95
ETIMEDOUT = 110
# Never seen by user space: a syscall that returns one of these is restarted.
ERESTARTSYS = 512
ERESTARTNOINTR = 513
ERESTARTNOHAND = 514

_TEXT = {
    EPERM: "Operation not permitted",
    ENOENT: "No such file or directory",
    ESRCH: "No such process",
    EINTR: "Interrupted system call",
    EIO: "Input/output error",
    ENXIO: "No such device or address",
    E2BIG: "Argument list too long",
    ENOEXEC: "Exec format error",
    EBADF: "Bad file descriptor",
    ECHILD: "No child processes",
    EAGAIN: "Resource temporarily unavailable",
    ENOMEM: "Cannot allocate memory",
    EACCES: "Permission denied",
    EFAULT: "Bad address",
    EBUSY: "Device or resource busy",
    EEXIST: "File exists",
    EXDEV: "Invalid cross-device link",
    ENODEV: "No such device",
    ENOTDIR: "Not a directory",
    EISDIR: "Is a directory",
    EINVAL: "Invalid argument",
    ENFILE: "Too many open files in system",
    EMFILE: "Too many open files",
    ENOTTY: "Inappropriate ioctl for device",
    ETXTBSY: "Text file busy",
    EFBIG: "File too large",
    ENOSPC: "No space left on device",
    ESPIPE: "Illegal seek",
    EROFS: "Read-only file system",
    EMLINK: "Too many links",
    EPIPE: "Broken pipe",
    ERANGE: "Numerical result out of range",
    EDEADLK: "Resource deadlock avoided",
    ENAMETOOLONG: "File name too long",
    ENOSYS: "Function not implemented",
    ENOTEMPTY: "Directory not empty",
    ELOOP: "Too many levels of symbolic links",
    EUSERS: "Too many users",
    EOPNOTSUPP: "Operation not supported",
    ETIMEDOUT: "Connection timed out",
    ERESTARTSYS: "Restart system call (kernel-internal)",
    ERESTARTNOINTR: "Restart system call (kernel-internal)",
    ERESTARTNOHAND: "Restart system call (kernel-internal)",
}

errorcode: dict[int, str] = {
    value: name for name, value in list(globals().items()) if name.startswith("E") and isinstance(value, int)
}


def strerror(err: int) -> str:
    """The C library's text for ``err``."""
    return _TEXT.get(err, f"Unknown error {err}")


def name(err: int) -> str:
    """``EINVAL`` for 22; ``E?<n>`` for a number this table does not know."""
    return errorcode.get(err, f"E?{err}")
