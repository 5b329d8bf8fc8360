"""Synthetic camera images shared by the perception tests."""
import numpy as np


def street_image(width: int = 320, height: int = 240) -> np.ndarray:
    """Sky over grey pavement with a dark box standing on it."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 3] = (150, 190, 235)
    image[height // 3:] = (160, 160, 155)
    image[height // 2: height * 3 // 4, width // 3: width // 2] = (40, 40, 45)
    return image
