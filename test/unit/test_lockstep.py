"""The lockstep protocol's pure parts: release times, timers, the inbox, the owner's books."""
from __future__ import annotations

import random

import pytest

from sidewalk_robot.lockstep import (NS_PER_S, Batch, ComputeSample, Coordinator, Done,
                                     Endpoint, Hello, Inbox, LockstepConfig, LockstepError,
                                     Stalled, Step,
                                     TimerSchedule, compute_sample_lines, compute_statistics,
                                     decode_report, decode_steps, encode_report, encode_steps,
                                     grid_at_or_after, read_compute_samples, release_time,
                                     slow_node_notes)

MS = 1_000_000


def test_release_is_the_declared_latency_rounded_up_to_the_grid_and_never_the_step_itself():
    assert release_time(100 * MS, 0.015, 20 * MS) == 120 * MS
    assert release_time(100 * MS, 0.020, 20 * MS) == 120 * MS
    assert release_time(100 * MS, 0.021, 20 * MS) == 140 * MS
    assert release_time(100 * MS, 0.0, 20 * MS) == 120 * MS
    assert release_time(105 * MS, 0.0, 10 * MS) == 110 * MS
    assert grid_at_or_after(105 * MS, 10 * MS) == 110 * MS
    assert grid_at_or_after(110 * MS, 10 * MS) == 110 * MS


def test_a_timer_fires_at_the_first_step_at_or_after_its_due_time_and_keeps_its_rate():
    timers = TimerSchedule()
    tick = timers.add(0.05)
    fired_at = []
    for step in range(0, 1001, 20):  # a 20 ms grid, a 50 ms timer
        if tick in timers.fire(step * MS, 20 * MS):
            fired_at.append(step)
    assert fired_at[:4] == [60, 100, 160, 200]
    assert len(fired_at) == 20  # one second: 20 firings, none lost to the coarser grid
    assert timers.next_due() == 1050 * MS


def test_timers_fire_in_the_order_they_were_added_and_cancel_and_restart():
    timers = TimerSchedule()
    first, second = timers.add(0.1), timers.add(0.1)
    timers.fire(0, 10 * MS)
    assert timers.fire(100 * MS, 10 * MS) == [first, second]
    timers.cancel(first)
    assert timers.fire(200 * MS, 10 * MS) == [second]
    timers.restart(first)
    assert timers.fire(250 * MS, 10 * MS) == []  # counts from its first step again
    assert timers.fire(300 * MS, 10 * MS) == [second]
    assert timers.fire(350 * MS, 10 * MS) == [first]
    timers.reset()
    assert timers.next_due() is None


def test_a_timer_whose_step_was_skipped_is_an_error_not_a_late_timer():
    timers = TimerSchedule()
    timers.add(0.05)
    timers.fire(0, 10 * MS)
    with pytest.raises(LockstepError, match='due at 0.050 s got no step'):
        timers.fire(70 * MS, 10 * MS)


def _step(time_ms: int, batches=(), roster=None, floor=None, episode: int = 0) -> Step:
    return Step(episode, time_ms * MS, 10 * MS, tuple(batches), roster or {}, floor or {})


def test_the_inbox_hands_out_a_step_only_when_everything_due_is_there_in_a_fixed_order():
    inbox = Inbox()
    roster = {'g_cam': 'sim', 'g_grid': 'perception', 'g_odom': 'sim'}
    inbox.announce(_step(100, [Batch('/camera', 'sim', 'g_cam', 1, 100 * MS),
                               Batch('/odom', 'sim', 'g_odom', 2, 100 * MS),
                               Batch('/grid', 'perception', 'g_grid', 1, 120 * MS)],
                         roster))
    assert inbox.receive('/odom', 'g_odom', 2, 'odom 2')
    assert inbox.missing(100 * MS) == ['/camera from sim: 1 of 1 messages',
                                       '/odom from sim: 1 of 2 messages']
    assert inbox.receive('/camera', 'g_cam', 1, 'camera 1')
    assert inbox.receive('/odom', 'g_odom', 1, 'odom 1')
    assert not inbox.receive('/odom', 'g_odom', 1, 'odom 1 again')  # a second subscription
    assert inbox.missing(100 * MS) == []  # the grid is due later: not needed yet
    assert [d.payload for d in inbox.take_due(100 * MS)] == ['camera 1', 'odom 1', 'odom 2']
    assert inbox.missing(120 * MS) == ['/grid from perception: 1 of 1 messages']
    inbox.receive('/grid', 'g_grid', 1, 'grid 1')
    assert [(d.payload, d.release_ns) for d in inbox.take_due(120 * MS)] == [('grid 1', 120 * MS)]
    assert not inbox.receive('/grid', 'g_grid', 1, 'grid 1 late copy')


