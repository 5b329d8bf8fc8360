"""sidewalk_robot.safety_monitor"""
