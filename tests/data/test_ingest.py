"""Ingest: every input kind, every kind of bad input, and nothing written into DATA."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from steadyval.audit import audit
from steadyval.data import load_dataset
from steadyval.errors import DataError
from tests.conftest import findings_of, tree_state


def _png(path: Path, value: int = 128, size: int = 40, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    if mode == "RGBA":
        arr = rng.integers(0, 255, (size, size, 4), dtype=np.uint8)
    elif mode == "I;16":
        arr = rng.integers(0, 65535, (size, size), dtype=np.uint16)
    else:
        arr = rng.integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _class_folder(root: Path, classes: tuple[str, ...] = ("neg", "pos"), n: int = 12) -> Path:
    for c in classes:
        for i in range(n):
            _png(root / c / f"{c}_{i}.png", value=i + 7 * len(c))
    return root


def test_folder_of_classes_gets_a_grouped_split_and_says_so(tmp_path: Path) -> None:
    ds = load_dataset(_class_folder(tmp_path / "data"))
    assert ds.classes == ("neg", "pos") and ds.positive == "pos"
    assert set(ds.records["split"]) == {"train", "val"}
    assert ds.split_generated and "No split was given" in ds.notes[0]
    assert ds.images.shape == (24, 1, 64, 64) and ds.images.dtype == np.uint8


def test_split_folders_and_aliases(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _class_folder(root / "train")
    _class_folder(root / "valid", n=4)
    _class_folder(root / "test", n=3)
    ds = load_dataset(root)
    assert ds.records["split"].value_counts().to_dict() == {"train": 24, "val": 8, "test": 6}
    assert not ds.split_generated


def test_positive_option_and_its_error(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "data")
    assert load_dataset(root, positive="neg").positive == "neg"
    with pytest.raises(DataError, match=r"--positive.*Did you mean 'pos'"):
        load_dataset(root, positive="poss")


@pytest.mark.parametrize("classes", [("only",), ("a", "b", "c")])
def test_one_or_three_classes_is_a_clear_error(tmp_path: Path, classes: tuple[str, ...]) -> None:
    with pytest.raises(DataError, match=r"exactly two classes.*Got \d class"):
        load_dataset(_class_folder(tmp_path / "data", classes))


def test_bad_files_become_unreadable_findings_and_the_run_goes_on(tmp_path: Path) -> None:
    root = _class_folder(tmp_path / "data")
    (root / "neg" / "empty.png").write_bytes(b"")
    good = (root / "neg" / "neg_0.png").read_bytes()
    (root / "pos" / "truncated.png").write_bytes(good[: len(good) // 3])
    (root / "pos" / "fake.jpg").write_text("not an image")
    (root / "pos" / "notes.txt").write_text("hello")
    result = audit(root)
    assert result.dataset.n == 24
    finding = findings_of(result, "data.unreadable")[0]
    reasons = {f["path"]: f["reason"] for f in finding.evidence["files"]}
    assert set(reasons) == {"neg/empty.png", "pos/truncated.png", "pos/fake.jpg", "pos/notes.txt"}
    assert "0 bytes" in reasons["neg/empty.png"]
    assert "not an image" in reasons["pos/notes.txt"]


def test_sixteen_bit_rgba_tiff_and_mixed_modes_are_normalised(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(6):
        _png(root / "neg" / f"g16_{i}.png", value=i, mode="I;16")
        _png(root / "pos" / f"rgba_{i}.png", value=i, mode="RGBA")
        arr = np.random.default_rng(i).integers(0, 65535, (30, 50), dtype=np.uint16)
        (root / "neg").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / "neg" / f"t16_{i}.tif")
        Image.fromarray(arr[:, :, None].repeat(3, 2).astype(np.uint8)).save(root / "pos" / f"j_{i}.jpg")
    ds = load_dataset(root)
    assert ds.n == 24 and not ds.unreadable
    assert ds.images.shape[1] == 3  # RGBA content is colour: the dataset keeps 3 channels
    assert set(ds.properties["bit_depth"]) == {8, 16}
    tif = ds.records["path"].str.endswith(".tif").to_numpy()
    assert (ds.properties.loc[tif, "width"] == 50).all()


def test_dicom_tags_become_metadata(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    root = tmp_path / "data"
    for i in range(8):
        label, maker = ("neg", "AcmeRay") if i % 2 else ("pos", "RayCorp")
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = generate_uid()
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        arr = np.random.default_rng(i).integers(0, 4095, (48, 40), dtype=np.uint16)
        ds.Rows, ds.Columns = arr.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Manufacturer, ds.ViewPosition = maker, "PA"
        ds.PixelData = arr.tobytes()
        (root / label).mkdir(parents=True, exist_ok=True)
        pydicom.dcmwrite(root / label / f"im{i}.dcm", ds, enforce_file_format=True)
    loaded = load_dataset(root)
    assert not loaded.unreadable
    assert "dicom_Manufacturer" in loaded.metadata
    assert set(loaded.records["dicom_Manufacturer"]) == {"AcmeRay", "RayCorp"}
    assert (loaded.properties["height"] == 48).all()


def _manifest(tmp_path: Path, rows: list[dict], name: str = "m.csv") -> Path:
    root = _class_folder(tmp_path / "data")
    path = root / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _rows(n: int = 12) -> list[dict]:
    return ([{"path": f"neg/neg_{i}.png", "label": "neg", "site": "A"} for i in range(n)]
            + [{"path": f"pos/pos_{i}.png", "label": "pos", "site": "B"} for i in range(n)])


def test_manifest_with_missing_files_and_unknown_columns(tmp_path: Path) -> None:
    rows = _rows() + [{"path": "pos/gone.png", "label": "pos", "site": "B"}]
    for r in rows:
        r["scanner_serial_weird"] = "x1"
    result = audit(_manifest(tmp_path, rows))
    assert result.dataset.n == 24
    assert "scanner_serial_weird" in result.dataset.metadata
    finding = findings_of(result, "data.unreadable")[0]
    assert finding.evidence["files"] == [{"path": "pos/gone.png", "reason": "file not found"}]


@pytest.mark.parametrize(("rows", "message"), [
    ([{"file": "neg/neg_0.png", "label": "neg"}], r"needs the columns 'path' and 'label'"),
    ([{"path": "neg/neg_0.png", "label": ""}, {"path": "pos/pos_0.png", "label": "pos"}],
     r"every row needs a label.*CSV line 2"),
    ([{"path": "neg/neg_0.png", "label": "neg", "split": "training-set"}], r"values must be train, val or test"),
])
def test_bad_manifests_are_clear_errors(tmp_path: Path, rows: list[dict], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(_manifest(tmp_path, rows))


def test_metadata_named_like_a_record_field_keeps_its_values_apart(tmp_path: Path) -> None:
    # The IDC manifest has label 0/1 and a 'label_name' column; a 'group' column can sit beside
    # the patient column that --group names. Neither may replace the labels or the groups.
    rows = [dict(r, label="1" if r["label"] == "pos" else "0", label_name="IDC" if r["label"] == "pos" else "non-IDC",
                 patient="p" + str(i // 2), group="batch" + str(i % 3), file="x.png")
            for i, r in enumerate(_rows())]
    ds = load_dataset(_manifest(tmp_path, rows), group="patient")
    assert ds.classes == ("0", "1") and ds.positive == "1"
    assert list(ds.records["group"]) == ["p" + str(i // 2) for i in range(24)]
    assert list(ds.records["label"]) == [0] * 12 + [1] * 12
    assert {"manifest_label_name", "manifest_group", "manifest_file"} <= set(ds.metadata)
    assert ds.records["manifest_label_name"].iloc[-1] == "IDC"
    assert ds.records["file"].str.endswith(".png").all() and not (ds.records["file"] == "x.png").any()


def test_group_option_names_a_column_or_suggests_one(tmp_path: Path) -> None:
    rows = [dict(r, patient="p" + str(i // 2)) for i, r in enumerate(_rows())]
    path = _manifest(tmp_path, rows)
    assert load_dataset(path, group="patient").group_column == "patient"
    with pytest.raises(DataError, match=r"Did you mean 'patient'"):
        load_dataset(path, group="patiant")


def test_npz_with_wrong_keys_and_flat_labels(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 28, 28), np.uint8), y=np.zeros(4))
    with pytest.raises(DataError, match=r"MedMNIST layout.*keys \['x', 'y'\]"):
        load_dataset(bad)
    good = tmp_path / "good.npz"
    rng = np.random.default_rng(0)
    np.savez(good, train_images=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
             train_labels=np.arange(20) % 2, val_images=rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
             val_labels=(np.arange(6) % 2)[:, None])
    ds = load_dataset(good)
    assert ds.kind == "npz" and ds.n == 26 and ds.classes == ("0", "1")
    assert ds.records["path"].iat[0] == "train_images[0]"


def test_not_a_dataset_at_all(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"must be a folder, a manifest \.csv"):
        load_dataset(tmp_path / "x.txt")
    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="readable .npz"):
        load_dataset(tmp_path / "garbage.npz")


def test_nothing_is_written_inside_the_data_folder(tmp_path: Path, make_synthetic) -> None:
    synthetic = make_synthetic(corrupt=3, duplicates=4)
    data = synthetic.path.parent
    before = tree_state(data)
    audit(synthetic.path, cache_dir=tmp_path / "cache")
    audit(synthetic.path, cache_dir=tmp_path / "cache")  # cached re-run too
    assert tree_state(data) == before
    with pytest.raises(DataError, match="outside the data folder"):
        load_dataset(synthetic.path, cache_dir=data / "cache")


def test_rerun_decodes_only_new_or_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import steadyval.data.ingest as ingest

    root = _class_folder(tmp_path / "data")
    first = load_dataset(root, cache_dir=tmp_path / "c")
    calls: list[str] = []
    real = ingest._decode_one
    monkeypatch.setattr(ingest, "_decode_one", lambda args: calls.append(args[0]) or real(args))
    again = load_dataset(root, cache_dir=tmp_path / "c")
    assert calls == [] and np.array_equal(first.images, again.images)
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 40), 9, np.uint8)).save(buf, format="PNG")
    (root / "pos" / "pos_3.png").write_bytes(buf.getvalue())
    load_dataset(root, cache_dir=tmp_path / "c")
    assert [Path(c).name for c in calls] == ["pos_3.png"]
