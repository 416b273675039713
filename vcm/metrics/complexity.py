"""Network complexity of one component call: multiply-accumulates (MACs) and the parameters it read.

MACs come from torch's ``FlopCounterMode`` (FLOPs / 2), which counts convolutions, matrix
products and attention, the operations that dominate a network (element-wise operations,
normalisations and entropy coding are not counted). Parameters are those the call read (every
``nn.Parameter`` an operator received), so an encoder and a decoder built from one model count
only their own halves. Components that are not torch networks but are networks (TFLite heads)
count themselves through :class:`SelfCounting`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

T = TypeVar("T")
MODES = ("per_size", "once", "off")  # eval.complexity: count once per component and image size, once, never


@dataclass(frozen=True)
class Complexity:
    """One call's cost. ``pixels``: H x W of the image the stage works on (the dataset image)."""

    macs: int
    params: int
    pixels: int
    counter: str

    @property
    def kmac_per_pixel(self) -> float:
        return self.macs / self.pixels / 1e3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class SelfCounting(Protocol):
    """A network not run by torch (a TFLite interpreter) with a fixed input size, which counts its
    own cost: (MACs of one call, parameters, what counted them)."""

    def network_cost(self) -> tuple[int, int, str]: ...


def self_counting(component: Any, depth: int = 2) -> list[SelfCounting]:
    """The self-counting networks a component is or holds (attributes, ``depth`` levels deep)."""
    if isinstance(component, SelfCounting):
        return [component]
    if depth == 0 or not hasattr(component, "__dict__"):
        return []
    return [m for v in vars(component).values() for m in self_counting(v, depth - 1)]


def torch_modules(component: Any, depth: int = 2) -> list[Any]:
    """The ``torch.nn.Module`` s a component holds (attributes, ``depth`` levels deep)."""
    import torch

    if isinstance(component, torch.nn.Module):
        return [component]
    if depth == 0 or not hasattr(component, "__dict__"):
        return []
    return [m for v in vars(component).values() for m in torch_modules(v, depth - 1)]


def is_network(component: Any) -> bool:
    """Whether vcm can count the component's cost (a torch network, or a self-counting one)."""
    return bool(self_counting(component)) or bool(torch_modules(component))


def measure(component: Any, fn: Callable[[], Any], height: int, width: int) -> Complexity | None:
    """The cost of one call ``fn`` of ``component`` on an (H, W) image: self-counted, or counted
    by running ``fn`` under the torch counters with autograd off (parameters frozen for the call,
    so a module that returns a parameter as is gives the counter nothing to hook). None, with a
    warning, when the counters fail: a count never stops a run."""
    own = self_counting(component)
    if own:
        costs = [n.network_cost() for n in own]
        return Complexity(sum(c[0] for c in costs), sum(c[1] for c in costs), height * width, costs[0][2])
    params = [p for m in torch_modules(component) for p in m.parameters() if p.requires_grad]
    try:
        with _frozen(params):
            return counted(fn, height * width)[1]
    except Exception as e:  # noqa: BLE001 - the real call follows and raises if the input is bad
        warnings.warn(f"{type(component).__name__}: MACs not counted ({type(e).__name__}: {e})", stacklevel=2)
        return None


@contextlib.contextmanager
def _frozen(params: list[Any]) -> Iterator[None]:
    import torch

    for p in params:
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            yield
    finally:
        for p in params:
            p.requires_grad_(True)


TFLITE_COUNTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")


def tflite_cost(path: str) -> tuple[int, int, str]:
    """MACs of one call of a TFLite model and the size of the weights those operators read, from
    its operator graph (convolutions and matrix products, as torch's counter counts)."""
    from ai_edge_litert import interpreter as litert

    it = litert.Interpreter(model_path=path, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    macs = params = 0
    for op in it._get_ops_details():  # the interpreter's only graph listing
        if op["op_name"] in TFLITE_COUNTED:
            ins = [shapes.get(int(i), []) for i in op["inputs"]]
            macs += _op_macs(op["op_name"], ins, shapes[int(op["outputs"][0])])
            params += sum(int(np.prod(s)) for s in ins[1 + (op["op_name"] == "TRANSPOSE_CONV"):])
    return macs, params, "TFLite operator graph"


def _op_macs(name: str, ins: list[list[int]], out: list[int]) -> int:
    """MACs of one operator from its input shapes (NHWC activations, TFLite weight layouts)."""
    n_out = int(np.prod(out))
    if name == "CONV_2D":  # weights (Cout, kh, kw, Cin)
        return n_out * int(np.prod(ins[1][1:]))
    if name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, C)
        return n_out * ins[1][1] * ins[1][2]
    if name == "TRANSPOSE_CONV":  # (output shape, weights (Cout, kh, kw, Cin), input NHWC)
        return int(np.prod(ins[2])) * int(np.prod(ins[1][:3]))
    return n_out * ins[0][-1]  # FULLY_CONNECTED, BATCH_MATMUL: K = the first input's last dimension


def counted(fn: Callable[[], T], pixels: int) -> tuple[T, Complexity]:
    """Run ``fn`` under the counters: its result and its cost."""
    from torch.utils.flop_counter import FlopCounterMode

    seen = _ParamsRead()
    with FlopCounterMode(display=False) as flops, seen:
        out = fn()
    return out, Complexity(flops.get_total_flops() // 2, seen.total, pixels, "torch FlopCounterMode")


@functools.cache
def _params_mode() -> type:
    from torch.nn import Parameter
    from torch.utils._python_dispatch import TorchDispatchMode

    class ParamsRead(TorchDispatchMode):  # type: ignore[misc]
        """Sums the sizes of the distinct parameters operators receive."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: set[int] = set()
            self.total = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
            for a in (*args, *(kwargs or {}).values()):
                if isinstance(a, Parameter) and id(a) not in self.seen:
                    self.seen.add(id(a))
                    self.total += a.numel()
            return func(*args, **(kwargs or {}))

    return ParamsRead


def _ParamsRead() -> Any:  # noqa: N802 - built lazily: no torch import at ``import vcm``
    return _params_mode()()
