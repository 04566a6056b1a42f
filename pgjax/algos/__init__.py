"""Algorithms, each a small module with a config, `make_trainer(config)` and `make_train(config)`."""

from pgjax.algos import a2c, ddpg, npg, ppo, ppo_kl, reinforce, sac, td3, trpo, vpg

ALGORITHMS = {
    # the on-policy line, in the textbook order
    "reinforce": reinforce,
    "vpg": vpg,
    "a2c": a2c,
    "npg": npg,
    "trpo": trpo,
    "ppo": ppo,
    "ppo_kl": ppo_kl,
    # off-policy actor-critics on a replay buffer
    "ddpg": ddpg,
    "td3": td3,
    "sac": sac,  # Box or Discrete actions, picked by the environment
}
