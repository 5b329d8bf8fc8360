"""sidewalk_robot: ROS 2 stack for small sidewalk delivery robots."""
from pathlib import Path

__version__ = '0.1.0'


def share_directory() -> Path:
    """Folder holding launch/, config/, worlds/ and models/.

    Installed with colcon, that is ``share/sidewalk_robot`` (found through the ament index);
    in a source checkout or editable install it is the repository root.
    """
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / 'package.xml').is_file():
        return source_root
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError as error:
        raise FileNotFoundError('cannot locate the sidewalk_robot share folder') from error
    return Path(get_package_share_directory('sidewalk_robot'))
