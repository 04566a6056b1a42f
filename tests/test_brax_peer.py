"""The GPU rows' tooling, checked on CPU without training: brax's own PPO gets the same
work as pgjax's config (benchmarks/peers/brax_ppo.py), the GPU command's plans and time guard
(scripts/device_rows.py: the Brax, XLand-MiniGrid and MinAtar suites) and the set of wheels
it carries (scripts/fetch_device_wheels.py). The end-to-end runs are
`DEVICE_ROWS_SMOKE=1 bash scripts/device_rows.sh SUITE` (one to two minutes each).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pgjax

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def peer():
    return _load("brax_ppo_peer", "benchmarks/peers/brax_ppo.py")


@pytest.fixture
def no_env_build(monkeypatch):
    """load_config without building the Brax environment to check its spaces (seconds for
    ant on this CPU): what is tested here is the fields, not the environment."""
    monkeypatch.setattr(pgjax.envs, "check_spaces", lambda env_id, **kwargs: (27,))


@pytest.fixture(scope="module")
def device():
    return _load("device_rows", "scripts/device_rows.py")


def _stated_brax_call(config_file: str) -> dict:
    """The `ppo.train(...)` keyword values a config's header comment quotes from brax's notebook."""
    comment = " ".join(line.lstrip("# ") for line in (ROOT / config_file).read_text().splitlines()
                       if line.startswith("#"))
    call = comment[comment.index("ppo.train(") + len("ppo.train("):comment.index(")")]
    values = {}
    for key, text in re.findall(r"(\w+)=([\w.+-]+)", call):
        values[key] = {"True": True, "False": False}.get(text, None)
        if values[key] is None:
            values[key] = float(text.replace("_", ""))
    return values


@pytest.mark.parametrize("config_file, unroll, per_update", [
    ("configs/ppo_ant_brax.toml", 5, 4096 * 80),
    ("configs/ppo_halfcheetah_brax.toml", 20, 2048 * 160),
])
def test_the_shipped_configs_map_onto_the_brax_call_their_comments_quote(peer, no_env_build, config_file, unroll,
                                                                         per_update):
    stated = _stated_brax_call(config_file)
    kwargs = peer.brax_kwargs(pgjax.load_config(config_file))
    assert kwargs["unroll_length"] == unroll
    for key, value in stated.items():
        if key != "num_timesteps":
            assert kwargs[key] == pytest.approx(value), key
    # pgjax's whole updates: one update is batch_size * num_minibatches * unroll_length steps
    assert kwargs["batch_size"] * kwargs["num_minibatches"] * kwargs["unroll_length"] == per_update
    assert kwargs["num_timesteps"] % per_update == 0
    assert stated["num_timesteps"] - per_update < kwargs["num_timesteps"] <= stated["num_timesteps"]
    # "ppo.train's defaults: gae_lambda 0.95, clipping_epsilon 0.3, no gradient clipping"
    assert (kwargs["gae_lambda"], kwargs["clipping_epsilon"], kwargs["max_grad_norm"]) == (0.95, 0.3, None)
    assert kwargs["clipping_epsilon_value"] is None and kwargs["normalize_advantage"] is True


def test_brax_takes_exactly_pgjax_env_steps(peer, no_env_build):
    # brax runs (num_evals - 1) epochs of ceil(num_timesteps / (epochs * per_update)) updates
    for updates, num_evals, epochs in [(8, 5, 4), (8, 10, 8), (152, 10, 8), (7, 5, 1), (1, 10, 1)]:
        assert peer.epochs_for(updates, num_evals) == epochs
        assert epochs * -(-updates // epochs) == updates
    config = pgjax.load_config("configs/ppo_ant_brax.toml", overrides=["total_timesteps=2621440"])
    kwargs = peer.brax_kwargs(config, num_evals=5)
    assert (kwargs["num_timesteps"], kwargs["num_evals"]) == (8 * 327_680, 5)


@pytest.mark.parametrize("config_file, overrides, unroll, expected", [
    ("configs/ppo_ant_brax.toml", ["anneal_lr=true"], None, "anneal_lr=True: only False"),
    ("configs/ppo_ant_brax.toml", ["scale_rewards=true"], None, "scale_rewards=True"),
    ("configs/ppo_ant_brax.toml", [], 3, "unroll_length=3: must divide num_steps=80"),
    ("configs/ppo_fast_brax.toml", [], None, "pass --unroll-length N"),
    ("configs/ppo_cartpole.toml", [], 4, "env_id='CartPole-v1'"),
    ("configs/sac_pendulum.toml", [], 5, "algo='sac'"),
])
def test_work_brax_cannot_do_alike_is_refused_by_name(peer, no_env_build, config_file, overrides, unroll, expected):
    config = pgjax.load_config(config_file, overrides=overrides)
    with pytest.raises(peer.MappingError, match=re.escape(expected)):
        peer.brax_kwargs(config, unroll)


@pytest.mark.parametrize("args, expected", [
    (["configs/no_such_file.toml"], "configs/no_such_file.toml"),
    (["configs/ppo_ant_brax.toml", "bogus=1"], "bogus"),
    (["configs/ppo_fast_brax.toml", "anneal_lr=true"], "anneal_lr"),
])
def test_a_bad_config_gives_one_line(args, expected):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers" / "brax_ppo.py"), *args],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("brax_ppo: ") and expected in lines[0], proc.stderr


def test_a_seed_past_the_deadline_is_skipped_and_recorded(peer, tmp_path):
    out = tmp_path / "brax.json"
    code = peer.main(["configs/ppo_fast_brax.toml", "total_timesteps=1024", "--unroll-length", "8",
                      "--seeds", "2", "--deadline", str(time.time() - 1), "--out", str(out)])
    result = __import__("json").loads(out.read_text())
    assert code == 0 and result["per_seed"] == [] and result["skipped_seeds"] == [0, 1]
    assert result["kwargs"]["num_timesteps"] == 1024


def test_a_seed_time_splits_into_compile_and_steady_training(peer):
    # an evaluation before training, then three epochs of 100 steps; brax's walltime is cumulative
    points = [{"env_steps": 0, "eval/episode_reward": 1.0},
              {"env_steps": 100, "training/walltime": 10.0, "eval/walltime": 3.0},
              {"env_steps": 200, "training/walltime": 12.0, "eval/walltime": 4.0},
              {"env_steps": 300, "training/walltime": 14.0, "eval/walltime": 5.0}]
    t = peer._timing(points, wall=20.0)
    assert (t["env_steps"], t["first_epoch_s"], t["train_s"], t["other_s"], t["eval_s"]) == (300, 10.0, 4.0, 6.0, 5.0)
    assert t["env_steps_per_s_train"] == 50.0 and t["env_steps_per_s_wall"] == 15.0
    assert t["compile_s_estimate"] == 8.0  # the first epoch less one steady epoch


def test_the_restored_jax_function_puts_one_copy_per_device(peer):
    import jax
    import numpy as np

    tree = {"w": np.arange(6.0).reshape(2, 3), "n": np.int32(4)}
    out = peer._replicate(tree, [jax.devices()[0]] * 3)
    assert out["w"].shape == (3, 2, 3) and out["n"].shape == (3,)
    np.testing.assert_array_equal(np.asarray(out["w"]), np.stack([tree["w"]] * 3))
    # pmap over the stacked axis sees each device's copy, as brax's training epoch does
    one = peer._replicate(tree, jax.local_devices()[:1])
    np.testing.assert_array_equal(np.asarray(jax.pmap(lambda t: t["w"] * 2)(one))[0], tree["w"] * 2)


def test_the_plan_alternates_and_keeps_results_out_of_the_repository(device, tmp_path):
    phases = device.phases(device.FULL["brax"], tmp_path, smoke=False)
    assert [p.name for p in phases] == ["preflight", "brax-ant-seeds-0", "pgjax-ant-ppo", "brax-ant-seeds-1-2",
                                        "pgjax-hopper-sac", "pgjax-halfcheetah-ppo"]
    for p in phases:
        paths = [a for a in p.args if a.startswith("/")]
        assert all(a.startswith(str(tmp_path)) for a in paths), p
    ant = phases[2].args
    assert ant[ant.index("--seeds") + 1] == "3" and ant[ant.index("--steps") + 1] == str(8 * 327_680)
    assert ant[ant.index("--chunks") + 1] == "8"
    brax = phases[1].args
    assert brax[0] == "configs/ppo_ant_brax.toml" and f"total_timesteps={8 * 327_680}" in brax
    assert brax[brax.index("--seeds") + 1] == "0,"  # one seed id, not a count of zero
    smoke = device.phases(device.SMOKE["brax"], tmp_path, smoke=True)
    assert {p.args[0] for p in smoke if p.kind == "brax"} == {"configs/ppo_fast_brax.toml"}


@pytest.mark.parametrize("suite, names", [
    ("xminigrid", ["preflight", "pgjax-doorkey8-gru", "pgjax-doorkey8-cnn"]),
    ("minatar", ["preflight", "pgjax-breakout-cnn", "pgjax-asterix-cnn", "pgjax-freeway-cnn",
                 "pgjax-spaceinvaders-cnn"]),
])
def test_the_other_suites_train_reproduce_rows_into_the_work_folder(device, tmp_path, suite, names):
    plan = device.FULL[suite]
    phases = device.phases(plan, tmp_path, smoke=False)
    assert [p.name for p in phases] == names
    assert phases[0].args == ("--preflight", suite)
    for p in phases[1:]:
        args = p.args
        assert p.kind == "pgjax" and args[:3] == (suite, "--rows", p.name.removeprefix("pgjax-"))
        # records and run folders go to the work folder (packed into OUT), never benchmarks/results
        assert args[args.index("--results") + 1] == str(tmp_path / "results")
        assert args[args.index("--runs") + 1] == str(tmp_path / "runs")
        assert "--set" not in args  # the full plan trains the shipped configs as they are
    reproduce = _load("reproduce_for_plan", "scripts/reproduce.py")
    rows = {r.name for r in reproduce.SUITES[suite]["rows"]}
    assert {name for name, _, _ in plan.rows} <= rows
    # the smoke plan runs the same rows (a subset for MinAtar), only smaller
    assert {name for name, _, _ in device.SMOKE[suite].rows} <= {name for name, _, _ in plan.rows}
    assert device.SMOKE[suite].sets


def test_the_xminigrid_budget_is_whole_updates_of_the_configs_shape(device, tmp_path, monkeypatch):
    monkeypatch.setattr(pgjax.envs, "check_spaces", lambda env_id, **kwargs: (7, 7, 2))
    plan = device.FULL["xminigrid"]
    for phase, (name, steps, _) in zip(device.phases(plan, tmp_path, smoke=False)[1:], plan.rows, strict=True):
        args = phase.args
        assert args[args.index("--steps") + 1] == str(steps) == str(2**24)
        assert args[args.index("--seeds") + 1] == "3" and args[args.index("--chunks") + 1] == "4"
        config_file = "configs/ppo_doorkey8x8_xminigrid" + ("_gru" if name.endswith("gru") else "") + ".toml"
        config = pgjax.load_config(config_file, overrides=[f"total_timesteps={steps}"])
        assert (config.num_envs, config.num_steps) == (8192, 16)
        assert steps % (config.num_envs * config.num_steps) == 0 and config.num_updates == 128
        assert config.num_updates % plan.chunks == 0  # equal chunks: one compiled program
    # --steps replaces every row's budget (to fit less time)
    fewer = device.phases(plan, tmp_path, smoke=False, steps=2**23)
    assert all(p.args[p.args.index("--steps") + 1] == str(2**23) for p in fewer[1:])
    # MinAtar's rows keep their configs' budget: no --steps
    assert all("--steps" not in p.args for p in device.phases(device.FULL["minatar"], tmp_path, smoke=False))


def test_training_throughput_leaves_out_compile_and_evaluations(device):
    summary = {"wall_seconds": 100.0, "compile_seconds": 30.0, "eval_seconds_during_training": 10.0,
               "env_steps_per_seed": 3_000_000}
    assert device.training_rate(summary, seeds=2) == pytest.approx(6_000_000 / 60.0)
    assert device.training_rate({**summary, "compile_seconds": 90.0}, seeds=2) is None  # nothing left to divide
    older = {k: v for k, v in summary.items() if k != "compile_seconds"}  # a summary.json from before the field
    assert device.training_rate(older, seeds=2) is None


def test_the_table_puts_the_training_rate_beside_the_wall_rate(device, tmp_path):
    run = tmp_path / "runs" / "xminigrid" / "doorkey8-gru" / "ppo-run"
    run.mkdir(parents=True)
    (run / "summary.json").write_text('{"wall_seconds": 50.0, "compile_seconds": 20.0, '
                                      '"eval_seconds_during_training": 5.0, "env_steps_per_seed": 1000}')
    summaries = device.run_summaries(tmp_path / "runs", "xminigrid")
    assert list(summaries) == ["doorkey8-gru"]
    ev = {"mean": 0.5, "mean_low": 0.25, "mean_high": 0.75, "episodes_per_seed": 32, "per_seed": [0.25, 0.75]}
    record = {"row": "doorkey8-gru", "seeds": [0, 1], "env_steps_per_seed": 1000, "env_steps_per_second": 40.0,
              "train_wall_seconds": 50.0, "eval": {"greedy": ev, "stochastic": ev}}
    lines = device.side_by_side([record], None, summaries).splitlines()
    assert len(lines) == 4
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells[0] == "doorkey8-gru" and cells[4].startswith("0.50 [0.25, 0.75] (32, greedy)")
    assert (cells[6], cells[7]) == ("40", "80")  # 2 seeds x 1000 steps in 50 - 20 - 5 s


def test_a_requirement_left_out_on_purpose_is_not_reported(device):
    wanted = ["numpy>=999", "no-such-dist-xyz>=1"]
    problems = device.requirement_problems([], wanted)
    assert len(problems) == 2 and "no-such-dist-xyz>=1: not installed" in problems[1]
    # names compare as PEP 503 names: no_such.dist_XYZ is no-such-dist-xyz
    assert device.requirement_problems([], wanted, ignore=["no_such.dist_XYZ"]) == problems[:1]
    fetch = _load("fetch_device_wheels", "scripts/fetch_device_wheels.py")
    assert set(device.NOT_CARRIED) == fetch.OMIT == {"imageio-ffmpeg"}  # what preflight forgives is what is left out


def test_reproduce_set_reaches_the_row_and_its_record():
    reproduce = _load("reproduce_for_set", "scripts/reproduce.py")
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["xminigrid", "--set", "num_envs"])
    assert exit_info.value.code == 2
    row = reproduce.SUITES["xminigrid"]["rows"][0]._replace(extra=("num_envs=16",))
    assert reproduce._suite_of(row) == "xminigrid"  # found by name, settings added


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # a zombie waits for a reaper that may never come in a container


def test_a_phase_past_its_time_is_stopped_with_its_children(device, tmp_path, monkeypatch):
    monkeypatch.setattr(device, "GRACE_S", 5.0)
    pid_file, term_file = tmp_path / "pid", tmp_path / "term"
    # a parent that leaves a grandchild behind, like reproduce.py running pgjax train
    child = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
             f"\"import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (open({str(term_file)!r}, 'w')"
             f".write('term'), sys.exit(0))); time.sleep(60)\"]); open({str(pid_file)!r}, 'w').write(str(p.pid)); "
             f"time.sleep(60)")
    with (tmp_path / "log").open("w") as log:
        code, status = device.run_phase([sys.executable, "-c", child], log, 2.0, dict(os.environ))
    # Stopped, not left to its 60 s sleep; the parent ended by the SIGTERM, within the grace
    # period, not by the SIGKILL after it.
    assert status == "stopped" and code == -signal.SIGTERM
    assert term_file.read_text() == "term"  # SIGTERM came first: pgjax train would keep its checkpoint
    assert _gone(int(pid_file.read_text()))


def test_a_finished_phase_reports_its_exit_code(device, tmp_path):
    with (tmp_path / "log").open("w") as log:
        assert device.run_phase([sys.executable, "-c", "print('hi')"], log, 30.0, dict(os.environ)) == (0, "done")
        assert device.run_phase([sys.executable, "-c", "raise SystemExit(3)"], log, 30.0, dict(os.environ)) == (
            3, "failed")
    assert "hi" in (tmp_path / "log").read_text()


def test_the_wheels_carried_are_what_the_image_lacks():
    fetch = _load("fetch_device_wheels", "scripts/fetch_device_wheels.py")
    resolved = {"Flask": "3.1.3", "numpy": "2.5.5", "ml_collections": "1.1.0", "orbax-checkpoint": "0.12.8",
                "typing_extensions": "4.16.0", "brax": "0.14.2"}
    assert fetch.missing(resolved, {"numpy", "orbax-checkpoint", "typing-extensions"}) == {
        "brax": "0.14.2", "Flask": "3.1.3", "ml_collections": "1.1.0"}
    assert fetch.canonical("ML__Collections.x") == "ml-collections-x"
    assert {"jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy"} <= fetch.IMAGE
    assert not {"brax", "mujoco", "mujoco-mjx", "gymnax", "flashbax", "xminigrid"} & fetch.IMAGE
    # xminigrid is carried; the ffmpeg binary its video writer wants is not
    assert "xminigrid>=0.9.3,<0.10" in fetch.requirements() and "xminigrid==0.9.3" in fetch.TESTED
    assert fetch.missing({"xminigrid": "0.9.3", "imageio-ffmpeg": "0.6.0"}, fetch.IMAGE | fetch.OMIT) == {
        "xminigrid": "0.9.3"}
