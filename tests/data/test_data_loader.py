"""make_loader: shapes, determinism per (seed, epoch, rank), sharding, size adaptation."""
import pytest
import torch

from cnnlab.data import AugmentConfig, DataError, InMemoryDataset, dataset_info, load_dataset, make_loader

CIFAR_AUG = AugmentConfig(crop_padding=4, flip=True, cutout=8)


@pytest.fixture(autouse=True)
def _data_home(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path_factory.getbasetemp() / "cnnlab-data"))


def _toy(n=103, c=3, size=8):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    # make every image identifiable: pixel (0, 0, 0) and (0, 0, 1) encode its index
    images[:, 0, 0, 0] = torch.arange(n) % 256
    images[:, 0, 0, 1] = torch.arange(n) // 256
    labels = torch.arange(n) % 5
    info = dataset_info("shapes").with_(name="toy", channels=c, image_size=(size, size), mean=(0.0,) * c, std=(1.0,) * c)
    return InMemoryDataset(images, labels, [str(k) for k in range(5)], info)


def _ids(loader, epoch=0):
    loader.set_epoch(epoch)
    out = []
    for x, _ in loader:
        px = (x[:, 0, 0, :2] * 255).round().long()
        out += (px[:, 0] + 256 * px[:, 1]).tolist()
    return out


def test_batches_have_the_contract_types():
    ds = _toy()
    loader = make_loader(ds, batch_size=10, train=True, augment=CIFAR_AUG)
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape == (10, 3, 8, 8)
    assert y.dtype == torch.int64 and y.shape == (10,)
    assert len(loader) == 10 and loader.num_samples == 100  # drop_last in training
    ev = make_loader(ds, batch_size=10, train=False)
    assert len(ev) == 11 and ev.num_samples == 103
    assert sum(len(y) for _, y in ev) == 103


def test_eval_order_is_the_dataset_order_and_labels_match():
    ds = _toy()
    loader = make_loader(ds, batch_size=16, train=False)
    assert _ids(loader) == list(range(103))
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys, ds.labels)


def test_training_order_is_a_permutation_fixed_by_seed_and_epoch():
    ds = _toy()
    a = make_loader(ds, batch_size=10, train=True, seed=3)
    b = make_loader(ds, batch_size=10, train=True, seed=3)
    c = make_loader(ds, batch_size=10, train=True, seed=4)
    ids0 = _ids(a, 0)
    assert len(set(ids0)) == 100 and set(ids0) <= set(range(103))
    assert _ids(b, 0) == ids0  # same (seed, epoch): same order
    assert _ids(a, 1) != ids0  # a new epoch reshuffles
    assert _ids(c, 0) != ids0  # another seed
    assert _ids(a, 0) == ids0  # going back to epoch 0 (resume) reproduces it


