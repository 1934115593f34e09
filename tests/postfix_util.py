"""A throwaway Debian Postfix (the ``postfix`` package) in a temporary config directory,
for the LMTP tests (Postfix delivering to dualmail) and the submission tests (Postfix as
dualmail's smarthost).

``start_postfix(main_cf)`` runs ``postfix -c DIR start`` with its own main.cf/master.cf:
loopback only, smtpd on a free 127.0.0.1 port (Postfix cannot take port 0, so one is
picked by binding port 0 and releasing it), queue and data directories inside DIR, its log
in DIR/maillog, no chroot, no DNS; ``main_cf`` adds the lines of the use (routing,
relayhost, XCLIENT trust).  ``stop_postfix`` stops it and removes DIR.  Needs root
(Postfix's master drops to ``mail_owner``); ``require_postfix`` skips elsewhere, never in
CI (``.ci/run`` installs it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass

import pytest

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
local     unix  - n n -    - local
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = no
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
"""


def free_port() -> int:
    """A port the OS says is free now (bound and released: Postfix cannot take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_postfix() -> None:
    """Skip only where Postfix cannot be had; in CI (CI=true) it must be there."""
    missing = None
    if not os.path.exists(POSTFIX):
        missing = "Debian's postfix is not installed (apt-get install postfix)"
    elif os.geteuid() != 0:
        missing = "running Postfix needs root"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: .ci/run installs it")
        pytest.skip(missing)


@dataclass
class Postfix:
    dir: str
    smtp_port: int

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", self.dir, *args], capture_output=True, text=True, timeout=60)

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "maillog"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def start_postfix(main_cf: str) -> Postfix:
    """Postfix with ``MAIN_CF`` plus ``main_cf``, listening on a free loopback port."""
    require_postfix()
    d = tempfile.mkdtemp(prefix="dm-postfix-", dir="/tmp")
    os.chmod(d, 0o755)  # the postfix user walks into its queue and data directories
    port = free_port()
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(dir=d) + main_cf)
    with open(os.path.join(d, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(listen=f"127.0.0.1:{port}"))
    os.mkdir(os.path.join(d, "queue"))
    os.mkdir(os.path.join(d, "data"))
    shutil.chown(os.path.join(d, "data"), "postfix")
    pf = Postfix(d, port)
    # "start" creates the queue directories with their owners (post-install create-missing)
    # and returns once the master daemon is up (master -w).
    done = pf.run("start")
    if done.returncode != 0:
        stop_postfix(pf)
        raise AssertionError(f"postfix start failed: {done.stdout}{done.stderr}{pf.log()}")
    return pf


def stop_postfix(pf: Postfix) -> None:
    pf.run("stop")  # waits for the master to terminate (postfix-script)
    shutil.rmtree(pf.dir, ignore_errors=True)
