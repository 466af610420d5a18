"""Frames and salient masks of a synthetic recording, deterministic in its processes.

:func:`render_float` draws the frames of a recording from its
:class:`~avstan.data.synthetic.processes.Processes` (float, sensor noise included),
:func:`render` quantises them and adds :func:`salient_mask`: the mouth and the two brows
over their whole range of motion, following the head, never the decoy.

Geometry: pixel centres are at ``(i + 0.5)``; the face is drawn in *face units* (the face
half-height is about 1; at ``face_scale=1`` one face unit is ``S/2`` pixels, so the face
fills the crop like an aligned face crop). Shapes are signed-distance functions turned
into antialiased coverage with a one-pixel linear ramp, all vectorised over
``(frames, rows, columns)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from avstan.data.synthetic.config import SyntheticConfig

if TYPE_CHECKING:  # processes.py imports the face geometry from here
    from avstan.data.synthetic.processes import Identity, Processes

__all__ = ["render", "render_float", "salient_mask"]

_CHUNK = 128  # frames rendered at once (bounds memory for long recordings / large crops)

# Face geometry in face units (y grows downwards). Amplitudes are per unit of label at
# expression_strength 1.
_EYE_Y = -0.17
_EYE_HALF_W = 0.14
_EYE_HALF_H = 0.075
_PUPIL_R = 0.055
_BROW_Y = -0.47
_BROW_HALF_LEN = 0.15
_BROW_R = 0.045  # half thickness
_BROW_RAISE = 0.07  # arousal → brows up
_BROW_TILT_IN = 0.05  # valence → inner ends up (positive) / down (negative)
_BROW_TILT_OUT = 0.025  # valence → outer ends slightly the other way
_MOUTH_Y = 0.47
_MOUTH_HALF_W = 0.27
_MOUTH_WIDEN = 0.04  # valence → wider smile
_MOUTH_CURVE = 0.12  # valence → corners up (smile) / down (frown)
_MOUTH_OPEN = 0.055  # arousal → half opening = _MOUTH_OPEN * (1 + arousal) * strength
_LIP = 0.045  # lip thickness
_MASK_MARGIN = 0.01  # extra face units around the mask boxes (then one pixel of dilation)


def _coverage(d_px: np.ndarray) -> np.ndarray:
    """Antialiased coverage in [0, 1] from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - d_px, 0.0, 1.0)


def _ellipse_sd(u, v, cu, cv, a, b):
    """Approximate signed distance (face units) to an axis-aligned ellipse."""
    du, dv = (u - cu) / a, (v - cv) / b
    k0 = np.sqrt(du * du + dv * dv)
    k1 = np.sqrt((du / a) ** 2 + (dv / b) ** 2) + 1e-9
    return k0 * (k0 - 1.0) / k1


def _segment_sd(u, v, au, av, bu, bv, r):
    """Signed distance (face units) to a capsule: the segment a→b thickened by r."""
    pu, pv, du, dv = u - au, v - av, bu - au, bv - av
    h = np.clip((pu * du + pv * dv) / (du * du + dv * dv + 1e-12), 0.0, 1.0)
    return np.hypot(pu - du * h, pv - dv * h) - r


def _box_sd(u, v, cu, cv, hu, hv):
    """A lower bound of the distance (face units) to an axis-aligned box; < 0 inside."""
    return np.maximum(np.abs(u - cu) - hu, np.abs(v - cv) - hv)


def _face_coords(config: SyntheticConfig, processes: Processes, sl: slice):
    """Face coordinates (u, v) of every pixel, (n, S, S) each, and pixels per face unit (n,1,1)."""
    size = config.crop_size
    col = (np.arange(size, dtype=np.float32) + 0.5)[None, None, :]
    row = (np.arange(size, dtype=np.float32) + 0.5)[None, :, None]
    xy = processes.head_xy[sl]
    cx = (size / 2.0 + xy[:, 0])[:, None, None].astype(np.float32)
    cy = (size / 2.0 + xy[:, 1])[:, None, None].astype(np.float32)
    unit = (0.5 * size * config.face_scale * processes.head_scale[sl])[:, None, None]
    unit = unit.astype(np.float32)
    cos = np.cos(processes.head_roll[sl])[:, None, None].astype(np.float32)
    sin = np.sin(processes.head_roll[sl])[:, None, None].astype(np.float32)
    dx, dy = col - cx, row - cy
    u = (cos * dx + sin * dy) / unit
    v = (-sin * dx + cos * dy) / unit
    return u, v, unit


def _mask_boxes(config: SyntheticConfig, identity: Identity):
    """The salient boxes (cu, cv, half_u, half_v) in face units: mouth, left and right brow.

    Each covers its feature over the whole range of labels in [-1, 1].
    """
    k, m = config.expression_strength, _MASK_MARGIN
    mouth_hu = _MOUTH_HALF_W + _MOUTH_WIDEN * k + _LIP + m
    mouth_hv = 0.5 * _MOUTH_CURVE * k + 2 * _MOUTH_OPEN * k + _LIP + m
    e = identity.eye_spacing
    brow_hu = _BROW_HALF_LEN + _BROW_R + m
    brow_hv = _BROW_RAISE * k + max(_BROW_TILT_IN, _BROW_TILT_OUT) * k + _BROW_R + m
    return [(0.0, _MOUTH_Y, mouth_hu, mouth_hv), (-e, _BROW_Y, brow_hu, brow_hv),
            (e, _BROW_Y, brow_hu, brow_hv)]


