"""Rule 5: the e-stop latch. Pressing latches; releasing does not unlatch; only a reset does."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResetResult:
    success: bool
    message: str


class EStopLatch:
    def __init__(self) -> None:
        self.pressed = False
        self.latched = False

    def update(self, pressed: bool) -> None:
        self.pressed = pressed
        if pressed:
            self.latched = True

    def reset(self, hazard: str | None) -> ResetResult:
        """Unlatch unless the button is still pressed or ``hazard`` explains why not."""
        if not self.latched:
            return ResetResult(True, 'e-stop is not latched; nothing to reset')
        if self.pressed:
            return ResetResult(False, 'reset refused: the e-stop is still pressed')
        if hazard is not None:
            return ResetResult(False, f'reset refused: {hazard}')
        self.latched = False
        return ResetResult(True, 'e-stop reset')
