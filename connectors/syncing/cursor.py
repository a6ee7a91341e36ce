"""The sensor's decision, as a pure function: listing + cursor -> work + new cursor.

Why it works this way: ``docs/design/sensor_cursor.md``.

Example:
    >>> plan = plan_tick(items, decode_cursor(None), max_items=1000)
    >>> [item.path for item in plan.work], encode_cursor(plan.cursor)
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.base import DataItem
from connectors.pipeline_settings import DEFAULT_LOOKBACK_SECONDS as DEFAULT_LOOKBACK_SECONDS
from connectors.syncing.source_sync import (
    item_version as item_version,  # one definition: the sensor and the sync must agree
)

BUCKETS = 1024
MAX_RECENT = 1024  # the exact set never grows past this: on busy sources the boundary moves closer
_MASK64 = (1 << 64) - 1
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<Bq?")  # format version, boundary, boundary is set


@dataclass(frozen=True)
class Cursor:
    """What the sensor has already requested (see the module docstring)."""

    boundary: int | None = None
    settled: tuple[int, ...] = (0,) * BUCKETS
    recent: frozenset[bytes] = field(default_factory=frozenset)


@dataclass(frozen=True)
class TickPlan:
    """The outcome of one tick: the items to fetch, the next cursor, and what is left."""

    work: list[DataItem]
    cursor: Cursor
    backlog: int
    coarse: frozenset[str] = frozenset()  # paths of ``work`` requested as bucket mates: maybe unchanged


def item_digest(item: DataItem) -> bytes:
    """8 bytes that change when the item's path or version changes.

    Args:
        item: A listed item.

    Returns:
        Its blake2b digest of path and version.
    """
    text = f"{item.path}\0{item_version(item)}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=8).digest()


def bucket_of(path: str) -> int:
    """The settled bucket of an item path (independent of its version).

    Args:
        path: The item's path.

    Returns:
        The bucket, 0 to ``BUCKETS - 1``: the same for a path at every version.
    """
    digest = hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=4, person=b"da-bucket")
    return int.from_bytes(digest.digest(), "little") % BUCKETS


def bucket_sums(items: Iterable[DataItem]) -> list[int]:
    """Per bucket, the sum (mod 2**64) of the items' digests: order-independent.

    Args:
        items: Listed items.

    Returns:
        ``BUCKETS`` sums; a bucket's sum changes when one of its items is added, removed or changed.
    """
    sums = [0] * BUCKETS
    for item in items:
        index = bucket_of(item.path)
        sums[index] = (sums[index] + int.from_bytes(item_digest(item), "little")) & _MASK64
    return sums


def plan_tick(
    items: Sequence[DataItem],
    cursor: Cursor,
    *,
    max_items: int,
    lookback: int = DEFAULT_LOOKBACK_SECONDS,
) -> TickPlan:
    """Decide which listed items to request now, and the cursor to store after.

    Args:
        items: The whole current listing of the source.
        cursor: The cursor stored by the previous tick (``Cursor()`` at first).
        max_items: Soft bound on the work of this tick (exceeded by at most one bucket).
        lookback: Seconds behind the newest item within which items are tracked exactly.

    Returns:
        The items to request now, the cursor to store, and how many changed items wait for later ticks.
    """
    boundary = cursor.boundary if cursor.boundary is not None else _newest(items) - lookback
    recent = [i for i in items if i.modified_at >= boundary]
    settled = [i for i in items if i.modified_at < boundary]
    fresh = sorted((i for i in recent if item_digest(i) not in cursor.recent), key=_recency)
    changed = _changed_buckets(settled, cursor.settled)

    work = fresh[:max_items]
    coarse: set[str] = set()
    done: dict[int, int] = {}
    for index, (total, members) in changed.items():
        if len(work) >= max_items:
            break
        work.extend(members)
        coarse.update(member.path for member in members)
        done[index] = total
    backlog = len(fresh) - min(len(fresh), max_items) + sum(len(m) for i, (_, m) in changed.items()
                                                                if i not in done)
    if backlog == 0:
        next_cursor = _settle(items, max(boundary, _newest(items) - lookback, _kth_newest(items, MAX_RECENT)))
    else:
        next_cursor = _carry(cursor, boundary, recent, fresh[:max_items], done)
    return TickPlan(work=work, cursor=next_cursor, backlog=backlog, coarse=frozenset(coarse))


def drop_known(plan: TickPlan, known_versions: Mapping[str, str | None]) -> list[DataItem]:
    """The plan's work without bucket mates whose known landed version is the listed one.

    Exact work is always kept.

    Args:
        plan: This tick's plan.
        known_versions: Item path -> the version last landed (for example the data version of its
            latest materialization); None for an item that never landed.

    Returns:
        The items to request.
    """
    return [
        item for item in plan.work
        if item.path not in plan.coarse or known_versions.get(item.path) != item_version(item)
    ]


def _newest(items: Sequence[DataItem]) -> int:
    return max((item.modified_at for item in items), default=0)


def _kth_newest(items: Sequence[DataItem], k: int) -> int:
    """The modified time of the k-th newest item (items at least that new stay exact)."""
    if len(items) <= k:
        return -(2**62)
    return sorted((item.modified_at for item in items), reverse=True)[k - 1]


def _recency(item: DataItem) -> tuple[int, str]:
    return (item.modified_at, item.path)


def _changed_buckets(settled: Sequence[DataItem], previous: Sequence[int]) -> dict[int, tuple[int, list[DataItem]]]:
    """Buckets whose sum differs from the cursor's: index -> (new sum, members sorted by path)."""
    members: dict[int, list[DataItem]] = defaultdict(list)
    for item in settled:
        members[bucket_of(item.path)].append(item)
    now = bucket_sums(settled)
    return {
        index: (now[index], sorted(members.get(index, []), key=lambda i: i.path))
        for index in range(BUCKETS)
        if now[index] != previous[index]
    }


