"""Bad dataset files through `netadapt prepare`: exit 2 with one line naming the file or key, and
nothing half-written (reading the datasets: tests/netadapt/data/test_datasets.py)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from PIL import Image

from netadapt_flows.cli import main
from tests.conftest import write_idx, write_sha256sums


def _prepare_error(capsys, tmp_path: Path, name: str, root: Path, *extra: str) -> str:
    code = main(["prepare", "-S", f"data.name={name}", "-S", f"data.root={root}", *extra,
                 "--artifacts", str(tmp_path / "art"), "--metrics", str(tmp_path / "met")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("netadapt: error: ") and err.count("\n") == 1
    assert not (tmp_path / "art").exists(), "nothing half-written"
    return err


def _gz(path: Path, content: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(content)


def test_missing_directory(capsys, tmp_path):
    err = _prepare_error(capsys, tmp_path, "fashion-mnist", tmp_path / "nowhere")
    assert f"data.root: folder not found: {tmp_path / 'nowhere'}" in err


def test_missing_file(capsys, tmp_path, idx_root):
    (idx_root / "t10k-labels-idx1-ubyte.gz").unlink()
    err = _prepare_error(capsys, tmp_path, "fashion-mnist", idx_root, "-S", "data.verify_checksums=false")
    assert f"{idx_root / 't10k-labels-idx1-ubyte.gz'}: file not found" in err


def test_wrong_magic_number(capsys, tmp_path):
    root = tmp_path / "d"
    write_idx(root, "t10k", 20)
    _gz(root / "t10k-images-idx3-ubyte.gz", struct.pack(">IIII", 2049, 20, 28, 28) + bytes(20 * 784))
    err = _prepare_error(capsys, tmp_path, "fashion-mnist-t10k", root)
    assert f"{root / 't10k-images-idx3-ubyte.gz'}: wrong magic number 2049, expected 2051" in err


def test_truncated_payload(capsys, tmp_path):
    root = tmp_path / "d"
    write_idx(root, "t10k", 20)
    _gz(root / "t10k-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 20, 28, 28) + bytes(19 * 784))
    err = _prepare_error(capsys, tmp_path, "fashion-mnist-t10k", root)
    assert f"{root / 't10k-images-idx3-ubyte.gz'}: truncated: header promises 20 images of 28x28" in err


def test_truncated_gzip_file(capsys, tmp_path):
    root = tmp_path / "d"
    write_idx(root, "t10k", 20)
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    err = _prepare_error(capsys, tmp_path, "fashion-mnist-t10k", root)
    assert f"{path}: truncated gzip stream" in err


def test_checksum_mismatch(capsys, tmp_path, idx_root):
    write_idx(idx_root, "train", 200, seed=99)  # different content, manifest unchanged
    err = _prepare_error(capsys, tmp_path, "fashion-mnist", idx_root)
    assert f"{idx_root / 'train-images-idx3-ubyte.gz'}: checksum mismatch" in err


def test_file_missing_from_manifest(capsys, tmp_path, folder_root):
    extra = folder_root / "train" / "cat" / "0010.png"
    extra.write_bytes((folder_root / "train" / "cat" / "0000.png").read_bytes())
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root)
    assert f"{folder_root / 'train/cat/0010.png'}: not listed in" in err


def test_label_count_differs_from_image_count(capsys, tmp_path):
    root = tmp_path / "d"
    write_idx(root, "t10k", 20)
    _gz(root / "t10k-labels-idx1-ubyte.gz", struct.pack(">II", 2049, 19) + bytes(19))
    err = _prepare_error(capsys, tmp_path, "fashion-mnist-t10k", root)
    assert f"{root / 't10k-labels-idx1-ubyte.gz'}: 19 labels for 20 images" in err


def test_train_and_test_class_folders_differ(capsys, tmp_path, folder_root):
    (folder_root / "test" / "owl").rename(folder_root / "test" / "own")
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.verify_checksums=false")
    assert f"{folder_root / 'test'}: class folders differ from {folder_root / 'train'}" in err
    assert "missing ['owl'], extra ['own']" in err


def test_undecodable_image(capsys, tmp_path, folder_root):
    bad = folder_root / "train" / "dog" / "0003.png"
    bad.write_bytes(b"this is not a png")
    write_sha256sums(folder_root)
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root)
    assert f"{bad}: cannot decode image" in err


def test_empty_class(capsys, tmp_path, folder_root):
    for image in (folder_root / "train" / "owl").iterdir():
        image.unlink()
    write_sha256sums(folder_root)
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root)
    assert f"{folder_root / 'train' / 'owl'}: class folder has no images" in err


def test_image_of_another_size(capsys, tmp_path, folder_root):
    odd = folder_root / "train" / "dog" / "0004.png"
    Image.new("RGB", (9, 9)).save(odd)
    write_sha256sums(folder_root)
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root)
    assert f"{odd}: image size 9x9 differs from 8x8 of {folder_root / 'train/cat/0000.png'}" in err
    assert "set data.image_size" in err


def test_class_too_small_to_carve_a_holdout(capsys, tmp_path, folder_root):
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.holdout_fraction=0.01")
    assert "data.holdout_fraction: class 0 has 10 samples, too few" in err


def test_failed_prepare_keeps_earlier_results(tmp_path, idx_root, capsys):
    args = ["--artifacts", str(tmp_path / "art"), "--metrics", str(tmp_path / "met")]
    assert main(["prepare", "-S", "data.name=fashion-mnist", "-S", f"data.root={idx_root}", *args]) == 0
    before = (tmp_path / "art" / "prepared" / "train.pt").read_bytes()
    assert main(["prepare", "-S", "data.name=fashion-mnist", "-S", f"data.root={tmp_path / 'x'}", *args]) == 2
    assert (tmp_path / "art" / "prepared" / "train.pt").read_bytes() == before
    left = sorted(p.name for p in (tmp_path / "art").iterdir() if p.name != ".stamps")
    assert left == ["prepared", "reports"], "no temp folders left"


def test_a_folder_of_photos_of_mixed_sizes_and_modes_prepares_at_image_size(capsys, tmp_path):
    """The issue's folder (24x24, 32x32, 40x30), in RGB, L, RGBA and palette, JPEG and PNG."""
    import json

    root = tmp_path / "photos"
    kinds = [("RGB", (24, 24), ".jpg"), ("L", (32, 32), ".png"), ("RGBA", (40, 30), ".png"), ("P", (30, 40), ".png")]
    for split, n in (("train", 8), ("test", 4)):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                mode, size, suffix = kinds[i % 4]
                Image.new("RGB", size, (40 * i, 100, 200)).convert(mode).save(root / split / name / f"{i}{suffix}")
    args = ["prepare", "-S", "data.name=image-folder", "-S", f"data.root={root}", "-S", "data.image_size=16",
            "-S", "data.mean=[0.485, 0.456, 0.406]", "-S", "data.std=[0.229, 0.224, 0.225]",
            "--artifacts", str(tmp_path / "art"), "--metrics", str(tmp_path / "met")]
    assert main(args) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "art" / "prepared" / "meta.json").read_text())
    assert meta["input_shape"] == [3, 16, 16] and meta["train_size"] == 18 and meta["std"] == [0.229, 0.224, 0.225]


