"""Hook runner: orchestrator's `*Processes` commands, with its placeholders and `ORC_*` variables.

    from libs.hooks import HookContext, HookKind, failed, run_hooks
    results = await run_hooks(HookKind.PRE_FAILOVER, settings.PreFailoverProcesses, ctx,
                              settings.BatonHookTimeoutSeconds, shell=settings.ProcessesShellCommand)
    if failed(results): ...abort the recovery, audit `results`...

`context.py`: the values and their names; `template.py`: how placeholders become safe shell code;
`runner.py`: the orchestrator semantics (order, failure rules, `&`); `process.py`: one bounded child
(process group, timeout, output capture).
"""

from libs.hooks.context import PLACEHOLDERS, HookContext, environment
from libs.hooks.runner import (
    DEFAULT_OUTPUT_LIMIT,
    HookKind,
    HookResult,
    failed,
    hook_environment,
    run_hook,
    run_hooks,
    wait_detached,
)
from libs.hooks.template import compile_command, render_for_display

__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "PLACEHOLDERS",
    "HookContext",
    "HookKind",
    "HookResult",
    "compile_command",
    "environment",
    "failed",
    "hook_environment",
    "render_for_display",
    "run_hook",
    "run_hooks",
    "wait_detached",
]
