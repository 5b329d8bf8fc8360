"""A scenario run's summary for report tests: a clean delivery unless told otherwise."""
from __future__ import annotations

from sidewalk_robot.system.metrics import RunSummary


def delivered_summary(mission_s: float, **changes: object) -> RunSummary:
    """A run that arrived after ``mission_s`` seconds and as many metres at 1 m/s, with no
    veto, limit or contact; ``changes`` override any field."""
    values = dict(arrived=True, time_to_goal_s=mission_s, mission_time_s=mission_s,
                  distance_m=mission_s, mean_speed_mps=1.0, max_speed_mps=1.2,
                  min_clearance_m=0.4, min_clearance_obstacle='pole',
                  final_distance_to_goal_m=0.3, vetoes=0, vetoes_by_reason={},
                  vetoes_per_100m=0.0, limits=0, limits_by_reason={}, collisions=0,
                  collided_with=[], contacts_by_others=0, touched_by=[])
    values.update(changes)
    return RunSummary(**values)
