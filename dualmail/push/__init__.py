"""JMAP push to push services: PushSubscription delivery over Web Push
(RFC 8620 §7.2, RFC 8030, RFC 8291, RFC 8292, RFC 9749).

``webpush`` builds the messages (sans I/O); ``runner`` is the Twisted service
that drains the store's push queue (``store/pushsubs.py``).
"""
