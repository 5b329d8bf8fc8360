"""sidewalk_robot.simulation"""
