"""rosbag2 bags in MCAP (metadata version 9), read and written with ``rosbags``; no rclpy here.

The writer flushes a chunk to disk at a fixed interval, so a recorder killed mid-run loses at
most that interval; ``repair_bag`` rebuilds the MCAP summary and metadata.yaml of such a bag.
Every way a bag can be unusable surfaces as ``BagError`` with a sentence a person can act on;
that includes a metadata.yaml that disagrees with the MCAP files it describes (every bag opened
through ``open_reader`` is checked against them).
"""
from __future__ import annotations

import functools
import shutil
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO

import yaml
from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype, TypesysError
from rosbags.typesys.store import Typestore

if TYPE_CHECKING:
    from mcap.records import Channel as McapChannelRecord
    from mcap.records import Schema

BAG_FORMAT_VERSION = 9
ROS_DISTRO = 'kilted'
"""The distribution the stack runs on (base_typestore's): metadata.yaml's ros_distro."""
METADATA_FILE = 'metadata.yaml'
DEFAULT_FLUSH_INTERVAL_S = 1.0
_INFINITE_NS = 2**63 - 1


class BagError(Exception):
    """A bag cannot be read or written; the message says which bag and why."""


def base_typestore() -> Typestore:
    """Message definitions of ROS 2 Kilted, the distribution this stack runs on."""
    return get_typestore(Stores.ROS2_KILTED)


def qos_from_policies(*, reliable: bool, transient_local: bool, depth: int,
                      keep_all: bool = False, deadline_ns: int = _INFINITE_NS,
                      lifespan_ns: int = _INFINITE_NS,
                      liveliness_lease_ns: int = _INFINITE_NS) -> Qos:
    """A rosbags QoS record (what metadata.yaml stores as an offered QoS profile)."""
    return Qos(
        history=QosHistory.KEEP_ALL if keep_all else QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=_qos_time(deadline_ns),
        lifespan=_qos_time(lifespan_ns),
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_qos_time(liveliness_lease_ns),
        avoid_ros_namespace_conventions=False,
    )


def _qos_time(nanoseconds: int) -> QosTime:
    # rosbag2 writes an infinite duration as INT64_MAX nanoseconds split into sec / nsec.
    seconds, remainder = divmod(min(int(nanoseconds), _INFINITE_NS), 1_000_000_000)
    return QosTime(sec=seconds, nsec=remainder)


def register_message_type(store: Typestore, msgtype: str) -> None:
    """Make ``msgtype`` (``pkg/msg/Name``) known to ``store``, reading the installed .msg files.

    Types of the distribution are in the store already; others (a package built on the robot)
    are read from their package's share folder, dependencies included.
    """
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        text = _installed_message_definition(name)
        store.register(get_types_from_msg(text, name))
        try:
            store.generate_msgdef(name, ros_version=2)
        except TypesysError as error:
            missing = str(error).split("'")[1] if "'" in str(error) else ''
            if not missing or missing == name or missing in pending:
                raise BagError(f'message type {name}: {error}') from error
            pending += [name, missing]


def _installed_message_definition(msgtype: str) -> str:
    package, _, name = msgtype.split('/')
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
    except ImportError as error:
        raise BagError(f'message type {msgtype} is unknown and ament_index is not '
                       f'available to look it up') from error
    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError as error:
        raise BagError(f'message type {msgtype} is unknown: package {package!r} is not '
                       f'installed') from error
    definition = share / 'msg' / f'{name}.msg'
    if not definition.is_file():
        raise BagError(f'message type {msgtype} is unknown: {definition} does not exist')
    return definition.read_text(encoding='utf-8')


@dataclass
class _Topic:
    connection: Connection
    count: int = 0


