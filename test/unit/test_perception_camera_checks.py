"""Camera input checks: implausible intrinsics are named, drop rates and the network's mean
uncertainty follow a sliding window."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from sidewalk_robot.perception.geometry import Intrinsics
from sidewalk_robot.perception.input_checks import (DROP_REASONS, PROCESSED, SUPERSEDED,
                                                    FrameWindow, SequenceGaps,
                                                    implausible_intrinsics)
from sidewalk_robot.perception.uncertainty import FrameUncertainty

TRAINED = Intrinsics(fx=160.0, fy=160.0, cx=160.0, cy=120.0, width=320, height=240)


def check(intrinsics: Intrinsics) -> str | None:
    return implausible_intrinsics(intrinsics, TRAINED, 0.2, 'camera_info')


@pytest.mark.parametrize('intrinsics', [
    TRAINED,
    replace(TRAINED, fx=185.0, fy=140.0, cx=150.0, cy=130.0),  # within 20 %
    TRAINED.scaled_to(640, 480),  # the same camera at twice the resolution
    TRAINED.scaled_to(160, 120),
])
def test_the_trained_camera_and_near_calibrations_pass(intrinsics: Intrinsics) -> None:
    assert check(intrinsics) is None


def test_an_absurd_focal_length_is_named_with_the_models_value() -> None:
    assert check(replace(TRAINED, fx=0.001, fy=0.001)) == \
        "camera_info fx=0.001 is not within 20 % of the model's 160.0"
    assert check(replace(TRAINED, fx=40.0, fy=40.0)) == \
        "camera_info fx=40.0 is not within 20 % of the model's 160.0"
    assert check(replace(TRAINED, fy=100.0)).startswith('camera_info fy=100.0 ')


def test_a_principal_point_far_off_the_centre_is_named() -> None:
    assert check(replace(TRAINED, cx=40.0)).startswith('camera_info cx=40.0 is not within 20 %')


@pytest.mark.parametrize('fx', [math.nan, 0.0, -160.0, math.inf])
def test_nan_zero_negative_and_infinite_focal_lengths_are_refused(fx: float) -> None:
    message = check(replace(TRAINED, fx=fx))
    assert message is not None and message.startswith('camera_info fx=')
    assert 'not a positive finite focal length' in message


def test_nan_principal_point_and_empty_size_are_refused() -> None:
    assert 'cy=nan is not a finite principal point' in check(replace(TRAINED, cy=math.nan))
    assert 'image size 0x240 is empty' in check(replace(TRAINED, width=0))


def test_another_size_is_compared_with_the_scaled_camera() -> None:
    half = TRAINED.scaled_to(160, 120)
    assert check(replace(half, fx=160.0, fy=160.0)) == \
        "camera_info fx=160.0 is not within 20 % of the model's 80.0 (scaled to 160x120)"


def test_another_aspect_ratio_is_not_the_trained_camera() -> None:
    message = check(Intrinsics(fx=160.0, fy=160.0, cx=213.0, cy=120.0, width=426, height=240))
    assert message == ("camera_info image size 426x240 is not the model's camera (320x240) "
                       "at any scale")


def test_the_source_and_reference_are_named_as_given() -> None:
    message = implausible_intrinsics(replace(TRAINED, fx=10.0), TRAINED, 0.5, 'parameter',
                                     'the parameters\'')
    assert message == "parameter fx=10.0 is not within 50 % of the parameters' 160.0"


def test_drop_rates_cover_the_window_only() -> None:
    window = FrameWindow(5.0)
    for second in range(4):
        window.record(float(second), 'stale', error=None)
    window.record(4.0, PROCESSED)
    health = window.health(4.0)
    assert health.received == 5
    assert health.drop_rate() == pytest.approx(0.8)
    assert health.drop_rate('stale') == pytest.approx(0.8)
    assert health.drop_summary() == 'dropped 80 % of 5 frames in the last 5 s (stale 80 %)'
    for second in range(5, 10):
        window.record(float(second), PROCESSED)
    later = window.health(9.5)  # the stale frames at 0-4 s have left the window
    assert later.drop_rate() == 0.0 and later.received == 5
    assert window.totals['stale'] == 4 and window.totals[PROCESSED] == 6


def test_the_last_error_clears_when_its_frame_leaves_the_window() -> None:
    window = FrameWindow(2.0)
    window.record(0.0, 'bad_encoding', error="image encoding 'mono8' is not supported")
    window.record(1.0, PROCESSED)
    assert window.health(1.0).last_error == "image encoding 'mono8' is not supported"
    window.record(2.5, PROCESSED)
    assert window.health(2.5).last_error is None


def test_every_reason_has_a_rate_and_an_empty_window_drops_nothing() -> None:
    window = FrameWindow(1.0)
    assert window.health(0.0).drop_rate() == 0.0 and window.health(0.0).received == 0
    for reason in DROP_REASONS:
        window.record(0.5, reason, count=2)
    health = window.health(0.5)
    assert all(health.drop_rate(reason) == pytest.approx(1 / len(DROP_REASONS))
               for reason in DROP_REASONS)
    with pytest.raises(ValueError, match='unknown frame outcome'):
        window.record(0.5, 'lost')


def test_the_uncertainty_is_the_mean_of_the_processed_frames_in_the_window() -> None:
    window = FrameWindow(2.0)
    assert math.isnan(window.health(0.0).uncertainty.class_entropy)  # no frame yet
    window.record(0.0, PROCESSED, uncertainty=FrameUncertainty(0.5, 0.4))
    window.record(1.0, PROCESSED, uncertainty=FrameUncertainty(0.1, 0.0))
    window.record(1.5, PROCESSED, uncertainty=FrameUncertainty(math.nan, math.nan))  # no ground
    window.record(1.5, 'failed', error='inference failed')
    assert window.health(1.5).uncertainty == FrameUncertainty(pytest.approx(0.3),
                                                              pytest.approx(0.2))
    later = window.health(2.5)  # the unsure frame at 0 s has left the window
    assert later.uncertainty == FrameUncertainty(pytest.approx(0.1), pytest.approx(0.0))


def test_superseded_frames_are_reported_apart_and_never_count_as_dropped() -> None:
    """Only the newest frame is processed: how many a busy CPU skips is load, not a fault."""
    window = FrameWindow(5.0)
    window.record(0.0, SUPERSEDED, count=3)
    window.record(0.0, PROCESSED)
    health = window.health(0.0)
    assert health.received == 1
    assert health.drop_rate() == 0.0
    assert health.drop_rate(SUPERSEDED) == pytest.approx(0.75)  # of the 4 frames sent


def test_sequence_gaps_count_frames_that_never_arrived() -> None:
    gaps = SequenceGaps()
    assert gaps.skipped(b'camera', 1) == 0
    assert gaps.skipped(b'camera', 2) == 0
    assert gaps.skipped(b'camera', 5) == 2
    assert gaps.skipped(b'other camera', 9) == 0  # publishers are counted apart
    assert gaps.skipped(b'camera', 1) == 0  # restarted: nothing to count
