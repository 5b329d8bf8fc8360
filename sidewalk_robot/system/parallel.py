"""Many independent runs side by side: in this process, in local worker processes, or as Ray tasks.

A run is a function ``execute(task, output_root) -> result``: the task carries everything the
run needs (a scenario file's content and the run options, or a bag), the run writes its folder
under ``output_root`` and returns a picklable result. Where it runs does not change what it
computes, so the same function serves ``--workers N`` (one fresh process per run, each claiming
its own ROS domain through ``ros_env``) and ``--ray ADDRESS`` (one Ray task per run).

On Ray, a run folder either travels back with the result (the task runs in a scratch folder on
its node and returns every file in it; the driver writes them under ``output_root``), or, with
``shared_storage``, the runs write straight into ``output_root``, which must then be the same
path on every node (a network file system).

Results come back in the order of the tasks, whatever order the runs finish in.
"""
from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.process
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

TaskT = TypeVar('TaskT')
ResultT = TypeVar('ResultT')

RAY_INSTALL_HINT = ('--ray needs Ray, an optional dependency: pip install -r requirements-ray.txt '
                    '(or pip install -e ".[ray]")')
STOP_GRACE_S = 30.0
"""Wall seconds a stopped worker gets to stop its nodes and close its bag before SIGKILL."""


class ParallelError(RuntimeError):
    """Parallel or distributed runs cannot be started (Ray missing, cluster unreachable)."""


