"""scripts/offer-streamlit.sh: a .venv without Streamlit does not stay behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "offer-streamlit.sh"


def run_offer(checkout: Path) -> subprocess.CompletedProcess:
    """Run a copy of the script in `checkout` without a terminal, so the install is declined."""
    (checkout / "scripts").mkdir(exist_ok=True)
    shutil.copy(SCRIPT, checkout / "scripts" / SCRIPT.name)
    environment = {name: value for name, value in os.environ.items()
                   if name != "FLUXLIT_INSTALL_STREAMLIT"}
    return subprocess.run(
        ["bash", str(checkout / "scripts" / SCRIPT.name), "/usr/bin/python3"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=environment, timeout=120,
    )


def test_created_venv_removed(tmp_path: Path) -> None:
    completed = run_offer(tmp_path)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "Streamlit is not installed" in completed.stdout
    assert not (tmp_path / ".venv").exists()


def test_existing_venv_is_kept(tmp_path: Path) -> None:
    # A .venv that was there before belongs to the user, whatever happens to the install.
    pip = tmp_path / ".venv" / "bin" / "pip"
    pip.parent.mkdir(parents=True)
    pip.write_text("#!/bin/sh\nexit 1\n")
    pip.chmod(0o755)
    completed = run_offer(tmp_path)
    assert completed.returncode == 1
    assert pip.exists()


def test_pipless_venv_untouched(tmp_path: Path) -> None:
    # A venv made without pip (python -m venv --without-pip) is the user's. The script must
    # neither rebuild it nor remove it.
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
                   check=True)
    config = (tmp_path / ".venv" / "pyvenv.cfg").read_text()
    notes = tmp_path / ".venv" / "notes.txt"
    notes.write_text("mine\n")
    completed = run_offer(tmp_path)
    assert completed.returncode == 1
    assert "has no pip" in completed.stdout
    assert notes.read_text() == "mine\n"
    assert (tmp_path / ".venv" / "pyvenv.cfg").read_text() == config



def test_interrupted_creation_cleaned(tmp_path: Path) -> None:
    # A .venv left half-made by an interrupt would look like someone else's to the next run.
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / SCRIPT.name)
    process = subprocess.Popen(["bash", str(tmp_path / "scripts" / SCRIPT.name)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (tmp_path / ".venv").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / ".venv").exists(), "the script created no .venv"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    assert not (tmp_path / ".venv").exists()
