"""Fixtures for the JMAP core tests (fakes live in jmap_fakes.py)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from dualmail.jmap.dispatch import core_methods
from dualmail.jmap.session import CoreLimits
from dualmail.jmap.standard import standard_methods
from jmap_fakes import FooType, Runner


@pytest.fixture
def foo() -> FooType:
    return FooType()


@pytest.fixture
def limits() -> CoreLimits:
    return CoreLimits(max_objects_in_get=5, max_objects_in_set=5, max_calls_in_request=8, max_size_request=4096,
                      max_concurrent_requests=2, max_size_upload=64, max_concurrent_upload=1, max_query_limit=50)


@pytest.fixture
def run(foo: FooType, limits: CoreLimits) -> Runner:
    return Runner({**core_methods(), **standard_methods(foo)}, limits)


@pytest.fixture
def clock() -> Clock:
    return Clock()
