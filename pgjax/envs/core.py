"""The environment interface every suite is adapted to.

Algorithms see one thing: a `VecEnv`, `num_envs` copies of an environment stepped together,

    env.reset(key)                     -> (env_state, obs [B, *obs_shape] float32)
    env.step(key, env_state, action)   -> (env_state, TimeStep)

with `TimeStep(obs, reward, terminated, truncated, next_obs)` (`pgjax.types.TimeStep`):
every copy whose episode ended (`terminated | truncated`) is reset inside `step`, `obs` is
the observation to act on next (the reset one there) and `next_obs` the true observation
the step reached, before the reset. `terminated` is a real end (bootstrap with zero),
`truncated` the time limit (bootstrap with V(next_obs)); never both. Also `obs_shape`,
`action_spec` (Discrete or Box) and `max_episode_steps`, the time limit.

A suite that already auto-resets this way (gymnax) implements `VecEnv` directly. A suite or
a user's environment that does not is written as a single, functional `Env` (reset, and a
step that reports termination only) and wrapped in `AutoResetVecEnv`, which adds the time
limit, the episode counter and the reset.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from pgjax.types import Array, PRNGKey, TimeStep


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """What the policy must produce: `num_actions` categories, or a Box of `shape`."""

    discrete: bool
    num_actions: int  # categories for Discrete, flat size for Box
    shape: tuple[int, ...]
    low: Any = None  # Box bounds as numpy arrays (None for Discrete)
    high: Any = None

    @classmethod
    def discrete_actions(cls, n: int) -> ActionSpec:
        return cls(discrete=True, num_actions=int(n), shape=())

    @classmethod
    def box(cls, low: Any, high: Any, shape: tuple[int, ...]) -> ActionSpec:
        import numpy as np

        shape = tuple(int(s) for s in shape)
        low = np.broadcast_to(np.asarray(low, np.float32), shape)
        high = np.broadcast_to(np.asarray(high, np.float32), shape)
        return cls(False, int(np.prod(shape)), shape, low, high)


class VecEnv(abc.ABC):
    """`num_envs` copies of one environment, stepped together with automatic reset.

    Subclasses are static (hashable by identity) so they can be closed over by `jit`.
    """

    num_envs: int
    env_id: str

    @property
    @abc.abstractmethod
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation (without the batch axis)."""

    @property
    @abc.abstractmethod
    def action_spec(self) -> ActionSpec:
        """The action space."""

    @property
    @abc.abstractmethod
    def max_episode_steps(self) -> int:
        """The time limit: an episode is truncated after this many steps."""

    @abc.abstractmethod
    def reset(self, key: PRNGKey) -> tuple[Any, Array]:
        """Reset every copy: `(env_state, obs [B, *obs_shape] float32)`."""

    @abc.abstractmethod
    def step(self, key: PRNGKey, env_state: Any, action: Array) -> tuple[Any, TimeStep]:
        """Step every copy, resetting those whose episode ended: `(env_state, TimeStep)`."""

    __hash__ = object.__hash__
    __eq__ = object.__eq__


@runtime_checkable
class Env(Protocol):
    """One environment, functional and unbatched, without time limit or automatic reset.

    `reset(key) -> (state, obs)`; `step(key, state, action) -> (state, obs, reward,
    terminated)` with `terminated` a real end of the episode (a goal reached, a fall), never
    a time limit: `AutoResetVecEnv` adds that (`max_episode_steps`) and the reset. `obs` may
    have any dtype (it reaches the networks as float32); `action` is an int32 scalar for
    Discrete actions, a float32 array of `action_spec.shape` for a Box.
    """

    obs_shape: tuple[int, ...]
    action_spec: ActionSpec
    max_episode_steps: int

    def reset(self, key: PRNGKey) -> tuple[Any, Array]: ...

    def step(self, key: PRNGKey, state: Any, action: Array) -> tuple[Any, Array, Array, Array]: ...


def _describe(tree: Any) -> str:
    leaves = jax.tree.leaves(tree)
    if len(leaves) == 1 and not isinstance(tree, (tuple, list, dict)):
        return f"shape {list(leaves[0].shape)} {leaves[0].dtype}"
    return f"{type(tree).__name__} of {len(leaves)} arrays"


