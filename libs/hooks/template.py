"""Turn a hook command with `{placeholders}` into shell code that cannot be hijacked by the values.

orchestrator pastes values into the command text (`strings.Replace`). With a failed hostname such as
`a;touch pwned` or `$(touch pwned)` that runs attacker-chosen code. Quoting each value with
`shlex.quote` is not enough either, because the operator's command decides the quoting context: the
orchestrator docs' own example puts placeholders inside single quotes
(`echo 'Failed: {failedHost}' >> log`), where a `shlex.quote`d `'...'` value *closes* the operator's
quote and its `;` is live again.

So Baton never puts a value into the command text. Each placeholder becomes a reference to the
`ORC_*` variable that carries the same value, written for the quoting context it sits in:

    outside quotes       {failedHost}  ->  "${ORC_FAILED_HOST-}"
    inside "..."         {failedHost}  ->  ${ORC_FAILED_HOST-}
    inside '...'         {failedHost}  ->  '"${ORC_FAILED_HOST-}"'      (close, expand, reopen)
    inside $'...'        {failedHost}  ->  '"${ORC_FAILED_HOST-}"$'

The shell expands a variable exactly once and never parses the result as code, so the values cannot
change what runs. The context is found by a small scanner (quotes, backslashes, `$( )`, backticks,
comments); if it ever misjudges a context the worst outcome is a value word-split or shown literally,
never executed, because the generated text depends only on the command, not on the values.

What quoting cannot protect: commands that parse their arguments as shell code again (`eval`,
`sh -c "... {failedHost}"`, `ssh host "... {failedHost}"`). There the value reaches a second shell.
Hooks that do this must validate the value themselves (or read `$ORC_FAILED_HOST` on the far side).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{([A-Za-z]+)\}")

# Quoting contexts: N plain, P inside ( ) or $( ), B inside backticks, D "...", S '...', A $'...'.
_REFERENCE = {
    "N": '"${{{0}-}}"',
    "P": '"${{{0}-}}"',
    "B": '"${{{0}-}}"',
    "D": "${{{0}-}}",
    "S": "'\"${{{0}-}}\"'",
    "A": "'\"${{{0}-}}\"$'",
}
_COMMENT_AFTER = " \t\n;&|("


def compile_command(template: str, variables: Mapping[str, str]) -> str:
    """Shell code for `template` with each known `{name}` replaced by a reference to `variables[name]`.

    Unknown `{names}` are left as they are (orchestrator does the same).
    """
    out: list[str] = []
    stack = ["N"]
    i, end = 0, len(template)
    while i < end:
        state = stack[-1]
        match = _PLACEHOLDER.match(template, i)
        if match and match.group(1) in variables:
            out.append(_REFERENCE[state].format(variables[match.group(1)]))
            i = match.end()
            continue
        char = template[i]
        step = 1
        if state == "S":
            if char == "'":
                stack.pop()
        elif state in ("A", "D") and char == "\\":
            step = 2
        elif state == "A":
            if char == "'":
                stack.pop()
        elif state == "D":
            if char == '"':
                stack.pop()
            elif char == "`":
                stack.append("B")
            elif template.startswith("$(", i):
                stack.append("P")
                step = 2
        elif char == "\\":
            step = 2
        elif char == "'":
            stack.append("S")
        elif template.startswith("$'", i):
            stack.append("A")
            step = 2
        elif char == '"':
            stack.append("D")
        elif char == "`":
            if state == "B":
                stack.pop()
            else:
                stack.append("B")
        elif char == "(":
            stack.append("P")
        elif char == ")" and state == "P":
            stack.pop()
        elif char == "#" and (i == 0 or template[i - 1] in _COMMENT_AFTER):
            newline = template.find("\n", i)
            step = (end if newline < 0 else newline) - i
        out.append(template[i : i + step])
        i += step
    return "".join(out)


def render_for_display(template: str, values: Mapping[str, str]) -> str:
    """`template` with values pasted in, as orchestrator would: for the audit trail, never for running."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
