"""Training: the loop, the papers' recipes, checkpoints, metrics, trackers, DDP.

    >>> from cnnlab.train import fit
    >>> results = fit("lenet5")                 # digits, LeNet-5's recipe
    >>> results["test"]["top1"]                 # a fraction in [0, 1]

The command line is ``cnnlab train MODEL`` (``cnnlab train --help``), ``cnnlab
recipes``, ``cnnlab eval CHECKPOINT`` and ``cnnlab predict CHECKPOINT IMAGE...``.
"""
from cnnlab.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.inference import evaluate_checkpoint, model_from_checkpoint, predict
from cnnlab.train.loop import TrainingDiverged, evaluate, fit, train
from cnnlab.train.recipes import Recipe, UnknownRecipeError, get_recipe, list_recipes, recipe_for_model

__all__ = [
    "fit", "train", "evaluate", "TrainConfig", "TrainingDiverged",
    "Recipe", "UnknownRecipeError", "get_recipe", "list_recipes", "recipe_for_model",
    "CheckpointError", "load_checkpoint", "save_checkpoint",
    "evaluate_checkpoint", "model_from_checkpoint", "predict",
]
