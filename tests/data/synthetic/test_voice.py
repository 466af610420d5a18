"""The synthetic voice: its building blocks against independent implementations, what
openSMILE hears in it (arousal and valence cues, pauses), determinism, wav files, and that
a linear model on its eGeMAPS functionals learns arousal well but not perfectly."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import scipy.signal

from avstan.data.synthetic import (
    SyntheticConfig,
    generate_recording,
    recording_seed,
    sample_processes,
)
from avstan.data.synthetic import voice as sv
from avstan.data.synthetic.voice import (
    CONTROL_RATE,
    SAMPLE_RATE,
    read_wav,
    sample_speaker,
    synthesize_voice,
    voice_tracks,
    write_wav,
)
from avstan.errors import AvstanError

STEP_RATE = 4.0


def _times(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * STEP_RATE)) / STEP_RATE


def _constant(seconds: float, valence: float, arousal: float) -> np.ndarray:
    return np.tile([valence, arousal], (int(seconds * STEP_RATE), 1))


def _speaker(seed: int):
    """The speaker synthesize_voice draws for ``seed`` (its first random stream)."""
    return sample_speaker(np.random.default_rng(np.random.SeedSequence(seed).spawn(6)[0]))


@pytest.fixture(scope="module")
def smile():
    opensmile = pytest.importorskip("opensmile")
    return opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02,
                           opensmile.FeatureLevel.LowLevelDescriptors)


def _llds(smile, signal: np.ndarray):
    """eGeMAPS LLDs (10 ms frames) as a dict of arrays, plus the frame centre times."""
    table = smile.process_signal(signal, SAMPLE_RATE)
    start = table.index.get_level_values("start").total_seconds().to_numpy()
    end = table.index.get_level_values("end").total_seconds().to_numpy()
    out = {name: table[name].to_numpy() for name in table.columns}
    out["time"] = 0.5 * (start + end)
    return out


def _voiced_median(llds, name: str) -> float:
    voiced = llds["F0semitoneFrom27.5Hz_sma3nz"] > 0
    return float(np.median(llds[name][voiced]))


def _ccc(prediction: np.ndarray, gold: np.ndarray) -> float:
    mp, mg = prediction.mean(), gold.mean()
    cov = ((prediction - mp) * (gold - mg)).mean()
    return float(2 * cov / (prediction.var() + gold.var() + (mp - mg) ** 2))


# ---------------------------------------------------------------------------- building blocks


def test_upsample_is_linear_interpolation():
    rng = np.random.default_rng(0)
    control = rng.normal(size=50)
    length = 47 * 16 + 5
    expected = np.interp(np.arange(length), np.arange(50) * 16, control)
    np.testing.assert_allclose(sv._upsample(control, length), expected, atol=1e-12)


def test_stft_and_istft_reconstruct_the_signal():
    x = np.random.default_rng(1).normal(size=5000)
    spectra, centres = sv._stft(x)
    np.testing.assert_allclose(sv._istft(spectra, x.size), x, atol=1e-10)
    assert centres[0] <= 0 and centres[-1] >= x.size - 1 and (np.diff(centres) == sv._HOP).all()


def test_formant_envelope_matches_scipy_analog_resonators():
    freqs = np.linspace(0, 8000, 257)
    formants = np.array([[700.0, 1200.0, 2500.0], [300.0, 2300.0, 3000.0]])
    bandwidths = np.array([[80.0, 100.0, 140.0], [60.0, 120.0, 200.0]])
    got = sv._formant_envelope(freqs, formants, bandwidths)
    for frame in range(2):
        expected = np.ones_like(freqs)
        for centre, bandwidth in zip(formants[frame], bandwidths[frame], strict=True):
            half = bandwidth / 2
            # H(s) = |p|² / ((s - p)(s - p*)), p = -half + i·centre, at s = i·f
            _, response = scipy.signal.freqs([centre ** 2 + half ** 2],
                                             [1.0, 2 * half, centre ** 2 + half ** 2], freqs)
            expected *= np.abs(response)
        np.testing.assert_allclose(got[frame], expected, rtol=1e-4)


def test_rosenberg_pulse_shape():
    phase = np.linspace(0, 1, 1001, endpoint=False)
    flow = sv._rosenberg(phase)
    assert flow.min() >= 0 and flow.max() == pytest.approx(1.0, abs=1e-5)
    assert phase[np.argmax(flow)] == pytest.approx(sv._OPENING, abs=2e-3)
    assert (flow[phase > sv._OPENING + sv._CLOSING] == 0).all()  # closed phase


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_voice_different_seed_different():
    labels = sample_processes(SyntheticConfig(steps_per_recording=40), 2).labels
    times = _times(10)
    a = synthesize_voice(labels, times, 11)
    b = synthesize_voice(labels, times, 11)
    c = synthesize_voice(labels, times, 12)
    assert a.dtype == np.float32 and a.shape == (10 * SAMPLE_RATE,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 1.0
    assert _speaker(11) != _speaker(12)


def test_cue_strength_zero_removes_that_label_from_the_voice():
    times = _times(6)
    low, high = _constant(6, -0.7, -0.7), _constant(6, 0.7, 0.7)
    swap_arousal = low.copy()
    swap_arousal[:, 1] = 0.7
    np.testing.assert_array_equal(synthesize_voice(low, times, 3, arousal_cue=0.0),
                                  synthesize_voice(swap_arousal, times, 3, arousal_cue=0.0))
    assert not np.array_equal(synthesize_voice(low, times, 3),
                              synthesize_voice(swap_arousal, times, 3))
    np.testing.assert_array_equal(
        synthesize_voice(low, times, 3, arousal_cue=0.0, valence_cue=0.0),
        synthesize_voice(high, times, 3, arousal_cue=0.0, valence_cue=0.0))


# ---------------------------------------------------------------------------- levels and noise


def test_speech_level_is_calibrated_and_rarely_clips():
    times, neutral = _times(8), _constant(8, 0.0, 0.0)
    levels = []
    for seed in range(12):
        x = synthesize_voice(neutral, times, seed, noise=0.0)
        tracks = voice_tracks(neutral, times, seed, noise=0.0)
        voiced = sv._upsample(tracks.voiced, x.size) > 0.3
        rms = np.sqrt(np.mean(x[voiced].astype(np.float64) ** 2))
        levels.append(20 * np.log10(rms / sv._NOMINAL_RMS) - _speaker(seed).gain_db)
    assert abs(np.median(levels)) < 2.0  # dB: _LEVEL still puts speech at _NOMINAL_RMS
    assert np.ptp(levels) < 12.0  # vowels and voices differ, but not wildly
    # Labels as the corpus draws them: clipping is rare.
    config = SyntheticConfig(steps_per_recording=240)
    clipped = [np.mean(np.abs(synthesize_voice(sample_processes(config, seed).labels,
                                               _times(60), seed)) >= 1.0)
               for seed in range(3)]
    assert max(clipped) < 1e-4


def test_pauses_hold_only_background_noise_at_the_speakers_snr():
    labels, times = _constant(20, 0.0, 0.0), _times(20)
    tracks = voice_tracks(labels, times, 5)
    clean = synthesize_voice(labels, times, 5, noise=0.0)
    noisy = synthesize_voice(labels, times, 5, noise=1.0)
    speaking = sv._upsample(tracks.speaking.astype(float), clean.size) > 0
    silent = ~speaking
    assert 0.05 < silent.mean() < 0.5  # pauses exist, speech dominates
    # 20 ms away from speech (the vocal-tract filter works on 32 ms frames): silence,
    # below -60 dB of the nominal speech level
    reach = int(0.02 * SAMPLE_RATE)
    far = np.convolve(speaking, np.ones(2 * reach + 1), "same") == 0
    assert np.abs(clean[far]).max() < 1e-3 * sv._NOMINAL_RMS
    noise_db = 20 * np.log10(np.sqrt(np.mean(noisy[silent].astype(np.float64) ** 2))
                             / sv._NOMINAL_RMS)
    assert abs(noise_db + _speaker(5).snr_db) < 3.0  # ± the slow ±2 dB drift
    # Twice the noise knob, twice the noise in the pauses (same noise stream).
    louder = synthesize_voice(labels, times, 5, noise=2.0)
    ratio = np.std(louder[silent]) / np.std(noisy[silent])
    assert ratio == pytest.approx(2.0, rel=0.01)


# ---------------------------------------------------------------------------- what openSMILE hears


@pytest.mark.parametrize("seed", [0, 1])
def test_high_arousal_raises_pitch_loudness_and_rate(smile, seed):
    times = _times(20)
    low = _llds(smile, synthesize_voice(_constant(20, 0.0, -0.8), times, seed))
    high = _llds(smile, synthesize_voice(_constant(20, 0.0, 0.8), times, seed))
    f0_rise = (_voiced_median(high, "F0semitoneFrom27.5Hz_sma3nz")
               - _voiced_median(low, "F0semitoneFrom27.5Hz_sma3nz"))
    expected = 1.6 * sv.AROUSAL_F0_SEMITONES
    assert 0.6 * expected < f0_rise < 1.4 * expected
    # +8 dB of speech; less in loudness where the background noise is near (SNR 8–25 dB)
    assert _voiced_median(high, "Loudness_sma3") > 1.15 * _voiced_median(low, "Loudness_sma3")

    def syllable_rate(llds) -> float:
        """Peak of the loudness modulation spectrum between 1.5 and 10 Hz."""
        envelope = llds["Loudness_sma3"] - llds["Loudness_sma3"].mean()
        spectrum = np.abs(np.fft.rfft(envelope * np.hanning(envelope.size)))
        freqs = np.fft.rfftfreq(envelope.size, 0.01)
        band = (freqs > 1.5) & (freqs < 10)
        return float(freqs[band][np.argmax(spectrum[band])])

    speaker_rate = _speaker(seed).syllable_rate
    assert syllable_rate(low) == pytest.approx(
        speaker_rate * 2 ** (-0.8 * sv.AROUSAL_RATE_OCTAVES), rel=0.15)
    assert syllable_rate(high) == pytest.approx(
        speaker_rate * 2 ** (0.8 * sv.AROUSAL_RATE_OCTAVES), rel=0.15)


@pytest.mark.parametrize("seed", [0, 1])
def test_valence_brightens_the_voice_and_raises_pitch_less_than_arousal(smile, seed):
    """The valence cues openSMILE sees reliably: alpha ratio (energy 1–5 kHz over 50 Hz–1 kHz)
    and F0. The 4 % formant shift it sees inconsistently: over 8 speakers the median F2
    moved by -1 to +6 % between valence -0.8 and +0.8, so that is not asserted."""
    times = _times(20)
    low = _llds(smile, synthesize_voice(_constant(20, -0.8, 0.0), times, seed))
    high = _llds(smile, synthesize_voice(_constant(20, 0.8, 0.0), times, seed))
    brighter = _voiced_median(high, "alphaRatio_sma3") - _voiced_median(low, "alphaRatio_sma3")
    assert brighter > 1.0  # dB; measured 1.7–4.9 over 8 speakers
    f0_rise = (_voiced_median(high, "F0semitoneFrom27.5Hz_sma3nz")
               - _voiced_median(low, "F0semitoneFrom27.5Hz_sma3nz"))
    expected = 1.6 * sv.VALENCE_F0_SEMITONES  # 1.1 semitones; arousal's is 4.8
    assert 0.6 * expected < f0_rise < 1.4 * expected


def test_pitch_and_loudness_follow_a_varying_arousal(smile):
    config = SyntheticConfig(steps_per_recording=240)
    labels = sample_processes(config, 0).labels
    llds = _llds(smile, synthesize_voice(labels, _times(60), 100))
    # 1 s averages (voiced frames for F0) against the mean label of that second.
    second = np.floor(llds["time"]).astype(int)
    voiced = llds["F0semitoneFrom27.5Hz_sma3nz"] > 0
    rows = [s for s in range(60) if (voiced & (second == s)).sum() >= 10]
    assert len(rows) > 50
    f0 = [llds["F0semitoneFrom27.5Hz_sma3nz"][voiced & (second == s)].mean() for s in rows]
    loudness = [llds["Loudness_sma3"][second == s].mean() for s in rows]
    arousal = np.array([labels[4 * s:4 * s + 4, 1].mean() for s in rows])
    # Over 6 label/voice seeds: F0 0.74–0.81, loudness 0.48–0.66.
    assert np.corrcoef(f0, arousal)[0, 1] > 0.6
    assert np.corrcoef(loudness, arousal)[0, 1] > 0.35


def test_voicing_and_loudness_drop_in_pauses(smile):
    labels, times = _constant(30, 0.0, 0.0), _times(30)
    llds = _llds(smile, synthesize_voice(labels, times, 0))
    tracks = voice_tracks(labels, times, 0)
    index = np.minimum(np.rint(llds["time"] * CONTROL_RATE).astype(int), tracks.times.size - 1)
    speaking = tracks.speaking[index]
    # Pause frames at least 60 ms from speech (the analysis windows reach that far).
    reach = int(0.06 * CONTROL_RATE)
    near_speech = np.convolve(tracks.speaking.astype(float), np.ones(2 * reach + 1),
                              "same")[index] > 0
    pause = ~near_speech
    assert pause.sum() > 100
    voiced = llds["F0semitoneFrom27.5Hz_sma3nz"] > 0
    assert voiced[pause].mean() < 0.05
    assert voiced[speaking].mean() > 0.4
    # Pauses keep the background noise: over 8 speakers (SNR 9–23 dB) their median
    # loudness was 0.37–0.75 of the voiced frames'.
    loudness = llds["Loudness_sma3"]
    assert np.median(loudness[pause]) < 0.85 * np.median(loudness[voiced])


# ---------------------------------------------------------------------------- wav files


def test_wav_round_trip(tmp_path):
    signal = synthesize_voice(_constant(3, 0.2, 0.4), _times(3), 4)
    path = write_wav(tmp_path / "sub" / "voice.wav", signal)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.getnframes() == signal.size
    back, rate = read_wav(path)
    assert rate == SAMPLE_RATE
    np.testing.assert_allclose(back, signal, atol=1.0 / 32767)
    soundfile = pytest.importorskip("soundfile")  # an independent reader
    other, other_rate = soundfile.read(str(path), dtype="float32")
    assert other_rate == SAMPLE_RATE
    np.testing.assert_allclose(other, signal, atol=1.5 / 32767)


def test_write_wav_into_an_unwritable_place_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AvstanError, match="cannot write the wav"):
        write_wav(blocker / "voice.wav", np.zeros(100, dtype=np.float32))


# ---------------------------------------------------------------------------- not sufficient


@pytest.mark.slow
def test_a_linear_model_on_the_functionals_learns_arousal_well_but_not_perfectly():
    """Ridge regression (numpy lstsq) from standardised eGeMAPS functionals of 16 training
    recordings (30 s each) to the labels of 8 unseen ones (other speakers)."""
    config = SyntheticConfig.preset("default", crop_size=16, steps_per_recording=120)

    def partition(name: str, count: int):
        recordings = [generate_recording(config, f"{name}_{i}", name,
                                         recording_seed(config, name, i)) for i in range(count)]
        features = np.concatenate([r.audio_features for r in recordings]).astype(np.float64)
        labels = np.concatenate([r.labels for r in recordings]).astype(np.float64)
        return features, labels

    x_train, y_train = partition("train", 16)
    x_test, y_test = partition("test", 8)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9

    def design(x):
        # z-scores clipped: *_stddevNorm functionals explode where a mean nears zero
        return np.hstack([np.clip((x - mean) / std, -5, 5), np.ones((len(x), 1))])

    a = design(x_train)
    ridge = np.sqrt(0.1 * len(a)) * np.eye(a.shape[1])
    ridge[-1, -1] = 0  # no penalty on the intercept
    weights = np.linalg.lstsq(np.vstack([a, ridge]),
                              np.vstack([y_train, np.zeros((a.shape[1], 2))]), rcond=None)[0]
    prediction = design(x_test) @ weights
    valence, arousal = (_ccc(prediction[:, k], y_test[:, k]) for k in range(2))
    print(f"ridge test CCC: valence {valence:.3f}, arousal {arousal:.3f}")
    # Corpus seeds 0-4 gave arousal 0.56-0.63 and valence -0.05-0.37 (0.36 / 0.63 here):
    # valence from audio alone is weak and not always there across unseen speakers.
    assert 0.4 < arousal < 0.9
    assert valence < arousal - 0.15
