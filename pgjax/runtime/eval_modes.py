"""The evaluation modes every results file names (no JAX import: the CLI parsers use it).

One default everywhere (`pgjax train`'s summary.json, `pgjax eval`, `pgjax plot --final`):
greedy, the policy's mode. It is what is usually reported for PPO-like and
deterministic-policy methods (and the only mode DDPG/TD3 have); stochastic, sampled
actions as in training (what the learning tests measure), is asked for explicitly. Every
results file records the mode, the episode count and the evaluation seed with its numbers.
"""

from typing import Any

GREEDY, STOCHASTIC = "greedy", "stochastic"
DEFAULT_MODE = GREEDY
DEFAULT_EVAL_SEED = 10_000


def mode_name(deterministic: bool) -> str:
    """`"greedy"` for the policy's mode, `"stochastic"` for sampled actions."""
    return GREEDY if deterministic else STOCHASTIC


def sampling_refused(flag: str, algorithm: Any) -> str | None:
    """One line refusing `flag` (sampled evaluation actions) for an algorithm whose policy is
    deterministic (DDPG, TD3: the registry entry's `deterministic_policy`), where sampling
    would repeat the greedy numbers; None for the others. `algorithm`: a `pgjax.algos.Algorithm`."""
    if not algorithm.deterministic_policy:
        return None
    return (f"{flag}: {algorithm.name}'s policy is deterministic (its exploration noise is a training device, not part "
            f"of the policy), so it would give exactly the greedy numbers; drop {flag}")
