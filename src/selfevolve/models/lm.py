"""One language-model interface for every agent recipe, whatever answers behind it.

    lm.generate(prompts, n=1, temperature=0.0, max_tokens=64, stop=None) -> [[Completion] * n] per prompt
    lm.logprob(prompt, continuation) -> log p(continuation | prompt)
    lm.chat([{"role": "user", "content": ...}]) -> the assistant's reply
    lm.chats([messages, ...], temperature=..., max_tokens=...) -> [Completion] (one per conversation, batched)

Backends: `TransformerLM` (our transformer: a tiny model from a run, or a local Hugging Face model
such as SmolLM2 loaded into it; batched through our sampler), `OpenAILM` (any OpenAI-compatible
server, `selfevolve serve` included) and `ScriptedLM` (a Python function, for tests and experts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Completion:
    text: str
    logprob: float  # sum of the generated tokens' log-probabilities (temperature 1); 0 where unknown
    tokens: int


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """The text up to (not including) the earliest stop string."""
    ends = [i for s in stop or () if (i := text.find(s)) >= 0]
    return text[: min(ends)] if ends else text


def transcript(messages: list[dict]) -> str:
    """A plain chat prompt for models without a chat template: one "role: content" line each."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "


def chat_prompt(tok, messages: list[dict]) -> str:
    """The prompt for the assistant's next turn in the tokenizer's own chat template, or a transcript."""
    hf = getattr(tok, "hf", None)
    if hf is not None and getattr(hf, "chat_template", None):
        return hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return transcript(messages)


class TransformerLM:
    """Our transformer and its tokenizer (CharTokenizer or an HF tokenizer) behind the interface."""

    def __init__(self, model, tokenizer, batch_size: int = 256, seed: int = 0, max_context: int = 4096) -> None:
        self.model, self.tok, self.batch_size = model.eval(), tokenizer, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.max_context = max_context

    @classmethod
    def from_pretrained(cls, name: str | Path, **kw) -> TransformerLM:
        """`smollm2` or a local Hugging Face directory (see models/hf.py)."""
        from selfevolve.models.hf import load

        return cls(*load(str(name)), **kw)

    @classmethod
    def from_run(cls, run_dir: Path, **kw) -> TransformerLM:
        """The latest checkpoint of a run of ours: a tiny model with our character tokenizer, or the
        pretrained model the run fine-tuned (LoRA adapters and all) with its own tokenizer."""
        from selfevolve.config import build_config
        from selfevolve.models.policy import TINY
        from selfevolve.models.tokenizer import CharTokenizer
        from selfevolve.recipes import get_recipe
        from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint

        store = RunStore.open(Path(run_dir))
        last = store.finished_checkpoint()
        values, recipe = store.config_values(), get_recipe(store.recipe)
        if values.get("model", TINY) != TINY and recipe.policy is not None:
            policy = recipe.policy(build_config(recipe.Config, values))
            return cls(store.load_last(policy.model), policy.tok, **kw)
        return cls(model_from_checkpoint(load_checkpoint(last)), CharTokenizer(), **kw)

    @property
    def max_len(self) -> int:
        """Prompt + generated tokens: a RoPE model's trained context; others (whose positions extrapolate) are
        held to `max_context`, since the cache and the prefill's attention grow with it."""
        return self.model.cfg.max_seq_len if self.model.cfg.pos_encoding == "rope" else self.max_context

    def context_error(self, prompt_tokens: int, max_tokens: int) -> str | None:
        """Why a prompt of this length cannot get max_tokens more."""
        if prompt_tokens + max_tokens > self.max_len:
            return (f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds the model's context of "
                    f"{self.max_len} tokens")
        return None

    def generate(self, prompts: list[str], n: int = 1, temperature: float = 0.0, max_tokens: int = 64,
                 stop: list[str] | None = None) -> list[list[Completion]]:
        from selfevolve.models.sampler import generate

        encoded = [self.tok.encode(p) for p in prompts]
        if error := self.context_error(max(len(e) for e in encoded), max_tokens):
            raise ValueError(error)
        out = generate(self.model, encoded, max_tokens, stop_id=self.tok.eos_id, pad_id=self.tok.pad_id,
                       num_samples=n, temperature=temperature, batch_size=self.batch_size, generator=self.gen)
        completions = []
        for row in range(len(encoded) * n):
            length = int(out.lengths[row])
            text = cut_at_stop(self.tok.decode(out.tokens[row, :length]), stop)
            completions.append(Completion(text, float(out.logprobs[row, :length].sum()), length))
        return [completions[i * n : (i + 1) * n] for i in range(len(encoded))]

    @torch.no_grad()
    def logprob(self, prompt: str, continuation: str) -> float:
        p, c = self.tok.encode(prompt), self.tok.encode(continuation)
        idx = torch.tensor([p + c])
        logits = self.model(idx[:, :-1]).float().log_softmax(-1)[0, len(p) - 1 :]
        return float(logits.gather(1, torch.tensor(c)[:, None]).sum())

    def chat_prompt(self, messages: list[dict]) -> str:
        return chat_prompt(self.tok, messages)

    def chat(self, messages: list[dict], **kw) -> str:
        return self.generate([self.chat_prompt(messages)], **kw)[0][0].text

    def chats(self, conversations: list[list[dict]], **kw) -> list[Completion]:
        return [row[0] for row in self.generate([self.chat_prompt(m) for m in conversations], **kw)]


