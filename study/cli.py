"""The ``cgan-study`` console script: one entry point, a table of subcommands.

Heavy imports (torch, ray, plotly) happen inside the subcommand that needs them, so
``cgan-study --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from trainable.errors import UserError


def _data_synth(args: argparse.Namespace) -> int:
    from trainable.data import generate_faces, prepare_faces, write_fer_csv, write_image_folders

    out = Path(args.out)
    images, labels, _, split = generate_faces(args.count, seed=args.seed, progress=True)
    forms = set(args.forms.split(","))
    unknown = forms - {"csv", "folders", "prepared"}
    if unknown:
        raise UserError(f"--forms: unknown form(s) {sorted(unknown)}; expected csv, folders, prepared")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "csv" in forms:
        written.append(write_fer_csv(images, labels, split, out / "fer2013.csv"))
    if "folders" in forms:
        written.append(write_image_folders(images, labels, split, out / "images"))
    if "prepared" in forms:
        written.append(prepare_faces(images, labels, split, size=args.size).save(out / "synthetic.npz"))
    for path in written:
        print(path)
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from trainable.data import read_any

    dataset = read_any(args.source, fmt=args.format, size=args.size, source=args.name, progress=True)
    dataset.save(args.out)
    _print_info(args.out, dataset)
    return 0


def _data_fuse(args: argparse.Namespace) -> int:
    from trainable.data import fuse, load_prepared

    dataset = fuse([load_prepared(path) for path in args.inputs], names=[str(p) for p in args.inputs])
    dataset.save(args.out)
    _print_info(args.out, dataset)
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from trainable.data import load_prepared
    from trainable.grid import class_grid, save_grid

    dataset = load_prepared(args.file)
    _print_info(args.file, dataset)
    if args.grid:
        train = dataset.select("train")
        save_grid(class_grid(train.images, train.labels, dataset.num_classes, args.columns), args.grid, scale=3)
        print(f"grid of training images (rows = {', '.join(dataset.class_names)}): {args.grid}")
    return 0


def _print_info(path: str | Path, dataset) -> None:
    import numpy as np

    print(f"{path}: {len(dataset.images)} images {dataset.size}x{dataset.size}, "
          f"{dataset.num_classes} classes, content hash {dataset.content_hash}")
    sources, counts = np.unique(dataset.source, return_counts=True)
    print("sources: " + ", ".join(f"{s} {c}" for s, c in zip(sources.tolist(), counts.tolist())))
    per_split = dataset.counts()
    width = max(len(n) for n in dataset.class_names)
    print(f"{'class':<{width}} " + " ".join(f"{s:>7}" for s in per_split))
    for label, name in enumerate(dataset.class_names):
        print(f"{name:<{width}} " + " ".join(f"{per_split[s][label]:>7}" for s in per_split))


def _data_export_pickle(args: argparse.Namespace) -> int:
    from trainable.data import export_pickle, load_prepared

    count = export_pickle(load_prepared(args.file), args.images, args.labels, split=args.split)
    print(f"wrote {count} images to {args.images} and labels to {args.labels}")
    return 0


def _data_import_pickle(args: argparse.Namespace) -> int:
    from trainable.data import import_pickle

    class_names = tuple(args.class_names.split(",")) if args.class_names else None
    dataset = import_pickle(args.images, args.labels, class_names=class_names, source=args.name)
    dataset.save(args.out)
    _print_info(args.out, dataset)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cgan-study",
        description="Hyper-parameter studies of the paper's conditional GAN for facial expressions.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    data = commands.add_parser("data", help="generate, prepare, fuse and inspect data sets",
                               description="Generate, prepare, fuse and inspect data sets.")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_commands.add_parser(
        "synth", help="write the built-in synthetic expression set in FER-2013's published forms",
        description="Draw the built-in synthetic faces and write them as fer2013.csv, as image "
                    "folders (images/train/<expression>/*.png) and as a prepared file (synthetic.npz).")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--count", type=int, default=3500, help="number of images (default 3500)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--size", type=int, default=28, help="side of the prepared images (default 28)")
    synth.add_argument("--forms", default="csv,folders,prepared",
                       help="comma-separated forms to write: csv, folders, prepared (default all)")
    synth.set_defaults(handler=_data_synth)

    from trainable.data._readers import FORMATS  # light: numpy and Pillow only

    prepare = data_commands.add_parser(
        "prepare", help="read a data set in its published form into one prepared .npz file",
        description="Read FER-2013 (fer2013.csv or its image folders), MMAFEDB (image folders) or any "
                    "class-folder data set; convert to grayscale, resize, and write one compressed .npz.")
    prepare.add_argument("source", type=Path, help="fer2013.csv, or a folder of split/class or class folders")
    prepare.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
    prepare.add_argument("--format", choices=FORMATS, default="auto", help="input form (default: auto-detect)")
    prepare.add_argument("--size", type=int, default=28, help="side of the prepared images (default 28, as in the paper)")
    prepare.add_argument("--name", help="source name recorded for each image (default from the format or folder)")
    prepare.set_defaults(handler=_data_prepare)

    fuse = data_commands.add_parser("fuse", help="merge prepared sets into one (the paper's 'fuse')",
                                    description="Merge prepared data sets, recording each image's source.")
    fuse.add_argument("inputs", nargs="+", type=Path, help="prepared files to merge")
    fuse.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
    fuse.set_defaults(handler=_data_fuse)

    info = data_commands.add_parser("info", help="summarise a prepared file",
                                    description="Print size, classes, sources, counts per split and the content hash.")
    info.add_argument("file", type=Path)
    info.add_argument("--grid", type=Path, help="also write a PNG grid of training images, one row per class")
    info.add_argument("--columns", type=int, default=12, help="images per row of the grid (default 12)")
    info.set_defaults(handler=_data_info)

    export = data_commands.add_parser("export-pickle", help="write the paper's pickle pair (images, labels)",
                                      description="Write uint8 images (N,S,S,1) and labels (N,) as two pickles.")
    export.add_argument("file", type=Path, help="prepared file")
    export.add_argument("--images", required=True, type=Path)
    export.add_argument("--labels", required=True, type=Path)
    export.add_argument("--split", choices=("train", "valid", "test"), help="export one split only")
    export.set_defaults(handler=_data_export_pickle)

    imp = data_commands.add_parser(
        "import-pickle", help="read the paper's pickle pair, safely",
        description="Read an images pickle and a labels pickle through a restricted unpickler that "
                    "accepts numpy arrays and nothing else (a pickle can run code).")
    imp.add_argument("--images", required=True, type=Path)
    imp.add_argument("--labels", required=True, type=Path)
    imp.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
    imp.add_argument("--class-names", help="comma-separated class names (default: the 7 expressions)")
    imp.add_argument("--name", default="pickle", help="source name (default 'pickle')")
    imp.set_defaults(handler=_data_import_pickle)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"cgan-study: error: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        print(f"cgan-study: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `cgan-study ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("cgan-study: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
