"""Tests of kannada.drawing: a drawing or picture -> the 28x28 digit the dataset would hold.

No model needed: crop, aspect ratio, centre of mass, alpha vs grey ink, empty, huge, unreadable.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from kannada.digits import IMAGE_SIDE
from kannada.drawing import (
    DIGIT_BOX,
    MAX_SIDE,
    EmptyDrawing,
    UnreadableImage,
    crop_to_ink,
    fit_to_box,
    ink_map,
    open_image,
    prepare_digit,
)


def ink_box(digit: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the nonzero pixels, bottom/right exclusive."""
    rows = np.flatnonzero(digit.any(axis=1))
    cols = np.flatnonzero(digit.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def canvas_with_ink(ink: np.ndarray, style: str) -> Image.Image:
    """Render an ink map (H, W) in [0, 1] as a canvas would send it.

    "rgba": black ink on a transparent background (RGB zero everywhere, ink in alpha);
    "white": black ink on white RGB; "grey": an "L" image; "dark": white ink on black RGB.
    """
    level = np.rint(ink * 255).astype(np.uint8)
    if style == "rgba":
        rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
        rgba[:, :, 3] = level
        return Image.fromarray(rgba)
    if style == "white":
        return Image.fromarray(np.repeat((255 - level)[:, :, None], 3, axis=2))
    if style == "grey":
        return Image.fromarray(255 - level)
    if style == "dark":
        return Image.fromarray(np.repeat(level[:, :, None], 3, axis=2))
    raise ValueError(style)


def l_shape(height: int = 400, width: int = 400, top: int = 60, left: int = 90) -> np.ndarray:
    """An 'L' stroke (240 tall, 120 wide, 24 thick) on a blank ink map: lopsided mass."""
    ink = np.zeros((height, width), dtype=np.float32)
    ink[top : top + 240, left : left + 24] = 1
    ink[top + 216 : top + 240, left : left + 120] = 1
    return ink


# -- the steps ----------------------------------------------------------------------------


def test_crop_to_ink_returns_exactly_the_inked_rectangle():
    ink = np.zeros((300, 200), dtype=np.float32)
    ink[40:90, 120:130] = 0.8
    ink[150, 60] = 0.05  # below the threshold: noise, not ink
    cropped = crop_to_ink(ink)
    assert cropped.shape == (50, 10)
    assert np.all(cropped == np.float32(0.8))


@pytest.mark.parametrize(("shape", "expected"), [((300, 100), (20, 7)), ((60, 240), (5, 20))])
def test_fit_to_box_scales_the_longer_side_to_20_keeping_the_aspect_ratio(shape, expected):
    digit = fit_to_box(np.ones(shape, dtype=np.float32))
    assert digit.shape == expected
    assert digit.dtype == np.float32
    assert 0 <= digit.min() and digit.max() <= 1


def test_fit_to_box_keeps_a_one_pixel_stroke_as_a_line():
    assert fit_to_box(np.ones((400, 3), dtype=np.float32)).shape == (DIGIT_BOX, 1)


def test_prepare_digit_puts_the_centre_of_mass_at_the_centre_and_the_box_at_20px():
    digit = prepare_digit(canvas_with_ink(l_shape(), "white"))
    assert digit.shape == (IMAGE_SIDE, IMAGE_SIDE) and digit.dtype == np.uint8
    top, bottom, left, right = ink_box(digit)
    assert bottom - top == DIGIT_BOX  # the longer side (height 240 -> 20)
    assert right - left == 10  # 120 wide -> 10, the aspect ratio kept
    row, col = ndimage.center_of_mass(digit.astype(np.float64))
    # Whole-pixel shifts: the centre of mass lands within half a pixel of (14, 14).
    assert abs(row - 14) <= 0.5 and abs(col - 14) <= 0.5
    # An 'L' is heavy at the bottom-left: centring by mass (not by box) moves the box right/up.
    assert (top, left) != ((IMAGE_SIDE - DIGIT_BOX) // 2, (IMAGE_SIDE - 10) // 2)


def test_where_the_digit_is_drawn_does_not_matter():
    near = prepare_digit(canvas_with_ink(l_shape(top=10, left=10), "white"))
    far = prepare_digit(canvas_with_ink(l_shape(top=150, left=270), "white"))
    np.testing.assert_array_equal(near, far)


def test_dataset_images_come_back_unchanged(real_data_dir):
    """The dataset was made with these very steps, so its images are (almost) fixed points."""
    from kannada.data import read_idx

    images = read_idx(real_data_dir / "original" / "X_dig_MNIST-idx3-ubyte.gz")[::41][:250]
    prepared = np.stack([prepare_digit(image) for image in images])
    same = np.all(prepared == images, axis=(1, 2))
    assert same.mean() >= 0.97, f"only {same.mean():.1%} of dataset images were fixed points"
    # The rest differ a little (a few dataset digits are smaller than the 20 px box).
    assert np.abs(prepared.astype(int) - images).mean() < 0.5


# -- where the ink comes from -------------------------------------------------------------


@pytest.mark.parametrize("style", ["white", "grey", "dark"])
def test_ink_from_alpha_and_from_grey_give_the_same_digit(style):
    ink = l_shape()
    ink[100:110, 90:200] = 0.5  # a half-strength stroke: levels must survive too
    from_alpha = prepare_digit(canvas_with_ink(ink, "rgba"))
    np.testing.assert_array_equal(prepare_digit(canvas_with_ink(ink, style)), from_alpha)


def test_alpha_is_the_ink_whatever_the_colour_under_it():
    """A transparent canvas with white strokes (a dark-mode page) reads like black strokes."""
    rgba = np.zeros((400, 400, 4), dtype=np.uint8)
    rgba[:, :, :3] = 255
    rgba[:, :, 3] = np.rint(l_shape() * 255).astype(np.uint8)
    black = canvas_with_ink(l_shape(), "rgba")
    np.testing.assert_array_equal(prepare_digit(Image.fromarray(rgba)), prepare_digit(black))


def test_an_opaque_rgba_picture_uses_the_grey_levels():
    rgb = np.asarray(canvas_with_ink(l_shape(), "white"))
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, dtype=np.uint8)])
    np.testing.assert_array_equal(
        prepare_digit(Image.fromarray(opaque)), prepare_digit(Image.fromarray(rgb))
    )


