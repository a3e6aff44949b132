"""`selfevolve serve` in a real process on 127.0.0.1, driven by the official openai client: the
same greedy text as offline generation (one request, streamed, or 64 at once), and a 4xx JSON
error for every malformed request. OpenAILM, our client backend, is checked against it too."""

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import torch
from helpers import selfevolve_cmd

from selfevolve.models.lm import OpenAILM, TransformerLM
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import RunStore

NAME = "tiny"
PROMPTS = [f"{a}+{b}=" for a in range(8) for b in range(8)]  # 64 different prompts


def tiny_run(path, **shape):
    """A run directory holding one checkpoint of a small random transformer."""
    store = RunStore.create(path, "star", "")
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=CharTokenizer().vocab_size, **{
        "n_layer": 2, "n_embd": 64, "max_seq_len": 96, "pos_encoding": "rope", **shape}))
    with torch.no_grad():
        model.lm_head.weight.mul_(30)  # peaked next-token distributions: greedy ties are impossible
    store.save_checkpoint(0, model, model.cfg.to_dict(), torch.optim.AdamW(model.parameters()), {})
    return path


def start_server(run_dir, *options):
    """`selfevolve serve` as a real process on a free port; (process, base url) once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(selfevolve_cmd("serve", str(run_dir), "--port", str(port), *options),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=1)
            return proc, base
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run_dir = tiny_run(tmp_path_factory.mktemp("serve") / NAME)
    proc, base = start_server(run_dir)
    yield base, TransformerLM.from_run(run_dir)
    proc.terminate()
    proc.wait(timeout=10)


def client(base):
    return openai.OpenAI(base_url=base, api_key="none", max_retries=0)


def offline(lm, prompt, max_tokens=12, stop=None):
    return lm.generate([prompt], max_tokens=max_tokens, stop=stop)[0][0].text


def test_models_completions_and_chat_equal_offline_generation(server):
    base, lm = server
    c = client(base)
    assert [m.id for m in c.models.list().data] == [NAME]
    out = c.completions.create(model=NAME, prompt="12+34=", max_tokens=12, temperature=0)
    assert out.choices[0].text == offline(lm, "12+34=") and len(out.choices[0].text) == 12
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 12
    both = c.completions.create(model=NAME, prompt=["1+1=", "2+2="], max_tokens=5, temperature=0, n=2)
    assert [ch.text for ch in both.choices] == [offline(lm, p, 5) for p in ("1+1=", "2+2=") for _ in range(2)]
    text = offline(lm, "12+34=")
    stop = text[4:6]
    cut = c.completions.create(model=NAME, prompt="12+34=", max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[: text.find(stop)] and cut.choices[0].finish_reason == "stop"
    messages = [{"role": "user", "content": "hi"}]
    reply = c.chat.completions.create(model=NAME, messages=messages, max_tokens=10, temperature=0)
    assert reply.choices[0].message.content == lm.chat(messages, max_tokens=10)
    sampled = c.completions.create(model=NAME, prompt="7+", max_tokens=8, temperature=1.0)
    assert len(sampled.choices[0].text) == 8


def test_streams_carry_the_same_text(server):
    base, lm = server
    c = client(base)
    chunks = list(c.completions.create(model=NAME, prompt="5+6=", max_tokens=12, temperature=0, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == offline(lm, "5+6=")
    assert len(chunks) >= 12 and chunks[-1].choices[0].finish_reason == "length"
    messages = [{"role": "user", "content": "2+2"}]
    parts = list(c.chat.completions.create(model=NAME, messages=messages, max_tokens=9, temperature=0, stream=True))
    assert "".join(p.choices[0].delta.content or "" for p in parts) == lm.chat(messages, max_tokens=9)


def test_64_concurrent_requests_all_succeed_with_offline_outputs(server):
    base, lm = server
    c = client(base)
    expected = [ch[0].text for ch in lm.generate(PROMPTS, max_tokens=10)]
    with ThreadPoolExecutor(64) as pool:
        got = list(pool.map(lambda p: c.completions.create(model=NAME, prompt=p, max_tokens=10,
                                                           temperature=0).choices[0].text, PROMPTS))
    assert got == expected


def post(base, path, body: bytes):
    request = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize("path, body, status, words", [
    ("/completions", b"{not json", 400, "JSON"),
    ("/completions", json.dumps({"model": NAME}).encode(), 400, "prompt"),
    ("/completions", json.dumps({"model": NAME, "prompt": "1", "temperature": 9}).encode(), 400, "temperature"),
    ("/completions", json.dumps({"model": NAME, "prompt": "1", "n": 0}).encode(), 400, "n"),
    ("/completions", json.dumps({"model": "gpt-9", "prompt": "1"}).encode(), 404, "does not exist"),
    ("/completions", json.dumps({"model": NAME, "prompt": "1" * 90, "max_tokens": 20}).encode(), 400, "context"),
    ("/completions", json.dumps({"model": NAME, "prompt": "1", "max_tokens": 10**9}).encode(), 400, "context"),
    ("/completions", json.dumps({"model": NAME, "prompt": "caf\u00e9"}).encode(), 400, "alphabet"),
    ("/completions", json.dumps({"model": NAME, "prompt": ""}).encode(), 400, "empty"),
    ("/chat/completions", json.dumps({"model": NAME, "messages": []}).encode(), 400, "messages"),
    ("/chat/completions", json.dumps({"model": NAME, "messages": [{"role": "user"}]}).encode(), 400, "content"),
])
def test_malformed_requests_get_a_json_4xx_error(server, path, body, status, words):
    base, _ = server
    code, answer = post(base, path, body)
    assert code == status and words in answer["error"]["message"], answer
    assert answer["error"]["type"] == "invalid_request_error"


def test_the_openai_backend_of_our_lm_interface_matches_the_local_one(server):
    base, lm = server
    remote = OpenAILM(base, NAME)
    got = remote.generate(["3+4=", "9+9="], max_tokens=8)
    want = lm.generate(["3+4=", "9+9="], max_tokens=8)
    assert [g[0].text for g in got] == [w[0].text for w in want]
    assert got[0][0].logprob == pytest.approx(want[0][0].logprob, abs=1e-3)
    assert remote.logprob("3+4=", "72") == pytest.approx(lm.logprob("3+4=", "72"), abs=1e-4)
    assert remote.chat([{"role": "user", "content": "hey"}], max_tokens=6) == lm.chat(
        [{"role": "user", "content": "hey"}], max_tokens=6)


def test_a_long_prompt_neither_stalls_short_requests_nor_escapes_the_context(tmp_path):
    """A model without a fixed context (no RoPE) is held to --max-context; a 3,000-character prompt, read
    16 positions a step, is still in its prefill when a short request sent after it has finished."""
    run_dir = tiny_run(tmp_path / NAME, pos_encoding="nope", max_seq_len=64)
    proc, base = start_server(run_dir, "--max-context", "3100", "--prefill-chunk", "16")
    try:
        code, answer = post(base, "/completions", json.dumps({"model": NAME, "prompt": "1" * 3101}).encode())
        assert code == 400 and "context of 3100 tokens" in answer["error"]["message"]
        c, events = client(base), []

        def long():
            stream = c.completions.create(model=NAME, prompt="12+34=" * 500, max_tokens=4, temperature=0,
                                          stream=True)
            for chunk in stream:
                events.append(("long", chunk.choices[0].text))

        def short():
            time.sleep(0.05)  # after the long request is in
            text = c.completions.create(model=NAME, prompt="3+4=", max_tokens=8, temperature=0).choices[0].text
            events.append(("short done", text))

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda f: f(), [long, short]))
        lm = TransformerLM.from_run(run_dir)
        assert events[0] == ("short done", offline(lm, "3+4=", max_tokens=8))
        assert "".join(text for who, text in events if who == "long") == offline(lm, "12+34=" * 500, max_tokens=4)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
