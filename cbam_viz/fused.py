"""CBAM's gates for CPU inference as compiled kernels (``fused_gates.c``), built on first use.

Stock PyTorch runs a CBAM block as ~30 small operator calls and 7 passes over the feature map;
on a 2-core CPU that made the CBAM-ResNet-50 forward ~1.2x torchvision's plain ResNet-50 for 0.3%
more FLOPs. The kernels do the same arithmetic in 4 passes: one call per gate and one for the last
pass (:func:`channel_gate`, :func:`spatial_gate`, :func:`gate_residual`), or one call for the whole
block when no hook watches its gates (:func:`cbam_block`; ``bench/README.md``).

The C file is compiled with the system's C compiler (``$CC``, else ``cc``; :data:`FLAGS`) into
``~/.cache/cbam-viz/kernels`` (``$CBAM_VIZ_KERNEL_CACHE``; a private temporary folder when that
cannot be written) once per source, compiler and CPU, and loaded with ctypes. Without a compiler
every gate runs on stock operators after a one-time warning (same results, only slower); with
``CBAM_VIZ_FUSED=0`` too, silently. :mod:`cbam_viz.attention` decides per call whether a gate may
use the kernels (:func:`usable`, :func:`unobserved`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

SOURCE = Path(__file__).with_name("fused_gates.c")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC")
MAX_WIDTH = 4096  # the spatial kernel keeps a row of the map on the stack

_P, _I, _N = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "channel_gate": [_P, _I, _I, _I, _P, _P, _I, _P, _P, _P, _N],
    "spatial_gate": [_P, _P, _I, _I, _I, _I, _P, _I, _P, _P, _P, _P, ctypes.c_double, _N, _P, _N],
    "gate_residual": [_P, _P, _P, _P, _I, _I, _I, _N, _N],
    "cbam_block": [_P, _P, _I, _I, _I, _I, _N, _P, _P, _I, _P, _P, _P, _I, _P, _P, _P, _P, ctypes.c_double, _N, _N, _P, _P,
                   _N],
}
ORDERS = {"channel-first": 0, "spatial-first": 1, "parallel": 2}  # fused_gates.c's enum


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({l for l in lines if l.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def build(cache: Path | None = None, compiler: str | None = None) -> Path:
    """Compile ``fused_gates.c`` into ``cache`` (once per source, compiler and CPU); the library's path.

    Raises ``OSError`` (compiler missing) or ``subprocess.CalledProcessError`` (compilation failed).
    """
    compiler = compiler or os.environ.get("CC", "cc")
    cache = cache or Path(os.environ.get("CBAM_VIZ_KERNEL_CACHE", Path.home() / ".cache" / "cbam-viz" / "kernels"))
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, version, *FLAGS, _cpu_id()]).encode()).hexdigest()
    target = cache / f"fused_gates-{key[:16]}.so"
    if not target.is_file():
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:  # no writable cache: a private folder of this process (never a guessable shared path)
            cache = Path(tempfile.mkdtemp(prefix="cbam-viz-kernels-"))
            target = cache / target.name
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)  # compiled aside, then renamed: never half a file
        os.close(fd)
        try:
            subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True, check=True)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on the first call; None (after one warning) when they cannot be had."""
    if os.environ.get("CBAM_VIZ_FUSED", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(build()))
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        warnings.warn(f"CBAM's compiled gates are unavailable, stock operators run instead (slower): {detail.strip()[:500]}",
                      RuntimeWarning, stacklevel=2)
        return None
    for name, argtypes in _SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
    return lib


def unobserved(*modules: nn.Module) -> bool:
    """No forward hook watches these modules, so a kernel may compute them without calling them
    (:class:`cbam_viz.capture.AttentionRecorder` hooks only the CBAM modules, which are always called;
    counters such as :func:`cbam_viz.complexity.count_complexity` hook every module and so get the
    stock path)."""
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def usable(*tensors: Tensor | None) -> bool:
    """The kernels may run on these tensors (feature maps and parameters; None is skipped): all
    float32, contiguous, on the CPU, in inference (no autograd, tracing or dispatch mode), and the
    library is available."""
    if torch.is_grad_enabled() or is_in_torch_dispatch_mode() or torch.compiler.is_compiling():
        return False
    for t in tensors:
        if t is not None and not (t.is_cpu and t.dtype is torch.float32 and t.is_contiguous()):
            return False
    return tensors[0].dim() == 4 and tensors[0].shape[-1] <= MAX_WIDTH and library() is not None


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _check(status: int) -> None:
    if status != 0:
        raise MemoryError("CBAM's compiled gates could not allocate their scratch memory")


def _shape_error(what: str, got: tuple, expected: tuple) -> ValueError:
    """What the stock operators would have refused; the kernels must never read past a tensor."""
    return ValueError(f"{what} has shape {tuple(got)}, expected {tuple(expected)}")


