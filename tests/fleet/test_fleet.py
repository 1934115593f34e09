"""The randomized mixed-fleet test over the real listeners (issue 14; docs/consistency.md):
seeded walks of IMAP, JMAP and LMTP operations, every client's view checked after each
step.  ``DUALMAIL_FLEET_SEED=n`` runs that one seed (``DUALMAIL_FLEET_STEPS`` steps)."""

from __future__ import annotations

import itertools
import os

import pytest
import pytest_twisted

from tests.fleet.fleet import replay, run_seed

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


# The corners the issue names, each forced once (the op sets up what it needs), between
# ordinary steps; every view is checked after each.
CORNERS = [("deliver", 1), ("race", 2), ("append", 3), ("race", 4), ("jmap_move_selected", 5),
           ("imap_store", 6), ("jmap_move_selected", 7), ("rename_queried", 8), ("delete_shared", 9),
           ("delete_shared", 10), ("delete_shared", 11), ("rename_queried", 12)]


@pytest_twisted.ensureDeferred
async def test_fleet_corners(tmp_path):
    """Concurrent STORE UNCHANGEDSINCE vs Email/set ifInState on one Email (exactly one
    wins, RFC 7162 §3.1.3, RFC 8620 §5.3); a JMAP move out of the mailbox the EXAMINE
    session has selected, its EXPUNGE pending until its next command (RFC 9051 §7.5.1);
    IMAP RENAME of a mailbox a JMAP client is querying; deleting a mailbox whose Emails
    are also elsewhere, from both sides."""
    await replay(tmp_path, CORNERS)
