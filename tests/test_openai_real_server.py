"""The OpenAI backend against a real OpenAI-compatible server that nobody here wrote:
`transformers serve` (Hugging Face), on a tiny model this test builds and trains offline.

Nothing is downloaded: the tokenizer (byte-level BPE) and a two-layer Llama are trained
for a few seconds on this repository's own docs, as chats whose answer is short, so the
model learns to end its answer. The point is the server, not the model: its streaming
(it sends no `data: [DONE]`, and its usage rides on the finishing chunk), its handling of
`tools` in the request, and its chat template path, end to end through OpenAISession.

Needs the `serve` extra (`pip install -e '.[test,serve]'`, torch from its CPU wheel);
without it the test is skipped. Marked `real_server`: `-m "not real_server"` leaves it out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dave_lsp.backends.openai.session import OpenAISession
from dave_lsp.events import Done, Token
from tests.test_openai_agent import Asker, of
from tests.test_openai_backend import make_config

pytestmark = pytest.mark.real_server

REPO = Path(__file__).resolve().parent.parent
TRAIN_SECONDS = 20.0
ANSWER = "ok"
SERVE_START_SECONDS = 180.0
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TRANSFORMERS_OFFLINE": "1"}


def build_model(folder: Path) -> None:
    """Train a byte-level BPE tokenizer and a two-layer Llama on the repository's docs,
    as chats answered with ANSWER, and save both (with a chat template) to `folder`."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))]
    texts.append((REPO / "README.md").read_text())
    special = ["<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|tool|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    # The answer repeated, so that it is one token the model learns to follow with <|end|>.
    bpe.train_from_iterator(
        [*texts, *[ANSWER] * 2000],
        trainers.BpeTrainer(
            vocab_size=384,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    # Content may be a string or a list of text parts; tools are accepted and not shown.
    template = (
        "{% for m in messages %}<|{{ m['role'] }}|>"
        "{% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}{% for p in m['content'] %}{{ p['text'] }}{% endfor %}{% endif %}"
        "<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|end|>", pad_token="<|end|>", chat_template=template
    )
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    words = " ".join(texts).split()
    chats = [
        f"<|user|>{' '.join(words[i : i + 6])}<|end|><|assistant|>{ANSWER}<|end|>"
        for i in range(0, len(words) - 6, 5)
    ]
    encoded = [tokenizer(c)["input_ids"][-48:] for c in chats]
    assistant = tokenizer.convert_tokens_to_ids("<|assistant|>")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    started = time.monotonic()
    step = 0
    # Learn the answer only (the prompt's tokens are not scored): a few dozen steps make
    # it say ANSWER and stop, which keeps each request short (the server asks for up to
    # 1024 new tokens).
    while time.monotonic() - started < TRAIN_SECONDS:
        batch = [encoded[(step * 16 + j) % len(encoded)] for j in range(16)]
        width = max(len(b) for b in batch)
        ids = torch.tensor([b + [tokenizer.pad_token_id] * (width - len(b)) for b in batch])
        labels = torch.tensor(
            [
                [-100] * (b.index(assistant) + 1)
                + b[b.index(assistant) + 1 :]
                + [-100] * (width - len(b))
                for b in batch
            ]
        )
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        if loss.item() < 0.01:
            break
    model.generation_config.do_sample = False
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def transformers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of a running `transformers serve` on the tiny model."""
    pytest.importorskip("fastapi")  # the serving extra
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)
    root = tmp_path_factory.mktemp("transformers")
    cache = root / "hf-cache"
    cache.mkdir()
    os.environ.setdefault("HF_HUB_CACHE", str(cache))
    model_dir = root / "tiny-llama"
    build_model(model_dir)
    port = free_port()
    binary = Path(sys.executable).parent / "transformers"
    env = {**os.environ, **OFFLINE, "HF_HUB_CACHE": str(cache)}
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [
            *(str(binary), "serve", str(model_dir)),
            *("--host", "127.0.0.1", "--port", str(port), "--device", "cpu"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"transformers serve exited: {(root / 'serve.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("transformers serve did not listen in time")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1", str(model_dir)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def test_a_chat_with_tools_offered_streams_end_to_end(
    transformers_server: tuple[str, str], tmp_path: Path
) -> None:
    base_url, model = transformers_server
    config: dict[str, Any] = {"cwd": str(tmp_path), "model": model}
    session = OpenAISession(make_config(base_url, request_timeout_seconds=240.0, **config), Asker())
    try:
        assert session.tools_on
        for prompt in ("hello there", "and again"):
            events = [e async for e in session.query(prompt, ())]
            done = events[-1]
            assert isinstance(done, Done), events
            # The stream ended without [DONE] and still made a whole answer.
            assert done.stop_reason in ("end_turn", "max_tokens")
            assert done.text == "".join(e.text for e in of(events, Token))
            assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0
        assert session.tools_on  # the server took the tools (no fallback)
        assert [m["role"] for m in session.history] == ["user", "assistant"] * 2
    finally:
        await session.close()