def test_arrival_order_does_not_change_what_is_delivered_or_in_which_order():
    batches = [Batch('/scan', 'sim', 'g_scan', 3, 100 * MS),
               Batch('/cmd', 'planner', 'g_cmd', 2, 100 * MS),
               Batch('/diagnostics', 'perception', 'g_dp', 2, 100 * MS),
               Batch('/diagnostics', 'planner', 'g_dq', 1, 100 * MS),
               Batch('/cmd', 'planner', 'g_cmd', 4, 110 * MS)]
    roster = {b.gid: b.publisher for b in batches}
    arrivals = [(b.topic, b.gid, s) for b in batches for s in range(1, b.last_sequence + 1)]
    arrivals = list(dict.fromkeys(arrivals))
    orders = set()
    generator = random.Random(7)
    for _ in range(30):
        generator.shuffle(arrivals)
        inbox = Inbox()
        inbox.announce(_step(100, batches, roster))
        for topic, gid, sequence in arrivals:
            inbox.receive(topic, gid, sequence, f'{gid}:{sequence}')
        orders.add(tuple(d.payload for d in inbox.take_due(100 * MS))
                   + ('|',) + tuple(d.payload for d in inbox.take_due(110 * MS)))
    assert orders == {('g_cmd:1', 'g_cmd:2', 'g_dp:1', 'g_dp:2', 'g_dq:1', 'g_scan:1',
                       'g_scan:2', 'g_scan:3', '|', 'g_cmd:3', 'g_cmd:4')}


def test_a_message_from_outside_the_lockstep_is_delivered_at_the_next_step():
    inbox = Inbox()
    inbox.announce(_step(100, roster={'g_sim': 'sim'}))
    inbox.receive('/goal_pose', 'g_rviz', 1, 'goal')
    assert inbox.missing(100 * MS) == []
    deliveries = inbox.take_due(100 * MS)
    assert [(d.payload, d.release_ns) for d in deliveries] == [('goal', None)]
    assert inbox.take_due(110 * MS) == []


def test_a_new_episode_drops_what_the_old_one_left_in_flight():
    inbox = Inbox()
    inbox.announce(_step(100, [Batch('/cmd', 'planner', 'g', 2, 110 * MS)], {'g': 'planner'}))
    inbox.receive('/cmd', 'g', 1, 'old 1')
    inbox.receive('/cmd', 'g', 3, 'new 3 (before its step record)')
    inbox.announce(_step(5, [Batch('/cmd', 'planner', 'g', 3, 5 * MS)], floor={'g': 2},
                         episode=1))
    inbox.receive('/cmd', 'g', 2, 'old 2 (late)')
    assert inbox.missing(5 * MS) == []
    assert [d.payload for d in inbox.take_due(5 * MS)] == ['new 3 (before its step record)']


def _hello(node: str, publishers=(), subscriptions=(), resettable=True,
           latency_s: float | None = 0.0) -> Hello:
    return Hello(node, tuple(Endpoint(*p) for p in publishers),
                 tuple(Endpoint(*s) for s in subscriptions), resettable, latency_s)


