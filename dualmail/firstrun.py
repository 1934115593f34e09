"""First start: create a demo account with a random password and say how to log in.

Only when the store has no account at all.  The credentials go to the log once and to
``first-login.txt`` (mode 0600) in the data directory.
"""

from __future__ import annotations

import os
import shlex
import sys

from .store.passwords import new_secret
from .store.store import Store

DEMO_ADDRESS = "demo@localhost"
CREDENTIALS_FILE = "first-login.txt"


def dualmail_command() -> str:
    """The ``dualmail`` command that works from here: the console script beside the running
    Python (``.venv/bin/dualmail`` after the README's install, which is not on PATH),
    relative to the current directory when it is below it; else ``python -m dualmail.cli``."""
    bindir = os.path.dirname(sys.executable)
    script = os.path.join(bindir, "dualmail")
    if not os.path.exists(script):
        return f"{shlex.quote(sys.executable)} -m dualmail.cli"
    try:
        rel = os.path.relpath(script)
    except ValueError:  # another drive
        rel = script
    if rel.startswith(".."):
        rel = script
    elif os.sep not in rel:
        rel = os.path.join(os.curdir, rel)
    return shlex.quote(rel)


def ensure_demo_account(store: Store, data_dir: str, hints: list[str]) -> str | None:
    """Create the demo account on an empty store; returns the message written, or None."""
    if store.list_accounts():
        return None
    password = new_secret(12)
    store.create_account(DEMO_ADDRESS, password)
    lines = [
        "dualmail first start: created the account",
        f"  user:     {DEMO_ADDRESS}",
        f"  password: {password}",
        *hints,
        f"Add users with: {dualmail_command()} --data {shlex.quote(data_dir)} user add ADDRESS",
    ]
    text = "\n".join(lines) + "\n"
    path = os.path.join(data_dir, CREDENTIALS_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return text
