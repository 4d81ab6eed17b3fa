"""MADiff (Zhu et al., arXiv 2305.17330): a diffusion model over all agents' trajectories,
packaged as a decentralized policy with built-in teammate modeling.

``MADiffConfig`` (config.py) holds the settings and the math; ``MADiffModel`` (model.py) the
network; ``training.py`` the data pipeline and loop; ``MADiffPolicy`` (policy.py) the product.
"""

from diffusion_agents.madiff.config import MADiffConfig
from diffusion_agents.madiff.model import MADiffModel
from diffusion_agents.madiff.policy import MADiffPolicy

__all__ = ["MADiffConfig", "MADiffModel", "MADiffPolicy"]
