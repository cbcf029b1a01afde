"""Checks that hold for every registered model, parametrized over the registry."""
import math

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab import registry
from cnnlab.errors import UserError
from cnnlab.models.base import AuxOutput, CnnModel, FeatureNet, InputSizeError
from cnnlab.registry import DATASET_KINDS, Paper, Published, UnknownModelError
from reference import build_on_meta

ALL = cnnlab.list_models()
# Very deep or very wide models: still run by CI, deselectable with -m "not slow".
SLOW = {"resnet1202", "preact_resnet1001", "senet154", "nasnetalarge", "densenet_bc_190_40",
        "densenet_bc_250_24", "resnext29_16x64d", "inception_resnet_v2", "inception_v4", "inception_v3"}
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ALL]


def test_registry_is_populated():
    assert len(ALL) >= 10
    assert ALL == sorted(ALL)
    assert cnnlab.list_models("vgg1?") == [n for n in ALL if n.startswith("vgg1") and len(n) == 5]


@pytest.mark.parametrize("name", ALL)
def test_model_info(name):
    info = cnnlab.model_info(name)
    assert info.name == name
    assert info.dataset in DATASET_KINDS
    c, h, w = info.input_size
    assert c >= 1 and h == w
    assert 1 <= info.min_input_size <= h
    assert info.paper.title and info.paper.authors and 1980 < info.paper.year < 2030
    assert info.paper.arxiv or info.paper.venue
    assert info.num_classes >= 1
    assert info.published.source, f"{name}: published figures need a source"
    assert info.family


@pytest.mark.parametrize("name", ALL)
def test_params_match_published(name):
    info = cnnlab.model_info(name)
    model = build_on_meta(name)
    n = sum(p.numel() for p in model.parameters())
    assert model.num_classes == info.num_classes
    want = info.published.params
    if want is None:
        pytest.skip(f"{name}: no published parameter count")
    if info.published.params_exact:
        assert n == want
    else:
        assert abs(n - want) <= 0.02 * want, f"{n:,} vs published ~{want:,}"


def _loss(out):
    if isinstance(out, AuxOutput):
        return out.logits.square().mean() + sum(a.square().mean() for a in out.aux)
    return out.square().mean()


@pytest.mark.parametrize("name", PARAMS)
def test_forward_backward_at_smallest_input(name):
    info = cnnlab.model_info(name)
    torch.manual_seed(0)
    model = cnnlab.create_model(name)
    assert model.model_info is info
    c = info.input_size[0]
    s = info.min_input_size
    x = torch.randn(2, c, s, s)
    model.train()
    out = model(x)
    if info.aux_loss_weights:
        assert isinstance(out, AuxOutput), "models with aux heads return AuxOutput in training"
        assert len(out.aux) == len(info.aux_loss_weights) == len(model.aux_loss_weights)
        assert all(a.shape == (2, info.num_classes) for a in out.aux)
        logits = out.logits
    else:
        logits = out
    assert logits.shape == (2, info.num_classes)
    assert torch.isfinite(logits).all()
    _loss(out).backward()
    no_grad = [k for k, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters the loss never reaches: {no_grad[:6]}"

    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, info.num_classes)
    feats = model.forward_features(x)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)

    model.reset_classifier(7)
    assert model.num_classes == 7
    with torch.no_grad():
        assert model(x).shape == (2, 7)

    model.train()  # info.min_input_size holds in both modes (inception_v3 takes less in eval)
    if s > 1:
        with pytest.raises(InputSizeError, match=f"at least {s}x{s}"):
            model(torch.randn(1, c, s - 1, s - 1))
    with pytest.raises(InputSizeError, match="channel"):
        model(torch.randn(1, c + 1, s, s))


@pytest.mark.parametrize("name", ALL)
def test_other_class_and_channel_counts(name):
    info = cnnlab.model_info(name)
    other = 1 if info.input_size[0] == 3 else 3
    model = build_on_meta(name, num_classes=5, in_chans=other)
    s = info.min_input_size
    out = model.eval()(torch.empty(1, other, s, s, device="meta"))
    assert out.shape == (1, 5)


