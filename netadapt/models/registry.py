"""Built-in model names (import-free, so config validation needs no torch)."""

BUILTIN_MODELS = {
    "mobilenet_v2": "netadapt.models.mobilenet_v2:MobileNetV2",
    "mobilenet_v1": "netadapt.models.mobilenet_v1:MobileNetV1",
    "plain_cnn": "netadapt.models.plain_cnn:PlainCNN",
    "mobilenet_v3": "netadapt.models.mobilenet_v3:MobileNetV3",  # a plain nn.Module: traced
}
