"""Image-set index I/O and image loading from files, zip members and tar members."""

import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.core.io import to_rgb
from genbench.data.imageset import (
    ImageSetReader,
    class_counts,
    decode_image,
    load_image,
    read_index,
    split_path,
    write_index,
)


def png_bytes(color, size=(5, 4), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_store(tmp_path):
    """A directory with a plain file, a zip and a tar holding one image each, in data/."""
    data = tmp_path / "data"
    (data / "loose").mkdir(parents=True)
    (data / "loose" / "red.png").write_bytes(png_bytes((255, 0, 0)))
    with zipfile.ZipFile(data / "a.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("sub/green.png", png_bytes((0, 255, 0)))
    with tarfile.open(data / "b.tar", "w") as archive:
        for name, color in [("x/blue.png", (0, 0, 255)), ("x/gray.png", 128)]:
            payload = png_bytes(color, mode="RGB" if isinstance(color, tuple) else "L")
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return data


def test_round_trip_and_loading_from_file_zip_tar(image_store):
    records = [
        {"id": "r", "path": "loose/red.png", "label": 0, "prompt": "a red thing"},
        {"id": "g", "path": "a.zip@sub/green.png", "label": [1, 2]},
        {"id": "b", "path": "b.tar@x/blue.png", "label": 2},
        {"id": "k", "path": "b.tar@x/gray.png", "label": 1},
    ]
    index = image_store / "set.jsonl"
    write_index(index, records)
    assert read_index(index) == records
    reader = ImageSetReader(index)
    assert len(reader) == 4
    expected = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)]
    for i, color in enumerate(expected):
        image = reader.load(i)
        assert image.mode == "RGB" and image.size == (5, 4)
        assert image.getpixel((2, 2)) == color
    assert reader.open_bytes(records[1]) == png_bytes((0, 255, 0))
    reader.close()


def test_paths_resolve_relative_to_index_from_another_directory(image_store, tmp_path):
    other = tmp_path / "elsewhere" / "deeper"
    other.mkdir(parents=True)
    index = other / "images.jsonl"
    records = [
        {"id": "g", "path": "../../data/a.zip@sub/green.png", "label": 0},
        {"id": "b", "path": "../../data/b.tar@x/blue.png", "label": 0},
        {"id": "r", "path": "../../data/loose/red.png", "label": 0},
    ]
    write_index(index, records)
    cwd = os.getcwd()
    try:
        os.chdir(image_store / "loose")  # the working directory must not matter
        assert load_image(index, records[0]).getpixel((0, 0)) == (0, 255, 0)
        assert load_image(index, records[1]).getpixel((0, 0)) == (0, 0, 255)
        assert load_image(index, records[2]).getpixel((0, 0)) == (255, 0, 0)
    finally:
        os.chdir(cwd)


def test_reader_is_picklable_and_reopens_archives(image_store):
    index = image_store / "set.jsonl"
    write_index(
        index,
        [{"id": "g", "path": "a.zip@sub/green.png", "label": 0}, {"id": "b", "path": "b.tar@x/blue.png", "label": 0}],
    )
    reader = ImageSetReader(index)
    reader.load(0), reader.load(1)  # opens both archive handles
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.load(1).getpixel((0, 0)) == (0, 0, 255)
    assert clone.load(0).getpixel((0, 0)) == (0, 255, 0)
    reader.close(), clone.close()


def test_malformed_line_error_names_file_and_line(tmp_path):
    index = tmp_path / "bad.jsonl"
    index.write_text('{"id": "a", "path": "a.png", "label": 0}\n{"id": "b", "path": \n')
    with pytest.raises(GenBenchError, match=r"bad\.jsonl, line 2: malformed JSON"):
        read_index(index)


def test_missing_key_and_duplicate_id_errors(tmp_path):
    index = tmp_path / "idx.jsonl"
    index.write_text('{"id": "a", "path": "a.png"}\n')
    with pytest.raises(GenBenchError, match=r"idx\.jsonl, line 1: missing key\(s\) label"):
        read_index(index)
    index.write_text('{"id": "a", "path": "a.png", "label": 0}\n\n{"id": "a", "path": "b.png", "label": 1}\n')
    with pytest.raises(GenBenchError, match=r"line 3: duplicate id 'a' \(first on line 1\)"):
        read_index(index)
    index.write_text('{"id": "a", "path": "a.png", "label": "cat"}\n')
    with pytest.raises(GenBenchError, match="label"):
        read_index(index)


