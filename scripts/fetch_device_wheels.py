"""Download into `.device-wheels/` the wheels a GPU session's image lacks for pgjax, brax,
brax's own PPO (the peer in `scripts/device_rows.sh brax`) and xminigrid, for CPython 3.12 on
manylinux x86_64.

usage: python scripts/fetch_device_wheels.py [--dest .device-wheels] [--dry-run]

How the set is found: pip resolves pgjax's dependencies with the `brax` and `xminigrid` extras for that
platform from metadata alone (`pip install --dry-run --ignore-installed --report`), with
the versions pgjax's tests ran with pinned (`TESTED`); every distribution the image already
has (`IMAGE`, the package list published for the lent GPU machines) and every one in `OMIT` is
dropped, and the rest is downloaded with `--no-deps`. The image has no package index, so these wheels travel with
the working tree (`carry: [".device-wheels"]`, 64 MiB for everything that travels): the
script prints their total and the working tree's. `scripts/device_rows.sh` installs them
with `pip install --no-index --no-deps --target` and checks each one's requirements
against what the image has before training.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_27_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
            "--platform", "manylinux1_x86_64", "--platform", "any"]
# The versions in the venv pgjax's tests run with (brax's own dependencies are unpinned there:
# a newer mujoco would travel untested).
TESTED = ["brax==0.14.2", "mujoco==4.0.1", "mujoco-core==4.0.1", "mujoco-mjx==3.17.0", "gymnax==1.0.1",
          "gymnasium==1.3.0", "flashbax==0.1.3", "xminigrid==0.9.3"]
# Declared but not needed by pgjax: xminigrid requires imageio-ffmpeg (a wheel that bundles an
# ffmpeg binary, about half the 64 MiB a call carries) only for manual_control's video writing.
OMIT = {"imageio-ffmpeg"}
# The GPU image's Python packages, as the list published for the lent GPU machines names them.
_IMAGE_TEXT = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""
IMAGE = set(_IMAGE_TEXT.split())


def canonical(name: str) -> str:
    """PEP 503 name: runs of -_. as one '-', lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *extras["brax"], *extras["xminigrid"]]


def resolve(reqs: list[str], pins: list[str]) -> dict[str, str]:
    """{name: version} of everything pip installs for `reqs` on the image's platform."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "tested.txt"
        constraints.write_text("\n".join(pins) + "\n")
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                        "--report", str(report), "-c", str(constraints), *PLATFORM, *reqs], check=True)
        return {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}


def missing(resolved: dict[str, str], image: set[str]) -> dict[str, str]:
    """The resolved distributions whose canonical name the image lacks."""
    have = {canonical(n) for n in image}
    return {n: v for n, v in sorted(resolved.items(), key=lambda kv: canonical(kv[0])) if canonical(n) not in have}


def travelling_bytes() -> int:
    """Bytes of the tracked and not-ignored untracked files: the working tree a device call sends."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / os.fsdecode(p)).stat().st_size for p in listed if p and (ROOT / os.fsdecode(p)).is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".device-wheels")
    parser.add_argument("--dry-run", action="store_true", help="print the set, download nothing")
    args = parser.parse_args(argv)
    wanted = missing(resolve(requirements(), TESTED), IMAGE | OMIT)
    print(f"{len(wanted)} distributions the image lacks: " + ", ".join(f"{n}=={v}" for n, v in wanted.items()))
    if args.dry_run:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *PLATFORM, "-d", tmp,
                        *(f"{n}=={v}" for n, v in wanted.items())], check=True)
        got = sorted(Path(tmp).glob("*.whl"))
        if len(got) != len(wanted):
            print(f"fetch_device_wheels: {len(got)} wheels for {len(wanted)} distributions", file=sys.stderr)
            return 1
        args.dest.mkdir(parents=True, exist_ok=True)
        for old in args.dest.glob("*.whl"):
            old.unlink()
        for w in got:
            shutil.move(str(w), args.dest / w.name)
    wheels = sorted(args.dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:8.2f} MiB  {w.name}")
    tree = travelling_bytes()
    print(f"wheels: {total / 2**20:.1f} MiB in {args.dest}; working tree without them {tree / 2**20:.1f} MiB; "
          f"together {(total + tree) / 2**20:.1f} MiB of the 64 MiB a device call carries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
