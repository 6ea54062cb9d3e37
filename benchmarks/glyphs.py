"""A second data set, of another kind than faces, for checking that the study's defaults were not
tuned to the built-in one: the ten digits drawn in DejaVu's fonts (the TrueType fonts Debian and
most Linux machines ship), as class folders of 48x48 PNGs that `data prepare --format folders`
reads.

Each image is one digit in one of the fonts (sans, serif, mono; regular, bold, oblique,
condensed), at a random size, stroke, slant, rotation and position, dark on light or light on
dark, with a lighting gradient, blur and noise: ten classes, not seven, and strokes, not faces.

    python benchmarks/glyphs.py --out DIR [--count 3500] [--seed 0]
    cgan-study data prepare DIR --format folders --out glyphs.npz --name glyphs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/TTF"), Path("/usr/share/fonts/dejavu"))
SIDE = 48
SPLITS = (("train", 0.8), ("valid", 0.1), ("test", 0.1))


def fonts() -> list[Path]:
    found = sorted(path for folder in FONT_DIRS if folder.is_dir() for path in folder.glob("DejaVu*.ttf"))
    if not found:
        raise SystemExit(f"no DejaVu fonts in {', '.join(map(str, FONT_DIRS))} (Debian: apt-get install fonts-dejavu-core)")
    return found


def draw(digit: int, font_path: Path, rng: np.random.Generator) -> Image.Image:
    canvas = 96
    ink, paper = (rng.uniform(0, 70), rng.uniform(170, 255))
    if rng.random() < 0.4:
        ink, paper = paper, ink
    image = Image.new("L", (canvas, canvas), int(paper))
    font = ImageFont.truetype(str(font_path), size=int(rng.uniform(48, 70)))
    pen = ImageDraw.Draw(image)
    box = pen.textbbox((0, 0), str(digit), font=font)
    x = (canvas - (box[2] - box[0])) / 2 - box[0] + rng.uniform(-6, 6)
    y = (canvas - (box[3] - box[1])) / 2 - box[1] + rng.uniform(-6, 6)
    pen.text((x, y), str(digit), fill=int(ink), font=font, stroke_width=int(rng.integers(0, 3)),
             stroke_fill=int(ink))
    image = image.rotate(rng.uniform(-15, 15), resample=Image.BICUBIC, fillcolor=int(paper))
    shear = rng.uniform(-0.25, 0.25)
    image = image.transform(image.size, Image.AFFINE, (1, shear, -shear * canvas / 2, 0, 1, 0),
                            resample=Image.BICUBIC, fillcolor=int(paper))
    return finish(image, rng)


def finish(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A drawn canvas as a photographed one: a lighting gradient, shrunk to SIDE, blur and noise."""
    canvas = image.size[0]
    pixels = np.asarray(image, dtype=np.float32)
    ramp = np.linspace(-1, 1, canvas, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    pixels += rng.uniform(0, 40) * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((SIDE, SIDE), Image.LANCZOS)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 10), (SIDE, SIDE))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_set(out: Path, count: int, classes: list[str], draw_one, rng: np.random.Generator) -> None:
    """``count`` images, the classes in turn, as class folders under train/, valid/ and test/."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: not empty")
    for index in range(count):
        label = index % len(classes)
        split = SPLITS[np.searchsorted(np.cumsum([share for _, share in SPLITS]), rng.random())][0]
        folder = out / split / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        draw_one(label, rng).save(folder / f"{index:05d}.png")


def set_arguments(doc: str, count: int) -> argparse.Namespace:
    """The command line of a set script: --out, --count (default ``count``), --seed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", required=True, help="the folder to write train/, valid/, test/ into")
    parser.add_argument("--count", type=int, default=count)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def set_command(doc: str, count: int, classes: list[str], draw_one, noun: str) -> None:
    """A set script's main: its arguments, then ``count`` images of ``classes`` drawn by ``draw_one``."""
    args = set_arguments(doc, count)
    write_set(Path(args.out), args.count, classes, draw_one, np.random.default_rng(args.seed))
    print(f"{args.count} images of {len(classes)} {noun} under {args.out}")


def main() -> None:
    args = set_arguments(__doc__, 3500)
    out, rng, faces = Path(args.out), np.random.default_rng(args.seed), fonts()
    write_set(out, args.count, [str(digit) for digit in range(10)],
              lambda digit, rng: draw(digit, faces[int(rng.integers(len(faces)))], rng), rng)
    print(f"{args.count} images of 10 digits in {len(faces)} fonts under {out}")


if __name__ == "__main__":
    main()
