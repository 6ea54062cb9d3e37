"""Data figures: synthetic generation time, preparation throughput, prepared file size.

The CSV reader is compared with a straightforward reference timed in the same run
(pandas.read_csv, then per row str.split -> np.array -> PIL resize), so the ratio holds on
a busy shared machine where absolute seconds do not.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from trainable.data import generate_faces, read_fer_csv, read_image_folders, write_fer_csv, write_image_folders


def reference_csv_reader(path: Path, size: int = 28) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(path)
    return np.stack([
        np.asarray(Image.fromarray(np.array(p.split(), dtype=np.uint8).reshape(48, 48))
                   .resize((size, size), Image.Resampling.LANCZOS))
        for p in frame["pixels"]
    ])


def timed(function, *args, repeat: int = 3, **kwargs):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3500, help="synthetic images (default 3500)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        generate_seconds, (images, labels, _, split) = timed(generate_faces, args.count, seed=0, repeat=1)
        print(f"synthetic set: {args.count} faces 48x48 in {generate_seconds:.2f} s "
              f"({args.count / generate_seconds:,.0f} images/s)")
        write_fer_csv(images, labels, split, folder / "fer2013.csv")
        write_image_folders(images, labels, split, folder / "images")

        csv_seconds, dataset = timed(read_fer_csv, folder / "fer2013.csv")
        reference_seconds, reference = timed(reference_csv_reader, folder / "fer2013.csv")
        assert np.array_equal(reference, dataset.images), "reference and reader disagree"
        folder_seconds, _ = timed(read_image_folders, folder / "images")
        print(f"prepare fer2013.csv: {args.count / csv_seconds:,.0f} images/s "
              f"(reference pandas loop {args.count / reference_seconds:,.0f} images/s, "
              f"ratio {reference_seconds / csv_seconds:.2f}x)")
        print(f"prepare image folders: {args.count / folder_seconds:,.0f} images/s")
        path = dataset.save(folder / "prepared.npz")
        size = path.stat().st_size
        csv_size = (folder / "fer2013.csv").stat().st_size
        print(f"prepared file: {size / 1e6:.2f} MB for {args.count} images 28x28 "
              f"({size / args.count:.0f} B/image; the CSV is {csv_size / 1e6:.1f} MB)")
        # The real FER-2013 (35,887 images) and MMAFEDB (~128k) scale linearly from these figures.
        print(f"estimated fer2013.csv (35,887 rows): {35887 * csv_seconds / args.count:.1f} s")


if __name__ == "__main__":
    main()
