"""sidewalk_robot.perception"""
