"""Every IMAP limit and policy knob, as one frozen value passed to each session.

CAPABILITY (APPENDLIMIT=) and the parser read their numbers from here.  Imports nothing
from twisted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImapConfig:
    appendlimit: int = 50 * 1024 * 1024  # RFC 7889: largest message APPEND accepts
    max_line: int = 64 * 1024  # non-literal text of one command
    max_literal_unauthenticated: int = 8 * 1024  # literals before login (LOGIN, AUTHENTICATE)
    max_search_depth: int = 100
    autologout: float = 30 * 60  # RFC 9051 §5.4: at least 30 minutes once authenticated
    unauthenticated_timeout: float = 60.0
    # slow clients: once a command has begun, all of it (line and literals) must arrive in
    # this many seconds, however often bytes trickle in (one byte a second holds no slot)
    command_deadline_unauthenticated: float = 30.0
    command_deadline: float = 600.0  # 50 MB at ~100 KB/s
    failed_login_delay: float = 1.0
    max_buffered_input: int = 1024 * 1024  # pipelined input held while output is blocked
    fetch_batch: int = 200  # messages rendered per read view while streaming FETCH
    allow_plaintext: bool = False  # LOGIN/PLAIN without TLS off loopback
    tls_available: bool = False  # STARTTLS offered
    tls_channel_binding: bytes | None = None  # RFC 5929 tls-server-end-point (SCRAM-SHA-256-PLUS)
    max_connections_per_ip: int = 200  # refused with * BYE [UNAVAILABLE] (RFC 5530); 0: none
    max_connections_per_account: int = 1000  # logins past it: NO [UNAVAILABLE]; 0: none
    limit_loopback: bool = False  # the per-IP cap also for loopback peers (a local proxy is one IP)
    jmap_url: str | None = None  # RFC 9698 JMAPACCESS session URL
    server_name: str = "dualmail"
    server_version: str = "0"
    # RFC 5464 METADATA: largest value, entries per mailbox (and for the server), longest
    # entry name (the RFC's floor is 1024 octets and 10 entries)
    metadata_max_size: int = 64 * 1024
    metadata_max_entries: int = 100
    metadata_max_name: int = 1024
    # RFC 5465 NOTIFY: changes held for a client that is not reading before it gets
    # * OK [NOTIFICATIONOVERFLOW] and NOTIFY NONE (§5.8); mailboxes one NOTIFY may watch
    notify_max_pending: int = 10_000
    notify_max_mailboxes: int = 10_000
    # RFC 3502 MULTIAPPEND / RFC 4469 CATENATE: every message is bounded by appendlimit;
    # one command's literals together by max_append_total, its messages by
    # max_append_messages (NO [LIMIT] past it); all are held in memory until the one write
    max_append_total: int = 100 * 1024 * 1024
    max_append_messages: int = 1000
    max_catenate_parts: int = 100  # parts of one CATENATE message
    # RFC 7888 §5: advertise LITERAL- instead of LITERAL+ (never both): non-synchronising
    # literals of at most 4096 octets
    literal_minus: bool = False
    max_urlfetch_urls: int = 100  # URLs of one GENURLAUTH / URLFETCH (RFC 4467)
    # RFC 9585 INPROGRESS: a FETCH streaming for longer than this says how far it got
    # (``* OK [INPROGRESS ("tag" done total)]``), again at most this often
    inprogress_interval: float = 5.0
    # STORE, COPY, MOVE and EXPUNGE write on a worker thread in the group commit, so the
    # synced commits of many sessions share one fsync (INPROGRESS ticks while a long one
    # runs; other connections go on meanwhile).  group_writes off: a write on fewer than
    # offload_min_messages messages commits inline on the reactor instead
    offload_min_messages: int = 1000
    group_writes: bool = True