class ScriptedLM:
    """A function from prompt to reply: deterministic, for tests and scripted experts."""

    def __init__(self, reply: Callable[[str], str]) -> None:
        self.reply = reply

    def generate(self, prompts: list[str], n: int = 1, temperature: float = 0.0, max_tokens: int = 64,
                 stop: list[str] | None = None) -> list[list[Completion]]:
        return [[Completion(cut_at_stop(self.reply(p), stop), 0.0, 0)] * n for p in prompts]

    def logprob(self, prompt: str, continuation: str) -> float:
        return 0.0 if self.reply(prompt) == continuation else float("-inf")

    def chat(self, messages: list[dict], **kw) -> str:
        return self.generate([transcript(messages)], **kw)[0][0].text

    def chats(self, conversations: list[list[dict]], **kw) -> list[Completion]:
        return [row[0] for row in self.generate([transcript(m) for m in conversations], **kw)]


class ReplayLM:
    """The replies a logged run got: each conversation (as JSON) gets the replies it got then, in the
    order it got them, so replaying the calls reproduces the run without the model; a call the run
    never made is an error, not a guess."""

    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.replies: dict[str, list[str]] = {}
        for conversation, reply in calls:
            self.replies.setdefault(conversation, []).append(reply)

    def chats(self, conversations: list[list[dict]], **kw) -> list[Completion]:
        out = []
        for messages in conversations:
            queue = self.replies.get(json.dumps(messages))
            if not queue:
                raise KeyError("a conversation the logged run never had (or had fewer times)")
            out.append(Completion(queue.pop(0), 0.0, 0))
        return out


def logged_chats(lm, conversations: list[list[dict]], stream: torch.Generator, temperature: float,
                 max_tokens: int) -> tuple[list[Completion], dict[str, list]]:
    """One batched call, and the columns a run stores for it (the conversation as JSON, the reply, its
    tokens, the call's seconds) so that the run can be audited and replayed (`logged_calls`). A model
    sampled here draws from `stream`, the call's own, so a resumed run samples what it would have."""
    if hasattr(lm, "gen"):
        lm.gen = stream
    t0 = time.perf_counter()
    completions = lm.chats(conversations, temperature=temperature, max_tokens=max_tokens)
    seconds = time.perf_counter() - t0
    return completions, {"prompt": [json.dumps(c) for c in conversations], "response": [c.text for c in completions],
                         "tokens": [c.tokens for c in completions], "latency_seconds": [seconds] * len(completions)}


def logged_stage(lm, rows: dict[str, list], stage: str, conversations: list[list[dict]], stream: torch.Generator,
                 temperature: float, max_tokens: int) -> list[str]:
    """One batched call of a round with several stages: its log columns, and the stage's name, added to
    `rows` (the round's samples); returns the replies' texts."""
    completions, log = logged_chats(lm, conversations, stream, temperature, max_tokens)
    for key, values in (("stage", [stage] * len(completions)), *log.items()):
        rows.setdefault(key, []).extend(values)
    return [c.text for c in completions]


def logged_calls(store) -> list[tuple[str, str]]:
    """Every model call of a run in order, (conversation as JSON, reply), read from its samples files:
    `ReplayLM(logged_calls(store))` replays the run without the model."""
    calls = []
    for r in store.rounds():
        if (store.path / "samples" / f"round-{r['round']:03d}.parquet").exists():
            table = store.read_samples(r["round"])
            if "prompt" in table.column_names:
                row = table.select(["prompt", "response"]).to_pydict()
                calls += [(p, reply) for p, reply in zip(row["prompt"], row["response"], strict=True) if p]
    return calls


