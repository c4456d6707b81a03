"""Achieved memory bandwidth of every workbench kernel on one NVIDIA GPU, beside eager torch.

    python benchmarks/bench_kernels_gpu.py                 # H200 peak (4800 GB/s) as the roofline
    python benchmarks/bench_kernels_gpu.py --peak-gbps 3350 --json out.json   # an H100 SXM

For each kernel and shape it first checks the Triton result against the torch reference on the
same inputs (column ``check``), then times both with ``triton.testing.do_bench`` (CUDA events,
median of repeated runs, L2 flushed between runs) and prints the bytes a kernel must move at the
least, its time, the achieved GB/s and that as a share of the peak HBM bandwidth. These kernels
are bandwidth-bound: the goal is >= 80% of peak on the large shapes. Decode-sized shapes are
launch-bound (a few microseconds) and are listed for latency, not bandwidth. Sampling GB/s counts
one read of the logits; with top-k/top-p the kernel reads them again per search step (from L2).

Sized to run unattended in a few minutes on an H200 (the budget is 8; do_bench caps each timing
at ~50 ms of repeats, so compiling dominates); on a machine without a CUDA device it exits with
status 2 and the message "no CUDA device".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from workbench.kernels import reference, rotary_cos_sin, triton_ops


@dataclass
class Row:
    """One benchmarked (kernel, shape): bytes moved, times in microseconds, bandwidths in GB/s."""

    kernel: str
    shape: str
    mbytes: float
    triton_us: float
    triton_gbps: float
    peak_pct: float
    torch_us: float
    torch_gbps: float
    speedup: float
    check: str


@dataclass
class Case:
    """A kernel call to time: the Triton and torch versions on the same inputs."""

    kernel: str
    shape: str
    nbytes: int
    run_triton: Callable[[], Any]
    run_torch: Callable[[], Any]
    compare: Callable[[Any, Any], bool]


DEVICE = "cuda"  # the CPU test of this script swaps in "cpu" (Triton then runs interpreted)


def pick(size: str, *, tiny: list, quick: list, full: list) -> list:
    """Shapes for a size: "tiny" (the CPU test), "quick" (a smoke run), "full" (quick + large)."""
    return {"tiny": tiny, "quick": quick, "full": quick + full}[size]


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def close(atol: float, rtol: float) -> Callable[[Any, Any], bool]:
    return lambda a, b: bool(torch.allclose(a.float(), b.float(), atol=atol, rtol=rtol))


def rms_norm_cases(dtype: torch.dtype, size: str) -> list[Case]:
    shapes = pick(size, tiny=[(3, 96)], quick=[(8, 2048), (4096, 4096)], full=[(16384, 4096), (16384, 8192)])
    cases = []
    for n, d in shapes:
        x = torch.randn(n, d, device=DEVICE, dtype=dtype)
        w = torch.rand(d, device=DEVICE, dtype=dtype) + 0.5
        moved = 2 * nbytes(x) + nbytes(w)  # read x and weight, write out
        cases.append(
            Case(
                "rms_norm",
                f"[{n}, {d}]",
                moved,
                lambda x=x, w=w: triton_ops.rms_norm(x, w, 1e-5),
                lambda x=x, w=w: reference.rms_norm(x, w, 1e-5),
                close(2e-2, 2e-2),
            )
        )
    return cases


def rotary_cases(dtype: torch.dtype, size: str) -> list[Case]:
    shapes = pick(
        size, tiny=[(2, 3, 4, 16)], quick=[(8, 32, 1, 64), (4, 32, 2048, 128)], full=[(8, 32, 4096, 128)]
    )
    cases = []
    for b, h, t, dh in shapes:
        x = torch.randn(b, h, t, dh, device=DEVICE, dtype=dtype)
        pos = torch.arange(t, device=DEVICE).repeat(b, 1)
        cos, sin = rotary_cos_sin(pos, dh, 500000.0, dtype)
        moved = 2 * nbytes(x) + nbytes(cos, sin)
        cases.append(
            Case(
                "apply_rotary",
                f"[{b}, {h}, {t}, {dh}]",
                moved,
                lambda x=x, c=cos, s=sin: triton_ops.apply_rotary(x, c, s),
                lambda x=x, c=cos, s=sin: reference.apply_rotary(x, c, s),
                close(2e-2, 2e-2),
            )
        )
    return cases


def silu_cases(dtype: torch.dtype, size: str) -> list[Case]:
    shapes = pick(size, tiny=[(3, 100)], quick=[(8, 8192), (4096, 8192)], full=[(16384, 14336)])
    cases = []
    for n, f in shapes:
        g = torch.randn(n, f, device=DEVICE, dtype=dtype)
        u = torch.randn(n, f, device=DEVICE, dtype=dtype)
        cases.append(
            Case(
                "silu_and_mul",
                f"[{n}, {f}]",
                nbytes(g, u, g),  # read gate and up, write out
                lambda g=g, u=u: triton_ops.silu_and_mul(g, u),
                lambda g=g, u=u: reference.silu_and_mul(g, u),
                close(2e-2, 2e-2),
            )
        )
    return cases


def attention_cases(dtype: torch.dtype, size: str) -> list[Case]:
    # (B, Hq, Hkv, Tmax, Dh, lengths): Llama-3.2-1B / 3.1-8B-like heads, full and ragged caches.
    shapes = pick(
        size,
        tiny=[(2, 4, 2, 40, 16, "ragged")],
        quick=[(1, 32, 8, 4096, 64, "full"), (8, 32, 8, 4096, 128, "full")],
        full=[(32, 32, 8, 8192, 128, "ragged")],
    )
    cases = []
    for b, hq, hkv, tmax, dh, fill in shapes:
        q = torch.randn(b, hq, dh, device=DEVICE, dtype=dtype)
        k = torch.randn(b, hkv, tmax, dh, device=DEVICE, dtype=dtype)
        v = torch.randn(b, hkv, tmax, dh, device=DEVICE, dtype=dtype)
        if fill == "full":
            lengths = torch.full((b,), tmax, device=DEVICE, dtype=torch.int32)
        else:
            lengths = torch.randint(1, tmax + 1, (b,), device=DEVICE, dtype=torch.int32)
        filled = int(lengths.sum())
        moved = 2 * filled * hkv * dh * k.element_size() + 2 * nbytes(q)  # K and V prefixes, q, out
        cases.append(
            Case(
                "decode_attention",
                f"B={b} Hq={hq} Hkv={hkv} T={tmax} Dh={dh} {fill}",
                moved,
                lambda q=q, k=k, v=v, n=lengths, s=dh**-0.5: triton_ops.decode_attention(q, k, v, n, s),
                lambda q=q, k=k, v=v, n=lengths, s=dh**-0.5: reference.decode_attention(q, k, v, n, s),
                close(2e-2, 2e-2),
            )
        )
    return cases


def sampling_cases(dtype: torch.dtype, size: str) -> list[Case]:
    b, vocab = (4, 100) if size == "tiny" else (64, 128256)
    logits = torch.randn(b, vocab, device=DEVICE, dtype=dtype) * 3
    mask = torch.randint(-(2**31), 2**31 - 1, (b, (vocab + 31) // 32), device=DEVICE, dtype=torch.int32)
    cases = [
        Case(
            "apply_token_bitmask",
            f"[{b}, {vocab}]",
            2 * nbytes(logits) + nbytes(mask),
            lambda: triton_ops.apply_token_bitmask(logits, mask),
            lambda: reference.apply_token_bitmask(logits, mask),
            lambda a, r: bool(torch.equal(a, r)),
        )
    ]
    configs = {"greedy": (0.0, 0, 1.0), "temperature": (0.8, 0, 1.0), "top-k 50 + top-p 0.9": (0.8, 50, 0.9)}
    if size != "full":
        configs.pop("temperature")
    for name, (temp, k, p) in configs.items():
        kw = {
            "bitmask": mask,
            "temperature": torch.full((b,), temp, device=DEVICE),
            "top_k": torch.full((b,), k, device=DEVICE, dtype=torch.int32),
            "top_p": torch.full((b,), p, device=DEVICE),
            "seed": torch.arange(b, device=DEVICE),
            "step": 3,
        }
        cases.append(
            Case(
                "sample_tokens",
                f"[{b}, {vocab}] {name}",
                nbytes(logits, mask),
                lambda kw=kw: triton_ops.sample_tokens(logits, **kw),
                lambda kw=kw: reference.sample_tokens(logits, **kw),
                # Same tokens but for float near-ties between exp/log implementations.
                lambda a, r: bool((a == r).float().mean() >= 0.98),
            )
        )
    return cases


SUITES = {
    "rms_norm": rms_norm_cases,
    "apply_rotary": rotary_cases,
    "silu_and_mul": silu_cases,
    "decode_attention": attention_cases,
    "sampling": sampling_cases,
}


def measure(case: Case, peak_gbps: float) -> Row:
    from triton.testing import do_bench

    try:
        ok = case.compare(case.run_triton(), case.run_torch())
        check = "ok" if ok else "MISMATCH"
    except Exception as e:  # keep going: one broken kernel should not hide the others' numbers
        return Row(
            case.kernel, case.shape, case.nbytes / 1e6, 0, 0, 0, 0, 0, 0, f"ERROR {type(e).__name__}: {e}"
        )
    t_us = do_bench(case.run_triton, warmup=10, rep=50, return_mode="median") * 1e3
    r_us = do_bench(case.run_torch, warmup=5, rep=50, return_mode="median") * 1e3
    t_gbps = case.nbytes / (t_us * 1e-6) / 1e9
    r_gbps = case.nbytes / (r_us * 1e-6) / 1e9
    return Row(
        case.kernel,
        case.shape,
        case.nbytes / 1e6,
        t_us,
        t_gbps,
        100 * t_gbps / peak_gbps,
        r_us,
        r_gbps,
        r_us / t_us,
        check,
    )


def print_table(rows: list[Row], peak_gbps: float) -> None:
    head = (
        "| kernel | shape | MB moved | Triton us | Triton GB/s | % of peak "
        "| torch us | torch GB/s | speedup | check |"
    )
    print(f"\nPeak HBM bandwidth taken as {peak_gbps:.0f} GB/s.\n")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        print(
            f"| {r.kernel} | {r.shape} | {r.mbytes:.1f} | {r.triton_us:.1f} | {r.triton_gbps:.0f} | "
            f"{r.peak_pct:.0f}% | {r.torch_us:.1f} | {r.torch_gbps:.0f} | {r.speedup:.2f}x | {r.check} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the suites and print the table; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peak-gbps", type=float, default=4800.0, help="peak HBM GB/s (H200 ~4800, H100 ~3350)"
    )
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these kernels")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller shapes (a smoke run)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            "no CUDA device: bench_kernels_gpu.py needs an NVIDIA GPU (the CPU tests cover correctness)",
            file=sys.stderr,
        )
        return 2
    try:
        import triton
    except ImportError:
        print("triton is not installed: pip install triton", file=sys.stderr)
        return 2

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    device = torch.cuda.get_device_name()
    print(f"device: {device}; torch {torch.__version__}; triton {triton.__version__}; dtype {args.dtype}")
    started = time.perf_counter()
    rows: list[Row] = []
    for name in args.only or list(SUITES):
        for case in SUITES[name](dtype, "quick" if args.quick else "full"):
            rows.append(measure(case, args.peak_gbps))
            r = rows[-1]
            print(f"  {r.kernel:<20} {r.shape:<40} {r.triton_gbps:7.0f} GB/s  {r.check}", flush=True)
        torch.cuda.empty_cache()
    print_table(rows, args.peak_gbps)
    print(f"\n{len(rows)} cases in {time.perf_counter() - started:.0f} s on {device}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"device": device, "peak_gbps": args.peak_gbps, "rows": [asdict(r) for r in rows]},
                f,
                indent=2,
            )
    return 0 if all(r.check == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
