"""Semantic classes shared by the simulator, perception training data and evaluation.

A world marks each static model's class with the namespaced custom SDF element
``<sr:semantic>`` (namespace declared on the ``<sdf>`` root as
``xmlns:sr="https://github.com/sidewalk-robot/sdf"``). libsdformat and Gazebo accept
namespaced custom elements and ignore them; our reader uses them. Actors are always pedestrians.
"""
from __future__ import annotations

import enum

SDF_NAMESPACE = 'https://github.com/sidewalk-robot/sdf'
SDF_NAMESPACE_PREFIX = 'sr'


class SemanticClass(enum.IntEnum):
    SIDEWALK = 0
    """Drivable walkway surface."""
    NOT_DRIVABLE = 1
    """Road, grass, curb, crosswalk outside the sidewalk: ground the robot must not drive on."""
    OBSTACLE = 2
    """Static things standing up: poles, bins, benches, hedges, scooters, barriers, walls."""
    PEDESTRIAN = 3
    """People (SDF actors, scenario walkers)."""
    BACKGROUND = 4
    """Sky and anything beyond the camera's far plane."""

    @property
    def label(self) -> str:
        """Lower-case name used in SDF, YAML and marker namespaces (``not_drivable``)."""
        return self.name.lower()

    @property
    def is_ground(self) -> bool:
        """Flat surfaces the robot rolls over (never contacts nor lidar returns)."""
        return self in (SemanticClass.SIDEWALK, SemanticClass.NOT_DRIVABLE)

    @classmethod
    def parse(cls, text: str) -> SemanticClass:
        """``'obstacle'``, ``'OBSTACLE'``, ``'not-drivable'`` or ``'2'`` -> the class."""
        key = text.strip().upper().replace('-', '_').replace(' ', '_')
        if key.isdigit() and int(key) in cls._value2member_map_:
            return cls(int(key))
        aliases = {'ROAD': cls.NOT_DRIVABLE, 'GRASS': cls.NOT_DRIVABLE, 'CURB': cls.NOT_DRIVABLE,
                   'SKY': cls.BACKGROUND}
        if key in cls.__members__:
            return cls[key]
        if key in aliases:
            return aliases[key]
        raise ValueError(f'unknown semantic class {text!r} '
                         f'(expected one of {", ".join(c.label for c in cls)})')


PALETTE: dict[SemanticClass, tuple[int, int, int]] = {
    SemanticClass.SIDEWALK: (170, 170, 170),
    SemanticClass.NOT_DRIVABLE: (120, 60, 20),
    SemanticClass.OBSTACLE: (230, 40, 40),
    SemanticClass.PEDESTRIAN: (250, 200, 0),
    SemanticClass.BACKGROUND: (40, 80, 160),
}
"""Display colours for semantic masks (docs, debugging images)."""
