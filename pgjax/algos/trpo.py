"""Trust Region Policy Optimisation (Schulman et al., 2015).

NPG's update (`pgjax.algos.npg`: GAE, conjugate gradient on Fisher-vector products, the
natural step `sqrt(2 delta / g^T F^-1 g) F^-1 g`, value regression) with one change: the
step is not taken blindly. A backtracking line search shrinks it by `backtrack_coef` until
the MEASURED mean KL(old || new) is within `max_kl` and the surrogate improves; if no
fraction passes within `backtrack_iters` tries, the policy is left exactly as it was.
"""

from __future__ import annotations

from pgjax.algos import npg
from pgjax.algos._trainer import train_function
from pgjax.algos.contract import Trainer
from pgjax.algos.npg import PolicyProblem
from pgjax.config import (
    config_dataclass,
    field,
    hparams_dataclass,
    positive,
    unit_interval,
)
from pgjax.kernels.trust_region import backtracking_line_search


@hparams_dataclass
class TRPOHParams(npg.NPGHParams):
    """Traced hyper-parameters: NPG's plus the line search's shrink factor."""

    backtrack_coef: float = field(0.8, "each backtracking try scales the step by this", unit_interval(high_open=True))


@config_dataclass
class TRPOConfig(npg.NPGConfig):
    """Static TRPO settings: NPG's plus the number of line-search tries."""

    backtrack_iters: int = field(10, "line-search tries: fractions c^0 .. c^(n-1) of the natural step", positive())
    hparams: TRPOHParams = field(TRPOHParams(), "traced hyper-parameters")


def line_search_step(config: TRPOConfig, hparams: TRPOHParams, problem: PolicyProblem, step) -> tuple:
    """TRPO's rule: the largest `c^k step` within the KL radius that improves the surrogate."""
    result = backtracking_line_search(
        problem.surrogate, problem.kl, problem.params, step, hparams.max_kl,
        config.backtrack_iters, hparams.backtrack_coef,
    )
    metrics = {
        "kl": result.kl,
        "surrogate_improvement": result.improvement,
        "line_search_steps": result.steps,
        "line_search_accepted": result.accepted.astype(result.fraction.dtype),
        "step_fraction": result.fraction,
    }
    return result.params, metrics


def make_trainer(config: TRPOConfig) -> Trainer:
    """Build TRPO's functions for `config` (validated here, before anything compiles)."""
    return npg.build_trainer(config, line_search_step)


make_train = train_function(make_trainer)  # make_train(config) -> train(key, hparams=None)
