"""Helpers for the dualmail.mime tests: fixture loading and tree invariants."""

from __future__ import annotations

import pathlib
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]

DATA = ROOT / "tests" / "data" / "mime"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def check_offsets(node: dict[str, Any], lo: int, hi: int) -> None:
    """Offsets of ``node`` lie in [lo, hi], are ordered, and children nest inside."""
    assert lo <= node["hdr_start"] <= node["hdr_end"] == node["body_start"] <= node["body_end"] <= hi, node
    prev = node["body_start"]
    for child in node.get("parts") or ():
        assert child["hdr_start"] >= prev
        check_offsets(child, node["body_start"], node["body_end"])
        prev = child["body_end"]
    msg = node.get("message")
    if msg:
        sub = msg["structure"]
        assert sub["hdr_start"] == node["body_start"] and sub["body_end"] == node["body_end"]
        check_offsets(sub, node["body_start"], node["body_end"])
