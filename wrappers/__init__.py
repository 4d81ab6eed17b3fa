"""Environment adapters and the multi-agent Minari convention.

This layer never imports ``diffusion_agents`` or ``benchmarks``.
"""

from wrappers.joint import JOINT_ENV_ID, JointEnv, joint_env_spec, register_joint_env
from wrappers.minari_io import (
    DatasetConventionError,
    EpisodeBatch,
    batch_to_buffers,
    check_convention,
    load_episodes,
    record_dataset,
    subset_dataset,
    write_dataset,
)
from wrappers.policies import RandomPolicy
from wrappers.registry import families, make_env, register_family

register_joint_env()

__all__ = [
    "JOINT_ENV_ID",
    "DatasetConventionError",
    "EpisodeBatch",
    "JointEnv",
    "RandomPolicy",
    "batch_to_buffers",
    "check_convention",
    "families",
    "joint_env_spec",
    "load_episodes",
    "make_env",
    "record_dataset",
    "register_family",
    "register_joint_env",
    "subset_dataset",
    "write_dataset",
]
