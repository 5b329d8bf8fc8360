"""Every DDS socket our processes open stays on loopback."""
from __future__ import annotations

import os
import socket
import struct
import sys
import time
from pathlib import Path

from sidewalk_robot.ros_env import loopback_environment

HELPER = Path(__file__).resolve().parent.parent / 'helpers' / 'dds_peer.py'


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f'/proc/{pid}/fd').iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[len('socket:['):-1])
    return inodes


def _decode_ipv4(hex_address: str) -> str:
    return socket.inet_ntoa(struct.pack('<I', int(hex_address, 16)))


def _decode_ipv6(hex_address: str) -> str:
    raw = b''.join(struct.pack('<I', int(hex_address[i:i + 8], 16)) for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, raw)


def udp_local_addresses(pid: int) -> list[tuple[str, int]]:
    """(local address, port) of every UDP socket (IPv4 and IPv6) the process holds."""
    inodes = _socket_inodes(pid)
    addresses = []
    for table, decode in (('udp', _decode_ipv4), ('udp6', _decode_ipv6)):
        for line in Path(f'/proc/{pid}/net/{table}').read_text().splitlines()[1:]:
            columns = line.split()
            if columns[9] in inodes:
                address, port = columns[1].split(':')
                addresses.append((decode(address), int(port, 16)))
    return addresses


def test_two_processes_exchange_messages_over_loopback_only(ros_process) -> None:
    environment = loopback_environment()
    topic = f'/loopback_probe_{os.getpid()}'
    talker = ros_process('talker', command=[sys.executable, str(HELPER), 'talk', topic],
                         env=environment)
    listener = ros_process('listener', command=[sys.executable, str(HELPER), 'listen', topic, '5'],
                           env=environment)
    deadline = time.monotonic() + 20.0
    while 'done' not in listener.output() and time.monotonic() < deadline:
        assert talker.alive() and listener.alive(), listener.output() + talker.output()
        time.sleep(0.1)
    assert 'done' in listener.output(), f'no messages crossed:\n{listener.output()}'

    for process in (talker, listener):
        addresses = udp_local_addresses(process.popen.pid)
        assert addresses, f'{process.name} opened no UDP socket: is DDS running at all?'
        off_loopback = [a for a in addresses if a[0] not in ('127.0.0.1', '::1')]
        assert not off_loopback, f'{process.name} has UDP sockets off loopback: {off_loopback}'
