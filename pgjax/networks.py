"""Flax linen networks: a torso (flatten + MLP, or CNN + MLP), policy heads that return a
distribution, value and Q critics.

Every head takes a `TorsoSpec` (`torso_spec` builds it from the config and the observation
space, the one place where the network is chosen): observations `[..., *obs_shape]` of any
rank go in, the MLP of `hidden_sizes` sees them flattened (after the CNN for `kind="cnn"`).

Initialisation follows the PPO implementation study (Andrychowicz et al., 2021; Huang et
al., 2022): orthogonal weights with gain sqrt(2) in the torso, 0.01 on the policy output
(near-uniform initial policy) and 1.0 on the value output.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pgjax.distributions import Categorical, DiagGaussian
from pgjax.types import Array

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "elu": nn.elu, "silu": nn.silu}


NEWTON_SCHULZ_ITERATIONS = 60  # converges to float32 precision from any Gaussian start
# Deferred kernels at most this wide (columns of the tall matrix) are zero-padded into one
# batch; wider ones are batched with kernels of exactly their shape (padding them costs more).
THIN_COLUMNS = 16


def polar_newton_schulz(x: Array, iterations: int = NEWTON_SCHULZ_ITERATIONS) -> Array:
    """The orthogonal polar factor `U V^T` of each tall matrix `x [n, M, N]` (`M >= N`, full rank).

    Newton-Schulz iteration `X <- 1.5 X - 0.5 X X^T X` from `X_0 = x / ||x||_F` (each
    matrix's singular values in (0, 1], so they converge to 1; Higham, Functions of Matrices,
    2008, ch. 8). Zero rows and columns stay zero, so a kernel zero-padded into a larger
    batch gets the same factor as alone: one loop serves kernels of several shapes.
    """
    x = x / jnp.sqrt(jnp.sum(x * x, axis=(-2, -1), keepdims=True))

    def newton_schulz(_, x):
        return 1.5 * x - 0.5 * x @ (jnp.swapaxes(x, -1, -2) @ x)

    return jax.lax.fori_loop(0, iterations, newton_schulz, x)


def _to_tall(kernels: Array, kernel_shape) -> Array:
    """Kernels `[..., *kernel_shape]` as tall matrices `[n, M, N]`, `M >= N`: a kernel
    `[..., out]` is the matrix `[prod(...), out]` (a conv kernel `[kh, kw, in, out]` is
    orthogonal as `[kh * kw * in, out]`, as flax's `orthogonal`), transposed if wide."""
    rows, cols = math.prod(kernel_shape[:-1]), kernel_shape[-1]
    x = kernels.reshape(-1, rows, cols)
    return jnp.swapaxes(x, -1, -2) if rows < cols else x


def _from_tall(matrices: Array, shape, kernel_shape) -> Array:
    """The inverse of `_to_tall`: `[n, M, N]` back to kernels of `shape` (`[..., *kernel_shape]`)."""
    if math.prod(kernel_shape[:-1]) < kernel_shape[-1]:
        matrices = jnp.swapaxes(matrices, -1, -2)
    return matrices.reshape(shape)


def _gaussian_kernel(key, shape) -> Array:
    """The Gaussian draw behind an orthogonal kernel of `shape` (drawn in the tall orientation)."""
    if len(shape) < 2:
        raise ValueError(f"orthogonal init needs a kernel of rank >= 2, got shape {shape}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    x = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
    return (x.T if rows < cols else x).reshape(shape)


def orthogonal(gain: float = 1.0, iterations: int = NEWTON_SCHULZ_ITERATIONS):
    """Orthogonal initialiser without LAPACK: `gain * polar(A)`, `A` Gaussian.

    The polar factor `U V^T` of a Gaussian matrix is Haar-distributed, like the sign-fixed
    QR factor that `flax.linen.initializers.orthogonal` uses (Saxe et al., 2014), and is
    computed by `polar_newton_schulz`. Why not QR: under `vmap` inside `jit` on a 2-core
    CPU, jaxlib's batched LAPACK QR waits on the same thread pool it runs on and can
    deadlock (seen in 16-seed runs; gdb shows both pool threads blocked in
    `QrFactorizationKernel`). pgjax's own networks use `orthogonal_deferred` instead (the
    same distribution, one loop per network instead of one per kernel).
    """

    def init(key, shape, dtype=jnp.float32):
        q = polar_newton_schulz(_to_tall(_gaussian_kernel(key, shape), shape), iterations)
        return (gain * _from_tall(q, shape, shape)).astype(dtype)

    return init


class DeferredOrthogonal(struct.PyTreeNode, nn.meta.AxisMetadata):
    """A kernel's Gaussian draw boxed until `orthogonalize` turns it into `gain * polar(draw)`.

    `batch_dims` leading axes were added by `nn.vmap` (an ensemble's members): each member
    is its own matrix.
    """

    value: Any
    gain: float = struct.field(pytree_node=False)
    batch_dims: int = struct.field(pytree_node=False, default=0)

    def unbox(self):
        return self.value

    def replace_boxed(self, val):
        return self.replace(value=val)

    def add_axis(self, index, params):
        if index != 0:
            raise ValueError(f"a deferred orthogonal kernel takes new axes in front only, got axis {index}")
        return self.replace(batch_dims=self.batch_dims + 1)

    def remove_axis(self, index, params):
        return self.replace(batch_dims=self.batch_dims - 1)


def orthogonal_deferred(gain: float = 1.0):
    """`orthogonal(gain)`'s distribution, computed later: the initialiser returns the Gaussian
    draw in a `DeferredOrthogonal` box and `orthogonalize` (called by `Network.init` and
    `init_networks`) orthogonalises every boxed kernel of a network in one batched loop per
    kernel shape. Why: each Newton-Schulz loop is its own XLA computation, and PPO's six
    kernels took six loops to compile."""

    def init(key, shape, dtype=jnp.float32):
        return DeferredOrthogonal(_gaussian_kernel(key, shape).astype(dtype), gain)

    return init


def _is_deferred(x) -> bool:
    return isinstance(x, DeferredOrthogonal)


def orthogonalize(variables: Any, iterations: int = NEWTON_SCHULZ_ITERATIONS) -> Any:
    """Replace every `DeferredOrthogonal` box in `variables` by `gain * polar(draw)`.

    Kernels whose tall matrix is at most `THIN_COLUMNS` wide are zero-padded into one batch,
    the others batched by shape; each batch is one `polar_newton_schulz` loop. The result
    is the one `orthogonal(gain)` computes from the same draw, up to float rounding.
    """
    leaves, treedef = jax.tree.flatten(variables, is_leaf=_is_deferred)
    tall, groups = {}, {}
    for i, box in enumerate(leaves):
        if _is_deferred(box):
            tall[i] = _to_tall(box.value.astype(jnp.float32), box.value.shape[box.batch_dims:])
            rows, cols = tall[i].shape[1:]
            groups.setdefault("thin" if cols <= THIN_COLUMNS else (rows, cols), []).append(i)
    for members in groups.values():
        rows = max(tall[i].shape[1] for i in members)
        cols = max(tall[i].shape[2] for i in members)
        padded = [jnp.pad(tall[i], ((0, 0), (0, rows - tall[i].shape[1]), (0, cols - tall[i].shape[2]))) for i in members]
        q = polar_newton_schulz(jnp.concatenate(padded), iterations)
        start = 0
        for i in members:
            box, (count, r, c) = leaves[i], tall[i].shape
            kernels = _from_tall(q[start:start + count, :r, :c], box.value.shape, box.value.shape[box.batch_dims:])
            leaves[i] = (box.gain * kernels).astype(box.value.dtype)
            start += count
    return jax.tree.unflatten(treedef, leaves)


class Network(nn.Module):
    """A flax module whose `init` returns orthogonalised kernels (see `orthogonal_deferred`).

    A module of yours that contains pgjax modules gets boxed kernels from its own `init`:
    pass its variables through `orthogonalize` (or build them with `init_networks`).
    """

    @nn.nowrap
    def init(self, rngs, *args, **kwargs):
        return orthogonalize(nn.Module.init(self, rngs, *args, **kwargs))


def init_networks(inits: dict[str, tuple[nn.Module, Any, tuple]]) -> dict[str, Any]:
    """`{name: module.init(key, *args)}` for `inits = {name: (module, key, args)}`, every
    deferred kernel of all the modules orthogonalised together (one loop per kernel shape)."""
    raw = {name: nn.Module.init(module, key, *args) for name, (module, key, args) in inits.items()}
    return orthogonalize(raw)


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal_deferred(gain), bias_init=nn.initializers.zeros)


# --- torsos: what every head puts between the observation and its output layer -------------

@dataclasses.dataclass(frozen=True)
class TorsoSpec:
    """How a head turns observations `[..., *obs_shape]` into features (static, hashable).

    `kind="mlp"`: flatten the `obs_rank` trailing axes, then the MLP. `kind="cnn"`: `Conv ->
    activation` per entry of `channels`/`kernel_sizes`/`strides` (square kernels, VALID
    padding, rank-2 grids get a channel axis), flattened, then the MLP. The default is the
    MLP on vector observations, the networks pgjax had before observations of any rank.
    """

    kind: str = "mlp"
    obs_rank: int = 1
    channels: tuple[int, ...] = ()
    kernel_sizes: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()


def resolve_torso(torso: str, obs_shape: tuple[int, ...]) -> str:
    """The torso `"auto"` stands for: `"cnn"` for rank-3 `[H, W, C]` observations (MinAtar,
    Pong: images and grids with feature planes), `"mlp"` on the flattened observation otherwise."""
    if torso != "auto":
        return torso
    return "cnn" if len(obs_shape) == 3 else "mlp"


def torso_spec(config: Any, obs_shape: tuple[int, ...]) -> TorsoSpec:
    """The torso a config gets for observations of `obs_shape` (`config.torso`, `cnn_*`)."""
    kind = resolve_torso(config.torso, tuple(obs_shape))
    if kind == "mlp":
        return TorsoSpec("mlp", len(obs_shape))
    return TorsoSpec(
        "cnn", len(obs_shape), tuple(config.cnn_channels), tuple(config.cnn_kernel_sizes), tuple(config.cnn_strides)
    )


def check_torso(config: Any, obs_shape: tuple[int, ...]) -> str | None:
    """Why `config`'s torso cannot take observations of `obs_shape`, or None if it can."""
    spec = torso_spec(config, obs_shape)
    if spec.kind != "cnn":
        return None
    if len({len(spec.channels), len(spec.kernel_sizes), len(spec.strides)}) != 1 or not spec.channels:
        return (f"cnn_channels={list(spec.channels)}, cnn_kernel_sizes={list(spec.kernel_sizes)} and "
                f"cnn_strides={list(spec.strides)} must be non-empty lists of the same length (one entry per conv layer)")
    if min(spec.channels + spec.kernel_sizes + spec.strides) < 1:
        return "cnn_channels, cnn_kernel_sizes and cnn_strides must hold positive integers"
    if len(obs_shape) not in (2, 3):
        return (f"torso='cnn' needs grid or image observations of shape [H, W] or [H, W, C], "
                f"got shape {tuple(obs_shape)}; use torso='mlp'")
    height, width = obs_shape[:2]
    for kernel, stride in zip(spec.kernel_sizes, spec.strides):
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        if min(height, width) < 1:
            return (f"cnn_kernel_sizes={list(spec.kernel_sizes)} with cnn_strides={list(spec.strides)} "
                    f"shrink the {tuple(obs_shape[:2])} observation grid to nothing; use smaller kernels")
    return None


def flatten_obs(obs: Array, obs_rank: int) -> Array:
    """`[..., *obs_shape] -> [..., prod(obs_shape)]` float32 (booleans and ints become floats)."""
    batch = obs.shape[: obs.ndim - obs_rank]
    return obs.reshape(*batch, -1).astype(jnp.float32)


def conv_valid(x: Array, kernel: Array, stride: int = 1) -> Array:
    """VALID 2-D cross-correlation of `x [N, H, W, C]` with `kernel [kh, kw, C, F]`:
    `y[n, i, j, f] = sum_{a, b, c} x[n, s*i + a, s*j + b, c] kernel[a, b, c, f]`, computed as
    one matmul of the patches `[N, H', W', kh*kw*C]` with the kernel as `[kh*kw*C, F]` (im2col;
    Chellapilla et al., 2006).

    Why not `lax.conv_general_dilated`: vmapped over seeds, each with its own kernel, a
    convolution becomes a grouped convolution, and on an NVIDIA H200 the gradient of
    PPO's MinAtar CNN took 3x as long that way (5.65 ms against 1.89 for 64 seeds x 1024
    samples; 0.30 against 0.10 ms for one seed), and whole PPO training on Breakout-MinAtar
    ran 5x slower on a 2-core CPU. A batched matmul is what every backend does best.
    """
    kh, kw, channels, features = kernel.shape
    out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    # Patch features in (a, b, c) order, the row order of the kernel reshaped below.
    patches = jnp.concatenate(
        [
            x[:, a : a + stride * (out_h - 1) + 1 : stride, b : b + stride * (out_w - 1) + 1 : stride, :]
            for a in range(kh)
            for b in range(kw)
        ],
        axis=-1,
    )
    return patches @ kernel.reshape(kh * kw * channels, features)


class Conv(nn.Module):
    """`conv_valid` plus a bias, with `flax.linen.Conv`'s parameters (`kernel [k, k, C, F]`,
    `bias [F]`) and the torso's initialisation: orthogonal with gain sqrt(2), zero bias."""

    features: int
    kernel_size: int
    stride: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", orthogonal_deferred(np.sqrt(2.0)), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return conv_valid(x, kernel, self.stride) + bias[None, None, None, :]


class CNN(Network):
    """`obs [..., H, W, C]` (or `[..., H, W]`) -> `[..., features]`: `Conv -> activation` per layer,
    VALID padding, flattened (the MinAtar network: Young & Tian, 2019, one 16-channel 3x3 conv)."""

    channels: Sequence[int]
    kernel_sizes: Sequence[int]
    strides: Sequence[int]
    activation: str = "relu"
    obs_rank: int = 3

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        x = obs.astype(jnp.float32)
        if self.obs_rank == 2:
            x = x[..., None]  # a grid is an image with one channel
        batch = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])  # one batch axis
        for features, kernel, stride in zip(self.channels, self.kernel_sizes, self.strides):
            x = act(Conv(features, kernel, stride)(x))
        return x.reshape(*batch, -1)