class BagWriter:
    """Writes serialized (CDR) messages into a new rosbag2 MCAP bag.

    Thread-safe. Chunks are zstd-compressed (MCAP chunk compression, which ``ros2 bag`` reads
    natively) and flushed to disk at least every ``flush_interval_s``; ``close()`` writes the
    MCAP summary and metadata.yaml.
    """

    def __init__(self, path: str | Path, *, compress: bool = True,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        self._store = typestore or base_typestore()
        self._writer = Writer(self.path, version=BAG_FORMAT_VERSION,
                              storage_plugin=StoragePlugin.MCAP)
        if compress:
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._flush_interval_s = flush_interval_s
        self._topics: dict[str, _Topic] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._closed = False
        try:
            self._writer.open()
        except WriterError as error:
            raise BagError(f'cannot create bag {self.path}: {error}') from error

    @property
    def message_counts(self) -> dict[str, int]:
        with self._lock:
            return {topic: entry.count for topic, entry in self._topics.items()}

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[Qos] = ()) -> None:
        """Declare a topic before writing to it; raises BagError for an unknown type."""
        with self._lock:
            if self._closed:
                raise BagError(f'bag {self.path} is closed')
            if topic in self._topics:
                return
            if msgtype not in self._store.fielddefs:
                register_message_type(self._store, msgtype)
            connection = self._writer.add_connection(
                topic, msgtype, typestore=self._store, offered_qos_profiles=list(offered_qos))
            self._topics[topic] = _Topic(connection)

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        with self._lock:
            if self._closed:
                return
            entry = self._topics.get(topic)
            if entry is None:
                raise BagError(f'topic {topic} was not added to bag {self.path}')
            self._writer.write(entry.connection, int(timestamp_ns), data)
            entry.count += 1
            if time.monotonic() - self._last_flush >= self._flush_interval_s:
                self._flush_locked()

    def flush(self) -> None:
        """Push buffered messages to disk (a killed process keeps them; see repair_bag)."""
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        # rosbags buffers up to 1 MiB per chunk in memory; closing the chunk early is what
        # bounds the loss when the process dies without close(). Relies on rosbags' MCAP
        # storage (``storage.chunk``/``close_chunk``/``bio``), checked by the unit tests.
        storage = self._writer.storage
        if storage is not None:
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Finalise: MCAP summary + metadata.yaml. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            _close_naming_the_ros_distro(self._writer, self.path)


def _close_naming_the_ros_distro(writer: Writer, path: Path) -> None:
    """Close an open rosbags Writer of the bag ``path`` with ROS_DISTRO as its distribution.

    rosbags writes its own name where rosbag2 names the ROS distribution: in metadata.yaml and
    in the MCAP's copy of it, which its storage's close() writes.
    """
    storage = writer.storage
    close_storage = storage.close
    storage.close = lambda version, text: close_storage(version, _with_ros_distro(text))
    writer.close()
    metadata = path / METADATA_FILE
    metadata.write_text(_with_ros_distro(metadata.read_text(encoding='utf-8')),
                        encoding='utf-8')


def _with_ros_distro(metadata: str) -> str:
    return metadata.replace('ros_distro: rosbags', f'ros_distro: {ROS_DISTRO}')


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str
    count: int
    offered_qos: tuple[Qos, ...]


@dataclass(frozen=True)
class BagSummary:
    path: Path
    start_ns: int
    duration_ns: int
    message_count: int
    topics: dict[str, TopicSummary]


def open_reader(path: str | Path) -> Reader:
    """An open rosbags Reader, or BagError saying what is wrong with the bag."""
    path = Path(path)
    if not path.exists():
        raise BagError(f'{path}: no such bag')
    if path.is_dir() and not (path / METADATA_FILE).is_file():
        hint = (' (the recording was not finalised; rebuild it with '
                f'`sidewalk-robot record --repair {path}`)' if any(path.glob('*.mcap')) else '')
        raise BagError(f'{path}: {METADATA_FILE} is missing{hint}')
    information = _bag_information(path) if path.is_dir() else None
    if information is not None:
        _check_listed_files_exist(path, information)
    try:
        reader = Reader(path)  # refuses a file that is no bag (by its suffix) already here
        reader.open()
    except ReaderError as error:
        hint = (f' (truncated or unfinished MCAP? try `sidewalk-robot record --repair {path}`)'
                if 'magic' in str(error).lower() or 'truncated' in str(error).lower() else '')
        raise BagError(f'{path}: cannot read bag: {error}{hint}') from error
    except (OSError, ValueError, KeyError) as error:
        raise BagError(f'{path}: cannot read bag: {error}') from error
    if information is not None:
        try:
            check_metadata_against_mcap(path, information)
        except BagError:
            reader.close()
            raise
    return reader