def check_env(env_id: str, env: Any) -> None:
    """Check an `Env` against what it declares, once, without running it (`jax.eval_shape`):
    `obs_shape`, `action_spec`, `max_episode_steps`, then `reset(key) -> (state, obs)` and
    `step(key, state, action) -> (state, obs, reward, terminated)` with `obs` of `obs_shape`
    and scalar `reward` and `terminated`. A mismatch is one `ValueError` line naming the
    environment, the attribute and what was found; an exception inside `reset` or `step`
    while tracing is reported the same way."""
    import numpy as np

    where = f"env_id={env_id!r} ({type(env).__name__})"
    shape = getattr(env, "obs_shape", None)
    try:
        obs_shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in obs_shape) or any(int(d) != d for d in shape):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{where}: obs_shape={shape!r} must be a tuple of non-negative integers, e.g. (4,)") from None
    spec = getattr(env, "action_spec", None)
    if not isinstance(spec, ActionSpec):
        raise ValueError(f"{where}: action_spec={spec!r} must be a pgjax.envs.ActionSpec "
                         "(ActionSpec.discrete_actions(n) or ActionSpec.box(low, high, shape))")
    if spec.num_actions < 1:
        raise ValueError(f"{where}: action_spec has {spec.num_actions} actions; it needs at least 1")
    steps = getattr(env, "max_episode_steps", None)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{where}: max_episode_steps={steps!r} must be a positive integer (the time limit)")
    key = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    action = jax.ShapeDtypeStruct((), jnp.int32) if spec.discrete else jax.ShapeDtypeStruct(spec.shape, jnp.float32)

    def traced(name: str, fn, *args):
        try:
            return jax.eval_shape(fn, *args)
        except Exception as err:  # the user's code: name the environment and the call
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(f"{where}: {name} failed when traced with an abstract key"
                             f"{' and action' if name.startswith('step') else ''}: {type(err).__name__}: {first}") from err

    out = traced("reset(key)", env.reset, key)
    if not isinstance(out, tuple) or len(out) != 2:
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise ValueError(f"{where}: reset(key) must return (state, obs); it returned {got}")
    state, obs = out
    if not hasattr(obs, "shape") or tuple(obs.shape) != obs_shape:
        raise ValueError(f"{where}: reset(key) returns obs of {_describe(obs)}, but obs_shape={obs_shape}")
    out = traced("step(key, state, action)", env.step, key, state, action)
    if not isinstance(out, tuple) or len(out) != 4:
        got = f"{len(out)} values" if isinstance(out, tuple) else f"a {type(out).__name__}"
        raise ValueError(f"{where}: step(key, state, action) must return 4 values (state, obs, reward, terminated); "
                         f"it returned {got}")
    new_state, obs, reward, terminated = out
    if not hasattr(obs, "shape") or tuple(obs.shape) != obs_shape:
        raise ValueError(f"{where}: step returns obs of {_describe(obs)}, but obs_shape={obs_shape}")
    for name, value in (("reward", reward), ("terminated", terminated)):
        if not hasattr(value, "shape") or tuple(value.shape) != ():
            raise ValueError(f"{where}: step returns {name} of {_describe(value)}; it must be a scalar (shape [])")
    if jax.tree.structure(new_state) != jax.tree.structure(state):
        raise ValueError(f"{where}: step returns a state of another structure than reset's "
                         f"({jax.tree.structure(new_state)} vs {jax.tree.structure(state)})")
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        if old.shape != new.shape:
            raise ValueError(f"{where}: step changes a state leaf's shape from {list(old.shape)} to {list(new.shape)}; "
                             "the state must keep its shapes (it is carried through lax.scan)")


class ClockState(NamedTuple):
    """`AutoResetVecEnv`'s state: the wrapped environments' states and the step counters."""

    inner: Any  # the Env's state, batched [B, ...]
    time: Array  # [B] int32, steps taken in the current episode


def _raw_keys(keys: Array) -> Array:
    """Keys as the raw `uint32` words an `Env` gets, whatever implementation the caller's keys
    are (a rollout's are `pgjax.kernels.unrolled_rng` keys): an environment that stores a key in its
    state (xminigrid does) then has one key type in every state, reset or carried, and
    `_where` can pick between them. The words are the same bits."""
    return jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys


def _where(done: Array, reset: Any, kept: Any) -> Any:
    """Per environment: the `reset` leaf where `done`, else the `kept` one (any leaf rank)."""

    def pick(a, b):
        mask = done.reshape(done.shape + (1,) * (jnp.ndim(b) - 1))
        return jnp.where(mask, a, b)

    return jax.tree.map(pick, reset, kept)


class AutoResetVecEnv(VecEnv):
    """`num_envs` copies of an `Env`, with a time limit and automatic reset.

    After each step the clock advances; a copy whose step terminated, or whose clock reached
    `max_episode_steps`, is reset from a fresh key (every episode starts from a new random
    initial state). The step's true observation is kept in `TimeStep.next_obs`.
    """

    def __init__(self, env: Env, num_envs: int, env_id: str, max_episode_steps: int | None = None):
        self.env = env
        self.num_envs = num_envs
        self.env_id = env_id
        self._max_steps = int(max_episode_steps or env.max_episode_steps)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.env.obs_shape)

    @property
    def action_spec(self) -> ActionSpec:
        return self.env.action_spec

    @property
    def max_episode_steps(self) -> int:
        return self._max_steps

    def reset(self, key: PRNGKey) -> tuple[ClockState, Array]:
        inner, obs = jax.vmap(self.env.reset)(_raw_keys(jax.random.split(key, self.num_envs)))
        return ClockState(inner, jnp.zeros((self.num_envs,), jnp.int32)), obs.astype(jnp.float32)

    def step(self, key: PRNGKey, env_state: ClockState, action: Array) -> tuple[ClockState, TimeStep]:
        step_key, reset_key = jax.random.split(key)
        inner, next_obs, reward, terminated = jax.vmap(self.env.step)(
            _raw_keys(jax.random.split(step_key, self.num_envs)), env_state.inner, action
        )
        time = env_state.time + 1
        terminated = jnp.asarray(terminated).astype(bool)
        # A step that terminates is a real end even if the clock also ran out.
        truncated = (time >= self._max_steps) & ~terminated
        done = terminated | truncated
        fresh, fresh_obs = jax.vmap(self.env.reset)(_raw_keys(jax.random.split(reset_key, self.num_envs)))
        next_obs = next_obs.astype(jnp.float32)
        state = ClockState(_where(done, fresh, inner), jnp.where(done, 0, time))
        timestep = TimeStep(
            obs=_where(done, fresh_obs.astype(jnp.float32), next_obs),
            reward=jnp.asarray(reward, jnp.float32),
            terminated=terminated,
            truncated=truncated,
            next_obs=next_obs,
        )
        return state, timestep


def unknown_id_error(env_id: str, what: str, name: str, valid: list[str], prefix: str = "", tail: str = ".") -> ValueError:
    """The one-line error for an id whose suite has no `name`: up to three close valid names
    (spelled with `prefix`), then every valid id, then `tail`."""
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
    return ValueError(f"env_id={env_id!r} is not {what}.{hint} Valid ids: {', '.join(prefix + v for v in valid)}{tail}")
