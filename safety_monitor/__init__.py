"""sidewalk_robot.safety_monitor: the independent, rule-based gate between planner and drive.

The core (config, inputs, geometry, rules, approach, estop, monitor) imports neither rclpy nor
the learned perception, the planner, torch or OpenCV; safety_monitor_node.py is the thin ROS
wrapper.
"""
from sidewalk_robot.safety_monitor.config import SafetyConfig
from sidewalk_robot.safety_monitor.inputs import LaserScanData, OdometrySample, VelocityCommand
from sidewalk_robot.safety_monitor.monitor import Decision, Reason, SafetyMonitor, State

__all__ = ['Decision', 'LaserScanData', 'OdometrySample', 'Reason', 'SafetyConfig',
           'SafetyMonitor', 'State', 'VelocityCommand']
