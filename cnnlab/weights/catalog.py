"""The published ImageNet-1k checkpoints that load into cnnlab models, as data.

Only models whose state_dict equals torchvision's or timm's (``tests/reference/``) are
here: their publishers' files load unchanged. Every fact names its source:

* torchvision rows: torchvision 0.29.1, ``torchvision/models/<family>.py``, the
  ``<Model>_Weights`` enum: the URL (whose file name carries the first 8 hex digits of the
  file's SHA-256, which torch.hub checks), ``_metrics`` (acc@1 / acc@5 on ImageNet-1K),
  ``_file_size`` (MiB; converted here to MB of 10^6 bytes), ``recipe``, and the
  ``ImageClassification`` preset (resize 256 unless given, bilinear, ImageNet mean/std).
* timm rows: timm's ``default_cfgs`` (huggingface/pytorch-image-models at commit
  aa4b5850, Aug 2026): Hugging Face repository or release URL, input size, crop_pct,
  interpolation, mean/std, licence. Full SHA-256 and rounded size of the Hugging Face
  files: the "Git LFS Details" of each file's page on huggingface.co. Accuracy:
  ``results/results-imagenet.csv`` of the same commit, the row at the default input
  size. timm evaluates with resize = floor(input / crop_pct), centre crop = input.

cnnlab cannot download any of these files on its development machines (no internet),
so no row has been fetched and checked here; tests/weights/test_catalog.py checks that
every row is consistent with its model and with itself.
"""
from __future__ import annotations

import math

from cnnlab.weights.spec import Preprocessing, Weights, hash_prefix_of, register_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # timm's IMAGENET_INCEPTION_MEAN / _STD: inputs in [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)

# ----------------------------------------------------------------------------- torchvision

TV_BASE = "https://download.pytorch.org/models/"
TV_LICENSE = ("BSD-3-Clause (torchvision's licence); torchvision notes that pretrained weights may carry "
              "terms of their training data (ImageNet)")
TV_LICENSE_SOURCE = ("https://github.com/pytorch/vision/blob/main/LICENSE and "
                     "https://pytorch.org/vision/stable/models.html (note on the weights' licences)")
TV_SOURCE = "torchvision 0.29.1, torchvision/models/{file}.py, {enum}.{tag}"
TV_FILE = {"alexnet": "alexnet", "densenet": "densenet", "googlenet": "googlenet", "inception": "inception",
           "resnet": "resnet", "resnext": "resnet", "wide": "resnet", "squeezenet": "squeezenet", "vgg": "vgg"}

