"""Image / PointCloud2 codecs on message stand-ins: no rclpy and no message module here."""

from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ad_perception.core.sensor_codecs import (
    IMAGE_ENCODINGS,
    MAX_ELEMENTS,
    POINT_FIELD_DTYPES,
    ConversionError,
    FieldLayout,
    drop_non_finite,
    encode_image,
    encode_pointcloud,
    image_to_array,
    pointcloud_to_columns,
    pointcloud_to_core,
    pointcloud_to_structured,
)
from ad_perception.core.types import PointCloud

HOST_ORDER = ">" if sys.byteorder == "big" else "<"
REQUIRED_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1"]
COLOR_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]


def bits(values: np.ndarray) -> np.ndarray:
    """Bit patterns of native values, so NaN payloads compare exactly."""
    return values.view(f"u{values.dtype.itemsize}") if values.dtype.kind == "f" else values


def native_from_bytes(raw: bytes, dtype: np.dtype, order: str) -> np.ndarray:
    """The values of ``raw`` in byte order ``order``, as a native array (pure byte swap)."""
    values = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).copy()
    if order != HOST_ORDER:
        values = values.byteswap()
    return values


def as_container(payload: bytes, kind: str):
    """``data`` as rclpy (array.array), rosbags (numpy uint8) or plain bytes would hold it."""
    return {
        "bytes": payload,
        "array": array.array("B", payload),
        "numpy": np.frombuffer(payload, np.uint8).copy(),
    }[kind]


# --------------------------------------------------------------------------- images


@st.composite
def padded_images(draw):
    encoding = draw(st.sampled_from(sorted(IMAGE_ENCODINGS)))
    dtype, channels = IMAGE_ENCODINGS[encoding]
    height, width = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    padding = draw(st.integers(0, 9))
    order = draw(st.sampled_from("<>"))
    row_bytes = width * channels * dtype.itemsize
    rows = [draw(st.binary(min_size=row_bytes, max_size=row_bytes)) for _ in range(height)]
    data = b"".join(row + b"\xab" * padding for row in rows)
    msg = SimpleNamespace(
        height=height, width=width, encoding=encoding, is_bigendian=int(order == ">"),
        step=row_bytes + padding, data=as_container(data, draw(st.sampled_from(
            ["bytes", "array", "numpy"]))),
    )  # fmt: skip
    expected = native_from_bytes(b"".join(rows), dtype, order).reshape(height, width, channels)
    return msg, expected[:, :, 0] if channels == 1 else expected


@settings(derandomize=True, max_examples=200, deadline=None)
@given(padded_images())
def test_image_decoding_matches_an_independent_byte_reading(case):
    msg, expected = case
    pixels = image_to_array(msg)
    assert pixels.shape == expected.shape and pixels.dtype == expected.dtype
    assert pixels.dtype.isnative
    np.testing.assert_array_equal(bits(pixels), bits(expected))


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    encoding=st.sampled_from(sorted(IMAGE_ENCODINGS)),
    height=st.integers(0, 6),
    width=st.integers(0, 6),
    order=st.sampled_from("<>="),
    seed=st.integers(0, 2**32 - 1),
)
def test_encode_then_decode_round_trips(encoding, height, width, order, seed):
    dtype, channels = IMAGE_ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    raw = np.random.default_rng(seed).bytes(int(np.prod(shape)) * dtype.itemsize)
    pixels = np.frombuffer(raw, dtype.newbyteorder(order)).reshape(shape)
    payload = encode_image(pixels, encoding)
    assert payload.step == width * channels * dtype.itemsize
    decoded = image_to_array(SimpleNamespace(**vars(payload)))
    assert decoded.shape == shape
    native = pixels.astype(dtype.newbyteorder("="))
    np.testing.assert_array_equal(bits(decoded), bits(native))


