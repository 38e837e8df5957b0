"""Reading what a truncated mcap bag still holds.

A recorder that is killed (power cut, SIGKILL, full disk) leaves an mcap file without its
summary and footer; rosbags then refuses the whole bag. The records before the cut are
intact, so they are read sequentially (mcap's stream reader) up to the first incomplete one,
and the bag is scored on those frames with a note saying where the file ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class SalvageInfo:
    topic_types: dict[str, str]
    messages: int
    file: str
    readable_bytes: int
    size_bytes: int

    @property
    def note(self) -> str:
        return (f"{self.file} is truncated ({self.size_bytes} bytes, no mcap footer): only "
                f"the {self.messages} messages before byte {self.readable_bytes} are readable")


def _storage_files(bag: Path) -> list[Path]:
    return sorted(bag.glob("*.mcap"))


def _records(path: Path):
    """(record, bytes read so far) until the end or the first incomplete record."""
    from mcap.exceptions import McapError
    from mcap.stream_reader import StreamReader

    with path.open("rb") as stream:
        reader = StreamReader(stream, skip_magic=False, emit_chunks=False)
        try:
            for record in reader.records:
                yield record, stream.tell()
        except (McapError, EOFError, ValueError, OSError):
            return


def _walk(bag: Path, wanted: set[str] | None) -> Iterator[tuple[str, str, int, bytes]]:
    from mcap.records import Channel, Message, Schema

    for path in _storage_files(bag):
        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, int]] = {}
        for record, _ in _records(path):
            if isinstance(record, Schema):
                schemas[record.id] = record.name
            elif isinstance(record, Channel):
                channels[record.id] = (record.topic, record.schema_id)
            elif isinstance(record, Message) and record.channel_id in channels:
                topic, schema_id = channels[record.channel_id]
                if wanted is None or topic in wanted:
                    yield topic, schemas.get(schema_id, ""), record.log_time, record.data


@lru_cache(maxsize=32)
def _inspect(bag: Path, mtime_ns: int) -> SalvageInfo | None:
    files = _storage_files(bag)
    if not files:
        return None
    types: dict[str, str] = {}
    messages, readable = 0, 0
    from mcap.records import Channel, Message, Schema

    schemas: dict[int, str] = {}
    for path in files:
        for record, position in _records(path):
            readable = position
            if isinstance(record, Schema):
                schemas[record.id] = record.name
            elif isinstance(record, Channel):
                types[record.topic] = schemas.get(record.schema_id, "")
            elif isinstance(record, Message):
                messages += 1
    if not types:
        return None
    size = sum(p.stat().st_size for p in files)
    return SalvageInfo(types, messages, files[-1].name, readable, size)


def inspect(bag: str | Path) -> SalvageInfo | None:
    """What can be read from a truncated mcap bag (None: nothing, or not mcap)."""
    bag = Path(bag)
    files = _storage_files(bag)
    if not files:
        return None
    return _inspect(bag, max(p.stat().st_mtime_ns for p in files))


def messages(bag: str | Path, topics: Iterable[str] | None,
             ) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time, CDR) of every complete message before the cut."""
    yield from _walk(Path(bag), None if topics is None else set(topics))
