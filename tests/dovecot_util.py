"""Debian's Dovecot (``dovecot-imapd``) on loopback with a throwaway configuration.

``start_dovecot()`` writes a configuration in a fresh temporary directory (Maildir INBOX, a second
namespace ``mbox/`` in mbox format, passwd-file with a plaintext password, cleartext
login allowed, base_dir/state_dir/logs in ``tmp``), starts ``dovecot -F -c CONF`` as a
child process on a free 127.0.0.1 port and waits (bounded) until it greets.  The result
is a context manager; leaving it stops the child.

``dovecot_binary()`` is the binary or None; tests skip only when it is missing and apt
is impossible (never in CI, where ``.ci/run`` installs the package).
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "alice@example.org"
PASSWORD = "secret"
START_TIMEOUT = 15.0  # seconds Dovecot may take to greet


def dovecot_binary() -> str | None:
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def skip_reason() -> str:
    return ("Debian's dovecot-imapd is not installed (apt-get install dovecot-imapd; "
            ".ci/run installs it in CI)")


def free_port() -> int:
    """A port the OS had free a moment ago (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _users() -> tuple[str, str]:
    """(internal user, login user): Debian's dovecot/dovenull when root, else oneself."""
    if os.geteuid() == 0:
        internal = "dovecot" if _exists("dovecot") else "root"
        login = "dovenull" if _exists("dovenull") else internal
        return internal, login
    me = getpass.getuser()
    return me, me


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen
    user: str = USER
    password: str = PASSWORD

    @property
    def mbox_dir(self) -> Path:
        """Where mbox files appear as mailboxes ``mbox/<file name>``."""
        return self.root / "mbox" / self.user

    def put_mbox(self, name: str, data: bytes) -> str:
        """Write an mbox file that Dovecot shows as the mailbox returned."""
        path = self.mbox_dir / name
        path.write_bytes(data)
        _own(path)
        return "mbox/" + name

    def log(self) -> str:
        try:
            return (self.root / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, keep: bool = False) -> None:
        """Stop the child (bounded wait) and remove the directory unless ``keep``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Dovecot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mail_user() -> pwd.struct_passwd:
    """Whom mail processes run as: oneself, or ``nobody`` when root (Dovecot refuses uid 0)."""
    me = pwd.getpwuid(os.geteuid())
    if me.pw_uid == 0:
        return pwd.getpwnam("nobody")
    return me


def _config(root: Path, port: int) -> str:
    internal, login = _users()
    me = _mail_user()
    group = _group_of(internal)
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = 0
first_valid_gid = 0
mail_uid = {me.pw_uid}
mail_gid = {me.pw_gid}
mail_location = maildir:{root}/mail/%u
mbox_write_locks = fcntl
mbox_read_locks = fcntl
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace mbox {{
  separator = /
  prefix = mbox/
  location = mbox:{root}/mbox/%u:INDEX={root}/mboxindex/%u
  list = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={me.pw_uid} gid={me.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  user = {internal}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _group_of(user: str) -> str:
    import grp

    try:
        return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        return grp.getgrgid(os.getegid()).gr_name


def _own(path: Path) -> None:
    mu = _mail_user()
    if os.geteuid() == 0:
        os.chown(path, mu.pw_uid, mu.pw_gid)


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            return s.recv(100).startswith(b"* OK")
    except OSError:
        return False


def start_dovecot(attempts: int = 3) -> Dovecot:
    """Dovecot serving ``USER``/``PASSWORD`` on 127.0.0.1 from a fresh temporary
    directory (removed by ``stop``); raises RuntimeError if it does not greet within
    START_TIMEOUT (after ``attempts`` port choices).

    The directory is a ``mkdtemp`` of its own, not pytest's ``tmp_path``: Dovecot's
    unprivileged processes must traverse to it, and pytest keeps its base directory 0700.
    """
    binary = dovecot_binary()
    if binary is None:
        raise RuntimeError(skip_reason())
    root = Path(tempfile.mkdtemp(prefix="dualmail-dovecot-"))
    os.chmod(root, 0o711)
    for sub in ("run", "state", "mail", "home", "mbox/" + USER, "mboxindex"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("mail", "home", "mbox", "mbox/" + USER, "mboxindex"):
        _own(root / sub)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    last = ""
    for _ in range(attempts):
        port = free_port()
        conf = root / "dovecot.conf"
        conf.write_text(_config(root, port))
        proc = subprocess.Popen([binary, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        dc = Dovecot(root, port, proc)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if _greets(port):
                return dc
            time.sleep(0.05)  # polling a child's readiness, bounded by START_TIMEOUT
        out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
        last = out + dc.log()
        dc.stop(keep=True)
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError("Dovecot did not start:\n" + last[-4000:])