@pytest.mark.parametrize("bad", [-1, -3, 2.5, True])  # 0 is allowed: pooled features (timm)
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes"):
        cnnlab.create_model(ALL[0], num_classes=bad)


def test_unknown_model_names_close_matches():
    with pytest.raises(UnknownModelError, match="resnet50"):
        cnnlab.create_model("resnet5O")
    with pytest.raises(UnknownModelError):
        cnnlab.model_info("no_such_model")


def test_unknown_builder_argument():
    with pytest.raises(TypeError, match="unexpected argument"):
        cnnlab.create_model(ALL[0], no_such_option=1)


def test_builders_are_keyword_only():
    with pytest.raises(TypeError):
        cnnlab.registry._BUILDERS[ALL[0]](10)


# -- register_model's checks and stamps, on a scratch copy of the registry -------------------

class _Tiny(CnnModel):
    def __init__(self, num_classes=10, in_chans=3, drop_rate=0.0, drop_path_rate=0.0):
        super().__init__()
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 4
        self.conv = nn.Conv2d(in_chans, 4, 3, stride=2, padding=1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)

    def forward_features(self, x):
        return self.conv(x)


@pytest.fixture
def scratch(monkeypatch):
    registry.list_models()  # the real registry first
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    monkeypatch.setattr(registry, "_INFOS", dict(registry._INFOS))
    monkeypatch.setattr(registry, "_CFG_CACHE", dict(registry._CFG_CACHE))
    paper = Paper("Tiny nets", "A. Author", 2021, arxiv="2101.00001")

    def register(name, dataset="cifar", **kw):
        def tiny(*, num_classes: int = 10, in_chans: int = 3, **kwargs) -> _Tiny:
            """A tiny net.

            More text."""
            return _Tiny(num_classes=num_classes, in_chans=in_chans, **kwargs)
        tiny.__name__ = name
        return registry.register_model(family="scratch", paper=paper, input_size=(3, 16, 16), min_input_size=5,
                                       dataset=dataset, **kw)(tiny)
    return register


def test_register_model_refuses_bad_declarations(scratch):
    with pytest.raises(ValueError, match="dataset must be one of"):
        scratch("scratch_bad_dataset", dataset="coco")
    scratch("scratch_once")
    with pytest.raises(ValueError, match="'scratch_once' is registered twice"):
        scratch("scratch_once")
    with pytest.raises(ValueError, match=r"unknown preprocessing keys \['size'\]"):
        scratch("scratch_bad_pre", preprocessing={"size": 3, "mean": (0.5,) * 3})
    with pytest.raises(TypeError, match=r"keyword-only arguments, not \['num_classes'\]"):
        registry.register_model(family="scratch", paper=Paper("t", "a", 2020), input_size=(3, 8, 8),
                                min_input_size=1, dataset="cifar")(lambda num_classes=10, *, in_chans=3: None)
    assert "scratch_bad_dataset" not in registry._INFOS and "scratch_bad_pre" not in registry._INFOS


@pytest.mark.parametrize("dataset, classes", [("mnist", 10), ("cifar", 10), ("imagenet", 1000)])
def test_registered_info_and_what_is_stamped_on_the_model(scratch, dataset, classes):
    scratch(f"scratch_{dataset}", dataset=dataset)
    info = cnnlab.model_info(f"scratch_{dataset}")
    assert info.num_classes == classes and info.family == "scratch" and info.description == "A tiny net."
    assert info.layout == "paper" and info.preprocessing == () and info.aux_loss_weights == ()
    model = cnnlab.create_model(f"scratch_{dataset}")
    assert model.num_classes == classes and model.fc.out_features == classes
    assert model.model_info is info and model.min_input_size == 5
    assert model(torch.zeros(1, 3, 5, 5)).shape == (1, classes)
    with pytest.raises(InputSizeError, match="at least 5x5"):
        model(torch.zeros(1, 3, 5, 4))
    assert registry.list_models("scratch_*", family="scratch") == [f"scratch_{dataset}"]
    assert registry.list_models("scratch_*", family="other") == []


