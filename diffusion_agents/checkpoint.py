"""Checkpoints: one safetensors file holding weights + JSON metadata + format version.

API::

    save_checkpoint(path, tensors, kind="madiff-policy", version=1, meta={...})  # atomic
    tensors, meta = load_checkpoint(path, kind="madiff-policy", versions=(1,))
    serialize_spaces({agent: space}) -> str ; deserialize_spaces(str) -> {agent: space}

The file is a plain safetensors file (no pickle anywhere): its header metadata holds
``format`` (``"diffusion-agents"``), ``kind``, ``version``, ``meta`` (JSON) and ``digest``, a
SHA-256 over the metadata and every tensor's name, dtype, shape and bytes. ``load_checkpoint``
refuses, with :class:`CheckpointError` naming the file and the problem, anything that is not
such a file (foreign), has another kind or an unsupported version, or whose digest does not
match (tampered or truncated).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wrappers.files import atomic_path

FORMAT = "diffusion-agents"


class CheckpointError(ValueError):
    """A checkpoint file is foreign, tampered, truncated or of an unsupported version."""


def _digest(tensors: dict[str, torch.Tensor], header: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(
            t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        )
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    *,
    kind: str,
    version: int,
    meta: dict[str, Any],
) -> Path:
    """Write ``tensors`` and ``meta`` (JSON-serializable) to ``path`` atomically."""
    path = Path(path)
    # own copies: parameters may be views of one flat storage (FlatParameters), which
    # safetensors refuses as shared memory
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    header = {
        "format": FORMAT,
        "kind": kind,
        "version": str(int(version)),
        "meta": json.dumps(meta, sort_keys=True),
    }
    header["digest"] = _digest(tensors, header)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def load_checkpoint(
    path: str | os.PathLike, *, kind: str, versions: Iterable[int]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {str(path)!r}.")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{str(path)!r} is not a readable diffusion-agents checkpoint (not a safetensors "
            f"file, or truncated/corrupted): {exc}"
        ) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a diffusion-agents checkpoint "
            f"(format={header.get('format')!r}, expected {FORMAT!r})."
        )
    if header.get("kind") != kind:
        raise CheckpointError(
            f"{str(path)!r} holds a {header.get('kind')!r} checkpoint, expected {kind!r}."
        )
    allowed = sorted(int(v) for v in versions)
    try:
        version = int(header.get("version", ""))
    except ValueError:
        version = None
    if version not in allowed:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint version {header.get('version')!r}; this release "
            f"reads versions {allowed}."
        )
    expected = header.pop("digest", None)
    if expected is None or _digest(tensors, header) != expected:
        raise CheckpointError(
            f"{str(path)!r} failed its integrity check (SHA-256 digest mismatch): the file "
            "was modified after it was written. Refusing to load it."
        )
    try:
        meta = json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} has unreadable metadata: {exc}") from None
    return tensors, meta


def serialize_spaces(spaces_by_agent: dict[str, Any]) -> dict[str, str]:
    """``{agent: gymnasium space}`` -> ``{agent: JSON string}`` (Minari's serializer)."""
    from minari.serialization import serialize_space

    return {a: serialize_space(s) for a, s in spaces_by_agent.items()}


def deserialize_spaces(data: dict[str, str]) -> dict[str, Any]:
    from minari.serialization import deserialize_space

    return {a: deserialize_space(s) for a, s in data.items()}


__all__ = [
    "CheckpointError",
    "FORMAT",
    "deserialize_spaces",
    "load_checkpoint",
    "save_checkpoint",
    "serialize_spaces",
]