# model, tag, torchvision enum, default?, file name, acc@1, acc@5, _file_size (MiB), resize, crop, recipe
TORCHVISION = [
    ("alexnet", "IMAGENET1K_V1", "AlexNet_Weights", True, "alexnet-owt-7be5be79.pth", 56.522, 79.066, 233.087, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("densenet121", "IMAGENET1K_V1", "DenseNet121_Weights", True, "densenet121-a639ec97.pth", 74.434, 91.972, 30.845, 256, 224, "https://github.com/pytorch/vision/pull/116"),
    ("densenet161", "IMAGENET1K_V1", "DenseNet161_Weights", True, "densenet161-8d451a50.pth", 77.138, 93.56, 110.369, 256, 224, "https://github.com/pytorch/vision/pull/116"),
    ("densenet169", "IMAGENET1K_V1", "DenseNet169_Weights", True, "densenet169-b2777c0a.pth", 75.6, 92.806, 54.708, 256, 224, "https://github.com/pytorch/vision/pull/116"),
    ("densenet201", "IMAGENET1K_V1", "DenseNet201_Weights", True, "densenet201-c1103571.pth", 76.896, 93.37, 77.373, 256, 224, "https://github.com/pytorch/vision/pull/116"),
    ("googlenet", "IMAGENET1K_V1", "GoogLeNet_Weights", True, "googlenet-1378be20.pth", 69.778, 89.53, 49.731, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#googlenet"),
    ("inception_v3", "IMAGENET1K_V1", "Inception_V3_Weights", True, "inception_v3_google-0cc3c7bd.pth", 77.294, 93.45, 103.903, 342, 299, "https://github.com/pytorch/vision/tree/main/references/classification#inception-v3"),
    ("resnet18", "IMAGENET1K_V1", "ResNet18_Weights", True, "resnet18-f37072fd.pth", 69.758, 89.078, 44.661, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnet"),
    ("resnet34", "IMAGENET1K_V1", "ResNet34_Weights", True, "resnet34-b627a593.pth", 73.314, 91.42, 83.275, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnet"),
    ("resnet50", "IMAGENET1K_V1", "ResNet50_Weights", False, "resnet50-0676ba61.pth", 76.13, 92.862, 97.781, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnet"),
    ("resnet50", "IMAGENET1K_V2", "ResNet50_Weights", True, "resnet50-11ad3fa6.pth", 80.858, 95.434, 97.79, 232, 224, "https://github.com/pytorch/vision/issues/3995#issuecomment-1013906621"),
    ("resnet101", "IMAGENET1K_V1", "ResNet101_Weights", False, "resnet101-63fe2227.pth", 77.374, 93.546, 170.511, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnet"),
    ("resnet101", "IMAGENET1K_V2", "ResNet101_Weights", True, "resnet101-cd907fc2.pth", 81.886, 95.78, 170.53, 232, 224, "https://github.com/pytorch/vision/issues/3995#new-recipe"),
    ("resnet152", "IMAGENET1K_V1", "ResNet152_Weights", False, "resnet152-394f9c45.pth", 78.312, 94.046, 230.434, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnet"),
    ("resnet152", "IMAGENET1K_V2", "ResNet152_Weights", True, "resnet152-f82ba261.pth", 82.284, 96.002, 230.474, 232, 224, "https://github.com/pytorch/vision/issues/3995#new-recipe"),
    ("resnext50_32x4d", "IMAGENET1K_V1", "ResNeXt50_32X4D_Weights", False, "resnext50_32x4d-7cdf4587.pth", 77.618, 93.698, 95.789, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnext"),
    ("resnext50_32x4d", "IMAGENET1K_V2", "ResNeXt50_32X4D_Weights", True, "resnext50_32x4d-1a0047aa.pth", 81.198, 95.34, 95.833, 232, 224, "https://github.com/pytorch/vision/issues/3995#new-recipe"),
    ("resnext101_32x8d", "IMAGENET1K_V1", "ResNeXt101_32X8D_Weights", False, "resnext101_32x8d-8ba56ff5.pth", 79.312, 94.526, 339.586, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#resnext"),
    ("resnext101_32x8d", "IMAGENET1K_V2", "ResNeXt101_32X8D_Weights", True, "resnext101_32x8d-110c445d.pth", 82.834, 96.228, 339.673, 232, 224, "https://github.com/pytorch/vision/issues/3995#new-recipe-with-fixres"),
    ("resnext101_64x4d", "IMAGENET1K_V1", "ResNeXt101_64X4D_Weights", True, "resnext101_64x4d-173b62eb.pth", 83.246, 96.454, 319.318, 232, 224, "https://github.com/pytorch/vision/pull/5935"),
    ("wide_resnet50_2", "IMAGENET1K_V1", "Wide_ResNet50_2_Weights", False, "wide_resnet50_2-95faca4d.pth", 78.468, 94.086, 131.82, 256, 224, "https://github.com/pytorch/vision/pull/912#issue-445437439"),
    ("wide_resnet50_2", "IMAGENET1K_V2", "Wide_ResNet50_2_Weights", True, "wide_resnet50_2-9ba9bcbe.pth", 81.602, 95.758, 263.124, 232, 224, "https://github.com/pytorch/vision/issues/3995#new-recipe-with-fixres"),
    ("wide_resnet101_2", "IMAGENET1K_V1", "Wide_ResNet101_2_Weights", False, "wide_resnet101_2-32ee1156.pth", 78.848, 94.284, 242.896, 256, 224, "https://github.com/pytorch/vision/pull/912#issue-445437439"),
    ("wide_resnet101_2", "IMAGENET1K_V2", "Wide_ResNet101_2_Weights", True, "wide_resnet101_2-d733dc28.pth", 82.51, 96.02, 484.747, 232, 224, "https://github.com/pytorch/vision/issues/3995#new-recipe"),
    ("squeezenet1_0", "IMAGENET1K_V1", "SqueezeNet1_0_Weights", True, "squeezenet1_0-b66bff10.pth", 58.092, 80.42, 4.778, 256, 224, "https://github.com/pytorch/vision/pull/49#issuecomment-277560717"),
    ("squeezenet1_1", "IMAGENET1K_V1", "SqueezeNet1_1_Weights", True, "squeezenet1_1-b8a52dc0.pth", 58.178, 80.624, 4.729, 256, 224, "https://github.com/pytorch/vision/pull/49#issuecomment-277560717"),
    ("vgg11", "IMAGENET1K_V1", "VGG11_Weights", True, "vgg11-8a719046.pth", 69.02, 88.628, 506.84, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg11_bn", "IMAGENET1K_V1", "VGG11_BN_Weights", True, "vgg11_bn-6002323d.pth", 70.37, 89.81, 506.881, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg13", "IMAGENET1K_V1", "VGG13_Weights", True, "vgg13-19584684.pth", 69.928, 89.246, 507.545, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg13_bn", "IMAGENET1K_V1", "VGG13_BN_Weights", True, "vgg13_bn-abd245e5.pth", 71.586, 90.374, 507.59, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg16", "IMAGENET1K_V1", "VGG16_Weights", True, "vgg16-397923af.pth", 71.592, 90.382, 527.796, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg16_bn", "IMAGENET1K_V1", "VGG16_BN_Weights", True, "vgg16_bn-6c64b313.pth", 73.36, 91.516, 527.866, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg19", "IMAGENET1K_V1", "VGG19_Weights", True, "vgg19-dcbb9e9d.pth", 72.376, 90.876, 548.051, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
    ("vgg19_bn", "IMAGENET1K_V1", "VGG19_BN_Weights", True, "vgg19_bn-c79401a0.pth", 74.218, 91.842, 548.143, 256, 224, "https://github.com/pytorch/vision/tree/main/references/classification#alexnet-and-vgg"),
]
# Left out: VGG16_Weights.IMAGENET1K_FEATURES (SSD's VGG-16 features; torchvision publishes no
# accuracy for it and its preset takes 0-255 inputs).

# What differs from the plain preset, per model.
TV_NOTES = {
    "googlenet": dict(
        mean=INCEPTION_MEAN, std=INCEPTION_STD,
        note="torchvision normalizes with ImageNet mean/std and builds GoogLeNet with transform_input=True, which "
             "maps that to (x - 0.5) / 0.5 (the checkpoint was trained on [-1, 1] inputs); cnnlab's googlenet has "
             "no such switch, so the preprocessing here is (x - 0.5) / 0.5 directly (the same numbers)."),
    "inception_v3": dict(
        mean=INCEPTION_MEAN, std=INCEPTION_STD,
        note="torchvision normalizes with ImageNet mean/std and builds Inception-v3 with transform_input=True, which "
             "maps that to (x - 0.5) / 0.5 (Google's checkpoint was trained on [-1, 1] inputs); cnnlab builds the "
             "plain model (transform_input=False, so a fine-tuned checkpoint rebuilds the same function) and "
             "normalizes with (x - 0.5) / 0.5 directly (the same numbers)."),
}
# torchvision's Wide ResNet V1 files hold float16 tensors: their _file_size is 2 bytes per parameter
# (131.82 MiB for 68,883,240 parameters; the V2 files, 263.12 MiB, are float32).
TV_HALF = {("wide_resnet50_2", "IMAGENET1K_V1"), ("wide_resnet101_2", "IMAGENET1K_V1")}
# torchvision's DenseNet checkpoints still use the old key names 'norm.1', 'conv.2', ...
# (torchvision/models/densenet.py, _load_state_dict); cnnlab rewrites them the same way.
TV_KEY_MAPS = {m: "torchvision_densenet" for m in ("densenet121", "densenet161", "densenet169", "densenet201")}


def _family(model: str) -> str:
    for prefix, file in TV_FILE.items():
        if model.startswith(prefix):
            return file
    raise KeyError(model)


for (model, tag, enum, default, file_name, top1, top5, mib, resize, crop, recipe) in TORCHVISION:
    extra = TV_NOTES.get(model, {})
    register_weights(Weights(
        model=model, tag=tag, url=TV_BASE + file_name, format="pickle",
        preprocessing=Preprocessing(
            resize=resize, crop=crop, interpolation="bilinear",
            mean=extra.get("mean", IMAGENET_MEAN), std=extra.get("std", IMAGENET_STD),
            source=f"torchvision 0.29.1: {enum}.{tag}.transforms (ImageClassification preset)",
            note=extra.get("note", "")),
        license=TV_LICENSE, license_source=TV_LICENSE_SOURCE,
        publisher="torchvision", publisher_name=f"{enum}.{tag}",
        source=TV_SOURCE.format(file=_family(model), enum=enum, tag=tag),
        sha256_prefix=hash_prefix_of(file_name), size_mb=round(mib * 1.048576, 1),
        top1=top1, top5=top5,
        accuracy_source=f"torchvision 0.29.1, {enum}.{tag}.meta['_metrics']['ImageNet-1K']",
        recipe=recipe, default=default, key_map=TV_KEY_MAPS.get(model),
        dtype="float16" if (model, tag) in TV_HALF else "float32",
    ))

# ----------------------------------------------------------------------------- timm

TIMM_COMMIT = "huggingface/pytorch-image-models@aa4b5850"
TIMM_LICENSE_SOURCE = f"timm default_cfgs 'license' ({TIMM_COMMIT}) and the Hugging Face model card"


def _timm_pre(input_size: int, crop_pct: float, interpolation: str, mean, std, cfg: str) -> Preprocessing:
    # timm's eval transform: Resize(floor(input / crop_pct)) then CenterCrop(input)
    return Preprocessing(resize=math.floor(input_size / crop_pct), crop=input_size, interpolation=interpolation,
                         mean=mean, std=std, source=f"timm default_cfgs['{cfg}'] ({TIMM_COMMIT}): "
                         f"input {input_size}, crop_pct {crop_pct}, {interpolation}")


def _hf(repo: str) -> str:
    return f"https://huggingface.co/{repo}/resolve/main/model.safetensors"


def _lfs(repo: str, commit: str) -> str:
    return f"Hugging Face LFS metadata of {repo}/model.safetensors (the 'Add model' commit {commit})"


def _csv(cfg: str, size: int) -> str:
    return f"timm results/results-imagenet.csv ({TIMM_COMMIT}), row {cfg} at {size}"


TIMM = [
    Weights(
        model="inception_v4", tag="TF_IN1K", default=True, url=_hf("timm/inception_v4.tf_in1k"), format="safetensors",
        sha256="a756a086851c8d5a8de135ec15c76b90ea56cb5aef450e3299107e659e725bb1", size_mb=171,
        source=_lfs("timm/inception_v4.tf_in1k", "24edbb8"),
        preprocessing=_timm_pre(299, 0.875, "bicubic", INCEPTION_MEAN, INCEPTION_STD, "inception_v4.tf_in1k"),
        top1=80.144, top5=94.982, accuracy_source=_csv("inception_v4.tf_in1k", 299),
        publisher="timm", publisher_name="inception_v4.tf_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE,
        notes="Trained by the paper's authors in TensorFlow; ported via Cadene's pretrained-models.pytorch."),
    Weights(
        model="inception_resnet_v2", tag="TF_IN1K", default=True, url=_hf("timm/inception_resnet_v2.tf_in1k"),
        format="safetensors", sha256="dbea26b13a5fc8351919fed6a94222c0577ce324b2765fd081a798f837ca9d72", size_mb=224,
        source=_lfs("timm/inception_resnet_v2.tf_in1k", "8985479"),
        preprocessing=_timm_pre(299, 0.8975, "bicubic", INCEPTION_MEAN, INCEPTION_STD, "inception_resnet_v2.tf_in1k"),
        top1=80.434, top5=95.312, accuracy_source=_csv("inception_resnet_v2.tf_in1k", 299),
        publisher="timm", publisher_name="inception_resnet_v2.tf_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE,
        notes="Ported from TensorFlow's inception_resnet_v2_2016_08_30 checkpoint."),
    Weights(
        model="nasnetalarge", tag="TF_IN1K", default=True, url=_hf("timm/nasnetalarge.tf_in1k"), format="safetensors",
        sha256="a9852852333c258f0d86b90185580de4bbad1265cb3a9eb1f13165b91bfe638d", size_mb=356,
        source=_lfs("timm/nasnetalarge.tf_in1k", "7aacec6"),
        preprocessing=_timm_pre(331, 0.911, "bicubic", INCEPTION_MEAN, INCEPTION_STD, "nasnetalarge.tf_in1k"),
        top1=82.638, top5=96.066, accuracy_source=_csv("nasnetalarge.tf_in1k", 331),
        publisher="timm", publisher_name="nasnetalarge.tf_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE, notes="Ported from TensorFlow's NASNet-A Large checkpoint."),
    Weights(
        model="seresnet50", tag="A2_IN1K", default=True, url=_hf("timm/seresnet50.a2_in1k"), format="safetensors",
        sha256="ff82ee22e5b6c607fd984f63b83a9a8b55787b2703c4683a5cd51297d27e9460", size_mb=113,
        source=_lfs("timm/seresnet50.a2_in1k", "813d975"),
        preprocessing=_timm_pre(224, 0.95, "bicubic", IMAGENET_MEAN, IMAGENET_STD, "seresnet50.a2_in1k"),
        top1=80.102, top5=94.720, accuracy_source=_csv("seresnet50.a2_in1k", 224),
        publisher="timm", publisher_name="seresnet50.a2_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE, recipe="https://arxiv.org/abs/2110.00476 (ResNet strikes back, A2)",
        notes="cnnlab's default is A2 because its full SHA-256 is published; timm's own default is a1_in1k."),
    Weights(
        model="seresnet50", tag="RA2_IN1K",
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/seresnet50_ra_224-8efdb4bb.pth",
        format="pickle", sha256_prefix="8efdb4bb",
        source=f"timm default_cfgs['seresnet50.ra2_in1k'] 'url' ({TIMM_COMMIT})",
        preprocessing=_timm_pre(224, 0.875, "bicubic", IMAGENET_MEAN, IMAGENET_STD, "seresnet50.ra2_in1k"),
        top1=80.260, top5=95.068, accuracy_source=_csv("seresnet50.ra2_in1k", 224),
        publisher="timm", publisher_name="seresnet50.ra2_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE,
        notes="timm's GitHub release file; timm itself now loads the Hugging Face copy (timm/seresnet50.ra2_in1k)."),
    Weights(
        model="seresnext50_32x4d", tag="RACM_IN1K", default=True,
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/seresnext50_32x4d_racm-a304a460.pth",
        format="pickle", sha256_prefix="a304a460",
        source=f"timm default_cfgs['seresnext50_32x4d.racm_in1k'] 'url' ({TIMM_COMMIT})",
        preprocessing=_timm_pre(224, 0.875, "bicubic", IMAGENET_MEAN, IMAGENET_STD, "seresnext50_32x4d.racm_in1k"),
        top1=81.268, top5=95.624, accuracy_source=_csv("seresnext50_32x4d.racm_in1k", 224),
        publisher="timm", publisher_name="seresnext50_32x4d.racm_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE,
        notes="timm's GitHub release file; timm itself now loads the Hugging Face copy."),
    Weights(
        model="resnetv2_50", tag="A1H_IN1K", default=True,
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/resnetv2_50_a1h-000cdf49.pth",
        format="pickle", sha256_prefix="000cdf49",
        source="timm default_cfgs['resnetv2_50'] 'url' (huggingface/pytorch-image-models@b3e816d6, Mar 2023, "
               "before the weights moved to the Hugging Face hub as resnetv2_50.a1h_in1k)",
        preprocessing=_timm_pre(224, 0.95, "bicubic", INCEPTION_MEAN, INCEPTION_STD, "resnetv2_50.a1h_in1k"),
        top1=80.410, top5=95.082, accuracy_source=_csv("resnetv2_50.a1h_in1k", 224),
        publisher="timm", publisher_name="resnetv2_50.a1h_in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE, recipe="https://arxiv.org/abs/2110.00476 (ResNet strikes back, A1 based)"),
    Weights(
        model="senet154", tag="IN1K", default=True,
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/legacy_senet154-e9eb9fe6.pth",
        format="pickle", sha256_prefix="e9eb9fe6",
        source=f"timm default_cfgs['legacy_senet154.in1k'] 'url' ({TIMM_COMMIT}; timm loads this file itself)",
        preprocessing=_timm_pre(224, 0.875, "bilinear", IMAGENET_MEAN, IMAGENET_STD, "legacy_senet154.in1k"),
        top1=81.320, top5=95.502, accuracy_source=_csv("legacy_senet154.in1k", 224),
        publisher="timm", publisher_name="legacy_senet154.in1k", license="Apache-2.0",
        license_source=TIMM_LICENSE_SOURCE, notes="The SENet authors' model, as ported to PyTorch by Cadene."),
]
for _w in TIMM:
    register_weights(_w)

# resnet200 has timm's layout, but timm publishes no weights for it ('resnet200.untrained').
