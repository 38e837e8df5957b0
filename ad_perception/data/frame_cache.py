"""Decoded-frame caching so training is bound by the model, not by CDR decoding.

Two layers: a small in-memory LRU, and optionally an on-disk ``.npz`` per frame keyed by the
bag's resolved path, its size and mtime, the topic and the message index (a rewritten bag
never serves stale frames).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

Frame = dict[str, np.ndarray]


class FrameCache:
    def __init__(self, cache_dir: Path | str | None = None, memory_frames: int = 64) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.memory_frames = memory_frames
        self._memory: OrderedDict[str, Frame] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(bag: Path | str, topic: str, index: int) -> str:
        path = Path(bag).resolve()
        stat = [
            (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.glob("*"))
            if p.suffix in (".mcap", ".db3")
        ]
        text = f"{path}|{stat}|{topic}|{index}"
        return hashlib.sha1(text.encode()).hexdigest()

    def get(self, key: str) -> Frame | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        if self.cache_dir is not None:
            path = self.cache_dir / f"{key}.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as data:
                    frame = {name: data[name] for name in data.files}
                self._remember(key, frame)
                self.hits += 1
                return frame
        self.misses += 1
        return None

    def put(self, key: str, frame: Frame) -> None:
        self._remember(key, frame)
        if self.cache_dir is not None:
            path = self.cache_dir / f"{key}.npz"
            if not path.exists():
                tmp = path.with_suffix(".tmp.npz")
                np.savez(tmp, **frame)
                tmp.replace(path)

    def get_or_load(self, key: str, load: Callable[[], Frame]) -> Frame:
        frame = self.get(key)
        if frame is None:
            frame = load()
            self.put(key, frame)
        return frame

    def _remember(self, key: str, frame: Frame) -> None:
        self._memory[key] = frame
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_frames:
            self._memory.popitem(last=False)
