"""Triton kernels beside their torch references (installed as ``workbench.kernels``)."""
