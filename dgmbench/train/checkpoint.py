"""Checkpoints that survive a kill at any moment and load with ``weights_only=True``.

A checkpoint is written to a temporary file in the same directory and renamed over the
old one (``os.replace`` is atomic), so a run killed mid-write keeps its previous checkpoint.
Only tensors, numbers, strings, lists and dicts go in, so loading never unpickles code.

Every tensor file dgmbench reads (checkpoints, feature caches, sample files) goes through
:func:`load_tensor_file`: a file that is not such a plain tensor file -- a pickle that would
import or call something (a malicious file), a truncated or corrupt one -- is refused with
one line naming the file and why (:class:`UntrustedFileError`, a ValueError).
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import torch


def save_checkpoint(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class UntrustedFileError(ValueError):
    """A file that should hold only tensors (and numbers, strings, lists, dicts) but does not."""


def load_tensor_file(path: Path | str, map_location="cpu", what: str = "tensor file"):
    """``torch.load(path, weights_only=True)`` -- which never runs code from the file -- with
    every refusal turned into one UntrustedFileError line naming the file and the reason."""
    path = Path(path)
    if path.is_dir():
        raise UntrustedFileError(f"{path} is a directory, not a {what}")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the error below says it better
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) (\S+)", str(err))
        reason = (f"it would import {found.group(1)}" if found
                  else "it holds pickled Python objects or instructions beyond plain data")
        raise UntrustedFileError(
            f"refused to load {path}: not a plain {what} ({reason}, which could run code); only files of "
            "tensors, numbers, strings, lists and dicts are loaded") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        detail = " ".join(str(err).split()).split(". ")[0][:160]
        raise UntrustedFileError(
            f"cannot read {path}: not a readable {what} (truncated or corrupt? {type(err).__name__}: {detail})"
        ) from None


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    return load_tensor_file(path, map_location=map_location, what="checkpoint")
