"""Tests of the model layer: the local runtime, the OpenAI-compatible client and server."""
