"""Evaluate the anchor's own trained MinAtar policies with pgjax's evaluation protocol.

Not a test. gymnax-blines (the source of gymnax's README PPO numbers) commits, per game and
learning rate, the trained network and the evaluations logged during training:
`agents/<Game>-MinAtar/ppo.pkl` (lr 5e-4, the config's) and `ppo0.0001.pkl`, `ppo0.001.pkl`,
each one training seed (`seed_id` 0). This script plays those networks on pgjax's
environments through pgjax's evaluator (`pgjax.runtime.evaluation.run_episodes`: each copy's
first episode, within gymnax's time limit), on the same episodes as the `reproduce.py minatar`
rows (evaluation seed 10000, 164 episodes) and on `--eval-seeds` more sets of 164, so the
anchor's single seed can be placed among pgjax's five on identical episodes.

    python scripts/anchor_policies.py --blines /work/.mirror/RobertTLange+gymnax-blines/repo

`--blines` is a gymnax-blines git directory (a clone or a fetched snapshot; read with
`git show HEAD:...`, no work tree needed). Writes `benchmarks/results/minatar_anchor_policies.md`
and `.json`.

    python scripts/anchor_policies.py --peer-runs runs/peers/gymnax-blines --games asterix

evaluates instead the networks that gymnax-blines' own code trained here at several seeds
(`benchmarks/peers/gymnax_blines_minatar.py`, pickles `<game>_seed<N>.pkl`), on the rows'
episodes, beside pgjax's seeds, into `benchmarks/results/minatar_gymnax_blines_seeds.md`/`.json`.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgjax.config import make_env
from pgjax.runtime.evaluation import run_episodes
from pgjax.runtime.loading import load_config

GAMES = {"asterix": "Asterix", "breakout": "Breakout", "freeway": "Freeway", "spaceinvaders": "SpaceInvaders"}
RUNS = {"5e-4": "ppo.pkl", "1e-4": "ppo0.0001.pkl", "1e-3": "ppo0.001.pkl"}
ROW_EVAL_SEED = 10000
EPISODES = 164
OUT = ROOT / "benchmarks" / "results" / "minatar_anchor_policies"


class _AnyObject(dict):
    """Stands in for classes the pickle names but this environment lacks (dotmap.DotMap)."""

    def __setstate__(self, state):
        self.update(state if isinstance(state, dict) else {})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _AnyObject


def load_anchor(blines: Path, game: str, file: str) -> dict:
    """The pickle gymnax-blines' `train.py` wrote: log_steps, log_return, network, train_config."""
    data = subprocess.run(["git", "--git-dir", str(blines), "show", f"HEAD:agents/{game}-MinAtar/{file}"],
                          check=True, capture_output=True).stdout
    import io

    return _Unpickler(io.BytesIO(data)).load()


def actor_logits(params: dict, obs: jax.Array) -> jax.Array:
    """gymnax-blines' `CategoricalSeparateMLP` actor: obs flattened, Dense_0, Dense_1 (ReLU), Dense_2."""
    x = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
    for name in ("Dense_0", "Dense_1"):
        x = jax.nn.relu(x @ params[name]["kernel"] + params[name]["bias"])
    return x @ params["Dense_2"]["kernel"] + params["Dense_2"]["bias"]


def evaluator(env):
    """`evaluate(params, eval_seed, greedy)`: returns of each copy's first episode (pgjax's
    evaluator), an anchor network acting. Compiled once per mode for `env`: the parameters are
    an argument, so every network of a game shares the program. Make a new one after changing
    the game's rules (`old_spaceinvaders_rules`): a compiled program keeps the rules it traced."""

    @functools.partial(jax.jit, static_argnames="greedy")
    def returns(params, key, greedy):
        def act(key, obs):
            logits = actor_logits(params, obs)
            return jnp.argmax(logits, -1) if greedy else jax.random.categorical(key, logits)

        return run_episodes(env, act, key).returns

    def evaluate(params, eval_seed: int, greedy: bool) -> np.ndarray:
        return np.asarray(returns(params, jax.random.PRNGKey(eval_seed), greedy=greedy))

    return evaluate


