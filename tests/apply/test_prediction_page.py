"""The prediction page: self-contained, plays the video, draws the curves, cursor in sync."""

import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
from matplotlib.image import imread

from avstan.apply.prediction_page import browser_ready_video, write_prediction_page
from tests.evaluation.test_html_report import CHROMIUM_FLAGS, chromium

MEDIA = Path(__file__).parents[1] / "data" / "media"
STEPS = 10  # single_face.mp4: 2.4 s at 4 steps/s
LABELS = [f"label<{k}>" for k in range(STEPS)]  # a text per step (predict: the expression)


def make_page(tmp_path, name="single_face.mp4"):
    times = np.arange(STEPS) / 4
    values = np.stack([np.sin(times), np.cos(times) * 0.5], axis=1)
    found = np.ones(STEPS, bool)
    found[6:8] = False
    video = browser_ready_video(MEDIA / name, tmp_path)
    return write_prediction_page(tmp_path / "page.html", "single <face>", video, times, values,
                                 ("valence", "arousal"), found, duration=2.5,
                                 note="a & b", labels=LABELS), values


def test_page_is_self_contained_and_escaped(tmp_path):
    page = make_page(tmp_path)[0].read_text()
    assert page.count("src='data:video/mp4;base64,") == 1
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # no external asset
    assert "single &lt;face&gt;" in page and "a &amp; b" in page


def test_browser_ready_video_keeps_h264_mp4_and_reencodes_the_rest(tmp_path):
    assert browser_ready_video(MEDIA / "single_face.mp4", tmp_path) == \
        (MEDIA / "single_face.mp4").read_bytes()
    encoded = tmp_path / "hevc.mp4"
    encoded.write_bytes(browser_ready_video(MEDIA / "face_noface.mov", tmp_path))  # hevc
    with av.open(str(encoded)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(MEDIA / "face_noface.mov")) as container:
        assert frames == sum(1 for _ in container.decode(video=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hevc.mp4"]  # scratch removed


def test_page_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    page, values = make_page(tmp_path)
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=8000", "--autoplay-policy=no-user-gesture-required"]
    url = page.as_uri() + "#t=1.5"
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'data-curves="2"' in dom
    assert 'data-video-width="640"' in dom  # the embedded H.264 decoded
    assert re.search(r"<video[^>]*src=\"data:video/mp4;base64,", dom)
    curves = {target: points for points, target in re.findall(
        r'<polyline points="([^"]+)"[^>]*data-target="(\w+)"', dom)}
    assert sorted(curves) == ["arousal", "valence"]
    points = np.array([[float(v) for v in p.split(",")] for p in curves["valence"].split()])
    assert points.shape == (STEPS, 2)
    # y = 10 + 260 · (1 − v) / 2 in the chart's coordinates: the curve is the values.
    np.testing.assert_allclose(points[:, 1], 10 + 260 * (1 - values[:, 0]) / 2, atol=0.06)
    assert dom.count('class="noface"') == 2
    # The cursor follows the video: #t=1.5 seeks there, and the cursor sits at 1.5 s.
    cursor_time = float(re.search(r'data-cursor-time="([0-9.]+)"', dom).group(1))
    assert abs(cursor_time - 1.5) < 0.05
    cursor_x = float(re.search(r'id="cursor" x1="([0-9.]+)"', dom).group(1))
    assert abs(cursor_x - (40 + 590 * 1.5 / 2.5)) < 2
    # beside the values: the label of the step at the cursor (1.5 s: step 6), as text
    now = re.search(r'id="now">([^<]*)<', dom).group(1)
    assert "label&lt;6&gt;" in now and "label&lt;5&gt;" not in now
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1400,500", url],
                   capture_output=True, timeout=120)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (500, 1400) and pixels.std() > 0.05  # not a blank page


def test_long_videos_are_linked_not_embedded(tmp_path):
    from avstan.apply.prediction_page import page_video, prediction_page_html

    inline, made = page_video(MEDIA / "single_face.mp4", tmp_path, "single_face")
    assert inline == (MEDIA / "single_face.mp4").read_bytes() and made is None
    # above the limit: the original by its file:// address, a file beside the page by name
    linked, made = page_video(MEDIA / "single_face.mp4", tmp_path, "single_face", limit=0)
    assert linked == (MEDIA / "single_face.mp4").resolve().as_uri() and made is None
    shutil.copy(MEDIA / "single_face.mp4", tmp_path / "clip.overlay.mp4")
    assert page_video(tmp_path / "clip.overlay.mp4", tmp_path, "clip", limit=0) == (
        "clip.overlay.mp4", None)
    # a video a browser cannot play is re-encoded beside the page and linked
    linked, made = page_video(MEDIA / "face_noface.mov", tmp_path, "face_noface", limit=0)
    assert linked == "face_noface.video.mp4" and made == tmp_path / "face_noface.video.mp4"
    with av.open(str(made)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    page = prediction_page_html("t", linked, np.arange(3) / 4, np.zeros((3, 1)),
                                ["valence"], np.ones(3, bool), 1.0)
    assert "src='face_noface.video.mp4'" in page and "base64" not in page
    assert "The video is linked, not embedded" in page
