"""Recipes hold the papers' figures (checked against PAPERS.md), schedules compute the
learning rates the papers describe (checked by hand), and flags override any field."""
import json
import math

import pytest

from cnnlab.cli import main
from cnnlab.registry import is_model
from cnnlab.train.recipes import Recipe, UnknownRecipeError, get_recipe, list_recipes, recipe_for_model
from cnnlab.train.schedule import LRSchedule

REQUIRED = ["lenet5", "alexnet", "vgg", "googlenet", "resnet_cifar", "resnet_imagenet", "preact_resnet",
            "wide_resnet", "resnext_cifar", "stochastic_depth", "densenet_cifar", "fractalnet", "squeezenet",
            "nasnet_cifar", "nasnet_imagenet", "inception_v3", "inception_v4", "senet", "nin", "zfnet", "fast"]


def test_every_paper_has_a_recipe_with_a_citation():
    names = list_recipes()
    assert set(REQUIRED) <= set(names)
    for name in names:
        r = get_recipe(name)
        assert isinstance(r, Recipe) and r.name == name
        assert r.citation and r.notes, name
        if name != "fast":
            assert any(str(y) in r.citation for y in range(1998, 2018)), name


@pytest.mark.parametrize("name, facts", [
    # PAPERS.md: ResNet CIFAR: SGD 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 32k and 48k of 64k iterations.
    ("resnet_cifar", dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, gamma=0.1,
                          milestones=(32 / 64, 48 / 64), crop_padding=4, flip=True)),
    # AlexNet: momentum 0.9, batch 128, lr 0.01 /10 on plateau, weight decay 5e-4, ~90 epochs.
    ("alexnet", dict(lr=0.01, momentum=0.9, batch_size=128, weight_decay=5e-4, schedule="plateau", epochs=90)),
    # VGG: batch 256, momentum 0.9, weight decay 5e-4, lr 0.01 /10 three times, 74 epochs.
    ("vgg", dict(batch_size=256, weight_decay=5e-4, lr=0.01, epochs=74, schedule="plateau")),
    # GoogLeNet: auxiliary losses weighted 0.3.
    ("googlenet", dict(aux_weight=0.3, momentum=0.9)),
    # WRN: Nesterov, lr 0.1 x0.2 at 60/120/160 of 200, wd 5e-4, batch 128, reflect padding.
    ("wide_resnet", dict(nesterov=True, lr=0.1, gamma=0.2, epochs=200, milestones=(60 / 200, 120 / 200, 160 / 200),
                         weight_decay=5e-4, batch_size=128, padding_mode="reflect")),
    # ResNeXt CIFAR: 300 epochs, /10 at 150 and 225, wd 5e-4.
    ("resnext_cifar", dict(epochs=300, milestones=(150 / 300, 225 / 300), weight_decay=5e-4)),
    # Stochastic depth: 500 epochs, 0.1 -> 0.01 at 250 -> 0.001 at 375, Nesterov, wd 1e-4, batch 128.
    ("stochastic_depth", dict(epochs=500, milestones=(250 / 500, 375 / 500), nesterov=True, weight_decay=1e-4)),
    # DenseNet CIFAR: batch 64, 300 epochs, /10 at 50% and 75%, wd 1e-4, Nesterov.
    ("densenet_cifar", dict(batch_size=64, epochs=300, milestones=(0.5, 0.75), weight_decay=1e-4, nesterov=True)),
    # FractalNet: batch 100, lr 0.02, 400 epochs, /10 whenever the remaining epochs halve.
    ("fractalnet", dict(batch_size=100, lr=0.02, epochs=400, milestones=(200 / 400, 300 / 400, 350 / 400, 375 / 400))),
    # NASNet CIFAR: cosine schedule, cutout.
    ("nasnet_cifar", dict(schedule="cosine", cutout=16)),
    # Inception-v3 (Szegedy et al. 2015, Sec. 7-8): RMSProp decay 0.9 eps 1.0, lr 0.045 x0.94 every 2 epochs,
    # clipping 2.0, label smoothing 0.1, batch 32, 100 epochs, a running average of the weights.
    ("inception_v3", dict(optimizer="rmsprop", rms_decay=0.9, eps=1.0, lr=0.045, schedule="step", step_epochs=2.0,
                          gamma=0.94, grad_clip=2.0, label_smoothing=0.1, batch_size=32, epochs=100)),
    # Inception-v4 / IRv2 (Szegedy et al. 2016, Sec. 4): RMSProp 0.9 / 1.0, lr 0.045 x0.94 every 2 epochs.
    ("inception_v4", dict(optimizer="rmsprop", rms_decay=0.9, eps=1.0, lr=0.045, step_epochs=2.0, gamma=0.94,
                          aux_weight=None)),
    # SENet (Hu et al. 2017): SGD 0.9, batch 1024, lr 0.6 /10 every 30 epochs, 100 epochs.
    ("senet", dict(optimizer="sgd", momentum=0.9, batch_size=1024, lr=0.6, schedule="step", step_epochs=30.0,
                   gamma=0.1, epochs=100)),
    # NASNet ImageNet: RMSProp, label smoothing 0.1, aux weight 0.4.
    ("nasnet_imagenet", dict(optimizer="rmsprop", label_smoothing=0.1, aux_weight=0.4)),
    # NiN (Lin et al. 2013): batch 128, lr /10 when *training* accuracy stalls, down to 1% of the start.
    ("nin", dict(batch_size=128, schedule="plateau", plateau_metric="train", gamma=0.1, max_drops=2)),
    # ZFNet (Zeiler & Fergus 2013): batch 128, lr 0.01, momentum 0.9, 70 epochs, filter RMS capped at 0.1.
    ("zfnet", dict(batch_size=128, lr=0.01, momentum=0.9, epochs=70, filter_rms_max=0.1, schedule="plateau")),
    # ResNet ImageNet (He et al. 2015, arXiv:1512.03385, Sec. 3.4): mini-batch 256, lr 0.1 divided by 10 when
    # the error plateaus, weight decay 0.0001, momentum 0.9.
    ("resnet_imagenet", dict(batch_size=256, lr=0.1, schedule="plateau", gamma=0.1, weight_decay=1e-4, momentum=0.9)),
    # DenseNet ImageNet (Huang et al. 2017, arXiv:1608.06993, Sec. 4.2): 90 epochs, batch 256, lr 0.1 lowered 10
    # times at epochs 30 and 60, weight decay 1e-4, Nesterov momentum 0.9; CIFAR: lr 0.1 as well.
    ("densenet_imagenet", dict(epochs=90, batch_size=256, lr=0.1, milestones=(30 / 90, 60 / 90), gamma=0.1,
                               weight_decay=1e-4, nesterov=True, momentum=0.9)),
    ("densenet_cifar", dict(lr=0.1, gamma=0.1, momentum=0.9)),
    # AlexNet (Krizhevsky et al. 2012, Sec. 4.1): PCA colour noise drawn with standard deviation 0.1.
    ("alexnet", dict(pca_lighting=0.1, flip=True)),
    # GoogLeNet (Szegedy et al. 2014, arXiv:1409.4842, Sec. 6): lr decreased by 4% every 8 epochs.
    ("googlenet", dict(schedule="step", step_epochs=8.0, gamma=0.96)),
    # Stochastic depth (Huang et al. 2016, arXiv:1603.09382, Sec. 4): lr starts at 0.1, batch 128.
    ("stochastic_depth", dict(lr=0.1, batch_size=128, gamma=0.1)),
])
def test_recipes_hold_the_papers_figures(name, facts):
    r = get_recipe(name)
    for key, value in facts.items():
        got = getattr(r, key)
        if isinstance(value, tuple):
            assert got == pytest.approx(value), (name, key)
        else:
            assert got == value, (name, key)