def test_registered_num_classes_aux_weights_and_preprocessing(scratch):
    scratch("scratch_seven", dataset="imagenet", num_classes=7, aux_loss_weights=[0.3],
            preprocessing={"crop_pct": 0.9})
    model = cnnlab.create_model("scratch_seven", in_chans=1)
    assert model.num_classes == 7 and model.aux_loss_weights == (0.3,)  # the info's, stamped on
    cfg = model.pretrained_cfg
    assert cfg["crop_pct"] == 0.9 and cfg["mean"] == (0.485, 0.456, 0.406)  # overridden / the dataset's default
    assert cfg["input_size"] == (1, 16, 16) and cfg["min_input_size"] == 5  # the model's own channels
    assert cfg["first_conv"] == "conv" and cfg["classifier"] == "fc" and cfg["num_classes"] == 7
    assert registry.pretrained_cfg("scratch_seven")["input_size"] == (3, 16, 16)


@pytest.mark.parametrize("kwargs, ok", [
    (dict(num_classes=0), True), (dict(in_chans=1), True), (dict(in_chans=0), False), (dict(in_chans=True), False),
    (dict(num_classes=-1), False), (dict(num_classes=2.0), False),
    (dict(drop_rate=0.0), True), (dict(drop_rate=0.99), True), (dict(drop_rate=1.0), False),
    (dict(drop_rate=-0.1), False), (dict(drop_rate=True), False), (dict(drop_rate="0.1"), False),
    (dict(drop_path_rate=0), True), (dict(drop_path_rate=1), False), (dict(drop_path_rate=None), True),
])
def test_common_arguments_checked_before_the_builder(scratch, kwargs, ok):
    scratch("scratch_args")
    if ok:
        model = cnnlab.create_model("scratch_args", **kwargs)
        assert model.num_classes == kwargs.get("num_classes", 10)
    else:
        key = next(iter(kwargs))
        with pytest.raises(UserError, match=f"scratch_args: {key} must be"):
            cnnlab.create_model("scratch_args", **kwargs)


def test_features_only_and_out_indices(scratch):
    scratch("scratch_feats")
    net = cnnlab.create_model("scratch_feats", features_only=True)
    assert isinstance(net, FeatureNet) and net.model.num_classes == 0
    assert [m.shape for m in net(torch.zeros(1, 3, 16, 16))] == [(1, 4, 8, 8)]
    with pytest.raises(UserError, match="out_indices only applies with features_only=True"):
        cnnlab.create_model("scratch_feats", out_indices=(0,))
    assert registry.accepted_arguments("scratch_feats") == sorted(
        {"num_classes", "in_chans", "drop_rate", "drop_path_rate", "features_only", "out_indices"})


def test_paper_and_published_text():
    p = Paper("Deep nets", "A. B", 2015, arxiv="1512.03385")
    assert p.url == "https://arxiv.org/abs/1512.03385" and p.cite() == "A. B (2015). Deep nets. arXiv:1512.03385"
    q = Paper("LeNet", "Y. L", 1998, venue="Proc. IEEE 1998")
    assert q.url is None and q.cite() == "Y. L (1998). LeNet. Proc. IEEE 1998"
    assert Paper("X", "Y", 2000).cite() == "Y (2000). X."
    assert Published(top1=76.13, top5=92.862, dataset="imagenet").accuracy_text() == \
        "top-1 76.1% / top-5 92.9% (imagenet)"
    assert Published(top1=70.0).accuracy_text() == "top-1 70.0%"
    assert Published(top5=88.0, dataset="imagenet").accuracy_text() == "top-5 88.0% (imagenet)"
    assert Published(error=6.43, dataset="cifar").accuracy_text() == "error 6.43% (cifar)"
    assert Published(dataset="cifar").accuracy_text() == ""


def test_model_info_to_dict():
    d = cnnlab.model_info("resnet50").to_dict()
    assert d["name"] == "resnet50" and d["input_size"] == [3, 224, 224]
    assert d["paper"]["url"] == f"https://arxiv.org/abs/{d['paper']['arxiv']}"
    assert isinstance(d["preprocessing"], dict) and isinstance(d["aux_loss_weights"], list)
    assert cnnlab.model_info("googlenet").to_dict()["aux_loss_weights"] == [0.3, 0.3]