def torso_features(obs: Array, spec: TorsoSpec, activation: str) -> Array:
    """The flat input of a head's MLP: the CNN's features or the flattened observation.

    Called inside a head's compact `__call__`, so a CNN is that head's submodule `CNN_0`
    (the MLP keeps its name `MLP_0`: parameters and their initial values are unchanged).
    """
    if spec.kind == "cnn":
        return CNN(spec.channels, spec.kernel_sizes, spec.strides, activation, spec.obs_rank)(obs)
    if spec.kind != "mlp":
        raise ValueError(f"torso kind={spec.kind!r} is unknown; use one of 'mlp', 'cnn'")
    return flatten_obs(obs, spec.obs_rank)


class MLP(Network):
    """Fully connected torso: `Dense -> activation` for each hidden size."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(_dense(size, np.sqrt(2.0))(x))
        return x


class CategoricalActor(Network):
    """`obs [..., *obs_shape] -> Categorical(logits [..., num_actions])`."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array) -> Categorical:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        return Categorical(logits=_dense(self.num_actions, 0.01)(x))


class GaussianActor(Network):
    """`obs -> DiagGaussian(mean, log_std)`.

    With `state_dependent_std=False` the log-std is one free parameter per action dimension
    (PPO/TRPO style); otherwise a second head predicts it, clamped to
    `[log_std_min, log_std_max]` (SAC style).
    """

    action_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    state_dependent_std: bool = False
    init_log_std: float = 0.0
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array) -> DiagGaussian:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        mean = _dense(self.action_dim, 0.01)(x)
        if self.state_dependent_std:
            log_std = _dense(self.action_dim, 0.01)(x) + self.init_log_std
            log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        else:
            log_std = self.param(
                "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
            )
            log_std = jnp.broadcast_to(log_std, mean.shape)
        return DiagGaussian(mean=mean, log_std=log_std)


