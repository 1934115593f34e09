"""LMTP delivery in (RFC 2033): ``core`` (sans-I/O protocol), ``delivery`` (addresses ->
accounts, the store write, the ``after_delivery`` hook), ``protocol`` (the Twisted adapter)."""
