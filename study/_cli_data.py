"""The ``data`` commands: the built-in set, preparing and fusing data sets, the paper's pickles."""

from __future__ import annotations

import argparse
from pathlib import Path

from study._command import DEFAULT_STORAGE, Command, add_storage, at_least
from trainable.errors import UserError


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


def _save(dataset, out: Path) -> int:
    """Write a prepared file and say what it holds."""
    dataset.save(out)
    _print_info(out, dataset)
    return 0


class DataSynth(Command):
    help = "write the built-in synthetic expression set in FER-2013's published forms"
    description = ("Draw the built-in synthetic faces and write them as fer2013.csv, as image folders "
                   "(images/train/<expression>/*.png) and as a prepared file (synthetic.npz).")
    FORMS = ("csv", "folders", "prepared")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="output folder")
        parser.add_argument("--count", type=int, default=3500, help="number of images (default 3500)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        parser.add_argument("--size", type=int, default=28, help="side of the prepared images (default 28)")
        parser.add_argument("--forms", default=",".join(self.FORMS),
                            help="comma-separated forms to write: csv, folders, prepared (default all)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import EXPRESSIONS, generate_faces, prepare_faces, write_fer_csv, write_image_folders

        out = Path(args.out)
        at_least("--count", args.count, len(EXPRESSIONS))  # one face per expression at least
        at_least("--seed", args.seed, 0)
        at_least("--size", args.size, 1)
        forms = set(args.forms.split(","))
        unknown = forms - set(self.FORMS)
        if unknown:
            raise UserError(f"--forms: unknown form(s) {sorted(unknown)}; expected csv, folders, prepared")
        images, labels, _, split = generate_faces(args.count, seed=args.seed, progress=True)
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


class DataPrepare(Command):
    help = "read a data set in its published form into one prepared .npz file"
    description = ("Read FER-2013 (fer2013.csv or its image folders), MMAFEDB (image folders) or any "
                   "class-folder data set; convert to grayscale, resize, and write one compressed .npz.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from trainable.data import FORMATS  # light: numpy and Pillow

        parser.add_argument("source", type=Path, help="fer2013.csv, or a folder of split/class or class folders")
        parser.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
        parser.add_argument("--format", choices=FORMATS, default="auto", help="input form (default: auto-detect)")
        parser.add_argument("--size", type=int, default=28,
                            help="side of the prepared images (default 28, as in the paper)")
        parser.add_argument("--name", help="source name recorded for each image (default from the format or folder)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import read_any

        at_least("--size", args.size, 1)
        dataset = read_any(args.source, fmt=args.format, size=args.size, source=args.name, progress=True)
        return _save(dataset, args.out)


class DataFuse(Command):
    help = "merge prepared sets into one (the paper's 'fuse')"
    description = "Merge prepared data sets, recording each image's source."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", type=Path, help="prepared files to merge")
        parser.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import fuse, load_prepared

        dataset = fuse([load_prepared(path) for path in args.inputs], names=[str(p) for p in args.inputs])
        return _save(dataset, args.out)


class DataInfo(Command):
    help = "summarise a prepared file"
    description = "Print size, classes, sources, counts per split and the content hash."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--grid", type=Path, help="also write a PNG grid of training images, one row per class")
        parser.add_argument("--columns", type=int, default=12, help="images per row of the grid (default 12)")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import load_prepared
        from trainable.grid import class_grid, save_grid

        dataset = load_prepared(args.file)
        _print_info(args.file, dataset)
        if args.grid:
            train = dataset.select("train")
            save_grid(class_grid(train.images, train.labels, dataset.num_classes, args.columns), args.grid, scale=3)
            print(f"grid of training images (rows = {', '.join(dataset.class_names)}): {args.grid}")
        return 0


class DataExportPickle(Command):
    help = "write the paper's pickle pair (images, labels)"
    description = "Write uint8 images (N,S,S,1) and labels (N,) as two pickles."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="prepared file")
        parser.add_argument("--images", required=True, type=Path)
        parser.add_argument("--labels", required=True, type=Path)
        parser.add_argument("--split", choices=("train", "valid", "test"), help="export one split only")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import export_pickle, load_prepared

        count = export_pickle(load_prepared(args.file), args.images, args.labels, split=args.split)
        print(f"wrote {count} images to {args.images} and labels to {args.labels}")
        return 0


class DataImportPickle(Command):
    help = "read the paper's pickle pair, safely"
    description = ("Read an images pickle and a labels pickle through a restricted unpickler that "
                   "accepts numpy arrays and nothing else (a pickle can run code).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", required=True, type=Path)
        parser.add_argument("--labels", required=True, type=Path)
        parser.add_argument("--out", required=True, type=Path, help="prepared file to write (.npz)")
        parser.add_argument("--class-names", help="comma-separated class names (default: the 7 expressions)")
        parser.add_argument("--name", default="pickle", help="source name (default 'pickle')")

    def run(self, args: argparse.Namespace) -> int:
        from trainable.data import import_pickle

        class_names = tuple(args.class_names.split(",")) if args.class_names else None
        dataset = import_pickle(args.images, args.labels, class_names=class_names, source=args.name)
        return _save(dataset, args.out)


def add_source(parser: argparse.ArgumentParser) -> None:
    """SOURCE and --rank, --storage: one trial, named by its folder or by its rank in a study."""
    parser.add_argument("source", metavar="SOURCE",
                        help="a trial folder (local, or inside a study), or a study (folder or name)")
    parser.add_argument("--rank", type=int, default=1,
                        help="with a study: the trial at this rank of the ranking `analyze` prints (default 1)")
    add_storage(parser, f"where a study named by its name is (default {DEFAULT_STORAGE})")