@pytest.mark.parametrize("encoding", REQUIRED_ENCODINGS)
def test_required_encodings_decode_with_cv_bridge_shapes(encoding):
    dtype, channels = IMAGE_ENCODINGS[encoding]
    shape = (3, 5) if channels == 1 else (3, 5, channels)
    pixels = (np.arange(np.prod(shape)) * 7 % 251).astype(dtype).reshape(shape)
    decoded = image_to_array(SimpleNamespace(**vars(encode_image(pixels, encoding))))
    np.testing.assert_array_equal(decoded, pixels)
    assert decoded.shape == shape and decoded.dtype == dtype


@pytest.mark.parametrize("kind", ["array", "numpy", "bytes"])
@pytest.mark.parametrize("padding", [0, 3])
def test_native_images_are_views_of_the_payload(kind, padding):
    pixels = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3)
    rows = pixels.astype(f"{HOST_ORDER}u2").view(np.uint8).reshape(4, -1)
    padded = np.hstack([rows, np.zeros((4, padding), np.uint8)])
    data = as_container(padded.tobytes(), kind)
    msg = SimpleNamespace(height=4, width=6, encoding="rgb16", step=36 + padding,
                          is_bigendian=int(HOST_ORDER == ">"), data=data)  # fmt: skip
    decoded = image_to_array(msg)
    np.testing.assert_array_equal(decoded, pixels)
    assert np.shares_memory(decoded, np.frombuffer(data, np.uint8))


def test_foreign_byte_order_is_swapped_into_a_copy():
    depth = np.array([[0.5, 1.5], [np.inf, 1e-3]], dtype=np.float32)
    foreign = "<" if HOST_ORDER == ">" else ">"
    msg = SimpleNamespace(**vars(encode_image(depth.astype(f"{foreign}f4"), "32FC1")))
    assert msg.is_bigendian == int(foreign == ">")
    decoded = image_to_array(msg)
    assert decoded.dtype == np.float32 and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, depth)


def test_passthrough_encoding_names_follow_opencv():
    assert encode_image(np.zeros((2, 2, 3), np.uint8)).encoding == "8UC3"
    assert encode_image(np.zeros((2, 2), np.float32)).encoding == "32FC1"
    with pytest.raises(ConversionError, match="no image encoding"):
        encode_image(np.zeros((2, 2), np.int64))


def test_encoding_must_match_the_array():
    with pytest.raises(ConversionError, match="needs 3 channel"):
        encode_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ConversionError, match="uint16"):
        encode_image(np.zeros((2, 2), np.float32), "mono16")
    with pytest.raises(ConversionError, match="unknown image encoding"):
        encode_image(np.zeros((2, 2), np.uint8), "jpeg")


@pytest.mark.parametrize("source", COLOR_ENCODINGS)
@pytest.mark.parametrize("target", COLOR_ENCODINGS)
def test_desired_encoding_converts_like_cvtcolor(source, target):
    channels = IMAGE_ENCODINGS[source][1]
    shape = (4, 5) if channels == 1 else (4, 5, channels)
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    msg = SimpleNamespace(**vars(encode_image(pixels, source)))
    converted = image_to_array(msg, desired_encoding=target)
    names = {"rgb8": "RGB", "bgr8": "BGR", "rgba8": "RGBA", "bgra8": "BGRA", "mono8": "GRAY"}
    if source == target:
        expected = pixels
    else:
        expected = cv2.cvtColor(pixels, getattr(cv2, f"COLOR_{names[source]}2{names[target]}"))
    np.testing.assert_array_equal(converted, expected)


def test_unsupported_colour_conversion_is_a_conversion_error():
    msg = SimpleNamespace(**vars(encode_image(np.zeros((2, 2), np.uint16), "mono16")))
    with pytest.raises(ConversionError, match="cannot convert 'mono16' to 'rgb8'"):
        image_to_array(msg, desired_encoding="rgb8")


