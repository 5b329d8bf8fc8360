"""The planner and its operator: crossings, the detour question, model health, manual driving.

Closed loop on synthetic worlds (ideal unicycle, perfect perception); the operator's answers
are given from the world-update hook, as a console would send them between two cycles.
"""
from __future__ import annotations

import json

import pytest

from sidewalk_robot.planning.assist import (AssistDesk, AssistResponse, parse_assist_response)
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.crossings import (Crossing, RouteCrossings, locate_crossings,
                                               parse_route_crossings)
from sidewalk_robot.planning.geometry import Pose2D
from sidewalk_robot.planning.planner import Odometry, Planner
from sidewalk_robot.planning.route import Route
from sidewalk_robot.planning.synthetic import Box, Tick, World, drive

START = Pose2D(0.0, 0.0, 0.0)
ROUTE_STAMP = 50.0
CROSSING = Crossing((8.0, 0.0), (12.0, 0.0))
FRONT = 0.5 * PlannerConfig().footprint_length


def crossing_planner(**overrides) -> Planner:
    planner = Planner(PlannerConfig(**overrides))
    crossings = RouteCrossings('odom', ROUTE_STAMP, (CROSSING,))
    # The crossings may come first: they wait for the route with their stamp.
    assert planner.set_route_crossings(crossings, now=0.0) is None
    assert planner.set_route([(0.0, 0.0), (18.0, 0.0)], 'odom', now=0.0,
                             stamp=ROUTE_STAMP) is None
    return planner


def statuses(ticks: list[Tick], kind: str) -> list[tuple[float, str, str]]:
    return [(t.time, r.status, r.id) for t in ticks for r in t.output.assists if r.kind == kind]


def approve(planner: Planner, now: float, kind: str, operator: str = 'alice') -> bool:
    """Approve the open request of ``kind`` if there is one waiting for an answer."""
    request = planner.open_request
    if request is None or request.kind != kind or request.status != 'requested':
        return False
    assert planner.answer_assist(AssistResponse(request.id, 'approve', operator), now) is None
    return True


# ------------------------------------------------------------------------------ crossings
def test_stops_at_the_kerb_and_asks_and_never_enters_the_crossing_unanswered() -> None:
    planner = crossing_planner()
    ticks = drive(planner, World(), START, duration=60.0)
    assert max(t.pose.x for t in ticks) + FRONT <= CROSSING.start[0] - 0.2
    requests = statuses(ticks, 'crossing')
    assert [status for _, status, _ in requests] == ['requested']
    final = ticks[-1].output
    assert (final.state, final.linear, final.angular) == ('waiting', 0.0, 0.0)
    assert 'kerb' in final.reason
    # Waiting at the kerb for an answer is not being stuck: no detour question.
    assert not statuses(ticks, 'blocked')
    request = planner.open_request
    assert request.question == 'crossing: go?' and request.expires_at is None


def test_crosses_after_the_approval_and_reports_the_crossing_done() -> None:
    planner = crossing_planner()
    answered = []

    def operator(now: float, _world: World) -> None:
        if now >= 130.0 and not answered and approve(planner, now, 'crossing'):
            answered.append(now)

    ticks = drive(planner, World(), START, duration=80.0, world_update=operator)
    assert ticks[-1].output.state == 'arrived'
    requests = statuses(ticks, 'crossing')
    assert [status for _, status, _ in requests] == ['requested', 'approved', 'resolved']
    assert len({request_id for _, _, request_id in requests}) == 1
    entered = next(t.time for t in ticks if t.pose.x + FRONT > CROSSING.start[0])
    assert entered > answered[0]
    resolved_at = requests[-1][0]
    resolved_pose = next(t.pose for t in ticks if t.time == resolved_at)
    assert resolved_pose.x >= CROSSING.end[0] - 0.1


def test_an_approval_not_used_in_time_expires_and_the_question_comes_back() -> None:
    planner = crossing_planner(crossing_approval_timeout=3.0)
    walker = Box(8.0, -2.0, 8.5, 2.0)  # across the whole way
    answers = []

    def operator_and_walker(now: float, world: World) -> None:
        # Someone stands at the crossing's start: the robot may go but has to wait for them.
        world.pedestrians = [walker] if now < 140.0 else []
        if approve(planner, now, 'crossing'):
            answers.append(now)

    ticks = drive(planner, World(), START, duration=80.0, world_update=operator_and_walker)
    requests = statuses(ticks, 'crossing')
    sequence = [status for _, status, _ in requests]
    assert sequence[:4] == ['requested', 'approved', 'expired', 'requested'], sequence
    assert requests[0][2] == requests[2][2] != requests[3][2]
    assert requests[2][0] - requests[1][0] == pytest.approx(3.0, abs=0.15)
    assert ticks[-1].output.state == 'arrived'
    assert sequence[-2:] == ['approved', 'resolved']
    entered = next(t.time for t in ticks if t.pose.x + FRONT > CROSSING.start[0])
    assert entered >= 140.0 and entered - answers[-1] <= 3.0


