"""The default suite's time budget (conftest.py) fails a session whose slowest test is too slow."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def run_pytest(tmp_path: Path, budget: str, marker: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "test_sleepy.py").write_text(
        f"import time\nimport pytest\n\n{marker}\ndef test_sleepy():\n    time.sleep(0.6)\n")
    env = dict(os.environ, GEN_TEST_BUDGET_S=budget, PYTHONPATH=str(TESTS))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider",
         "-m", "slow or not slow", "--rootdir", str(tmp_path), str(tmp_path / "test_sleepy.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_test_over_budget_fails_the_session(tmp_path):
    proc = run_pytest(tmp_path, "0.5")
    assert proc.returncode == 1, proc.stdout
    assert "1 passed" in proc.stdout and "took longer than 0.5 s" in proc.stdout
    assert run_pytest(tmp_path, "5").returncode == 0


def test_slow_tests_are_exempt(tmp_path):
    assert run_pytest(tmp_path, "0.5", marker="@pytest.mark.slow").returncode == 0
