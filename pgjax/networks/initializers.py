"""Initialisation shared by every pgjax network: orthogonal kernels and the `Network` base.

Initialisation follows the PPO implementation study (Andrychowicz et al., 2021; Huang et
al., 2022): orthogonal weights with gain sqrt(2) in the torso, 0.01 on the policy output
(near-uniform initial policy) and 1.0 on the value output. A recurrent gate's bias can
start by the chrono rule (`chrono_bias`), kept through `redraw` (`Preset`).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from pgjax.types import Array, PRNGKey

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


def chrono_bias(timescale: int):
    """Chrono initialisation of a gate bias `[..., H]` (Tallec & Ollivier, 2018, "Can recurrent
    neural networks warp time?", ICLR), for a gate `z = sigmoid(W x + b)` whose complement
    `a = 1 - z` is the state's retention: `b_i = -log(u_i)` with `u_i` evenly spaced over
    `[1, T - 1]` (`T = max(timescale, 2)`), so at zero input `a_i = u_i / (1 + u_i)` runs from
    0.5 to `1 - 1/T` and the units' time constants `1 / (1 - a_i) = 1 + u_i` from 2 to `T`.
    The paper draws `u_i ~ U[1, T - 1]`; evenly spaced quantiles are its deterministic form
    (every width spans the whole range). The key is unused."""

    def init(key, shape, dtype=jnp.float32):
        u = jnp.linspace(1.0, max(timescale, 2) - 1.0, shape[-1], dtype=jnp.float32)
        return jnp.broadcast_to(-jnp.log(u), shape).astype(dtype)

    return init


class Preset(struct.PyTreeNode, nn.meta.AxisMetadata):
    """A parameter whose entries `keep` (a mask along its last axis) are set by its module on
    purpose (minGRU's chrono gate bias): `redraw` keeps them and redraws only the others;
    `orthogonalize` (called by `Network.init` and `init_networks`) unboxes it."""

    value: Any
    keep: tuple[bool, ...] = struct.field(pytree_node=False)

    def unbox(self):
        return self.value

    def replace_boxed(self, val):
        return self.replace(value=val)

    def add_axis(self, index, params):
        return self  # `keep` runs along the last axis, which a new axis never is

    def remove_axis(self, index, params):
        return self


def preset(init, keep: tuple[bool, ...]):
    """`init`'s value in a `Preset` box that keeps the entries `keep` through `redraw`."""

    def boxed(key, shape, dtype=jnp.float32):
        if len(keep) != shape[-1]:
            raise ValueError(f"preset: keep has {len(keep)} entries; the parameter's last axis has {shape[-1]}")
        return Preset(init(key, shape, dtype), tuple(keep))

    return boxed


def _is_boxed(x) -> bool:
    return isinstance(x, (DeferredOrthogonal, Preset))


def orthogonalize(variables: Any, iterations: int = NEWTON_SCHULZ_ITERATIONS) -> Any:
    """Replace every `DeferredOrthogonal` box in `variables` by `gain * polar(draw)`.

    Kernels whose tall matrix is at most `THIN_COLUMNS` wide are zero-padded into one batch,
    the others batched by shape; each batch is one `polar_newton_schulz` loop. The result
    is the one `orthogonal(gain)` computes from the same draw, up to float rounding. `Preset`
    boxes are unboxed.
    """
    leaves, treedef = jax.tree.flatten(variables, is_leaf=_is_boxed)
    leaves = [leaf.value if isinstance(leaf, Preset) else leaf for leaf in leaves]
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


INITS = ("orthogonal", "lecun")


def redraw(variables: Any, key: PRNGKey, init: str = "orthogonal", bias_init_max: float = 0.0) -> Any:
    """`variables` with every `kernel` redrawn LeCun-normal if `init == "lecun"` (flax's
    `Dense` default: truncated normal, variance 1/fan_in; LeCun et al., 1998) and every `bias`
    drawn uniform in `[0, bias_init_max)` if `bias_init_max > 0` (gymnax-blines' networks use
    both, with 0.05). Other parameters (a Gaussian policy's `log_std`) are kept, and so are the
    `keep` entries of a `Preset` (a chrono gate bias)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(variables, is_leaf=_is_boxed)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        if isinstance(leaf, Preset):
            redrawn = _redraw_leaf(path, leaf.value, jax.random.fold_in(key, i), init, bias_init_max)
            out.append(leaf.replace(value=jnp.where(jnp.asarray(leaf.keep), leaf.value, redrawn)))
        else:
            out.append(_redraw_leaf(path, leaf, jax.random.fold_in(key, i), init, bias_init_max))
    return jax.tree.unflatten(treedef, out)


def _redraw_leaf(path, leaf: Any, leaf_key: PRNGKey, init: str, bias_init_max: float) -> Any:
    """One leaf of `redraw`: a kernel or bias redrawn, anything else as it is."""
    name = getattr(path[-1], "key", None)
    if name == "kernel" and init == "lecun":
        batch_dims = leaf.batch_dims if _is_deferred(leaf) else 0
        value = leaf.value if _is_deferred(leaf) else leaf
        lecun = nn.initializers.lecun_normal(batch_axis=tuple(range(batch_dims)))
        return lecun(leaf_key, value.shape, value.dtype)
    if name == "bias" and bias_init_max > 0:
        return jax.random.uniform(leaf_key, leaf.shape, leaf.dtype, 0.0, bias_init_max)
    return leaf


def init_networks(
    inits: dict[str, tuple[nn.Module, Any, tuple]], init: str = "orthogonal", bias_init_max: float = 0.0
) -> dict[str, Any]:
    """`{name: module.init(key, *args)}` for `inits = {name: (module, key, args)}`, every
    deferred kernel of all the modules orthogonalised together (one loop per kernel shape),
    or kernels and biases redrawn as `init` and `bias_init_max` say (`redraw`)."""
    raw = {name: nn.Module.init(module, key, *args) for name, (module, key, args) in inits.items()}
    if init != "orthogonal" or bias_init_max > 0:
        raw = {name: redraw(raw[name], jax.random.fold_in(key, 1), init, bias_init_max) for name, (_, key, _) in inits.items()}
    return orthogonalize(raw)


def dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal_deferred(gain), bias_init=nn.initializers.zeros)