def image_msg(**overrides):
    fields = dict(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=bytes(18))
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": bytes(17)}, "data has 17 bytes"),
        ({"step": 8, "data": bytes(16)}, "step 8 is smaller than width 3"),
        ({"encoding": "rgb9"}, "unknown image encoding"),
        ({"encoding": None}, "unknown image encoding"),
        ({"width": -1}, "width is negative"),
        ({"height": 2.5}, "height must be an integer"),
        ({"width": 2**15, "height": 2**14}, "sanity limit"),
        ({"data": "not bytes"}, "data"),
        ({"data": np.zeros(18, np.float32)}, "uint8"),
    ],
)
def test_malformed_images_say_what_is_wrong(overrides, message):
    with pytest.raises(ConversionError, match=message):
        image_to_array(image_msg(**overrides))


def test_missing_attribute_is_a_conversion_error():
    msg = image_msg()
    del msg.step
    with pytest.raises(ConversionError, match="'step'"):
        image_to_array(msg)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    encoding=st.sampled_from([*sorted(IMAGE_ENCODINGS)[:12], "", "rgb", "32FC9", "mono8"]),
    height=st.one_of(st.integers(-2, 8), st.integers(2**13, 2**33)),
    width=st.one_of(st.integers(-2, 8), st.integers(2**13, 2**33)),
    step=st.one_of(st.integers(-2, 80), st.integers(2**20, 2**40)),
    is_bigendian=st.integers(0, 1),
    data=st.binary(max_size=300),
    desired=st.sampled_from(["passthrough", "rgb8", "mono8", "bgra8"]),
)
def test_fuzzed_images_raise_only_conversion_errors(
    encoding, height, width, step, is_bigendian, data, desired
):
    msg = SimpleNamespace(height=height, width=width, encoding=encoding, step=step,
                          is_bigendian=is_bigendian, data=data)  # fmt: skip
    try:
        pixels = image_to_array(msg, desired_encoding=desired)
    except ConversionError:
        return
    assert pixels.shape[:2] == (height, width)


# --------------------------------------------------------------------- point clouds


@st.composite
def cloud_layouts(draw):
    names = draw(st.lists(st.sampled_from(["x", "y", "z", "intensity", "ring", "t", "rgb"]),
                          min_size=1, max_size=5, unique=True))  # fmt: skip
    fields, offset = [], 0
    for name in names:
        offset += draw(st.integers(0, 3))
        datatype, count = draw(st.integers(1, 8)), draw(st.integers(1, 3))
        fields.append(FieldLayout(name, offset, datatype, count))
        offset += POINT_FIELD_DTYPES[datatype].itemsize * count
    point_step = offset + draw(st.integers(0, 4))
    return draw(st.permutations(fields)), point_step


@st.composite
def random_clouds(draw):
    fields, point_step = draw(cloud_layouts())
    height, width = draw(st.integers(1, 3)), draw(st.integers(0, 9))
    row_step = width * point_step + draw(st.integers(0, 5))
    order = draw(st.sampled_from("<>"))
    data = draw(st.binary(min_size=row_step * height, max_size=row_step * height))
    msg = SimpleNamespace(
        height=height, width=width, fields=fields, is_bigendian=order == ">",
        point_step=point_step, row_step=row_step, is_dense=False,
        data=as_container(data, draw(st.sampled_from(["bytes", "array", "numpy"]))),
    )  # fmt: skip
    return msg, data, order


def read_field_bytewise(data, msg, field, order):
    """Oracle: gather each point's bytes by explicit index arithmetic, no structured dtype."""
    element = POINT_FIELD_DTYPES[field.datatype]
    rows, cols = np.meshgrid(np.arange(msg.height), np.arange(msg.width), indexing="ij")
    starts = rows.reshape(-1) * msg.row_step + cols.reshape(-1) * msg.point_step + field.offset
    index = starts[:, None] + np.arange(element.itemsize * field.count)[None, :]
    gathered = np.frombuffer(data, np.uint8)[index].tobytes()
    values = native_from_bytes(gathered, element, order)
    return values.reshape(-1, field.count) if field.count > 1 else values


