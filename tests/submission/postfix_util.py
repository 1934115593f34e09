"""A private Debian Postfix instance for tests: its own config, queue and log
directories under a tmp dir, listening on 127.0.0.1 only, relaying every
message to ``relayhost`` (a test SMTP sink), trusting 127.0.0.1 for XCLIENT
(https://www.postfix.org/XCLIENT_README.html). Needs root (Postfix's master
runs as root and drops to the ``postfix`` user). Import as
``tests.submission.postfix_util``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
mynetworks = 127.0.0.0/8 192.0.2.0/24
relayhost = [127.0.0.1]:{relay_port}
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_sasl_authenticated_header = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_tls_security_level = none
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
biff = no
"""


def free_port() -> int:
    """A loopback port nobody listens on now (Postfix cannot be told port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """Why this machine cannot run the instance (None: it can)."""
    if not os.path.exists(POSTFIX):
        return "Debian's postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    return None


class Postfix:
    def __init__(self, root: str, relay_port: int) -> None:
        self.root = root
        self.port = free_port()
        self.config = os.path.join(root, "etc")
        os.makedirs(self.config, exist_ok=True)
        os.makedirs(os.path.join(root, "queue"), exist_ok=True)
        os.makedirs(os.path.join(root, "data"), exist_ok=True)
        with open(os.path.join(self.config, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(root=root, relay_port=relay_port))
        with open(os.path.join(self.config, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port).replace("1000?", "1000"))
        os.chown(os.path.join(root, "data"), _uid("postfix"), -1)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", self.config, *args], capture_output=True, text=True, timeout=60)

    def start(self) -> "Postfix":
        p = self._run("start")
        if p.returncode != 0:
            raise RuntimeError(f"postfix start failed: {p.stdout}{p.stderr}{self.log()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the listener (bounded)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not start listening: " + self.log())

    def stop(self) -> None:
        self._run("stop")

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "maillog"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid
