"""imagefolder: PNG folders made in the test, decoded by worker processes."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import AugmentConfig, DataError, load_dataset, make_loader
from cnnlab.data.folder import decode_image

COLOURS = {"blue": (0, 0, 255), "green": (0, 200, 0), "red": (255, 0, 0)}


def _make_folder(root, per_class=5, size=(20, 30)):
    for k, (name, rgb) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = np.zeros((size[0] + i, size[1], 3), np.uint8)
            img[:] = rgb
            img[0, 0] = (i, k, 7)  # make each file unique
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return _make_folder(tmp_path_factory.mktemp("photos"), per_class=10)


def test_classes_and_stratified_holdout(flat):
    train = load_dataset("imagefolder", root=flat, image_size=16)
    test = load_dataset("imagefolder", "test", root=flat, image_size=16)
    assert train.classes == ["blue", "green", "red"] and train.info.num_classes == 3
    assert len(train) == 27 and len(test) == 3  # 10% of each class
    assert torch.bincount(test.labels).tolist() == [1, 1, 1]
    assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    assert train.info.image_size == (16, 16)


def test_split_folders_are_used(tmp_path):
    _make_folder(tmp_path / "train", per_class=3)
    _make_folder(tmp_path / "val", per_class=2)
    train = load_dataset("imagefolder", root=tmp_path)
    val = load_dataset("imagefolder", "test", root=tmp_path)
    assert (len(train), len(val)) == (9, 6)
    assert all("/val/" in p for p, _ in val.samples)


def test_loader_decodes_colours_in_workers(flat):
    test = load_dataset("imagefolder", "test", root=flat, image_size=12)
    loader = make_loader(test, batch_size=3, train=False, num_workers=2)
    x, y = next(iter(loader))
    assert x.shape == (3, 3, 12, 12) and y.tolist() == [0, 1, 2]
    mean, std = torch.tensor(test.info.mean), torch.tensor(test.info.std)
    rgb = (x[:, :, 6, 6] * std + mean) * 255  # undo the normalisation at the centre pixel
    expected = torch.tensor([COLOURS["blue"], COLOURS["green"], COLOURS["red"]], dtype=torch.float32)
    assert torch.allclose(rgb, expected, atol=1.0)


def test_training_loader_is_deterministic_across_worker_counts(flat):
    train = load_dataset("imagefolder", root=flat, image_size=16)
    aug = AugmentConfig(random_resized_crop=True, flip=True)
    runs = []
    for workers in (0, 2):
        loader = make_loader(train, batch_size=8, train=True, augment=aug, seed=4, num_workers=workers)
        loader.set_epoch(1)
        runs.append([(x, y) for x, y in loader])
    assert len(runs[0]) == len(runs[1]) == 3
    for (xa, ya), (xb, yb) in zip(*runs):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_decode_resizes_and_centre_crops(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # a white middle half
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = decode_image(str(tmp_path / "wide.png"), (20, 20))  # shorter side -> 20, centre crop
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    assert (out[:, :, 2:18] == 255).all()  # the centre 20x20 of the 20x40 resize is inside the white band
    rrc = decode_image(str(tmp_path / "wide.png"), (10, 10), rrc=((0.5, 1.0), (3 / 4, 4 / 3)), sample_seed=3)
    assert rrc.shape == (3, 10, 10)


def test_channel_adaptation_to_grayscale(flat):
    test = load_dataset("imagefolder", "test", root=flat, image_size=8)
    x, _ = next(iter(make_loader(test, batch_size=3, train=False, num_workers=0, input_size=(1, 8, 8))))
    assert x.shape == (3, 1, 8, 8)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="root="):
        load_dataset("imagefolder")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("imagefolder", root=tmp_path / "nope")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="loose images"):
        load_dataset("imagefolder", root=tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "cls" / "ok.png").write_bytes((tmp_path / "loose.png").read_bytes())
    ds = load_dataset("imagefolder", root=tmp_path, image_size=4)
    with pytest.raises(DataError, match="cannot decode image .*broken.png"):
        list(make_loader(ds, batch_size=2, train=False, num_workers=0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="without images"):
        load_dataset("imagefolder", root=tmp_path)


def test_bad_image_size(flat):
    with pytest.raises(DataError, match="image_size"):
        load_dataset("imagefolder", root=flat, image_size=(0, 8))


def _digits_as_pngs(root, ds, n=40):
    """PNG class folders holding the first ``n`` images of an in-memory dataset."""
    for i in range(n):
        folder = root / ds.classes[int(ds.labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i, 0].numpy(), "L").save(folder / f"{i:03d}.png")
    return root


def test_a_folder_of_real_digits_matches_the_in_memory_path(tmp_path):
    mnist = load_dataset("mnist_5k", "train")
    _digits_as_pngs(tmp_path / "train", mnist)
    _digits_as_pngs(tmp_path / "test", mnist)
    opts = dict(root=tmp_path, image_size=32, mean=list(mnist.info.mean), std=list(mnist.info.std))
    train = load_dataset("imagefolder", "train", **opts)
    test = load_dataset("imagefolder", "test", **opts)
    assert train.info.channels == 1  # grayscale PNGs stay one channel
    # evaluation inputs
    evaluated = next(iter(make_loader(test, batch_size=40, train=False, input_size=(1, 32, 32), num_workers=0)))[0]
    # the training path without random-resized crop (and without augmentation)
    loader = make_loader(train, batch_size=40, train=True, input_size=(1, 32, 32), augment=AugmentConfig(),
                         num_workers=0)
    order = loader.indices(0)[0]
    trained = next(iter(loader))[0]
    assert torch.equal(trained, evaluated[order])
    # and both equal what the in-memory dataset of the same images gives (28 -> 32 padded)
    sub = mnist.subset(list(range(40)))
    names = sorted(f"{i:03d}" for i in range(40))
    by_class = [int(p.rsplit("/", 1)[1][:3]) for p, _ in test.samples]
    in_memory = next(iter(make_loader(sub, batch_size=40, train=False, input_size=(1, 32, 32))))[0]
    assert names and torch.equal(evaluated, in_memory[by_class])


def test_folder_statistics_are_its_own(tmp_path):
    mnist = load_dataset("mnist_5k", "test")
    _digits_as_pngs(tmp_path, mnist, n=60)
    ds = load_dataset("imagefolder", root=tmp_path)
    imgs = torch.stack([ds[i][0] for i in range(len(ds))]).double() / 255
    assert ds.info.channels == 1 and len(ds.info.mean) == 1
    assert ds.info.mean[0] == pytest.approx(float(imgs.mean()), abs=1e-3)  # all 54 sampled (< 256)
    assert ds.info.std[0] == pytest.approx(float(imgs.std()), abs=2e-3)
    assert ds.info.mean[0] < 0.3  # dark digits: nothing like ImageNet's 0.485
    declared = load_dataset("imagefolder", root=tmp_path, mean=[0.5], std=[0.25])
    assert (declared.info.mean, declared.info.std) == ((0.5,), (0.25,))
    with pytest.raises(DataError, match="RGB"):
        load_dataset("imagefolder", root=tmp_path, mean="imagenet")
    with pytest.raises(DataError, match="1 value"):
        load_dataset("imagefolder", root=tmp_path, mean=[0.5, 0.5, 0.5], std=[1, 1, 1])


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)  # 0 .. 65535
    Image.fromarray(ramp).save(tmp_path / "a" / "x.png")
    Image.fromarray(ramp).save(tmp_path / "b" / "y.png")
    assert Image.open(tmp_path / "a" / "x.png").mode.startswith("I")
    x = decode_image(str(tmp_path / "a" / "x.png"), (4, 4), channels=1)
    assert x.shape == (1, 4, 4) and int(x.min()) == 0 and int(x.max()) == 255
    assert torch.equal(x[0].flatten(), torch.tensor([round(v * 255 / 65535) for v in ramp.flatten().tolist()],
                                                     dtype=torch.uint8))


def test_an_official_validation_folder_is_used(tmp_path):
    for split in ("train", "val", "test"):
        _make_folder(tmp_path / split, per_class=2 if split != "train" else 4)
    from cnnlab.data import has_split

    assert has_split("imagefolder", "val", root=tmp_path) and not has_split("mnist_5k", "val")
    val = load_dataset("imagefolder", "val", root=tmp_path, image_size=8)
    test = load_dataset("imagefolder", "test", root=tmp_path, image_size=8)
    assert all("/val/" in p for p, _ in val.samples) and all("/test/" in p for p, _ in test.samples)
    with pytest.raises(DataError, match="no validation split"):
        load_dataset("mnist_5k", "val")


def test_a_link_loop_does_not_multiply_samples(tmp_path):
    root = _make_folder(tmp_path / "photos", per_class=10)
    (root / "red" / "again").symlink_to(root / "red", target_is_directory=True)  # a loop
    (root / "blue" / "greens").symlink_to(root / "green", target_is_directory=True)  # another class's folder
    train = load_dataset("imagefolder", root=root, image_size=8)
    test = load_dataset("imagefolder", "test", root=root, image_size=8)
    real = [__import__("os").path.realpath(p) for p, _ in train.samples + test.samples]
    assert len(real) == len(set(real)) == 30  # every file once, in one class, in one split
    assert not [p for p, _ in train.samples + test.samples if "again" in p or "greens" in p]


def test_huge_and_undecodable_images_fail_in_one_line(tmp_path, monkeypatch):
    import cnnlab.data.folder as folder

    root = _make_folder(tmp_path / "photos", per_class=3)
    monkeypatch.setattr(folder, "MAX_PIXELS", 100)  # 20x30 images are "huge" now
    with pytest.raises(DataError, match=r"has 30x20 pixels, more than cnnlab decodes \(100\)"):
        decode_image(str(root / "red" / "0.png"), (8, 8))
    monkeypatch.undo()
    (root / "red" / "broken.png").write_bytes(b"not a png")
    ds = load_dataset("imagefolder", root=root, image_size=8)
    with pytest.raises(DataError) as info:
        list(make_loader(ds, batch_size=4, train=False, num_workers=1))  # the error comes from a worker
    message = str(info.value)
    assert "cannot decode image" in message and "broken.png" in message and "Traceback" not in message
    assert len(message.splitlines()) == 1


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, :4] = 255  # left half white
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    x = decode_image(str(tmp_path / "rotated.jpg"), (8, 4))  # displayed: 8 tall, 4 wide
    assert x.shape == (3, 8, 4)
    assert x[:, :4].float().mean() > 200 and x[:, 4:].float().mean() < 50  # white on top after rotation


def test_augmentation_larger_than_the_image_is_refused():
    from cnnlab.data.augment import BatchPipeline

    for aug in (AugmentConfig(crop_padding=8), AugmentConfig(cutout=9)):
        with pytest.raises(DataError, match="8-pixel input"):
            BatchPipeline((1, 8, 8), (1, 8, 8), (0.5,), (0.5,), aug, torch.device("cpu"))
