"""The registered model's code (MLflow "models from code": `registry.log_model` logs this file as the
pyfunc model, so loading runs it and unpickles nothing): it scores images as users hold them.

Input: a batch of images with pixel values in [0, 255], uint8 or any real dtype, as [N, C, H, W] or,
when the shape tells them apart unambiguously, [N, H, W, C] (one image without the batch axis is a
batch of one). The training normalization, (x / 255 - mean) / std per channel (`input.json`: the
prepared data's `mean` / `std`), is applied inside, by the exported network itself. Output: float32
logits [N, classes]; the predicted class is their argmax.

Self-contained on purpose (numpy, torch, mlflow): whoever loads the model needs no netadapt.
"""

from __future__ import annotations

import json

import mlflow.pyfunc
import numpy as np


def channels_first(images, shape) -> np.ndarray:
    """`images` as a float32 [N, C, H, W] batch for a network of input `shape` (C, H, W): NCHW as
    given, NHWC transposed when its shape says so and NCHW's does not; anything else is a ValueError
    naming both expected shapes."""
    x = np.asarray(images)
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"images must be uint8 or real numbers in [0, 255], got dtype {x.dtype}")
    c, h, w = (int(v) for v in shape)
    if x.ndim == 3:
        x = x[None]
    if x.ndim == 4 and tuple(x.shape[1:]) == (c, h, w):
        pass
    elif x.ndim == 4 and tuple(x.shape[1:]) == (h, w, c):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"images of shape {tuple(x.shape)}: expected [N, {c}, {h}, {w}] (NCHW) or "
                         f"[N, {h}, {w}, {c}] (NHWC), pixel values in [0, 255]")
    return np.ascontiguousarray(x, dtype=np.float32)


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """The exported network (normalization inside, `torch.export`) behind a layout- and
    dtype-tolerant `predict`."""

    # MLflow 3 wraps `predict` to validate inputs by its type hints, and warns when there are none; the
    # input is open on purpose (uint8 or float, NCHW or NHWC): MLflow's own switch for its model classes
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        import torch

        self.network = torch.export.load(context.artifacts["network"]).module()
        self.input = json.loads(open(context.artifacts["input"]).read())

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would validate by them
        import torch

        x = torch.from_numpy(channels_first(model_input, self.input["shape"]))
        with torch.no_grad():
            return self.network(x).numpy()


mlflow.models.set_model(ImageClassifier())
