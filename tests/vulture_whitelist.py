"""Names vulture cannot see used: framework hooks, names looked up at run time, public API.

``tests/unit/test_code_quality.py`` runs vulture over ``nbflow/`` with this file;
anything else it reports is dead code. Add a name here only with its reason.
"""

# ruff: noqa
# mypy: ignore-errors
_ = object()

# Public API of the engine (documented, used by flows users write).
_.set_dependencies, _.downstream_edges, _.root_tasks, _.terminal_tasks, _.descendants
_.is_skipped, _.is_cached, _.is_running, _.is_scheduled
_.__wrapped__  # functools-style: inspect.signature/unwrap follow it
__getattr__  # nbflow/__init__.py: lazy exports (PEP 562)
NotebookModule  # imported by the modules `%flow export` / `nbflow export` write

# Called by name.
_.cmd_show, _.cmd_watch, _.cmd_cancel, _.cmd_backfill, _.cmd_status, _.cmd_logs, _.cmd_check
_.cmd_schedule, _.cmd_cache, _.cmd_reset, _.cmd_name, _.cmd_order, _.cmd_remove  # FlowCommands.dispatch
_.cmd_adopt, _.cmd_on, _.cmd_restart, _.cmd_pull  # FlowCommands.dispatch
_.shell_task  # an IPython cell magic
_._render_traceback_  # IPython shows a TaskFailed through it
get_session  # tests and extensions reach a shell's session through it
_.visit_AnnAssign, _.visit_NamedExpr, _.visit_Match, _.visit_TypeAlias  # ast.NodeVisitor dispatch
_.init_sys_modules  # IPython InteractiveShell hook (TaskShell keeps the process's __main__)
_.enabled  # traitlets config: HistoryManager.enabled
_._instance  # traitlets SingletonConfigurable: TaskShell's singleton, reset after clear_instance()

# Framework hooks.
_.get_context, _.on_operation, _.has_permission, _.resolve, error_extensions  # strawberry
impl, cache_ok, _.process_bind_param, _.process_result_value, type_annotation_map  # SQLAlchemy
_write, _forget, _mark, _undo  # SQLAlchemy session events (journal.py)
last_seen, revoked, tenant_name  # columns and GraphQL fields read by clients
_.run_log_rows, _.run_history_rows, last_id  # GraphQL queries and field the web UI reads (schema/dashboard.py)
signum, frame  # signal handler signature
_outcome_size, _outcome_to_frames, _outcome_from_frames  # dask.sizeof and serialization dispatch (dask_worker.py)
in_use, holders, _.acquire_concurrency_slots, _.release_concurrency_slots  # GraphQL fields (schema/concurrency.py)
next_cursor  # GraphQL field: where the next keyset page of flowRuns starts (schema/types.py)
app_from_environment  # uvicorn imports it by name in each worker (server_cmds.py)
