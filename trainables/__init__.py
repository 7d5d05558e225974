"""What one trial runs: datasets, spatial transforms, attacks, models, curricula, training and
evaluation. Torch (and e2cnn, imported lazily for the GCNNs) only; ``trainables.trainable`` is
the one module that adapts it to Ray Tune.

The submodules are the public API::

    from trainables.datasets import load_dataset
    from trainables.models import build_model, export_model
    from trainables.spatial import affine_batch, random_spatial
    from trainables.attacks import pgd_linf, spatial_attack
    from trainables.evaluation import EvalSettings, evaluate
    from trainables.curriculum import curriculum_from_config, cusp_curriculum
    from trainables.trial import Trial, run_trial
"""

from trainables.errors import UserError

__all__ = ["UserError"]
