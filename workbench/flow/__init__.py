"""Typed flows: the data model, flow files, validation and composition."""

from workbench.flow.agent_tools import AgentTool
from workbench.flow.compose import parallel, sequence
from workbench.flow.io import dump, dumps, flow_hash, load, loads, save
from workbench.flow.kinds import KINDS, KindSpec, register_kind
from workbench.flow.model import Flow, Node, PortRef, RailSpec, Wire, identity
from workbench.flow.validate import problems, validate

__all__ = [
    "KINDS",
    "AgentTool",
    "Flow",
    "KindSpec",
    "Node",
    "PortRef",
    "RailSpec",
    "Wire",
    "dump",
    "dumps",
    "flow_hash",
    "identity",
    "load",
    "loads",
    "parallel",
    "problems",
    "register_kind",
    "save",
    "sequence",
    "validate",
]
