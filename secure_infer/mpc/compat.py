"""Make CrypTen 0.4.1 importable and usable on torch 2.13: import this module before `crypten`.

CrypTen was written against torch ~1.13; three things moved since:
- `torch.onnx._internal.registration` now lives in `torch.onnx._internal.torchscript_exporter.registration`;
- `torch.onnx.export` defaults to the dynamo exporter, which CrypTen's ONNX converter cannot read (`dynamo=False`);
- the TorchScript exporter emits `Identity` nodes, for which CrypTen's converter has no module.
The encoder in this package is written on CrypTen tensors directly and does not use the ONNX path, but the
shim keeps `crypten.nn.from_pytorch` usable for small heads. opset 17 `LayerNormalization` stays unsupported.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["import_crypten"]

_OLD = "torch.onnx._internal.registration"
_NEW = "torch.onnx._internal.torchscript_exporter.registration"


def _alias_registration() -> None:
    if _OLD in sys.modules:
        return
    try:
        importlib.import_module(_OLD)
    except ModuleNotFoundError:
        sys.modules[_OLD] = importlib.import_module(_NEW)


def _patch_export(crypten_mod: ModuleType) -> None:
    """Force the TorchScript exporter inside CrypTen's converter only (not for the rest of the process)."""
    converter = crypten_mod.nn.onnx_converter
    onnx_ns = converter.torch.onnx
    original = onnx_ns.export
    if getattr(original, "_privgate_patched", False):
        return

    @functools.wraps(original)
    def export(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("dynamo", False)
        return original(*args, **kwargs)

    export._privgate_patched = True  # type: ignore[attr-defined]
    onnx_ns.export = export
    module = crypten_mod.nn.module
    if not hasattr(module, "Identity"):
        # the converter looks ONNX op types up as attributes of crypten.nn.module
        module.Identity = _identity_class(module.Module)


def _identity_class(base: type) -> type:
    class Identity(base):  # type: ignore[misc]
        """ONNX `Identity`: passes its single input through."""

        def forward(self, x: Any) -> Any:
            return x

        @staticmethod
        def from_onnx(attributes: Any = None) -> Identity:
            return Identity()

    return Identity


def import_crypten() -> ModuleType:
    """Import CrypTen with the torch-2.13 shim applied, silencing only CrypTen's own import-time warnings."""
    _alias_registration()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        crypten_mod = importlib.import_module("crypten")
    _patch_export(crypten_mod)
    return crypten_mod
