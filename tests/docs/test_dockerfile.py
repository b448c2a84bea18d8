"""The Dockerfile's install steps and default command, run in a clean venv (no container
builder runs on the CI machines: no daemon, and rootless podman needs user namespaces)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")

pytestmark = pytest.mark.slow


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def test_the_image_is_slim_runs_as_a_user_and_defaults_to_the_demo() -> None:
    steps = instructions()
    bases = [args for word, args in steps if word == "FROM"]
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["tsos-rules"]') in final
    assert ("CMD", '["sync", "--html", "/state/tsos-report.html"]') in final
    copied = {
        source
        for word, args in steps
        if word == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    }
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert copied == {"pyproject.toml", "README.md", "src"}
    for name in copied:
        assert f"!{name}" in ignore


def test_the_install_steps_and_the_default_command_work(tmp_path: Path) -> None:
    """The image's pip steps, literally, with /src, /wheels and /state moved under tmp_path."""
    source, wheels, state = tmp_path / "src", tmp_path / "wheels", tmp_path / "state"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TSOS_RULES_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip_steps = [args for word, args in instructions() if word == "RUN" and " pip " in args]
    assert len(pip_steps) == 2
    for step in pip_steps:
        command = step.replace("/wheels", str(wheels))
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
    assert not wheels.exists(), "the run stage removes the wheels it installed"

    env["TSOS_RULES_DATA_DIR"] = str(state)  # the image's ENV
    state.mkdir()
    cmd = ["sync", "--html", str(state / "tsos-report.html"), "--format", "json"]
    demo = subprocess.run(
        [str(bin_dir / "tsos-rules"), *cmd],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert demo.returncode == 1, demo.stderr  # the demo org has open block findings
    assert json.loads(demo.stdout)["actions"]["written"] > 1000
    assert (state / "tsos-report.html").stat().st_size > 10_000
    assert (state / "demo-crm.sqlite3").exists() and (state / "state.sqlite3").exists()
