"""Make the repository root and bench/ importable for the importer tests."""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (_ROOT, os.path.join(_ROOT, "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
