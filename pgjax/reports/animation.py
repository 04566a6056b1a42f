"""Animated GIFs of one evaluation episode, drawn with matplotlib from the observations.

gymnax's own `Visualizer` draws the classic-control tasks through gymnasium's pygame
renderer (not a pgjax dependency, and not headless-safe everywhere), so pgjax draws them
itself with matplotlib's Agg backend: the observation of CartPole, Pendulum, Acrobot and
MountainCar holds everything needed to draw the system. Any other environment gets a
generic frame (the observation as bars, or as an image when it is a grid). Frames come
from `evaluation.record_episode`, whose last observation is the true final one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pgjax.reports.plotting import pyplot

Updater = Callable[[int], None]  # draw frame i by moving the artists


def _cartpole(ax, obs: np.ndarray) -> Updater:
    # obs = [x, x_dot, theta, theta_dot]; theta = 0 is upright, the episode ends past
    # |x| = 2.4 or |theta| = 12 degrees. Pole length 2 * 0.5 as in gymnax's CartPole.
    ax.set_xlim(-2.6, 2.6)
    ax.set_ylim(-0.5, 1.6)
    ax.axhline(0.0, color="0.4", lw=1)
    for edge in (-2.4, 2.4):
        ax.axvline(edge, color="C3", lw=0.8, ls=":")
    (cart,) = ax.plot([], [], color="k", lw=10, solid_capstyle="butt")
    (pole,) = ax.plot([], [], color="C1", lw=4)

    def update(i):
        x, theta = obs[i, 0], obs[i, 2]
        cart.set_data([x - 0.25, x + 0.25], [0.0, 0.0])
        pole.set_data([x, x + np.sin(theta)], [0.0, np.cos(theta)])

    return update


def _pendulum(ax, obs: np.ndarray) -> Updater:
    # obs = [cos(theta), sin(theta), theta_dot]; theta = 0 is upright (gym's drawing convention).
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    (rod,) = ax.plot([], [], color="C3", lw=5, solid_capstyle="round")
    ax.plot([0], [0], "ko", ms=4)

    def update(i):
        cos, sin = obs[i, 0], obs[i, 1]
        rod.set_data([0.0, -sin], [0.0, cos])

    return update


def _acrobot(ax, obs: np.ndarray) -> Updater:
    # obs = [cos t1, sin t1, cos t2, sin t2, dt1, dt2]; t1 = 0 hangs down; the goal is the
    # tip above height 1 (two links of length 1).
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-2.2, 2.2)
    ax.axhline(1.0, color="C2", lw=0.8, ls=":")
    (links,) = ax.plot([], [], "o-", color="C0", lw=4, ms=4)

    def update(i):
        t1 = np.arctan2(obs[i, 1], obs[i, 0])
        t2 = np.arctan2(obs[i, 3], obs[i, 2])
        x1, y1 = np.sin(t1), -np.cos(t1)
        links.set_data([0.0, x1, x1 + np.sin(t1 + t2)], [0.0, y1, y1 - np.cos(t1 + t2)])

    return update


def _mountain_car(goal: float) -> Callable:
    def draw(ax, obs: np.ndarray) -> Updater:
        # obs = [position, velocity]; the hill is y = 0.45 sin(3x) + 0.55 on [-1.2, 0.6].
        xs = np.linspace(-1.2, 0.6, 100)
        ax.plot(xs, 0.45 * np.sin(3 * xs) + 0.55, color="0.4")
        ax.plot([goal], [0.45 * np.sin(3 * goal) + 0.55], marker=">", color="C2", ms=10)
        ax.set_xlim(-1.25, 0.65)
        ax.set_ylim(0.0, 1.15)
        (car,) = ax.plot([], [], "s", color="C0", ms=9)

        def update(i):
            x = obs[i, 0]
            car.set_data([x], [0.45 * np.sin(3 * x) + 0.55])

        return update

    return draw


def _generic(ax, obs: np.ndarray) -> Updater:
    """Grid observations (e.g. MinAtar `[H, W, C]`) as an image, vectors as bars."""
    flat = obs.reshape(len(obs), -1)
    if obs.ndim >= 3:  # [T, H, W] or [T, H, W, C]
        frames = obs if obs.ndim == 3 else np.argmax(obs, -1) + (obs.max(-1) > 0)
        image = ax.imshow(frames[0], vmin=frames.min(), vmax=max(frames.max(), 1), cmap="viridis")
        return lambda i: image.set_data(frames[i])
    low, high = np.nanmin(flat), np.nanmax(flat)
    pad = 0.05 * (high - low) + 1e-6
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("observation component")
    bars = ax.bar(np.arange(flat.shape[1]), flat[0], color="C0")

    def update(i):
        for bar, value in zip(bars, flat[i]):
            bar.set_height(value)

    return update


RENDERERS: dict[str, Callable] = {
    "CartPole-v1": _cartpole,
    "Pendulum-v1": _pendulum,
    "Acrobot-v1": _acrobot,
    "MountainCar-v0": _mountain_car(0.5),
    "MountainCarContinuous-v0": _mountain_car(0.45),
}


def frame_indices(num_observations: int, max_frames: int) -> np.ndarray:
    """At most `max_frames` evenly spaced observation indices, always the first and the last."""
    if num_observations <= max_frames:
        return np.arange(num_observations)
    return np.unique(np.linspace(0, num_observations - 1, max_frames).round().astype(int))


def save_episode_gif(
    env_id: str,
    observations,
    rewards,
    path: str | Path,
    fps: int = 25,
    max_frames: int = 100,
    title: str = "",
) -> Path:
    """Write one episode as a GIF: `observations [T + 1, ...]`, `rewards [T]` (no padding).

    Long episodes keep at most `max_frames` evenly spaced frames, so a GIF lasts a few
    seconds and takes a few seconds to render. Each frame is drawn once with Agg and mapped
    onto one shared 64-colour palette (one palette for all frames: no flicker, fast).
    """
    from PIL import Image

    observations = np.asarray(observations, float)
    returns = np.concatenate([[0.0], np.cumsum(np.asarray(rewards, float))])
    if len(returns) != len(observations):
        raise ValueError(f"need T + 1 observations for T rewards, got {len(observations)} and {len(rewards)}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 2.9), dpi=80)
    draw = RENDERERS.get(env_id, _generic)
    update = draw(ax, observations)
    if draw is not _generic:
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    label = ax.set_title(" \n ", fontsize=9)
    fig.tight_layout()
    last = len(observations) - 1
    images = []
    for i in frame_indices(len(observations), max_frames):
        update(i)
        label.set_text(f"{title or env_id}\nstep {i}/{last}  return {returns[i]:.1f}")
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]))
    plt.close(fig)
    # A palette from the first, middle and last frames covers the colours of all of them.
    sample = [images[0], images[len(images) // 2], images[-1]]
    mosaic = Image.new("RGB", (images[0].width, images[0].height * 3))
    for k, image in enumerate(sample):
        mosaic.paste(image, (0, k * image.height))
    palette = mosaic.quantize(colors=64, dither=Image.Dither.NONE)
    frames = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
