"""The safety monitor's core stands alone: no learning, vision, ROS, perception or planning code."""
from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN_PREFIXES = ('torch', 'torchvision', 'cv2', 'rclpy', 'sidewalk_robot.perception',
                      'sidewalk_robot.planning', 'perception', 'planning')


def test_importing_the_core_loads_no_forbidden_module() -> None:
    probe = ('import json, sys\n'
             'import sidewalk_robot.safety_monitor\n'
             'from sidewalk_robot.safety_monitor import monitor, rules, geometry, estop, inputs\n'
             'print(json.dumps(sorted(sys.modules)))\n')
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                            timeout=60, check=True)
    loaded = json.loads(result.stdout)
    assert 'sidewalk_robot.safety_monitor.monitor' in loaded
    offending = [name for name in loaded
                 if any(name == prefix or name.startswith(prefix + '.')
                        for prefix in FORBIDDEN_PREFIXES)]
    assert not offending, f'the safety core pulled in {offending}'
