"""Run hook commands the way orchestrator does, with the safety and bounds it lacks.

Semantics (orchestrator's `executeProcesses`, `../shared/reference/orchestrator.md` §1c):
- The commands of one kind run one after another, in the configured order, each as
  `<shell> -c <command>` (orchestrator: `bash <tempfile>`; `ProcessesShellCommand` picks the shell).
- The environment is this process's, plus the `ORC_*` variables of the context (see `context.py`).
  Baton first removes every `BATON_*` variable (config overrides may carry passwords) and any inherited
  `ORC_*` one, so no secret of Baton's reaches a hook.
- Placeholders never paste values into the command text; see `template.py` for why and how.
- For the kinds that gate an action (`HookKind.aborts_on_failure`: OnFailureDetection, PreFailover,
  PreGracefulTakeover) the first failing command stops the list, and the caller must abort. For the
  others a failure is logged and the next command runs.
- A command ending in `&` is detached, as in orchestrator: it is started, not waited for, and its
  failure is ignored. Baton still bounds it with the timeout and logs how it ended;
  `wait_detached()` waits for the ones still running (shutdown, tests).

Added by Baton:
- A timeout per command (orchestrator has none): the command's whole process group gets SIGTERM, then
  SIGKILL one second later, and the result says `timed_out`.
- When the shell exits, anything it left running that still holds its output is killed too (after
  0.5 s); a hook that wants to leave a daemon behind must redirect the daemon's output.
- Output (stdout and stderr interleaved) is captured into the `HookResult` for the audit, bounded:
  beyond `output_limit` bytes the first and last halves are kept and the middle is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from libs.hooks.context import PLACEHOLDERS, HookContext, environment, placeholder_values
from libs.hooks.process import execute
from libs.hooks.template import compile_command, render_for_display

log = logging.getLogger(__name__)

DEFAULT_SHELL = "bash"
DEFAULT_OUTPUT_LIMIT = 64 * 1024
_VARIABLES = {name: placeholder.env for name, placeholder in PLACEHOLDERS.items()}
_detached: set[asyncio.Task[HookResult]] = set()


class HookKind(StrEnum):
    """The hook lists, named by their config keys."""

    ON_FAILURE_DETECTION = "OnFailureDetectionProcesses"
    PRE_GRACEFUL_TAKEOVER = "PreGracefulTakeoverProcesses"
    PRE_FAILOVER = "PreFailoverProcesses"
    POST_MASTER_FAILOVER = "PostMasterFailoverProcesses"
    POST_INTERMEDIATE_MASTER_FAILOVER = "PostIntermediateMasterFailoverProcesses"
    POST_FAILOVER = "PostFailoverProcesses"
    POST_UNSUCCESSFUL_FAILOVER = "PostUnsuccessfulFailoverProcesses"
    POST_GRACEFUL_TAKEOVER = "PostGracefulTakeoverProcesses"
    POST_TAKE_MASTER = "PostTakeMasterProcesses"

    @property
    def aborts_on_failure(self) -> bool:
        """A failing command of this kind stops its list and must abort what it gates."""
        return self in (HookKind.ON_FAILURE_DETECTION, HookKind.PRE_FAILOVER, HookKind.PRE_GRACEFUL_TAKEOVER)


class HookResult(BaseModel):
    """What one hook command did, for the audit."""

    model_config = ConfigDict(frozen=True)

    kind: HookKind
    index: int
    """1-based position in its list."""
    command: str
    """As configured, placeholders included."""
    rendered: str
    """With the values pasted in, for people to read. Not what ran (see `template.py`)."""
    detached: bool = False
    """The command ended in `&`: started and not waited for; its outcome is only logged."""
    started_at: datetime
    duration_seconds: float = 0.0
    exit_code: int | None = None
    """None when it timed out, could not start, or was detached; negative = killed by that signal."""
    timed_out: bool = False
    error: str | None = None
    """Why it did not run to completion, when it did not."""
    output: str = ""
    output_bytes: int = 0
    """Bytes the command wrote in all; more than `len(output)` when truncated."""
    output_truncated: bool = False

    @property
    def ok(self) -> bool:
        """It succeeded (exit code 0), or it was detached (orchestrator ignores those)."""
        return self.detached or (self.exit_code == 0 and not self.timed_out and self.error is None)


def hook_environment(context: HookContext, base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a hook runs with: `base_env` (default: ours) minus BATON_*/ORC_*, plus ORC_*."""
    base = os.environ if base_env is None else base_env
    env = {k: v for k, v in base.items() if not k.startswith(("BATON_", "ORC_"))}
    env.update(environment(context))
    return env


