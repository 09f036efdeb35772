"""GPU check (issue 18, item 4): ready to run the first time a machine with an NVIDIA GPU is available.

    python bench/gpu_check.py                     # install the CUDA torch if needed, tests, timings, equivalence
    python bench/gpu_check.py --cpu-only --epochs 1 --obelix-rows 60 --gap-rows 600   # quick, CPU side only

What it does, in order:

1. **Install** (``--install auto``, the default): when ``nvidia-smi`` finds a GPU but the installed torch is a CPU
   build, install the CUDA build of the torch pinned in ``requirements.txt`` exactly as the README's "GPU installs"
   says (``pip install torch==<pin> --index-url https://download.pytorch.org/whl/cu128``; ``--cuda-index`` to pick
   another of PyTorch's indexes), then start again. ``--install no`` never installs; ``--install yes`` always does.
2. **Tests that use CUDA**: ``pytest -m cuda`` on :data:`CUDA_TESTS` (they skip without CUDA).
3. **Timings, GPU against CPU in the same run**: one bimodal-aug epoch on OBELiX's train split (its CIFs; graphs
   built before the clock starts) and one composition epoch on the paper's band-gap table
   (``cosnet_paper/band_gap``, train + val files, ~4.7k rows of the 5.9k; the test file is not used). With
   ``--epochs N`` > 1 the fastest epoch after the first (which includes CUDA start-up) is reported.
4. **Equivalence**: the model trained on the GPU predicts OBELiX's rows on the GPU and, loaded from its saved
   artifact, on the CPU: the largest difference must stay under ``--predict-tolerance`` (in target standard
   deviations). The same seed trained on the CPU is compared too: the mean absolute difference between the two
   runs' predictions must stay under ``--train-tolerance`` (float32 kernels differ, so this one is looser).
5. **One summary line** starting with ``GPU_CHECK`` (exit status 0 when every check that ran passed).

Without CUDA it says "no CUDA", skips the GPU side and still times the CPU side (``--cpu-only`` does that on
purpose). Network: the paper's configuration (a bare ``TrainConfig``: g_C from scratch, 64 wide); one torch thread on
the CPU by default (``--threads``) so CPU figures compare with the rest of ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COSNET_SHARED_DATA", REPO.parent / "shared" / "data"))
#: PyTorch's CUDA wheel index the README names for the pinned release.
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
#: Test files whose ``@pytest.mark.cuda`` tests need a GPU (they skip without one).
CUDA_TESTS = ["tests/cosnet_core/test_cuda.py"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python bench/gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--install", choices=("auto", "yes", "no"), default="auto",
                        help="install the CUDA build of the pinned torch (auto: only when a GPU is seen and torch "
                             "is a CPU build)")
    parser.add_argument("--cuda-index", default=CUDA_INDEX, help="PyTorch wheel index of the CUDA build")
    parser.add_argument("--cpu-only", action="store_true", help="time the CPU side only, even when CUDA is there")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the CUDA test subset")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed fit (>= 1)")
    parser.add_argument("--obelix-rows", type=int, default=0, help="use only the first N OBELiX rows (0: all)")
    parser.add_argument("--gap-rows", type=int, default=0, help="use only the first N band-gap rows (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--predict-tolerance", type=float, default=1e-4,
                        help="largest GPU-vs-CPU prediction difference of one trained model, in target stds")
    parser.add_argument("--train-tolerance", type=float, default=0.05,
                        help="mean difference between a GPU-trained and a CPU-trained run, in target stds")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.obelix_rows < 0 or args.gap_rows < 0:
        parser.error("--obelix-rows and --gap-rows must be 0 (all) or positive")
    return args


def pinned_torch(requirements: Path = REPO / "requirements.txt") -> str:
    """The exact torch version ``requirements.txt`` pins (``torch==X``)."""
    for line in requirements.read_text().splitlines():
        found = re.fullmatch(r"\s*torch==([^\s;#]+)\s*(#.*)?", line)
        if found:
            return found.group(1)
    raise SystemExit(f"{requirements} pins no torch==<version>")


def install_command(version: str, index: str) -> list[str]:
    """The README's CUDA install, for this Python."""
    return [sys.executable, "-m", "pip", "install", f"torch=={version}", "--index-url", index]


