"""The dataset table, digits and shapes, checked against independent facts."""
import numpy as np
import pytest
import torch

from cnnlab.data import DataError, dataset_info, list_datasets, load_dataset
from cnnlab.data.core import default_data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cnnlab-data")


@pytest.fixture(autouse=True)
def _data_home(monkeypatch, data_dir):
    monkeypatch.setenv("CNNLAB_DATA", str(data_dir))  # never write to the user's cache


def test_the_issue_datasets_are_listed():
    assert set(list_datasets()) == {"digits", "mnist_5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder", "shapes"}


@pytest.mark.parametrize(
    "name, classes, channels, size, kind, downloads",
    [
        ("digits", 10, 1, (8, 8), "mnist", False),
        ("mnist", 10, 1, (28, 28), "mnist", True),
        ("fashion_mnist", 10, 1, (28, 28), "mnist", True),
        ("cifar10", 10, 3, (32, 32), "cifar", True),
        ("cifar100", 100, 3, (32, 32), "cifar", True),
        ("imagefolder", None, 3, (224, 224), "imagenet", False),
    ],
)
def test_dataset_info_facts(name, classes, channels, size, kind, downloads):
    info = dataset_info(name)
    assert (info.num_classes, info.channels, info.image_size, info.kind, info.downloads) == (classes, channels, size, kind, downloads)
    assert len(info.mean) == len(info.std) == channels
    if info.classes is not None:
        assert len(info.classes) == classes and len(set(info.classes)) == classes


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError, match="did you mean 'cifar10'"):
        dataset_info("cifar-10")
    with pytest.raises(DataError, match="split"):
        load_dataset("digits", "validation")
    with pytest.raises(DataError, match="takes no options"):
        load_dataset("digits", image_size=32)


def test_digits_counts_classes_and_split(data_dir):
    from sklearn.datasets import load_digits

    ref = load_digits()
    train = load_dataset("digits", "train", data_dir=data_dir)
    test = load_dataset("digits", "test", data_dir=data_dir)
    assert len(train) + len(test) == 1797 == len(ref.target)
    assert train.classes == [str(d) for d in range(10)] == test.classes
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 8, 8)
    assert (len(train), len(test)) == (dataset_info("digits").num_train, dataset_info("digits").num_test)
    # stratified: every class split 80/20 up to rounding
    per_class = np.bincount(ref.target)
    assert torch.equal(train.class_counts() + test.class_counts(), torch.from_numpy(per_class))
    assert (abs(test.class_counts().numpy() - 0.2 * per_class) <= 0.5).all()
    # pixels are sklearn's 0..16 scaled to 0..255
    all_pixels = torch.cat([train.images, test.images]).double()
    assert all_pixels.max() == 255 and all_pixels.min() == 0
    assert all_pixels.sum() == pytest.approx(ref.images.sum() * 255 / 16, rel=1e-3)
    # the published mean/std of the info are those of the data
    info = dataset_info("digits")
    assert (all_pixels / 255).mean().item() == pytest.approx(info.mean[0], abs=1e-3)
    assert (all_pixels / 255).std().item() == pytest.approx(info.std[0], abs=1e-3)


def test_digits_split_is_deterministic_and_cached(data_dir):
    a = load_dataset("digits", data_dir=data_dir)
    assert (data_dir / "digits" / "digits.pt").exists()
    b = load_dataset("digits", data_dir=data_dir)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_subset(data_dir):
    train = load_dataset("digits", data_dir=data_dir)
    sub = train.subset([0, 5, 7])
    assert len(sub) == 3 and torch.equal(sub.images[1], train.images[5]) and sub.classes == train.classes
    with pytest.raises(DataError, match="out of range"):
        train.subset([len(train)])


