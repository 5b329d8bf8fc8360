"""Rule 5: the e-stop latch. Pressing latches; releasing does not unlatch; only a reset does.

Every message counts on its own: a press latches at once, however soon a release follows. With a
heartbeat timeout, silence from the e-stop device for longer than that latches too (the device
or its link may be dead, so a press could not get through), as a safety relay does when its
monitored input stops pulsing. Times are seconds on the node's clock at arrival.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

PUBLISHERS_REMEMBERED = 64
"""Publishers whose newest sequence number is kept (a new publisher per `ros2 topic pub`)."""


@dataclass(frozen=True)
class ResetResult:
    success: bool
    message: str


class EStopLatch:
    def __init__(self, heartbeat_timeout: float = 0.0) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        """0: no heartbeat expected (no publisher means not pressed)."""
        self.pressed = False
        self.latched = False
        self.heartbeat_lost = False
        """The heartbeat is missing now (only with a heartbeat timeout)."""
        self.latched_by_heartbeat = False
        self._heard_at: float | None = None
        self._watched_since: float | None = None
        self._newest: OrderedDict[Hashable, int] = OrderedDict()

    def update(self, pressed: bool, now: float, source: Hashable | None = None,
               sequence: int | None = None) -> None:
        """One e-stop message, received at ``now``.

        ``source`` and ``sequence`` (publisher and its message count, when known) recognise a
        message older than one already handled from the same publisher, which can arrive late
        when copies take different paths: it still latches if it is a press, but the button's
        state is the one the newer message gave.
        """
        self._heard_at = now
        self.heartbeat_lost = False
        if pressed:
            self.latched = True
        if source is not None and sequence is not None:
            if sequence < self._newest.get(source, sequence):
                return
            self._newest[source] = sequence
            self._newest.move_to_end(source)
            if len(self._newest) > PUBLISHERS_REMEMBERED:
                self._newest.popitem(last=False)
        self.pressed = pressed

    def watch_heartbeat(self, now: float) -> None:
        """Latch when the device has been silent for longer than the heartbeat timeout, also
        when it has not been heard at all since watching began."""
        if self.heartbeat_timeout <= 0.0:
            return
        if self._watched_since is None:
            self._watched_since = now
        silence = self.silence(now)
        if silence > self.heartbeat_timeout:
            self.heartbeat_lost = True
            self.latched = True
            self.latched_by_heartbeat = True

    def silence(self, now: float) -> float:
        """Seconds since the last message (since watching began, if none yet)."""
        since = self._heard_at if self._heard_at is not None else self._watched_since
        return math.inf if since is None else now - since

    def restart_watch(self, now: float) -> None:
        """The clock jumped back: arrival times before it mean nothing now."""
        self._heard_at = None
        self._watched_since = now

    def reset(self, now: float, hazard: str | None) -> ResetResult:
        """Unlatch unless the button is still pressed, the heartbeat is not fresh, or
        ``hazard`` explains why not."""
        if not self.latched:
            return ResetResult(True, 'e-stop is not latched; nothing to reset')
        if self.pressed:
            return ResetResult(False, 'reset refused: the e-stop is still pressed')
        if self.heartbeat_timeout > 0.0:
            self.watch_heartbeat(now)
            if self.heartbeat_lost:
                return ResetResult(False, 'reset refused: no fresh e-stop heartbeat (last '
                                   f'message {self.silence(now):.2f} s ago, timeout '
                                   f'{self.heartbeat_timeout:.2f} s)')
        if hazard is not None:
            return ResetResult(False, f'reset refused: {hazard}')
        self.latched = False
        self.latched_by_heartbeat = False
        return ResetResult(True, 'e-stop reset')
