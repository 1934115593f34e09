"""The architecture's import rules, checked rather than remembered (STYLE.md).

- the layers contract in setup.cfg (import-linter): imports point one way;
- sans-I/O cores (wire parsers, sessions, the model, MIME, search, store) import no
  ``twisted.internet``, ``twisted.web`` or ``klein``;
- only ``dualmail/store/kv_lmdb.py`` imports ``lmdb``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "dualmail")

SANS_IO = ["imap/wire", "imap/session.py", "imap/selected.py", "imap/ops", "mime", "model",
           "search", "mail", "store", "submission/message.py", "submission/limits.py",
           "submission/vacation.py", "submission/config.py", "lmtp/core.py", "lmtp/delivery.py",
           "push/webpush.py"]
IO_MODULES = ("twisted.internet", "twisted.web", "klein", "treq")


def modules(rel: str) -> list[str]:
    path = os.path.join(PKG, rel)
    if path.endswith(".py"):
        return [path]
    out = []
    for d, _dirs, files in os.walk(path):
        out += [os.path.join(d, f) for f in files if f.endswith(".py")]
    return out


def imported(path: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("rel", SANS_IO)
def test_sans_io_cores_do_no_io(rel):
    bad = {(os.path.relpath(p, ROOT), n) for p in modules(rel) for n in imported(p)
           if any(n == m or n.startswith(m + ".") for m in IO_MODULES)}
    assert bad == set()


def test_only_the_engine_module_imports_lmdb():
    users = {os.path.relpath(p, ROOT) for p in modules("") if
             any(n == "lmdb" or n.startswith("lmdb.") for n in imported(p))}
    assert users == {"dualmail/store/kv_lmdb.py"}


def test_layers_contract():
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    if not os.path.exists(exe):
        exe = shutil.which("lint-imports") or ""
    if not exe:
        pytest.skip("import-linter is not installed")
    p = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stdout[-3000:]
