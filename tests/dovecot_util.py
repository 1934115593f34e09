"""A throwaway Debian Dovecot (``dovecot-imapd``) on loopback, for tests and benchmarks.

``Dovecot(root, users={"login": "password"})`` writes a config under ``root`` (maildirs,
``base_dir``, ``state_dir``, log, passwd-file with plaintext passwords), picks a free
port (bind port 0, release), runs ``dovecot -F -c CONF`` as a child process and waits,
with a bounded timeout, until the IMAP port answers.  ``stop()`` ends that child only.
``mail_location`` may point the users' mail at an existing Maildir (to read what
``dualmail export`` wrote).  ``mbox=True`` adds a second namespace ``mbox/`` in mbox
format (files written with ``put_mbox``), for comparing mbox import; ``separator`` is the
hierarchy separator of both namespaces (Dovecot wants one for all listed namespaces).

``start_dovecot()`` is the differential test's short form: one user ``USER``/``PASSWORD``,
``/`` as separator, the mbox namespace, no special-use folders, in a fresh directory.

Skips (``pytest.skip``) only when Dovecot is not installed outside CI; in CI
(``CI=true``) a missing Dovecot is a failure, since ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import pwd
import grp
import shutil
import socket
import tempfile
import subprocess
import time
from typing import Any

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "alice@example.org"
PASSWORD = "secret"


def dovecot_binary() -> str | None:
    return DOVECOT if os.access(DOVECOT, os.X_OK) else None


def skip_reason() -> str:
    return ("Debian's dovecot-imapd is not installed (apt-get install dovecot-imapd; "
            ".ci/run installs it in CI)")


def require_dovecot() -> None:
    if os.path.exists(DOVECOT):
        return
    msg = "Debian's dovecot-imapd is not installed (apt-get install dovecot-imapd)"
    if os.environ.get("CI") == "true":
        raise RuntimeError(msg)
    import pytest

    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    def __init__(self, root: str, users: dict[str, str], *, mail_location: str | None = None,
                 special_use: bool = True, tls: tuple[str, str] | None = None,
                 separator: str = ".", mbox: bool = False, fsync: str = "never") -> None:
        """``tls``: (key.pem, cert.pem): STARTTLS on the IMAP port and implicit TLS on
        ``self.imaps_port``.  ``fsync``: Dovecot's ``mail_fsync`` (benchmarks use its
        default, ``optimized``)."""
        require_dovecot()
        # Dovecot never runs mail processes as root: as root the mail user is "nobody",
        # and everything it reads lives in a directory of its own that it can reach
        # (``root`` may be under a 0700 pytest directory).
        if os.getuid() == 0:
            mail_user = pwd.getpwnam(_user_or("nobody", "root"))
            root = tempfile.mkdtemp(prefix="dualmail-dovecot-")
            os.chmod(root, 0o755)
            self._own_root = True
        else:
            mail_user = pwd.getpwuid(os.getuid())
            self._own_root = False
        self.mail_uid, self.mail_gid = mail_user.pw_uid, mail_user.pw_gid
        self.root = str(root)
        self.users = dict(users)
        self.port = free_port()
        self.imaps_port = free_port() if tls else 0
        self.host = "127.0.0.1"
        os.makedirs(self.root, exist_ok=True)
        for d in ("run", "state", "mail", "home"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        for d in ("mail", "home"):
            os.chown(os.path.join(self.root, d), self.mail_uid, self.mail_gid)
        mbox_ns = ""
        if mbox:
            for u in self.users:
                for d in ("mbox", f"mbox/{u}", "mboxindex"):
                    os.makedirs(os.path.join(self.root, d), exist_ok=True)
                    os.chown(os.path.join(self.root, d), self.mail_uid, self.mail_gid)
            mbox_ns = f"""
