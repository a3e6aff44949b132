"""A small Transformer's forward in one C call, and its backward in another (models/native.c): the
sampler's token steps and an RL step's passes over its batch, where torch spends most of the time on the
cost of each operation rather than on arithmetic (bench/rl_step.py). Opt-in (`native=true` of the RL
trainer, `native=True` of the sampler): values and gradients close to the torch path's but not bit for
bit, so a run with it draws other tokens than the same seed without it.

The source is compiled on first use (the machine's C compiler, -march=native, a few tenths of a second)
into a temporary directory kept for the process. Products go to the BLAS inside torch (its exported
`sgemm`), so the machine needs no BLAS of its own.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from selfevolve.models.transformer import KVCache, Transformer, rope_cos_sin

SOURCE = Path(__file__).with_name("native.c")
COMPILE = ("-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC", "-c")
# linked apart, without -ffast-math: linked with it, gcc adds crtfastmath.o, whose constructor flushes
# subnormal numbers to zero in the whole process the library is loaded into
LINK = ("-shared", "-fopenmp")
ENCODINGS = ("rope", "nope")  # position encodings the C forward knows
PTR = ctypes.c_void_p


@functools.cache
def library() -> tuple[ctypes.CDLL, tempfile.TemporaryDirectory]:
    """The compiled forward, with the directory that holds it (alive as long as the process)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("native=true compiles models/native.c and needs a C compiler (cc or gcc) on PATH")
    torch_cpu = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    blas = ctypes.CDLL(str(torch_cpu)) if torch_cpu.exists() else None
    if blas is None or not hasattr(blas, "sgemm"):
        raise RuntimeError("native=true needs the sgemm that a Linux build of torch exports; this one has none")
    build = tempfile.TemporaryDirectory(prefix="selfevolve-native-")
    obj, out = Path(build.name) / "native.o", Path(build.name) / "native.so"
    for command in ([compiler, *COMPILE, str(SOURCE), "-o", str(obj)],
                    [compiler, *LINK, str(obj), "-o", str(out), "-lm"]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"compiling {SOURCE.name} failed:\n{done.stderr}")
    lib = ctypes.CDLL(str(out))
    lib.set_sgemm(ctypes.cast(blas.sgemm, PTR))
    lib.forward.argtypes = [ctypes.c_int] * 9 + [ctypes.c_float] + [PTR] * 7 + [ctypes.c_long] * 2 + [PTR] * 3
    lib.backward.argtypes = [ctypes.c_int] * 7 + [PTR] * 10
    lib.forward.restype = lib.backward.restype = None
    return lib, build