def _person_layers(u, v, unit, identity: Identity):
    """Coverages (n, S, S) of the shoulders, the hair cap and the face ellipse, and the
    signed distance to the face ellipse (face units)."""
    fw = identity.face_width
    shoulders = _coverage(_ellipse_sd(u, v, 0.0, 2.05, 1.5, 0.95) * unit)
    hair_cap = _coverage(_ellipse_sd(u, v, 0.0, -0.12, fw * 1.12, 1.0) * unit) * np.clip(
        0.5 - (v + 0.25) * unit, 0, 1)
    face_sd = _ellipse_sd(u, v, 0.0, 0.0, fw, 1.0)
    return shoulders, hair_cap, _coverage(face_sd * unit), face_sd


def _visible_decoy(decoy: np.ndarray, shoulders, hair_cap, face) -> np.ndarray:
    """Coverage (n, S, S) of the decoy disc (S, S) left visible by the person in front."""
    return decoy * (1 - shoulders) * (1 - hair_cap) * (1 - face)


def _mask_chunk(config: SyntheticConfig, processes: Processes, sl: slice,
                coords=None) -> np.ndarray:
    u, v, unit = coords if coords is not None else _face_coords(config, processes, sl)
    sd = np.full(u.shape, np.inf, dtype=np.float32)
    for cu, cv, hu, hv in _mask_boxes(config, processes.identity):
        sd = np.minimum(sd, _box_sd(u, v, cu, cv, hu, hv))
    return sd * unit < 1.0  # one pixel of dilation beyond the antialiased edge


