"""Inception-v3: grid sizes of the paper's Table 1, the auxiliary head (train mode only,
weight 0.4), the true smallest inputs with and without it, transform_input, bad inputs.
Shape checks run on the meta device, so the full 299 x 299 input costs nothing."""
import pytest
import torch

import cnnlab
from cnnlab.models.base import AuxOutput, InputSizeError


def meta_model(**kwargs):
    with torch.device("meta"):
        return cnnlab.create_model("inception_v3", **kwargs)


def meta_input(size, batch=2, chans=3):
    return torch.empty(batch, chans, size, size, device="meta")


def output_shapes(model, names, x):
    shapes = {}

    def record(name):
        def hook(module, inputs, output):
            shapes[name] = tuple(output.shape[1:])
        return hook

    for name in names:
        model.get_submodule(name).register_forward_hook(record(name))
    model(x)
    return shapes


def test_grid_sizes_of_table_1():
    # Table 1: 35x35x288 into the 17x17 stage, 17x17x768, 8x8x1280 into the last two
    # modules, 8x8x2048 into the final pool.
    model = meta_model().eval()
    shapes = output_shapes(model, ["Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7a", "Mixed_7c"], meta_input(299))
    assert shapes == {
        "Conv2d_4a_3x3": (192, 71, 71),
        "Mixed_5d": (288, 35, 35),
        "Mixed_6e": (768, 17, 17),
        "Mixed_7a": (1280, 8, 8),
        "Mixed_7c": (2048, 8, 8),
    }
    assert model.num_features == 2048


def test_aux_head_only_in_training():
    model = meta_model(num_classes=10)
    calls = []
    model.AuxLogits.register_forward_hook(lambda *args: calls.append(1))
    out = model.train()(meta_input(299))
    assert isinstance(out, AuxOutput) and len(out.aux) == 1
    assert out.logits.shape == out.aux[0].shape == (2, 10)
    assert calls == [1]
    out = model.eval()(meta_input(299))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    assert calls == [1]  # not run in eval mode


def test_aux_loss_weight_declared():
    # TF-slim's train_image_classifier.py weights the AuxLogits cross-entropy by 0.4.
    assert cnnlab.model_info("inception_v3").aux_loss_weights == (0.4,)
    assert meta_model().aux_loss_weights == (0.4,)
    no_aux = meta_model(aux_logits=False)
    assert no_aux.aux_loss_weights == ()
    assert not any(k.startswith("AuxLogits") for k in no_aux.state_dict())
    out = no_aux.train()(meta_input(299))
    assert isinstance(out, torch.Tensor)


def test_reset_classifier_resets_aux_head_too():
    model = meta_model()
    model.reset_classifier(7)
    out = model.train()(meta_input(299))
    assert out.logits.shape == out.aux[0].shape == (2, 7)


def _raw_forward(model, size):
    """Run the network without the input-size check, to see where it really breaks."""
    x, aux = model._features(meta_input(size), with_aux=model.training and model.AuxLogits is not None)
    return model.forward_head(x)


@pytest.mark.parametrize("aux_logits, train, smallest", [
    (True, True, 299),  # the aux head's avgpool 5/3 + conv 5x5 need 17 x 17 after Mixed_6e
    (True, False, 75),
    (False, True, 75),
])
def test_smallest_input_is_tight(aux_logits, train, smallest):
    model = meta_model(aux_logits=aux_logits).train(train)
    assert _raw_forward(model, smallest).shape == (2, 1000)
    with pytest.raises(RuntimeError):
        _raw_forward(model, smallest - 1)


def test_declared_smallest_input():
    assert cnnlab.model_info("inception_v3").min_input_size == 299
    model = meta_model()
    with pytest.raises(InputSizeError, match="at least 299x299"):
        model.train()(meta_input(298))  # the aux head runs in training mode
    # eval mode runs no aux head: the sizes torchvision's inception_v3 takes, 75 and up
    assert model.eval().min_input_size == 75
    assert model(meta_input(75)).shape == (2, 1000)
    with pytest.raises(InputSizeError, match="at least 75x75"):
        model(meta_input(74))
    assert model.train().min_input_size == 299
    no_aux = meta_model(aux_logits=False)
    assert no_aux.min_input_size == 75
    assert no_aux.eval()(meta_input(75)).shape == (2, 1000)
    with pytest.raises(InputSizeError, match="at least 75x75"):
        no_aux(meta_input(74))


def test_transform_input_maps_imagenet_normalization_to_minus_one_one():
    model = cnnlab.create_model("inception_v3", transform_input=True, aux_logits=False)
    rgb = torch.rand(2, 3, 4, 4)  # pixel values in [0, 1]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model._transform((rgb - mean) / std), (rgb - 0.5) / 0.5)
    plain = cnnlab.create_model("inception_v3", aux_logits=False)
    x = torch.randn(1, 3, 4, 4)
    assert plain._transform(x) is x  # off by default, as torchvision without weights


@pytest.mark.parametrize("x, error, match", [
    (torch.zeros(1, 3, 299, 299, dtype=torch.uint8), TypeError, "floating-point"),
    ([[0.0]], TypeError, "torch.Tensor"),
    (torch.zeros(3, 299, 299), InputSizeError, "4-D"),
    (torch.zeros(1, 1, 299, 299), InputSizeError, "channel"),
    (torch.zeros(1, 3, 299, 200), InputSizeError, "at least 299x299"),
])
def test_bad_inputs(x, error, match):
    model = meta_model()  # the checks come before any computation
    with pytest.raises(error, match=match):
        model(x)


@pytest.mark.parametrize("kwargs, match", [
    (dict(transform_input=True, in_chans=1), "transform_input"),
    (dict(drop_rate=1.0), "drop_rate"),
    (dict(num_classes=-1), "num_classes"),  # 0 is allowed: pooled features (timm)
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        meta_model(**kwargs)
