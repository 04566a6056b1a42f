"""Train purejaxrl's own PPO on a MinAtar game, for a row beside pgjax's (scripts/reproduce.py).

purejaxrl is not a package: its MinAtar PPO is the first `make_train` cell of
`examples/brax_minatar.ipynb` in its repository (64x64 ReLU actor and critic on the
flattened grid, gymnax's `FlattenObservationWrapper` and `LogWrapper`). This harness runs
that cell's code unchanged from a snapshot of the repository (nothing of it is copied
here), with the notebook's config but `ENV_NAME` and `TOTAL_TIMESTEPS` from the command line.
It needs gymnax 0.0.9's five-value `step`, so it runs in the peers' virtual environment
(`../shared/peers/setup.sh`), not pgjax's.

usage: python purejaxrl_minatar.py NOTEBOOK ENV SEEDS STEPS EPISODES

Seeds are `fold_in(PRNGKey(0), s)` for s in 0..SEEDS-1, trained in one `jit(vmap(train))`.
Each seed's final policy then plays EPISODES episodes greedily (the mode) and with sampled
actions; an episode ends at termination or gymnax's time limit and is counted once. Prints
one JSON line: per-seed final returns in both modes, the training return (mean of the last
10% of updates' finished episodes), compile and train seconds, env steps/s (all seeds).
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def load_make_train(notebook: str):
    with open(notebook) as f:
        cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
    source = next("".join(c["source"]) for c in cells if "def make_train" in "".join(c["source"]))
    namespace: dict = {}
    exec(compile(source, notebook, "exec"), namespace)  # noqa: S102 - the peer's own code, run as it ships
    config = next("".join(c["source"]) for c in cells if "config = {" in "".join(c["source"]))
    config_ns: dict = {}
    exec(config.split("rng = ")[0], config_ns)  # noqa: S102 - only the config dict literal
    return namespace, config_ns["config"]


def evaluate(network, params, env, env_params, key, episodes: int, greedy: bool):
    """Mean return of `episodes` first episodes, one per env copy, capped at the time limit."""
    reset_keys = jax.random.split(jax.random.fold_in(key, 0), episodes)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, env_params)

    def step(carry, key):
        obs, state, ret, alive = carry
        pi, _ = network.apply(params, obs)
        action = pi.mode() if greedy else pi.sample(seed=jax.random.fold_in(key, 1))
        obs, state, reward, done, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key, episodes), state, action, env_params)
        return (obs, state, ret + reward * alive, alive * (1 - done)), None

    limit = env_params.max_steps_in_episode
    carry = (obs, state, jnp.zeros(episodes), jnp.ones(episodes))
    (_, _, ret, _), _ = jax.lax.scan(step, carry, jax.random.split(jax.random.fold_in(key, 2), limit))
    return ret.mean()


def main() -> None:
    notebook, env_name, seeds, steps, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(float(sys.argv[4])), int(sys.argv[5])
    ns, config = load_make_train(notebook)
    config.update(ENV_NAME=env_name, TOTAL_TIMESTEPS=steps)
    train = jax.jit(jax.vmap(ns["make_train"](dict(config))))
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(0), s))(jnp.arange(seeds))
    t0 = time.perf_counter()
    compiled = train.lower(keys).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    t2 = time.perf_counter()

    import gymnax
    from gymnax.wrappers.purerl import FlattenObservationWrapper

    env, env_params = gymnax.make(env_name)
    env = FlattenObservationWrapper(env)
    network = ns["ActorCritic"](env.action_space(env_params).n, activation=config["ACTIVATION"])
    params = out["runner_state"][0].params
    eval_key = jax.random.PRNGKey(10000)
    result = {}
    for mode, greedy in (("greedy", True), ("stochastic", False)):
        fn = jax.jit(jax.vmap(lambda p, g=greedy: evaluate(network, p, env, env_params, eval_key, episodes, g)))
        result[mode] = [float(x) for x in fn(params)]
    info = out["metrics"]
    done = np.asarray(info["returned_episode"])  # [seeds, updates, steps, envs]
    rets = np.asarray(info["returned_episode_returns"])
    tail = max(1, done.shape[1] // 10)
    train_return = [float(rets[s, -tail:][done[s, -tail:]].mean()) for s in range(seeds)]
    num_updates = steps // config["NUM_STEPS"] // config["NUM_ENVS"]
    env_steps = num_updates * config["NUM_STEPS"] * config["NUM_ENVS"]
    print(json.dumps({
        "lib": "purejaxrl", "env": env_name, "seeds": seeds, "config": config, "env_steps_per_seed": env_steps,
        "eval_episodes": episodes, "eval": result, "final_train_return": train_return,
        "compile_s": round(t1 - t0, 2), "train_s": round(t2 - t1, 2),
        "env_steps_per_s": round(seeds * env_steps / (t2 - t1), 1), "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
    }))


if __name__ == "__main__":
    main()