def summarize(path: str | Path) -> BagSummary:
    reader = open_reader(path)
    try:
        topics: dict[str, TopicSummary] = {}
        for connection in reader.connections:
            previous = topics.get(connection.topic)
            count = connection.msgcount + (previous.count if previous else 0)
            qos = tuple(getattr(connection.ext, 'offered_qos_profiles', ()) or ())
            topics[connection.topic] = TopicSummary(connection.topic, connection.msgtype, count,
                                                    qos)
        return BagSummary(Path(path), reader.start_time if reader.message_count else 0,
                          reader.duration, reader.message_count, topics)
    finally:
        reader.close()


# ------------------------------------------------------------ metadata.yaml against the MCAP
# rosbags reads a bag's topics, types and counts from metadata.yaml and matches them to the MCAP
# channels by topic, type, encoding and offered QoS: a topic whose metadata disagrees on any of
# these is silently never read, and counts are reported as written. So every bag opened here is
# checked against what its MCAP files say about themselves.

@dataclass(frozen=True)
class McapChannel:
    """One channel as its MCAP file describes it, with the number of messages it holds."""
    topic: str
    schema_name: str
    schema_encoding: str
    definition: str
    message_encoding: str
    offered_qos: tuple[Qos, ...]
    count: int


@dataclass(frozen=True)
class McapContents:
    """What one MCAP file holds by its own account: summary section, else its records."""
    channels: tuple[McapChannel, ...]
    message_count: int
    start_ns: int
    end_ns: int


def read_mcap_contents(path: Path) -> McapContents:
    """Channels, message counts and time span of one MCAP file, read with the ``mcap`` library.

    Uses the summary section's statistics when the file has them and reads every record
    otherwise (an MCAP may legally come without summary or statistics).
    """
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    try:
        with path.open('rb') as stream:
            summary = make_reader(stream).get_summary()
            if (summary is not None and summary.statistics is not None
                    and len(summary.channels) == summary.statistics.channel_count):
                statistics = summary.statistics
                return McapContents(
                    _mcap_channels(summary.channels, summary.schemas,
                                   statistics.channel_message_counts),
                    statistics.message_count, statistics.message_start_time,
                    statistics.message_end_time)
            stream.seek(0)
            return _read_every_record(stream)
    except (McapError, ReaderError, yaml.YAMLError, EOFError, ValueError, OSError,
            struct.error) as error:
        raise BagError(f'{path}: cannot read MCAP: {error}') from error


def _read_every_record(stream: BinaryIO) -> McapContents:
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, Schema] = {}
    channels: dict[int, McapChannelRecord] = {}
    counts: dict[int, int] = {}
    start_ns, end_ns = _INFINITE_NS, 0
    for record in StreamReader(stream).records:
        if isinstance(record, Schema):
            schemas[record.id] = record
        elif isinstance(record, Channel):
            channels[record.id] = record
        elif isinstance(record, Message):
            counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
            start_ns = min(start_ns, record.log_time)
            end_ns = max(end_ns, record.log_time)
    total = sum(counts.values())
    return McapContents(_mcap_channels(channels, schemas, counts), total,
                        start_ns if total else 0, end_ns)


def _mcap_channels(channels: Mapping[int, McapChannelRecord], schemas: Mapping[int, Schema],
                   counts: Mapping[int, int]) -> tuple[McapChannel, ...]:
    described = []
    for channel_id, channel in sorted(channels.items()):
        schema = schemas.get(channel.schema_id)  # none: a schemaless channel
        described.append(McapChannel(
            topic=channel.topic,
            schema_name=schema.name if schema else '',
            schema_encoding=schema.encoding if schema else '',
            definition=schema.data.decode('utf-8', errors='replace') if schema else '',
            message_encoding=channel.message_encoding,
            offered_qos=tuple(parse_qos(_load_yaml(
                channel.metadata.get('offered_qos_profiles', '')) or [])),
            count=counts.get(channel_id, 0)))
    return tuple(described)


