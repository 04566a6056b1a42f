"""Algorithms, each a small module with a config, `make_trainer(config)` and `make_train(config)`.

`ALGORITHMS` maps each name to its module. The pieces they share: the trainer contract every
`make_trainer` returns (`contract`) and its assembly (`_trainer`), rollouts (`rollout`), the
on-policy networks and acting (`actor_critic`) and update skeleton (`_on_policy`), the
off-policy loop (`_off_policy`) with DDPG and TD3's learner (`_deterministic`), and
gradient-estimator diagnostics (`diagnostics`).
"""

from pgjax.algos import a2c, ddpg, npg, ppg, ppo, ppo_kl, reinforce, sac, spo, td3, trpo, vmpo, vpg

ALGORITHMS = {
    # the on-policy line, in the textbook order
    "reinforce": reinforce,
    "vpg": vpg,
    "a2c": a2c,
    "npg": npg,
    "trpo": trpo,
    "ppo": ppo,
    "ppo_kl": ppo_kl,
    "ppg": ppg,  # PPO's policy phase, then value distillation into the policy network
    "spo": spo,
    "vmpo": vmpo,  # policy iteration: top-half E-step, weighted maximum likelihood M-step
    # off-policy actor-critics on a replay buffer
    "ddpg": ddpg,
    "td3": td3,
    "sac": sac,  # Box or Discrete actions, picked by the environment
}
