"""The executor: asyncio dataflow over a flow, with types and rails enforced at ports."""

from workbench.runtime.agent import AgentRunner, Approve, Deny, Edit
from workbench.runtime.enforce import RailRecord
from workbench.runtime.executor import Executor, RunResult, aexecute, execute
from workbench.runtime.nodes import RUNNERS, SKIPPED, Runner, register_runner
from workbench.runtime.tools import returns

__all__ = [
    "RUNNERS",
    "SKIPPED",
    "AgentRunner",
    "Approve",
    "Deny",
    "Edit",
    "Executor",
    "RailRecord",
    "RunResult",
    "Runner",
    "aexecute",
    "execute",
    "register_runner",
    "returns",
]