def _bag_information(bag: Path) -> dict[str, Any]:
    try:
        document = _load_yaml((bag / METADATA_FILE).read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BagError(f'{bag}: cannot read bag: {METADATA_FILE} is unreadable: '
                       f'{str(error).splitlines()[0]}') from error
    information = (document.get('rosbag2_bagfile_information')
                   if isinstance(document, dict) else None)
    if not isinstance(information, dict):
        raise BagError(f'{bag}: cannot read bag: {METADATA_FILE} has no '
                       f'rosbag2_bagfile_information')
    return information


def _load_yaml(text: str) -> Any:
    # libyaml where PyYAML has it: the pure-Python parsers take ~10 ms per QoS string.
    return yaml.load(text, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))


def _listed_files(information: dict[str, Any]) -> list[str]:
    # As rosbags reads them: by file name, inside the bag folder.
    listed = information.get('relative_file_paths')
    return [PurePath(str(name)).name for name in listed] if isinstance(listed, list) else []


def _check_listed_files_exist(bag: Path, information: dict[str, Any]) -> None:
    missing = [name for name in _listed_files(information) if not (bag / name).is_file()]
    if missing:
        raise BagError(f'{bag}: {METADATA_FILE} lists file {", ".join(missing)}, which is not '
                       f'in the bag folder{_repair_hint(bag)}')


def _repair_hint(bag: Path) -> str:
    # repair_bag rebuilds a bag from its one MCAP file; with several it cannot choose.
    if len(list(bag.glob('*.mcap'))) != 1:
        return ''
    return (f'; rebuild {METADATA_FILE} from the MCAP with '
            f'`sidewalk-robot record --repair {bag}`')


def check_metadata_against_mcap(bag: Path, information: dict[str, Any]) -> None:
    """Raise BagError naming the first way metadata.yaml (``information``, already read by
    rosbags without complaint) disagrees with the MCAP files of ``bag``."""
    storage = str(information.get('storage_identifier', ''))
    compression = str(information.get('compression_mode', '') or '').lower()
    if storage != 'mcap' or compression == 'file':
        return  # not MCAP files the mcap library can read; rosbags reads them alone
    contents = {name: read_mcap_contents(bag / name) for name in _listed_files(information)}
    try:
        mismatches = _metadata_mismatches(bag, information, contents)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BagError(f'{bag}: cannot read bag: {METADATA_FILE} is malformed: '
                       f'{type(error).__name__}: {error}') from error
    hint = _repair_hint(bag)
    if not mismatches:
        mismatches = [problem for stored in contents.values() for channel in stored.channels
                      if (problem := _definition_mismatch(channel)) is not None]
        hint = ''  # the MCAP contradicts itself: a new metadata.yaml would not help
    if mismatches:
        more = (f' (and {len(mismatches) - 1} more mismatch'
                f'{"es" if len(mismatches) > 2 else ""})' if len(mismatches) > 1 else '')
        raise BagError(f'{bag}: {mismatches[0]}{more}{hint}')


