"""Behaviour of every transform op (PaddleClas's names and meanings), the batch ops (Mixup/CutMix
soft labels), the samplers, the datasets and the digits materialiser."""
import os
import random

import cv2
import numpy as np
import pytest

from ppvision_hybrid.data import (CutmixOperator, DatasetNotFoundError, ImageNetDataset,
                                  MixupOperator, OpSampler, build_batch_ops)
from ppvision_hybrid.data.autoaugment import RandAugment
from ppvision_hybrid.data.transforms import (CropImage, CropImageAtRatio, DecodeImage,
                                             NormalizeImage, RandCropImage, RandFlipImage,
                                             RandomErasing, ResizeImage, TimmAutoAugment,
                                             ToCHWImage, build_transforms, parse_number)


def _png_bytes(img_rgb):
    ok, buf = cv2.imencode(".png", img_rgb[:, :, ::-1])
    assert ok
    return buf.tobytes()


@pytest.fixture
def gradient_image():
    h, w = 40, 60
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 4      # R grows left -> right
    img[..., 1] = np.arange(h, dtype=np.uint8)[:, None] * 6      # G grows top -> bottom
    img[..., 2] = 200
    return img


def test_decode_image_rgb_and_channel_first(gradient_image):
    data = _png_bytes(gradient_image)
    out = DecodeImage(to_rgb=True)(data)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, gradient_image)
    bgr = DecodeImage(to_rgb=False)(data)
    np.testing.assert_array_equal(bgr, gradient_image[:, :, ::-1])
    assert DecodeImage(channel_first=True)(data).shape == (3, 40, 60)
    with pytest.raises(ValueError, match="could not decode"):
        DecodeImage()(b"not an image")


def test_resize_image_short_side_and_fixed(gradient_image):
    out = ResizeImage(resize_short=20)(gradient_image)
    assert out.shape == (20, 30, 3)  # aspect kept, short side 20
    assert ResizeImage(size=16)(gradient_image).shape == (16, 16, 3)
    assert ResizeImage(size=[24, 12])(gradient_image).shape == (12, 24, 3)  # [w, h]
    with pytest.raises(ValueError, match="exactly one"):
        ResizeImage()


def test_crop_image_is_centred(gradient_image):
    out = CropImage(size=20)(gradient_image)
    assert out.shape == (20, 20, 3)
    np.testing.assert_array_equal(out, gradient_image[10:30, 20:40])
    with pytest.raises(ValueError, match="smaller image"):
        CropImage(size=100)(gradient_image)


def test_rand_crop_image_size_and_content(gradient_image):
    random.seed(1)
    op = RandCropImage(size=16, scale=[0.2, 0.5], interpolation="nearest")
    crops = [op(gradient_image) for _ in range(5)]
    assert all(c.shape == (16, 16, 3) for c in crops)
    assert len({c.tobytes() for c in crops}) > 1  # different random crops
    # scale=1, ratio=w/h exactly: the only valid crop is the whole image
    whole = RandCropImage(size=[60, 40], scale=[1.0, 1.0], ratio=[1.5, 1.5], interpolation="nearest")(gradient_image)
    np.testing.assert_array_equal(whole, gradient_image)


def test_rand_flip_image_flips_about_half_the_time(gradient_image):
    random.seed(0)
    op = RandFlipImage(flip_code=1)
    outs = [op(gradient_image) for _ in range(200)]
    flipped = sum(np.array_equal(o, gradient_image[:, ::-1]) for o in outs)
    kept = sum(np.array_equal(o, gradient_image) for o in outs)
    assert flipped + kept == 200 and 70 < flipped < 130
    random.seed(3)
    vert = [RandFlipImage(flip_code=0)(gradient_image) for _ in range(20)]
    assert any(np.array_equal(v, gradient_image[::-1]) for v in vert)
    with pytest.raises(ValueError):
        RandFlipImage(flip_code=2)


