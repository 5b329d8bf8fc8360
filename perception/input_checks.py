"""Checks on what reaches perception (no ROS here): is the camera calibration plausible for the
model, and how many frames were dropped lately, and why.

A calibration that is not the camera the model was trained for projects every obstacle to the
wrong cell (a focal length a quarter of the true one puts a pole at 1.5 m four times as far
away) while everything looks fine; such a camera model is refused, and the grids stay
unknown, until a plausible one arrives. Dropped frames are counted over a sliding window, so
diagnostics report what happens now, and recover once the cause is gone.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.perception.geometry import Intrinsics
from sidewalk_robot.perception.uncertainty import FrameUncertainty

ASPECT_TOLERANCE = 0.01
"""Relative difference between the horizontal and vertical scale of an image size against the
reference camera's that still counts as the same camera at another resolution (sizes are
rounded to whole pixels)."""

PROCESSED = 'processed'
SUPERSEDED = 'superseded'
DROP_REASONS = ('stale', 'out_of_order', 'bad_encoding', 'bad_image', 'bad_camera', 'failed')
"""Why a frame that reached the node gave no grid from the network: older than
``max_image_age`` or not newer than the last one; an encoding other than rgb8/bgr8; image data
or size that no camera model describes; an implausible calibration; a failure in the model or
the projection."""
# Frames replaced by a newer one before the node took them (or lost on the way) are the other
# way a frame goes unused. That is the design (only the newest frame matters) and depends on
# how busy the CPU is, so it is reported but never warned about.


def _number(value: float) -> str:
    return f'{value:.1f}' if math.isfinite(value) and abs(value) >= 1.0 else f'{value:.3g}'


def implausible_intrinsics(intrinsics: Intrinsics, reference: Intrinsics, tolerance: float,
                           source: str, reference_name: str = 'the model\'s') -> str | None:
    """Why ``intrinsics`` cannot be the ``reference`` camera, or None when they can.

    An image of another size is compared with the reference scaled to that size (the same
    camera, resized); its aspect ratio must be the reference's. fx, fy, cx and cy must each lie
    within ``tolerance`` (relative) of the reference's. The message names ``source`` and the
    first field that fails, e.g. "camera_info fx=0.001 is not within 20 % of the model's 160.0".
    """
    k = intrinsics
    for name, value in (('fx', k.fx), ('fy', k.fy)):
        if not (math.isfinite(value) and value > 0.0):
            return f'{source} {name}={_number(value)} is not a positive finite focal length'
    for name, value in (('cx', k.cx), ('cy', k.cy)):
        if not math.isfinite(value):
            return f'{source} {name}={_number(value)} is not a finite principal point'
    if k.width <= 0 or k.height <= 0:
        return f'{source} image size {k.width}x{k.height} is empty'
    scale_x, scale_y = k.width / reference.width, k.height / reference.height
    if abs(scale_x / scale_y - 1.0) > ASPECT_TOLERANCE:
        return (f'{source} image size {k.width}x{k.height} is not {reference_name} camera '
                f'({reference.width}x{reference.height}) at any scale')
    expected = reference.scaled_to(k.width, k.height)
    resized = (k.width, k.height) != (reference.width, reference.height)
    for name in ('fx', 'fy', 'cx', 'cy'):
        value, wanted = getattr(k, name), getattr(expected, name)
        if abs(value - wanted) > tolerance * abs(wanted):
            at_size = f' (scaled to {k.width}x{k.height})' if resized else ''
            return (f'{source} {name}={_number(value)} is not within {tolerance * 100:g} % of '
                    f'{reference_name} {_number(wanted)}{at_size}')
    return None


@dataclass(frozen=True)
class FrameHealth:
    """The frames of the window: counts by outcome, drop rates, the last error, the network's
    mean uncertainty over the frames it processed (NaN without any)."""
    window: float
    counts: Counter
    last_error: str | None
    uncertainty: FrameUncertainty = FrameUncertainty(math.nan, math.nan)

    @property
    def received(self) -> int:
        """Frames that reached the node (the superseded ones did not)."""
        return sum(self.counts.values()) - self.counts[SUPERSEDED]

    def drop_rate(self, reason: str | None = None) -> float:
        """Fraction of the received frames dropped for ``reason`` (or any of DROP_REASONS); for
        SUPERSEDED, the fraction of all frames sent. 0 without frames."""
        if reason == SUPERSEDED:
            sent = self.received + self.counts[SUPERSEDED]
            return self.counts[SUPERSEDED] / sent if sent else 0.0
        dropped = self.counts[reason] if reason else sum(self.counts[r] for r in DROP_REASONS)
        return dropped / self.received if self.received else 0.0

    def drop_summary(self) -> str:
        """e.g. "dropped 100 % of 12 frames in the last 5 s (stale 100 %)"."""
        reasons = ', '.join(f'{reason} {self.drop_rate(reason) * 100:.0f} %'
                            for reason in DROP_REASONS if self.counts[reason])
        return (f'dropped {self.drop_rate() * 100:.0f} % of {self.received} frames in the last '
                f'{self.window:g} s ({reasons})')


class FrameWindow:
    """What became of the frames received in the last ``window`` seconds, and since the start.

    Times are any monotonic seconds (the node uses the steady clock: diagnostics are about the
    process, whatever the simulated time does).
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.totals: Counter = Counter()
        self._recent: deque[tuple[float, str, int, str | None]] = deque()
        self._uncertainties: deque[tuple[float, FrameUncertainty]] = deque()

    def record(self, now: float, outcome: str, count: int = 1, error: str | None = None,
               uncertainty: FrameUncertainty | None = None) -> None:
        """``uncertainty``: the network's, for a frame it processed (averaged in the window;
        NaN, a camera that sees no ground nearby, has no figure to average)."""
        if outcome not in (PROCESSED, SUPERSEDED, *DROP_REASONS):
            raise ValueError(f'unknown frame outcome {outcome!r}')
        self._recent.append((now, outcome, count, error))
        self.totals[outcome] += count
        if uncertainty is not None and math.isfinite(uncertainty.class_entropy):
            self._uncertainties.append((now, uncertainty))

    def health(self, now: float) -> FrameHealth:
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
        while self._uncertainties and self._uncertainties[0][0] < now - self.window:
            self._uncertainties.popleft()
        outcomes = (PROCESSED, SUPERSEDED, *DROP_REASONS)
        counts: Counter = Counter({outcome: 0 for outcome in outcomes})
        last_error = None
        for _, outcome, count, error in self._recent:
            counts[outcome] += count
            last_error = error or last_error
        if not self._uncertainties:
            return FrameHealth(self.window, counts, last_error)
        means = np.mean([(u.class_entropy, u.group_entropy) for _, u in self._uncertainties],
                        axis=0)
        return FrameHealth(self.window, counts, last_error,
                           FrameUncertainty(float(means[0]), float(means[1])))


class SequenceGaps:
    """Frames a publisher sent that never reached us, from the gaps in its sequence numbers:
    replaced in a one-slot queue by a newer frame while the node was busy, or lost on the way."""

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def skipped(self, publisher: bytes, sequence: int) -> int:
        last = self._last.get(publisher)
        self._last[publisher] = sequence
        # A restarted publisher (or the first message) leaves nothing to count.
        return sequence - last - 1 if last is not None and sequence > last + 1 else 0
