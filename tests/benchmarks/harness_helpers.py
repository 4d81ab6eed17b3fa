"""Helpers for the harness tests: a tiny MPE dataset and a plug-in algorithm.

``sleepy`` is a third-party-style plug-in (registered through the public interface) that
behaves like ``random`` but sleeps ``HARNESS_TEST_SLEEP`` seconds while "training", so a
test can kill the harness while a run is in flight.
"""

from __future__ import annotations

import os
import time

from benchmarks.algorithms import PluginSpec, TrainContext, register_algorithm
from wrappers import RandomPolicy, make_env, record_dataset

ENV = "mpe2/simple_spread_v3"
ENV_KWARGS = {"N": 2, "max_cycles": 5}
DATASET = "mpe2/simple_spread/tiny-v0"


def make_dataset(dataset_id: str = DATASET, episodes: int = 12) -> None:
    env = make_env(ENV, **ENV_KWARGS)
    record_dataset(
        ENV, RandomPolicy(env, seed=0), episodes, dataset_id, env_kwargs=ENV_KWARGS,
        ref_min_score=-4.0, ref_max_score=-1.0, show_progress=False,
    )


def train_sleepy(ctx: TrainContext) -> RandomPolicy:
    time.sleep(float(os.environ.get("HARNESS_TEST_SLEEP", "0")))
    return RandomPolicy(ctx.make_env(), seed=ctx.seed)


register_algorithm(PluginSpec(
    name="sleepy", target="tests.benchmarks.harness_helpers:train_sleepy",
    description="random, after sleeping HARNESS_TEST_SLEEP seconds (tests only)",
))


# EAQ at toy scale: nothing is rejected (range_margin), so sampling ends in one round
EAQ_TINY = """
[transform_options.eaq]
config = { dim = 8, dim_mults = [1], n_steps = 5, q_warmup_steps = 2, n_diffusion_steps = 10, sample_steps = 2, sample_batch_size = 8, range_margin = 100.0, max_sample_rounds = 3 }
augment = { num_episodes = 4 }
"""


def grid_toml(algorithms: list[str], seeds: list[int] = (0, 1), extra: str = "") -> str:
    algos = ", ".join(f'"{a}"' for a in algorithms)
    return f"""
name = "tiny"
seeds = {list(seeds)}
eval_episodes = 2
algorithms = [{algos}]

[[tasks]]
env = "{ENV}"
env_kwargs = {{ N = {ENV_KWARGS['N']}, max_cycles = {ENV_KWARGS['max_cycles']} }}
datasets = ["{DATASET}"]

[algorithm_options.bc]
steps = 20
batch_size = 32
hidden = 16

[algorithm_options.iql_cql]
steps = 20
batch_size = 32
hidden = 16
{extra}
"""
