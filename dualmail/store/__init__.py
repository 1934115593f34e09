"""The store: the mail model on an ordered key-value engine (LMDB by default).

Only ``kv_lmdb`` imports lmdb; everything else speaks to the narrow interface in ``kv``.
"""