def test_the_owner_starts_only_when_everyone_is_up_and_every_reader_hears_every_writer():
    coordinator = Coordinator('sim', ['perception', 'planner'], 10 * MS)
    assert coordinator.unready() == ['perception has not said hello',
                                     'planner has not said hello']
    coordinator.on_report(_hello('perception', [('/grid', 'g_grid', 0)], [('/camera', '', 1)]))
    coordinator.on_report(_hello('planner', [('/cmd', 'g_cmd', 1)], [('/grid', '', 1)]))
    assert coordinator.unready([Endpoint('/camera', 'g_cam', 1)],
                               [Endpoint('/cmd', '', 1)]) == [
        'perception reaches 0 of 1 subscriptions of /grid']
    coordinator.on_report(_hello('perception', [('/grid', 'g_grid', 1)], [('/camera', '', 1)]))
    assert coordinator.unready([Endpoint('/camera', 'g_cam', 1)], [Endpoint('/cmd', '', 1)]) == []
    assert coordinator.unready([Endpoint('/camera', 'g_cam', 1),
                                Endpoint('/camera_info', 'g_info', 1)],
                               [Endpoint('/cmd', '', 1)]) == []
    assert coordinator.all_resettable()


def _observer_hello(subscriptions, records) -> Hello:
    return Hello('recorder', (), tuple(Endpoint(*s) for s in subscriptions), False, None,
                 records=tuple(records))


def test_the_first_step_waits_until_an_observer_records_every_lockstep_topic_it_means_to():
    coordinator = Coordinator('sim', ['perception'], 10 * MS, observers=['recorder', ''])
    perception = _hello('perception', [('/grid', 'g_grid', 1)], [('/camera', '', 1)])
    coordinator.on_report(perception)
    owner_writers = [Endpoint('/camera', 'g_cam', 1)]
    assert coordinator.unready(owner_writers) == ['recorder has not said hello']
    # It has found the camera but not perception's grid yet (nor the rosout it records too,
    # which no participant counts): the run must not start without the grid.
    coordinator.on_report(_observer_hello([('/camera', '', 1)], ['/camera', '/grid', '/rosout']))
    assert coordinator.unready(owner_writers) == [
        'sim reaches 1 of 2 subscriptions of /camera', 'recorder does not record /grid yet']
    coordinator.on_report(_hello('perception', [('/grid', 'g_grid', 0)], [('/camera', '', 1)]))
    coordinator.on_report(_observer_hello([('/camera', '', 1), ('/grid', '', 0)],
                                          ['/camera', '/grid', '/rosout']))
    assert coordinator.unready([Endpoint('/camera', 'g_cam', 2)]) == [
        'perception reaches 0 of 1 subscriptions of /grid',
        'recorder hears 0 of 1 publishers of /grid']
    coordinator.on_report(_hello('perception', [('/grid', 'g_grid', 1)], [('/camera', '', 1)]))
    coordinator.on_report(_observer_hello([('/camera', '', 1), ('/grid', '', 1)],
                                          ['/camera', '/grid', '/rosout']))
    assert coordinator.unready([Endpoint('/camera', 'g_cam', 2)]) == []
    # An observer takes no steps and never holds one up.
    assert coordinator.expected == {'perception'}
    coordinator.start_episode(0)
    coordinator.own_data([Batch('/camera', 'sim', 'g_cam', 1, 0)], 0, None)
    assert set(coordinator.ready_steps()) == {'perception'}


def _replay_stack(quantum_ms: int = 20) -> Coordinator:
    """Perception (camera -> grid, 15 ms), planner (grid, odom -> cmd, 10 ms), monitor
    (cmd, odom -> cmd_vel, which only the owner reads)."""
    coordinator = Coordinator('replay', ['perception', 'planner', 'safety_monitor'],
                              quantum_ms * MS)
    coordinator.on_report(_hello('perception', [('/grid', 'g_grid', 1)], [('/camera', '', 1)],
                                 latency_s=0.015))
    coordinator.on_report(_hello('planner', [('/cmd', 'g_cmd', 1)],
                                 [('/grid', '', 1), ('/odom', '', 1)], latency_s=0.010))
    coordinator.on_report(_hello('safety_monitor', [('/cmd_vel', 'g_vel', 1)],
                                 [('/cmd', '', 1), ('/odom', '', 1)], latency_s=0.002))
    coordinator.register_owner({'g_cam': '/camera', 'g_odom': '/odom'}, inputs=())
    return coordinator


