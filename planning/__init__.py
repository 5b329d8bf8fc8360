"""sidewalk_robot.planning"""
