"""Pure jnp kernels: functions of arrays, jit- and vmap-able, with no flax modules and no
environments. A kernel imports only `pgjax.types` and other kernels.

- `returns`: n-step returns, GAE and reward-to-go that keep termination and truncation apart;
  whole-episode weights and baselines (batch, value, leave-one-out and normalised over groups).
- `losses`: policy and value losses and their diagnostics; `sac_losses`: soft actor-critic
  targets and losses; `targets`: target networks and Bellman targets.
- `distributions`: policy distributions (log-likelihood, entropy, KL in closed form).
- `trust_region`: KL, Fisher-vector products, conjugate gradient, line search.
- `vmpo_losses`: V-MPO's top-half E-step, temperature and KL-multiplier losses.
- `recurrence`: the linear recurrence `h_t = a_t h_{t-1} + b_t` by a parallel scan (minGRU).
- `noise`: exploration noise; `reward_scaling`: scaling by the discounted return's spread;
  `shuffle`: the minibatch permutation; `unrolled_rng`: threefry keys drawn in straight-line code.
- `replay`: the uniform replay buffer kept in the training state; `inputs`: the input checks
  the kernels share.
"""

import importlib

__all__ = ["distributions", "inputs", "losses", "noise", "recurrence", "replay", "returns", "reward_scaling",
           "sac_losses", "shuffle", "targets", "trust_region", "unrolled_rng", "vmpo_losses"]


def __getattr__(name: str):  # PEP 562: a module is imported on first use as an attribute
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
