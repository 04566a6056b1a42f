"""Algorithms, each a small module with a config, `make_trainer(config)` and `make_train(config)`."""

from pgjax.algos import a2c, ppo, reinforce, vpg
from pgjax.algos import npg, ppo_kl, trpo  # trust-region methods (issue 7)
from pgjax.algos import ddpg, td3  # deterministic off-policy actor-critics (issue 4)
from pgjax.algos import sac  # soft actor-critic, Box and discrete actions (issue 4)

ALGORITHMS = {"ppo": ppo, "vpg": vpg, "a2c": a2c, "reinforce": reinforce}
ALGORITHMS.update({"npg": npg, "trpo": trpo, "ppo_kl": ppo_kl})
ALGORITHMS.update({"ddpg": ddpg, "td3": td3})
ALGORITHMS["sac"] = sac
