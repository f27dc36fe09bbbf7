"""Bad input from a client, on one server over raw pipes: broken frames, wrong
Content-Length, unknown methods, fuzzed params, huge and strange values, permission
answers that do not fit. None of it may crash the server or put anything but frames
on stdout, and a normal query works afterwards."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.processes import cli_processes
from tests.reliability.helpers import TALLY, RawServer, frame, server_options, wait_gone_sync

PROBE = {"sessionId": "probe-session"}


@pytest.fixture(scope="module")
def raw(
    backend_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RawServer]:
    workspace = tmp_path_factory.mktemp("bad-input")
    server = RawServer()
    # Before initialize: every dave request is refused (asserted in the first test).
    server.before_init = {  # type: ignore[attr-defined]
        method: server.call(method, params)
        for method, params in (
            ("dave/query", {"sessionId": "early", "prompt": "echo too early"}),
            ("dave/permission", {"requestId": "r", "decision": "allow"}),
            ("dave/deleteSession", {"sessionId": "early"}),
        )
    }
    server.init_answer = server.initialize(server_options(backend_env, workspace))  # type: ignore[attr-defined]
    server.workspace = workspace  # type: ignore[attr-defined]
    yield server
    server.stop()
    server.cleanup()


def probe(raw: RawServer) -> None:
    """The server still answers, and still reads frames where they start."""
    answer = raw.call("dave/deleteSession", PROBE, timeout=10)
    assert answer["result"] == {"deleted": False}, answer


def one_line_error(answer: dict[str, Any], code: int) -> str:
    assert "error" in answer, answer
    assert answer["error"]["code"] == code, answer
    message = answer["error"]["message"]
    assert len(message.splitlines()) == 1, message
    return message


def test_requests_before_initialize_are_refused_and_initialize_then_works(raw: RawServer) -> None:
    for method, answer in raw.before_init.items():  # type: ignore[attr-defined]
        message = one_line_error(answer, -32002)
        assert "send initialize first" in message, method
    TALLY["bad inputs"] += len(raw.before_init)  # type: ignore[attr-defined]
    dave = raw.init_answer["result"]["capabilities"]["experimental"]["dave"]  # type: ignore[attr-defined]
    assert dave["version"] == 1
    probe(raw)


def test_a_second_initialize_is_refused_and_the_sessions_go_on(raw: RawServer) -> None:
    session = {"sessionId": "before-second-initialize"}
    first = raw.call("dave/query", {**session, "prompt": "echo one"}, timeout=60)
    assert first["result"]["text"] == "You said: echo one", first
    again = raw.call("initialize", {"capabilities": {}, "initializationOptions": {"prewarm": 0}})
    message = one_line_error(again, -32600)
    assert "already initialized" in message and "restart" in message
    TALLY["bad inputs"] += 1
    # The same session, and its conversation, still answer.
    recall = raw.call("dave/query", {**session, "prompt": "recall"}, timeout=60)
    assert recall["result"]["text"] == "Seen: echo one", recall


def _body(message: Any) -> bytes:
    return json.dumps(message).encode()


def _short_length() -> bytes:
    # A client that counts characters, not bytes: the body is cut short.
    body = json.dumps(
        {"jsonrpc": "2.0", "method": "dave/none", "params": {"x": "äöü – 日本語 🙂"}},
        ensure_ascii=False,
    )
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode())


def _long_length() -> bytes:
    # Content-Length 10 bytes too long: the body swallows the start of the next frame,
    # so the frame after it (a notification here) is lost with it.
    body = _body({"jsonrpc": "2.0", "method": "dave/none", "params": {}})
    sacrifice = frame({"jsonrpc": "2.0", "method": "dave/none", "params": {"lost": True}})
    return b"Content-Length: %d\r\n\r\n%s" % (len(body) + 10, body) + sacrifice


BROKEN_FRAMES: dict[str, bytes] = {
    "invalid JSON": b"Content-Length: 10\r\n\r\n{not json}",
    "invalid UTF-8": b"Content-Length: 4\r\n\r\n\xff\xfe\xfd\xfc",
    "JSON array (a batch)": frame([{"jsonrpc": "2.0", "id": 1, "method": "dave/deleteSession"}]),
    "JSON string": frame("dave/query"),
    "JSON number": frame(42),
    "JSON null": frame(None),
    "no jsonrpc member": frame({"id": 7, "method": "dave/deleteSession", "params": PROBE}),
    "jsonrpc 1.0": frame({"jsonrpc": "1.0", "id": 7, "method": "dave/deleteSession"}),
    "method not a string": frame({"jsonrpc": "2.0", "id": 8, "method": 3, "params": {}}),
    "no method, no result": frame({"jsonrpc": "2.0", "id": 9}),
    "response to nothing": frame({"jsonrpc": "2.0", "id": 99999, "result": {}}),
    "error response to nothing": frame(
        {"jsonrpc": "2.0", "id": 99998, "error": {"code": 1, "message": "x"}}
    ),
    "garbage line": b"hello, server\r\n\r\n",
    "a 3 MB line that is no header": b"x" * (3 << 20) + b"\r\n",
    "headers without Content-Length": b"Content-Type: application/json\r\n\r\n",
    "non-numeric Content-Length": b"Content-Length: many\r\n\r\n",
    "negative Content-Length": b"Content-Length: -5\r\n\r\n",
    "Content-Length 0": b"Content-Length: 0\r\n\r\n",
    "Content-Length too short (characters, not bytes)": _short_length(),
    "Content-Length too long": _long_length(),
}


@pytest.mark.parametrize("label", list(BROKEN_FRAMES))
def test_a_broken_frame_neither_crashes_nor_desynchronizes_the_server(
    raw: RawServer, label: str
) -> None:
    raw.send_bytes(BROKEN_FRAMES[label])
    TALLY["bad inputs"] += 1
    probe(raw)
    assert raw.proc.poll() is None


def test_an_unknown_header_is_ignored(raw: RawServer) -> None:
    body = _body({"jsonrpc": "2.0", "id": "hdr", "method": "dave/deleteSession", "params": PROBE})
    raw.send_bytes(b"X-Editor: test\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    TALLY["bad inputs"] += 1
    assert raw.response("hdr", 10)["result"] == {"deleted": False}


def test_requests_without_params_or_with_extra_members_are_answered(raw: RawServer) -> None:
    # JSON-RPC allows a request without params; every request deserves an answer.
    msg_id = raw.request("dave/deleteSession", omit_params=True)
    message = one_line_error(raw.response(msg_id, 10), -32602)
    assert "sessionId: is required" in message
    msg_id = raw.request("dave/frobnicate", omit_params=True)
    one_line_error(raw.response(msg_id, 10), -32601)
    raw.send(
        {"jsonrpc": "2.0", "id": "extra", "method": "dave/deleteSession", "params": PROBE, "x": 1}
    )
    assert raw.response("extra", 10)["result"] == {"deleted": False}
    TALLY["bad inputs"] += 3


def test_unknown_methods_are_method_not_found(raw: RawServer) -> None:
    for method in ("dave/frobnicate", "dave/Query", "", "$/unknown", "workspace/symbol"):
        answer = raw.call(method, {"query": "x"}, timeout=10)
        assert method in one_line_error(answer, -32601)
    hover = {"textDocument": {"uri": "file:///x.py"}, "position": {"line": 0, "character": 0}}
    one_line_error(raw.call("textDocument/hover", hover, timeout=10), -32601)
    # A standard method whose params do not fit is answered too, naming the field.
    answer = raw.call("textDocument/hover", {"position": 3}, timeout=10)
    assert "params.textDocument: is required" in one_line_error(answer, -32602)
    # Unknown notifications are ignored, answered by nothing.
    raw.notify("dave/unknownNotification", {"x": 1})
    raw.notify("$/unknownNotification", None)
    TALLY["bad inputs"] += 9
    probe(raw)


# -- params: every field of the three requests, missing or of the wrong type -------------

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_not_string = _json.filter(lambda v: not isinstance(v, str))
_not_string_or_null = _not_string.filter(lambda v: v is not None)
_session_id = st.text(min_size=1, max_size=40)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": st.text(max_size=20)}
)
_bad_message = st.one_of(
    _json.filter(lambda v: not isinstance(v, dict)),
    st.fixed_dictionaries(
        {
            "role": st.text(max_size=10).filter(lambda r: r not in ("user", "assistant")),
            "content": st.text(max_size=5),
        }
    ),
    st.fixed_dictionaries({"role": st.just("user"), "content": _not_string}),
    st.fixed_dictionaries({"content": st.text(max_size=5)}),
    st.fixed_dictionaries({"role": st.just("assistant")}),
)

# method -> field -> (required, valid values, wrong values)
FIELDS: dict[str, dict[str, tuple[bool, Any, Any]]] = {
    "dave/query": {
        "sessionId": (
            True,
            _session_id,
            _not_string | st.just("") | st.text(string.ascii_letters, min_size=257, max_size=400),
        ),
        "prompt": (True, st.text(max_size=40), _not_string),
        "messages": (
            False,
            st.lists(_message, max_size=3),
            _json.filter(lambda v: not isinstance(v, list) and v is not None)
            | st.lists(_bad_message, min_size=1, max_size=2),
        ),
        "workDoneToken": (
            False,
            st.text(min_size=1, max_size=10) | st.integers(),
            _json.filter(
                lambda v: (
                    v is not None
                    and not isinstance(v, str)
                    and (isinstance(v, bool) or not isinstance(v, int))
                )
            ),
        ),
        "cwd": (False, st.none(), _not_string_or_null),
        "model": (False, st.none(), _not_string_or_null),
    },
    "dave/permission": {
        "requestId": (True, st.text(min_size=1, max_size=40), _not_string),
        "decision": (
            True,
            st.sampled_from(["allow", "allowAlways", "deny"]),
            _json.filter(lambda v: v not in ("allow", "allowAlways", "deny")),
        ),
        "reason": (False, st.text(max_size=20), _not_string_or_null),
        "updatedInput": (
            False,
            st.dictionaries(st.text(max_size=5), _json_leaf, max_size=2),
            _json.filter(lambda v: v is not None and not isinstance(v, dict)),
        ),
    },
    "dave/deleteSession": {
        "sessionId": (
            True,
            _session_id,
            _not_string | st.just("") | st.text(string.ascii_letters, min_size=257, max_size=400),
        ),
    },
}


@st.composite
def broken_params(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    method = draw(st.sampled_from(sorted(FIELDS)))
    fields = FIELDS[method]
    broken = draw(st.sampled_from(sorted(fields)))
    params: dict[str, Any] = {}
    for name, (required, valid, _wrong) in fields.items():
        if name != broken and (required or draw(st.booleans())):
            params[name] = draw(valid)
    required, _valid, wrong = fields[broken]
    if not (required and draw(st.booleans())):  # a required field may simply be missing
        params[broken] = draw(wrong)
    if draw(st.booleans()):
        params[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in fields))] = 1
    return method, params, broken


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=broken_params())
def test_every_wrong_or_missing_param_is_invalid_params_naming_the_field(
    raw: RawServer, case: tuple[str, dict[str, Any], str]
) -> None:
    method, params, field = case
    TALLY["bad inputs"] += 1
    message = one_line_error(raw.call(method, params, timeout=10), -32602)
    assert message.startswith(f"{method}: invalid params: {field}"), (params, message)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    session_id=st.text(st.characters(codec=None, blacklist_categories=()), min_size=1, max_size=60),
    request_id=st.text(st.characters(codec=None, blacklist_categories=()), min_size=1, max_size=60),
)
def test_any_characters_in_ids_are_answered_plainly(
    raw: RawServer, session_id: str, request_id: str
) -> None:
    # Control characters, lone surrogates, RTL marks, NUL: answered like any other id.
    TALLY["bad inputs"] += 2
    answer = raw.call("dave/deleteSession", {"sessionId": session_id}, timeout=10)
    assert answer.get("result") == {"deleted": False}, answer
    answer = raw.call("dave/permission", {"requestId": request_id, "decision": "deny"}, timeout=10)
    assert "no pending permission request" in one_line_error(answer, -32602)


def test_a_10000_character_session_id_is_refused_with_the_limit(raw: RawServer) -> None:
    huge = "s" * 10_000
    for method, params in (
        ("dave/query", {"sessionId": huge, "prompt": "echo hi"}),
        ("dave/deleteSession", {"sessionId": huge}),
    ):
        message = one_line_error(raw.call(method, params), -32602)
        assert "sessionId: at most 256 characters (got 10000)" in message
    answer = raw.call("dave/permission", {"requestId": "r" * 10_000, "decision": "allow"})
    assert "no pending permission request" in one_line_error(answer, -32602)
    TALLY["bad inputs"] += 3


STRANGE = "ü \x01\x07 \x1b[31m 日本 🙂 \u202e \x00 \t end"


def test_unicode_and_control_characters_in_prompts_and_ids_round_trip(raw: RawServer) -> None:
    session_id = ("ü\x01\u202e🙂\x1b[0m\x00-" * 40)[:256]
    answer, token = raw.query(session_id, f"echo {STRANGE}")
    result = answer["result"]
    assert result["sessionId"] == session_id
    assert result["text"] == f"You said: echo {STRANGE}"
    assert raw.texts(token) == result["text"]
    # A lone surrogate cannot be UTF-8; it arrives replaced, and nothing breaks.
    answer, token = raw.query(session_id, "echo a\ud800b")
    assert answer["result"]["text"] == "You said: echo a\ufffdb"
    assert raw.call("dave/deleteSession", {"sessionId": session_id})["result"] == {"deleted": True}
    TALLY["bad inputs"] += 3


def test_a_5_mb_prompt_gets_a_clear_limit_error_and_the_session_goes_on(raw: RawServer) -> None:
    line = "filler line of text 0123456789 abcdefghij\n"
    prompt = line * (5 * 1024 * 1024 // len(line)) + "echo big-done"
    assert len(prompt.encode()) >= 5 * 1024 * 1024 - 100
    started = time.monotonic()
    answer, _ = raw.query("big-prompt", prompt)
    TALLY["bad inputs"] += 1
    assert time.monotonic() - started < 30
    if "result" in answer:  # accepted: then it was answered in full
        assert answer["result"]["text"] == "You said: echo big-done"
    else:
        message = one_line_error(answer, -32803)
        assert "Prompt is too long" in message
    answer, _ = raw.query("big-prompt", "echo after the big one")
    assert answer["result"]["text"] == "You said: echo after the big one"
    assert raw.call("dave/deleteSession", {"sessionId": "big-prompt"})["result"] == {
        "deleted": True
    }


def test_permission_answers_reach_only_their_own_request(raw: RawServer) -> None:
    workspace: Path = raw.workspace  # type: ignore[attr-defined]
    a_id, a_token = raw.start_query("perm-a", "write a.txt from-a")
    b_id, b_token = raw.start_query("perm-b", "write b.txt from-b")
    a_request = raw.wait_report(a_token, "permissionRequest")["requestId"]
    b_request = raw.wait_report(b_token, "permissionRequest")["requestId"]
    assert a_request != b_request

    def answer(request_id: str, decision: Any) -> dict[str, Any]:
        TALLY["bad inputs"] += 1
        return raw.call("dave/permission", {"requestId": request_id, "decision": decision})

    # B's answer, even sent while A waits too, runs B's tool only.
    assert answer(b_request, "allow")["result"] == {"ok": True}
    assert raw.response(b_id)["result"]["text"].startswith("Tool said:")
    assert (workspace / "b.txt").read_text() == "from-b"
    assert not (workspace / "a.txt").exists()
    assert not [v for v in raw.progress(a_token) if v.get("type") == "permissionResolved"]
    # B's request again: already answered, and A is untouched.
    assert "already answered" in one_line_error(answer(b_request, "deny"), -32602)
    # A malformed answer to A does not consume A's request.
    assert "decision: must be one of" in one_line_error(answer(a_request, "maybe"), -32602)
    assert not raw.has_response(a_id)
    assert answer(a_request, "deny")["result"] == {"ok": True}
    assert "result" in raw.response(a_id)
    assert not (workspace / "a.txt").exists()
    assert "already answered" in one_line_error(answer(a_request, "allow"), -32602)
    for session in ("perm-a", "perm-b"):
        assert raw.call("dave/deleteSession", {"sessionId": session})["result"] == {"deleted": True}


def test_after_the_batch_a_normal_query_works_and_stdout_held_only_frames(raw: RawServer) -> None:
    answer, token = raw.query("after-the-batch", "echo still fine")
    assert answer["result"]["text"] == "You said: echo still fine"
    assert raw.texts(token) == answer["result"]["text"]
    assert raw.proc.poll() is None
    assert raw.garbage == b"", raw.garbage[:500]
    TALLY["lost"] += 0


def test_an_absurd_content_length_neither_crashes_nor_outlives_stdin(raw: RawServer) -> None:
    clis = set(cli_processes(raw.pid))
    raw.send_bytes(b'Content-Length: 99999999999999\r\n\r\n{"jsonrpc": "2.0"')
    TALLY["bad inputs"] += 1
    time.sleep(1)
    assert raw.proc.poll() is None, raw.stderr_text()[-2000:]
    # The frame can never complete; the editor closing stdin still ends the server cleanly.
    raw.close_stdin()
    assert raw.proc.wait(10) == 0, raw.stderr_text()[-2000:]
    assert "MemoryError" not in raw.stderr_text()
    assert not wait_gone_sync(clis, 5)
    assert raw.garbage == b""