def test_multistep_drops_where_resnet_drops():
    # 164 epochs, 391 steps each (50k / 128): lr 0.1 until epoch 82, 0.01 until 123, then 0.001.
    s = LRSchedule(get_recipe("resnet_cifar"), steps_per_epoch=391)
    assert s.lr(0) == pytest.approx(0.1)
    assert s.lr(82 * 391 - 1) == pytest.approx(0.1)
    assert s.lr(82 * 391) == pytest.approx(0.01)
    assert s.lr(123 * 391) == pytest.approx(0.001)


def test_resnet110_warms_up_at_0_01_for_about_400_iterations():
    s = LRSchedule(get_recipe("resnet110_cifar"), steps_per_epoch=391)
    assert s.lr(0) == pytest.approx(0.01) and s.lr(390) == pytest.approx(0.01)
    assert s.lr(391) == pytest.approx(0.1)


def test_googlenet_loses_4_percent_every_8_epochs():
    s = LRSchedule(get_recipe("googlenet"), steps_per_epoch=10)
    assert s.lr(8 * 10 - 1) == pytest.approx(0.01)
    assert s.lr(8 * 10) == pytest.approx(0.01 * 0.96)
    assert s.lr(24 * 10) == pytest.approx(0.01 * 0.96 ** 3)


def test_cosine_linear_and_warmup_by_hand():
    cos = LRSchedule(get_recipe("nasnet_cifar", epochs=10), steps_per_epoch=10)
    assert cos.lr(0) == pytest.approx(0.025)
    assert cos.lr(50) == pytest.approx(0.025 * 0.5)  # halfway: (1 + cos(pi/2)) / 2
    assert cos.lr(25) == pytest.approx(0.025 * (1 + math.cos(math.pi / 4)) / 2)
    fast = LRSchedule(get_recipe("fast", epochs=10, warmup_epochs=2, warmup_lr=0.0, lr=1.0), steps_per_epoch=10)
    assert fast.lr(0) == 0.0 and fast.lr(10) == pytest.approx(0.5)  # linear ramp over 20 steps
    assert fast.lr(20) == pytest.approx(1.0) and fast.lr(60) == pytest.approx(0.5)  # then linear to 0 at 100