@settings(derandomize=True, max_examples=200, deadline=None)
@given(random_clouds())
def test_cloud_decoding_matches_an_independent_byte_reading(case):
    msg, data, order = case
    columns = pointcloud_to_columns(msg)
    assert list(columns) == [field.name for field in msg.fields]
    for field in msg.fields:
        expected = read_field_bytewise(data, msg, field, order)
        assert columns[field.name].dtype.isnative
        np.testing.assert_array_equal(bits(columns[field.name]), bits(expected))
    organised = pointcloud_to_columns(msg, organised=True)
    for name, column in organised.items():
        assert column.shape[:2] == (msg.height, msg.width)
        np.testing.assert_array_equal(bits(column.reshape(columns[name].shape)),
                                      bits(columns[name]))  # fmt: skip


@settings(derandomize=True, max_examples=150, deadline=None)
@given(cloud_layouts(), st.integers(0, 12), st.sampled_from([1, 2, 3]), st.booleans(),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_structured_and_column_encoding_round_trips(layout, width, height, big, seed):
    fields, point_step = layout
    dtype = np.dtype({
        "names": [f.name for f in fields],
        "formats": [(POINT_FIELD_DTYPES[f.datatype], (f.count,)) if f.count > 1
                    else POINT_FIELD_DTYPES[f.datatype] for f in fields],
        "offsets": [f.offset for f in fields], "itemsize": point_step,
    })  # fmt: skip
    count = width * height
    points = np.frombuffer(np.random.default_rng(seed).bytes(count * point_step), dtype)
    columns = {name: points[name] for name in dtype.names}
    for source in (points, columns):
        payload = encode_pointcloud(source, height=height, is_bigendian=big)
        assert (payload.height, payload.width) == (height, width)
        decoded = pointcloud_to_columns(SimpleNamespace(**vars(payload)))
        for name in dtype.names:
            np.testing.assert_array_equal(bits(decoded[name]), bits(columns[name]))
    assert encode_pointcloud(points).point_step == point_step  # keeps its offsets


def test_structured_view_is_zero_copy_and_fast_path_for_native_clouds():
    columns = {"x": np.arange(100_000, dtype=np.float32), "y": np.zeros(100_000, np.float32),
               "z": np.ones(100_000, np.float32), "intensity": np.ones(100_000, np.uint16)}
    payload = encode_pointcloud(columns, is_bigendian=HOST_ORDER == ">")
    msg = SimpleNamespace(**vars(payload))
    msg.data = array.array("B", msg.data)
    points = pointcloud_to_structured(msg)
    assert np.shares_memory(points, np.frombuffer(msg.data, np.uint8))
    cloud = pointcloud_to_core(msg)
    assert len(cloud) == 100_000 and cloud.intensity.dtype == np.float32
    np.testing.assert_array_equal(cloud.xyz[:, 0], columns["x"])


@pytest.mark.parametrize("z_dtype", [np.float64, np.float32])  # general path, packed-xyz path
def test_core_cloud_drops_non_finite_points_and_keeps_ring(z_dtype):
    columns = {
        "x": np.array([1.0, np.nan, 3.0, 4.0], np.float32),
        "y": np.array([0.0, 0.0, np.inf, 1.0], np.float32),
        "z": np.array([0.5, 0.5, 0.5, 0.5], z_dtype),
        "intensity": np.array([10, 20, 30, 40], np.uint8),
        "ring": np.array([0, 1, 2, 31], np.uint16),
    }
    payload = encode_pointcloud(columns, height=2)
    assert not payload.is_dense
    msg = SimpleNamespace(**vars(payload), header=SimpleNamespace(frame_id="lidar_top"))
    cloud = pointcloud_to_core(msg)
    np.testing.assert_array_equal(cloud.xyz, [[1, 0, 0.5], [4, 1, 0.5]])
    np.testing.assert_array_equal(cloud.intensity, np.float32([10, 40]))
    np.testing.assert_array_equal(cloud.ring, [0, 31])
    assert cloud.frame_id == "lidar_top"
    assert len(pointcloud_to_core(msg, keep_non_finite=True)) == 4
    assert len(drop_non_finite(pointcloud_to_columns(msg))["x"]) == 2


@pytest.mark.parametrize("intensity_dtype", [np.float32, np.uint8, None])  # xyzi, xyz, none
@pytest.mark.parametrize("z_dtype", [np.float32, np.float64])  # packed, general path
@pytest.mark.parametrize("keep_non_finite", [False, True])
def test_every_cloud_layout_gives_the_same_core_cloud(intensity_dtype, z_dtype,
                                                      keep_non_finite):
    rng = np.random.default_rng(7)
    n = 500
    columns = {"x": rng.normal(size=n).astype(np.float32),
               "y": rng.normal(size=n).astype(np.float32),
               "z": rng.normal(size=n).astype(z_dtype)}
    columns["x"][::7] = np.nan
    columns["y"][3::11] = np.inf
    if intensity_dtype is not None:
        columns["intensity"] = rng.integers(0, 255, n).astype(intensity_dtype)
    columns["ring"] = rng.integers(0, 64, n).astype(np.uint16)
    msg = SimpleNamespace(**vars(encode_pointcloud(columns)))
    keep = np.ones(n, bool) if keep_non_finite else (
        np.isfinite(columns["x"]) & np.isfinite(columns["y"]))
    cloud = pointcloud_to_core(msg, keep_non_finite=keep_non_finite)
    xyz = np.column_stack([columns[c].astype(np.float32) for c in "xyz"])[keep]
    intensity = (columns["intensity"].astype(np.float32)[keep] if intensity_dtype is not None
                 else np.zeros(keep.sum(), np.float32))
    np.testing.assert_array_equal(cloud.xyz, xyz)
    np.testing.assert_array_equal(cloud.ring, columns["ring"][keep])
    np.testing.assert_array_equal(cloud.xyzi(), np.column_stack([xyz, intensity]))
    assert cloud.xyzi().dtype == np.float32 and cloud.xyzi().flags.c_contiguous
    if intensity_dtype == np.float32 and z_dtype == np.float32:  # one gather, no stack after
        assert cloud.xyzi() is cloud.xyzi()
        assert np.shares_memory(cloud.xyz, cloud.xyzi())
    assert pointcloud_to_core(msg, with_ring=False).ring is None


def test_xyzi_follows_reassigned_columns():
    cloud = PointCloud.from_xyzi(np.arange(8, dtype=np.float32).reshape(2, 4))
    np.testing.assert_array_equal(cloud.intensity, [3, 7])
    cloud.xyz = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(cloud.xyzi(), [[0, 0, 0, 3], [0, 0, 0, 7]])
    with pytest.raises(ValueError, match="points"):
        PointCloud.from_xyzi(np.zeros((2, 3), np.float32))


def test_core_cloud_needs_xyz():
    msg = SimpleNamespace(**vars(encode_pointcloud({"x": np.zeros(3), "y": np.zeros(3)})))
    with pytest.raises(ConversionError, match="no 'z' field"):
        pointcloud_to_core(msg)


def cloud_msg(fields=None, **overrides):
    xyz = [FieldLayout("x", 0, 7), FieldLayout("y", 4, 7), FieldLayout("z", 8, 7)]
    values = dict(height=1, width=2, fields=xyz if fields is None else fields, point_step=16,
                  row_step=32, is_bigendian=False, data=bytes(32), is_dense=True)  # fmt: skip
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (cloud_msg([FieldLayout("x", 0, 7), FieldLayout("y", 2, 7)]), "'x' and 'y' overlap"),
        (cloud_msg([FieldLayout("x", 0, 7, 4), FieldLayout("y", 14, 2)]), "'x' and 'y' overlap"),
        (cloud_msg([FieldLayout("x", 13, 7)]), "past point_step 16"),
        (cloud_msg([FieldLayout("x", 0, 8, 3)]), "past point_step 16"),
        (cloud_msg([FieldLayout("x", 0, 9)]), "unknown datatype 9"),
        (cloud_msg([FieldLayout("x", 0, 0)]), "unknown datatype 0"),
        (cloud_msg([FieldLayout("x", 0, 7, 0)]), "count 0"),
        (cloud_msg([FieldLayout("x", 0, 7), FieldLayout("x", 4, 7)]), "duplicated field"),
        (cloud_msg([FieldLayout("x", -4, 7)]), "offset is negative"),
        (cloud_msg(point_step=0), "point_step is 0"),
        (cloud_msg(row_step=31), "row_step 31 is smaller"),
        (cloud_msg(data=bytes(31)), "data has 31 bytes"),
        (cloud_msg(data=bytes(33)), "data has 33 bytes"),
        (cloud_msg(width=2**20, height=2**10), "sanity limit"),
        (cloud_msg(height=-1), "height is negative"),
        (cloud_msg(5), "not a sequence"),
        (cloud_msg([SimpleNamespace(name="x", offset=0, datatype=7)]), "'count'"),
    ],
)
def test_malformed_clouds_say_what_is_wrong(msg, message):
    with pytest.raises(ConversionError, match=message):
        pointcloud_to_columns(msg)