def test_timm_auto_augment_changes_images_and_parses_config():
    rng = np.random.RandomState(0)
    img = rng.randint(0, 255, (32, 32, 3)).astype(np.uint8)
    random.seed(0)
    op = TimmAutoAugment(config_str="rand-m9-mstd0.5-inc1", img_size=32)
    outs = [op(img) for _ in range(10)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, img) for o in outs) >= 5
    ra = RandAugment.from_config_str("rand-m7-n3-mstd0.5-inc1")
    assert (ra.magnitude, ra.num_layers, ra.magnitude_std, ra.increasing) == (7.0, 3, 0.5, True)
    with pytest.raises(ValueError, match="unknown RandAugment option"):
        RandAugment.from_config_str("rand-m9-zz1")
    # every op runs and keeps the size
    from PIL import Image
    pil = Image.fromarray(img)
    for name in RandAugment.OPS:
        assert ra.apply_op(pil, name, 0.9).size == (32, 32)


def test_normalize_image_values_and_order():
    img = np.full((4, 5, 3), 255, np.uint8)
    out = NormalizeImage(scale="1.0/255.0", mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0], order="")(img)
    assert out.shape == (4, 5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [2.0, 1.0, 0.5], rtol=1e-6)
    chw = NormalizeImage(scale=1 / 255, mean=[0, 0, 0], std=[1, 1, 1], order="chw")(img)
    assert chw.shape == (3, 4, 5)
    assert parse_number("1.0/255.0") == pytest.approx(1 / 255)


def test_to_chw_image():
    img = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    out = ToCHWImage()(img)
    assert out.shape == (3, 2, 3)
    np.testing.assert_array_equal(out[1], img[:, :, 1])