def test_a_decline_keeps_the_robot_waiting_and_asks_again_later() -> None:
    planner = crossing_planner(assist_retry_interval=10.0)
    declined = []

    def operator(now: float, _world: World) -> None:
        request = planner.open_request
        if not declined and request is not None and request.status == 'requested':
            planner.answer_assist(AssistResponse(request.id, 'decline', 'bob', 'lorry'), now)
            declined.append(now)

    ticks = drive(planner, World(), START, duration=50.0, world_update=operator)
    requests = statuses(ticks, 'crossing')
    assert [status for _, status, _ in requests] == ['requested', 'declined', 'requested']
    assert requests[2][0] - requests[1][0] == pytest.approx(10.0, abs=0.15)
    assert max(t.pose.x for t in ticks) + FRONT < CROSSING.start[0]


def test_answers_to_unknown_or_closed_requests_are_ignored_with_a_reason() -> None:
    desk = AssistDesk()
    assert 'no such request' in desk.answer(AssistResponse('x', 'approve', 'op'), 1.0)
    request = desk.ask('crossing', 'kerb', START, 1.0, (5.0, 0.0))
    assert desk.answer(AssistResponse(request.id, 'approve', 'op'), 2.0, expires_at=9.0) is None
    assert 'already approved' in desk.answer(AssistResponse(request.id, 'decline', 'op'), 3.0)
    sent = desk.take_outbox()
    assert [r.status for r in sent] == ['requested', 'approved']
    document = sent[1].as_dict('odom')
    assert document['expires_at'] == 9.0 and document['operator'] == 'op'
    assert set(document) >= {'id', 'kind', 'status', 'question', 'reason', 'pose', 'goal',
                             'time', 'expires_at'}
    json.dumps(document)


