"""Train PPO on CartPole-v1 with the shipped config and save one evaluation episode as a GIF.

    .venv/bin/python scripts/make_gif.py                     # -> assets/ppo_cartpole.gif

The README links the result. About a minute on a 2-core CPU (one seed, 5e5 steps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

from pgjax.algos import ppo
from pgjax.config import from_dict, read_file
from pgjax.reports.animation import save_episode_gif
from pgjax.runtime.evaluation import eval_env, policy_act_fn, record_episode
from pgjax.runtime.experiment import seed_keys

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "ppo_cartpole.toml"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "assets" / "ppo_cartpole.gif"))
    args = parser.parse_args(argv)

    settings = read_file(args.config)
    settings.pop("algo", None)
    config = from_dict(ppo.PPOConfig, settings)
    trainer = ppo.make_trainer(config)
    out = jax.jit(trainer.train)(seed_keys(0, [args.seed])[0])
    act = policy_act_fn(trainer, out.state.params, out.state.obs_stats, deterministic=False)
    recording = record_episode(eval_env(trainer, 1), act, jax.random.PRNGKey(10_000 + args.seed))
    length = int(recording.length)
    path = save_episode_gif(
        config.env_id, recording.observations[: length + 1], recording.rewards[:length], args.out,
        title=f"PPO, {config.env_id}",
    )
    print(f"{path}: {length} steps, return {float(recording.rewards[:length].sum()):.0f}, "
          f"{path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
