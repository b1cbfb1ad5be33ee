"""Real images: folders of mixed sizes and modes prepared at `data.image_size` (Pillow resize and
centre crop, train stored with a margin), channels, normalization, and strict decoding."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netadapt.config import DataConfig
from netadapt.data import load_info, load_split, prepare_data
from netadapt.data.checksums import Checksums
from netadapt.data.image_folder import class_images
from netadapt.data.jpeg import jpeg_problem, read_layout
from netadapt.data.pixels import center_crop, fit, open_image, resize_shorter, strict_decoding, to_channels
from netadapt.data.prepared import train_size
from netadapt.data.view import InputView
from netadapt.errors import DataError
from netadapt.training import batches, to_input


def _image(mode: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    w, h = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    return rgb.convert(mode)


# the sizes of the folder (24x24, 32x32, 40x30) and more, in every mode Pillow gives
MIXED = [("RGB", (24, 24), ".png"), ("L", (32, 32), ".png"), ("RGBA", (40, 30), ".png"),
         ("P", (30, 40), ".png"), ("I;16", (20, 28), ".png"), ("RGB", (50, 35), ".jpg")]


def _mixed_folder(root: Path, per_class: dict[str, int], first: int = 0) -> Path:
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                mode, size, suffix = MIXED[(first + i) % len(MIXED)]
                _image(mode, size, rng).save(folder / f"{i:02d}{suffix}")
    return root


def test_a_mixed_size_mixed_mode_folder_prepares_at_image_size(tmp_path):
    root = _mixed_folder(tmp_path / "photos", {"train": 12, "test": 6})
    assert {Image.open(p).mode for p in (root / "train" / "a").iterdir()} >= {"RGB", "L", "RGBA", "P", "I;16"}
    info = prepare_data(DataConfig(name="image-folder", root=str(root), image_size=16), 0, tmp_path / "prep")
    assert info.input_shape == (3, 16, 16) and info.train_size == train_size(16) == 18
    assert info.counts == {"train": 22, "holdout": 2, "test": 12}
    train, holdout, test = (load_split(tmp_path / "prep", s) for s in ("train", "holdout", "test"))
    assert train.images.shape == (22, 3, 18, 18), "train keeps the 8/7 margin random-resized crops draw from"
    assert holdout.images.shape == (2, 3, 16, 16) and test.images.shape == (12, 3, 16, 16)
    for split in (train, holdout, test):
        x, _ = next(batches(split, 8))
        assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32
        assert -1.0 <= float(x.min()) < float(x.max()) <= 1.0, "the default normalization: [-1, 1]"
    x, _ = next(batches(train, 8, stored=True))
    assert x.shape[1:] == (3, 18, 18), "what training's augmentation crops from"


def test_without_image_size_mixed_sizes_are_refused_naming_the_key(tmp_path):
    root = _mixed_folder(tmp_path / "photos", {"train": 6, "test": 2})
    with pytest.raises(DataError, match=r"differs from 24x24 of .*; set data.image_size"):
        prepare_data(DataConfig(name="image-folder", root=str(root)), 0, tmp_path / "prep")
    assert not (tmp_path / "prep").exists()


def test_centre_crop_takes_the_marked_centre():
    # 60x30: the shorter side is already 30, so the crop alone decides: columns 15..44 are marked
    pixels = np.zeros((30, 60), dtype=np.uint8)
    pixels[:, 15:45] = 255
    assert np.all(np.asarray(fit(Image.fromarray(pixels), 30)) == 255)
    assert np.asarray(fit(Image.fromarray(pixels), 30)).shape == (30, 30)
    # offsets round as torchvision's CenterCrop: (41 - 30) / 2 = 5.5 -> 6 (round half to even)
    odd = Image.fromarray(np.arange(41, dtype=np.uint8)[None].repeat(30, 0))
    assert np.asarray(center_crop(odd, 30))[0, 0] == 6


def test_resize_is_torchvision_resize_int_with_pillow_bilinear():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 80, 3), dtype=np.uint8))
    assert resize_shorter(img, 20).size == (40, 20)
    tall = Image.new("L", (30, 47))
    assert resize_shorter(tall, 16).size == (16, int(16 * 47 / 30))  # the longer side truncated, as Resize(int)
    expected = img.resize((40, 20), Image.Resampling.BILINEAR).crop((10, 0, 30, 20))
    assert np.array_equal(np.asarray(fit(img, 20)), np.asarray(expected))
    assert resize_shorter(img, 40) is img, "already at size: untouched"


def test_modes_convert_as_documented(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red everywhere; alpha 0, 255, 128, 0
    rgba[..., 3] = [[0, 255], [128, 0]]
    out = np.asarray(to_channels(Image.fromarray(rgba, "RGBA"), 3, tmp_path, False))
    assert out[0, 0].tolist() == [0, 0, 0], "transparent: composited on black"
    assert out[0, 1].tolist() == [200, 0, 0] and out[1, 0].tolist() == [100, 0, 0]
    sixteen = Image.fromarray(np.array([[0, 257 * 100], [65535, 257 * 7]], dtype=np.uint16))
    assert sixteen.mode == "I;16"
    assert np.asarray(to_channels(sixteen, 1, tmp_path, False)).tolist() == [[0, 100], [255, 7]], "scaled, not clipped"
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60])
    assert np.asarray(to_channels(palette, 3, tmp_path, False)).tolist() == [[[10, 20, 30], [40, 50, 60]]]
    gray = Image.fromarray(np.array([[7]], dtype=np.uint8), "L")
    assert np.asarray(to_channels(gray, 3, tmp_path, False)).tolist() == [[[7, 7, 7]]]
    colour = Image.fromarray(np.array([[[255, 0, 0]]], dtype=np.uint8))
    with pytest.raises(DataError, match="set data.channels: 3 to keep colour, or 1"):
        to_channels(colour, 1, tmp_path, False)
    assert np.asarray(to_channels(colour, 1, tmp_path, True)).tolist() == [[76]]  # ITU-R 601-2 luma


def test_channels_follow_the_first_image_or_data_channels(tmp_path):
    root = _mixed_folder(tmp_path / "photos", {"train": 6, "test": 2}, first=1)  # every class starts grayscale
    with pytest.raises(DataError, match="a colour image .* set data.channels"):
        prepare_data(DataConfig(name="image-folder", root=str(root), image_size=8), 0, tmp_path / "prep")
    info = prepare_data(DataConfig(name="image-folder", root=str(root), image_size=8, channels=1), 0, tmp_path / "p1")
    assert info.input_shape == (1, 8, 8) and load_split(tmp_path / "p1", "test").images.shape[1] == 1
    info = prepare_data(DataConfig(name="image-folder", root=str(root), image_size=8, channels=3), 0, tmp_path / "p3")
    assert info.input_shape == (3, 8, 8)


def test_idx_datasets_take_image_size_and_channels_too(tmp_path, idx_root):
    cfg = DataConfig(name="fashion-mnist", root=str(idx_root), image_size=12, channels=3)
    info = prepare_data(cfg, 0, tmp_path / "prep")
    assert info.input_shape == (3, 12, 12)
    assert load_split(tmp_path / "prep", "train").images.shape[1:] == (3, 14, 14)


def test_normalization_is_applied_and_recorded_for_later_stages(tmp_path):
    root = _mixed_folder(tmp_path / "photos", {"train": 6, "test": 2})
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    prepare_data(DataConfig(name="image-folder", root=str(root), image_size=8, mean=mean, std=std), 0, tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["mean"] == mean and meta["std"] == std and meta["train_size"] == 9
    assert load_info(tmp_path / "p").mean == mean
    test = load_split(tmp_path / "p", "test")
    images = test.images[torch.arange(4)]
    x = to_input(images, test.view)  # what `batches` gives for these samples
    expected = (images.double() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-5)
    with pytest.raises(DataError, match=r"data.mean: 2 values for images of 3 channel\(s\)"):
        prepare_data(DataConfig(name="image-folder", root=str(root), image_size=8, mean=[0.5, 0.5]), 0, tmp_path / "q")


def test_the_default_view_is_the_historic_scaling_to_minus_one_one():
    images = torch.randint(0, 256, (3, 2, 4, 4), dtype=torch.uint8)
    assert torch.equal(to_input(images), images.float().div(127.5).sub(1.0))
    one = InputView(mean=(0.25,), std=(0.5,))
    assert torch.allclose(one.normalize(images), (images.float() / 255 - 0.25) / 0.5)
    with pytest.raises(ValueError, match="3 normalization values for images of 2 channels"):
        InputView(mean=(0.1, 0.2, 0.3)).normalize(images)


def test_a_folder_inside_a_class_folder_is_named(tmp_path):
    folder = tmp_path / "cat"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "0.png")
    (folder / "album.jpg").mkdir()
    (folder / ".hidden").mkdir()
    with pytest.raises(DataError, match=r"album.jpg: a folder inside class folder cat; images must sit directly"):
        class_images(folder)
    (folder / "album.jpg").rmdir()
    assert class_images(folder) == [folder / "0.png"], "dot-entries are ignored"


def test_a_zero_byte_or_unknown_file_is_named_without_a_buffer_repr(tmp_path):
    empty, junk = tmp_path / "empty.jpg", tmp_path / "junk.png"
    empty.write_bytes(b"")
    junk.write_bytes(b"not an image at all")
    for path, said in ((empty, "empty file (0 bytes)"), (junk, "not a format Pillow recognises")):
        with pytest.raises(DataError) as info:
            open_image(path, Checksums(tmp_path, {}))
        assert str(info.value).startswith(f"{path}: ") and said in str(info.value)
        assert "BytesIO" not in str(info.value)


def _jpeg(seed: int = 0, size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_jpeg_structure_damage_is_named(tmp_path):
    good = _jpeg()
    assert jpeg_problem(good) == "" and jpeg_problem(b"\x89PNG") == ""
    mid = len(good) // 2
    stray = good[:mid] + b"\xff\x23" + good[mid + 2:]  # garbled bytes that form a marker inside the scan
    assert "stray marker 0xFF23 inside the scan data" in jpeg_problem(stray)
    assert "no end-of-image marker" in jpeg_problem(good[:mid])
    assert "runs past the end" in jpeg_problem(good[:40])
    path = tmp_path / "x.jpg"
    path.write_bytes(stray)
    with pytest.raises(DataError, match=rf"^{path}: damaged JPEG: a stray marker"):
        open_image(path, Checksums(tmp_path, {}))


def test_valid_jpegs_of_every_kind_pass_both_checks(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "ok.jpg"
    for k, options in enumerate([{}, {"progressive": True}, {"optimize": True}, {"restart_marker_blocks": 2},
                                 {"progressive": True, "restart_marker_blocks": 3}, {"subsampling": 0},
                                 {"quality": 100}, {"quality": 5}]):
        for mode in ("RGB", "L", "CMYK"):
            for flat in (False, True):  # noise, and a flat image (whose garbled codes decode as zeros)
                pixels = rng.integers(0, 256, (37 + k, 53, 3), dtype=np.uint8)
                if flat:
                    pixels[:] = 128
                buffer = io.BytesIO()
                Image.fromarray(pixels).convert(mode).save(buffer, "JPEG", **{"quality": 75, **options})
                assert jpeg_problem(buffer.getvalue()) == "", (mode, options)
                path.write_bytes(buffer.getvalue())
                open_image(path, Checksums(tmp_path, {})).close()


def _gradient_jpeg() -> tuple[bytes, int, int]:
    """A smooth 64x64 JPEG, the start and end of its scan data."""
    y, x = np.mgrid[0:64, 0:64]
    buffer = io.BytesIO()
    Image.fromarray(np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    sos = data.index(b"\xff\xda")
    return data, sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"), data.rindex(b"\xff\xd9")


def test_a_jpeg_whose_scan_runs_short_is_named(tmp_path):
    good, start, end = _gradient_jpeg()
    mid = (start + end) // 2
    garbled = good[:mid] + bytes(np.random.default_rng(0).integers(0, 255, 40, dtype=np.uint8)) + good[mid + 40:]
    cut = good[:end - 40] + b"\xff\xd9"  # the scan's last 40 bytes missing, the end marker kept
    for name, data in (("garbled.jpg", garbled), ("cut.jpg", cut)):
        assert jpeg_problem(data) == "", "no stray marker: Pillow alone decodes it without a word"
        with Image.open(io.BytesIO(data)) as img:
            img.load()
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError, match=rf"^{path}: damaged JPEG: Corrupt JPEG data: premature end of data "
                                            rf"segment \(garbled or missing bytes"):
            open_image(path, Checksums(tmp_path, {}))


def test_garbled_scan_data_in_photo_like_jpegs_is_refused(tmp_path):
    """The issue's case, 40 random bytes mid-scan, over 30 textured JPEGs of three sizes: Pillow decodes
    every one without a word; the marker check alone caught about one in six, with the "runs short"
    check under half. libjpeg's warnings (the strict decode) name each."""
    rng = np.random.default_rng(11)
    path = tmp_path / "photo.jpg"
    for k in range(30):
        height, width = [(48, 64), (96, 128), (120, 90)][k % 3]
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=[75, 90, 50][k % 3])
        good = buffer.getvalue()
        sos = good.index(b"\xff\xda")
        start, end = sos + 2 + int.from_bytes(good[sos + 2:sos + 4], "big"), good.rindex(b"\xff\xd9")
        mid = (start + end) // 2 - 20
        path.write_bytes(good[:mid] + rng.integers(0, 256, 40, dtype=np.uint8).tobytes() + good[mid + 40:])
        with pytest.raises(DataError, match=rf"^{path}: damaged JPEG: "):
            open_image(path, Checksums(tmp_path, {}))


def test_pillow_warnings_while_decoding_are_errors_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: a DecompressionBombWarning
    with pytest.warns(Image.DecompressionBombWarning):  # outside the strict context: a warning only
        open_image(path, Checksums(tmp_path, {})).close()
    with strict_decoding(), pytest.raises(DataError, match=rf"^{path}: cannot decode image: .*decompression bomb"):
        open_image(path, Checksums(tmp_path, {}))


def test_files_of_other_types_are_left_out_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "cat"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "0.png")
    Image.new("RGB", (4, 4)).save(folder / "1.gif")
    (folder / "notes.txt").write_text("x")
    with caplog.at_level("WARNING", logger="netadapt"):
        assert class_images(folder) == [folder / "0.png"]
    assert f"{folder}: 2 file(s) not *.jpg, *.jpeg or *.png left out (e.g. 1.gif)" in caplog.text