class ValueCritic(Network):
    """`obs [..., *obs_shape] -> V(obs) [...]`."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        return _dense(1, 1.0)(x)[..., 0]


# --- off-policy heads: Q critics and a deterministic actor -----------------------------------


class QCritic(Network):
    """`(obs [..., *obs_shape], action [..., A]) -> Q(obs, action) [...]`: the torso's features
    of `obs` concatenated with the action, then the MLP."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        features = torso_features(obs, self.torso, self.activation)
        action = action.reshape(*features.shape[:-1], -1).astype(features.dtype)
        x = MLP(self.hidden_sizes, self.activation)(jnp.concatenate([features, action], axis=-1))
        return _dense(1, 1.0)(x)[..., 0]


class DiscreteQCritic(Network):
    """`obs [..., *obs_shape] -> Q(obs, .) [..., num_actions]`, one output per action."""

    num_actions: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array, action: Array | None = None) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        return _dense(self.num_actions, 1.0)(x)


class QEnsemble(Network):
    """`num_critics` independent Q critics evaluated in one pass (`nn.vmap` over parameters).

    Returns `[num_critics, ...]` (`[num_critics, ..., num_actions]` with `num_actions`).
    Continuous critics take `(obs, action)`; discrete ones (`num_actions` set) take `obs`.
    Each member has its own initialisation (split parameter keys).
    """

    num_critics: int = 2
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    num_actions: int | None = None
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array, action: Array | None = None) -> Array:
        ensemble = nn.vmap(
            QCritic if self.num_actions is None else DiscreteQCritic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        if self.num_actions is None:
            return ensemble(self.hidden_sizes, self.activation, self.torso)(obs, action)
        return ensemble(self.num_actions, self.hidden_sizes, self.activation, self.torso)(obs)


class DeterministicActor(Network):
    """`obs -> low + (tanh(f(obs)) + 1) (high - low) / 2`, a deterministic action in the Box.

    `low` and `high` are tuples (hashable module attributes) of the flat action size.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    torso: TorsoSpec = TorsoSpec()

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(torso_features(obs, self.torso, self.activation))
        squashed = nn.tanh(_dense(len(self.low), 0.01)(x))
        low = jnp.broadcast_to(jnp.asarray(self.low, jnp.float32), squashed.shape)
        high = jnp.broadcast_to(jnp.asarray(self.high, jnp.float32), squashed.shape)
        return low + 0.5 * (squashed + 1.0) * (high - low)
