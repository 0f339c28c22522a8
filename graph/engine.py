"""The embedded graph engine, chosen once per process: the only module that imports it.

`HUBATLAS_ENGINE` picks it: `ladybug` (default: LadybugDB, Kùzu's maintained fork) or `kuzu`
(Kùzu 0.11.3, the archived project's final release). Both speak the same Cypher and have the
same Python API, but they cannot live in one process (their native extensions register the
same types: importing both and using the second crashes), and neither reads the other's files.
So nothing else imports `kuzu` or `ladybug`: stores get the module from `engine()`, and every
database records which engine wrote it (`graph.kuzu_store.EngineMarker`, `sniff`).
"""
from __future__ import annotations

import importlib
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from graph.errors import GraphError

DEFAULT_ENGINE = "ladybug"


@dataclass(frozen=True)
class EngineSpec:
    module: str  # the Python package
    magic: bytes  # the first four bytes of its database files
    requirement: str  # what to pip install


ENGINES: dict[str, EngineSpec] = {
    "ladybug": EngineSpec("ladybug", b"LBUG", "ladybug==0.22.0"),
    "kuzu": EngineSpec("kuzu", b"KUZU", "kuzu==0.11.3"),
}


class EngineUnavailable(GraphError):
    """HUBATLAS_ENGINE names an unknown engine, or its package cannot be used."""


@dataclass(frozen=True)
class Engine:
    name: str  # "ladybug" or "kuzu"
    version: str  # the package's version, e.g. "0.22.0"
    storage_version: int  # the on-disk format; files of another one cannot be opened
    module: ModuleType  # has `Database` and `Connection`

    def describe(self) -> str:
        return f"{self.name} {self.version} (storage format {self.storage_version})"


_ACTIVE: Engine | None = None


def engine_name(environ: dict[str, str] | None = None) -> str:
    """The configured engine's name, validated (nothing is imported)."""
    env = os.environ if environ is None else environ
    name = (env.get("HUBATLAS_ENGINE") or DEFAULT_ENGINE).strip().lower()
    if name not in ENGINES:
        raise EngineUnavailable(f"HUBATLAS_ENGINE={name!r} is not an embedded engine; "
                                f"choose one of: {', '.join(ENGINES)}")
    return name


def engine() -> Engine:
    """The configured embedded engine, imported on first use; one per process."""
    global _ACTIVE
    name = engine_name()
    if _ACTIVE is not None:
        if _ACTIVE.name != name:
            raise EngineUnavailable(f"HUBATLAS_ENGINE is {name} but this process already runs "
                                    f"{_ACTIVE.name}; the engines cannot share a process")
        return _ACTIVE
    spec = ENGINES[name]
    clash = [n for n, s in ENGINES.items() if n != name and s.module in sys.modules]
    if clash:
        raise EngineUnavailable(f"cannot load {name}: {clash[0]} is already imported in this "
                                "process and the engines cannot share one")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as e:
        raise EngineUnavailable(f"HUBATLAS_ENGINE={name} but its package is not installed: "
                                f"pip install '{spec.requirement}' ({e})") from e
    _ACTIVE = Engine(name, str(module.__version__), int(module.storage_version), module)
    return _ACTIVE


def sniff(path: Path) -> tuple[str, int] | None:
    """(engine name, storage version) read from a database file's header, without opening it
    with an engine; None when the file is absent or not a database of a known engine."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except (FileNotFoundError, IsADirectoryError):
        return None
    if len(head) < 12:
        return None
    for name, spec in ENGINES.items():
        if head[:4] == spec.magic:
            return name, struct.unpack("<Q", head[4:12])[0]
    return None
