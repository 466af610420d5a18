"""The HTML report is self-contained and renders in headless Chromium."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from avstan.evaluation.html_report import (
    image_html,
    paragraph,
    results_table_html,
    write_html_report,
)
from avstan.evaluation.plots import plot_predictions

ROWS = [
    {"model": "cnn3d", "valence": {"rmse": 0.1, "cc": 0.5, "ccc": 0.49},
     "arousal": {"rmse": 0.2, "cc": 0.6, "ccc": 0.55}, "attention_in_mask": None},
    {"model": "sta3d <b>", "valence": {"rmse": 0.09, "cc": 0.57, "ccc": 0.546},
     "arousal": {"rmse": 0.19, "cc": 0.62, "ccc": 0.6}, "attention_in_mask": 2.345},
]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic"]


def make_report(tmp_path):
    images = []
    for index in range(2):
        path = tmp_path / f"plot{index}.png"
        times = np.arange(40) / 4
        plot_predictions(times, np.sin(times), {"m": np.cos(times)}, f"r{index}", path)
        images.append(image_html(path, f"recording {index}"))
    return write_html_report(tmp_path / "out" / "report.html", "Report <test>",
                             [("Scores", [results_table_html(ROWS, "test partition")]),
                              ("Plots", images), ("Notes", [paragraph("a & b")])])


def test_report_is_self_contained_and_escaped(tmp_path):
    page = make_report(tmp_path).read_text()
    assert page.count("data:image/png;base64,") == 2
    assert not re.search(r'(src|href)="(?!data:)', page)  # no external asset
    assert "sta3d &lt;b&gt;" in page and "Report &lt;test&gt;" in page and "a &amp; b" in page
    assert page.count("<tr>") == 3 and "2.345" in page and "—" in page


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it (apt-get)")
        pytest.skip("chromium is not installed (make test installs it)")
    return found


def test_report_renders_in_headless_chromium(tmp_path):
    browser = chromium()
    report = make_report(tmp_path)
    profile = tmp_path / "profile"
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
            "--virtual-time-budget=5000"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert 'data-images-loaded="2"' in dom  # both embedded images decoded
    assert dom.count("<tr>") == 3 and "test partition" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,1400",
                    report.as_uri()], capture_output=True, timeout=120)
    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels[..., :3].std() > 0.05  # not a blank page
