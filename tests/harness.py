"""Real services for the tests and benchmarks: a throwaway PostgreSQL 15 cluster, Azurite and moto S3.

Both start on a free loopback port, in a temporary folder, and are torn down
by ``stop()``. A missing binary is an error that says what to install; nothing
is ever skipped. Used by ``tests/conftest.py`` (session fixtures) and by
``benchmarks/``.

Example:
    >>> with start_postgres() as pg, start_azurite() as az:
    ...     print(pg.dsn, az.connection_string)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_BIN_CANDIDATES = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin")]
AZURITE_BIN = REPO / "node_modules" / ".bin" / "azurite-blob"

# The emulator's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class HarnessError(RuntimeError):
    """A service could not be started; the message says what to install or check."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(f"{what} exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise HarnessError(f"{what} did not listen on port {port} within {timeout} s")


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate a process started with ``start_new_session=True`` and its children."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


# --- PostgreSQL -------------------------------------------------------------


@dataclass
class PostgresServer:
    """A running throwaway cluster: connect as ``user``/``password`` to ``dbname``."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    data_dir: Path
    bin_dir: Path
    run_as: str | None

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={self.dbname}"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]
        return _run_as(self.run_as, command, check=check)

    def stop(self) -> None:
        """Stop the server now (fast); the data folder stays until :meth:`destroy`."""
        self.pg_ctl("stop", "-m", "immediate", "-w", check=False)

    def start(self) -> None:
        """Start the server again after :meth:`stop`."""
        self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.data_dir / "server.log"))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def find_pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise HarnessError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install them with "
        "'apt-get install postgresql-15' (looked in /usr/lib/postgresql/15/bin and PATH)"
    )


def _run_as(user: str | None, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if user:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise HarnessError(f"{' '.join(command[:4])}... failed: {result.stderr.strip()[-2000:]}")
    return result


@contextlib.contextmanager
def start_postgres(password: str = "harness-pw") -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster with password (scram) authentication on loopback."""
    bin_dir = find_pg_bin()
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="da-pg-"))
    os.chmod(base, 0o755)
    data_dir = base / "data"
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(base, run_as)
        shutil.chown(pwfile, run_as)
    port = free_port()
    _run_as(run_as, [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    with open(data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n")
    server = PostgresServer("127.0.0.1", port, "postgres", password, "postgres", data_dir, bin_dir, run_as)
    server.pg_ctl("start", "-w", "-t", "60", "-o", options, "-l", str(data_dir / "server.log"))
    try:
        yield server
    finally:
        server.destroy()


# --- Azurite ----------------------------------------------------------------


@dataclass
class AzuriteServer:
    """A running Azurite blob service with the well-known development account."""

    port: int
    process: subprocess.Popen[bytes]
    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY
    scheme: str = "http"

    @property
    def blob_endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def stop(self) -> None:
        stop_process_group(self.process)


def ensure_azurite_installed() -> Path:
    """The azurite-blob binary, installed from the committed lock file when missing."""
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    npm_ci(AZURITE_BIN)
    return AZURITE_BIN


def npm_ci(binary: Path) -> None:
    """Install the test services of the committed lock file (Azurite, s3rver); ``binary`` must then exist."""
    npm = shutil.which("npm")
    if npm is None:
        raise HarnessError(f"{binary.name} needs Node.js and npm: install them ('apt-get install nodejs npm')")
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0 or not binary.exists():
        raise HarnessError(f"'npm ci' could not install {binary.name}: {result.stderr.strip()[-2000:]}")


@contextlib.contextmanager
def start_azurite(location: Path | None = None, *, tls: tuple[Path, Path] | None = None) -> Iterator[AzuriteServer]:
    """A fresh Azurite blob server; in memory unless ``location`` is given. Keep it small.

    ``tls`` (certificate, key): serve https and accept Entra ID bearer tokens
    (Azurite's ``--oauth basic``: it checks their claims, not their signature).
    """
    binary = ensure_azurite_installed()
    port = free_port()
    storage = ["--location", str(location)] if location else ["--inMemoryPersistence"]
    secure = ["--cert", str(tls[0]), "--key", str(tls[1]), "--oauth", "basic"] if tls else []
    command = [str(binary), "--loose", "--skipApiVersionCheck", "--blobHost", "127.0.0.1",
               "--blobPort", str(port), "--disableTelemetry", *storage, *secure]
    log = tempfile.TemporaryFile(prefix="azurite-")  # a file, not a pipe: a full pipe would stall it
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    server = AzuriteServer(port, process, scheme="https" if tls else "http")
    try:
        wait_for_port(port, process, 60, "azurite-blob")
        yield server
    finally:
        server.stop()
        log.close()


# --- an S3-compatible server (moto in server mode) --------------------------------


@dataclass
class S3Server:
    """A running moto S3 server that checks signatures: only ``access_key``/``secret_key`` are accepted."""

    port: int
    process: subprocess.Popen[bytes]
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for setting up fixtures (path-style, this server's keys)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def stop(self) -> None:
        stop_process_group(self.process)


def _moto_command(port: int) -> list[str]:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        raise HarnessError("the S3 tests need moto in server mode: pip install 'moto[server]' boto3 "
                           "(scripts/bootstrap installs them with the dev extra)") from None
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@contextlib.contextmanager
def start_s3(check_signatures: bool = True) -> Iterator[S3Server]:
    """A fresh moto S3 server, in memory, with request authentication on. Keep it small.

    moto checks signatures only against IAM users it knows: the first three requests
    (allowed unauthenticated by ``INITIAL_NO_AUTH_ACTION_COUNT``) create one with an
    allow-all policy and an access key; every request after them must be signed with it.
    ``check_signatures=False``: moto as a public endpoint, where an unsigned request is
    anonymous and object ACLs decide (moto's signature check cannot take unsigned requests).
    """
    port = free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    if check_signatures:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    else:
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    log = tempfile.TemporaryFile(prefix="moto-")
    process = subprocess.Popen(_moto_command(port), cwd=REPO, stdout=log, stderr=log, env=env,
                               start_new_session=True)
    try:
        wait_for_port(port, process, 60, "moto S3 server")
        access_key, secret_key = _create_user(f"http://127.0.0.1:{port}") if check_signatures else ("any", "any")
        yield S3Server(port, process, access_key, secret_key)
    finally:
        stop_process_group(process)
        log.close()


def _create_user(endpoint: str) -> tuple[str, str]:
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")  # noqa: S106
    iam.create_user(UserName="harness")
    policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
    iam.put_user_policy(UserName="harness", PolicyName="all", PolicyDocument=policy)
    key = iam.create_access_key(UserName="harness")["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


S3RVER_BIN = REPO / "node_modules" / ".bin" / "s3rver"


@contextlib.contextmanager
def start_s3rver() -> Iterator[S3Server]:
    """s3rver (Node, objects as files, ranges served from disk) in a temporary folder; its fixed keys.

    The benchmarks use it beside moto: moto copies a whole object for every ranged GET,
    which no ranged client can hide, while s3rver reads only the range, as S3 does.
    """
    if not S3RVER_BIN.exists():
        npm_ci(S3RVER_BIN)  # the same 'npm ci' of the committed lock file as Azurite's
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="s3rver-") as folder:
        log = tempfile.TemporaryFile(prefix="s3rver-")
        command = [str(S3RVER_BIN), "-d", folder, "-a", "127.0.0.1", "-p", str(port), "--silent",
                   "--no-vhost-buckets"]
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for_port(port, process, 60, "s3rver")
            yield S3Server(port, process, "S3RVER", "S3RVER")
        finally:
            stop_process_group(process)
            log.close()
