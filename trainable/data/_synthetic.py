"""A built-in synthetic expression data set: procedurally drawn faces, FER-2013 shaped.

Each image is one identity (face shape, proportions, skin and hair tone, feature positions,
glasses, beard) showing one of the 7 expressions through brows, eyes, mouth and nose at a
random intensity, under a small rotation, shift, scale, lighting gradient and noise. Low
intensities sit close to neutral and fear/surprise or angry/disgust share features, so the
classes overlap the way real expressions do: a classifier has to learn them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from trainable.data._prepared import EXPRESSIONS, PreparedDataset
from trainable.data._readers import resize
from trainable.progress import Progress

SIDE = 48  # FER-2013's published size
_CANVAS = 128  # drawn larger, then rotated and reduced, for anti-aliased features
_CROP = 96

# Per expression at full intensity, as offsets from neutral (units: fractions of the face).
# brow_in / brow_out: vertical move of the inner / outer brow end (negative = up);
# eye_open: eyelid opening factor; smile: mouth-corner lift; mouth_open: lip gap;
# mouth_width: width factor; asym: one-sided upper-lip raise; wrinkle: nose wrinkle.
_NEUTRAL = dict(brow_in=0.0, brow_out=0.0, eye_open=1.0, smile=0.0, mouth_open=0.0,
                mouth_width=1.0, asym=0.0, wrinkle=0.0)
_EXPRESSION_SHAPES = {
    "angry": dict(brow_in=0.09, brow_out=-0.03, eye_open=0.65, smile=-0.03, mouth_width=0.8),
    "disgust": dict(brow_in=0.06, brow_out=0.02, eye_open=0.55, smile=-0.04, mouth_open=0.03,
                    mouth_width=0.9, asym=0.07, wrinkle=1.0),
    "fear": dict(brow_in=-0.08, brow_out=-0.02, eye_open=1.45, smile=-0.03, mouth_open=0.07, mouth_width=1.2),
    "happy": dict(brow_in=-0.01, brow_out=-0.01, eye_open=0.75, smile=0.09, mouth_open=0.04, mouth_width=1.25),
    "neutral": dict(),
    "sad": dict(brow_in=-0.07, brow_out=0.04, eye_open=0.8, smile=-0.08, mouth_width=0.9),
    "surprise": dict(brow_in=-0.1, brow_out=-0.1, eye_open=1.6, mouth_open=0.16, mouth_width=0.6),
}


def _identity(rng: np.random.Generator) -> dict:
    light = rng.random() < 0.3
    return dict(
        face_w=rng.uniform(0.50, 0.66), face_h=rng.uniform(0.64, 0.80), chin=rng.uniform(0.0, 0.12),
        skin=rng.uniform(95, 215), background=rng.uniform(15, 240), bg_slope=rng.uniform(-60, 60),
        hair=rng.uniform(150, 215) if light else rng.uniform(5, 80), hair_style=int(rng.integers(0, 4)),
        hair_len=rng.uniform(0.05, 0.2),
        eye_y=rng.uniform(0.40, 0.47), eye_dx=rng.uniform(0.15, 0.21), eye_w=rng.uniform(0.065, 0.09),
        eye_h=rng.uniform(0.03, 0.045), eye_dark=rng.uniform(0, 50),
        brow_y=rng.uniform(0.08, 0.12), brow_len=rng.uniform(0.09, 0.14), brow_w=rng.uniform(0.018, 0.035),
        brow_dark=rng.uniform(0, 70), nose_len=rng.uniform(0.1, 0.16),
        mouth_y=rng.uniform(0.68, 0.76), mouth_w=rng.uniform(0.16, 0.24), lip=rng.uniform(20, 90),
        glasses=rng.random() < 0.15, beard=rng.random() < 0.12,
    )


def _expression(label: int, rng: np.random.Generator) -> dict:
    target = {**_NEUTRAL, **_EXPRESSION_SHAPES[EXPRESSIONS[label]]}
    intensity = rng.uniform(0.35, 1.0)
    shape = {key: _NEUTRAL[key] + intensity * (target[key] - _NEUTRAL[key]) for key in _NEUTRAL}
    # Faces are not symmetric templates: jitter every feature a little.
    shape["brow_in"] += rng.normal(0, 0.012)
    shape["brow_out"] += rng.normal(0, 0.012)
    shape["eye_open"] *= rng.uniform(0.85, 1.15)
    shape["smile"] += rng.normal(0, 0.012)
    shape["mouth_open"] = max(0.0, shape["mouth_open"] + rng.normal(0, 0.01))
    shape["mouth_width"] *= rng.uniform(0.9, 1.1)
    shape["asym_side"] = 1 if rng.random() < 0.5 else -1
    return shape


def _quadratic(x0: float, y0: float, xm: float, ym: float, x1: float, y1: float, steps: int = 12) -> list:
    """Points of the quadratic Bezier through (x0, y0), control (xm, ym), (x1, y1)."""
    t = np.linspace(0.0, 1.0, steps)
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * xm + t ** 2 * x1
    ys = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * ym + t ** 2 * y1
    return list(zip(xs.tolist(), ys.tolist()))


def _draw_face(ident: dict, expr: dict, rng: np.random.Generator) -> np.ndarray:
    c = _CANVAS
    image = Image.new("L", (c, c), int(ident["background"]))
    ramp = np.linspace(-0.5, 0.5, c, dtype=np.float32)[None, :] * ident["bg_slope"]
    image = Image.fromarray(np.clip(np.asarray(image, np.float32) + ramp, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    s = _CROP  # feature sizes are fractions of the crop, the visible face window
    cx, cy = c / 2, c / 2 + 0.02 * s
    fw, fh = ident["face_w"] * s, ident["face_h"] * s
    face = _Face(s, cx, cy, fw, fh, cy - fh / 2, cy + fh / 2, int(ident["skin"]))
    _draw_head(draw, ident, face)
    eye_y = face.top + ident["eye_y"] * fh
    _draw_eyes(draw, ident, expr, face, eye_y)
    _draw_nose(draw, ident, expr, face, eye_y)
    _draw_mouth(draw, ident, expr, face)
    return _pose_and_light(image, ident, rng)


@dataclasses.dataclass(frozen=True)
class _Face:
    s: float  # the crop's side: feature sizes are fractions of it
    cx: float
    cy: float
    fw: float
    fh: float
    top: float
    bottom: float
    skin: int


def _draw_head(draw: ImageDraw.ImageDraw, ident: dict, f: _Face) -> None:
    s, cx, cy, fw, fh, top, bottom = f.s, f.cx, f.cy, f.fw, f.fh, f.top, f.bottom
    hair = int(ident["hair"])
    if ident["hair_style"] in (1, 3):  # long hair behind the face
        draw.rounded_rectangle((cx - fw / 2 - 0.06 * s, top - 0.05 * s, cx + fw / 2 + 0.06 * s,
                                cy + ident["hair_len"] * s * 2), radius=0.2 * s, fill=hair)
    draw.ellipse((cx - fw / 2, top, cx + fw / 2, bottom - ident["chin"] * s), fill=f.skin)
    draw.polygon(_quadratic(cx - fw / 2 + 0.02 * s, cy + 0.05 * s, cx, bottom + ident["chin"] * s,
                            cx + fw / 2 - 0.02 * s, cy + 0.05 * s), fill=f.skin)
    if ident["hair_style"] in (0, 1, 3):  # cap of hair on top
        draw.chord((cx - fw / 2 - 0.01 * s, top - 0.04 * s, cx + fw / 2 + 0.01 * s, top + fh * 0.55),
                   start=180, end=360, fill=hair)
    if ident["hair_style"] == 3:  # fringe
        draw.rectangle((cx - fw / 2 + 0.05 * s, top + 0.02 * s, cx + fw / 2 - 0.05 * s, top + 0.12 * s), fill=hair)
    if ident["beard"]:  # on the chin, below where the mouth is drawn
        beard_top = top + ident["mouth_y"] * fh + 0.05 * s
        draw.polygon(_quadratic(cx - fw * 0.3, beard_top, cx, bottom + ident["chin"] * s,
                                cx + fw * 0.3, beard_top), fill=int(hair))


def _draw_eyes(draw: ImageDraw.ImageDraw, ident: dict, expr: dict, f: _Face, eye_y: float) -> None:
    s = f.s
    for side in (-1, 1):
        ex = f.cx + side * ident["eye_dx"] * s
        ew, eh = ident["eye_w"] * s, ident["eye_h"] * s * expr["eye_open"]
        draw.ellipse((ex - ew / 2, eye_y - eh / 2, ex + ew / 2, eye_y + eh / 2), fill=min(255, f.skin + 35))
        iris = min(ew, eh) * 0.45
        draw.ellipse((ex - iris, eye_y - iris, ex + iris, eye_y + iris), fill=int(ident["eye_dark"]))
        by = eye_y - ident["brow_y"] * s - 0.02 * s * (expr["eye_open"] - 1)
        inner = (ex - side * 0.02 * s, by + expr["brow_in"] * s)
        outer = (ex + side * ident["brow_len"] * s, by + expr["brow_out"] * s)
        middle = ((inner[0] + outer[0]) / 2, (inner[1] + outer[1]) / 2 - 0.015 * s)
        draw.line(_quadratic(*inner, *middle, *outer, steps=6), fill=int(ident["brow_dark"]),
                  width=max(1, round(ident["brow_w"] * s)))
        if ident["glasses"]:
            r = ew * 0.85
            draw.ellipse((ex - r, eye_y - r * 0.8, ex + r, eye_y + r * 0.8), outline=20, width=2)


def _draw_nose(draw: ImageDraw.ImageDraw, ident: dict, expr: dict, f: _Face, eye_y: float) -> None:
    s, cx = f.s, f.cx
    nose_top, nose_bottom = eye_y + 0.03 * s, eye_y + ident["nose_len"] * s
    shade = max(0, f.skin - 45)
    draw.line([(cx, nose_top), (cx + 0.015 * s, nose_bottom), (cx - 0.025 * s, nose_bottom + 0.01 * s)],
              fill=shade, width=2)
    if expr["wrinkle"] > 0.3:
        for dx in (-0.035, 0.035):
            draw.line([(cx + dx * s, nose_top), (cx + dx * s * 0.6, nose_top + 0.04 * s)], fill=shade, width=2)


def _draw_mouth(draw: ImageDraw.ImageDraw, ident: dict, expr: dict, f: _Face) -> None:
    s, cx = f.s, f.cx
    my = f.top + ident["mouth_y"] * f.fh
    half = ident["mouth_w"] * s * expr["mouth_width"] / 2
    lift = expr["smile"] * s
    left = (cx - half, my - lift + (expr["asym"] * s if expr["asym_side"] < 0 else 0) * -1)
    right = (cx + half, my - lift + (expr["asym"] * s if expr["asym_side"] > 0 else 0) * -1)
    upper = _quadratic(*left, cx, my + lift * 0.8 - expr["asym"] * s * 0.5, *right)
    gap = expr["mouth_open"] * s
    lower = _quadratic(*right, cx, my + lift * 0.8 + gap * 2, *left)
    lip = int(ident["lip"])
    if gap > 0.01 * s:
        draw.polygon(upper + lower, fill=max(0, lip - 20))
        if expr["smile"] > 0.03:  # teeth show in a smile
            draw.line(upper, fill=min(255, f.skin + 50), width=max(1, round(gap * 0.6)))
        draw.line(upper, fill=lip, width=2)
        draw.line(lower, fill=lip, width=2)
    else:
        draw.line(upper, fill=lip, width=3)


def _pose_and_light(image: Image.Image, ident: dict, rng: np.random.Generator) -> np.ndarray:
    """Pose: small rotation, shift and scale; then crop the face window and reduce to 48x48; then
    uneven light across the face and sensor noise."""
    c, s = _CANVAS, _CROP
    angle = rng.normal(0, 5)
    shift = rng.uniform(-0.05, 0.05, size=2) * s
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR, translate=tuple(shift.tolist()),
                         fillcolor=int(ident["background"]))
    zoom = rng.uniform(0.92, 1.08)
    half_crop = _CROP * zoom / 2
    image = image.crop((c / 2 - half_crop, c / 2 - half_crop, c / 2 + half_crop, c / 2 + half_crop))
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    pixels = resize(image, SIDE).astype(np.float32)
    light = np.linspace(-1, 1, SIDE, dtype=np.float32)
    angle_light = rng.uniform(0, 2 * np.pi)
    pixels += rng.uniform(0, 35) * (np.cos(angle_light) * light[None, :] + np.sin(angle_light) * light[:, None])
    pixels = pixels * rng.uniform(0.8, 1.15) + rng.normal(0, rng.uniform(2, 9), size=pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def generate_faces(count: int = 3500, *, seed: int = 0, identities: int | None = None,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``count`` 48x48 faces, classes balanced, deterministic from ``seed``.

    Returns images (N, 48, 48) uint8, labels (N,), identity ids (N,), and a split per image:
    identities, not images, are split 80/10/10 into train/valid/test, so held-out accuracy
    measures recognising expressions on unseen faces.
    """
    if count < len(EXPRESSIONS):
        raise ValueError(f"count must be at least {len(EXPRESSIONS)}")
    identities = identities or max(1, count // (2 * len(EXPRESSIONS)))
    rng = np.random.default_rng(seed)
    people = [_identity(rng) for _ in range(identities)]
    person_split = np.where(rng.random(identities) < 0.8, "train", np.where(rng.random(identities) < 0.5, "valid", "test"))
    images = np.empty((count, SIDE, SIDE), dtype=np.uint8)
    labels = np.arange(count, dtype=np.int64) % len(EXPRESSIONS)
    who = rng.integers(0, identities, size=count)
    meter = Progress("drawing faces", count, enabled=progress)
    for i in range(count):
        image_rng = np.random.default_rng([seed, i])
        images[i] = _draw_face(people[who[i]], _expression(int(labels[i]), image_rng), image_rng)
        meter.update(i + 1)
    meter.close(count)
    return images, labels, who, person_split[who]


def prepare_faces(images: np.ndarray, labels: np.ndarray, split: np.ndarray, *, size: int = 28) -> PreparedDataset:
    """Prepare drawn faces in memory exactly as the readers prepare their files."""
    return PreparedDataset(
        images=np.stack([resize(Image.fromarray(image), size) for image in images]),
        labels=labels, split=split.astype("U5"), source=np.full(len(images), "synthetic"), class_names=EXPRESSIONS,
    )


def synthetic_dataset(count: int = 3500, *, seed: int = 0, size: int = 28) -> PreparedDataset:
    """The built-in data set, prepared."""
    images, labels, _, split = generate_faces(count, seed=seed)
    return prepare_faces(images, labels, split, size=size)


SYNTHETIC_VERSION = 1  # bump when the drawing changes, so cached copies are redrawn


def builtin_dataset(count: int = 3500, *, seed: int = 0, size: int = 28) -> PreparedDataset:
    """The built-in set, drawn once and cached as a prepared file (the default data everywhere)."""
    from trainable._io import cache_dir
    from trainable.data._prepared import load_prepared

    path = cache_dir() / f"synthetic-{count}-s{seed}-{size}-v{SYNTHETIC_VERSION}.npz"
    if path.is_file():
        return load_prepared(path)
    dataset = synthetic_dataset(count, seed=seed, size=size)
    dataset.save(path)
    return dataset