@dataclass(frozen=True)
class Parallelism:
    workers: int = 1
    """Runs at the same time on this machine (1: one after the other, in this process)."""
    ray_address: str | None = None
    """A Ray cluster's address, 'auto' (the cluster this machine belongs to) or 'local' (a new
    Ray instance on this machine); None: no Ray."""
    cpus_per_run: float = 2.0
    """Ray CPUs each run reserves: the simulator and three nodes keep about two cores busy."""
    retries: int = 2
    """Times Ray starts a run again when its worker or node dies (not when the run fails)."""
    shared_storage: bool = False
    """On Ray: the output folder is the same path on every node; runs write there directly."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f'workers must be at least 1, got {self.workers}')
        if self.cpus_per_run <= 0:
            raise ValueError(f'CPUs per run must be positive, got {self.cpus_per_run}')
        if self.retries < 0:
            raise ValueError(f'retries must be 0 or more, got {self.retries}')

    @property
    def in_process(self) -> bool:
        return self.ray_address is None and self.workers == 1

    def describe(self) -> str:
        if self.ray_address is not None:
            storage = 'shared storage' if self.shared_storage else 'run folders sent back'
            return (f'Ray at {self.ray_address} ({self.cpus_per_run:g} CPUs per run, '
                    f'{self.retries} retries, {storage})')
        if self.workers > 1:
            return f'{self.workers} local worker processes'
        return 'one run at a time'


# ----------------------------------------------------------------------------- the runs' side

def prepare_run_process() -> None:
    """For a process that runs tasks (a local worker, a Ray worker): each run claims a ROS
    domain of its own (a ROS_DOMAIN_ID inherited from the driver would put every run in the
    same one); SIGTERM unwinds like Ctrl-C, so a stopped run stops its nodes; the driver alone
    decides about Ctrl-C."""
    from sidewalk_robot.ros_env import CLAIM_VARIABLE

    os.environ.pop('ROS_DOMAIN_ID', None)
    os.environ.pop(CLAIM_VARIABLE, None)
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _run_packed(execute: Callable[[TaskT, Path], ResultT], task: TaskT
                ) -> tuple[ResultT, str, dict[str, bytes]]:
    """Run in a scratch folder and return the result, that folder and every file in it."""
    prepare_run_process()
    with tempfile.TemporaryDirectory(prefix='sidewalk-robot-run-') as scratch:
        result = execute(task, Path(scratch))
        files = {path.relative_to(scratch).as_posix(): path.read_bytes()
                 for path in sorted(Path(scratch).rglob('*')) if path.is_file()}
    return result, scratch, files


def _run_in_place(execute: Callable[[TaskT, Path], ResultT], task: TaskT,
                  output_root: str) -> ResultT:
    prepare_run_process()
    return execute(task, Path(output_root))


# ----------------------------------------------------------------------------- the driver

def run_tasks(execute: Callable[[TaskT, Path], ResultT], tasks: Sequence[TaskT],
              output_root: Path, parallelism: Parallelism, *,
              failed: Callable[[TaskT, str], ResultT],
              relocate: Callable[[ResultT, Path, Path], ResultT],
              done_line: Callable[[int, ResultT], str],
              start_line: Callable[[int, TaskT], str] | None = None,
              on_done: Callable[[int, ResultT], None] | None = None) -> list[ResultT]:
    """Every task's result, in the order of ``tasks``.

    ``execute`` must be a module-level function (it is sent to other processes by name).
    ``failed(task, why)`` stands in for a run whose process or node died for good;
    ``relocate(result, scratch, output_root)`` rewrites the paths of a result whose folder
    travelled back from a Ray node; ``on_done(index, result)`` is called as each run finishes
    (a sweep saves it at once, so an interrupted sweep keeps what it has);
    ``done_line``/``start_line`` are what is printed then (start lines only one at a time).
    """
    output_root.mkdir(parents=True, exist_ok=True)
    results: dict[int, ResultT] = {}

    def finish(index: int, result: ResultT, write: Callable[[str], None]) -> None:
        results[index] = result
        if on_done is not None:
            on_done(index, result)
        write(done_line(index, result))

    if parallelism.in_process:
        for index, task in enumerate(tasks):
            if start_line is not None:
                print(start_line(index, task), flush=True)
            finish(index, execute(task, output_root), lambda text: print(text, flush=True))
    else:
        _warn_about_user_domain()
        if parallelism.ray_address is not None:
            _run_on_ray(execute, tasks, output_root, parallelism, failed, relocate, finish)
        else:
            _run_on_workers(execute, tasks, output_root, parallelism.workers, failed, finish)
    return [results[index] for index in range(len(tasks))]


def _warn_about_user_domain() -> None:
    from sidewalk_robot.ros_env import user_domain_id

    chosen = user_domain_id(os.environ)
    if chosen is not None:
        print(f'note: ROS_DOMAIN_ID={chosen} is not used for parallel runs: each run claims '
              f'a domain of its own', file=sys.stderr)


def _progress_bar(total: int, where: str) -> tqdm:
    from tqdm import tqdm

    return tqdm(total=total, desc=f'runs ({where})', unit='run', dynamic_ncols=True)


def _worker_main(sender: Connection, execute: Callable[[TaskT, Path], ResultT], task: TaskT,
                 output_root: Path) -> None:
    """A local worker process: one run, its result (or why there is none) sent back."""
    prepare_run_process()
    try:
        sender.send(('result', execute(task, output_root)))
    except BaseException as error:  # also an interruption: the driver learns what happened
        sender.send(('error', f'{type(error).__name__}: {error}'))
    finally:
        sender.close()


@dataclass
class _Running:
    index: int
    process: multiprocessing.process.BaseProcess
    receiver: Connection


def _run_on_workers(execute: Callable[[TaskT, Path], ResultT], tasks: Sequence[TaskT],
                    output_root: Path, workers: int,
                    failed: Callable[[TaskT, str], ResultT],
                    finish: Callable[[int, ResultT, Callable[[str], None]], None]) -> None:
    """One fresh process per run, at most ``workers`` at a time: a run that crashes its
    process loses that run alone, and each starts from a clean interpreter, as a lone run
    does. Spawned, not forked: a fork would copy this process's threads and DDS state."""
    context = multiprocessing.get_context('spawn')
    waiting = list(enumerate(tasks))
    running: dict[Connection, _Running] = {}
    bar = _progress_bar(len(tasks), f'{workers} workers')
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                index, task = waiting.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_worker_main, name=f'sidewalk-robot-run-{index}',
                                          args=(sender, execute, task, output_root))
                process.start()
                sender.close()  # the child holds the only sending end: EOF when it is gone
                running[receiver] = _Running(index, process, receiver)
            # Wait on the pipes, not the processes: a big result must be read for its sender
            # to finish, and a pipe is also ready (EOF) when its process died.
            for receiver in wait(list(running)):
                entry = running.pop(receiver)
                try:
                    kind, payload = receiver.recv()
                except EOFError:
                    kind, payload = 'error', 'the worker process died without a result'
                receiver.close()
                entry.process.join()
                if kind != 'result':
                    payload = failed(tasks[entry.index], f'worker process failed: {payload} '
                                                         f'(exit status {entry.process.exitcode})')
                finish(entry.index, payload, bar.write)
                bar.update()
    except BaseException:
        _stop_workers([entry.process for entry in running.values()])
        raise
    finally:
        bar.close()


