"""What the temporal attention of trained ``lstm_ta`` models learnt, on devel.

``lstm_ta`` weights the steps of a clip by A = softmax_t(MLP(S_t)) and feeds T · A ⊙ S to
its LSTM (``models.audio``), so A = 1/T everywhere is the identity and the model is
``lstm``. For each model file given, this runs the devel clips of its real-speech store
(``benchmarks/real_speech.py`` prepares it) through the model and prints how far the
weights are from uniform: their entropy over that of the uniform weights (1 = uniform),
the mean of the largest and of the smallest weight of a clip times T (1 = uniform), and
the gain the weights give each clip position, averaged over the clips. The same numbers
for the model with its attention MLP drawn again as at creation (Xavier weights, three
draws, their mean; the rest of the model as trained) tell whether training moved the attention away
from its random start or back towards the identity. Devel only; test is not read.

With ``--frames`` it measures the frame attention of a model over low-level-descriptor
frames instead (``model.options.frame_descriptors``, ``real_speech.py --lld``): the
weights of the pooling over the frames of the clip's last step (``frame_attention``), and
the same with that pooling's MLP drawn again.

    .venv/bin/python benchmarks/speech_attention.py RUN/model.pt [...]
        [--store runs/real_speech/store] [--frames]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from avstan.data.clips import ClipDataset
from avstan.data.store import RecordingStore
from avstan.models.init import xavier_uniform_init
from avstan.models.model_file import TrainedModel


def attention_weights(model, devel, stride: int = 4, output: str = "temporal_attention"
                      ) -> np.ndarray:
    """The attention weights ``output`` (clips, T; or clips, F for the frame attention) on
    the devel clips, in eval mode."""
    dataset = ClipDataset(devel, model.clip_length, stride, targets=model.targets,
                          with_video=False, with_audio=True, lookahead=model.lookahead)
    weights = []
    with torch.no_grad():
        for start in range(0, len(dataset), 256):
            audio = torch.stack([dataset[i]["audio"]
                                 for i in range(start, min(start + 256, len(dataset)))])
            weights.append(model(audio)[output].numpy())
    return np.concatenate(weights).astype(np.float64)


def summary(weights: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    steps = weights.shape[1]
    entropy = -(weights * np.log(np.clip(weights, 1e-30, None))).sum(axis=1) / np.log(steps)
    return (float(entropy.mean()), float(weights.max(axis=1).mean() * steps),
            float(weights.min(axis=1).mean() * steps), weights.mean(axis=0) * steps)


def redraw_attention(module, seed: int) -> None:
    """An attention MLP drawn again as ``create_model`` draws it (Xavier, zero biases)."""
    torch.manual_seed(seed)
    xavier_uniform_init(module)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model.pt files of lstm_ta runs")
    parser.add_argument("--store", default="runs/real_speech/store",
                        help="the store the models were trained on (benchmarks/real_speech.py "
                             "prepares it; store_w1 for --audio-window 1, store_lld for --lld)")
    parser.add_argument("--frames", action="store_true",
                        help="the frame attention of models over LLD frames")
    args = parser.parse_args()
    output = "frame_attention" if args.frames else "temporal_attention"
    devel = RecordingStore.open(args.store).load_partition("devel", load_frames=False)
    print("| run | attention | entropy / uniform | max weight × T | min weight × T | "
          "gain at the first, middle, last position |")
    print("|---|---|---:|---:|---:|---|")
    for path in args.models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trained = TrainedModel.load(path)
        model = trained.network.eval()
        attention = getattr(model, "frame_encoder" if args.frames else "attention_branch", None)
        if attention is None:
            raise SystemExit(f"{path}: this {trained.model_name} model has no "
                             f"{'frame' if args.frames else 'temporal'} attention")
        if args.frames:
            attention = attention.score
        run = "/".join(Path(path).resolve().parts[-3:-1])
        rows = [("trained", summary(attention_weights(model, devel, output=output)))]
        drawn = []
        for seed in range(3):
            redraw_attention(attention, seed)
            drawn.append(summary(attention_weights(model, devel, output=output)))
        # the attention reads only the standardised features: its start depends on the
        # training set through the standardiser alone
        rows.append(("as at creation (3 draws, mean)",
                     tuple(np.mean([d[i] for d in drawn], axis=0) for i in range(4))))
        for label, (entropy, largest, smallest, gain) in rows:
            middle = gain[len(gain) // 2]
            print(f"| {run} | {label} | {entropy:.3f} | {largest:.2f} | {smallest:.2f} | "
                  f"{gain[0]:.2f}, {middle:.2f}, {gain[-1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
