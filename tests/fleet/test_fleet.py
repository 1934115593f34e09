"""The randomized mixed-fleet test over the real listeners (issue 14; docs/consistency.md):
seeded walks of IMAP, JMAP and LMTP operations, every client's view checked after each
step.  ``DUALMAIL_FLEET_SEED=n`` runs that one seed (``DUALMAIL_FLEET_STEPS`` steps)."""

from __future__ import annotations

import itertools
import os

import pytest
import pytest_twisted

from tests.fleet.fleet import run_seed

pytestmark = pytest.mark.e2e

SEEDS = [int(os.environ["DUALMAIL_FLEET_SEED"])] if os.environ.get("DUALMAIL_FLEET_SEED") else [1, 2, 3]
STEPS = int(os.environ.get("DUALMAIL_FLEET_STEPS", "25"))


@pytest.mark.parametrize("seed", SEEDS)
@pytest_twisted.ensureDeferred
async def test_fleet_walk(tmp_path, seed):
    counter = itertools.count()

    def fresh():
        d = tmp_path / f"run{next(counter)}"
        d.mkdir()
        return d

    await run_seed(fresh, seed, STEPS)
