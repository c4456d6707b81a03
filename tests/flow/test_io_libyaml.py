"""Flow files are read by libyaml's parser where PyYAML has it, to the same data and marks."""

from __future__ import annotations

import pytest
import yaml

from tests.app.chain import chain_flow
from workbench.flow import io


def test_libyaml_reads_a_flow_as_the_pure_python_parser_does() -> None:
    assert io._FAST_LOADERS if yaml.__with_libyaml__ else not io._FAST_LOADERS
    text = chain_flow(30) + "description: 'x: y'\nconstants: {on: yes, n: 1e-05, ok: true}\n"
    plain = io._parse(io._Loader, text, "chain")
    for fast in io._FAST_LOADERS:
        read = io._parse(fast, text, "chain")
        assert read == plain
        assert read.marks == plain.marks and read["nodes"].marks == plain["nodes"].marks
        assert read["constants"] == {"on": "yes", "n": 1e-05, "ok": True}  # YAML 1.2 booleans


def test_a_file_libyaml_refuses_gets_the_pure_python_message() -> None:
    with pytest.raises(io.FlowSyntaxError) as caught:
        io.parse_yaml("flow: f\nnodes:\n\tx: 1\n", "f.flow.yaml")
    assert "found character '\\t' that cannot start any token" in str(caught.value)
    assert (caught.value.line, caught.value.column) == (3, 1)