def old_spaceinvaders_rules(bullet_rule: bool, first_wave: bool):
    """Restore gymnax 0.0.5's SpaceInvaders rules in the installed gymnax (monkeypatch; undo
    with the returned function): an enemy bullet reaching the bottom row kills the cannon at its
    position *before* this step's move (`e_bullet_map[9, state.pos]`; today: after it), and the
    first wave has 28 aliens (columns 2-8; today and in MinAtar: 24, columns 2-7)."""
    from gymnax.environments.minatar import space_invaders as si

    step_agent, reset_env = si.step_agent, si.MinSpaceInvaders.reset_env

    def step_agent_0_0_5(action, state, params):
        new = step_agent(action, state, params)
        return new.replace(terminal=jnp.logical_or(state.terminal, new.e_bullet_map[9, state.pos] > 0))

    def reset_env_0_0_5(self, key, params):
        _, state = reset_env(self, key, params)
        state = state.replace(alien_map=jnp.zeros((10, 10)).at[0:4, 2:9].set(True))
        return self.get_obs(state), state

    if bullet_rule:
        si.step_agent = step_agent_0_0_5
    if first_wave:
        si.MinSpaceInvaders.reset_env = reset_env_0_0_5

    def undo():
        si.step_agent, si.MinSpaceInvaders.reset_env = step_agent, reset_env

    return undo


def spaceinvaders_rule_check(blines: Path) -> list[dict]:
    """The lr 5e-4 SpaceInvaders network, sampled, on the rows' 164 episodes, under today's
    rules and with each 0.0.5 rule restored."""
    config = load_config(str(ROOT / "configs" / "ppo_spaceinvaders_minatar.toml"))
    params = jax.tree.map(jnp.asarray, dict(load_anchor(blines, "SpaceInvaders", "ppo.pkl")["network"]["params"]))
    results = []
    for bullet_rule, first_wave in ((False, False), (True, False), (False, True), (True, True)):
        undo = old_spaceinvaders_rules(bullet_rule, first_wave)
        try:
            returns = evaluator(make_env(config, EPISODES))(params, ROW_EVAL_SEED, greedy=False)
        finally:
            undo()
        results.append({"bullet_rule_0_0_5": bullet_rule, "first_wave_0_0_5": first_wave,
                        "sampled_mean": float(returns.mean()),
                        "sampled_se": float(returns.std(ddof=1) / np.sqrt(returns.size))})
        print(f"spaceinvaders 0.0.5 bullet rule {bullet_rule}, 0.0.5 first wave {first_wave}: "
              f"{results[-1]['sampled_mean']:.1f}", flush=True)
    return results