def test_grey_paper_and_jpeg_noise_are_not_ink():
    rng = np.random.default_rng(0)
    paper = 190 + rng.integers(-6, 7, size=(400, 400))  # grey, grainy paper
    photo = np.clip(paper - l_shape() * 150, 0, 255).astype(np.uint8)  # dark-grey pencil
    buffer = io.BytesIO()
    Image.fromarray(photo).convert("RGB").save(buffer, format="JPEG", quality=80)
    digit = prepare_digit(buffer.getvalue())
    clean = prepare_digit(canvas_with_ink(l_shape(), "white"))
    assert ink_box(digit) == ink_box(clean)
    assert digit.max() >= 220  # faint pencil (150 grey levels) is stretched to full strength
    assert np.abs(digit.astype(int) - clean).mean() < 12


def test_arrays_are_accepted_like_images():
    ink = l_shape()
    expected = prepare_digit(canvas_with_ink(ink, "dark"))
    np.testing.assert_array_equal(prepare_digit(ink), expected)  # float (H, W) in [0, 1]
    np.testing.assert_array_equal(prepare_digit(ink[:, :, None]), expected)  # (H, W, 1)
    rgba = np.asarray(canvas_with_ink(ink, "rgba"))
    np.testing.assert_array_equal(prepare_digit(rgba), prepare_digit(canvas_with_ink(ink, "rgba")))


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "picture",
    [
        Image.new("RGBA", (400, 400), (0, 0, 0, 0)),  # an untouched transparent canvas
        Image.new("RGB", (400, 400), "white"),
        Image.new("L", (400, 400), 0),  # all black: no contrast, no ink
        np.full((50, 50), 250, dtype=np.uint8) - np.eye(50, dtype=np.uint8) * 10,  # a faint line
    ],
    ids=["transparent", "white", "black", "faint"],
)
def test_an_empty_canvas_says_draw_a_digit(picture):
    with pytest.raises(EmptyDrawing, match="Draw a digit"):
        prepare_digit(picture)


def test_a_huge_image_is_downscaled_first():
    big = np.zeros((6000, 4500), dtype=np.float32)
    big[1000:5000, 2000:2400] = 1  # a long bar, 4000 x 400
    big[4600:5000, 2000:3600] = 1
    image = canvas_with_ink(big, "white")
    assert max(open_image(image).size) == MAX_SIDE
    digit = prepare_digit(image)
    top, bottom, left, right = ink_box(digit)
    assert (bottom - top, right - left) == (20, 8)  # 4000 x 1600 -> 20 x 8


def test_a_huge_file_is_downscaled_and_a_decompression_bomb_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    canvas_with_ink(l_shape(2400, 2400, top=500, left=700), "white").save(path)
    assert max(open_image(path).size) == MAX_SIDE
    assert ink_box(prepare_digit(path)) == ink_box(
        prepare_digit(canvas_with_ink(l_shape(), "white"))
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 2400^2 > 2x the limit
    with pytest.raises(UnreadableImage, match=r"'big\.png': the image is too large"):
        prepare_digit(path)


def test_unreadable_files_get_a_clear_message(tmp_path):
    text = tmp_path / "digit.png"
    text.write_text("this is not a picture")
    with pytest.raises(UnreadableImage, match=r"'digit\.png': not an image file we can read"):
        prepare_digit(text)

    whole = io.BytesIO()
    canvas_with_ink(l_shape(), "white").save(whole, format="PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(UnreadableImage, match=r"'cut\.png': the image file is damaged"):
        prepare_digit(cut)

    with pytest.raises(UnreadableImage, match=r"'missing\.png': file not found"):
        prepare_digit(tmp_path / "missing.png")
    with pytest.raises(UnreadableImage, match="the uploaded data: not an image file"):
        prepare_digit(b"\x00\x01garbage")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), dtype=np.uint8), r"expected an array of shape .* found \(4, 4, 2\)"),
        (np.zeros((0, 5), dtype=np.uint8), "has no pixels"),
        (np.full((5, 5), np.nan), "expected finite numbers"),
    ],
)
def test_bad_arrays_are_unreadable(array, message):
    with pytest.raises(UnreadableImage, match=message):
        open_image(array)


def test_ink_map_of_a_canvas_is_the_alpha_channel():
    ink = l_shape()
    np.testing.assert_allclose(ink_map(canvas_with_ink(ink, "rgba")), ink, atol=1 / 255)
