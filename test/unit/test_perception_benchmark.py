"""benchmarks/perception.py --record: the latency figures land in the model card."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from sidewalk_robot.perception.model_io import read_card

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_record_writes_latency_into_the_card_and_keeps_the_rest(tmp_path: Path) -> None:
    model = tmp_path / 'model'
    shutil.copytree(REPO_ROOT / 'models' / 'sidewalk_seg_v5', model)
    before = read_card(model)
    before['metrics'].pop('latency', None)
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'benchmarks' / 'perception.py'), '--model', str(model),
         '--iterations', '5', '--no-baseline', '--record'], capture_output=True, text=True,
        timeout=300)
    assert completed.returncode == 0, completed.stderr
    card = read_card(model)
    latency = card['metrics'].pop('latency')
    assert card == before
    assert latency['iterations'] == 5 and latency['threads'] >= 1
    assert latency['backend'] == 'onnxruntime'  # the node's default, with the shipped export
    assert 0 < latency['median_ms'] <= latency['p90_ms'] <= latency['p99_ms'] <= latency['max_ms']
    assert set(latency['stages_median_ms']) == {'resize', 'network', 'upsample_projection'}
    assert len(latency['load_average_1min']) == 2
    assert f'median {latency["median_ms"]:6.2f} ms' in completed.stdout