def gpu_seen() -> str | None:
    """The first GPU ``nvidia-smi`` lists, or None (no driver, no GPU)."""
    if shutil.which("nvidia-smi") is None:
        return None
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    first = listed.stdout.strip().splitlines()
    return first[0] if listed.returncode == 0 and first else None


def torch_is_cuda_build() -> bool:
    """Whether the installed torch was built with CUDA (checked in a child process: this one has not imported it)."""
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.version.cuda or '')"],
                           capture_output=True, text=True)
    return bool(probe.stdout.strip())


def maybe_install(args: argparse.Namespace) -> None:
    """Step 1: install the CUDA torch and start again, when asked or needed."""
    gpu = gpu_seen()
    needed = args.install == "yes" or (args.install == "auto" and gpu is not None and not torch_is_cuda_build())
    if not needed:
        if args.install == "auto" and gpu is None:
            print("install: no GPU seen by nvidia-smi; the installed torch stays", flush=True)
        return
    command = install_command(pinned_torch(), args.cuda_index)
    print("install:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    os.execv(sys.executable, [sys.executable, __file__, *without_install(sys.argv[1:]), "--install", "no"])


def without_install(argv: list[str]) -> list[str]:
    """The command line without its ``--install X`` / ``--install=X`` (the restart after installing adds ``no``)."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--install":
            skip = True
        elif not argument.startswith("--install="):
            kept.append(argument)
    return kept


def run_cuda_tests(cuda: bool) -> str:
    """Step 2: ``pytest -m cuda`` on the CUDA test files; returns pytest's counts (e.g. ``3 passed``)."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", *CUDA_TESTS],
        cwd=REPO, capture_output=True, text=True,
    )
    tail = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else completed.stderr.strip()
    counts = ",".join(f"{n}{word}" for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail))
    counts = counts or f"none(exit {completed.returncode})"
    print(f"cuda tests ({'CUDA' if cuda else 'no CUDA: they skip'}): {counts}", flush=True)
    if completed.returncode not in (0, 5):  # 5: nothing collected
        print(completed.stdout[-4000:], flush=True)
    return counts


