"""Scripted behaviour of the fake model, shared by its Anthropic and OpenAI faces.

A request's messages become a `Plan` (thinking, text pieces, an optional tool call,
how the stream ends); each API module renders the same plan in its own wire format,
so both APIs answer every command identically. The command is the last non-empty
line of the newest user prompt; see `plan_for` and the command table at the bottom.
`steps [["Read", {...}], ["Edit", {...}]]` calls those tools one after another, one per
request, then answers with the last tool's result. `plan <text>` (in plan mode) writes
the plan file the CLI named and calls ExitPlanMode; `images` describes the images
attached to the prompt. For agents that run tools themselves (the OpenAI face):
`calls [["Read", {...}], ["Bash", {...}]]` makes several tool calls in one answer,
`forever <tool> <json>` calls that tool in every answer and never finishes, and
`notools <text>` answers 400 to a request that offers tools (a model without tool
support), else echoes like any line.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# The CLI wraps injected context in these tags; a fake model must not mistake it for the prompt.
_REMINDER = re.compile(r"<system-reminder>.*?(?:</system-reminder>|\Z)", re.DOTALL)
# Markers the CLI adds after an interrupted turn, or for a pasted image; not prompts.
_INTERRUPTED = re.compile(r"^\[(?:Request interrupted by user[^\]]*|Image: source: [^\]]*)\]$")
# Where the CLI tells the model, in plan mode, to write its plan.
_PLAN_FILE = re.compile(r"create your plan at (\S+\.md) using the Write tool")
# The dave-lsp server labels transcript turns ("User: ...") before a session's first prompt.
_LABEL = re.compile(
    r"^\s*(?:\[(?:user|human)\]\s*:?|\**(?:user|human)\**\s*:\**)\s*", re.IGNORECASE
)
MAX_TOKENS = 1_000_000


@dataclass
class ToolCall:
    name: str
    input: dict[str, Any]

    @property
    def pieces(self) -> list[str]:
        """The input as JSON text, split so clients see partial JSON arrive in pieces."""
        return split(json.dumps(self.input), 16)


@dataclass
class Plan:
    """What to answer: rendered by fake_anthropic / fake_openai."""

    prompt: str
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool: ToolCall | None = None
    delay: float = 0.0  # seconds between text pieces
    images: list[str] = field(default_factory=list)  # "<media type> (<n> bytes)" of the prompt
    ending: Literal["stop", "drop", "hang"] = "stop"
    error: tuple[int, str] | None = None  # HTTP status and message, instead of a reply
    # More tool calls in the same answer, after `tool` (`calls`; the OpenAI face renders
    # them, the Anthropic face only `tool`).
    more_tools: list[ToolCall] = field(default_factory=list)
    # The error to answer instead when the request offers tools (`notools`).
    error_with_tools: tuple[int, str] | None = None

    @property
    def output_tokens(self) -> int:
        return len(self.text) + len(self.thinking) + (len(self.tool.pieces) if self.tool else 0)


def templated(render: Callable[[str], bytes]) -> Callable[[str], bytes]:
    """`render` for many pieces, JSON-encoding only the piece each time.

    Encoding a whole event per token made `long 100000` take most of a second; this
    renders the event once around a placeholder and splices each piece in.
    """
    prefix, suffix = render("\0").split(b'"\\u0000"')
    return lambda piece: prefix + json.dumps(piece).encode() + suffix


def split(text: str, scale: int = 1) -> list[str]:
    """Cut text into pieces of 3 to 6 characters (times scale), cycling, deterministically."""
    out: list[str] = []
    i = 0
    while i < len(text):
        n = (3 + len(out) % 4) * scale
        out.append(text[i : i + n])
        i += n
    return out


def content_text(content: Any) -> str:
    """The text of a content that is a string or a list of parts, reminders removed."""
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "\n".join(p for p in parts if isinstance(p, str))
    return _REMINDER.sub("", content).strip() if isinstance(content, str) else ""


def _user_items(message: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(kind, text, is_error) items of a user-side message: "text" prompts and "tool" results."""
    role, content = message.get("role"), message.get("content")
    if role == "tool":  # OpenAI: one message per tool result
        return [("tool", content_text(content), False)]
    if role != "user":
        return []
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    items: list[tuple[str, str, bool]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            items.append(("tool", content_text(block.get("content")), bool(block.get("is_error"))))
        elif (
            block.get("type") == "text"
            and (text := content_text([block]))
            and not _INTERRUPTED.match(text)
        ):
            items.append(("text", text, False))
    return items


def plan_for(messages: list[Any]) -> Plan:
    """Turn a request's messages (Anthropic or OpenAI shape) into a plan."""
    texts: list[str] = []  # every user prompt, oldest first
    trailing: list[tuple[str, str, bool]] = []  # items of the user-side messages at the end
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            trailing = []
            continue
        # Other roles are transparent: the CLI puts a role "system" message (its
        # environment notes) among the messages, even after the newest prompt.
        items = _user_items(message)
        trailing += items
        texts += [text for kind, text, _ in items if kind == "text"]
    prompt = texts[-1] if texts else ""
    forever = _forever_of(prompt)
    if forever is not None:
        return Plan(prompt, tool=forever)
    steps = _steps_of(prompt) or _plan_steps(prompt, messages)
    if steps is not None and (done := _results_since_prompt(messages)) < len(steps):
        name, tool_input = steps[done]
        return Plan(prompt, tool=ToolCall(name, tool_input))
    # Tool results with no newer prompt after them: the model is being asked to go on
    # after its tool call. A prompt after them (the CLI merges a new prompt into the
    # results' message after an interrupted tool turn) is a new command instead.
    results: list[str] = []
    for kind, text, is_error in reversed(trailing):
        if kind == "text":
            break
        results.insert(0, ("(error) " if is_error else "") + text)
    if results:
        return Plan(prompt, text=split("Tool said: " + "\n".join(results)))
    lines = [line for line in prompt.splitlines() if line.strip()]
    line = _LABEL.sub("", lines[-1], count=1).strip() if lines else ""
    word, _, rest = line.partition(" ")
    command = _COMMANDS.get(word)
    if command is not None:
        try:
            return command(Plan(prompt, images=_prompt_images(messages)), rest.strip(), texts[:-1])
        except (ValueError, IndexError):
            pass  # malformed arguments: echo the line, so the test sees what arrived
    return Plan(prompt, text=split(f"You said: {line}"))


def _prompt_images(messages: list[Any]) -> list[str]:
    """The images in the newest user message that holds a prompt (Anthropic `image`
    blocks with base64 sources, OpenAI `image_url` parts with data URLs)."""
    found: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        images = []
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "image":
                source = block.get("source") or {}
                media, data = source.get("media_type", "?"), source.get("data", "")
            elif block.get("type") == "image_url":
                url = str((block.get("image_url") or {}).get("url", ""))
                media, _, data = url.removeprefix("data:").partition(";base64,")
            else:
                continue
            try:
                size = len(base64.b64decode(data))
            except ValueError:
                size = -1
            images.append(f"{media} ({size} bytes)")
        if images or any(
            isinstance(b, dict) and b.get("type") == "text" and content_text([b]) for b in content
        ):
            found = images
    return found


def _steps_of(prompt: str) -> list[tuple[str, dict[str, Any]]] | None:
    """The tool calls of a `steps [...]` prompt, one per model request, or None."""
    lines = [line for line in prompt.splitlines() if line.strip()]
    line = _LABEL.sub("", lines[-1], count=1).strip() if lines else ""
    word, _, rest = line.partition(" ")
    if word != "steps":
        return None
    try:
        calls = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(calls, list):
        return None
    steps = []
    for call in calls:
        if not (isinstance(call, list) and len(call) == 2 and isinstance(call[1], dict)):
            return None
        steps.append((str(call[0]), call[1]))
    return steps


def _forever_of(prompt: str) -> ToolCall | None:
    """The tool of a `forever <tool> <json>` prompt: called in every answer, whatever the
    results, so only the agent's step bound ends the turn."""
    lines = [line for line in prompt.splitlines() if line.strip()]
    line = _LABEL.sub("", lines[-1], count=1).strip() if lines else ""
    word, _, rest = line.partition(" ")
    if word != "forever":
        return None
    name, _, raw = rest.strip().partition(" ")
    try:
        tool_input = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return None
    return ToolCall(name, tool_input) if name and isinstance(tool_input, dict) else None


def _calls(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    """Several tool calls in one answer: `calls [["Read", {...}], ["Bash", {...}]]`."""
    calls = json.loads(rest)
    if not isinstance(calls, list) or not calls:
        raise ValueError("calls needs a list of [name, input] pairs")
    tools = []
    for call in calls:
        if not (isinstance(call, list) and len(call) == 2 and isinstance(call[1], dict)):
            raise ValueError("each call is [name, input]")
        tools.append(ToolCall(str(call[0]), call[1]))
    plan.tool, plan.more_tools = tools[0], tools[1:]
    return plan


def _notools(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    """A model that takes no tools: a request offering them gets Ollama's 400."""
    plan.text = split(f"You said: {rest}")
    plan.error_with_tools = (400, "registry.ollama.ai/library/fake:1b does not support tools")
    return plan


def _plan_steps(prompt: str, messages: list[Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """`plan <text>` in plan mode: write the plan to the file the CLI named, then ask to
    leave plan mode (the CLI fills ExitPlanMode's input from that file)."""
    lines = [line for line in prompt.splitlines() if line.strip()]
    line = _LABEL.sub("", lines[-1], count=1).strip() if lines else ""
    word, _, text = line.partition(" ")
    found = _PLAN_FILE.search(json.dumps(messages)) if word == "plan" else None
    if found is None:
        return None
    plan = text.replace(" | ", "\n")  # `plan # Title | - step one` for several lines
    return [("Write", {"file_path": found[1], "content": plan}), ("ExitPlanMode", {})]


def _images(plan: Plan, _rest: str, _seen: list[str]) -> Plan:
    """Describe the images of the newest prompt (set by plan_for)."""
    plan.text = split("Images: " + (", ".join(plan.images) if plan.images else "none"))
    return plan


def _results_since_prompt(messages: list[Any]) -> int:
    """How many tool results came after the newest prompt: the steps already taken."""
    count = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        for kind, _text, _error in _user_items(message):
            count = 0 if kind == "text" else count + 1
    return count


def _count(arg: str) -> int:
    n = int(arg)
    if not 0 <= n <= MAX_TOKENS:
        raise ValueError(arg)
    return n


def _long(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    plan.text = [f"w{i} " for i in range(_count(rest.split()[0]))]
    return plan


def _slow(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    args = rest.split()
    plan.text = [f"s{i} " for i in range(_count(args[0]))]
    plan.delay = (_count(args[1]) if len(args) > 1 else 50) / 1000
    return plan


def _think(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    plan.thinking = split(f"Thinking about {rest}")
    plan.text = split(f"Thought: {rest}")
    return plan


def _write(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    path, _, content = rest.partition(" ")
    if not path:
        raise ValueError("write needs a path")
    plan.tool = ToolCall("Write", {"file_path": path, "content": content})
    return plan


def _tool(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    name, _, raw = rest.partition(" ")
    tool_input = json.loads(raw) if raw.strip() else {}  # JSONDecodeError is a ValueError
    if not name or not isinstance(tool_input, dict):
        raise ValueError("tool needs a name and a JSON object")
    plan.tool = ToolCall(name, tool_input)
    return plan


def _recall(plan: Plan, _rest: str, seen: list[str]) -> Plan:
    folded = [" ".join(text.splitlines()) for text in seen]
    plan.text = split("Seen: " + (" | ".join(folded) if folded else "(nothing)"))
    return plan


def _error(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    status_arg, _, message = rest.partition(" ")
    status = int(status_arg)
    if not 400 <= status <= 599:
        raise ValueError(status_arg)
    plan.error = (status, message.strip() or f"fake error {status}")
    return plan


def _drop(plan: Plan, rest: str, _seen: list[str]) -> Plan:
    plan.text = [f"d{i} " for i in range(_count(rest.split()[0]) if rest else 3)]
    plan.ending = "drop"
    return plan


def _hang(plan: Plan, _rest: str, _seen: list[str]) -> Plan:
    plan.ending = "hang"
    return plan


_COMMANDS: dict[str, Callable[[Plan, str, list[str]], Plan]] = {
    "long": _long,
    "slow": _slow,
    "think": _think,
    "write": _write,
    "tool": _tool,
    "recall": _recall,
    "error": _error,
    "drop": _drop,
    "hang": _hang,
    "images": _images,
    "calls": _calls,
    "notools": _notools,
}
