"""Replays in lockstep (lockstep.py): one stack of node processes for a batch of bags.

The nodes start once; each further bag is a new lockstep episode (time jumps to the bag's
start, every node resets its state), so a batch pays the start-up (perception loading its
model, DDS discovery) once. A node that cannot reset (no ``reset_for_new_episode``), or one
that died, gets a fresh stack for the next bag instead.

The nodes' outputs are recorded by the player's own node at the simulated time they take
effect (their release time), not when they happen to arrive, so ``outputs/`` and everything
evaluated from it is the same on every run.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from sidewalk_robot.lockstep import DECLARED_LATENCY_S, compute_statistics
from sidewalk_robot.replay.bag_io import BagWriter
from sidewalk_robot.replay.samples import message_class

OUTPUT_TYPES = {
    '/perception/obstacle_grid': 'nav_msgs/msg/OccupancyGrid',
    '/perception/pedestrian_grid': 'nav_msgs/msg/OccupancyGrid',
    '/cmd_vel_nav': 'geometry_msgs/msg/TwistStamped',
    '/cmd_vel': 'geometry_msgs/msg/TwistStamped',
    '/safety/state': 'diagnostic_msgs/msg/DiagnosticStatus',
    '/planning/path': 'nav_msgs/msg/Path',
    '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
}
"""What a replay records of the nodes (runner.OUTPUT_TOPICS), with its types."""


def declared_latencies(overrides: Mapping[str, float]) -> dict[str, float]:
    """Each node's declared lockstep latency: its budget, unless the run says otherwise."""
    unknown = sorted(set(overrides) - set(DECLARED_LATENCY_S))
    if unknown:
        raise ValueError(f'no node named {", ".join(unknown)} (nodes: '
                         f'{", ".join(sorted(DECLARED_LATENCY_S))})')
    return {**DECLARED_LATENCY_S, **overrides}


class OutputObserver:
    """Writes the nodes' outputs into a bag at their release times, one bag per episode."""

    def __init__(self, owner, topics: Sequence[str]) -> None:
        self._writer: BagWriter | None = None
        self._lock = threading.Lock()
        self.topics = [topic for topic in topics if topic in OUTPUT_TYPES]
        for topic in self.topics:
            owner.subscription(message_class(OUTPUT_TYPES[topic]), topic,
                               lambda data, release_ns, topic=topic:
                               self._write(topic, data, release_ns), raw=True)

    def begin(self, bag_dir: Path) -> None:
        writer = BagWriter(bag_dir)
        for topic in self.topics:
            writer.add_topic(topic, OUTPUT_TYPES[topic])
        with self._lock:
            self._writer = writer

    def _write(self, topic: str, data: bytes, release_ns: int) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.write(topic, release_ns, data)

    def end(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


class LockstepSession:
    """The player's node, the stack and the lockstep owner for a batch of bags."""

    def __init__(self, context, nodes, options, played: Mapping[str, tuple[str, object]],
                 log_dir: Path, environment: dict[str, str], output_topics: Sequence[str]
                 ) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from sidewalk_robot.lockstep_ros import LockstepOwner, lockstep_parameters
        from sidewalk_robot.replay.player import BagPlayer
        from sidewalk_robot.replay.runner import Stack

        self.options = options
        self.played = played
        self.latencies = declared_latencies(dict(options.latencies))
        self.node = Node('replay', context=context)
        self.owner = LockstepOwner(self.node, [node.name for node in nodes],
                                   options.clock_period_s)
        self.player = BagPlayer(self.node, played, clock_period_s=options.clock_period_s,
                                lockstep=self.owner)
        self.observer = OutputObserver(self.owner, output_topics)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinner.start()
        self.episodes = 0
        self.left: set[str] = set()
        parameters = {node.name: lockstep_parameters(self.latencies[node.name],
                                                     options.measured_latency)
                      for node in nodes}
        self.stack = Stack(nodes, options, log_dir, environment, extra_parameters=parameters)

    def start(self) -> None:
        """Wait until every node is up and connected (LockstepError with the reason)."""
        self.owner.wait_until_ready(self.options.startup_timeout_s, dead=self._dead_message)

    def _dead_message(self) -> str | None:
        dead = self.stack.dead()
        if not dead:
            return None
        name, code = next(iter(dead.items()))
        return f'{name} exited with status {code} while starting:\n{self.stack.log_tail(name)}'

    def departed(self) -> list[str]:
        """Nodes whose process is gone (waited for no more); the evaluation reports them."""
        gone = [name for name in self.stack.dead() if name not in self.left]
        self.left.update(gone)
        return gone

    def reusable(self) -> bool:
        """Whether the next bag can run on these processes (a new episode)."""
        return not self.stack.dead() and self.owner.coordinator.all_resettable()

    def play(self, messages, outputs_dir: Path, stop: threading.Event | None = None):
        """One bag: the player starts a new lockstep episode on these nodes."""
        self.episodes += 1
        start = len(self.owner.coordinator.samples)
        self.observer.begin(outputs_dir)
        try:
            log = self.player.play_lockstep(messages, tail_s=self.options.tail_s,
                                            timeout_s=self.options.lockstep_timeout_s,
                                            stop=stop, departed=self.departed)
        finally:
            self.observer.end()
        samples = self.owner.coordinator.samples[start:]
        return log, samples, compute_statistics(samples, self.latencies)

    def close(self) -> dict[str, int]:
        """Stop the nodes; exit codes of those that had died before."""
        try:
            return self.stack.stop()
        finally:
            self._executor.shutdown()
            self._spinner.join(timeout=5.0)
            self.node.destroy_node()


def log_marks(log_dir: Path, names: Sequence[str]) -> dict[str, int]:
    """Where each node's log ends now, to cut out one bag's part later."""
    return {name: _size(log_dir / f'{name}.log') for name in names}


def copy_log_parts(log_dir: Path, marks: Mapping[str, int], target: Path) -> None:
    """Each node's log from its mark on, into ``target`` (a bag's evidence)."""
    target.mkdir(parents=True, exist_ok=True)
    for name, offset in marks.items():
        source = log_dir / f'{name}.log'
        if not source.exists():
            continue
        with source.open('rb') as stream:
            stream.seek(offset)
            (target / f'{name}.log').write_bytes(stream.read())


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
