"""``sidewalk-robot console-token``, ``incidents list|show|export`` and ``promote``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sidewalk_robot.operations.config import IncidentRecorderConfig, OperatorConfig
from sidewalk_robot.perception.cli import DEFAULT_DATASET


def register(subparsers: argparse._SubParsersAction) -> None:
    token = subparsers.add_parser(
        'console-token', help='make the operator console\'s access token (shown once)',
        description='Generates a random token, stores its SHA-256 hash in an owner-only file '
                    '(mode 0600) and prints the token once. operator_node demands it on every '
                    'request when it listens on anything but localhost.')
    token.add_argument('--file', default=OperatorConfig().token_file,
                       help='token file (default: the operator_node token_file parameter\'s)')
    token.add_argument('--replace', action='store_true',
                       help='replace an existing token (the old one stops working)')
    token.set_defaults(handler=run_console_token)

    incidents = subparsers.add_parser(
        'incidents', help='list, show or export recorded incidents',
        description='Incidents are written by incident_recorder_node: one folder each with an '
                    'MCAP bag of the seconds around the event and incident.json.')
    incidents.add_argument('--folder', default=IncidentRecorderConfig().folder,
                           help='incident folder (the recorder\'s folder parameter)')
    actions = incidents.add_subparsers(dest='incident_command', metavar='ACTION', required=True)
    listing = actions.add_parser('list', help='one line per incident, oldest first')
    listing.set_defaults(handler=run_incidents_list)
    show = actions.add_parser('show', help='an incident\'s incident.json and bag contents')
    show.add_argument('incident', help='incident id (folder name) or path')
    show.set_defaults(handler=run_incidents_show)
    export = actions.add_parser(
        'export', help='turn incidents\' camera frames into a perception dataset',
        description='Writes the frames in the perception dataset format (shards + card.json) '
                    'with labels from the simulator\'s ground truth when the incident has it, '
                    'else from the lidar (docs/operations.md says how, and where that falls '
                    'short). Train on it with `sidewalk-robot train --add-dataset DIR`.')
    export.add_argument('incidents', nargs='+', help='incident ids (folder names) or paths')
    export.add_argument('--output', '-o', required=True, help='dataset folder to write')
    export.add_argument('--labels', choices=('auto', 'ground_truth', 'lidar'), default='auto',
                        help='auto: ground truth when recorded, else lidar')
    export.add_argument('--split', choices=('train', 'validation', 'held_out'), default='train')
    export.add_argument('--stride', type=int, default=2,
                        help='every n-th camera frame (default 2: 5 Hz of a 10 Hz camera)')
    export.add_argument('--image-size', type=int, nargs=2, metavar=('WIDTH', 'HEIGHT'),
                        default=(160, 120), help='dataset image size (the network input)')
    export.set_defaults(handler=run_incidents_export)

    promote = subparsers.add_parser(
        'promote', help='promote a candidate perception model through the gate',
        description='Held-out metrics against the current model, a replay of every bag in '
                    'test/data and the scenario suite, each with the candidate. Any regression '
                    'refuses it. The decision goes into the candidate\'s card.json.')
    promote.add_argument('candidate', help='candidate model folder')
    promote.add_argument('--current', help='model it must not be worse than (default: '
                         'model_dir of config/perception.yaml)')
    promote.add_argument('--dataset', default=DEFAULT_DATASET,
                         help='dataset whose held-out split decides the metrics (default '
                              '%(default)s, the one train uses)')
    promote.add_argument('--bags', nargs='*', help='bags to replay (default: every bag in '
                         'test/data)')
    promote.add_argument('--quick', action='store_true',
                         help='a subset: 40 held-out frames, one bag, one scenario (tests)')
    promote.add_argument('--output', default='runs/promotion', help='folder for the reports')
    promote.set_defaults(handler=run_promote)


def _fail(message: str, status: int = 1) -> int:
    print(f'error: {message}', file=sys.stderr)
    return status


def run_console_token(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.operations.security import TokenError, create_token

    try:
        token = create_token(arguments.file, replace=arguments.replace)
    except (TokenError, OSError) as error:
        return _fail(str(error), 2)
    path = Path(arguments.file).expanduser()
    print(f'operator token (shown once; only its hash is kept in {path}, mode 0600):')
    print(token)
    return 0


def run_incidents_list(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.operations.incidents import list_incidents

    incidents = list_incidents(Path(arguments.folder).expanduser())
    if not incidents:
        print(f'no incidents in {Path(arguments.folder).expanduser()}')
        return 0
    for incident in incidents:
        print(incident.one_line())
    return 0


def run_incidents_show(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.operations.incidents import IncidentError, find_incident

    try:
        incident = find_incident(Path(arguments.folder).expanduser(), arguments.incident)
    except IncidentError as error:
        return _fail(str(error), 2)
    print(json.dumps(incident.describe(), indent=2, default=str))
    return 0


def run_incidents_export(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.operations.incident_export import ExportOptions, export_incidents
    from sidewalk_robot.operations.incidents import IncidentError, find_incident
    from sidewalk_robot.replay.bag_io import BagError

    if arguments.stride < 1:
        return _fail('--stride must be at least 1', 2)
    try:
        incidents = [find_incident(Path(arguments.folder).expanduser(), name)
                     for name in arguments.incidents]
        options = ExportOptions(labels=arguments.labels, split=arguments.split,
                                stride=arguments.stride, image_size=tuple(arguments.image_size))
        card = export_incidents(incidents, Path(arguments.output), options)
    except (IncidentError, BagError, ValueError, FileNotFoundError) as error:
        return _fail(str(error), 2)
    print(json.dumps({'dataset': arguments.output, 'frames': card['frames'],
                      'labels': card['incident_labels'],
                      'content_hash': card['content_hash']}, indent=2))
    return 0


def run_promote(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.operations.promotion import PromotionOptions, promote

    options = PromotionOptions(candidate=Path(arguments.candidate),
                               current=Path(arguments.current) if arguments.current else None,
                               dataset=Path(arguments.dataset),
                               bags=tuple(Path(b) for b in arguments.bags) if arguments.bags
                               else None,
                               quick=arguments.quick, output=Path(arguments.output))
    try:
        decision = promote(options, progress=print)
    except (ValueError, FileNotFoundError) as error:
        return _fail(str(error), 2)
    print(json.dumps(decision, indent=2, default=str))
    return 0 if decision['decision'] == 'promoted' else 1