def test_augmentation_is_reproducible_per_seed_and_epoch():
    ds = _toy(n=64, size=12)
    loader = make_loader(ds, batch_size=16, train=True, augment=CIFAR_AUG, seed=1)
    loader.set_epoch(2)
    first = [x.clone() for x, _ in loader]
    fresh = make_loader(ds, batch_size=16, train=True, augment=CIFAR_AUG, seed=1)
    fresh.set_epoch(2)
    again = [x for x, _ in fresh]
    assert all(torch.equal(p, q) for p, q in zip(first, again))
    fresh.set_epoch(3)
    assert not torch.equal(next(iter(fresh))[0], first[0])


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_training_shards_are_disjoint_and_equal(world_size):
    ds = _toy()
    shards = [_ids(make_loader(ds, batch_size=5, train=True, seed=9, rank=r, world_size=world_size, drop_last=False), 1)
              for r in range(world_size)]
    sizes = {len(s) for s in shards}
    assert sizes == {103 // world_size}
    union = [i for s in shards for i in s]
    assert len(union) == len(set(union))  # disjoint
    single = make_loader(ds, batch_size=5, train=True, seed=9, drop_last=False)
    assert set(union) <= set(_ids(single, 1))


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_eval_shards_cover_the_dataset_once_with_equal_batch_counts(world_size):
    ds = _toy()
    loaders = [make_loader(ds, batch_size=4, train=False, rank=r, world_size=world_size) for r in range(world_size)]
    union = sorted(i for lo in loaders for i in _ids(lo))
    assert union == list(range(103))
    assert len({len(lo) for lo in loaders}) == 1  # same number of batches on every rank
    assert all(len(list(iter(lo))) == len(lo) for lo in loaders)


def test_equal_batch_count_when_a_shard_is_one_short_of_a_batch():
    ds = _toy(n=9)  # 2 ranks: 5 and 4 samples; batch 4 -> 2 batches on both
    counts = [len(list(make_loader(ds, batch_size=4, train=False, rank=r, world_size=2))) for r in range(2)]
    assert counts == [2, 2]


def test_lenet_gets_32x32_digits_and_rgb_models_get_three_channels():
    train = load_dataset("digits")
    x, _ = next(iter(make_loader(train, batch_size=8, train=False, input_size=(1, 32, 32))))
    assert x.shape == (8, 1, 32, 32)
    x3, _ = next(iter(make_loader(train, batch_size=8, train=False, input_size=(3, 32, 32))))
    assert x3.shape == (8, 3, 32, 32) and torch.equal(x3[:, 0], x3[:, 2])
    assert torch.allclose(x3[:, 1], x[:, 0])


def test_bad_arguments_are_clear_errors():
    ds = _toy()
    with pytest.raises(DataError, match="channel"):
        make_loader(ds, batch_size=4, train=False, input_size=(2, 8, 8))
    with pytest.raises(DataError, match="input_size"):
        make_loader(ds, batch_size=4, train=False, input_size=(32, 32))
    with pytest.raises(DataError, match="batch_size"):
        make_loader(ds, batch_size=0, train=True)
    with pytest.raises(DataError, match="rank"):
        make_loader(ds, batch_size=4, train=True, rank=2, world_size=2)
    with pytest.raises(DataError, match="augment"):
        make_loader(ds, batch_size=4, train=True, augment="cifar")
    with pytest.raises(DataError, match="no batch"):
        make_loader(ds, batch_size=200, train=True, drop_last=True)
    with pytest.raises(DataError, match="load_dataset"):
        make_loader([1, 2, 3], batch_size=4, train=True)


def test_small_training_sets_keep_their_partial_batch():
    loader = make_loader(_toy(n=7), batch_size=16, train=True)
    assert len(loader) == 1 and loader.num_samples == 7


def test_resizing_once_up_front_matches_resizing_every_batch():
    from cnnlab.data.augment import BatchPipeline

    ds = _toy(n=20, c=1, size=8)
    loader = make_loader(ds, batch_size=20, train=False, input_size=(1, 32, 32))
    x, _ = next(iter(loader))
    info = ds.info
    per_batch = BatchPipeline((1, 8, 8), (1, 32, 32), info.mean, info.std, None, torch.device("cpu"))(ds.images, False)
    assert torch.allclose(x, per_batch, atol=0.51 / 255 / info.std[0])  # uint8 rounding only


def test_alexnet_and_inception_style_augmentation_run_batched():
    ds = _toy(n=32, size=20)
    aug = AugmentConfig(random_resized_crop=True, flip=True, pca_lighting=0.1, cutout=4)
    loader = make_loader(ds, batch_size=16, train=True, input_size=(3, 24, 24), augment=aug, seed=2)
    batches = [x for x, _ in loader]
    assert [b.shape for b in batches] == [(16, 3, 24, 24)] * 2
    assert all(torch.isfinite(b).all() for b in batches)
    again = [x for x, _ in make_loader(ds, batch_size=16, train=True, input_size=(3, 24, 24), augment=aug, seed=2)]
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    # evaluation ignores the augmentation: a plain resize of every image
    ev = make_loader(ds, batch_size=32, train=False, input_size=(3, 24, 24), augment=aug)
    x, _ = next(iter(ev))
    assert torch.equal(x, next(iter(ev))[0])


def test_images_resized_up_front_are_kept_as_uint8():
    # the once-up-front resize stores rounded uint8 pixels (4x less memory than float)
    imgs = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    info = dataset_info("shapes").with_(num_classes=2, classes=["a", "b"], channels=3, image_size=(8, 8))
    ds = InMemoryDataset(imgs, torch.zeros(6, dtype=torch.long), ["a", "b"], info)
    for size in ((3, 16, 16), (3, 10, 10)):  # resized; padded
        loader = make_loader(ds, batch_size=3, train=False, input_size=size)
        assert loader.images.dtype == torch.uint8 and tuple(loader.images.shape[1:]) == size
