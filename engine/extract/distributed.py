"""Which rank am I? torchrun's and SLURM's environment, and the process group over gloo.

mgap builds no launcher of its own: `torchrun` (or `srun`) starts one `mgap extract` per
rank, and each reads its place from the environment. The process group only carries
barriers and a few small objects (rank statuses), so it always uses gloo, which runs on
CPU-only and GPU nodes alike; the embeddings never travel over it.

torchrun starts each rank in a session of its own, so a kill of the launcher's process
group (`kill -9 -PGID`) would miss them: `die_with_parent` ties each process of an
`--nproc` run to the one that started it (Linux's PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from mgap.core.errors import UsageError

#: how long a rank waits at a barrier for slower ranks before giving up (seconds)
DEFAULT_TIMEOUT_S = 24 * 3600
#: the pid of `mgap extract --nproc` (the launcher), in the environment of its ranks
LAUNCHER_PID_ENV = "MGAP_LAUNCHER_PID"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class RankEnv:
    """This process's place in a job: rank, world size, rank within the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"  # none, torchrun or slurm

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError as exc:
        raise UsageError(f"${key}={env[key]!r} is not an integer") from exc


def detect(env: Mapping[str, str] | None = None) -> RankEnv:
    """torchrun's RANK/WORLD_SIZE/LOCAL_RANK first, then SLURM's variables under `srun`."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return RankEnv(
            _int(env, "RANK"),
            _int(env, "WORLD_SIZE"),
            _int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0,
            "torchrun",
        )
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "SLURM_STEP_ID" in env:
        return RankEnv(
            _int(env, "SLURM_PROCID"),
            _int(env, "SLURM_NTASKS"),
            _int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0,
            "slurm",
        )
    return RankEnv()


def rank_device(device: str, rank: RankEnv) -> str:
    """`cuda:LOCAL_RANK` for a multi-rank CUDA job; the device as given otherwise."""
    if not rank.distributed or device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{rank.local_rank % torch.cuda.device_count()}"
    return "cpu" if device == "auto" else device


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """Have Linux send `sig` to this process when the one that started it dies; if that
    happened already (`parent`, the expected parent pid, is not ours), take `sig` now.
    Elsewhere a no-op: there, a kill of the launcher leaves its ranks to finish."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def die_with_launcher(rank: RankEnv) -> None:
    """A rank of `mgap extract --nproc` dies at once (SIGKILL, as a kill of the group
    would have done; the rerun resumes) when torchrun dies, or when the launcher is gone
    already: a graceful stop would wait at barriers on peers that are going too."""
    launcher = os.environ.get(LAUNCHER_PID_ENV, "")
    if rank.launcher != "torchrun" or not launcher.isdigit():
        return
    die_with_parent(signal.SIGKILL)
    if _gone(int(launcher)):
        os.kill(os.getpid(), signal.SIGKILL)


def init_group(rank: RankEnv) -> None:
    """Join the job's gloo process group (MASTER_ADDR/MASTER_PORT rendezvous); a rank of
    `mgap extract --nproc` first ties its life to the launcher's (`die_with_launcher`)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    die_with_launcher(rank)
    if "MASTER_ADDR" not in os.environ:
        if rank.launcher == "slurm":
            raise UsageError(
                "srun started mgap without $MASTER_ADDR",
                hint="export MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1) before srun",
            )
        raise UsageError("$RANK is set but $MASTER_ADDR is not", hint="launch with torchrun")
    os.environ.setdefault("MASTER_PORT", "29500")
    timeout = float(os.environ.get("MGAP_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    dist.init_process_group(
        "gloo",
        rank=rank.rank,
        world_size=rank.world_size,
        timeout=timedelta(seconds=timeout),
    )


def gather(value: object) -> list[object]:
    """Every rank's `value`, in rank order, on every rank (also a barrier)."""
    import torch.distributed as dist

    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def close_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def shares(n_rows: int, block_rows: int, world_size: int) -> list[tuple[int, int]]:
    """Contiguous, block-aligned row ranges, one per rank, sizes differing by one block at most.

    Block alignment makes every rank's batches the ones a single process would run, so
    the merged store is bit-equal to a one-process run at the same batch size.
    """
    n_blocks = -(-n_rows // block_rows)
    base, extra = divmod(n_blocks, world_size)
    out, block = [], 0
    for r in range(world_size):
        count = base + (1 if r < extra else 0)
        start, stop = block * block_rows, min((block + count) * block_rows, n_rows)
        out.append((min(start, n_rows), stop if count else min(start, n_rows)))
        block += count
    return out
