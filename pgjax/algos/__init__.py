"""Algorithms, each a small module with a config, `make_trainer(config)` and `make_train(config)`."""

from pgjax.algos import a2c, ppo, reinforce, vpg

ALGORITHMS = {"ppo": ppo, "vpg": vpg, "a2c": a2c, "reinforce": reinforce}
