"""report.png of one run: top-down map (obstacles, trajectory, veto points) and speed profile."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use('Agg')  # headless: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Circle, Polygon  # noqa: E402

from sidewalk_robot.system.metrics import (ROBOT_HEIGHT_M, Obstacle, RunMonitor,  # noqa: E402
                                           RunSummary)

CLASS_COLORS = {'sidewalk': '#d9d9d9', 'not_drivable': '#c9a27e', 'obstacle': '#d62728',
                'pedestrian': '#f2b400'}
GROUND_CLASSES = ('sidewalk', 'not_drivable')


def _patch(obstacle: Obstacle, **style):
    if obstacle.radius is not None:
        return Circle((obstacle.x, obstacle.y), obstacle.radius, **style)
    return Polygon(obstacle.corners(), closed=True, **style)


def _draw_map(axes, monitor: RunMonitor, start_xy: tuple[float, float] | None,
              ground: Sequence[Obstacle]) -> None:
    for surface in ground:
        axes.add_patch(_patch(surface, facecolor=CLASS_COLORS.get(surface.semantic, '#7f7f7f'),
                              edgecolor='none', alpha=0.6, zorder=1))
    for obstacle in monitor.obstacles.values():
        overhead = obstacle.bottom_z >= ROBOT_HEIGHT_M
        axes.add_patch(_patch(obstacle, facecolor=CLASS_COLORS.get(obstacle.semantic, '#7f7f7f'),
                              edgecolor='black', linewidth=0.5, alpha=0.25 if overhead else 0.9,
                              zorder=2 if overhead else 3))
    for track in monitor.obstacle_history.values():
        path = np.array(track)
        axes.plot(path[:, 0], path[:, 1], ':', color=CLASS_COLORS['pedestrian'], linewidth=1,
                  zorder=2)
    if len(monitor.poses) >= 2:
        xy = np.array([[p.x, p.y] for p in monitor.poses])
        times = np.array([p.time for p in monitor.poses])
        step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        speed = step / np.maximum(np.diff(times), 1e-3)
        segments = np.stack([xy[:-1], xy[1:]], axis=1)
        line = LineCollection(segments, cmap='viridis', linewidths=2.5, zorder=4,
                              norm=plt.Normalize(0.0, 1.6))
        line.set_array(speed)
        axes.add_collection(line)
        plt.colorbar(line, ax=axes, label='speed [m/s]', fraction=0.025, pad=0.01)
    if start_xy is not None:
        axes.plot(*start_xy, 'o', color='#1f77b4', markersize=9, label='start', zorder=5)
    axes.plot(*monitor.goal_xy, '*', color='#2ca02c', markersize=16, label='goal', zorder=5)
    axes.add_patch(Circle(monitor.goal_xy, monitor.goal_tolerance_m, fill=False,
                          edgecolor='#2ca02c', linestyle='--', zorder=5))
    reasons = sorted({veto.reason for veto in monitor.vetoes})
    markers = 'XPDvs^<>'
    for index, reason in enumerate(reasons):
        points = np.array([[v.x, v.y] for v in monitor.vetoes if v.reason == reason])
        axes.plot(points[:, 0], points[:, 1], markers[index % len(markers)], color='#9467bd',
                  markeredgecolor='black', markersize=9, zorder=6, label=f'veto: {reason}'[:48])
    if monitor.collisions:
        points = np.array([[c.x, c.y] for c in monitor.collisions])
        axes.plot(points[:, 0], points[:, 1], 'k*', markersize=18, zorder=7, label='collision')
    axes.set_aspect('equal')
    axes.set_xlabel('x [m] (world)')
    axes.set_ylabel('y [m] (world)')
    axes.grid(True, alpha=0.3)
    axes.legend(loc='upper left', fontsize=8, framealpha=0.85)
    low, high = _view(monitor, start_xy)
    axes.set_xlim(low[0], high[0])
    axes.set_ylim(low[1], high[1])


def _view(monitor: RunMonitor, start_xy: tuple[float, float] | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Corners of the view: the trajectory, start and goal with a margin (not the whole city)."""
    points = [monitor.goal_xy] + ([start_xy] if start_xy else [])
    points += [(p.x, p.y) for p in monitor.poses]
    xy = np.array(points)
    return xy.min(axis=0) - 3.0, xy.max(axis=0) + 3.0


