"""One simulated delivery, end to end: the processes of sim.launch.xml, a goal, the outcome.

``run_mission`` reads launch/sim.launch.xml with the run's arguments, starts every node it
names as a separate process (plus the fault injector when the scenario has faults), watches the
simulator's ground truth and the safety monitor from a supervisor node of its own, sends the
delivery goal, and stops when the robot arrives, the time is up or the simulator dies. The run
folder gets the process logs, an MCAP bag of every topic, summary.json and report.png.

With ``RunOptions.lockstep`` the simulator and the nodes take turns (lockstep.py): each node's
parameter file gets ``lockstep`` and its declared latency, the simulator the list of nodes to
wait for, and the supervisor takes part too, deciding on simulated time only. The outcome is
then the same on every run, however busy the machine. Its figures are not: every node's
compute time per busy step goes to compute_times.jsonl (written by the simulator), their
statistics to lockstep.json, and a node slower than it declared gets a note.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sidewalk_robot import share_directory
from sidewalk_robot.config import read_parameter_file
from sidewalk_robot.lockstep import (COMPUTE_TIMES_FILE, DECLARED_LATENCY_S,
                                     LOCKSTEP_SUMMARY_FILE, compute_statistics,
                                     read_compute_samples, slow_node_notes)
from sidewalk_robot.ros_env import claim_run_domain, loopback_environment
from sidewalk_robot.system.faults import (LINK_LAUNCH_ARGUMENTS, PROCESS_FAULTS,
                                          FaultInjectorConfig, FaultSpec, injector_input,
                                          interposed_links)
from sidewalk_robot.system.launch_xml import (LaunchPlan, launch_file, read_launch_file,
                                              render_argument)
from sidewalk_robot.system.evidence import PLANNER_TRANSITIONS_FILE, RecentMessages
from sidewalk_robot.system.metrics import Obstacle, RunMonitor, RunSummary
from sidewalk_robot.system.processes import ProcessSupervisor

DEFAULT_WORLD = 'sidewalk_straight'
SIMULATOR_LABEL = 'sim'
LOCKSTEP_NODES = ('perception', 'planner', 'safety_monitor', 'health_monitor')
"""The nodes of robot.launch.xml whose outputs decide a mission: they take part in the
lockstep (with the fault injector when it runs, and the mission supervisor)."""
SUPERVISOR_NODE = 'mission_supervisor'
INCIDENT_RECORDER_NODE = 'incident_recorder'
SETTLE_AFTER_ARRIVAL_S = 1.0
"""Simulated seconds the run goes on after the arrival, to see the robot settle."""
PROCESS_KILL_DELAY_S = 0.5
"""Lockstep: simulated seconds between a node's last step and the kill of its process (by
then it has answered every step it was given)."""
CROSSING_ROUTE_DISTANCE = 1.5
"""A world crossing belongs to the route when both its ends lie this close to it [m] (the
planner's route corridor)."""


@dataclass(frozen=True)
class ScriptedOperator:
    """The operator of an unattended run (demo, scenarios, tests): answers the planner's
    questions of the kinds in ``approves`` with an approval, ``delay_s`` simulated seconds
    after they were asked, as operator ``name``; leaves every other question unanswered, as
    an absent operator would (docs/operations.md)."""
    approves: tuple[str, ...] = ('crossing',)
    delay_s: float = 2.0
    name: str = 'mission-script'


@dataclass(frozen=True)
class RunOptions:
    world: str = DEFAULT_WORLD
    scenario_file: Path | None = None
    seed: int = 0
    real_time_factor: float = 1.0
    timeout_s: float = 120.0
    """Simulated seconds after the goal before the run gives up."""
    faults: tuple[FaultSpec, ...] = ()
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per node of robot.launch.xml, parameters that differ from config/<node>.yaml."""
    goal_tolerance_m: float = 0.5
    startup_timeout_s: float = 120.0
    """Wall seconds for every node to come up (perception loads its model)."""
    namespace: str = ''
    """ROS namespace of the simulator and the stack (sim.launch.xml's namespace argument)."""
    operator: ScriptedOperator | None = ScriptedOperator()
    """Who answers the planner's questions; None: nobody (they stay unanswered)."""
    record_bag: bool = True
    record_incidents: bool = False
    """Run incident_recorder_node, writing into <run>/incidents (docs/operations.md); off by
    default: each veto keeps some 20 MB."""
    keep_last_s: float = 0.0
    """Without record_bag: seconds of every topic kept in memory, for the caller to write
    out (RunResult.recent_messages) when the run fails; 0 keeps nothing."""
    write_report: bool = True
    progress: Callable[[str, bool], None] | None = None
    """Called with (text, transient): transient texts are the once-a-second status line."""
    title: str = 'delivery'
    lockstep: bool = False
    """Simulator and nodes take turns (the outcome does not depend on the machine's load);
    False: the simulator paces itself at real_time_factor against the wall clock."""
    latencies: tuple[tuple[str, float], ...] = ()
    """Lockstep: declared latencies [s] by node, instead of lockstep.DECLARED_LATENCY_S."""
    measured_latency: bool = False
    """Lockstep: outputs take effect after each step's measured compute time instead."""
    lockstep_timeout_s: float = 60.0
    """Lockstep: wall seconds the simulator waits for a node's answer before giving up."""


@dataclass
class RunResult:
    run_dir: Path
    summary: RunSummary | None
    error: str | None
    wall_time_s: float
    process_exits: dict[str, int | None]
    recent_messages: RecentMessages | None = None
    """The run's last seconds (RunOptions.keep_last_s), not yet written anywhere."""
    mission_wall_time_s: float | None = None
    """Wall seconds from the goal to the end (the run without its start-up)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.summary is not None


def new_run_directory(root: Path, label: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')
    candidate = root / f'{stamp}-{label}'
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f'{stamp}-{label}-{suffix}'
    candidate.mkdir(parents=True)
    return candidate


def write_changed_parameters(path: Path, node: str, changes: Mapping[str, Any]) -> Path:
    """config/<node>.yaml with ``changes`` applied, for the <node>_params_file argument."""
    parameters = {**read_parameter_file(share_directory() / 'config' / f'{node}.yaml'),
                  **changes}
    path.write_text(yaml.safe_dump({'/**': {'ros__parameters': parameters}}), encoding='utf-8')
    return path


def write_fault_injector_parameters(path: Path, faults: tuple[FaultSpec, ...], seed: int,
                                    changes: Mapping[str, Any] | None = None) -> Path:
    """The injector's parameter file: config/fault_injector.yaml with this run's faults (and
    ``changes``, the lockstep's for instance)."""
    return write_changed_parameters(
        path, 'fault_injector',
        {**(changes or {}), 'faults': json.dumps([fault.as_dict() for fault in faults]),
         'seed': seed})


def launch_arguments_for(options: RunOptions, run_dir: Path) -> dict[str, str]:
    """sim.launch.xml's arguments for this run, with the fault injector's links rerouted and
    the parameter files of nodes whose parameters the run changes."""
    arguments: dict[str, Any] = {
        'world': options.world, 'seed': options.seed,
        'real_time_factor': float(options.real_time_factor),
        'scenario_file': str(options.scenario_file) if options.scenario_file else '',
        'namespace': options.namespace,
        'operator_console': False,  # unattended: no web server (its port would clash)
        'incident_recorder': options.record_incidents,
    }
    parameters = {node: dict(changes) for node, changes in options.parameters.items()}
    if options.record_incidents:
        parameters.setdefault(INCIDENT_RECORDER_NODE, {}).setdefault(
            'folder', str(run_dir / 'incidents'))
    links = interposed_links(options.faults)
    if options.lockstep:
        _add_lockstep_parameters(parameters, options, injector=bool(links),
                                 observers=[INCIDENT_RECORDER_NODE] if options.record_incidents
                                 else [], compute_log=run_dir / COMPUTE_TIMES_FILE)
    for node, changes in parameters.items():
        if node == 'fault_injector':
            continue  # its file is written below, with the faults
        params_file = write_changed_parameters(run_dir / f'{node}.yaml', node, changes)
        arguments[f'{node}_params_file'] = str(params_file)
    if links:
        prefix = FaultInjectorConfig().input_prefix
        params_file = write_fault_injector_parameters(run_dir / 'fault_injector.yaml',
                                                      options.faults, options.seed,
                                                      parameters.get('fault_injector', {}))
        arguments.update(inject_faults=True, fault_injector_params_file=str(params_file))
        for link in links:
            arguments[LINK_LAUNCH_ARGUMENTS[link]] = injector_input(prefix, link)
    return {name: render_argument(value) for name, value in arguments.items()}


def lockstep_participants(injector: bool) -> list[str]:
    """The nodes the simulator waits for at every step of a lockstep run."""
    return [*LOCKSTEP_NODES, *(['fault_injector'] if injector else []), SUPERVISOR_NODE]


def declared_latencies(options: RunOptions) -> dict[str, float]:
    """Every lockstep node's declared latency in this run: its budget or the run's own."""
    return {**DECLARED_LATENCY_S, **dict(options.latencies)}


def _add_lockstep_parameters(parameters: dict[str, dict[str, Any]], options: RunOptions,
                             injector: bool, observers: list[str], compute_log: Path) -> None:
    """Each participant's lockstep parameters with its declared latency; the observers'
    (recorders the first step waits for); the simulator's, with where it records the
    participants' compute times."""
    latencies = declared_latencies(options)
    participants = lockstep_participants(injector)
    for node in participants:
        if node != SUPERVISOR_NODE:
            parameters.setdefault(node, {}).update(
                lockstep=True, lockstep_latency=float(latencies[node]),
                lockstep_measured_latency=options.measured_latency)
    for node in observers:
        parameters.setdefault(node, {})['lockstep'] = True
    parameters.setdefault('sim', {}).update(
        lockstep=True, lockstep_participants=participants,
        lockstep_observers=observers or [''],
        lockstep_timeout=float(options.lockstep_timeout_s),
        lockstep_compute_log=str(compute_log))


def summarise_compute_times(options: RunOptions, run_dir: Path) -> list[str]:
    """After a lockstep run: each node's compute time statistics from the simulator's
    record into lockstep.json; notes for the robot's nodes that took longer than they
    declared, or why there are no figures."""
    path = run_dir / COMPUTE_TIMES_FILE
    if not path.is_file():
        return [f'lockstep: no compute times recorded ({path.name} missing: the simulator '
                'never started stepping)']
    try:
        samples = read_compute_samples(path)
    except (OSError, ValueError) as error:
        return [f'lockstep: compute times unreadable: {error}']
    latencies = declared_latencies(options)
    # The supervisor and the fault injector are the harness, passing things on at the next
    # step: only the robot's own nodes are held to a budget.
    statistics = compute_statistics(samples, {node: latencies[node] for node in LOCKSTEP_NODES})
    (run_dir / LOCKSTEP_SUMMARY_FILE).write_text(json.dumps({
        'declared_latency_s': {node: latencies[node] for node in statistics
                               if node in latencies},
        'measured_latency': options.measured_latency,
        'compute': statistics}, indent=2), encoding='utf-8')
    return slow_node_notes(statistics)


def mission_world(options: RunOptions):
    """The world as the simulator builds it: start, goal and route overridden by the scenario."""
    from sidewalk_robot.simulation.scenario import apply_scenario, load_scenario
    from sidewalk_robot.simulation.world import load_world

    world_name = options.world
    if options.scenario_file is not None:
        overlay = load_scenario(options.scenario_file)
        world = apply_scenario(load_world(overlay.world or world_name), overlay)
    else:
        world = load_world(world_name)
    return world


def crossings_on_route(world, corridor: float = CROSSING_ROUTE_DISTANCE
                       ) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The world's crossings whose both ends lie within ``corridor`` of its route (world
    frame): the ones a delivery along that route has to ask for."""
    points = np.asarray(world.route, dtype=float)

    def distance_to_route(x: float, y: float) -> float:
        starts, ends = points[:-1], points[1:]
        segment = ends - starts
        lengths = np.maximum(np.einsum('ij,ij->i', segment, segment), 1e-12)
        along = np.clip(np.einsum('ij,ij->i', np.array([x, y]) - starts, segment) / lengths,
                        0.0, 1.0)
        nearest = starts + along[:, None] * segment
        return float(np.hypot(*(nearest - (x, y)).T).min())

    return [(crossing.start, crossing.end) for crossing in world.crossings
            if max(distance_to_route(*crossing.start), distance_to_route(*crossing.end))
            <= corridor]


def world_to_odom(start, x: float, y: float) -> tuple[float, float]:
    """A world point in odom, whose origin and heading are the robot's start pose."""
    dx, dy = x - start.x, y - start.y
    cos_yaw, sin_yaw = math.cos(start.yaw), math.sin(start.yaw)
    return cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy


def goal_in_odom(start, goal) -> tuple[float, float, float]:
    """The world goal expressed in odom (= the robot's start pose)."""
    yaw = math.atan2(math.sin(goal.yaw - start.yaw), math.cos(goal.yaw - start.yaw))
    return (*world_to_odom(start, goal.x, goal.y), yaw)


def write_plan(plan: LaunchPlan, path: Path) -> None:
    lines = [f'# launch files: {", ".join(str(f) for f in plan.files)}']
    for spec in plan.nodes:
        lines.append(f'{spec.label}: {" ".join(spec.command())}')
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')


def _format_progress(monitor: RunMonitor, sim_now: float, safety: str) -> str:
    elapsed = sim_now - (monitor.mission_start or sim_now)
    pose = monitor.poses[-1] if monitor.poses else None
    _, speeds = monitor.speed_profile()
    speed = speeds[-1] if speeds.size else 0.0
    remaining = monitor.distance_to_goal()
    where = f'x {pose.x:6.2f} y {pose.y:6.2f}' if pose else 'x   -    y   -   '
    return (f'[{elapsed:6.1f} s] {where}  to goal '
            f'{remaining if remaining is not None else math.nan:5.1f} m  v {speed:4.2f} m/s  '
            f'safety {safety:<26.26}  vetoes {len(monitor.vetoes):3d}  '
            f'collisions {len(monitor.collisions)}')


def run_mission(options: RunOptions, run_dir: Path) -> RunResult:
    """Run one delivery in ``run_dir``; never leaves a process behind."""
    from sidewalk_robot.system.supervisor import SupervisorSession

    wall_start = time.monotonic()
    mission_wall_time_s: float | None = None
    report = options.progress or (lambda _text, _transient: None)

    def say(text: str) -> None:
        report(text, False)

    world = mission_world(options)
    start_pose, goal_pose = world.start_pose, world.goal_pose
    monitor = RunMonitor((goal_pose.x, goal_pose.y), options.goal_tolerance_m)
    plan = read_launch_file(launch_file('sim.launch.xml'), launch_arguments_for(options, run_dir))
    write_plan(plan, run_dir / 'launch_plan.txt')
    domain = claim_run_domain()  # the mission's own, given up once its processes are stopped
    domain_id = domain.domain_id
    environment = loopback_environment(domain_id=domain_id)
    notes: list[str] = []
    error: str | None = None
    process_faults = [f for f in options.faults if f.type in PROCESS_FAULTS]
    recent = (RecentMessages(run_dir / 'bag', options.keep_last_s)
              if not options.record_bag and options.keep_last_s > 0 else None)
    with domain, ProcessSupervisor(run_dir / 'logs', environment, share_directory()) as processes:
        for spec in plan.nodes:
            processes.start(spec.label, spec.command(), dict(spec.environment))
        with SupervisorSession(domain_id, monitor,
                               run_dir / 'bag' if options.record_bag else None,
                               options.namespace, options.operator, recent,
                               lockstep=options.lockstep) as session:
            say(f'run folder {run_dir} (ROS_DOMAIN_ID={domain_id}); waiting for '
                f'{", ".join(spec.label for spec in plan.nodes)}'
                + (' (lockstep)' if options.lockstep else ''))
            goal_xyyaw = goal_in_odom(start_pose, goal_pose)
            route = [world_to_odom(start_pose, x, y) for x, y in world.route]
            crossings = [(world_to_odom(start_pose, *start), world_to_odom(start_pose, *end))
                         for start, end in crossings_on_route(world)]
            if options.lockstep:  # the goal goes out at the supervisor's first ready step
                session.goal_when_ready(goal_xyyaw, route, crossings)
            error = session.wait_until_ready(processes, options.startup_timeout_s)
            (run_dir / 'graph.json').write_text(json.dumps(session.graph_snapshot(), indent=1),
                                                encoding='utf-8')
            if error is None:
                mission_start = (session.mission_start if options.lockstep
                                 else session.send_goal(goal_xyyaw, route, crossings))
                say(f'goal sent: world ({goal_pose.x:.1f}, {goal_pose.y:.1f}) = odom '
                    f'({goal_xyyaw[0]:.1f}, {goal_xyyaw[1]:.1f}); started in '
                    f'{time.monotonic() - wall_start:.1f} s wall')
                drive = _drive_in_lockstep if options.lockstep else _drive
                mission_wall_start = time.monotonic()
                error = drive(options, session, processes, monitor, mission_start,
                              process_faults, notes, report)
                mission_wall_time_s = time.monotonic() - mission_wall_start
            session.close_bag(notes)
            session.planner_transitions.write_jsonl(run_dir / PLANNER_TRANSITIONS_FILE,
                                                    monitor.mission_start)
        for label, code in processes.unexpected_exits().items():
            notes.append(f'{label} exited during the run with status {code}')
        processes.stop_all()
        exits = {label: p.returncode for label, p in processes.processes.items()}
    if options.lockstep:
        notes += summarise_compute_times(options, run_dir)
    summary = monitor.summary(notes) if monitor.mission_start is not None else None
    result = RunResult(run_dir, summary, error, time.monotonic() - wall_start, exits, recent,
                       mission_wall_time_s)
    _write_outputs(options, result, monitor, world)
    return result


def _drive(options: RunOptions, session, processes: ProcessSupervisor, monitor: RunMonitor,
           mission_start: float, process_faults: list[FaultSpec], notes: list[str],
           report: Callable[[str, bool], None]) -> str | None:
    """Spin until arrival (plus a moment to see the robot settle), timeout or a dead sim."""
    wall_limit = time.monotonic() + 60.0 + options.timeout_s / max(
        min(options.real_time_factor, 1.0), 0.05) * 3.0
    next_progress = 0.0
    arrived_at: float | None = None
    pending_kills = list(process_faults)
    while True:
        session.spin_for(0.05)
        sim_now = session.sim_time()
        while session.operator_events:
            notes.append(f'operator: {session.operator_events.pop(0)}')
            report(notes[-1], False)
        elapsed = sim_now - mission_start
        for fault in [f for f in pending_kills if elapsed >= f.start]:
            label = PROCESS_FAULTS[fault.type]
            processes.kill(label)
            pending_kills.remove(fault)
            notes.append(f'{label} killed at mission time {elapsed:.1f} s ({fault.type})')
            report(notes[-1], False)
        if time.monotonic() >= next_progress:
            report(_format_progress(monitor, sim_now, session.safety_text()), True)
            next_progress = time.monotonic() + 1.0
        if monitor.arrival_time is not None and arrived_at is None:
            arrived_at = time.monotonic()
        if arrived_at is not None and time.monotonic() - arrived_at > 1.0:
            report(_format_progress(monitor, sim_now, session.safety_text()), False)
            return None
        if elapsed >= options.timeout_s:
            notes.append(f'timeout: {options.timeout_s:.0f} s of mission time without arriving')
            return None
        if time.monotonic() > wall_limit:
            notes.append('wall-clock limit reached: the simulation ran far slower than asked')
            return None
        dead = processes.unexpected_exits()
        if SIMULATOR_LABEL in dead:
            return f'the simulator exited with status {dead[SIMULATOR_LABEL]}'


def _drive_in_lockstep(options: RunOptions, session, processes: ProcessSupervisor,
                       monitor: RunMonitor, mission_start: float,
                       process_faults: list[FaultSpec], notes: list[str],
                       report: Callable[[str, bool], None]) -> str | None:
    """``_drive`` for a lockstep run: every decision is taken at one of the supervisor's
    steps, on simulated time (``mission_step``); this loop only spins, reports progress and
    watches the processes."""
    pending_kills = list(process_faults)
    kills_due: list[tuple[float, str]] = []
    finished = []

    def mission_step(sim_now: float) -> bool:
        elapsed = sim_now - mission_start
        for fault in [f for f in pending_kills if elapsed >= f.start]:
            label = PROCESS_FAULTS[fault.type]
            # It takes no step after this one, which is its death as far as the robot can
            # tell; the process goes once it has answered the steps it was already given.
            session.stop_participant(label)
            kills_due.append((sim_now + PROCESS_KILL_DELAY_S, label))
            pending_kills.remove(fault)
            notes.append(f'{label} killed at mission time {elapsed:.1f} s ({fault.type})')
        for due in [due for due in kills_due if sim_now >= due[0]]:
            processes.kill(due[1])
            kills_due.remove(due)
        arrived = monitor.arrival_time
        if arrived is not None and sim_now - arrived >= SETTLE_AFTER_ARRIVAL_S:
            finished.append('arrived')
            return False
        if elapsed >= options.timeout_s:
            notes.append(f'timeout: {options.timeout_s:.0f} s of mission time without arriving')
            finished.append('timeout')
            return False
        return True

    session.on_step = mission_step
    wall_start = time.monotonic()
    next_progress = 0.0
    while not finished:
        session.spin_for(0.05)
        while session.operator_events:
            notes.append(f'operator: {session.operator_events.pop(0)}')
            report(notes[-1], False)
        if time.monotonic() >= next_progress:
            report(_format_progress(monitor, session.sim_time(), session.safety_text()), True)
            next_progress = time.monotonic() + 1.0
        dead = processes.unexpected_exits()
        if SIMULATOR_LABEL in dead:
            tail = processes.processes[SIMULATOR_LABEL].log_tail(600).strip().splitlines()
            return (f'the simulator exited with status {dead[SIMULATOR_LABEL]}'
                    + (f': {tail[-1]}' if tail else ''))
        if time.monotonic() - wall_start > options.lockstep_timeout_s + options.timeout_s * 10:
            return 'wall-clock limit reached: the lockstep made next to no progress'
    report(_format_progress(monitor, session.sim_time(), session.safety_text()), False)
    return None


def ground_surfaces(world) -> list[Obstacle]:
    """The world's sidewalks, roads and lawns as boxes for the report's map."""
    surfaces = []
    for body in world.bodies:
        if body.semantic.is_ground and body.geometry.kind == 'box' and body.visible:
            surfaces.append(Obstacle(body.name, body.semantic.label, body.pose.x, body.pose.y,
                                     body.pose.yaw, length=body.geometry.size[0],
                                     width=body.geometry.size[1]))
    return surfaces


def _write_outputs(options: RunOptions, result: RunResult, monitor: RunMonitor, world) -> None:
    data = {
        'title': options.title, 'world': options.world, 'seed': options.seed,
        'scenario_file': str(options.scenario_file) if options.scenario_file else None,
        'real_time_factor': options.real_time_factor, 'timeout_s': options.timeout_s,
        'lockstep': options.lockstep,
        'faults': [fault.as_dict() for fault in options.faults],
        'error': result.error, 'wall_time_s': round(result.wall_time_s, 2),
        'mission_wall_time_s': (None if result.mission_wall_time_s is None
                                else round(result.mission_wall_time_s, 2)),
        'process_exits': result.process_exits,
        'summary': result.summary.to_dict() if result.summary else None,
        'vetoes': [vars(v) for v in monitor.vetoes],
        'collisions': [vars(c) for c in monitor.collisions],
    }
    (result.run_dir / 'summary.json').write_text(json.dumps(data, indent=2, default=str),
                                                 encoding='utf-8')
    if options.write_report and result.summary is not None:
        from sidewalk_robot.system.report import write_run_report
        write_run_report(result.run_dir / 'report.png', monitor, result.summary, options.title,
                         (world.start_pose.x, world.start_pose.y), ground_surfaces(world))


def format_summary(result: RunResult) -> str:
    """The end-of-run summary the demo prints."""
    if result.summary is None:
        return f'run failed before the mission started: {result.error}\nlogs: {result.run_dir}/logs'
    s = result.summary
    vetoes = ', '.join(f'{reason} x{count}' for reason, count in s.vetoes_by_reason.items())
    lines = [
        f'arrived:            {"yes" if s.arrived else "NO"}'
        + ('' if s.arrived or s.final_distance_to_goal_m is None
           else f' ({s.final_distance_to_goal_m:.1f} m short)'),
        f'time:               {s.mission_time_s:.1f} s (simulated)',
        f'distance:           {s.distance_m:.1f} m',
        f'mean speed:         {s.mean_speed_mps:.2f} m/s (max {s.max_speed_mps:.2f})',
        'min clearance:      ' + ('-' if s.min_clearance_m is None else
                                  f'{s.min_clearance_m:.2f} m (to {s.min_clearance_obstacle})'),
        f'safety vetoes:      {s.vetoes}' + (f' ({vetoes})' if vetoes else ''),
        f'collisions:         {s.collisions}' + (f' ({", ".join(s.collided_with)})'
                                                 if s.collided_with else ''),
        f'hit by others:      {s.contacts_by_others}' + (
            f' ({", ".join(s.touched_by)}: contact began with the robot standing or moving away)'
            if s.touched_by else ''),
    ]
    lines += [f'note:               {note}' for note in s.notes]
    if result.error:
        lines.append(f'error:              {result.error}')
    lines.append(f'run folder:         {result.run_dir} (summary.json, report.png'
                 + (', bag/' if (result.run_dir / 'bag').exists() else '') + ', logs/)')
    lines.append(f'wall time:          {result.wall_time_s:.1f} s')
    return '\n'.join(lines)