@pytest.mark.parametrize('text, complaint', [
    ('not json', 'not JSON'), ('[]', 'object'), ('{"decision": "approve", "operator": "a"}', 'id'),
    ('{"id": "c-1", "decision": "maybe", "operator": "a"}', 'decision'),
    ('{"id": "c-1", "decision": "approve"}', 'operator'),
])
def test_malformed_answers_are_refused_clearly(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_assist_response(text)


def test_route_crossings_json_and_their_place_on_the_route() -> None:
    text = json.dumps({'frame_id': 'odom', 'route_stamp': 12.5, 'crossings': [
        {'start': {'x': 8.0, 'y': 0.1}, 'end': {'x': 12.0, 'y': -0.1}}]})
    crossings = parse_route_crossings(text)
    assert crossings.belongs_to(12.5) and not crossings.belongs_to(12.6)
    spans = locate_crossings(Route([(0.0, 0.0), (20.0, 0.0)]), crossings.crossings, 1.5)
    assert spans[0].start_s == pytest.approx(8.0) and spans[0].end_s == pytest.approx(12.0)
    with pytest.raises(ValueError, match='off the route'):
        locate_crossings(Route([(0.0, 0.0), (20.0, 0.0)]), (Crossing((8, 3), (12, 3)),), 1.5)
    with pytest.raises(ValueError, match='route_stamp'):
        parse_route_crossings('{"frame_id": "odom", "crossings": []}')
    with pytest.raises(ValueError, match='crossing 0 end'):
        parse_route_crossings('{"frame_id": "odom", "route_stamp": 1, "crossings": '
                              '[{"start": {"x": 1, "y": 0}, "end": {"x": "far"}}]}')


def test_a_route_whose_crossing_is_off_the_route_is_refused() -> None:
    planner = Planner(PlannerConfig())
    assert planner.set_route([(0.0, 0.0), (18.0, 0.0)], 'odom', now=0.0, stamp=7.0) is None
    error = planner.set_route_crossings(
        RouteCrossings('odom', 7.0, (Crossing((8.0, 4.0), (12.0, 4.0)),)), now=0.0)
    assert error and 'route refused' in error
    planner.set_odometry(Odometry(0.0, 'odom', START, 0.0, 0.0), 0.0)
    output = planner.step(0.0)
    assert output.state == 'idle' and 'route refused' in output.reason


def test_a_robot_already_on_a_crossing_when_the_route_comes_finishes_it() -> None:
    planner = Planner(PlannerConfig())
    planner.set_route([(9.0, 0.0), (18.0, 0.0)], 'odom', now=0.0, stamp=1.0)
    planner.set_route_crossings(RouteCrossings('odom', 1.0, (CROSSING,)), now=0.0)
    ticks = drive(planner, World(), Pose2D(9.0, 0.0, 0.0), duration=20.0)
    assert ticks[-1].output.state == 'arrived'
    assert not statuses(ticks, 'crossing')


# ------------------------------------------------------------------------------ detour question
def _wall_then_side_gap(now: float, world: World) -> None:
    """The sidewalk closed; from 115 s a gap opens at its left edge (a long way round)."""
    if now < 115.0:
        world.obstacles = [Box(3.0, -20.0, 3.3, 20.0)]
    else:
        world.obstacles = [Box(3.0, -20.0, 3.3, 0.9), Box(3.0, 1.9, 3.3, 20.0)]


@pytest.mark.parametrize('approved', [False, True])
def test_the_blocked_question_lets_an_approved_robot_take_the_detour(approved: bool) -> None:
    planner = Planner(PlannerConfig(stuck_timeout=5.0))
    planner.set_goal(9.0, 0.0, 'odom', now=0.0)

    def world_and_operator(now: float, world: World) -> None:
        _wall_then_side_gap(now, world)
        if approved and now >= 116.0:
            approve(planner, now, 'blocked')

    ticks = drive(planner, World(), START, duration=40.0, world_update=world_and_operator)
    requests = statuses(ticks, 'blocked')
    assert requests and requests[0][1] == 'requested'
    assert planner_question(ticks) == 'blocked: take the detour?'
    if approved:
        # Backing up twice to line up with the gap may take longer than stuck_timeout: the
        # question may come again (and is approved again) on the way.
        assert [status for _, status, _ in requests][:3] == ['requested', 'approved', 'resolved']
        assert ticks[-1].output.state == 'arrived'
    else:
        assert [status for _, status, _ in requests] == ['requested']
        assert max(t.pose.x for t in ticks) < 3.0
        assert ticks[-1].output.state == 'blocked'


def planner_question(ticks: list[Tick]) -> str:
    return next(r.question for t in ticks for r in t.output.assists)


# ------------------------------------------------------------------------------ model health
def test_degraded_model_health_caps_the_speed_then_stops_and_asks() -> None:
    planner = Planner(PlannerConfig(model_health_assist_delay=5.0))
    planner.set_goal(30.0, 0.0, 'odom', now=0.0)
    answered = []

    def health_feed(now: float, _world: World) -> None:
        healthy = now < 104.0 or now >= 125.0
        planner.set_model_health(0.9 if healthy else 0.2, 'lidar disagrees', now)
        if now >= 112.0 and not answered and approve(planner, now, 'model_health'):
            answered.append(now)

    ticks = drive(planner, World(), START, duration=60.0, world_update=health_feed)
    config = planner.config
    before = [t.output.linear for t in ticks if 101.0 <= t.time < 104.0]
    capped = [t for t in ticks if 105.5 <= t.time < 125.0]
    assert max(before) > config.degraded_speed_cap + 0.3
    assert all(t.output.linear <= config.degraded_speed_cap + 1e-9 for t in capped)
    requests = statuses(ticks, 'model_health')
    assert [status for _, status, _ in requests] == ['requested', 'approved', 'resolved']
    asked_at = requests[0][0]
    assert asked_at == pytest.approx(104.0 + 5.0, abs=0.15)
    waiting = [t for t in ticks if asked_at <= t.time < answered[0]]
    assert waiting and all(t.output.linear == 0.0 and t.output.level == 'ERROR' for t in waiting)
    assert any(t.output.linear > 0.3 for t in ticks if answered[0] < t.time < 125.0)
    assert requests[2][0] == pytest.approx(125.0, abs=0.15)
    assert max(t.output.linear for t in ticks if t.time > 127.0) > config.degraded_speed_cap
    assert ticks[-1].output.state == 'arrived'


def test_a_silent_health_monitor_caps_the_speed_and_none_at_all_does_not() -> None:
    config = PlannerConfig()
    planner = Planner(config)
    planner.set_goal(30.0, 0.0, 'odom', now=0.0)
    planner.set_model_health(0.95, 'ok', now=100.0)  # then nothing more
    ticks = drive(planner, World(), START, duration=12.0)
    assert max(t.output.linear for t in ticks if t.time < 105.0) > config.degraded_speed_cap
    assert all(t.output.linear <= config.degraded_speed_cap + 1e-9
               for t in ticks if t.time > 106.5)
    assert 'stale' in ticks[-1].output.reason or ticks[-1].output.values.get('speed_cap_mps')

    unmonitored = Planner(config)
    unmonitored.set_goal(30.0, 0.0, 'odom', now=0.0)
    ticks = drive(unmonitored, World(), START, duration=12.0)
    assert max(t.output.linear for t in ticks) > config.degraded_speed_cap + 0.3


def test_a_health_figure_outside_zero_to_one_is_refused() -> None:
    planner = Planner(PlannerConfig())
    assert 'not in [0, 1]' in planner.set_model_health(1.5, 'x', now=0.0)
    assert 'not in [0, 1]' in planner.set_model_health(float('nan'), 'x', now=0.0)


# ------------------------------------------------------------------------------ manual driving
def test_manual_commands_are_capped_and_go_to_zero_when_stale() -> None:
    config = PlannerConfig()
    planner = Planner(config)
    planner.set_goal(10.0, 0.0, 'odom', now=0.0)
    planner.set_manual_mode(True, now=1.0)
    assert planner.step(1.0).reason == 'operator driving: no manual command yet'
    assert planner.set_manual_command(3.0, -4.0, 1.0, 'base_link', now=1.0) is None
    output = planner.step(1.1)
    assert (output.state, output.linear, output.angular) == (
        'manual', config.manual_max_linear_speed, -config.manual_max_angular_speed)
    planner.set_manual_command(-2.0, 0.2, 1.2, 'base_link', now=1.2)
    assert planner.step(1.3).linear == -config.manual_max_reverse_speed
    stale = planner.step(1.2 + config.manual_cmd_timeout + 0.05)
    assert (stale.linear, stale.angular) == (0.0, 0.0) and 'stale' in stale.reason
    assert 'frame' in planner.set_manual_command(0.5, 0.0, 2.0, 'odom', now=2.0)
    assert 'not finite' in planner.set_manual_command(float('nan'), 0.0, 2.0, 'base_link', 2.0)
    assert 'backwards' in planner.set_manual_command(0.5, 0.0, 1.0, 'base_link', now=2.0)


def test_leaving_manual_mode_hands_the_route_back_to_the_planner() -> None:
    planner = Planner(PlannerConfig())
    planner.set_goal(6.0, 0.0, 'odom', now=0.0)
    planner.set_manual_mode(True, now=0.0)

    def hand_back(now: float, _world: World) -> None:
        if now >= 103.0:
            planner.set_manual_mode(False, now)

    ticks = drive(planner, World(), START, duration=20.0, world_update=hand_back)
    assert all(t.output.state == 'manual' and t.output.linear == 0.0
               for t in ticks if t.time < 103.0)
    assert ticks[-1].output.state == 'arrived'


@pytest.mark.parametrize('island', [1.5, 0.2])
def test_the_second_half_of_a_crossing_with_a_median_island_is_asked_for_too(
        island: float) -> None:
    planner = Planner(PlannerConfig())
    halves = (Crossing((8.0, 0.0), (11.0, 0.0)),
              Crossing((11.0 + island, 0.0), (14.0 + island, 0.0)))
    planner.set_route([(0.0, 0.0), (20.0, 0.0)], 'odom', now=0.0, stamp=2.0)
    planner.set_route_crossings(RouteCrossings('odom', 2.0, halves), now=0.0)
    answered: list[str] = []

    def operator(now: float, _world: World) -> None:
        if not answered and approve(planner, now, 'crossing'):  # the first half only
            answered.append(planner.open_request.id)

    ticks = drive(planner, World(), START, duration=40.0, world_update=operator)
    requests = statuses(ticks, 'crossing')
    assert [status for _, status, _ in requests] == ['requested', 'approved', 'resolved',
                                                      'requested'], requests
    assert requests[0][2] == answered[0] != requests[3][2]
    final = ticks[-1].output
    assert (final.state, final.linear) == ('waiting', 0.0)
    if island > 2 * FRONT:  # room on the island: the robot waits there, off the road
        assert max(t.pose.x for t in ticks) + FRONT <= halves[1].start[0]
    else:  # its nose is over the second kerb when the first half ends: it stops at once
        assert max(t.pose.x for t in ticks) < halves[1].start[0]
