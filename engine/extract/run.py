"""Where an extraction runs: in this process, or as one rank of a torchrun/srun job.

The request is checked here once (unless the caller already did, as the CLI does before
importing torch), and the single-process job and the ranks both take the checked request.
"""

from __future__ import annotations

from mgap.engine.extract.distributed import detect as detect_rank
from mgap.engine.extract.finish import Reporter
from mgap.engine.extract.job import ExtractJob
from mgap.engine.extract.layer_plan import refuse_distributed_layers
from mgap.engine.extract.ranks import run_distributed
from mgap.engine.extract.request import CheckedRequest, ExtractRequest, check_request
from mgap.engine.reports.pipeline import ExtractedStore


def run_extraction(
    request: ExtractRequest | CheckedRequest, reporter: Reporter | None = None
) -> list[ExtractedStore]:
    """Extract every model of `request` over its dataset; returns one summary per store.

    Under torchrun or srun (several ranks), each rank extracts its share and rank 0
    merges the shares (see `mgap.engine.extract.ranks`).
    """
    checked = request if isinstance(request, CheckedRequest) else check_request(request)
    rank = detect_rank()
    if rank.distributed:
        refuse_distributed_layers(checked.layers)
        return run_distributed(checked, reporter, rank)
    return ExtractJob(checked, reporter).run()
