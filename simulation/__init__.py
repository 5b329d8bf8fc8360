"""Headless simulation of the worlds in worlds/ (see docs/simulation.md).

- ``world``: load_world / available_worlds / world_path; World, StaticBody, Actor, Pose2D
- ``robot``: the robot model's body, sensors and drive limits from model.sdf
- ``headless``: HeadlessSimulator (PyBullet DIRECT, CPU camera, ray-cast lidar, kinematic drive)
- ``scenario``: YAML overlays with extra obstacles and walkers
- ``randomization``: seeded domain randomisation for training data
- ``semantics``: SemanticClass, shared with perception
- ``sim_node``: the ROS node; ``cli``: ``sidewalk-robot worlds`` and ``sidewalk-robot sim``
"""