def test_a_directory_named_like_an_image_in_a_class_folder_is_named(capsys, tmp_path, folder_root):
    album = folder_root / "train" / "dog" / "album.jpg"
    album.mkdir()
    Image.new("RGB", (8, 8)).save(album / "0.png")
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.verify_checksums=false")
    assert f"{album}: a folder inside class folder dog; images must sit directly in" in err


def test_a_sub_folder_of_images_in_a_class_folder_is_not_skipped_unsaid(capsys, tmp_path, folder_root):
    nested = folder_root / "test" / "cat" / "more"
    nested.mkdir()
    Image.new("RGB", (8, 8)).save(nested / "0.png")
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.verify_checksums=false")
    assert f"{nested}: a folder inside class folder cat" in err


def test_a_zero_byte_image_is_named(capsys, tmp_path, folder_root):
    empty = folder_root / "train" / "owl" / "0002.png"
    empty.write_bytes(b"")
    write_sha256sums(folder_root)
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root)
    assert f"{empty}: empty file (0 bytes), not an image" in err and "BytesIO" not in err


def test_a_jpeg_garbled_mid_scan_is_named(capsys, tmp_path):
    """40 garbled bytes in the middle of a JPEG's scan data: Pillow decodes it without a word; the
    scan then runs out before the image does: libjpeg warns (the strict decode), `prepare` names it."""
    import io

    import numpy as np

    from tests.conftest import write_folders

    root = tmp_path / "jpegs"
    write_folders(root, ["cat", "dog"], {"train": 6, "test": 2}, size=64, suffix=".jpg")
    bad = root / "train" / "dog" / "0003.jpg"
    y, x = np.mgrid[0:64, 0:64]
    buffer = io.BytesIO()
    Image.fromarray(np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    sos = data.index(b"\xff\xda")
    start, end = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"), data.rindex(b"\xff\xd9")
    mid = (start + end) // 2
    bad.write_bytes(data[:mid] + bytes(np.random.default_rng(0).integers(0, 255, 40, dtype=np.uint8))
                    + data[mid + 40:])
    err = _prepare_error(capsys, tmp_path, "image-folder", root)
    assert f"{bad}: damaged JPEG: Corrupt JPEG data: premature end of data segment" in err


def test_a_jpeg_with_a_stray_marker_in_its_scan_is_named(capsys, tmp_path):
    from tests.conftest import write_folders

    root = tmp_path / "jpegs"
    write_folders(root, ["cat", "dog"], {"train": 6, "test": 2}, size=32, suffix=".jpg")
    bad = root / "train" / "dog" / "0003.jpg"
    data = bytearray(bad.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 40] = bytes(range(100, 140))  # 40 garbled bytes, among them a pair that no scan data may hold
    data[mid + 7:mid + 9] = b"\xff\x47"
    bad.write_bytes(bytes(data))
    err = _prepare_error(capsys, tmp_path, "image-folder", root)
    assert f"{bad}: damaged JPEG: a stray marker 0xFF47 inside the scan data" in err


def test_normalization_keys_are_checked(capsys, tmp_path, folder_root):
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.std=[0.2, 0, 0.2]")
    assert "data.std: every value must be > 0" in err
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.mean=0.5")
    assert "data.mean: must be a list, got 0.5" in err
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.mean=[0.5, 0.5]")
    assert "data.mean: 2 values for images of 3 channel(s)" in err
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.image_size=2")
    assert "data.image_size: must be >= 4, got 2" in err
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.mean=[0.5, .nan, 0.5]")
    assert "data.mean.1: must be a finite number, got nan" in err
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.channels=2")
    assert "data.channels: must be one of 1, 3, got 2" in err
    err = _prepare_error(capsys, tmp_path, "image-folder", folder_root, "-S", "data.channels=1",
                         "-S", "data.std=[0.2, 0.2, 0.2]")
    assert "data.std: 3 values, expected 1 (data.channels: 1)" in err
