"""Algorithms, each a small module with a config, `make_trainer(config)` and `make_train(config)`."""

from pgjax.algos import ppo

ALGORITHMS = {"ppo": ppo}