def _settle(items: Sequence[DataItem], boundary: int) -> Cursor:
    """Everything listed has been requested: a fresh cursor at ``boundary``."""
    settled = bucket_sums(i for i in items if i.modified_at < boundary)
    recent = frozenset(item_digest(i) for i in items if i.modified_at >= boundary)
    return Cursor(boundary=boundary, settled=tuple(settled), recent=recent)


def _carry(
    cursor: Cursor, boundary: int, recent: Sequence[DataItem], taken: Sequence[DataItem], done: dict[int, int]
) -> Cursor:
    """A backlog remains: mark only what was requested; keep the boundary where it is."""
    listed = {item_digest(i) for i in recent}
    seen = (cursor.recent & listed) | {item_digest(i) for i in taken}
    settled = list(cursor.settled)
    for index, total in done.items():
        settled[index] = total
    return Cursor(boundary=boundary, settled=tuple(settled), recent=frozenset(seen))


# --- storage ------------------------------------------------------------------


def encode_cursor(cursor: Cursor) -> str:
    """The cursor as compact ASCII (zlib + base64): empty buckets cost almost nothing.

    Args:
        cursor: The cursor to store.

    Returns:
        Text for the sensor's cursor, read back by :func:`decode_cursor`.
    """
    header = _HEADER.pack(_FORMAT_VERSION, cursor.boundary or 0, cursor.boundary is not None)
    body = struct.pack(f"<{BUCKETS}Q", *cursor.settled) + b"".join(sorted(cursor.recent))
    return base64.b64encode(zlib.compress(header + body, 9)).decode("ascii")


def decode_cursor(text: str | None) -> Cursor:
    """The cursor stored by :func:`encode_cursor`.

    Args:
        text: The sensor's stored cursor; None or empty before the first tick.

    Returns:
        The cursor; an empty, unreadable or older one gives ``Cursor()`` (everything is new again).
    """
    if not text:
        return Cursor()
    try:
        raw = zlib.decompress(base64.b64decode(text, validate=True))
        version, boundary, has_boundary = _HEADER.unpack_from(raw)
    except (ValueError, zlib.error, struct.error):
        return Cursor()
    settled_end = _HEADER.size + 8 * BUCKETS
    if version != _FORMAT_VERSION or len(raw) < settled_end or (len(raw) - settled_end) % 8:
        return Cursor()
    settled = struct.unpack_from(f"<{BUCKETS}Q", raw, _HEADER.size)
    recent = frozenset(raw[i : i + 8] for i in range(settled_end, len(raw), 8))
    return Cursor(boundary=boundary if has_boundary else None, settled=settled, recent=recent)