def test_missing_member_and_undecodable_image_errors(image_store):
    index = image_store / "set.jsonl"
    records = [
        {"id": "m", "path": "a.zip@sub/none.png", "label": 0},
        {"id": "t", "path": "b.tar@x/none.png", "label": 0},
        {"id": "f", "path": "loose/none.png", "label": 0},
        {"id": "junk", "path": "junk.png", "label": 0},
    ]
    (image_store / "junk.png").write_bytes(b"not an image at all")
    write_index(index, records)
    reader = ImageSetReader(index)
    with pytest.raises(GenBenchError, match=r"sub/none\.png.*a\.zip"):
        reader.load(0)
    with pytest.raises(GenBenchError, match=r"x/none\.png.*b\.tar"):
        reader.load(1)
    with pytest.raises(GenBenchError, match=r"none\.png"):
        reader.load(2)
    with pytest.raises(GenBenchError, match=r"cannot decode image junk\.png"):
        reader.load(3)


def test_write_index_is_atomic_and_validates(tmp_path):
    index = tmp_path / "out" / "x.jsonl"
    write_index(index, [{"id": "a", "path": "a.png", "label": 1}])
    with pytest.raises(GenBenchError, match="duplicate id"):
        write_index(index, [{"id": "a", "path": "a.png", "label": 1}] * 2)
    # the failed write left the old index intact and no temporary file behind
    assert read_index(index) == [{"id": "a", "path": "a.png", "label": 1}]
    assert os.listdir(index.parent) == ["x.jsonl"]
    lines = index.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": "a", "path": "a.png", "label": 1}]


def test_split_path_and_class_counts():
    assert split_path("a/b.zip@c/d.png") == ("zip", "a/b.zip", "c/d.png")
    assert split_path("x.tar@y@z.png") == ("tar", "x.tar", "y@z.png")
    assert split_path("plain/f@1.png") == ("file", "plain/f@1.png", None)
    records = [{"label": 0}, {"label": [0, 2]}, {"label": 2}, {"label": []}]
    labels = np.zeros(3, dtype=int)
    for record in records:
        for label in np.atleast_1d(record["label"]).astype(int):
            labels[label] += 1
    assert class_counts(records, 3) == labels.tolist() == [2, 0, 2]
    with pytest.raises(GenBenchError, match="label 3 outside 0..2"):
        class_counts([{"id": "q", "label": 3}], 3)


def _png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_16_bit_png_decodes_to_the_pixels_of_its_8_bit_original():
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    sixteen = _png(pixels.astype(np.uint16) * 257)  # v * 65535 / 255: the same picture in 16 bits
    assert Image.open(io.BytesIO(sixteen)).mode.startswith("I;16")
    decoded = np.asarray(decode_image(sixteen, "deep.png"))
    assert decoded.shape == (8, 8, 3)
    assert np.array_equal(decoded[..., 0], pixels)
    assert np.array_equal(decoded, np.asarray(decode_image(_png(pixels), "x")))


def test_a_float_image_maps_zero_to_one_onto_the_8_bit_range():
    levels = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4)
    rgb = np.asarray(to_rgb(Image.fromarray(levels, mode="F")))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and np.array_equal(rgb[..., 0], np.rint(levels * 255))


def test_bad_bytes_are_named_by_file_never_by_a_python_object():
    with pytest.raises(GenBenchError) as err:
        decode_image(b"not an image", "folder/cat.png")
    assert "folder/cat.png" in str(err.value) and "object at 0x" not in str(err.value)


def test_an_image_over_the_pixel_limit_is_refused_not_warned_about(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40 x 40 = 1600: Pillow only warns below 2000
    with pytest.raises(GenBenchError, match="huge.png: more than 1,000 pixels"):
        decode_image(_png(np.zeros((40, 40), np.uint8)), "huge.png")
