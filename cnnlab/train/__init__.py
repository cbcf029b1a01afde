"""Training: the loop, the papers' recipes, checkpoints, metrics, trackers, DDP.

    >>> from cnnlab.train import fit
    >>> results = fit("lenet5")                 # mnist_5k, LeNet-5's recipe
    >>> results["test"]["top1"]                 # a fraction in [0, 1]

The command line is ``cnnlab train MODEL`` (``cnnlab train --help``), ``cnnlab
recipes``, ``cnnlab eval CHECKPOINT`` and ``cnnlab predict CHECKPOINT IMAGE...``.
Names are imported on first use, so that the command line can parse its arguments
(and report their errors) without importing torch.
"""
import importlib

_WHERE = {
    "fit": "loop", "train": "loop", "evaluate": "loop", "TrainingDiverged": "loop",
    "TrainConfig": "config",
    "Recipe": "recipes", "UnknownRecipeError": "recipes", "get_recipe": "recipes", "list_recipes": "recipes",
    "recipe_for_model": "recipes",
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "evaluate_checkpoint": "inference", "model_from_checkpoint": "inference", "predict": "inference",
}
__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"cnnlab.train.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cnnlab.train' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
