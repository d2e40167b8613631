"""Who wrote a progress file, and whether the TUI may signal it.

A progress file names a pid, and anyone who can write the store folder can write a
progress file, so nothing in it is trusted on its own. A job is signalled only when the
process holding the pid proves it is the mgap job of that store:

- it holds, in its own environment, the token the TUI's launcher gave it
  (`JOB_TOKEN_ENV`); the progress file records only the token's SHA-256, and no file
  holds the token itself, so a copied progress file names a digest no other process
  can match;
- its executable is a Python interpreter running mgap (`-m mgap` or the `mgap` script);
- its own command line names the store or the store's folder;
- its command line and kernel start time are those recorded (a reused pid differs).

Where /proc is absent nothing can be confirmed, and nothing is signalled.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

#: the environment variable carrying a job's token (set by the TUI's launcher only)
JOB_TOKEN_ENV = "MGAP_JOB_TOKEN"


def _proc(pid: int | str, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def command_line(pid: int | str = "self") -> list[str] | None:
    raw = _proc(pid, "cmdline")
    if not raw:
        return None
    return [part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0")]


def start_ticks(pid: int | str = "self") -> int | None:
    """The process start time in clock ticks after boot (field 22 of /proc/PID/stat)."""
    raw = _proc(pid, "stat")
    if not raw:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def new_job_token() -> str:
    """A fresh secret for one job's environment."""
    return secrets.token_hex(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def process_identity() -> dict[str, object]:
    """What the progress file records about this process (empty values off Linux): the
    digest of its job token, never the token."""
    token = os.environ.get(JOB_TOKEN_ENV)
    return {
        "cmdline": command_line() or [],
        "proc_start": start_ticks(),
        "job_token_sha256": token_digest(token) if token else None,
    }


def _environ_token(pid: int) -> str | None:
    raw = _proc(pid, "environ") or b""
    prefix = JOB_TOKEN_ENV.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("utf-8", "replace")
    return None


def _runs_mgap(pid: int, cmdline: list[str]) -> bool:
    """A Python interpreter whose command line runs mgap (`-m mgap` or the `mgap` script)."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False
    if not exe.startswith("python") or len(cmdline) < 2:
        return False
    return cmdline[1:3] == ["-m", "mgap"] or Path(cmdline[1]).name == "mgap"


def _names_store(pid: int, cmdline: list[str], store: Path) -> bool:
    """Whether an argument (relative ones from the process's folder) is the store or its folder."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    wanted = {store.resolve(), store.resolve().parent}
    for word in cmdline[2:]:
        value = word.split("=", 1)[-1] if word.startswith("--") else word
        if value and (cwd / value).resolve() in wanted:
            return True
    return False


def job_mismatch(pid: int, doc: dict[str, object], store: str | os.PathLike) -> str | None:
    """Why `pid` is not provably the mgap job that wrote `doc` for `store` (None: it is)."""
    recorded, started = doc.get("cmdline"), doc.get("proc_start")
    if Path(str(doc.get("store"))).name != Path(store).name or doc.get("pid") != pid:
        return "the progress file names another store or pid"
    if not isinstance(recorded, list) or not recorded or not isinstance(started, int):
        return "the progress file records no process"
    if command_line(pid) != recorded or start_ticks(pid) != started:
        return "the pid is now another process"
    digest, token = doc.get("job_token_sha256"), _environ_token(pid)
    if not isinstance(digest, str) or token is None:
        return "it was not started by the TUI"
    if not hmac.compare_digest(token_digest(token), digest):
        return "its job token does not match"
    if not _runs_mgap(pid, recorded):
        return "it is not mgap"
    if not _names_store(pid, recorded, Path(store)):
        return "its command line does not name the store"
    return None


def is_job_of(pid: int, doc: dict[str, object], store: str | os.PathLike) -> bool:
    """True when `pid` is provably the mgap job that wrote `doc` for `store`."""
    return job_mismatch(pid, doc, store) is None
