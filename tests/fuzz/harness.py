"""Shared by the fuzz targets (docs/security.md "Fuzzing"): run a target under atheris
(coverage-guided, libFuzzer flags on the command line) when executed as a script, or
call its ``TestOneInput`` from the bounded pytest run.

    python -m tests.fuzz.fuzz_imap_parser -runs=100000 /tmp/corpus   # a longer run
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable


def write_seeds(directory: str, seeds: Iterable[bytes]) -> None:
    os.makedirs(directory, exist_ok=True)
    for i, seed in enumerate(seeds):
        with open(os.path.join(directory, f"seed{i:03d}"), "wb") as f:
            f.write(seed)


def main(test_one_input: Callable[[bytes], None], seeds: Iterable[bytes], instrument: Iterable[str]) -> None:
    """atheris entry point: instrument the dualmail modules under test, seed the corpus
    (the first directory argument, when it is empty) and fuzz until libFuzzer stops."""
    import atheris

    args = list(sys.argv)
    dirs = [a for a in args[1:] if not a.startswith("-")]
    if dirs and (not os.path.isdir(dirs[0]) or not os.listdir(dirs[0])):
        write_seeds(dirs[0], seeds)
    # the target already imported what it tests: instrument every loaded function of
    # the packages named (coverage feedback for libFuzzer)
    import types

    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and any(name == p or name.startswith(p + ".") for p in instrument):
            for value in list(vars(module).values()):
                if isinstance(value, types.FunctionType) and value.__module__ == name:
                    atheris.instrument_func(value)
                elif isinstance(value, type) and value.__module__ == name:
                    for attr, member in list(vars(value).items()):
                        if isinstance(member, types.FunctionType):
                            atheris.instrument_func(member)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()
