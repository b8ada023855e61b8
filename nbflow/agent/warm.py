"""What the agent's fork server prepares once for every flow process it forks.

Importing this module imports the flow process, the cell runtime (with IPython,
through the exported-module runtime registered flows use) and the client, and
builds the client's TLS context and transport once, so a forked run starts with
all of it in memory. It runs no flow code: the parent of every run stays clean.
"""

from __future__ import annotations

import importlib

import httpx

from nbflow.client import tls_context

for _module in ("nbflow.agent.flowprocess", "nbflow.terminal.exported"):
    importlib.import_module(_module)

# The first httpx client of a process imports its transports (~0.1 s): pay that here.
httpx.Client(verify=tls_context()).close()