def pgjax_row(game: str) -> dict | None:
    path = ROOT / "benchmarks" / "results" / "minatar" / f"{game}-mlp.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--blines", type=Path, help="gymnax-blines git directory")
    source.add_argument("--peer-runs", type=Path, help="folder of gymnax_blines_minatar.py pickles")
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=list(GAMES))
    parser.add_argument("--eval-seeds", type=int, default=5,
                        help="sets of 164 episodes (evaluation seeds 10000, 10001, ...) for the pooled mean")
    args = parser.parse_args(argv)
    if args.eval_seeds < 1:
        parser.error(f"--eval-seeds must be at least 1, got {args.eval_seeds}")

    if args.peer_runs is not None:
        peer_seeds(args.peer_runs, args.games)
        return
    records = []
    for game in args.games:
        config = load_config(str(ROOT / "configs" / f"ppo_{game}_minatar.toml"))
        evaluate = evaluator(make_env(config, EPISODES))
        ours = pgjax_row(game)
        for lr, file in RUNS.items():
            anchor = load_anchor(args.blines, GAMES[game], file)
            params = jax.tree.map(jnp.asarray, dict(anchor["network"]["params"]))
            logged = [float(np.mean(r)) for r in anchor["log_return"]]
            record = {"game": game, "lr": lr, "file": f"agents/{GAMES[game]}-MinAtar/{file}",
                      "logged_final": logged[-1], "logged_final_steps": int(anchor["log_steps"][-1]),
                      "logged_last5": logged[-5:]}
            for mode, greedy in (("stochastic", False), ("greedy", True)):
                sets = [evaluate(params, ROW_EVAL_SEED + i, greedy) for i in range(args.eval_seeds)]
                pooled = np.concatenate(sets)
                record[mode] = {
                    "row_episodes_mean": float(sets[0].mean()),  # the rows' 164 episodes (seed 10000)
                    "pooled_mean": float(pooled.mean()),
                    "pooled_se": float(pooled.std(ddof=1) / np.sqrt(pooled.size)),
                    "pooled_episodes": int(pooled.size),
                    "set_means": [float(s.mean()) for s in sets],
                }
                if ours is not None and mode in ours["eval"]:
                    record[mode]["pgjax_per_seed"] = ours["eval"][mode]["per_seed"]
            records.append(record)
            print(f"{game} lr {lr}: logged {logged[-1]:.2f}; sampled on the rows' episodes "
                  f"{record['stochastic']['row_episodes_mean']:.2f}, pooled {record['stochastic']['pooled_mean']:.2f} "
                  f"+- {record['stochastic']['pooled_se']:.2f}; greedy {record['greedy']['pooled_mean']:.2f}",
                  flush=True)
    rules = spaceinvaders_rule_check(args.blines) if "spaceinvaders" in args.games else []
    _write(records, rules, args)


def peer_seeds(folder: Path, games: list[str]) -> None:
    """Each seed gymnax-blines' code trained here, sampled and greedy on the rows' 164 episodes,
    with the IQM and 95% bootstrap interval across seeds beside pgjax's row."""
    from pgjax.reports.statistics import bootstrap_ci

    out = {"command": "python scripts/anchor_policies.py --peer-runs runs/peers/gymnax-blines --games "
           + " ".join(games), "date": datetime.date.today().isoformat(), "games": {}}
    lines = ["# gymnax-blines' own PPO at several seeds, evaluated by pgjax", "",
             (f"`{out['command']}` ({out['date']}). Each seed trained by gymnax-blines' unchanged code "
             "(`benchmarks/peers/gymnax_blines_minatar.py`, its yaml: 1e7 steps, lr 5e-4), its final network "
             f"played on the rows' {EPISODES} episodes (evaluation seed {ROW_EVAL_SEED}) by pgjax's evaluator. "
             "IQM [95% bootstrap CI] across seeds."), "",
             ("| game | seeds | gymnax-blines sampled per seed | sampled IQM | greedy IQM | logged final per seed "
             "| pgjax sampled per seed | pgjax sampled IQM |"), "|---|---|---|---|---|---|---|---|"]
    for game in games:
        runs = sorted(folder.glob(f"{GAMES[game]}_seed*.pkl".lower()), key=lambda p: int(p.stem.split("seed")[1]))
        if not runs:
            continue
        evaluate = evaluator(make_env(load_config(str(ROOT / "configs" / f"ppo_{game}_minatar.toml")), EPISODES))
        seeds, logged, scores = [], [], {"stochastic": [], "greedy": []}
        for path in runs:
            with open(path, "rb") as f:
                run = pickle.load(f)
            params = jax.tree.map(jnp.asarray, run["network"]["params"])
            seeds.append(run["seed"])
            logged.append(run["log_return"][-1])
            for mode, values in scores.items():
                values.append(float(evaluate(params, ROW_EVAL_SEED, mode == "greedy").mean()))
        ours = pgjax_row(game)
        intervals = {mode: bootstrap_ci(np.array(v)) for mode, v in scores.items()}
        out["games"][game] = {"seeds": seeds, "logged_final": logged, "per_seed": scores,
                              "iqm": {m: list(i) for m, i in intervals.items()},
                              "pgjax_per_seed": ours["eval"]["stochastic"]["per_seed"] if ours else None}
        ours_text = " ".join(f"{v:.1f}" for v in ours["eval"]["stochastic"]["per_seed"]) if ours else ""
        ours_iqm = (f"{ours['eval']['stochastic']['iqm']:.1f} [{ours['eval']['stochastic']['iqm_low']:.1f}, "
                    f"{ours['eval']['stochastic']['iqm_high']:.1f}]") if ours else ""
        st, gr = intervals["stochastic"], intervals["greedy"]
        lines.append(f"| {game} | {' '.join(map(str, seeds))} | {' '.join(f'{v:.1f}' for v in scores['stochastic'])} "
                     f"| {st.estimate:.1f} [{st.low:.1f}, {st.high:.1f}] | {gr.estimate:.1f} [{gr.low:.1f}, {gr.high:.1f}] "
                     f"| {' '.join(f'{v:.1f}' for v in logged)} | {ours_text} | {ours_iqm} |")
        print(lines[-1], flush=True)
    path = ROOT / "benchmarks" / "results" / "minatar_gymnax_blines_seeds"
    path.with_suffix(".json").write_text(json.dumps(out, indent=1))
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"anchor_policies: wrote {path.with_suffix('.md')} and .json")


