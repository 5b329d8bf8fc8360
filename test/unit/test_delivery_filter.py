"""The copy filter behind subscribe_from_any_publisher: each message once, newest wins."""
from __future__ import annotations

from hypothesis import given, strategies as st

from sidewalk_robot.delivery_filter import FirstCopyFilter

A, B = b'publisher-a', b'publisher-b'


def test_each_message_is_admitted_once_whichever_subscription_brings_it() -> None:
    admitted = FirstCopyFilter()
    deliveries = [(A, 1), (A, 1), (A, 2), (A, 1), (A, 2), (A, 2)]
    assert [admitted.admit(*d) for d in deliveries] == [True, False, True, False, False, False]


def test_an_event_stream_keeps_a_late_copy_of_an_older_message() -> None:
    admitted = FirstCopyFilter()  # e-stop presses: every press counts, even out of order
    assert admitted.admit(A, 2) and admitted.admit(A, 1)


def test_newest_only_drops_a_message_older_than_one_already_handed_on() -> None:
    admitted = FirstCopyFilter(newest_only=True)
    assert admitted.admit(A, 2)
    assert not admitted.admit(A, 1)
    assert admitted.admit(B, 1), 'another publisher has its own sequence numbers'
    assert admitted.admit(A, 3)


@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=200))
def test_newest_only_hands_on_an_increasing_sequence_ending_with_the_newest(
        arrivals: list[int]) -> None:
    admitted = FirstCopyFilter(newest_only=True)
    handed_on = [sequence for sequence in arrivals if admitted.admit(A, sequence)]
    assert handed_on == sorted(set(handed_on))
    assert handed_on[-1] == max(arrivals)


def test_memory_is_bounded() -> None:
    admitted = FirstCopyFilter(remembered=4)
    for sequence in range(100):
        assert admitted.admit(A, sequence)
    assert admitted.admit(A, 0), 'a copy older than what is remembered is admitted again'