def _stop_workers(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """Ask running workers to stop their runs (SIGTERM unwinds them), then insist."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ParallelError(RAY_INSTALL_HINT) from None
    return ray


def _connect_ray(ray: Any, address: str) -> None:
    options: dict[str, Any] = {'address': address, 'log_to_driver': False}
    if address == 'local':
        options['include_dashboard'] = False
    try:
        ray.init(**options)
    except ConnectionError as error:
        raise ParallelError(f'cannot reach a Ray cluster at {address!r}: {error}') from error


def _run_on_ray(execute: Callable[[TaskT, Path], ResultT], tasks: Sequence[TaskT],
                output_root: Path, parallelism: Parallelism,
                failed: Callable[[TaskT, str], ResultT],
                relocate: Callable[[ResultT, Path, Path], ResultT],
                finish: Callable[[int, ResultT, Callable[[str], None]], None]) -> None:
    ray = import_ray()
    connected_here = not ray.is_initialized()
    if connected_here:
        _connect_ray(ray, parallelism.ray_address)
    options = {'num_cpus': parallelism.cpus_per_run, 'max_retries': parallelism.retries}
    try:
        if parallelism.shared_storage:
            remote = ray.remote(_run_in_place).options(**options)
            references = [remote.remote(execute, task, str(output_root.resolve()))
                          for task in tasks]
        else:
            remote = ray.remote(_run_packed).options(**options)
            references = [remote.remote(execute, task) for task in tasks]
        indices = {reference: index for index, reference in enumerate(references)}
        pending = list(references)
        bar = _progress_bar(len(tasks), 'Ray')
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                index = indices[ready[0]]
                try:
                    returned = ray.get(ready[0])
                except Exception as error:  # retries used up: that run alone is lost
                    result = failed(tasks[index], f'Ray task failed: {error}')
                else:
                    result = (returned if parallelism.shared_storage
                              else _unpack(returned, output_root, relocate))
                finish(index, result, bar.write)
                bar.update()
        except BaseException:
            # Cancelling interrupts each run like Ctrl-C; let them stop their nodes before the
            # instance (when it is ours) goes down with its workers.
            for reference in pending:
                ray.cancel(reference)
            if pending:
                ray.wait(pending, num_returns=len(pending), timeout=STOP_GRACE_S)
            raise
        finally:
            bar.close()
    finally:
        if connected_here:
            ray.shutdown()


def _unpack(returned: tuple[ResultT, str, dict[str, bytes]], output_root: Path,
            relocate: Callable[[ResultT, Path, Path], ResultT]) -> ResultT:
    result, scratch, files = returned
    for relative, content in files.items():
        destination = output_root / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    return relocate(result, Path(scratch), output_root)


def relocated_path(path: Path | str, scratch: Path, output_root: Path) -> Path:
    """``path`` below ``scratch`` (on a Ray node) as the same path below ``output_root``."""
    try:
        return output_root / Path(path).relative_to(scratch)
    except ValueError:
        return Path(path)


# ----------------------------------------------------------------------------- command lines

def add_parallel_arguments(parser: argparse.ArgumentParser, runs: str) -> None:
    """--workers, --ray, --ray-cpus-per-run, --ray-retries, --shared-storage."""
    group = parser.add_argument_group(
        'parallel and distributed runs',
        f'Run {runs} side by side; the report is the same, in the same order.')
    group.add_argument('--workers', type=int, default=1, metavar='N',
                       help=f'{runs} at the same time on this machine, each in its own process '
                            'and ROS domain (default 1)')
    group.add_argument('--ray', metavar='ADDRESS',
                       help='send each run to a Ray cluster as a task: its address '
                            '(host:6379, ray://host:10001), auto (the cluster this machine is '
                            'part of) or local (start a Ray instance here); needs '
                            'requirements-ray.txt')
    group.add_argument('--ray-cpus-per-run', type=float, default=Parallelism.cpus_per_run,
                       metavar='CPUS', help='Ray CPUs each run reserves (default %(default)s)')
    group.add_argument('--ray-retries', type=int, default=Parallelism.retries, metavar='N',
                       help='times Ray restarts a run whose worker or node died '
                            '(default %(default)s)')
    group.add_argument('--shared-storage', action='store_true',
                       help='with --ray: the output folder is the same path on every node '
                            '(NFS); runs write there instead of sending their folders back')


def parallelism_from(arguments: argparse.Namespace) -> Parallelism:
    """The options of ``add_parallel_arguments``; ValueError / ParallelError say what is wrong."""
    if arguments.ray is not None and arguments.workers != 1:
        raise ValueError('--workers and --ray exclude each other (Ray schedules by '
                         '--ray-cpus-per-run)')
    if arguments.shared_storage and arguments.ray is None:
        raise ValueError('--shared-storage applies to --ray runs only')
    if arguments.ray is not None:
        import_ray()
    return Parallelism(workers=arguments.workers, ray_address=arguments.ray,
                       cpus_per_run=arguments.ray_cpus_per_run, retries=arguments.ray_retries,
                       shared_storage=arguments.shared_storage)
