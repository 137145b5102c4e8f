"""Output paths, checked before anything runs: a long simulation must not end in a traceback
because its result has nowhere to go.

A path is refused with one line naming the flag when it is a folder where a file is meant (or
the reverse), when it is not a regular file (a device, a FIFO), when its folder does not exist
or cannot be written. A missing folder is created only when the user passes ``--parents``:
a typo must not leave new directories around the file system.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from simulator.errors import InputError


def add_parents_flag(parser: argparse.ArgumentParser) -> None:
    """``--parents``: create missing folders of the output paths (like ``mkdir -p``)."""
    parser.add_argument("--parents", action="store_true",
                        help="create missing folders of the output paths")


def _check_folder(folder: Path, flag: str, parents: bool) -> None:
    """The folder an output goes into exists and is writable (or may be created)."""
    if folder.is_dir():
        _probe(folder, flag)
        return
    if folder.exists():
        raise InputError(f"{flag}: {folder} is not a folder")
    if not parents:
        raise InputError(f"{flag}: the folder {folder} does not exist (create it, or pass "
                         f"--parents)")
    existing = next((p for p in folder.parents if p.exists()), None)
    if existing is not None and not (existing.is_dir() and os.access(existing, os.W_OK)):
        raise InputError(f"{flag}: cannot create {folder}: {existing} is not a writable folder")


def _probe(folder: Path, flag: str) -> None:
    """Create and remove a file in ``folder``: permissions alone do not tell (root passes
    every check, /proc and read-only mounts refuse anyway)."""
    probe = folder / f".xpusim-probe-{secrets.token_hex(4)}"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{flag}: cannot write in {folder} ({exc.strerror or exc})") from None


def output_file(text: str, flag: str, *, parents: bool = False) -> Path:
    """``text`` as a file to (over)write, or :class:`InputError` saying why it cannot be."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise InputError(f"{flag}: {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise InputError(f"{flag}: {path} is not a regular file")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{flag}: cannot write {path} (permission denied)")
    _check_folder(path.parent, flag, parents)
    return path


def output_folder(text: str, flag: str, *, parents: bool = False) -> Path:
    """``text`` as a folder to write files into (created if only it is missing)."""
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{flag}: {path} exists and is not a folder")
        _check_folder(path, flag, parents)
    else:
        _check_folder(path.parent, flag, parents)
    return path
