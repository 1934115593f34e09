"""The fuzz targets of tests/fuzz/ for a bounded run in CI (docs/security.md "Fuzzing"):
each target runs under atheris (coverage-guided) for ``DUALMAIL_FUZZ_RUNS`` inputs
(default 3000, a few seconds each) in a subprocess, from its seed corpus; where atheris
cannot be installed, hypothesis drives the same ``TestOneInput``. Every input that once
crashed a target is kept in ``tests/fuzz/crashes/<target>/`` and replayed here."""

from __future__ import annotations

import glob
import importlib
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ["imap_parser", "mime", "jmap_request"]
RUNS = int(os.environ.get("DUALMAIL_FUZZ_RUNS", "3000"))
CRASHES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashes")

try:
    import atheris  # noqa: F401

    HAVE_ATHERIS = True
except ImportError:  # no wheel for this Python (atheris supports CPython <= 3.12)
    HAVE_ATHERIS = False


def _crash_inputs() -> list[tuple[str, str]]:
    return [(t, p) for t in TARGETS for p in sorted(glob.glob(os.path.join(CRASHES, t, "*")))
            if not p.endswith(".keep")]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_bounded(target, tmp_path):
    if not HAVE_ATHERIS:
        if os.environ.get("CI") == "true" and sys.version_info < (3, 13):
            pytest.fail("atheris is in the test extras and must be installed in CI")
        module = importlib.import_module(f"tests.fuzz.fuzz_{target}")

        @settings(max_examples=min(RUNS, 500), deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=2000))
        def run(data):
            module.TestOneInput(data)

        run()
        return
    corpus = tmp_path / "corpus"
    cmd = [sys.executable, "-m", f"tests.fuzz.fuzz_{target}", f"-runs={RUNS}", "-max_total_time=120",
           "-rss_limit_mb=2048", "-timeout=20", f"-artifact_prefix={tmp_path}/", str(corpus)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})
    artifacts = [p for p in os.listdir(tmp_path) if p.startswith(("crash-", "timeout-", "oom-", "leak-"))]
    assert proc.returncode == 0 and not artifacts, (
        f"fuzz target {target} failed; inputs {artifacts} in {tmp_path}: copy them to "
        f"tests/fuzz/crashes/{target}/ and fix\n" + proc.stderr[-4000:])
    assert "DONE" in proc.stderr and "cov:" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("target,path", _crash_inputs() or [pytest.param("", "", marks=pytest.mark.skip(
    reason="no crash input kept yet"))])
def test_fuzz_regressions(target, path):
    module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    with open(path, "rb") as f:
        module.TestOneInput(f.read())
