"""tf2_msgs, which `make install` generates (no wheel carries it), is the distribution's own
message: its type hash, which DDS peers and bag readers compare, is Kilted's."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from rosbags.typesys import Stores, get_typestore

GENERATED = Path(sys.prefix) / 'share' / 'tf2_msgs' / 'msg' / 'TFMessage.json'


def test_the_generated_tf_message_has_the_type_hashes_of_kilted() -> None:
    assert GENERATED.is_file(), f'{GENERATED} missing: run make install'
    hashes = {entry['type_name']: entry['hash_string']
              for entry in json.loads(GENERATED.read_text(encoding='utf-8'))['type_hashes']}
    kilted = get_typestore(Stores.ROS2_KILTED)
    assert 'tf2_msgs/msg/TFMessage' in hashes
    for type_name, hash_string in hashes.items():
        assert hash_string == kilted.hash_rihs01(type_name), type_name