def _draw_speed(axes, monitor: RunMonitor) -> None:
    times, speeds = monitor.speed_profile()
    axes.plot(times, speeds, color='#1f77b4', label='speed (ground truth)')
    start = monitor.mission_start or 0.0
    allowed = [(t - start, a) for t, _, _, a in monitor.safety_states
               if a is not None and t >= start and np.isfinite(a)]
    if allowed:
        allowed_array = np.array(allowed)
        axes.step(allowed_array[:, 0], np.minimum(allowed_array[:, 1], 2.0), where='post',
                  color='#ff7f0e', alpha=0.7, label='allowed by safety monitor')
    for index, veto in enumerate(monitor.vetoes):
        axes.axvline(veto.time - start, color='#9467bd', alpha=0.5, linewidth=1,
                     label='veto' if index == 0 else None)
    axes.set_xlabel('mission time [s]')
    axes.set_ylabel('speed [m/s]')
    axes.set_ylim(bottom=0.0)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='upper right', fontsize=8)


def write_run_report(path: Path, monitor: RunMonitor, summary: RunSummary, title: str,
                     start_xy: tuple[float, float] | None = None,
                     ground: Sequence[Obstacle] = ()) -> Path:
    """Top-down map (ground surfaces, obstacles, pedestrian tracks, trajectory coloured by
    speed, veto points, collisions) above the speed profile; the map's height follows the
    area the run covered."""
    low, high = _view(monitor, start_xy)
    span_x, span_y = high - low
    map_height = float(np.clip(10.0 * span_y / max(span_x, 1e-3), 2.5, 8.0))
    figure, (map_axes, speed_axes) = plt.subplots(
        2, 1, figsize=(12, map_height + 4.2), gridspec_kw={'height_ratios': [map_height, 3.0]})
    outcome = 'arrived' if summary.arrived else 'did not arrive'
    clearance = ('-' if summary.min_clearance_m is None
                 else f'{summary.min_clearance_m:.2f} m')
    figure.suptitle(f'{title}: {outcome} in {summary.mission_time_s:.1f} s, '
                    f'{summary.distance_m:.1f} m at {summary.mean_speed_mps:.2f} m/s, '
                    f'min clearance {clearance}, {summary.vetoes} veto(es), '
                    f'{summary.collisions} collision(s)', fontsize=11)
    _draw_map(map_axes, monitor, start_xy, ground)
    _draw_speed(speed_axes, monitor)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_system_report_png(path: Path, figures: Sequence) -> Path:
    """Bars per stack (healthy, then each fault): success and arrival rates, collisions,
    vetoes per 100 m and speeds: the suite's system report at a glance."""
    groups = [figure.group for figure in figures]
    positions = np.arange(len(groups))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    width = 0.38

    def values(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(f, name) is None else getattr(f, name)
                         for f in figures], dtype=float)

    axes[0].bar(positions - width / 2, values('success_rate') * 100, width, label='success')
    axes[0].bar(positions + width / 2, values('arrival_rate') * 100, width, label='arrived')
    axes[0].set_ylabel('% of runs')
    axes[0].set_ylim(0, 105)
    axes[1].bar(positions - width / 2, values('collisions'), width, color='#d62728',
                label='collisions (robot drove into)')
    axes[1].bar(positions + width / 2, values('contacts_by_others'), width, color='#f2b400',
                label='hit by others')
    axes[1].set_ylabel('count')
    axes[2].bar(positions - width / 2, values('vetoes_per_100m'), width, color='#9467bd',
                label='vetoes / 100 m')
    speed_axes = axes[2].twinx()
    speed_axes.bar(positions + width / 2, values('mean_speed_mps'), width, color='#1f77b4',
                   label='mean speed [m/s]')
    speed_axes.set_ylabel('m/s')
    axes[2].set_ylabel('vetoes per 100 m')
    handles = axes[2].get_legend_handles_labels()
    speed_handles = speed_axes.get_legend_handles_labels()
    axes[2].legend(handles[0] + speed_handles[0], handles[1] + speed_handles[1], fontsize=8)
    for panel in axes:
        panel.set_xticks(positions, groups, rotation=35, ha='right', fontsize=8)
        panel.grid(True, axis='y', alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    figure.suptitle('scenario suite: healthy stack and each injected fault')
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
