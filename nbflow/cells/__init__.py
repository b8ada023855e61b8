"""The cell model: what cells define and use, task options, the notebook's flow, export.

Everything here works on cell sources alone, with or without a kernel: the
kernel layer (``nbflow.kernel``), headless runs and exported modules share it.
"""
