"""The nbflow engine: states, tasks, flows, runner, executors, schedules, events.

It imports none of IPython, httpx or SQLAlchemy, so flows run anywhere
(a test checks this in a fresh interpreter).
"""
