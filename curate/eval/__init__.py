"""Downstream eval: does training on a manifest lower the loss on its target below random subsets?

``evaluate`` (a manifest) and ``evaluate_rows`` (any pool rows) train a CPU proxy LM — an
interpolated n-gram model by default, a tiny causal transformer on request — and compare target
losses with confidence intervals. Behind ``curate eval``, ``GET /v1/manifests/{id}/eval`` and the
selection report.
"""

from curate.eval.params import EvalParams
from curate.eval.run import evaluate, evaluate_rows

__all__ = ["EvalParams", "evaluate", "evaluate_rows"]
