"""rosbag2 bags in MCAP (metadata version 9), read and written with ``rosbags``; no rclpy here.

The writer flushes a chunk to disk at a fixed interval, so a recorder killed mid-run loses at
most that interval; ``repair_bag`` rebuilds the MCAP summary and metadata.yaml of such a bag.
Every way a bag can be unusable surfaces as ``BagError`` with a sentence a person can act on.
"""
from __future__ import annotations

import shutil
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import (Connection, Qos, QosDurability, QosHistory, QosLiveliness,
                                QosReliability, QosTime)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import TypesysError
from rosbags.typesys.store import Typestore

BAG_FORMAT_VERSION = 9
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
            self._writer.close()


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
    try:
        reader = Reader(path)  # refuses a file that is no bag (by its suffix) already here
        reader.open()
    except ReaderError as error:
        hint = (f' (truncated or unfinished MCAP? try `sidewalk-robot record --repair {path}`)'
                if 'magic' in str(error).lower() or 'truncated' in str(error).lower() else '')
        raise BagError(f'{path}: cannot read bag: {error}{hint}') from error
    except (OSError, ValueError, KeyError) as error:
        raise BagError(f'{path}: cannot read bag: {error}') from error
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
    """Rebuild an unfinished bag (killed recorder): keep every complete chunk, rewrite the MCAP
    summary and metadata.yaml. The original file is kept as ``*.mcap.orig``.
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
    writer.close()
    source.rename(source.with_name(source.name + '.orig'))
    (rebuilt / f'{rebuilt.name}.mcap').rename(source)
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