class OpenAILM:
    """Any OpenAI-compatible server (`base_url` like http://127.0.0.1:8000/v1), through the official client."""

    def __init__(self, base_url: str, model: str, api_key: str = "none", timeout: float = 600) -> None:
        from selfevolve.models.hf import SERVE_EXTRAS, require

        require("openai", SERVE_EXTRAS)
        import openai

        self.client, self.model = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout), model

    def generate(self, prompts: list[str], n: int = 1, temperature: float = 0.0, max_tokens: int = 64,
                 stop: list[str] | None = None) -> list[list[Completion]]:
        out = self.client.completions.create(model=self.model, prompt=prompts, n=n, temperature=temperature,
                                             max_tokens=max_tokens, stop=stop, logprobs=1)
        rows: list[list[Completion]] = [[] for _ in prompts]
        for choice in sorted(out.choices, key=lambda c: c.index):
            lps = (choice.logprobs.token_logprobs or []) if choice.logprobs else []
            rows[choice.index // n].append(Completion(choice.text, float(sum(lps)), len(lps)))
        return rows

    def logprob(self, prompt: str, continuation: str) -> float:
        out = self.client.completions.create(model=self.model, prompt=prompt + continuation, max_tokens=0,
                                             echo=True, logprobs=1)
        lp = out.choices[0].logprobs
        start = next(i for i, off in enumerate(lp.text_offset) if off >= len(prompt))
        return float(sum(lp.token_logprobs[start:]))

    def sequence_logprobs(self, texts: list[str]) -> list[float]:
        """log P(text) of each text as the server tokenises it (its first token given), in one request."""
        out = self.client.completions.create(model=self.model, prompt=texts, max_tokens=0, echo=True, logprobs=0)
        return [float(sum(lp for lp in c.logprobs.token_logprobs if lp is not None))
                for c in sorted(out.choices, key=lambda c: c.index)]

    def chat(self, messages: list[dict], temperature: float = 0.0, max_tokens: int = 64, **kw) -> str:
        out = self.client.chat.completions.create(model=self.model, messages=messages, temperature=temperature,
                                                  max_tokens=max_tokens, **kw)
        return out.choices[0].message.content

    def chats(self, conversations: list[list[dict]], temperature: float = 0.0, max_tokens: int = 64,
              **kw) -> list[Completion]:
        """Every conversation as its own request, all at once (a batching server answers them together)."""
        from concurrent.futures import ThreadPoolExecutor

        def one(messages: list[dict]) -> Completion:
            out = self.client.chat.completions.create(model=self.model, messages=messages, temperature=temperature,
                                                      max_tokens=max_tokens, **kw)
            tokens = out.usage.completion_tokens if out.usage else 0
            return Completion(out.choices[0].message.content or "", 0.0, tokens)

        with ThreadPoolExecutor(min(16, max(1, len(conversations)))) as pool:
            return list(pool.map(one, conversations))


@dataclass
class LMChoice:
    """The config fields of a recipe whose operator is a language model it does not train."""

    model: str = "smollm2"
    """smollm2 or a local Hugging Face directory, loaded here; with base_url, the server's model name."""
    base_url: str = ""
    """An OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1 from `selfevolve serve`) instead of a
    model loaded here."""
    temperature: float = 0.8
    """Sampling temperature of the model's replies."""
    max_tokens: int = 256
    """Most tokens per reply."""
    threads: int = 0
    """CPU threads of a model loaded here (0: torch's default)."""

    def check_lm(self) -> None:
        """Raise ValueError for a bad setting, a missing model directory or wheel (for __post_init__)."""
        if self.temperature < 0 or self.max_tokens < 1 or self.threads < 0:
            raise ValueError(f"temperature must be >= 0, max_tokens >= 1 and threads >= 0, got {self.temperature}, "
                             f"{self.max_tokens}, {self.threads}")
        if not self.base_url:
            from selfevolve.models.hf import resolve

            resolve(self.model)

    def open_lm(self, batch_size: int, seed: int) -> Any:
        """The model behind the interface: a server's (OpenAILM) or one loaded here (TransformerLM)."""
        if self.base_url:
            return OpenAILM(self.base_url, self.model)
        if self.threads:
            torch.set_num_threads(self.threads)
        return TransformerLM.from_pretrained(self.model, batch_size=batch_size, seed=seed)
