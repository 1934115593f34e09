"""Soak run of the mixed-fleet model-based test (tests/fleet/fleet.py): more seeds and
steps than CI, every view checked after every step; prints figures per seed.

    .venv/bin/python bench/fleet_soak.py [--seeds 1-20] [--steps 200] [--check-end-only]

A failing seed is shrunk and printed (seed, shortest failing op list, its failure); replay
it with DUALMAIL_FLEET_SEED / tests.fleet.fleet.replay."""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task  # noqa: E402

from tests.fleet.fleet import FleetFailure, run_seed  # noqa: E402


def seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


async def main(reactor, args) -> None:
    failures = 0
    total_steps = total_time = 0.0
    root = pathlib.Path(tempfile.mkdtemp(prefix="fleet-soak-"))
    counter = iter(range(10**9))

    def fresh() -> pathlib.Path:
        d = root / f"run{next(counter)}"
        d.mkdir()
        return d

    for seed in seeds(args.seeds):
        t0 = time.perf_counter()
        try:
            fleet = await run_seed(fresh, seed, args.steps, not args.check_end_only)
        except FleetFailure as exc:
            failures += 1
            print(f"seed {seed}: FAILED\n{exc}", flush=True)
            continue
        dt = time.perf_counter() - t0
        total_steps += args.steps
        total_time += dt
        f = fleet.result
        print(f"seed {seed}: ok, {args.steps} steps in {dt:.1f} s ({1000 * dt / args.steps:.0f} ms/step"
              f" incl. checks); end: {f['emails']} Emails in {f['mailboxes']} mailboxes, modseq"
              f" {f['state']}, {f['pushes']} EventSource Email pushes", flush=True)
    if total_steps:
        print(f"{total_steps:.0f} steps passed in {total_time:.1f} s; {failures} seed(s) failed")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1-10")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--check-end-only", action="store_true")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
