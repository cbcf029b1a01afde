"""Parameters come in the same order as in the torchvision / timm model of the same
layout. An optimizer's state_dict refers to parameters by position, so a peer's
momentum buffers would otherwise load, without an error, onto the wrong tensors.

The manifests (tests/reference/*.json) list the peer's ``state_dict()`` keys in the
peer's own order (JSON objects keep their order), and a module registers its
parameters in the same order as its state_dict entries."""
import pytest

from reference import build_on_meta, load_manifest, reference_names


@pytest.mark.parametrize("name", reference_names())
def test_named_parameters_follow_the_peer_order(name):
    model = build_on_meta(name)
    params = dict(model.named_parameters())
    want = [k for k in load_manifest(name)["state_dict"] if k in params]
    got = [k for k, _ in model.named_parameters()]
    assert len(want) == len(got)
    misplaced = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not misplaced, f"{len(misplaced)} of {len(got)} parameters out of place, first: {misplaced[:3]}"


@pytest.mark.parametrize("name", reference_names())
def test_state_dict_keys_follow_the_peer_order(name):
    # buffers too (running stats, num_batches_tracked): a full state_dict in the same order
    assert list(build_on_meta(name).state_dict()) == list(load_manifest(name)["state_dict"])


def test_optimizer_state_maps_onto_the_same_tensors():
    # What the order is for: momentum recorded for parameter i of the peer lands on ours.
    import torch
    import cnnlab

    model = cnnlab.create_model("resnetv2_50", num_classes=3)
    names = [k for k, _ in model.named_parameters()]
    manifest = [k for k in load_manifest("resnetv2_50")["state_dict"] if k in set(names)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # a peer's optimizer state: momentum buffer i holds the shape of the peer's parameter i
    shapes = load_manifest("resnetv2_50")["state_dict"]
    peer_state = {"state": {i: {"momentum_buffer": torch.zeros(shapes[k]) if not k.startswith("head.fc")
                                else torch.zeros_like(dict(model.named_parameters())[k])}
                            for i, k in enumerate(manifest)},
                  "param_groups": opt.state_dict()["param_groups"]}
    opt.load_state_dict(peer_state)
    for p, k in zip(model.parameters(), names):
        assert opt.state[p]["momentum_buffer"].shape == p.shape, k