def _done(node: str, time_ms: int, batches=(), wake_ms: int | None = None,
          compute_s: float = 0.0) -> Done:
    return Done(node, 0, time_ms * MS, tuple(batches),
                None if wake_ms is None else wake_ms * MS, compute_s, compute_s, True)


def test_everyone_starts_together_and_then_steps_only_when_it_has_something_to_do():
    coordinator = _replay_stack()
    coordinator.start_episode(0)
    coordinator.own_data([Batch('/camera', 'replay', 'g_cam', 1, 0),
                          Batch('/odom', 'replay', 'g_odom', 1, 0)], 0, 20 * MS)
    first = coordinator.ready_steps()
    assert sorted(first) == ['perception', 'planner', 'safety_monitor']
    assert first['perception'][0].batches == (Batch('/camera', 'replay', 'g_cam', 1, 0),)
    assert first['planner'][0].roster == {'g_grid': 'perception', 'g_cmd': 'planner',
                                       'g_vel': 'safety_monitor', 'g_cam': 'replay',
                                       'g_odom': 'replay'}
    assert coordinator.ready_steps() == {}  # nothing more until they answer or data comes
    coordinator.on_report(_done('perception', 0, [Batch('/grid', 'perception', 'g_grid', 1,
                                                        20 * MS)], compute_s=0.012))
    coordinator.on_report(_done('planner', 0, wake_ms=100))
    coordinator.on_report(_done('safety_monitor', 0, wake_ms=50))
    assert coordinator.ready_steps() == {}  # the odometry of 20 ms is not out yet
    coordinator.own_data([Batch('/odom', 'replay', 'g_odom', 2, 20 * MS)], 20 * MS, 40 * MS)
    second = coordinator.ready_steps()
    assert sorted(second) == ['planner', 'safety_monitor']  # perception has nothing to do
    assert second['planner'][0].batches == (Batch('/grid', 'perception', 'g_grid', 1, 20 * MS),
                                         Batch('/odom', 'replay', 'g_odom', 2, 20 * MS))
    assert second['planner'][0].roster == {}
    assert coordinator.samples[0] == ComputeSample('perception', 0, 0.012, 0.012)


