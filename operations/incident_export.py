"""Incident camera frames -> a perception dataset (the format of perception/dataset.py).

Labels come from the simulator's ground truth when the incident has it, else from the lidar.

* **Ground truth** (`/sim/ground_truth/robot_pose` and `/obstacles` in the bag): every pixel's
  ray is cast against the true obstacle and pedestrian bodies (boxes, upright cylinders,
  spheres) and the flat ground; the nearest hit decides. Ground is `sidewalk` inside one of the
  world's flat sidewalk surfaces and `not_drivable` elsewhere (the world named in
  incident.json; unknown world: ground pixels are left unlabelled). Depth, layout and
  footprint follow from the same bodies.
* **Lidar** (a real robot): each return is something standing on the ground at least as high
  as the beam (0.25 m). Its ground point and its point at beam height, one beam wide, are
  projected with the perception node's camera model; the pixels between become `obstacle`,
  nearer returns drawn over farther ones. Everything else stays unlabelled (the training loss
  ignores it): the lidar cannot say whether ground is sidewalk or road, nor what is above its
  beam. Such labels teach the network where obstacles stand (recall), not what is free.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sidewalk_robot import share_directory
from sidewalk_robot.config import load_config
from sidewalk_robot.operations.incidents import Incident
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.dataset import (FOOTPRINT_OBSTACLE, SHAPE_BOX, SHAPE_DISC, Frames,
                                               LayoutItem, ShardWriter, downscale_depth,
                                               downscale_labels, rasterise_layout)
from sidewalk_robot.perception.generation import LAYOUT_RADIUS, ROBOT_HEIGHT
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry, Intrinsics
from sidewalk_robot.perception.labels import (BACKGROUND, IGNORE_LABEL, NOT_DRIVABLE, OBSTACLE,
                                              PEDESTRIAN, SIDEWALK)
from sidewalk_robot.replay.bag_io import iter_messages, open_reader, typestore_for

LASER_HEIGHT = 0.25
"""Beam height above the ground (docs/interfaces.md, laser_link z)."""
CAMERA_FAR = 100.0
"""The simulated camera's far plane [m]: beyond it is background."""
SHARD_SIZE = 100
MATCH_SCAN_S = 0.15
MATCH_TRUTH_S = 0.15
BODY_RANGE = 40.0
"""Ground-truth bodies farther than this from the robot are not ray cast [m]."""
MARKER_CUBE, MARKER_SPHERE, MARKER_CYLINDER = 1, 2, 3
TOPIC_SUFFIXES = {'image': '/camera/image_raw', 'info': '/camera/camera_info', 'scan': '/scan',
                  'odom': '/odom', 'true_pose': '/sim/ground_truth/robot_pose',
                  'true_bodies': '/sim/ground_truth/obstacles'}


@dataclass(frozen=True)
class ExportOptions:
    labels: str = 'auto'
    """auto (ground truth when recorded, else lidar), ground_truth or lidar."""
    split: str = 'train'
    stride: int = 2
    image_size: tuple[int, int] = (160, 120)
    laser_x: float = 0.30
    laser_yaw: float = 0.0


@dataclass(frozen=True)
class Body:
    """A ground-truth body in the world: CUBE / SPHERE / CYLINDER marker, upright."""
    semantic: int
    shape: int
    x: float
    y: float
    z: float
    yaw: float
    size: tuple[float, float, float]


# --------------------------------------------------------------------------------- the bag
@dataclass
class Recording:
    images: list[tuple[float, np.ndarray]]
    scans: list[tuple[float, Any]]
    odom: list[tuple[float, tuple[float, float, float]]]
    true_poses: list[tuple[float, tuple[float, float, float]]]
    true_bodies: list[tuple[float, list[Body]]]
    intrinsics: Intrinsics | None


def _yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def _stamp(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _image_array(message) -> np.ndarray:
    channels = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}.get(message.encoding)
    if channels is None:
        raise ValueError(f'camera encoding {message.encoding!r} is not supported')
    rows = np.frombuffer(message.data, np.uint8).reshape(message.height, message.step)
    pixels = rows[:, :message.width * channels].reshape(message.height, message.width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, ::-1] if message.encoding == 'bgr8' else pixels)


