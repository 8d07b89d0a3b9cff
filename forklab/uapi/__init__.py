"""User space's view of the kernel: the numbers and structures a C program would include.

Everything here is plain data with Linux's (x86-64) values, shared by the model, the host
layer and the command line.
"""

from forklab.uapi.capability import *  # noqa: F403
from forklab.uapi.errno import *  # noqa: F403
from forklab.uapi.fcntl import *  # noqa: F403
from forklab.uapi.mman import *  # noqa: F403
from forklab.uapi.pidfd import *  # noqa: F403
from forklab.uapi.prctl import *  # noqa: F403
from forklab.uapi.ptrace import *  # noqa: F403
from forklab.uapi.resource import *  # noqa: F403
from forklab.uapi.sched import *  # noqa: F403
from forklab.uapi.signal import *  # noqa: F403
from forklab.uapi.wait import *  # noqa: F403