def _metadata_mismatches(bag: Path, information: dict[str, Any],
                         contents: dict[str, McapContents]) -> list[str]:
    mismatches = [f'the bag folder holds {name}, which {METADATA_FILE} does not list'
                  for name in sorted(p.name for p in bag.glob('*.mcap')) if name not in contents]
    declared: dict[str, list[dict[str, Any]]] = {}
    for entry in information['topics_with_message_count']:
        declared.setdefault(entry['topic_metadata']['name'], []).append(entry)
    stored: dict[str, list[McapChannel]] = {}
    for file_contents in contents.values():
        for channel in file_contents.channels:
            stored.setdefault(channel.topic, []).append(channel)
    for topic in sorted(declared):
        if topic in stored:
            mismatches += _topic_mismatches(topic, declared[topic], stored[topic])
        else:
            mismatches.append(f'{METADATA_FILE} lists topic {topic} that the MCAP does not '
                              f'contain')
    for topic in sorted(set(stored) - set(declared)):
        types = ' or '.join(sorted({channel.schema_name for channel in stored[topic]}))
        count = sum(channel.count for channel in stored[topic])
        mismatches.append(f'the MCAP holds topic {topic} ({types}, {count} messages) that '
                          f'{METADATA_FILE} does not list')
    total = sum(file_contents.message_count for file_contents in contents.values())
    spans = [(c.start_ns, c.end_ns) for c in contents.values() if c.message_count]
    start_ns = min((start for start, _ in spans), default=0)
    end_ns = max((end for _, end in spans), default=0)
    mismatches += _span_mismatches('in all', 'the recording', information, total, start_ns,
                                   end_ns)
    for entry in information.get('files') or []:
        name = PurePath(str(entry.get('path', ''))).name
        if name in contents:
            file_contents = contents[name]
            mismatches += _span_mismatches(f'in {name}', name, entry,
                                           file_contents.message_count,
                                           file_contents.start_ns, file_contents.end_ns)
        else:
            mismatches.append(f'{METADATA_FILE} describes file {name}, which its '
                              f'relative_file_paths do not list')
    return mismatches


def _topic_mismatches(topic: str, entries: list[dict[str, Any]],
                      channels: list[McapChannel]) -> list[str]:
    mismatches = []
    declared_types = sorted({entry['topic_metadata']['type'] for entry in entries})
    stored_types = sorted({channel.schema_name for channel in channels})
    if declared_types != stored_types:
        mismatches.append(f'{METADATA_FILE} says {topic} is {" or ".join(declared_types)} but '
                          f'the MCAP channel\'s schema is {" or ".join(stored_types)}')
    declared_formats = sorted({str(entry['topic_metadata']['serialization_format'])
                               for entry in entries})
    stored_formats = sorted({channel.message_encoding for channel in channels})
    if declared_formats != stored_formats:
        mismatches.append(f'{METADATA_FILE} says {topic} is serialized as '
                          f'{" or ".join(declared_formats)} but the MCAP channel\'s message '
                          f'encoding is {" or ".join(stored_formats)}')
    declared_qos = [tuple(parse_qos(entry['topic_metadata'].get('offered_qos_profiles') or []))
                    for entry in entries]
    stored_qos = [channel.offered_qos for channel in channels]
    if set(declared_qos) != set(stored_qos):
        mismatches.append(f'{METADATA_FILE} says {topic} was offered with '
                          f'{_qos_difference(declared_qos[0], stored_qos[0])}')
    declared_count = sum(int(entry['message_count']) for entry in entries)
    stored_count = sum(channel.count for channel in channels)
    if declared_count != stored_count:
        mismatches.append(f'{METADATA_FILE} says {declared_count} messages on {topic}, the '
                          f'MCAP holds {stored_count}')
    return mismatches


def _qos_difference(declared: tuple[Qos, ...], stored: tuple[Qos, ...]) -> str:
    if len(declared) != len(stored):
        return (f'{len(declared)} QoS profiles, the MCAP channel with {len(stored)} (rosbags '
                f'would read none of its messages)')
    for declared_profile, stored_profile in zip(declared, stored):
        for policy in Qos._fields:
            declared_value = getattr(declared_profile, policy)
            stored_value = getattr(stored_profile, policy)
            if declared_value != stored_value:
                return (f'{policy} {_policy_text(declared_value)}, the MCAP channel with '
                        f'{_policy_text(stored_value)} (rosbags would read none of its '
                        f'messages)')
    return 'other QoS profiles than the MCAP channel'


def _policy_text(value: object) -> str:
    if isinstance(value, QosTime):
        return f'{value.sec}s {value.nsec}ns'
    name = getattr(value, 'name', None)
    return name.lower() if isinstance(name, str) else str(value)