def test_row_padding_is_skipped():
    payload = encode_pointcloud({"x": np.arange(6, dtype=np.float32)}, height=2)
    padded = np.frombuffer(payload.data, np.uint8).reshape(2, 12)
    padded = np.hstack([padded, np.full((2, 5), 0xFF, np.uint8)])
    msg = SimpleNamespace(**{**vars(payload), "row_step": 17, "data": padded.tobytes()})
    np.testing.assert_array_equal(pointcloud_to_columns(msg)["x"], np.arange(6))


def test_unencodable_columns_are_rejected():
    with pytest.raises(ConversionError, match="no PointField type"):
        encode_pointcloud({"x": np.zeros(3, np.int64)})
    with pytest.raises(ConversionError, match="one N"):
        encode_pointcloud({"x": np.zeros(3, np.float32), "y": np.zeros(4, np.float32)})
    with pytest.raises(ConversionError, match="do not split"):
        encode_pointcloud({"x": np.zeros(3, np.float32)}, height=2)
    with pytest.raises(ConversionError, match="non-empty dict"):
        encode_pointcloud({})


fuzzed_fields = st.lists(
    st.builds(SimpleNamespace, name=st.sampled_from(["x", "y", "z", "", "intensity"]),
              offset=st.integers(-2, 24), datatype=st.integers(-1, 10),
              count=st.integers(-1, 3)),
    max_size=5,
)  # fmt: skip


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    fields=fuzzed_fields,
    point_step=st.integers(-1, 32),
    height=st.one_of(st.integers(-1, 4), st.integers(2**14, 2**34)),
    width=st.one_of(st.integers(-1, 10), st.integers(2**14, 2**34)),
    row_step=st.one_of(st.integers(-1, 120), st.integers(2**30, 2**40)),
    is_bigendian=st.booleans(),
    data=st.binary(max_size=300),
)
def test_fuzzed_clouds_raise_only_conversion_errors(
    fields, point_step, height, width, row_step, is_bigendian, data
):
    msg = SimpleNamespace(fields=fields, point_step=point_step, height=height, width=width,
                          row_step=row_step, is_bigendian=is_bigendian, data=data)  # fmt: skip
    try:
        columns = pointcloud_to_columns(msg)
    except ConversionError:
        return
    assert all(len(column) == width * height for column in columns.values())
    try:
        pointcloud_to_core(msg)
    except ConversionError:
        pass


def test_max_elements_is_a_sane_bound():
    assert 4096 * 4096 < MAX_ELEMENTS < 2**31
