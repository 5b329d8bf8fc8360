"""The ``sidewalk-robot`` command: one entry point for every user-facing tool.

Each capability registers its own subcommands in its package (a ``register(subparsers)``
function in the module named below), so this file only lists them.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys

from sidewalk_robot import __version__

SUBCOMMAND_MODULES = (
    'sidewalk_robot.simulation.cli',
    'sidewalk_robot.perception.cli',
    'sidewalk_robot.replay.cli',
    'sidewalk_robot.system.cli',
    'sidewalk_robot.operations.cli',
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='sidewalk-robot',
        description='Sidewalk delivery robot: simulation, training, replay and demos.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # that capability is not part of this build
            raise
        module.register(subparsers)
    return parser


def terminate_as_interrupt() -> object:
    """SIGTERM (a CI timeout, ``kill``, systemd) unwinds like Ctrl-C: the commands' cleanup
    (stopping the simulator and the nodes they started, closing bags) runs instead of leaving
    orphan processes behind. Returns the handler it replaced."""
    def interrupt(signal_number: int, _frame) -> None:
        raise KeyboardInterrupt(f'signal {signal_number}')

    return signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if not getattr(arguments, 'handler', None):
        parser.print_help()
        return 2
    previous_handler = terminate_as_interrupt()
    try:
        return int(arguments.handler(arguments) or 0)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


if __name__ == '__main__':
    sys.exit(main())
