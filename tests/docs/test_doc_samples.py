"""The documentation's samples are real: its transcripts are run and its test examples pass.

See docsamples.py for how a sample is marked. A page's transcripts run in order, in one place:
a ``vlab up`` in one block stays up for the blocks after it (the "other shell"), and is stopped
with Ctrl-C when the page ends.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docsamples import Command, blocks, mismatch, transcript

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md"))
TRANSCRIPTS = [p for p in PAGES if blocks(p, "console")]
EXAMPLES = [
    (page, line, body)
    for page in PAGES
    for line, body in blocks(page, "python")
    if "def test_" in body or ".TestCase" in body
]
UP_READY = "Ctrl-C tears the lab down"


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VLAB_STATE_DIR"] = str(tmp_path / "state")
    return env


def _up(command: Command, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a ``vlab up`` as a second terminal would, and read its output until it is ready."""
    proc = subprocess.Popen(
        shlex.split(command.argv),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(UP_READY):
            return proc, lines
    proc.kill()
    proc.wait()
    raise AssertionError(f"{command.argv} never became ready:\n" + "\n".join(lines))


@pytest.mark.vlab
@pytest.mark.parametrize("page", TRANSCRIPTS, ids=[p.name for p in TRANSCRIPTS])
def test_transcripts_match_real_output(page: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    ups: list[subprocess.Popen[str]] = []
    try:
        for line, body in blocks(page, "console"):
            for command in transcript(line, body):
                if command.argv.startswith("vlab up "):
                    proc, output = _up(command, env)
                    ups.append(proc)
                else:
                    done = subprocess.run(
                        shlex.split(command.argv),
                        cwd=ROOT,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    output = (done.stdout + done.stderr).splitlines()
                problem = mismatch(command.expected, output, ROOT)
                assert problem is None, f"{page.name}:{command.line}: $ {command.argv}\n{problem}"
    finally:
        for proc in ups:  # Ctrl-C, as the page says; a lab that will not go is killed
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.mark.vlab
@pytest.mark.parametrize("page,line,body", EXAMPLES, ids=[f"{p.name}:{n}" for p, n, _ in EXAMPLES])
def test_examples_pass(page: Path, line: int, body: str, tmp_path: Path) -> None:
    module = tmp_path / f"test_{page.stem.replace('-', '_')}_{line}.py"
    module.write_text(body)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--vlab", "-q", "-p", "no:cacheprovider", str(module)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{page.name}:{line}:\n{done.stdout}{done.stderr}"
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout


def test_there_are_samples() -> None:
    assert TRANSCRIPTS and EXAMPLES