def test_plateau_drops_after_patience_and_survives_a_state_round_trip():
    s = LRSchedule(get_recipe("alexnet", plateau_patience=2), steps_per_epoch=5)
    for top1 in (0.5, 0.6, 0.6, 0.59):  # best 0.6, then two epochs without improvement
        s.epoch_end(top1)
    assert s.lr(0) == pytest.approx(0.001)
    t = LRSchedule(get_recipe("alexnet", plateau_patience=2), steps_per_epoch=5)
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert t.lr(0) == s.lr(0)


def test_overrides_are_checked_and_coerced():
    r = get_recipe("resnet_cifar", epochs="12", milestones="0.25,0.5", flip="false", aux_weight=0.5)
    assert (r.epochs, r.milestones, r.flip, r.aux_weight) == (12, (0.25, 0.5), False, 0.5)
    with pytest.raises(ValueError, match="no field"):
        get_recipe("resnet_cifar", learning_rate=1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_recipe("resnet_cifar", schedule="exponential")
    with pytest.raises(ValueError, match="milestones"):
        get_recipe("resnet_cifar", milestones=(0.75, 0.5))
    with pytest.raises(UnknownRecipeError, match="resnet_cifar"):
        get_recipe("resnet_cifr")


# model -> (recipe, optimizer): every registered model, written out by hand from the papers.
MODEL_RECIPES = {
    "lenet5": ("lenet5", "adam"), "lenet5_modern": ("lenet5", "adam"),
    "alexnet": ("alexnet", "sgd"), "alexnet_original": ("alexnet", "sgd"),
    "zfnet": ("zfnet", "sgd"), "zfnet_wide": ("zfnet", "sgd"), "nin": ("nin", "sgd"),
    **{v: ("vgg", "sgd") for v in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")},
    "googlenet": ("googlenet", "sgd"), "googlenet_paper": ("googlenet", "sgd"),
    "inception_v3": ("inception_v3", "rmsprop"), "inception_v4": ("inception_v4", "rmsprop"),
    "inception_resnet_v2": ("inception_v4", "rmsprop"),
    **{f"resnet{d}": ("resnet_cifar", "sgd") for d in (20, 32, 44, 56)},
    **{f"plain{d}": ("resnet_cifar", "sgd") for d in (20, 32, 44, 56, 110)},
    "resnet110": ("resnet110_cifar", "sgd"), "resnet1202": ("resnet110_cifar", "sgd"),
    **{f"resnet{d}": ("resnet_imagenet", "sgd") for d in (18, 34, 50, 101, 152, 200)},
    "resnetv2_50": ("resnet_imagenet", "sgd"), "resnet110_sd": ("stochastic_depth", "sgd"),
    **{f"preact_resnet{d}": ("preact_resnet", "sgd") for d in (110, 164, 1001)},
    **{w: ("wide_resnet", "sgd") for w in ("wrn16_8", "wrn28_10", "wrn40_4")},
    "wide_resnet50_2": ("resnet_imagenet", "sgd"), "wide_resnet101_2": ("resnet_imagenet", "sgd"),
    "resnext29_8x64d": ("resnext_cifar", "sgd"), "resnext29_16x64d": ("resnext_cifar", "sgd"),
    **{x: ("resnet_imagenet", "sgd") for x in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d")},
    "senet154": ("senet", "sgd"), "seresnet50": ("senet", "sgd"), "seresnext50_32x4d": ("senet", "sgd"),
    **{d: ("densenet_imagenet", "sgd") for d in ("densenet121", "densenet161", "densenet169", "densenet201")},
    **{d: ("densenet_cifar", "sgd") for d in ("densenet_bc_100_12", "densenet_bc_190_40", "densenet_bc_250_24")},
    "fractalnet20": ("fractalnet", "sgd"), "fractalnet40": ("fractalnet", "sgd"),
    **{s: ("squeezenet", "sgd") for s in ("squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass",
                                          "squeezenet1_0_complex_bypass")},
    "nasnet_cifar": ("nasnet_cifar", "sgd"), "nasnetalarge": ("nasnet_imagenet", "rmsprop"),
    "nasnetamobile": ("nasnet_imagenet", "rmsprop"),
}
# Models whose own paper's recipe is not registered: they say so at start.
NOTED = {"resnetv2_50", "wide_resnet50_2", "wide_resnet101_2", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"}


def test_every_registered_model_maps_to_its_papers_recipe():
    from cnnlab.registry import list_models
    from cnnlab.train.recipes import recipe_note

    assert set(list_models()) == set(MODEL_RECIPES), "a model was added or removed: extend the table"
    for model, (recipe, optimizer) in MODEL_RECIPES.items():
        r = recipe_for_model(model)
        assert (r.name, r.optimizer) == (recipe, optimizer), model
        assert bool(recipe_note(model)) == (model in NOTED), model


def test_cli_recipes(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REQUIRED)
    assert main(["recipes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_recipes() and all(r["citation"] for r in rows)
    assert main(["recipes", "googlenet"]) == 0
    assert "aux_weight" in capsys.readouterr().out
    assert main(["recipes", "nope"]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