def test_shapes_are_deterministic_and_seeded(tmp_path):
    a = load_dataset("shapes", num_samples=40, image_size=24, seed=1, data_dir=tmp_path)
    assert len(list((tmp_path / "shapes").iterdir())) == 1  # small ones are cached
    b = load_dataset("shapes", num_samples=40, image_size=24, seed=1, data_dir=tmp_path / "other")
    c = load_dataset("shapes", num_samples=40, image_size=24, seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    longer = load_dataset("shapes", num_samples=60, image_size=24, seed=1)
    assert torch.equal(longer.images[:40], a.images)  # growing num_samples keeps the first images
    test = load_dataset("shapes", "test", num_samples=40, image_size=24, seed=1)
    assert not torch.equal(test.images, a.images)


def test_shapes_options_and_balance(data_dir):
    ds = load_dataset("shapes", num_samples=50, image_size=40, num_classes=5, data_dir=data_dir)
    assert ds.images.shape == (50, 3, 40, 40) and ds.images.dtype == torch.uint8
    assert ds.classes == ["circle", "square", "triangle", "rectangle", "cross"]
    assert ds.class_counts().tolist() == [10] * 5
    assert ds.info.image_size == (40, 40) and ds.info.num_classes == 5
    assert load_dataset("shapes", num_samples=2, image_size=64).info.kind == "imagenet"
    with pytest.raises(DataError, match="num_classes"):
        load_dataset("shapes", num_classes=11)
    with pytest.raises(DataError, match="image_size"):
        load_dataset("shapes", image_size=4)


def test_shapes_mean_std_of_the_info_match_the_data(data_dir):
    ds = load_dataset("shapes", num_samples=600, data_dir=data_dir)
    x = ds.images.float() / 255
    info = dataset_info("shapes")
    assert torch.allclose(x.mean((0, 2, 3)), torch.tensor(info.mean), atol=0.02)
    assert torch.allclose(x.std((0, 2, 3)), torch.tensor(info.std), atol=0.02)


def test_shapes_images_all_differ(data_dir):
    ds = load_dataset("shapes", num_samples=20, image_size=32, num_classes=10, seed=0, data_dir=data_dir)
    assert len({tuple(img.flatten()[:200].tolist()) for img in ds.images}) == 20


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "here"))
    assert default_data_dir() == tmp_path / "here"
    monkeypatch.delenv("CNNLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "cnnlab"


def test_mnist_5k_is_real_mnist_with_a_stratified_split():
    train, test = load_dataset("mnist_5k", "train"), load_dataset("mnist_5k", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [100] * 10  # 20% of each class's 500
    # MNIST's digits are centred in a 20x20 box of the 28x28 field: the 4-pixel border is nearly empty
    border = torch.cat([train.images[..., :3, :].flatten(), train.images[..., -3:, :].flatten()]).float()
    assert border.mean() < 2.0 and train.images.float().mean() > 20
    assert not set(map(bytes, train.images[:200].numpy())) & set(map(bytes, test.images.numpy()))
    info = dataset_info("mnist_5k")
    measured = train.images.double() / 255
    assert info.mean[0] == pytest.approx(float(measured.mean()), abs=1e-3)
    assert info.std[0] == pytest.approx(float(measured.std()), abs=1e-3)


def test_a_tampered_cache_is_re_derived(data_dir):
    load_dataset("digits")  # writes digits.pt
    cache = data_dir / "digits" / "digits.pt"
    obj = torch.load(cache, weights_only=True)
    obj["labels"] = torch.zeros_like(obj["labels"])  # every digit a "0": would train to 100% on nonsense
    torch.save(obj, cache)
    train = load_dataset("digits")
    assert torch.bincount(train.labels).min() > 100  # re-derived from scikit-learn, not the fake
    fake = {"images": obj["images"], "labels": obj["labels"], "version": obj["version"]}  # no source or hash
    torch.save(fake, cache)
    assert torch.bincount(load_dataset("digits").labels).min() > 100


def test_in_memory_dataset_items_and_repr():
    from cnnlab.data import InMemoryDataset, dataset_info

    imgs = torch.arange(2 * 1 * 3 * 4, dtype=torch.uint8).view(2, 1, 3, 4)
    ds = InMemoryDataset(imgs, torch.tensor([1, 0]), ["a", "b"], dataset_info("shapes"), "test")
    x, y = ds[1]
    assert torch.equal(x, imgs[1]) and y == 0 and type(y) is int
    assert repr(ds) == "InMemoryDataset('shapes', split='test', 2 images 1x3x4, 2 classes)"