def _write(records: list[dict], rules: list[dict], args) -> None:
    command = "python scripts/anchor_policies.py --blines GYMNAX_BLINES_GIT_DIR" + (
        f" --eval-seeds {args.eval_seeds}" if args.eval_seeds != 5 else "")
    date = datetime.date.today().isoformat()
    OUT.with_suffix(".json").write_text(json.dumps({"command": command, "date": date, "records": records,
                                                        "spaceinvaders_rules": rules}, indent=1))
    lines = [
        "# The anchor's own MinAtar policies, evaluated by pgjax",
        "",
        (f"`{command}` ({date}). gymnax-blines' committed networks (one training seed each, 1e7 steps), "
        f"played through pgjax's evaluator: 'rows' = the {EPISODES} episodes of evaluation seed "
        f"{ROW_EVAL_SEED} that the `reproduce.py minatar` rows use; 'pooled' = {args.eval_seeds} x {EPISODES} "
        "episodes (seeds 10000, 10001, ...), mean +- standard error. 'logged' = the last evaluation "
        "gymnax-blines logged during training (164 sampled episodes, its own key; the network is the one "
        "saved after the run's last update)."),
        "",
        ("A pooled/logged ratio far from 1 means the network does not play today's environment as it "
        "played the one it was trained on (an observation or dynamics change in gymnax since)."),
        "",
        ("| game | lr | logged | sampled, rows' episodes | sampled, pooled | pooled / logged | greedy, pooled "
        "| pgjax sampled per seed (same episodes) |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        ours = r["stochastic"].get("pgjax_per_seed")
        ours_text = " ".join(f"{v:.1f}" for v in ours) if ours and r["lr"] == "5e-4" else ""
        lines.append(
            f"| {r['game']} | {r['lr']} | {r['logged_final']:.1f} | {r['stochastic']['row_episodes_mean']:.1f} | "
            f"{r['stochastic']['pooled_mean']:.1f} +- {r['stochastic']['pooled_se']:.1f} | "
            f"{r['stochastic']['pooled_mean'] / r['logged_final']:.2f} | "
            f"{r['greedy']['pooled_mean']:.1f} +- {r['greedy']['pooled_se']:.1f} | {ours_text} |")
    if rules:
        lines += ["", ("SpaceInvaders, the lr 5e-4 network, sampled, the rows' 164 episodes, with gymnax 0.0.5's "
                  "rules restored one at a time (`old_spaceinvaders_rules`):"), "",
                  ("| 0.0.5 bullet rule (kill at the position before the move) | 0.0.5 first wave (28 aliens) "
                  "| sampled mean +- s.e. |"), "|---|---|---|"]
        lines += [f"| {'yes' if r['bullet_rule_0_0_5'] else 'no'} | {'yes' if r['first_wave_0_0_5'] else 'no'} "
                  f"| {r['sampled_mean']:.1f} +- {r['sampled_se']:.1f} |" for r in rules]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"anchor_policies: wrote {OUT.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
