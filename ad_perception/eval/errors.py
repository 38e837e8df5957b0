"""The one error evaluation raises for a bag it cannot score, and safe bag reading that says
where it stopped.

A bag that fails half-way (a truncated mcap, a malformed sqlite3 page, a message that does
not deserialise) must produce a message naming the bag, the topic and the time reached, so
the report can say exactly what was and was not scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

NS_PER_S = 1_000_000_000


class EvalError(RuntimeError):
    """A bag that cannot be scored, with what is missing or broken and where."""


class TruncatedBagError(EvalError):
    """The storage file ends early (a killed recorder); mcap bags are salvaged up to the cut."""


def open_reader(bag: str | Path):
    """An opened rosbags Reader, or EvalError saying why the bag cannot be read."""
    from rosbags.rosbag2 import Reader

    bag = Path(bag)
    if not bag.exists():
        raise EvalError(f"{bag}: no such bag folder")
    if bag.is_dir() and not (bag / "metadata.yaml").exists():
        raise EvalError(f"{bag}: not a rosbag2 folder (no metadata.yaml)")
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as err:
        if "magic" in str(err).lower() or "truncat" in str(err).lower():
            raise TruncatedBagError(
                f"{bag}: cannot open: {err} (the storage file looks truncated: a recording "
                "that was killed or copied incompletely)") from err
        raise EvalError(f"{bag}: cannot open: {err}") from err
    return reader


def truncation_note(bag: str | Path) -> str | None:
    """For a truncated mcap bag that can still be read up to the cut, what was salvaged."""
    from ad_perception.eval import salvage

    try:
        open_reader(bag).close()
    except TruncatedBagError:
        info = salvage.inspect(bag)
        return info.note if info is not None else None
    return None


def _salvaged(bag: Path, topics: set[str], raw: bool, error: TruncatedBagError):
    from ad_perception.data.bag_types import typestore
    from ad_perception.eval import salvage

    if salvage.inspect(bag) is None:
        raise error
    store = typestore()
    for count, (topic, msgtype, timestamp, data) in enumerate(salvage.messages(bag, topics)):
        if raw:
            yield topic, timestamp, data
            continue
        try:
            yield topic, timestamp, store.deserialize_cdr(data, msgtype)
        except Exception as err:
            raise EvalError(f"{bag}: salvaged message {count + 1} on {topic} does not "
                            f"deserialise as {msgtype}: {err}") from err


def read_messages(bag: str | Path, topics: Iterable[str], raw: bool = False,
                  ) -> Iterator[tuple[str, int, object]]:
    """(topic, log time ns, message or CDR bytes) in log-time order; any failure becomes an
    EvalError naming the last message read successfully."""
    from ad_perception.data.bag_types import typestore

    store = typestore()
    wanted = set(topics)
    try:
        reader = open_reader(bag)
    except TruncatedBagError as err:
        yield from _salvaged(Path(bag), wanted, raw, err)
        return
    count, last = 0, "before the first message"
    try:
        connections = [c for c in reader.connections if c.topic in wanted]
        iterator = reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, data = next(iterator)
            except StopIteration:
                return
            except Exception as err:
                raise EvalError(f"{bag}: reading stopped after {count} messages "
                                f"({last}): {type(err).__name__}: {err}") from err
            if raw:
                payload = data
            else:
                try:
                    payload = store.deserialize_cdr(data, connection.msgtype)
                except Exception as err:
                    raise EvalError(
                        f"{bag}: message {count + 1} on {connection.topic} at bag time "
                        f"{timestamp / NS_PER_S:.3f} s does not deserialise as "
                        f"{connection.msgtype}: {type(err).__name__}: {err}") from err
            count += 1
            last = f"last good: {connection.topic} at bag time {timestamp / NS_PER_S:.3f} s"
            yield connection.topic, timestamp, payload
    finally:
        reader.close()


def topic_types(bag: str | Path) -> dict[str, str]:
    try:
        reader = open_reader(bag)
    except TruncatedBagError:
        from ad_perception.eval import salvage

        info = salvage.inspect(bag)
        if info is None:
            raise
        return dict(info.topic_types)
    try:
        return {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()


def unknown_types(types: dict[str, str]) -> dict[str, str]:
    """Topics whose message type the project's typestore cannot decode."""
    from ad_perception.data.bag_types import typestore

    known = typestore().fielddefs
    return {topic: kind for topic, kind in types.items() if kind not in known}
