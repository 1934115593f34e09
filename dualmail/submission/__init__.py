"""Mail going out: the JMAP EmailSubmission relay (RFC 8621 §7) and vacation
replies (RFC 8621 §8, RFC 3834), through one durable queue to the smarthost.

- ``config.py``: the smarthost and the sending limits (one frozen value built
  from the command line);
- ``message.py``: sans-I/O message work: envelope derivation (RFC 8621 §7),
  address checks, Bcc removal, the ``Received:`` trace field, SMTP reply
  rendering and the per-recipient outcome of a relay attempt;
- ``limits.py``: the per-account sending limits (RFC 8621 §9, RFC 6409);
- ``vacation.py``: ``after_delivery`` -- the RFC 3834 responder;
- ``relay.py``: the only module here with I/O: the SMTP client (twisted.mail,
  with XCLIENT) and ``OutboxRunner``, the service that drains the queue with
  retries and backoff.

The queue itself is in the store (``dualmail/store/outbox.py``).
"""