def obelix_rows(limit: int) -> list:
    """OBELiX's train split with its structures (``<`` bounds left out), as :mod:`bench.bench_accuracy` reads it."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_accuracy import obelix_samples

    rows = obelix_samples()
    return rows[:limit] if limit else rows


def band_gap_rows(limit: int) -> tuple[list, list]:
    """The paper's band-gap train and validation files as composition-only rows (the test file is not used)."""
    import pandas as pd

    sys.path.insert(0, str(REPO / "bench"))
    from bench_accuracy import composition_samples

    parts = []
    for name in ("train", "val"):
        frame = pd.read_csv(DATA / "cosnet_paper" / "band_gap" / f"{name}.csv")
        parts.append(composition_samples(frame["composition"], frame["target"], name))
    train, val = parts
    if limit:
        train, val = train[: max(1, limit * 4 // 5)], val[: max(1, limit // 5)]
    return train, val


def split_rows(rows: list, seed: int) -> tuple[list, list]:
    """80/20 train/validation rows by composition (no test rows: only speed and equivalence are measured)."""
    from cosnet_core.splits import grouped_split

    split = grouped_split(rows, fractions=(0.8, 0.2, 0.0), seed=seed)
    return list(split.train), list(split.val)


def timed_fit(train: list, val: list, mode: str, device: str, args: argparse.Namespace, cache) -> tuple:
    """Fit on ``device``; returns the result and the epoch time (the fastest after the first when there are more)."""
    from cosnet_core.train import TrainConfig, fit

    config = TrainConfig(mode=mode, epochs=args.epochs, seed=args.seed, device=device)
    result = fit(train, val, config, cache=cache)
    seconds = [report.seconds for report in result.history]
    return result, (min(seconds[1:]) if len(seconds) > 1 else seconds[0])


def predictions(fitted, rows: list, device: str, cache) -> np.ndarray:
    """Predicted targets of ``rows`` with ``fitted`` run on ``device``."""
    from cosnet_core.predict import predict_samples

    return predict_samples(fitted, rows, cache=cache, device=device).prediction


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    maybe_install(args)
    import numpy as np
    import torch

    from cosnet_core.structure import GraphCache

    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and not args.cpu_only
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if not torch.cuda.is_available():
        print(f"no CUDA: torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}) sees no GPU; "
              "timing the CPU side only", flush=True)
    elif args.cpu_only:
        print(f"--cpu-only: {name} is there but only the CPU side runs", flush=True)
    tests = "skipped" if args.skip_tests else run_cuda_tests(torch.cuda.is_available())
    if not (DATA / "li_conductivity" / "train.csv").is_file():
        print(f"GPU_CHECK result=ERROR reason=no shared data at {DATA} (set COSNET_SHARED_DATA)", flush=True)
        return 2

    devices = ["cpu", "cuda"] if cuda else ["cpu"]
    figures: dict[str, dict[str, float]] = {"obelix_bimodal": {}, "gap_composition": {}}
    checks: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        cache = GraphCache(Path(scratch) / "graphs")
        obelix = obelix_rows(args.obelix_rows)
        train, val = split_rows(obelix, args.seed)
        print(f"OBELiX: {len(train)} train + {len(val)} validation rows, "
              f"{sum(s.structure is not None for s in obelix)} with a structure", flush=True)
        fitted = {}
        for device in devices:
            fitted[device], figures["obelix_bimodal"][device] = timed_fit(train, val, "bimodal-aug", device, args, cache)
            print(f"OBELiX bimodal-aug epoch on {device}: {figures['obelix_bimodal'][device]:.2f} s", flush=True)
        gap_train, gap_val = band_gap_rows(args.gap_rows)
        print(f"band gap (cosnet_paper): {len(gap_train)} train + {len(gap_val)} validation rows", flush=True)
        for device in devices:
            _, figures["gap_composition"][device] = timed_fit(gap_train, gap_val, "composition", device, args, cache)
            print(f"band-gap composition epoch on {device}: {figures['gap_composition'][device]:.2f} s", flush=True)

        if cuda:
            from cosnet_core.artifact import load_artifact, save_artifact

            std = float(np.std([s.target for s in obelix])) or 1.0
            on_gpu = predictions(fitted["cuda"], obelix, "cuda", cache)
            path = save_artifact(Path(scratch) / "gpu-run.pt", fitted["cuda"])
            on_cpu = predictions(load_artifact(path), obelix, "cpu", cache)
            same_model = float(np.max(np.abs(on_gpu - on_cpu))) / std
            cpu_trained = predictions(fitted["cpu"], obelix, "cpu", cache)
            two_runs = float(np.mean(np.abs(on_cpu - cpu_trained))) / std
            ok &= same_model <= args.predict_tolerance and two_runs <= args.train_tolerance
            checks = [f"same_model_gpu_vs_cpu_max={same_model:.2e}std(<= {args.predict_tolerance:g})",
                      f"gpu_run_vs_cpu_run_mean={two_runs:.2e}std(<= {args.train_tolerance:g})"]
    ok &= not re.search(r"\d+(failed|error)", tests) and not tests.startswith("none")

    def timing(key: str) -> str:
        cpu, gpu = figures[key]["cpu"], figures[key].get("cuda")
        return f"{key}_epoch cpu={cpu:.2f}s" + (f" gpu={gpu:.2f}s speedup={cpu / gpu:.1f}x" if gpu else " gpu=none")

    result = ("PASS" if ok else "FAIL") if cuda else ("CPU-ONLY" if ok else "FAIL")
    print(" ".join([
        "GPU_CHECK", f"device={(name or 'none').replace(' ', '_')}", f"torch={torch.__version__}",
        f"cuda={torch.version.cuda or 'none'}", f"tests={tests}", timing("obelix_bimodal"),
        timing("gap_composition"), f"epochs={args.epochs}", f"threads={args.threads}", *checks,
        f"result={result}",
    ]), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
