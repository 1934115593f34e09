"""RFC 8620 §1.4 ``UTCDate`` values (``2014-10-30T06:12:00Z``), shared by the
JMAP types and the vacation responder.

Imports nothing outside the standard library.
"""

from __future__ import annotations

import calendar
import datetime
import re

_UTCDATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\Z")


def parse_utc_date(value: object) -> int | None:
    """Epoch seconds of an RFC 3339 UTCDate (``...Z``, RFC 8620 §1.4), or None."""
    if not isinstance(value, str) or not _UTCDATE.match(value):
        return None
    try:
        when = datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return calendar.timegm(when.timetuple())
