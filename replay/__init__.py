"""sidewalk_robot.replay"""
