"""Tests of the flow layer: files, validation, composition."""
