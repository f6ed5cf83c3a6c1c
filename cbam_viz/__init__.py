"""cbam-viz: see what a CBAM-ResNet attends to."""

from .attention import CBAM, CBAMConfig, ChannelAttention, SpatialAttention
from .capture import AttentionRecord, AttentionRecorder
from .checkpoints import load_checkpoint
from .complexity import count_complexity
from .resnet import CBAMResNet, cbam_resnet, cbam_resnet18, cbam_resnet34, cbam_resnet50, cbam_resnet101

__all__ = [
    "CBAM",
    "CBAMConfig",
    "ChannelAttention",
    "SpatialAttention",
    "AttentionRecord",
    "AttentionRecorder",
    "load_checkpoint",
    "count_complexity",
    "CBAMResNet",
    "cbam_resnet",
    "cbam_resnet18",
    "cbam_resnet34",
    "cbam_resnet50",
    "cbam_resnet101",
]