def _span_mismatches(where: str, subject: str, declared: dict[str, Any], count: int,
                     start_ns: int, end_ns: int) -> list[str]:
    mismatches = []
    declared_count = declared.get('message_count')
    if declared_count is not None and int(declared_count) != count:
        mismatches.append(f'{METADATA_FILE} says {int(declared_count)} messages {where}, the '
                          f'MCAP holds {count}')
    if not count:
        return mismatches  # no message, no time span to compare with
    declared_start = (declared.get('starting_time') or {}).get('nanoseconds_since_epoch')
    if declared_start is not None and int(declared_start) != start_ns:
        mismatches.append(f'{METADATA_FILE} says {subject} starts at '
                          f'{_seconds(int(declared_start))}, the MCAP\'s first message is at '
                          f'{_seconds(start_ns)}')
    declared_duration = (declared.get('duration') or {}).get('nanoseconds')
    if declared_duration is not None and int(declared_duration) != end_ns - start_ns:
        mismatches.append(f'{METADATA_FILE} says {subject} lasts '
                          f'{_seconds(int(declared_duration))}, the MCAP\'s messages span '
                          f'{_seconds(end_ns - start_ns)}')
    return mismatches


def _seconds(nanoseconds: int) -> str:
    # Exact: an epoch time in nanoseconds does not fit a float's 53 bits.
    sign = '-' if nanoseconds < 0 else ''
    seconds, remainder = divmod(abs(nanoseconds), 1_000_000_000)
    return f'{sign}{seconds}.{remainder:09d} s'


def _definition_mismatch(channel: McapChannel) -> str | None:
    """The channel's ros2msg definition against the distribution's type of the same name.

    Only the top-level fields are compared: they decide how the recorded bytes decode, and a
    nested type that changed between distributions is not this bag's mistake.
    """
    store = _distribution_store()
    known = store.fielddefs.get(channel.schema_name)
    if channel.schema_encoding != 'ros2msg' or not channel.definition.strip() or known is None:
        return None  # nothing to compare with: typestore_for decides whether it is usable
    try:
        parsed = get_types_from_msg(channel.definition, channel.schema_name)
    except (TypesysError, ValueError):
        return None  # what rosbags' parser cannot read proves nothing against the bag
    recorded = _field_signatures(parsed[channel.schema_name][1])
    expected = _field_signatures(known[1])
    for index in range(max(len(recorded), len(expected))):
        has = recorded[index] if index < len(recorded) else 'nothing'
        should = expected[index] if index < len(expected) else 'nothing'
        if has != should:
            return (f'the MCAP\'s definition for {channel.topic} does not match its schema '
                    f'name {channel.schema_name}: field {index + 1} is `{has}` where '
                    f'{channel.schema_name} has `{should}`')
    return None


@functools.cache
def _distribution_store() -> Typestore:
    return base_typestore()  # only read here, and building one takes about 0.2 s


def _field_signatures(fields: Sequence[tuple[str, tuple]]) -> list[str]:
    return [f'{_type_text(descriptor)} {name}' for name, descriptor in fields]


def _type_text(descriptor: tuple) -> str:
    nodetype, details = descriptor
    if nodetype == Nodetype.BASE:
        name, bound = details
        return f'{name}<={bound}' if bound else name
    if nodetype == Nodetype.NAME:
        return details
    inner, size = details
    if nodetype == Nodetype.ARRAY:
        return f'{_type_text(inner)}[{size}]'
    return f'{_type_text(inner)}[<={size}]' if size else f'{_type_text(inner)}[]'


def typestore_for(reader: Reader) -> tuple[Typestore, dict[str, str]]:
    """A typestore that can decode every connection, and the types it could not learn.

    Definitions embedded in the bag are used for types the distribution lacks, as
    ``ros2 bag play`` does; a type without one is returned as unknown (topic -> reason).
    """
    store = base_typestore()
    unknown: dict[str, str] = {}
    for connection in reader.connections:
        if connection.msgtype in store.fielddefs:
            continue
        definition = connection.msgdef.data if connection.msgdef else ''
        try:
            if not definition:
                raise BagError('the bag carries no definition for it')
            store.register(get_types_from_msg(definition, connection.msgtype))
            store.generate_msgdef(connection.msgtype, ros_version=2)
        except (BagError, TypesysError, ValueError) as error:
            unknown[connection.topic] = f'unknown message type {connection.msgtype}: {error}'
    return store, unknown


