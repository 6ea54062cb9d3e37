#!/usr/bin/env bash
# Run HERE, before benchmarks/gpu_study.sh's call: fills .whl/ (git-ignored through
# .git/info/exclude) with the packages a study needs that the GPU machine's image lacks, for its
# Python 3.12: Ray, Optuna and what they need beyond the image (which has pandas, pyarrow, numpy,
# pillow, tqdm, requests, pyyaml, msgpack, protobuf, grpcio, click, filelock). Ray's wheel is 79 MB
# and a call carries 64 MiB in all, so its Java jars and the dashboard's source maps (neither used
# by a study) are left out of it: about 45 MB. plotly stays here: the dashboard is written here from
# the study folder the call brings back (cgan-study analyze).
#
#     bash benchmarks/gpu_wheels.sh        # then: device run with carry [".whl"]
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
packages=(ray=="$(version ray)" optuna=="$(version optuna)" sqlalchemy=="$(version sqlalchemy)"
          alembic=="$(version alembic)" mako=="$(version mako)" colorlog=="$(version colorlog)"
          jsonschema=="$(version jsonschema)" jsonschema-specifications=="$(version jsonschema-specifications)"
          referencing=="$(version referencing)" rpds-py=="$(version rpds-py)")
platforms=()
for platform in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
                manylinux2014_x86_64 manylinux1_x86_64; do platforms+=(--platform "$platform"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d .whl "${packages[@]}"
python3 - <<'PY'
import pathlib, zipfile
wheel = next(pathlib.Path(".whl").glob("ray-*.whl"))
stripped = wheel.with_suffix(".tmp")
with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(stripped, "w", zipfile.ZIP_DEFLATED) as target:
    for item in source.infolist():
        if not (item.filename.startswith("ray/jars/") or item.filename.endswith(".js.map")):
            target.writestr(item, source.read(item))
stripped.replace(wheel)
PY
du -shc .whl/* | tail -1
