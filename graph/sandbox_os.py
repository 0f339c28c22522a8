"""Operating-system limits for the console's worker process (Linux).

- `restrict_self` applies a Landlock ruleset (unprivileged, kernel 5.13+): afterwards the
  process may only read files under the given folders, may write, create or remove no file
  anywhere, may open no TCP connection except to the given ports, and (ABI 6+) may signal no
  process outside itself and reach no abstract unix socket. Opened files stay usable.
  This covers what the engine does while *binding* a statement, before any plan exists
  (LOAD FROM sniffs the file, EXPORT DATABASE creates its folder, IMPORT reads files).
- `limit_resources`: no core dumps, no file growth, an address-space backstop.
- `die_with_parent`: the worker is killed when the app dies.

Everything degrades to a no-op where the kernel lacks the feature; callers get told what
was applied (`Isolation`) and show it.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# syscall numbers (the same on x86_64 and arm64: the generic table)
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS, _PR_SET_PDEATHSIG = 38, 1

# filesystem rights by ABI version
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ABI1 = (1 << 13) - 1  # EXECUTE … MAKE_SYM
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


@dataclass(frozen=True)
class Isolation:
    """What the worker could apply to itself."""

    landlock_abi: int  # 0: unavailable (files and network are then not isolated)
    files: bool  # reads limited to the graph and Python's own files; no writes
    network: bool  # no TCP except the allowed ports
    signals: bool  # cannot signal other processes
    address_space_mb: int | None  # RLIMIT_AS backstop, if set
    tcp_ports: tuple[int, ...] = ()  # the ports it may still connect to

    def describe(self) -> str:
        if not self.files:
            return "no file isolation (Landlock unavailable on this kernel)"
        parts = ["files: none outside Python's own (read-only)"]
        if not self.network:
            parts.append("network: not isolated")
        elif self.tcp_ports:
            parts.append(f"network: TCP port {', '.join(map(str, self.tcp_ports))} only")
        else:
            parts.append("network: none")
        if self.signals:
            parts.append("signals: own process only")
        return f"Landlock ABI {self.landlock_abi} ({'; '.join(parts)})"


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    libc = _libc()
    if libc is None:
        return 0
    abi = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(0, int(abi))


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux), so no worker outlives the app."""
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def limit_resources(*, address_space_bytes: int | None = None) -> None:
    """No core files, no file growth, and optionally a hard address-space limit."""
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, 0)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass
    if address_space_bytes:
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            cap = address_space_bytes if hard == resource.RLIM_INFINITY else min(
                hard, address_space_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        except (ValueError, OSError):
            pass


def restrict_self(read_paths: Iterable[Path | str], *, tcp_ports: Iterable[int] = ()
                  ) -> int:
    """Landlock this process: read-only access beneath `read_paths`, nothing else on the
    filesystem, TCP connections only to `tcp_ports`. Returns the ABI applied (0: none)."""
    libc = _libc()
    abi = landlock_abi()
    if libc is None or abi < 1:
        return 0
    fs = _FS_ABI1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | (
        _FS_IOCTL_DEV if abi >= 5 else 0)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)  # fields an older kernel lacks stay 0: accepted
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path in read_paths:
            _allow_read(libc, ruleset, Path(path))
        if net:
            for port in tcp_ports:
                rule = _NetPortAttr(_NET_CONNECT_TCP, int(port))
                if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, ctypes.byref(rule),
                                ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock rule for port {port} failed")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def _allow_read(libc, ruleset: int, path: Path) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        rights = _FS_READ_FILE | (_FS_READ_DIR if path.is_dir() else 0)
        rule = _PathBeneathAttr(rights, fd)
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock rule for {path} failed")
    finally:
        os.close(fd)
