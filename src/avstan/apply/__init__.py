"""A trained model on new media: predict files, follow a stream, draw the attention over
the video, write a page that plays it beside the curves, export to ONNX / TorchScript.

Imports data, models and evaluation (for sliding-window inference, post-processing and
plots); nothing below imports this package.
"""