def read_recording(bag: Path) -> Recording:
    reader = open_reader(bag)
    try:
        store, _unknown = typestore_for(reader)
        by_suffix = {}
        for connection in reader.connections:
            for key, suffix in TOPIC_SUFFIXES.items():
                if connection.topic.endswith(suffix):
                    by_suffix[connection.topic] = key
        recording = Recording([], [], [], [], [], None)
        for connection, _time, data in iter_messages(reader, list(by_suffix)):
            key = by_suffix[connection.topic]
            message = store.deserialize_cdr(data, connection.msgtype)
            if key == 'image':
                recording.images.append((_stamp(message.header), _image_array(message)))
            elif key == 'info':
                k = message.k
                recording.intrinsics = Intrinsics(float(k[0]), float(k[4]), float(k[2]),
                                                  float(k[5]), int(message.width),
                                                  int(message.height))
            elif key == 'scan':
                recording.scans.append((_stamp(message.header), message))
            elif key == 'odom':
                pose = message.pose.pose
                recording.odom.append((_stamp(message.header), (
                    pose.position.x, pose.position.y, _yaw(pose.orientation))))
            elif key == 'true_pose':
                pose = message.pose
                recording.true_poses.append((_stamp(message.header), (
                    pose.position.x, pose.position.y, _yaw(pose.orientation))))
            else:
                bodies = [body for body in map(_body, message.markers) if body is not None]
                stamp = _stamp(message.markers[0].header) if message.markers else 0.0
                recording.true_bodies.append((stamp, bodies))
    finally:
        reader.close()
    for series in (recording.images, recording.scans, recording.odom, recording.true_poses,
                   recording.true_bodies):
        series.sort(key=lambda item: item[0])
    return recording


def _body(marker) -> Body | None:
    shape = {MARKER_CUBE: SHAPE_BOX, MARKER_CYLINDER: SHAPE_DISC, MARKER_SPHERE: -1}.get(
        marker.type)
    if shape is None:
        return None
    semantic = PEDESTRIAN if marker.ns == 'pedestrian' else OBSTACLE
    p = marker.pose.position
    return Body(semantic, shape, p.x, p.y, p.z, _yaw(marker.pose.orientation),
                (marker.scale.x, marker.scale.y, marker.scale.z))


def nearest(series: list[tuple[float, Any]], stamp: float, tolerance: float) -> Any:
    """The item of ``series`` (sorted by time) closest to ``stamp``, None beyond tolerance."""
    if not series:
        return None
    times = [t for t, _ in series]
    index = bisect_left(times, stamp)
    candidates = [i for i in (index - 1, index) if 0 <= i < len(series)]
    best = min(candidates, key=lambda i: abs(times[i] - stamp))
    return series[best][1] if abs(times[best] - stamp) <= tolerance else None