@dataclass
class RepairReport:
    path: Path
    recovered_messages: int
    recovered_topics: dict[str, int]
    dropped_tail_bytes: int
    problems: list[str] = field(default_factory=list)


def repair_bag(path: str | Path) -> RepairReport:
    """Rebuild an unfinished bag (killed recorder), or one whose metadata.yaml disagrees with
    its MCAP: keep every complete chunk, rewrite the MCAP summary and metadata.yaml. The
    original files are kept as ``*.mcap.orig`` and ``metadata.yaml.orig``.
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    bag = Path(path)
    files = sorted(bag.glob('*.mcap')) if bag.is_dir() else []
    if not files:
        raise BagError(f'{bag}: no .mcap file to repair')
    source = files[0]
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[tuple[int, int, bytes]] = []
    problems: list[str] = []
    consumed = 0
    with source.open('rb') as stream:
        reader = StreamReader(stream, validate_crcs=True)
        try:
            for record in reader.records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append((record.channel_id, record.log_time, bytes(record.data)))
                consumed = stream.tell()
        except (McapError, EOFError, ValueError, OSError, struct.error) as error:
            problems.append(f'stopped at byte {consumed}: {type(error).__name__}: {error}')
        else:
            consumed = stream.tell()  # a complete file: its closing magic is no record
        size = source.stat().st_size
    rebuilt = bag.with_name(bag.name + '.repairing')
    if rebuilt.exists():
        shutil.rmtree(rebuilt)
    writer = Writer(rebuilt, version=BAG_FORMAT_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    connections: dict[int, Connection] = {}
    counts: dict[str, int] = {}
    for channel_id, channel in sorted(channels.items()):
        schema = schemas.get(channel.schema_id)
        if schema is None:
            problems.append(f'{channel.topic}: no schema, topic dropped')
            continue
        qos = parse_qos(channel.metadata.get('offered_qos_profiles', '') or [])
        try:
            connections[channel_id] = writer.add_connection(
                channel.topic, schema.name, msgdef=schema.data.decode(),
                rihs01=channel.metadata.get('type_description_hash', '') or _hash_of(schema),
                serialization_format=channel.message_encoding, offered_qos_profiles=qos)
        except (WriterError, TypesysError) as error:
            problems.append(f'{channel.topic}: {error}')
            continue
        counts[channel.topic] = 0
    for channel_id, log_time, data in sorted(messages, key=lambda item: item[1]):
        connection = connections.get(channel_id)
        if connection is not None:
            writer.write(connection, log_time, data)
            counts[connection.topic] += 1
    _close_naming_the_ros_distro(writer, rebuilt)
    source.rename(source.with_name(source.name + '.orig'))
    (rebuilt / f'{rebuilt.name}.mcap').rename(source)
    if (bag / METADATA_FILE).exists():
        (bag / METADATA_FILE).rename(bag / f'{METADATA_FILE}.orig')
    (rebuilt / METADATA_FILE).rename(bag / METADATA_FILE)
    _fix_file_paths(bag / METADATA_FILE, rebuilt.name, source.name)
    shutil.rmtree(rebuilt)
    return RepairReport(bag, sum(counts.values()), counts, max(0, size - consumed), problems)


def _hash_of(schema) -> str:
    store = base_typestore()
    try:
        if schema.name not in store.fielddefs:
            store.register(get_types_from_msg(schema.data.decode(), schema.name))
        return store.hash_rihs01(schema.name)
    except (TypesysError, ValueError):
        return ''


def _fix_file_paths(metadata_path: Path, old_stem: str, new_name: str) -> None:
    text = metadata_path.read_text(encoding='utf-8')
    metadata_path.write_text(text.replace(f'{old_stem}.mcap', new_name), encoding='utf-8')


def iter_messages(reader: Reader, topics: Sequence[str] | None = None
                  ) -> Iterator[tuple[Connection, int, bytes]]:
    """(connection, timestamp ns, raw CDR) in time order, for ``topics`` or all."""
    connections = [c for c in reader.connections if topics is None or c.topic in topics]
    if not connections:
        return
    try:
        yield from reader.messages(connections=connections)
    except ReaderError as error:
        raise BagError(f'{reader.path}: {error}') from error