def _check_mlp(c: int, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> int:
    """The channel MLP's hidden width, after checking its weights against ``c`` channels."""
    hidden = w1.shape[0]
    if (w1.shape[:2] != (hidden, c) or w2.shape[:2] != (c, hidden) or w1.numel() != hidden * c != w2.numel()
            or (b1 is not None and b1.numel() != hidden) or (b2 is not None and b2.numel() != c)):
        raise _shape_error("the channel MLP's weights", (*w1.shape, *w2.shape), (hidden, c, c, hidden))
    return hidden


def _check_conv(weight: Tensor) -> int:
    """The spatial convolution's kernel size, after checking its weight."""
    k = weight.shape[-1]
    if weight.shape != (1, 2, k, k) or k % 2 == 0:
        raise _shape_error("the spatial gate's convolution weight", weight.shape, (1, 2, "k", "k odd"))
    return k


def channel_gate(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
    """Channel attention weights (B, C, 1, 1) of ``x`` through the shared MLP ``w2 relu(w1 . + b1) + b2``
    (weights (hidden, C[, 1, 1]) and (C, hidden[, 1, 1]), biases may be None)."""
    b, c, h, w = x.shape
    hidden = _check_mlp(c, w1, b1, w2, b2)
    out = x.new_empty(b, c, 1, 1)
    _check(library().channel_gate(x.data_ptr(), b, c, h * w, w1.data_ptr(), _ptr(b1), hidden, w2.data_ptr(),
                                  _ptr(b2), out.data_ptr(), torch.get_num_threads()))
    return out


def spatial_gate(x: Tensor, weight: Tensor, bn: tuple | None, max_first: bool, scale: Tensor | None = None) -> Tensor:
    """Spatial attention weights (B, 1, H, W) of ``x``, or of ``x * scale`` (``scale`` (B, C, 1, 1)):
    the k x k convolution ``weight`` (1, 2, k, k), then the BatchNorm of ``bn`` = (weight, bias,
    running mean, running variance, eps) if given."""
    b, c, h, w = x.shape
    k = _check_conv(weight)
    out = x.new_empty(b, 1, h, w)
    *stats, eps = bn if bn is not None else (None, None, None, None, 0.0)
    _check(library().spatial_gate(x.data_ptr(), _ptr(scale), b, c, h, w, weight.data_ptr(), k,
                                  *map(_ptr, stats), eps, int(max_first), out.data_ptr(), torch.get_num_threads()))
    return out


def cbam_block(x: Tensor, residual: Tensor, relu: bool, order: str, mlp: tuple | None, conv: tuple | None,
               keep_gates: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``residual + CBAM(x)`` in place in one call (then ReLU if ``relu``), for a block whose gates
    nothing watches. ``mlp`` is :func:`channel_gate`'s ``(w1, b1, w2, b2)``, ``conv``
    :func:`spatial_gate`'s ``(weight, bn, max_first)``; None for a gate the block does not have.
    Returns ``x`` and, with ``keep_gates``, the gates' weights (B, C, 1, 1) and (B, 1, H, W) (else
    None: they were scratch inside the call)."""
    b, c, h, w = x.shape
    if residual.shape != x.shape:
        raise _shape_error("the residual", residual.shape, x.shape)
    w1, b1, w2, b2 = mlp if mlp is not None else (None,) * 4
    weight, bn, max_first = conv if conv is not None else (None, None, False)
    hidden = 0 if mlp is None else _check_mlp(c, *mlp)
    k = 0 if conv is None else _check_conv(weight)
    *stats, eps = bn if bn is not None else (None, None, None, None, 0.0)
    channel = x.new_empty(b, c, 1, 1) if keep_gates and mlp is not None else None
    spatial = x.new_empty(b, 1, h, w) if keep_gates and conv is not None else None
    _check(library().cbam_block(x.data_ptr(), residual.data_ptr(), b, c, h, w, ORDERS[order], _ptr(w1), _ptr(b1),
                                hidden, _ptr(w2), _ptr(b2), _ptr(weight), k, *map(_ptr, stats), eps, int(max_first),
                                int(relu), _ptr(channel), _ptr(spatial), torch.get_num_threads()))
    return x, channel, spatial


def gate_residual(x: Tensor, residual: Tensor, relu: bool, channel: Tensor | None, spatial: Tensor | None) -> Tensor:
    """``x = residual + x * channel * spatial`` in place (channel (B, C, 1, 1) and spatial (B, 1, H, W)
    weights, either may be None), then ReLU if ``relu``; returns ``x``. Gates of other shapes or
    types (a hook may replace a gate's output) are applied by stock operators, as they broadcast."""
    b, c, h, w = x.shape
    expected = ((channel, (b, c, 1, 1)), (spatial, (b, 1, h, w)))
    if residual.shape != x.shape or any(g is not None and not (g.shape == shape and g.is_cpu and g.dtype is torch.float32)
                                        for g, shape in expected):
        for gate, _ in expected:
            x = x if gate is None else x.mul_(gate)
        x = x.add_(residual)
        return x.relu_() if relu else x
    channel = None if channel is None else channel.contiguous()
    spatial = None if spatial is None else spatial.contiguous()
    library().gate_residual(x.data_ptr(), _ptr(channel), _ptr(spatial), residual.data_ptr(), b, c, h * w, int(relu),
                            torch.get_num_threads())
    return x