mbox_write_locks = fcntl
mbox_read_locks = fcntl
namespace mbox {{{{
  separator = {separator}
  prefix = mbox{separator}
  location = mbox:{self.root}/mbox/%u:INDEX={self.root}/mboxindex/%u
  list = yes
}}}}
"""
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.log = os.path.join(self.root, "dovecot.log")
        me = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(os.getgid()).gr_name
        if os.getuid() == 0:
            internal, login = _user_or("dovecot", me.pw_name), _user_or("dovenull", me.pw_name)
        else:
            internal = login = me.pw_name
        with open(os.path.join(self.root, "passwd"), "w") as f:
            for u, pw in self.users.items():
                f.write(f"{u}:{{PLAIN}}{pw}::::\n")
        location = mail_location or f"maildir:{self.root}/mail/%u"
        ssl_conf = "ssl = no"
        if tls:
            for i, src in enumerate(tls):
                dst = os.path.join(self.root, ("key.pem", "cert.pem")[i])
                shutil.copyfile(src, dst)
            ssl_conf = f"ssl = yes\nssl_key = <{self.root}/key.pem\nssl_cert = <{self.root}/cert.pem"
        mailboxes = ""
        if special_use:
            mailboxes = """
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox "Sent Items" {
    special_use = \\Sent
  }
  mailbox "Deleted Items" {
    special_use = \\Trash
  }
  mailbox Junk {
    special_use = \\Junk
  }
"""
        with open(self.conf, "w") as f:
            f.write(f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = dovecot-{self.port}
listen = 127.0.0.1
protocols = imap
{ssl_conf}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {self.log}
first_valid_uid = 0
first_valid_gid = 0
default_internal_user = {internal}
default_login_user = {login}
default_internal_group = {group}
mail_uid = {self.mail_uid}
mail_gid = {self.mail_gid}
mail_location = {location}
mail_fsync = {fsync}
mail_max_userip_connections = 100
imap_max_line_length = 1M
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={self.root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  user = {me.pw_name}
}}
service auth-worker {{
  user = {me.pw_name}
}}
service imap-login {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  separator = {separator}
{mailboxes}}}
""" + mbox_ns.replace("{{", "{").replace("}}", "}"))
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(20.0)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode("utf-8", "replace") if self.proc.stderr else ""
                raise RuntimeError(f"dovecot exited: {err}\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)  # polling a condition (the port), bounded by the deadline
        self.stop()
        raise RuntimeError(f"dovecot did not answer on {self.port}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def client(self, user: str | None = None) -> Any:
        import imapclient

        user = user or next(iter(self.users))
        c = imapclient.IMAPClient(self.host, self.port, ssl=False, timeout=60)
        c.normalise_times = False
        c.login(user, self.users[user])
        return c

    def url(self, user: str | None = None) -> str:
        from urllib.parse import quote

        user = user or next(iter(self.users))
        return f"imap://{quote(user, safe='')}@{self.host}:{self.port}"

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        if p.stderr:
            p.stderr.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def user(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.user]

    def put_mbox(self, name: str, data: bytes) -> str:
        """Write an mbox file (``mbox=True``); returns the mailbox name Dovecot shows it as."""
        path = os.path.join(self.root, "mbox", self.user, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, self.mail_uid, self.mail_gid)
        return "mbox/" + name

    def give_to_mail_user(self, path: str) -> None:
        """Let the mail user own ``path`` (a Maildir written by this process)."""
        for d, dirs, files in os.walk(path):
            os.chown(d, self.mail_uid, self.mail_gid)
            for f in files:
                os.chown(os.path.join(d, f), self.mail_uid, self.mail_gid)

    def __enter__(self) -> "Dovecot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _user_or(name: str, default: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return default


def start_dovecot() -> Dovecot:
    """One user (``USER``/``PASSWORD``), separator ``/``, the ``mbox/`` namespace, no
    special-use folders, in a fresh temporary directory removed by ``stop``."""
    root = tempfile.mkdtemp(prefix="dualmail-dovecot-")
    os.chmod(root, 0o755)
    dc = Dovecot(root, {USER: PASSWORD}, special_use=False, separator="/", mbox=True)
    if dc.root != root:  # as root the class made a directory of its own
        os.rmdir(root)
    dc._own_root = True
    return dc