def test_a_node_runs_ahead_while_another_is_busy_as_long_as_nothing_it_needs_can_come():
    coordinator = _replay_stack()
    coordinator.start_episode(0)
    odom = [Batch('/odom', 'replay', 'g_odom', k + 1, k * 20 * MS) for k in range(11)]
    coordinator.own_data(odom[:1], 0, 20 * MS)
    for name in coordinator.ready_steps():
        coordinator.on_report(_done(name, 0, wake_ms=100 if name == 'planner' else None))
    # The owner publishes ahead: odometry to 200 ms and an image at 100 ms.
    coordinator.own_data(odom[1:] + [Batch('/camera', 'replay', 'g_cam', 1, 100 * MS)],
                         200 * MS, None)
    taken: list[tuple[str, int]] = []
    for _ in range(30):
        ready = coordinator.ready_steps()
        if not ready:
            break
        for name, steps in ready.items():
            for step in steps:
                taken.append((name, step.time_ns // MS))
                if name != 'perception':  # perception never answers its image: busy at 100
                    coordinator.on_report(_done(name, step.time_ns // MS))
    assert ('perception', 100) in taken
    planner = [t for name, t in taken if name == 'planner']
    # The grid of the image at 100 ms can take effect at 120 ms (15 ms up to the grid): the
    # planner goes up to 100 ms and waits there; the monitor needs only the planner's commands.
    assert planner == [20, 40, 60, 80, 100]
    assert [t for name, t in taken if name == 'safety_monitor'] == [20, 40, 60, 80, 100, 120]
    assert coordinator.busy() == ['perception']
    assert coordinator.settled_until() == 120 * MS - 1


def test_a_topic_read_passively_wakes_nobody_and_comes_with_the_next_step():
    coordinator = Coordinator('replay', ['planner'], 10 * MS)
    coordinator.on_report(_hello('planner', [('/cmd', 'g_cmd', 1)], [('/odom', '', 1)]))
    coordinator.on_report(Hello('planner', (Endpoint('/cmd', 'g_cmd', 1),),
                                (Endpoint('/odom', '', 1),), True, 0.01, ('/odom',)))
    coordinator.register_owner({'g_odom': '/odom'}, inputs=())
    coordinator.start_episode(0)
    coordinator.own_data([Batch('/odom', 'replay', 'g_odom', 1, 0)], 0, 20 * MS)
    assert [s.time_ns for s in coordinator.ready_steps()['planner']] == [0]
    coordinator.on_report(_done('planner', 0, wake_ms=100))
    coordinator.own_data([Batch('/odom', 'replay', 'g_odom', k, (k - 1) * 20 * MS)
                          for k in range(2, 8)], 120 * MS, None)
    (step,) = coordinator.ready_steps()['planner']
    assert step.time_ns == 100 * MS  # its timer, not the odometry every 20 ms
    assert [b.last_sequence for b in step.batches] == [2, 3, 4, 5, 6, 7]


def test_the_schedule_does_not_depend_on_the_order_answers_come_in():
    """Each node's history (step times, messages released to it) is the same whichever node
    answers first: what makes a lockstep run reproducible."""
    histories = set()
    generator = random.Random(3)
    for _ in range(20):
        coordinator = _replay_stack(10)
        coordinator.start_episode(0)
        data = [Batch('/odom', 'replay', 'g_odom', k + 1, k * 20 * MS) for k in range(20)]
        data += [Batch('/camera', 'replay', 'g_cam', k + 1, k * 100 * MS) for k in range(4)]
        data.sort(key=lambda b: b.release_ns)
        coordinator.own_data(data, 380 * MS, None)
        coordinator.end_at(400 * MS)
        history: dict[str, list] = {'perception': [], 'planner': [], 'safety_monitor': []}
        inboxes = {name: Inbox() for name in history}
        counters = {'perception': 0, 'planner': 0, 'safety_monitor': 0}
        outstanding: dict[str, list[Step]] = {}
        for _round in range(1000):
            for name, steps in coordinator.ready_steps().items():
                outstanding.setdefault(name, []).extend(steps)
            waiting = sorted(name for name, steps in outstanding.items() if steps)
            if not waiting:
                break
            name = generator.choice(waiting)
            step = outstanding[name].pop(0)  # each answers its steps in order
            inbox = inboxes[name]
            inbox.announce(step)
            for batch in step.batches:  # every announced message has arrived by now
                for sequence in range(1, batch.last_sequence + 1):
                    inbox.receive(batch.topic, batch.gid, sequence, (batch.topic, sequence))
            assert inbox.missing(step.time_ns) == []
            history[name].append((step.time_ns, tuple(d.payload for d in
                                                      inbox.take_due(step.time_ns))))
            batches = []
            if name == 'perception' or (name == 'planner' and step.time_ns % (100 * MS) == 0):
                topic, gid = {'perception': ('/grid', 'g_grid'),
                              'planner': ('/cmd', 'g_cmd')}[name]
                counters[name] += 1
                latency = 0.015 if name == 'perception' else 0.010
                batches.append(Batch(topic, name, gid, counters[name],
                                     release_time(step.time_ns, latency, 10 * MS)))
            wake = (step.time_ns // (100 * MS) + 1) * 100 * MS if name == 'planner' else None
            coordinator.on_report(Done(name, 0, step.time_ns, tuple(batches), wake, 0, 0, True))
        assert coordinator.finished()
        histories.add(tuple((name, tuple(entries)) for name, entries in sorted(history.items())))
    assert len(histories) == 1
    (only,) = histories
    assert len(dict(only)['planner']) > 20


def test_a_silent_node_is_named_with_what_it_said_it_was_waiting_for():
    coordinator = _replay_stack()
    coordinator.start_episode(1230 * MS)
    coordinator.own_data([], 1230 * MS, None)
    coordinator.ready_steps()
    coordinator.on_report(_done('perception', 1230))
    coordinator.on_report(_done('safety_monitor', 1230))
    coordinator.on_report(Stalled('planner', 0, 1230 * MS,
                                  ('/grid from perception: 1 of 1 messages',)))
    message = coordinator.silence_message(60.0)
    assert 'no answer within 60 s wall from planner at t=1.230 s' in message
    assert '(it was waiting for /grid from perception: 1 of 1 messages)' in message
    assert 'perception at' not in message and 'safety_monitor' not in message


def test_a_node_stopped_at_a_step_answers_up_to_it_and_what_it_made_later_is_dropped():
    coordinator = _replay_stack()
    coordinator.start_episode(0)
    coordinator.own_data([Batch('/camera', 'replay', 'g_cam', 1, 0),
                          Batch('/camera', 'replay', 'g_cam', 2, 100 * MS)], 100 * MS, None)
    coordinator.ready_steps()
    coordinator.on_report(_done('perception', 0, [Batch('/grid', 'perception', 'g_grid', 1,
                                                        20 * MS)]))
    assert [s.time_ns for s in coordinator.ready_steps()['perception']] == [100 * MS]
    coordinator.on_report(_done('perception', 100, [Batch('/grid', 'perception', 'g_grid', 2,
                                                          120 * MS)]))
    # The monitor stops perception after its step at 0 (as the mission supervisor does).
    coordinator.on_report(Done('safety_monitor', 0, 0, (), None, 0.0, 0.0, False,
                               leaving=('perception',)))
    assert coordinator.left == {'perception'}
    coordinator.on_report(_done('planner', 0))
    planner_batches = [b for steps in coordinator.ready_steps().values() for s in steps
                       for b in s.batches if b.topic == '/grid']
    assert planner_batches == [Batch('/grid', 'perception', 'g_grid', 1, 20 * MS)]


def test_a_node_stopped_while_busy_is_waited_for_up_to_its_stop():
    coordinator = _replay_stack()
    coordinator.start_episode(0)
    coordinator.own_data([], 0, None)
    coordinator.ready_steps()
    coordinator.on_report(_done('planner', 0))
    coordinator.on_report(Done('safety_monitor', 0, 0, (), None, 0.0, 0.0, False,
                               leaving=('perception',)))
    assert coordinator.busy() == ['perception']  # its step at 0 still counts
    coordinator.on_report(_done('perception', 0))
    assert coordinator.left == {'perception'} and coordinator.busy() == []
    assert coordinator.finished()


def test_a_new_episode_floors_every_writer_at_what_the_old_one_announced():
    coordinator = _replay_stack()
    coordinator.start_episode(500 * MS)
    coordinator.own_data([], 500 * MS, None)
    coordinator.ready_steps()
    coordinator.on_report(_done('planner', 500, [Batch('/cmd', 'planner', 'g_cmd', 7,
                                                       520 * MS)]))
    coordinator.new_episode()
    coordinator.start_episode(10 * MS)  # time may jump back in a new episode
    coordinator.own_data([], 10 * MS, None)
    records = coordinator.ready_steps()
    assert sorted(records) == ['perception', 'planner', 'safety_monitor']
    assert records['safety_monitor'][0].floor == {'g_cmd': 7}
    assert records['safety_monitor'][0].episode == 1
    assert coordinator.take_owner_step().floor == {'g_cmd': 7}


def test_outputs_only_the_owner_reads_wake_nobody_and_the_owner_knows_when_they_are_settled():
    coordinator = _replay_stack()
    coordinator.register_owner({'g_cam': '/camera', 'g_odom': '/odom'}, inputs=('/cmd_vel',))
    coordinator.start_episode(0)
    coordinator.own_data([], 0, 20 * MS)
    for name in coordinator.ready_steps():
        batches = ([Batch('/cmd_vel', name, 'g_vel', 1, 20 * MS)]
                   if name == 'safety_monitor' else [])
        coordinator.on_report(_done(name, 0, batches))
    assert coordinator.ready_steps() == {}
    assert coordinator.owner_safe_until() == 40 * MS - 1  # the monitor may act at 20 ms next
    assert coordinator.take_owner_step().batches == (Batch('/cmd_vel', 'safety_monitor', 'g_vel',
                                                           1, 20 * MS),)


def test_records_survive_the_wire():
    step = Step(2, 123 * MS, 10 * MS, (Batch('/a', 'n', 'ff', 3, 130 * MS),), {'ff': 'n'},
                {'ee': 4})
    assert decode_steps(encode_steps([step, step])) == [step, step]
    for report in (_hello('n', [('/a', 'ff', 1)], [('/b', '', 2)], False, None),
                   _hello('n', latency_s=0.015),
                   Done('n', 1, 5, (Batch('/a', 'n', 'ff', 3, 10),), None, 0.5, 0.6, True,
                        ('x',)),
                   Done('n', 1, 5, (), 40, 0.0, 0.0, False),
                   Stalled('n', 1, 5, ('/b from m: 1 of 2 messages',)),
                   Hello('rec', (), (Endpoint('/a', '', 1),), False, None,
                         records=('/a', '/b'))):
        assert decode_report(encode_report(report)) == report


def test_compute_time_beyond_the_declared_latency_is_counted_and_said():
    samples = [ComputeSample('perception', i * 100 * MS, s, s) for i, s in
               enumerate([0.010, 0.012, 0.030, 0.040])]
    figures = compute_statistics(samples, {'perception': 0.015})
    assert figures['perception']['busy_steps'] == 4
    assert figures['perception']['steps_over_declared'] == 2
    assert figures['perception']['compute_max_ms'] == 40.0
    notes = slow_node_notes(figures)
    assert len(notes) == 1 and 'perception' in notes[0] and '2 of 4' in notes[0]
    assert slow_node_notes(compute_statistics(samples[:2], {'perception': 0.015})) == []


def test_compute_samples_read_back_as_written_but_for_a_last_line_cut_short(tmp_path):
    samples = [ComputeSample('perception', 20 * MS, 0.0123456, 0.0151),
               ComputeSample('planner', 40 * MS, 0.008, 0.0095)]
    path = tmp_path / 'compute_times.jsonl'
    text = compute_sample_lines(samples)
    path.write_text(text, encoding='utf-8')
    read = read_compute_samples(path)
    assert [(s.node, s.time_ns) for s in read] == [('perception', 20 * MS), ('planner', 40 * MS)]
    # Kept to the microsecond, as the file says.
    assert read[0].compute_s == pytest.approx(0.012346, abs=1e-9)
    assert read[1].wall_s == pytest.approx(0.0095, abs=1e-9)
    path.write_text(text + text.splitlines()[0][:25], encoding='utf-8')  # the writer stopped
    assert len(read_compute_samples(path)) == 2
    path.write_text(text.replace('"planner"', '"planner", "time_s": "late"', 1)
                    .replace('"time_s": 0.04', '"x": 0'), encoding='utf-8')
    with pytest.raises(ValueError, match=r'compute_times.jsonl, line 2: not a compute sample'):
        read_compute_samples(path)
    path.write_text('[1, 2]\n', encoding='utf-8')
    with pytest.raises(ValueError, match='line 1'):
        read_compute_samples(path)


def test_the_lockstep_parameters_are_off_by_default():
    config = LockstepConfig()
    assert not config.lockstep and config.lockstep_latency == 0.0
    assert NS_PER_S == 1_000_000_000