def _decoy_coverage(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """(S, S) coverage of the decoy disc, fixed in the frame."""
    size = config.crop_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    x0, y0 = processes.decoy_center
    return _coverage(np.hypot(xx - x0, yy - y0) - config.decoy_size * size)


def salient_mask(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """Ground-truth salient mask (N, S, S) bool: mouth and brow regions, minus the decoy.

    Independent of the labels (it covers each feature's whole range of motion), so it
    leaks nothing about them; it follows head translation, scale and roll.
    """
    n = config.steps_per_recording
    decoy = _decoy_coverage(config, processes) if config.decoy_strength > 0 else None
    out = np.empty((n, config.crop_size, config.crop_size), dtype=bool)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        coords = _face_coords(config, processes, sl)
        out[sl] = _mask_chunk(config, processes, sl, coords)
        if decoy is not None:
            layers = _person_layers(*coords, processes.identity)[:3]
            out[sl] &= ~(_visible_decoy(decoy, *layers) > 0)
    return out


def _lerp(img: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite ``color`` (3,) or (n, 1, 1, 3) over img (n, S, S, 3) with coverage (n, S, S).

    In place, and only inside the bounding box of the non-zero coverage (most features
    are small), which is what keeps rendering fast.
    """
    covered = alpha > 0
    rows = np.flatnonzero(covered.any(axis=(0, 2)))
    if rows.size == 0:
        return img
    cols = np.flatnonzero(covered.any(axis=(0, 1)))
    box = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub = img[box]
    step = color - sub
    step *= alpha[box][..., None]
    sub += step
    return img


def _render_chunk(config: SyntheticConfig, p: Processes, sl: slice) -> np.ndarray:
    size = config.crop_size
    u, v, unit = _face_coords(config, p, sl)
    ident = p.identity
    k = config.expression_strength
    f32 = np.float32

    def per_frame(x):
        return np.asarray(x, dtype=f32)[:, None, None]

    def cov(sd):
        return _coverage(sd * unit)

    # Background: the periodic texture, translated.
    t_size = p.background_texture.shape[0]
    idx = np.arange(size)
    off = p.background_offset[sl]
    rows = (idx[None, :] + off[:, 1:2]) % t_size
    cols = (idx[None, :] + off[:, 0:1]) % t_size
    img = p.background_texture[rows[:, :, None], cols[:, None, :]]  # (n, S, S, 3)

    # Decoy disc, fixed in the frame, behind the person (a lamp or a screen in the room):
    # colour × intensity following its own label-like process.
    if config.decoy_strength > 0:
        level = 0.5 + 0.5 * config.decoy_strength * p.decoy[sl]
        color = np.clip(level, 0, 1)[:, None] * p.decoy_color[None, :]
        disc = _decoy_coverage(config, p)[None]
        img = _lerp(img, color[:, None, None, :].astype(f32), np.broadcast_to(disc, u.shape))

    # Shoulders, hair cap, face, fringe.
    shoulders, hair_cap, face, face_sd = _person_layers(u, v, unit, ident)
    img = _lerp(img, ident.shirt.astype(f32), shoulders)
    img = _lerp(img, ident.hair.astype(f32), hair_cap)
    img = _lerp(img, ident.skin.astype(f32), face)
    fringe_line = ident.hairline + 0.06 * np.cos(7.0 * u)
    img = _lerp(img, ident.hair.astype(f32), cov(np.maximum(face_sd, v - fringe_line)))

    # Eyes: whites (height shrinks with blinks), irises following the gaze.
    valence = per_frame(p.labels[sl, 0])
    arousal = per_frame(p.labels[sl, 1])
    openness = (1.0 - per_frame(p.blink[sl])) * (1.0 + 0.25 * config.eye_arousal * arousal)
    eye_h = _EYE_HALF_H * openness
    gaze_u, gaze_v = per_frame(p.gaze[sl, 0]), per_frame(p.gaze[sl, 1])
    white = np.array([0.97, 0.97, 0.95], dtype=f32)
    lid = (ident.skin * 0.85).astype(f32)
    for side in (-1.0, 1.0):
        cu = side * ident.eye_spacing
        socket = _ellipse_sd(u, v, cu, _EYE_Y, _EYE_HALF_W * 1.05, _EYE_HALF_H * 1.35)
        img = _lerp(img, lid, cov(socket))  # the socket, which is all a closed eye shows
        # The lids cut the eye white horizontally (a thin ellipse's distance is unreliable).
        eye_sd = np.maximum(_ellipse_sd(u, v, cu, _EYE_Y, _EYE_HALF_W, 1.25 * _EYE_HALF_H),
                            np.abs(v - _EYE_Y) - eye_h)
        eye = cov(eye_sd)
        img = _lerp(img, white, eye)
        iris = cov(_ellipse_sd(u, v, cu + gaze_u, _EYE_Y + gaze_v, _PUPIL_R, _PUPIL_R))
        img = _lerp(img, ident.iris.astype(f32), iris * eye)
        pupil = cov(_ellipse_sd(u, v, cu + gaze_u, _EYE_Y + gaze_v, 0.45 * _PUPIL_R,
                                0.45 * _PUPIL_R))
        img = _lerp(img, np.zeros(3, f32), pupil * eye)

    # Brows: raised by arousal, tilted by valence (inner ends down when negative).
    brow_color = (0.55 * ident.hair).astype(f32)
    brow_y = _BROW_Y - _BROW_RAISE * k * arousal
    inner_y = brow_y - _BROW_TILT_IN * k * valence
    outer_y = brow_y + _BROW_TILT_OUT * k * valence
    for side in (-1.0, 1.0):
        inner_u = side * (ident.eye_spacing - _BROW_HALF_LEN)
        outer_u = side * (ident.eye_spacing + _BROW_HALF_LEN)
        img = _lerp(img, brow_color,
                    cov(_segment_sd(u, v, inner_u, inner_y, outer_u, outer_y, _BROW_R)))

    # Nose: a faint shadow line.
    nose = cov(_segment_sd(u, v, 0.03, -0.02, 0.06, 0.24, 0.03))
    img = _lerp(img, (ident.skin * 0.7).astype(f32), 0.6 * nose)

    # Mouth: a lens between two lip curves; valence bends and widens it, arousal opens it.
    half_w = _MOUTH_HALF_W + _MOUTH_WIDEN * k * valence
    rel = np.clip(u / half_w, -1.0, 1.0) ** 2
    center = _MOUTH_Y - _MOUTH_CURVE * k * valence * (rel - 0.5)
    half_open = _MOUTH_OPEN * k * (1.0 + arousal) * (1.0 - rel)
    dist_v = np.abs(v - center)
    outside_u = np.abs(u) - half_w
    lips = cov(np.maximum(dist_v - half_open - _LIP * (1.0 - 0.4 * rel), outside_u))
    img = _lerp(img, ident.lips.astype(f32), lips)
    cavity = cov(np.maximum(dist_v - half_open, outside_u))
    img = _lerp(img, np.array([0.18, 0.04, 0.06], dtype=f32), cavity)

    # Flicker: global contrast around mid-grey, then brightness.
    img = 0.5 + per_frame(p.contrast[sl])[..., None] * (img - 0.5)
    img = img + per_frame(p.brightness[sl])[..., None]
    return img.astype(f32, copy=False)


def render_float(config: SyntheticConfig, processes: Processes) -> np.ndarray:
    """Frames (N, S, S, 3) float32 in [0, 1], sensor noise included, before quantisation."""
    n, size = config.steps_per_recording, config.crop_size
    out = np.empty((n, size, size, 3), dtype=np.float32)
    noise_rng = np.random.default_rng(processes.noise_seed)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        chunk = _render_chunk(config, processes, sl)
        if config.noise_std > 0:
            chunk += config.noise_std * noise_rng.standard_normal(chunk.shape, dtype=np.float32)
        out[sl] = chunk
    return np.clip(out, 0.0, 1.0, out=out)


def render(config: SyntheticConfig, processes: Processes) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, S, S, 3) uint8 RGB and the salient mask (N, S, S) bool."""
    frames = np.rint(render_float(config, processes) * 255.0).astype(np.uint8)
    return frames, salient_mask(config, processes)
