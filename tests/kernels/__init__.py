"""Tests of the Triton kernels and their torch references."""
