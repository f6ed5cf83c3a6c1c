"""cbam-viz: see what a CBAM-ResNet attends to.

The names below load on first use, so that the parts of the package that need no torch (images,
renderers, model cards, the precomputed gallery) import without it: the app's first page does.
"""

from importlib import import_module

_EXPORTS = {
    "CBAM": "models.attention", "CBAMConfig": "models.attention", "ChannelAttention": "models.attention",
    "SpatialAttention": "models.attention",
    "CBAMResNet": "models.resnet", "cbam_resnet": "models.resnet", "cbam_resnet18": "models.resnet",
    "cbam_resnet34": "models.resnet", "cbam_resnet50": "models.resnet", "cbam_resnet101": "models.resnet",
    "load_checkpoint": "models.checkpoints",
    "count_complexity": "models.complexity",
    "AttentionRecord": "explain.recorder", "AttentionRecorder": "explain.recorder",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cbam_viz' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