# --------------------------------------------------------------------------------- labels
def _rotation(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _box_hits(origin: np.ndarray, rays: np.ndarray, body: Body) -> np.ndarray:
    """Ray parameter of the first hit on an upright box, inf where missed (slab method)."""
    rotation = _rotation(body.yaw)
    local_origin = (origin - np.array([body.x, body.y, body.z])) @ rotation
    local_rays = rays @ rotation
    half = np.array(body.size) / 2.0
    with np.errstate(divide='ignore', invalid='ignore'):
        t1 = (-half - local_origin) / local_rays
        t2 = (half - local_origin) / local_rays
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (near <= far) & (far > 0)
    return np.where(hit, np.maximum(near, 0.0), np.inf)


def _cylinder_hits(origin: np.ndarray, rays: np.ndarray, body: Body) -> np.ndarray:
    radius = max(body.size[0], body.size[1]) / 2.0
    bottom, top = body.z - body.size[2] / 2.0, body.z + body.size[2] / 2.0
    ox, oy = origin[0] - body.x, origin[1] - body.y
    dx, dy, dz = rays[..., 0], rays[..., 1], rays[..., 2]
    a = dx * dx + dy * dy
    b = 2.0 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - radius * radius
    discriminant = b * b - 4.0 * a * c
    best = np.full(a.shape, np.inf)
    with np.errstate(divide='ignore', invalid='ignore'):
        root = np.sqrt(np.maximum(discriminant, 0.0))
        for t in ((-b - root) / (2.0 * a), (-b + root) / (2.0 * a)):
            z = origin[2] + t * dz
            ok = (discriminant >= 0) & (a > 1e-12) & (t > 0) & (z >= bottom) & (z <= top)
            best = np.where(ok & (t < best), t, best)
        for plane in (bottom, top):
            t = (plane - origin[2]) / dz
            x, y = ox + t * dx, oy + t * dy
            ok = (t > 0) & (x * x + y * y <= radius * radius)
            best = np.where(ok & (t < best), t, best)
    return best


def _sphere_hits(origin: np.ndarray, rays: np.ndarray, body: Body) -> np.ndarray:
    radius = body.size[0] / 2.0
    offset = origin - np.array([body.x, body.y, body.z])
    a = (rays * rays).sum(-1)
    b = 2.0 * (rays @ offset)
    c = offset @ offset - radius * radius
    discriminant = b * b - 4.0 * a * c
    with np.errstate(invalid='ignore'):
        t = (-b - np.sqrt(np.maximum(discriminant, 0.0))) / (2.0 * a)
    return np.where((discriminant >= 0) & (t > 0), t, np.inf)


def sidewalk_outlines(world_name: str | None) -> list[tuple[float, float, float, float]] | None:
    """x/y extents of the world's flat sidewalk surfaces; None when the world is unknown."""
    if not world_name:
        return None
    from sidewalk_robot.simulation.ground import _outline, is_flat_ground
    from sidewalk_robot.simulation.world import load_world

    try:
        world = load_world(world_name)
    except (OSError, ValueError):
        return None
    return [_outline(body) for body in world.bodies
            if is_flat_ground(body) and body.semantic.label == 'sidewalk']


def ground_truth_labels(camera: CameraModel, robot: tuple[float, float, float],
                        bodies: list[Body], sidewalks: list[tuple[float, float, float, float]]
                        | None) -> tuple[np.ndarray, np.ndarray]:
    """(label, depth) at the camera's resolution by casting every pixel's ray."""
    x0, y0, yaw0 = robot
    to_world = _rotation(yaw0)
    rays = camera.pixel_rays() @ to_world.T  # optical z = 1: the ray parameter is z-depth
    origin = np.array([x0, y0, 0.0]) + to_world @ camera.extrinsics.translation
    shape = rays.shape[:2]
    best = np.full(shape, np.inf)
    label = np.full(shape, BACKGROUND, dtype=np.uint8)
    with np.errstate(divide='ignore', invalid='ignore'):
        ground_t = np.where(rays[..., 2] < -1e-9, -origin[2] / rays[..., 2], np.inf)
    ground_t[ground_t > CAMERA_FAR] = np.inf
    ground_xy = origin[:2] + rays[..., :2] * np.where(np.isfinite(ground_t), ground_t, 0)[..., None]
    if sidewalks is None:
        ground_class = np.full(shape, IGNORE_LABEL, dtype=np.uint8)
    else:
        on_sidewalk = np.zeros(shape, dtype=bool)
        for xmin, xmax, ymin, ymax in sidewalks:
            on_sidewalk |= ((ground_xy[..., 0] >= xmin) & (ground_xy[..., 0] <= xmax)
                            & (ground_xy[..., 1] >= ymin) & (ground_xy[..., 1] <= ymax))
        ground_class = np.where(on_sidewalk, SIDEWALK, NOT_DRIVABLE).astype(np.uint8)
    hit = np.isfinite(ground_t)
    best[hit], label[hit] = ground_t[hit], ground_class[hit]
    casters = {SHAPE_BOX: _box_hits, SHAPE_DISC: _cylinder_hits, -1: _sphere_hits}
    for body in bodies:
        if math.hypot(body.x - x0, body.y - y0) > BODY_RANGE:
            continue
        t = casters[body.shape](origin, rays, body)
        closer = t < best
        best[closer] = t[closer]
        label[closer] = body.semantic
    return label, best.astype(np.float32)


def layout_of(robot: tuple[float, float, float], bodies: list[Body]) -> list[LayoutItem]:
    x0, y0, yaw0 = robot
    c, s = math.cos(yaw0), math.sin(yaw0)
    items = []
    for body in bodies:
        dx, dy = body.x - x0, body.y - y0
        if math.hypot(dx, dy) - math.hypot(body.size[0], body.size[1]) / 2 > LAYOUT_RADIUS:
            continue
        disc = body.shape != SHAPE_BOX
        items.append(LayoutItem(
            semantic=body.semantic, shape=SHAPE_DISC if disc else SHAPE_BOX,
            x=c * dx + s * dy, y=-s * dx + c * dy,
            yaw=math.atan2(math.sin(body.yaw - yaw0), math.cos(body.yaw - yaw0)),
            half_x=(max(body.size[0], body.size[1]) if disc else body.size[0]) / 2,
            half_y=(max(body.size[0], body.size[1]) if disc else body.size[1]) / 2,
            bottom=body.z - body.size[2] / 2))
    return items


def scan_points(scan, laser_x: float, laser_yaw: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Returns of a LaserScan in base_link: (N, 2) xy, (N,) range, beam increment."""
    ranges = np.asarray(scan.ranges, dtype=np.float64)
    angles = scan.angle_min + np.arange(len(ranges)) * scan.angle_increment + laser_yaw
    valid = np.isfinite(ranges) & (ranges >= scan.range_min) & (ranges <= scan.range_max)
    r, a = ranges[valid], angles[valid]
    xy = np.stack([laser_x + r * np.cos(a), r * np.sin(a)], axis=1)
    return xy, r, abs(scan.angle_increment)


def lidar_labels(camera: CameraModel, scan, grid: GridGeometry, laser_x: float,
                 laser_yaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, depth, footprint) from one scan: obstacle where a return stands, else unknown."""
    k = camera.intrinsics
    label = np.full((k.height, k.width), IGNORE_LABEL, dtype=np.uint8)
    depth = np.full((k.height, k.width), np.inf, dtype=np.float32)
    footprint = np.zeros((grid.height, grid.width), dtype=np.uint8)
    xy, ranges, increment = scan_points(scan, laser_x, laser_yaw)
    cells = grid.cell_index(xy)
    footprint.reshape(-1)[cells[cells >= 0]] = FOOTPRINT_OBSTACLE
    for index in np.argsort(-ranges):  # far first: nearer returns are drawn over them
        x, y = xy[index]
        bearing = math.atan2(y, x - laser_x)
        half_width = ranges[index] * math.sin(increment / 2.0)
        side = np.array([-math.sin(bearing), math.cos(bearing)]) * half_width
        corners = np.array([[*(xy[index] - side), 0.0], [*(xy[index] + side), 0.0],
                            [*(xy[index] + side), LASER_HEIGHT],
                            [*(xy[index] - side), LASER_HEIGHT]])
        if (camera.depth_of(corners) <= 0.05).any():
            continue
        pixels, _ = camera.project(corners)
        if not np.isfinite(pixels).all() or (np.abs(pixels) > 4 * max(k.width, k.height)).any():
            continue
        polygon = np.round(pixels).astype(np.int32)
        cv2.fillPoly(label, [polygon], OBSTACLE)
        middle = np.array([[x, y, LASER_HEIGHT / 2.0]])
        cv2.fillPoly(depth, [polygon], float(camera.depth_of(middle)[0]))
    return label, depth, footprint


def downscale_with_unknown(label: np.ndarray, factor: int) -> np.ndarray:
    """The dataset's label downscaling, keeping blocks without any known pixel unknown."""
    small = downscale_labels(label, factor)
    height, width = small.shape
    blocks = label[:height * factor, :width * factor].reshape(height, factor, width, factor)
    unknown = (blocks == IGNORE_LABEL).all(axis=(1, 3))
    small[unknown] = IGNORE_LABEL
    return small


# --------------------------------------------------------------------------------- export
def export_incidents(incidents: list[Incident], output: Path, options: ExportOptions
                     ) -> dict[str, Any]:
    """Write the incidents' frames as a dataset in ``output``; returns its card."""
    if options.labels not in ('auto', 'ground_truth', 'lidar'):
        raise ValueError(f'unknown label source {options.labels!r}')
    if output.exists() and any(output.iterdir()):
        raise ValueError(f'{output} exists and is not empty')
    perception = load_config(PerceptionConfig, share_directory() / 'config' / 'perception.yaml')
    grid = perception.grid()
    writer = ShardWriter(output, SHARD_SIZE)
    summaries, camera_record = [], None
    label_sources: dict[str, int] = {'ground_truth': 0, 'lidar': 0}
    for incident in incidents:
        recording = read_recording(incident.bag)
        if not recording.images:
            raise ValueError(f'incident {incident.name} has no camera frames')
        sidewalks = sidewalk_outlines(incident.record.get('world'))
        frames, sources = [], []
        for stamp, pixels in recording.images[::options.stride]:
            frame, source, camera = _frame(stamp, pixels, recording, sidewalks, grid,
                                           perception, options)
            if frame is None:
                continue
            frames.append(frame)
            sources.append(source)
            camera_record = camera_record or _camera_record(camera)
        if not frames:
            raise ValueError(f'incident {incident.name}: no frame could be labelled (no scan or '
                             f'ground truth near the camera frames)')
        writer.add(incident.name, options.split, Frames.concatenate(frames))
        for source in sources:
            label_sources[source] += 1
        summaries.append({'id': incident.name, 'why': incident.record.get('why'),
                          'world': incident.record.get('world'),
                          'model': incident.record.get('model'), 'frames': len(frames),
                          'labels': sorted(set(sources))})
    width, height = options.image_size
    return writer.finish(
        source='incidents', created=datetime.now(timezone.utc).isoformat(timespec='seconds'),
        worlds={options.split: [s['id'] for s in summaries]}, incidents=summaries,
        incident_labels=label_sources, image_size=[width, height], camera=camera_record,
        grid={'resolution': grid.resolution, 'width': grid.width, 'height': grid.height,
              'origin_x': grid.origin_x, 'origin_y': grid.origin_y},
        label_derivation='sidewalk_robot.operations.incident_export (docs/operations.md)')


def _frame(stamp: float, pixels: np.ndarray, recording: Recording, sidewalks, grid: GridGeometry,
           perception: PerceptionConfig, options: ExportOptions):
    height, width = pixels.shape[:2]
    out_width, out_height = options.image_size
    factor = width // out_width
    if factor < 1 or width != factor * out_width or height != factor * out_height:
        raise ValueError(f'camera {width}x{height} is not a whole multiple of the dataset size '
                         f'{out_width}x{out_height}')
    intrinsics = recording.intrinsics
    if intrinsics is None or (intrinsics.width, intrinsics.height) != (width, height):
        intrinsics = perception.default_intrinsics().scaled_to(width, height)
    camera = CameraModel(intrinsics, perception.extrinsics())
    robot = nearest(recording.true_poses, stamp, MATCH_TRUTH_S)
    bodies = nearest(recording.true_bodies, stamp, MATCH_TRUTH_S)
    use_truth = robot is not None and bodies is not None and options.labels != 'lidar'
    if options.labels == 'ground_truth' and not use_truth:
        raise ValueError('the incident has no simulator ground truth near its camera frames '
                         '(use --labels lidar)')
    if use_truth:
        label, depth = ground_truth_labels(camera, robot, bodies, sidewalks)
        layout = layout_of(robot, bodies)
        footprint = rasterise_layout([i for i in layout if i.bottom <= ROBOT_HEIGHT], grid)
        pose, source = robot, 'ground_truth'
    else:
        scan = nearest(recording.scans, stamp, MATCH_SCAN_S)
        if scan is None:
            return None, '', camera
        label, depth, footprint = lidar_labels(camera, scan, grid, options.laser_x,
                                               options.laser_yaw)
        layout = []
        pose = nearest(recording.odom, stamp, MATCH_SCAN_S) or (math.nan, math.nan, math.nan)
        source = 'lidar'
    image = cv2.resize(pixels, (out_width, out_height), interpolation=cv2.INTER_AREA) \
        if factor > 1 else pixels
    rows = np.asarray([item.row(0) for item in layout], dtype=np.float32).reshape(-1, 9)
    frame = Frames(image=image[None], label=downscale_with_unknown(label, factor)[None],
                   depth=downscale_depth(depth, factor)[None],
                   pose=np.asarray([pose], dtype=np.float32), footprint=footprint[None],
                   layout=rows)
    return frame, source, camera


def _camera_record(camera: CameraModel) -> dict[str, float]:
    k, e = camera.intrinsics, camera.extrinsics
    return {'fx': k.fx, 'fy': k.fy, 'cx': k.cx, 'cy': k.cy, 'width': k.width, 'height': k.height,
            'x': e.x, 'y': e.y, 'z': e.z, 'roll': e.roll, 'pitch': e.pitch, 'yaw': e.yaw}