class NativeForward:
    """`Transformer.features` of one model, as it is now: weights are gathered (and the query-key-value and
    gate-up products packed) once, so make one per batch of calls, after any update. With gradients
    enabled, a whole-sequence call is differentiable: the forward keeps its activations and the backward
    runs in C too."""

    def __init__(self, model: Transformer) -> None:
        blocks = model.plain_blocks() if isinstance(model, Transformer) else None
        if blocks is None or model.cfg.pos_encoding not in ENCODINGS:
            raise ValueError(f"native=true runs our own Transformer with {' or '.join(ENCODINGS)} positions and no "
                             "adapters or hooks; merge LoRA first, or leave native off")
        embed = model.embed_tokens.weight
        if embed.dtype != torch.float32 or embed.device.type != "cpu":
            raise ValueError(f"native=true runs float32 models on the CPU, not {embed.dtype} on {embed.device}")
        self.model, self.cfg = model, model.cfg
        self.kv_dim = model.cfg.n_kv_head * (model.cfg.n_embd // model.cfg.n_head)  # keys' (and values') width
        self.params = [w for block in blocks for w in block] + [model.norm.weight, embed]
        with torch.no_grad():
            packed = [(ln1, torch.cat([wq, wk, wv]), wo, ln2, torch.cat([gate, up]), down)
                      for ln1, wq, wk, wv, wo, ln2, gate, up, down in blocks]
            self.weights = [w.detach().contiguous() for layer in packed for w in layer]
            self.weights += [model.norm.weight.detach().contiguous(), embed.detach().contiguous()]
        self.pointers = (PTR * len(self.weights))(*[w.data_ptr() for w in self.weights])
        self.lib = library()[0]

    def features(self, idx: torch.Tensor, positions: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                 cache: KVCache | None = None) -> torch.Tensor:
        """Final normed hidden states (B, T, n_embd) of token ids (B, T), as `Transformer.features` gives
        them: positions (B, T) for RoPE (by default the whole sequence's), mask (B, 1, T, T_total)
        boolean (None: causal), cache: keys and values before these tokens, extended by them."""
        cfg = self.cfg
        B, T = idx.shape
        lo, hi = torch.aminmax(idx)
        if lo < 0 or hi >= cfg.vocab_size:
            raise ValueError(f"token ids must lie in [0, {cfg.vocab_size}), got {int(lo)}..{int(hi)}")
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.params)
        if grad and cache is not None:
            raise ValueError("the native forward takes gradients over whole sequences only, without a cache")
        if cache is None:
            cache = KVCache(cfg, B, T, torch.float32, idx.device)
        if not (cache.k.is_contiguous() and cache.v.is_contiguous() and cache.k.dtype == torch.float32
                and cache.k.shape[1] == B):
            raise ValueError(f"the cache must hold contiguous float32 keys and values of {B} rows")
        length = cache.length
        if length + T > cache.k.shape[3]:
            raise ValueError(f"{length} cached + {T} new tokens exceed the cache's {cache.k.shape[3]}")
        cos = sin = None
        if cfg.pos_encoding == "rope":
            if positions is None:
                positions = self.model.positions(idx)[0] + length
            cos, sin = rope_cos_sin(positions, cfg.n_embd // cfg.n_head, cfg.rope_theta, torch.float32)
        if mask is not None:
            if mask.shape != (B, 1, T, length + T) or mask.dtype != torch.bool:
                raise ValueError(f"mask must be boolean {(B, 1, T, length + T)}, got {mask.dtype} {tuple(mask.shape)}")
            if mask.stride(-1) != 1:
                mask = mask.contiguous()
        ids = idx.contiguous()
        if grad:
            return Differentiable.apply(self, ids, cos, sin, mask, cache, *self.params)
        return self.run(ids, cos, sin, mask, cache)

    def run(self, ids, cos, sin, mask, cache: KVCache, saved: torch.Tensor | None = None) -> torch.Tensor:
        """The C forward over checked inputs; its activations into `saved` where given."""
        cfg, (B, T) = self.cfg, ids.shape
        out = torch.empty(B, T, cfg.n_embd)
        work = torch.empty(B * T * (4 * cfg.n_embd + 2 * self.kv_dim + 3 * cfg.intermediate_size))
        self.lib.forward(cfg.n_layer, B, T, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.intermediate_size,
                         cache.k.shape[3], cache.length, cfg.norm_eps, self.pointers, ids.data_ptr(), pointer(cos),
                         pointer(sin), cache.k.data_ptr(), cache.v.data_ptr(), pointer(mask),
                         0 if mask is None else mask.stride(0), 0 if mask is None else mask.stride(2),
                         work.data_ptr(), out.data_ptr(), pointer(saved))
        cache.length += T
        return out

    def saved_size(self, B: int, T: int) -> int:
        """Floats of the activations a differentiable forward of B x T tokens keeps (models/native.c)."""
        cfg, M = self.cfg, B * T
        width = cfg.n_embd + 2 * self.kv_dim
        per_layer = M * (5 * cfg.n_embd + width + cfg.n_head * T + 3 * cfg.intermediate_size + 2)
        return cfg.n_layer * per_layer + M * (cfg.n_embd + 1)


def pointer(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class Differentiable(torch.autograd.Function):
    """`NativeForward.features` with gradients for the model's weights (the inputs after `cache`)."""

    @staticmethod
    def forward(ctx, fast: NativeForward, ids, cos, sin, mask, cache: KVCache, *params):
        B, T = ids.shape
        saved = torch.empty(fast.saved_size(B, T))
        out = fast.run(ids, cos, sin, mask, cache, saved)
        ctx.fast, ctx.inputs = fast, (ids, cos, sin, cache, saved)
        return out

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        fast, (ids, cos, sin, cache, saved) = ctx.fast, ctx.inputs
        cfg, (B, T) = fast.cfg, ids.shape
        D, inner, kv = cfg.n_embd, cfg.intermediate_size, fast.kv_dim
        layer = [(D,), (D + 2 * kv, D), (D, D), (D,), (2 * inner, D), (D, inner)]  # as native.c's packed weights
        grads = [torch.empty(shape) for _ in range(cfg.n_layer) for shape in layer]
        grads += [torch.empty(D), torch.zeros_like(fast.weights[-1])]
        work = torch.empty(B * T * (3 * D + 3 * inner + D + 2 * kv))
        fast.lib.backward(cfg.n_layer, B, T, D, cfg.n_head, cfg.n_kv_head, inner, fast.pointers,
                          ids.data_ptr(), pointer(cos), pointer(sin), cache.k.data_ptr(), cache.v.data_ptr(),
                          saved.data_ptr(), dout.contiguous().data_ptr(),
                          (PTR * len(grads))(*[g.data_ptr() for g in grads]), work.data_ptr())
        out = []
        for i in range(cfg.n_layer):  # back to the model's own weights: q, k, v and gate, up apart
            rms1, qkv, o, rms2, gate_up, down = grads[6 * i: 6 * i + 6]
            out += [rms1, qkv[:D], qkv[D:D + kv], qkv[D + kv:], o, rms2, gate_up[:inner], gate_up[inner:], down]
        return (None,) * 6 + tuple(out + grads[-2:])
