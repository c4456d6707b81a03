"""Kernel-level spans (kept for imports of ``workbench.traces.kernels``; see ``workbench.profiling``)."""

from __future__ import annotations

from workbench.profiling import kernel_profile, record_profile

__all__ = ["kernel_profile", "record_profile"]