async def run_hook(
    kind: HookKind | str,
    index: int,
    command: str,
    context: HookContext,
    timeout: float,  # noqa: ASYNC109 -- a per-command kill deadline, not a cancellation scope
    *,
    shell: str = DEFAULT_SHELL,
    cwd: str | None = None,
    base_env: Mapping[str, str] | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> HookResult:
    """Run one hook command to completion (or detach it, if it ends in `&`). Never raises for the
    command's own failure: that is in the result."""
    kind = HookKind(kind)
    text = command.strip()
    detached = text.endswith("&")
    text = text.rstrip("&").rstrip() if detached else text
    env = hook_environment(context, base_env)
    script = compile_command(text, _VARIABLES)
    common = {
        "kind": kind,
        "index": index,
        "command": command,
        "rendered": render_for_display(command, placeholder_values(context)),
        "started_at": datetime.now(UTC),
    }
    if detached:
        task = asyncio.create_task(
            _finish(common, script, env, time_limit=timeout, shell=shell, cwd=cwd, limit=output_limit)
        )
        _detached.add(task)
        task.add_done_callback(_detached.discard)
        return HookResult(**common, detached=True)  # type: ignore[arg-type]
    return await _finish(common, script, env, time_limit=timeout, shell=shell, cwd=cwd, limit=output_limit)


async def _finish(
    common: Mapping[str, object],
    script: str,
    env: Mapping[str, str],
    *,
    time_limit: float,
    shell: str,
    cwd: str | None,
    limit: int,
) -> HookResult:
    start = time.monotonic()
    exit_code, timed_out, error, output = await execute(
        script, env, time_limit=time_limit, shell=shell, cwd=cwd, limit=limit
    )
    text, truncated = output.text()
    result = HookResult(
        **common,  # type: ignore[arg-type]
        duration_seconds=round(time.monotonic() - start, 6),
        exit_code=exit_code,
        timed_out=timed_out,
        error=error,
        output=text,
        output_bytes=output.total,
        output_truncated=truncated,
    )
    outcome = result.error or f"exit code {result.exit_code}"
    level = logging.INFO if result.exit_code == 0 else logging.WARNING
    log.log(level, "hook %s #%d: %s in %.3f s", result.kind, result.index, outcome, result.duration_seconds)
    return result


async def run_hooks(
    kind: HookKind | str,
    commands: Iterable[str],
    context: HookContext,
    timeout: float,  # noqa: ASYNC109 -- a per-command kill deadline, not a cancellation scope
    *,
    shell: str = DEFAULT_SHELL,
    cwd: str | None = None,
    base_env: Mapping[str, str] | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> list[HookResult]:
    """Run a hook list in order. For `aborts_on_failure` kinds, stop after the first failure (the
    caller then aborts: see `failed()`); otherwise run every command. One result per command run."""
    kind = HookKind(kind)
    results: list[HookResult] = []
    for index, command in enumerate(commands, start=1):
        result = await run_hook(
            kind, index, command, context, timeout,
            shell=shell, cwd=cwd, base_env=base_env, output_limit=output_limit,
        )  # fmt: skip
        results.append(result)
        if kind.aborts_on_failure and not result.ok:
            log.warning("hook %s #%d failed: not running further %s hooks", kind, index, kind)
            break
    return results


def failed(results: Iterable[HookResult]) -> bool:
    """Whether any hook failed (detached ones never count)."""
    return any(not result.ok for result in results)


async def wait_detached(timeout: float | None = None) -> list[HookResult]:  # noqa: ASYNC109
    """Wait for the detached (`&`) hooks still running; return their results."""
    tasks = list(_detached)
    if not tasks:
        return []
    done, _ = await asyncio.wait(tasks, timeout=timeout)
    return [task.result() for task in done if not task.cancelled() and task.exception() is None]