def test_random_erasing_hwc_and_chw():
    random.seed(0)
    np.random.seed(0)
    img = np.zeros((32, 32, 3), np.float32)
    out = RandomErasing(EPSILON=1.0, sl=0.1, sh=0.2, mode="pixel")(img)
    erased = np.any(out != 0, axis=2)
    frac = erased.mean()
    assert 0.05 < frac <= 0.2 + 1e-6
    ys, xs = np.nonzero(erased)  # one rectangle
    assert erased[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()
    assert not np.any(img)  # input untouched
    chw = RandomErasing(EPSILON=1.0, sl=0.1, sh=0.2, mode="const", mean=[1, 2, 3])(np.zeros((3, 32, 32), np.float32))
    assert set(np.unique(chw[2])) == {0.0, 3.0}
    never = RandomErasing(EPSILON=0.0)(img)
    assert never is img


def test_build_transforms_rejects_unknown_op():
    with pytest.raises(ValueError, match="unknown transform op 'Blur'"):
        build_transforms([{"Blur": {}}])


# ---- batch ops -----------------------------------------------------------------------------

def _batch(n=4, k=3):
    images = np.stack([np.full((3, 8, 8), i, np.float32) for i in range(n)])
    labels = np.array([0, 1, 2, 1][:n], np.int64)
    return images, labels


def test_mixup_soft_labels_match_the_image_mix():
    images, labels = _batch()
    np.random.seed(0)
    mixed, soft = MixupOperator(class_num=3, alpha=0.4)(images, labels)
    assert soft.shape == (4, 3) and np.allclose(soft.sum(1), 1.0)
    for i in range(4):
        # image i is lam * i + (1 - lam) * j; recover lam, j from the soft label
        lam = soft[i, labels[i]] if soft[i].max() < 1 else 1.0
        value = mixed[i, 0, 0, 0]
        j_candidates = [j for j in range(4) if np.isclose(value, lam * i + (1 - lam) * j, atol=1e-5)
                        or np.isclose(value, i, atol=1e-5)]
        assert j_candidates, (i, value, soft[i])
    # exact reconstruction with a fixed lam and permutation
    op = MixupOperator(class_num=3, alpha=1.0)
    perm = np.array([1, 0, 3, 2])
    m, s = op.mix(images, labels, 0.7, perm)
    np.testing.assert_allclose(m[0], 0.7 * images[0] + 0.3 * images[1])
    np.testing.assert_allclose(s[0], [0.7, 0.3, 0.0])
    np.testing.assert_allclose(s[2], [0.0, 0.3, 0.7])


def test_cutmix_soft_labels_equal_pasted_area():
    images, labels = _batch()
    np.random.seed(3)
    op = CutmixOperator(class_num=3, alpha=1.0)
    perm = np.array([1, 0, 3, 2])
    m, s = op.mix(images, labels, 0.6, perm)
    pasted = (m[0, 0] != images[0, 0]).mean()  # images 0 and 1 differ everywhere
    np.testing.assert_allclose(s[0], [1 - pasted, pasted, 0.0], atol=1e-6)
    assert np.allclose(s.sum(1), 1.0)


def test_op_sampler_picks_ops_by_probability():
    images, labels = _batch()
    random.seed(0)
    np.random.seed(0)
    sampler = OpSampler(class_num=3, MixupOperator={"alpha": 0.2, "prob": 0.5},
                        CutmixOperator={"alpha": 1.0, "prob": 0.5})
    for _ in range(5):
        _, soft = sampler(images, labels)
        assert soft.shape == (4, 3) and np.allclose(soft.sum(1), 1.0)
    half = OpSampler(class_num=3, MixupOperator={"alpha": 0.2, "prob": 0.0})
    img, soft = half(images, labels)  # prob 0: unmixed, one-hot
    np.testing.assert_array_equal(img, images)
    np.testing.assert_array_equal(soft, np.eye(3, dtype=np.float32)[labels])
    with pytest.raises(ValueError, match="sum to"):
        OpSampler(class_num=3, MixupOperator={"alpha": 0.2, "prob": 0.8}, CutmixOperator={"alpha": 1, "prob": 0.8})
    with pytest.raises(ValueError, match="unknown batch op"):
        build_batch_ops([{"FMix": {}}], 3)


# ---- datasets ------------------------------------------------------------------------------

def test_imagenet_dataset_reads_list_and_reports_missing(tmp_path, gradient_image):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    cv2.imwrite(str(root / "a" / "x.png"), gradient_image)
    (root / "list.txt").write_text("a/x.png 1\n")
    ds = ImageNetDataset(str(root), str(root / "list.txt"),
                         [{"DecodeImage": {}}, {"ResizeImage": {"size": 8}}, {"NormalizeImage": {"order": ""}}])
    img, label = ds[0]
    assert img.shape == (3, 8, 8) and img.dtype == np.float32 and int(label) == 1
    (root / "bad.txt").write_text("a/x.png 1\na/missing.png 0\n")
    with pytest.raises(DatasetNotFoundError, match="1 of 2 files.*missing.png"):
        ImageNetDataset(str(root), str(root / "bad.txt"))
    with pytest.raises(DatasetNotFoundError, match="(?s)image_root.*ILSVRC2012.*MixFormer_B0_digits"):
        ImageNetDataset(str(tmp_path / "nope"), str(tmp_path / "nope" / "train_list.txt"))


def test_digits_materialised_as_imagenet_layout(tmp_path):
    from ppvision_hybrid.data.digits import materialize_digits
    root = str(tmp_path / "digits")
    materialize_digits(root, verbose=False)
    train = open(os.path.join(root, "train_list.txt")).read().splitlines()
    val = open(os.path.join(root, "val_list.txt")).read().splitlines()
    assert len(train) + len(val) == 1797 and 340 <= len(val) <= 370
    assert not set(train) & set(val)
    labels = open(os.path.join(root, "label_list.txt")).read().splitlines()
    assert labels[3] == "3 three"
    rel, lab = train[0].split()
    img = cv2.imread(os.path.join(root, rel))
    assert img.shape == (8, 8, 3) and img.max() > 100
    mtime = os.path.getmtime(os.path.join(root, "label_list.txt"))
    materialize_digits(root, verbose=False)  # second call reuses the folder
    assert os.path.getmtime(os.path.join(root, "label_list.txt")) == mtime


# ---- PaddleClas's other ops ------------------------------------------------------------------

def _rgb(seed=0, size=32):
    return np.random.RandomState(seed).randint(0, 255, (size, size, 3)).astype(np.uint8)


def test_rand_crop_image_samples_as_paddleclas():
    """One aspect draw (uniform, or log-uniform with use_log_aspect), the area capped so the crop
    fits, then a uniform position: the crop equals the formula for the same random draws."""
    img = _rgb(size=40)
    for use_log in (False, True):
        random.seed(5)
        out = RandCropImage(size=[40, 40], scale=[0.3, 0.6], use_log_aspect=use_log, interpolation="nearest")(img)
        random.seed(5)
        lo, hi = 0.75, 4 / 3
        aspect = (np.exp(random.uniform(np.log(lo), np.log(hi))) if use_log else random.uniform(lo, hi))
        bound = min(1 / aspect, aspect)
        area = 1600 * random.uniform(min(0.3, bound), min(0.6, bound))
        w, h = int(np.sqrt(area * aspect)), int(np.sqrt(area / aspect))
        left, top = random.randint(0, 40 - w), random.randint(0, 40 - h)
        expected = cv2.resize(img[top:top + h, left:left + w], (40, 40), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(out, expected)


def test_decode_and_resize_with_the_pil_backend(gradient_image):
    data = _png_bytes(gradient_image)
    np.testing.assert_array_equal(DecodeImage(backend="pil")(data), gradient_image)
    np.testing.assert_array_equal(DecodeImage(backend="pil", to_rgb=False)(data), gradient_image[:, :, ::-1])
    from PIL import Image
    pil = DecodeImage(backend="pil", to_np=False)(data)
    assert isinstance(pil, Image.Image)
    out = ResizeImage(resize_short=20, interpolation="bicubic", backend="pil")(pil)
    assert isinstance(out, np.ndarray) and out.shape == (20, 30, 3)
    expected = np.asarray(Image.fromarray(gradient_image).resize((30, 20), Image.BICUBIC))
    np.testing.assert_array_equal(out, expected)
    random.seed(0)
    sizes = {ResizeImage(size=16, interpolation="random")(gradient_image).shape for _ in range(4)}
    assert sizes == {(16, 16, 3)}
    with pytest.raises(ValueError, match="unknown interpolation"):
        ResizeImage(size=16, interpolation="cubic")


def test_normalize_image_four_channels_fp16_and_chw_input():
    img = np.full((4, 5, 3), 255, np.uint8)
    out = NormalizeImage(scale=1 / 255, mean=[0, 0, 0], std=[1, 1, 1], order="", channel_num=4,
                         output_fp16=True)(img)
    assert out.shape == (4, 5, 4) and out.dtype == np.float16
    np.testing.assert_array_equal(out[..., 3], 0) and np.testing.assert_array_equal(out[..., :3], 1)
    chw = NormalizeImage(scale=1 / 255, mean=[0, 0, 0], std=[1, 1, 1], order="chw")(img.transpose(2, 0, 1))
    assert chw.shape == (3, 4, 5)  # CHW input (DecodeImage channel_first) stays CHW


def test_crop_image_at_ratio():
    img = _rgb(size=40)
    out = CropImageAtRatio(size=20, pad=5)(img[:, :30])  # crop 20/25 of the short side (30 -> 24)
    assert out.shape == (20, 20, 3)


@pytest.mark.parametrize("op", ["AutoAugment", "RandAugment", "RandAugmentV2", "RandAugmentV3"])
def test_policy_augmentations_change_images_and_keep_them_uint8(op):
    from ppvision_hybrid.data.policy_augment import POLICY_OPS
    random.seed(0)
    np.random.seed(0)
    aug = POLICY_OPS[op](**({"magnitude": 9} if op != "AutoAugment" else {}))
    img = _rgb()
    outs = [aug(img) for _ in range(12)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, img) for o in outs) >= 6
    if op != "AutoAugment":  # every op of the table runs at this magnitude
        from PIL import Image
        for name, magnitude in aug.levels.items():
            assert aug.ops[name](Image.fromarray(img), magnitude).size == (32, 32), name


def test_color_jitter_prob_and_pca_lighting():
    from ppvision_hybrid.data.policy_augment import ColorJitter, PCALighting
    img = _rgb()
    assert ColorJitter(prob=0.0, brightness=0.9)(img) is img
    random.seed(0)
    np.random.seed(0)
    assert not np.array_equal(ColorJitter(brightness=0.9, contrast=0.5)(img), img)
    np.random.seed(1)
    out = PCALighting()(img)
    offset = out - img.astype(np.float32)
    assert out.dtype == np.float32 and np.allclose(offset, offset[0, 0], atol=1e-4)  # one RGB shift
    assert 0 < np.abs(offset[0, 0]).max() < 0.5


def test_cutout_gridmask_hide_and_seek_on_hwc_and_chw():
    from ppvision_hybrid.data.policy_augment import Cutout, GridMask, HideAndSeek
    np.random.seed(0)
    random.seed(0)
    ones = np.ones((32, 32, 3), np.float32)
    out = Cutout(n_holes=1, length=8)(ones)
    assert (out == 0).all(axis=2).sum() <= 64 and (out == 0).any() and ones.all()
    zeros_per_channel = (Cutout(n_holes=1, length=8)(ones.transpose(2, 0, 1)) == 0).sum(axis=(1, 2))
    assert len(set(zeros_per_channel.tolist())) == 1  # CHW: the same square in every channel
    np.random.seed(1)
    masked = GridMask(d1=8, d2=16, rotate=1, ratio=0.5, mode=0, prob=1.0)(ones)
    kept = masked[..., 0].mean()
    assert 0.1 < kept < 0.6 and (masked == masked[..., :1]).all()  # about (1 - ratio)^2 kept
    chw = GridMask(d1=8, d2=16, ratio=0.5, prob=1.0)(ones.transpose(2, 0, 1))
    assert chw.shape == (3, 32, 32) and (chw == chw[:1]).all()
    assert GridMask(prob=0.0)(ones) is ones
    np.random.seed(2)
    hidden = [HideAndSeek()(ones) for _ in range(8)]
    assert any((h == 0).any() for h in hidden) and all(h.shape == ones.shape for h in hidden)


def test_random_erasing_rand_mode_is_one_value_per_channel():
    random.seed(0)
    np.random.seed(0)
    out = RandomErasing(EPSILON=1.0, sl=0.2, sh=0.3, mode="rand")(np.zeros((3, 32, 32), np.float32))
    for c in range(3):
        values = np.unique(out[c][out[c] != 0])
        assert len(values) == 1


# ---- samplers --------------------------------------------------------------------------------

class _Indexable:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def test_ra_sampler_repeats_every_image_across_ranks():
    from ppvision_hybrid.data import RASampler
    ds = _Indexable(512)
    seen = []
    for rank in range(2):
        sampler = RASampler(ds, batch_size=16, num_replicas=2, rank=rank, shuffle=True, num_repeats=3)
        sampler.set_epoch(1)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 512 // 2 // 16
        seen += [i for b in batches for i in b]
    # DeiT keeps floor(N/256)*256 / world samples per rank: here 256 each, the 3 copies of an
    # image sit next to each other, so the ranks see (mostly) the same images
    assert len(seen) == 512 and len(set(seen)) < 512
    with pytest.raises(ValueError, match="floor"):
        RASampler(_Indexable(100), batch_size=4)


def test_multi_scale_sampler_and_dataset(tmp_path):
    from ppvision_hybrid.data import MultiScaleDataset, MultiScaleSampler
    sampler = MultiScaleSampler(_Indexable(100), scales=[32, 16, 64], first_bs=8, divided_factor=16)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        w, h = batch[0][:2]
        assert all(item[:2] == (w, h) for item in batch)
        assert len(batch) == int(max(1, 32 * 32 * 8 / (w * h)))  # pixels per batch kept
    assert {b[0][0] for b in batches} <= {32, 16, 64}
    root = tmp_path / "ms"
    (root / "a").mkdir(parents=True)
    cv2.imwrite(str(root / "a" / "x.png"), _rgb(size=20))
    (root / "list.txt").write_text("a/x.png 0\n")
    ds = MultiScaleDataset(str(root), str(root / "list.txt"),
                           [{"DecodeImage": {}}, {"RandCropImage": {"size": 8}}, {"NormalizeImage": {"order": ""}}])
    assert ds[(24, 16, 0)][0].shape == (3, 16, 24) and ds[(8, 8, 0)][0].shape == (3, 8, 8)
    with pytest.raises(ValueError, match="RandCropImage, ResizeImage or CropImage"):
        MultiScaleDataset(str(root), str(root / "list.txt"), [{"DecodeImage": {}}])
