"""A fourth data set, for checking the study's defaults on a set nobody tuned them on: six
textures (stripes, checks, dots, rings, waves, clouds), as class folders of 48x48 PNGs that
`data prepare --format folders` reads. Unlike the faces, digits and shapes, a class here is a
pattern over the whole image, not one object on a plain ground.

Each image is one texture at a random scale (3 to 6 periods across), orientation, phase, edge
(hard or soft) and contrast, dark on light or light on dark, with the glyphs' lighting gradient,
blur and noise.

    python benchmarks/textures.py --out DIR [--count 3000] [--seed 0]
    cgan-study data prepare DIR --format folders --out textures.npz --name textures
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from glyphs import finish, set_command

CLASSES = ["stripes", "checks", "dots", "rings", "waves", "clouds"]
CANVAS = 96


def pattern(texture: str, rng: np.random.Generator) -> np.ndarray:
    """The texture on the canvas, values about -1..1."""
    ramp = np.linspace(-0.5, 0.5, CANVAS)
    x, y = ramp[None, :], ramp[:, None]
    angle, phase = rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
    u, v = x * math.cos(angle) + y * math.sin(angle), -x * math.sin(angle) + y * math.cos(angle)
    periods = rng.uniform(3, 6)
    k = 2 * math.pi * periods
    if texture == "stripes":
        return np.sin(k * u + phase)
    if texture == "checks":
        return np.sin(k * u + phase) * np.sin(k * v + rng.uniform(0, 2 * math.pi)) * 2
    if texture == "dots":
        return (np.cos(k * u + phase) + np.cos(k * v + rng.uniform(0, 2 * math.pi))) - 1
    if texture == "rings":
        cx, cy = rng.uniform(-0.3, 0.3, 2)
        return np.sin(k * np.hypot(x - cx, y - cy) + phase)
    if texture == "waves":
        return np.sin(k * u + rng.uniform(1.5, 3.0) * np.sin(k / rng.uniform(1.5, 2.5) * v) + phase)
    if texture == "clouds":  # smoothed noise: blobs of about the same scale as the others' periods
        coarse = rng.normal(0, 1, (int(periods * 2), int(periods * 2)))
        blobs = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((CANVAS, CANVAS), Image.BICUBIC))
        return blobs / (np.abs(blobs).max() + 1e-6)
    raise ValueError(texture)


def draw(label: int, rng: np.random.Generator) -> Image.Image:
    values = pattern(CLASSES[label], rng)
    sharpness = rng.choice([1.0, 6.0])  # soft (as drawn) or hard (near black and white) edges
    values = np.tanh(sharpness * values) / math.tanh(sharpness)
    ink, paper = rng.uniform(0, 70), rng.uniform(170, 255)
    if rng.random() < 0.4:
        ink, paper = paper, ink
    pixels = paper + (ink - paper) * (values + 1) / 2
    return finish(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), rng)


def main() -> None:
    set_command(__doc__, 3000, CLASSES, draw, "textures")


if __name__ == "__main__":
    main()
