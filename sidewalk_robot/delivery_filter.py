"""Which copies of a message a subscriber hands on, when several subscriptions deliver it.

Pure (no rclpy): ``ros_common.subscribe_from_any_publisher`` feeds it each delivery's publisher
id and sequence number, as rmw reports them.
"""
from __future__ import annotations

from collections import deque

DELIVERIES_REMEMBERED = 64
"""(publisher, sequence number) pairs kept to recognise a copy; far more than can arrive
between two copies of one message."""


class FirstCopyFilter:
    """Admits the first copy of each message; with ``newest_only`` also drops a message older
    than one already admitted from the same publisher (copies travel different ways and can
    overtake each other)."""

    def __init__(self, *, newest_only: bool = False,
                 remembered: int = DELIVERIES_REMEMBERED) -> None:
        self._newest_only = newest_only
        self._order: deque[tuple[bytes, int]] = deque(maxlen=remembered)
        self._seen: set[tuple[bytes, int]] = set()
        self._newest: dict[bytes, int] = {}

    def admit(self, publisher: bytes, sequence: int) -> bool:
        key = (publisher, sequence)
        if key in self._seen:
            return False
        if len(self._order) == self._order.maxlen:
            self._seen.discard(self._order[0])
        self._order.append(key)
        self._seen.add(key)
        newest = self._newest.get(publisher, -1)
        if self._newest_only and sequence < newest:
            return False
        self._newest[publisher] = max(sequence, newest)
        return True
