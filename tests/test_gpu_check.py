"""``bench/gpu_check.py`` (issue 18, item 4): its command line, the install it would run, and its CPU path."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, shared_data_dir

SCRIPT = REPO_ROOT / "bench" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_is_the_readme_command_for_the_pinned_torch():
    check = _module()
    version = check.pinned_torch()
    assert f"torch=={version}" in (REPO_ROOT / "requirements.txt").read_text().split()
    command = check.install_command(version, check.CUDA_INDEX)
    assert command[:3] == [sys.executable, "-m", "pip"]
    assert " ".join(command[3:]) in (REPO_ROOT / "README.md").read_text()  # "install torch==… --index-url …/cu128"


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--obelix-rows", "-1"], ["--install", "maybe"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        _module().parse_args(argv)
    assert stop.value.code == 2


def test_the_restart_after_installing_drops_only_the_install_choice():
    check = _module()
    argv = ["--epochs", "2", "--install", "yes", "--cpu-only", "--install=auto", "--gap-rows", "10"]
    assert check.without_install(argv) == ["--epochs", "2", "--cpu-only", "--gap-rows", "10"]
    assert check.parse_args([*check.without_install(argv), "--install", "no"]).install == "no"


def test_cuda_tests_exist_and_are_marked():
    for path in _module().CUDA_TESTS:
        assert "pytest.mark.cuda" in (REPO_ROOT / path).read_text()


@pytest.mark.slow
def test_cpu_path_times_both_tables_and_prints_one_summary_line():
    if not (shared_data_dir() / "li_conductivity" / "train.csv").is_file():
        pytest.skip(f"shared data folder {shared_data_dir()} is absent")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-only", "--install", "no", "--epochs", "1", "--obelix-rows", "40",
         "--gap-rows", "200", "--skip-tests"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COSNET_SHARED_DATA": str(shared_data_dir())},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = [line for line in done.stdout.splitlines() if line.startswith("GPU_CHECK")]
    assert len(summary) == 1, done.stdout
    line = summary[0]
    assert line.endswith("result=CPU-ONLY"), line
    for table in ("obelix_bimodal", "gap_composition"):
        timed = re.search(rf"{table}_epoch cpu=([0-9.]+)s gpu=none", line)
        assert timed and float(timed.group(1)) > 0, line
    assert re.search(r"OBELiX: 32 train \+ 8 validation rows, \d+ with a structure", done.stdout), done.stdout
    assert "band gap (cosnet_paper): 160 train + 40 validation rows" in done.stdout
    if "no CUDA" not in done.stdout:
        assert "--cpu-only" in done.stdout  # a CUDA machine says why its GPU is not used
