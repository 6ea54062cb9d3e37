"""A third data set, for checking the study's defaults on a set nobody tuned them on: eight
outline and filled shapes (circle, square, triangle, plus, ring, diamond, star, arrow), as class
folders of 48x48 PNGs that `data prepare --format folders` reads. The default space's draws were
chosen from the trials of the built-in set and of the glyphs (benchmarks/glyphs.py), so neither
of those checks them any more.

Each image is one shape at a random size, rotation (but for the circle and ring), position and
stroke, filled or outlined, dark on light or light on dark, with the glyphs' lighting gradient,
blur and noise: eight classes told apart by outline, not strokes or faces.

    python benchmarks/shapes.py --out DIR [--count 3200] [--seed 0]
    cgan-study data prepare DIR --format folders --out shapes.npz --name shapes
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from glyphs import finish, set_command

CLASSES = ["circle", "square", "triangle", "plus", "ring", "diamond", "star", "arrow"]


def outline(shape: str) -> list[tuple[float, float]]:
    """The shape's polygon around (0, 0) with radius about 1 (the circle and ring are drawn as ellipses)."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "triangle":
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "diamond":
        return [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]
    if shape == "plus":
        w = 0.3
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
    if shape == "star":
        return [((1.0 if k % 2 == 0 else 0.42) * math.cos(-math.pi / 2 + k * math.pi / 5),
                 (1.0 if k % 2 == 0 else 0.42) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    if shape == "arrow":
        return [(-1, -0.25), (0.2, -0.25), (0.2, -0.6), (1, 0), (0.2, 0.6), (0.2, 0.25), (-1, 0.25)]
    raise ValueError(shape)


def draw(label: int, rng: np.random.Generator) -> Image.Image:
    canvas, shape = 96, CLASSES[label]
    ink, paper = (rng.uniform(0, 70), rng.uniform(170, 255))
    if rng.random() < 0.4:
        ink, paper = paper, ink
    image = Image.new("L", (canvas, canvas), int(paper))
    pen = ImageDraw.Draw(image)
    radius = rng.uniform(22, 36)
    cx, cy = canvas / 2 + rng.uniform(-8, 8), canvas / 2 + rng.uniform(-8, 8)
    stroke = int(rng.integers(3, 8))
    filled = rng.random() < 0.5
    if shape in ("circle", "ring"):
        box = (cx - radius, cy - radius * rng.uniform(0.85, 1.0), cx + radius, cy + radius * rng.uniform(0.85, 1.0))
        if shape == "circle":
            pen.ellipse(box, fill=int(ink) if filled else None, outline=int(ink), width=stroke)
        else:  # a ring: always a thick band with a hole, filled or not
            pen.ellipse(box, outline=int(ink), width=max(stroke, int(radius * 0.35)))
    else:
        angle = rng.uniform(0, 2 * math.pi)
        points = [(cx + radius * (x * math.cos(angle) - y * math.sin(angle)),
                   cy + radius * (x * math.sin(angle) + y * math.cos(angle))) for x, y in outline(shape)]
        if filled:
            pen.polygon(points, fill=int(ink))
        else:
            pen.line(points + points[:1], fill=int(ink), width=stroke, joint="curve")
    return finish(image, rng)


def main() -> None:
    set_command(__doc__, 3200, CLASSES, draw, "shapes")


if __name__ == "__main__":
    main()
