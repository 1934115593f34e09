"""The mail model's vocabulary: ids, keywords, records and domain errors.

Imports nothing from twisted, lmdb or the rest of dualmail.
"""
