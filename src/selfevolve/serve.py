"""An OpenAI-compatible server over our sampler: /v1/models, /v1/completions, /v1/chat/completions.

    selfevolve serve runs/star-countdown-s0 --port 8000
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")

Concurrent requests are batched: a single worker thread takes every request waiting (up to
`max_batch` sequences), groups them by sampling settings into batches, and steps every running
batch in turn, one token (or one prefill chunk of `prefill_chunk` positions) each. So 64 clients
cost a few forward passes per token rather than 64, a request that arrives while others run starts
at the next step instead of after them, and a long prompt's prefill never holds the others up for
more than one chunk. Every model has a context (prompt + max_tokens): a RoPE model's trained
length, `max_context` tokens for the others. Streaming (`stream: true`) sends each request's new
text as server-sent events while its batch runs. Bad requests get a 4xx answer with an
OpenAI-style JSON error body.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from selfevolve.models.lm import cut_at_stop

FINISHED = object()  # the end of a job's stream


@dataclass
class Job:
    """One request's work: `n` continuations of one prompt, answered through an asyncio queue."""

    prompt_ids: list[int]
    n: int
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue = field(default_factory=asyncio.Queue)
    texts: list[str] = field(init=False)  # per row, the text sent so far
    ids: list[list[int]] = field(init=False)  # per row, the tokens generated so far
    finished: list[str | None] = field(init=False)  # finish_reason per row, None while running

    def __post_init__(self) -> None:
        self.texts, self.ids, self.finished = [""] * self.n, [[] for _ in range(self.n)], [None] * self.n

    def send(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)


@dataclass
class Batch:
    """Jobs generated together, their sampler steps, and the time they have had (scaled by their weight)."""

    jobs: list[Job]
    steps: Generator
    weight: float
    used: float = 0.0


class Batcher:
    """The worker thread: turns waiting jobs into batches and shares the model's time between them.

    Jobs are batched by kind (sampling settings, and whether the prompt is longer than one prefill
    chunk); one batch of each kind runs at a time, so jobs of a kind that arrive meanwhile wait and
    form the next, large batch. The next step goes to the running batch that has had the least time,
    a batch of short prompts counting its time at 1/SHORT_WEIGHT: while a long prompt is read, short
    requests get most of the time and finish nearly as fast as alone, and the long one still moves.
    """

    SHORT_WEIGHT = 4.0

    def __init__(self, lm, max_batch: int = 64, prefill_chunk: int = 64) -> None:
        self.lm, self.max_batch, self.prefill_chunk = lm, max_batch, prefill_chunk
        self.jobs: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._work, daemon=True).start()

    def submit(self, job: Job) -> None:
        self.jobs.put(job)

    def kind(self, job: Job) -> tuple:
        return job.temperature, job.top_p, 0 < self.prefill_chunk < len(job.prompt_ids)

    def _work(self) -> None:
        running: dict[tuple, Batch] = {}
        waiting: list[Job] = []
        while True:
            if not running and not waiting:
                waiting.append(self.jobs.get())
            while True:
                try:
                    waiting.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            for kind in dict.fromkeys(self.kind(job) for job in waiting):
                if kind not in running:
                    jobs = self._take(waiting, kind)
                    floor = min((b.used for b in running.values()), default=0.0)  # newcomers neither wait nor
                    running[kind] = Batch(jobs, self._steps(jobs), 1.0 if kind[2] else self.SHORT_WEIGHT, floor)
            kind, batch = min(running.items(), key=lambda item: item[1].used)  # ... take over
            start = time.perf_counter()
            try:
                next(batch.steps)
            except StopIteration:
                self._end(batch.jobs)
                del running[kind]
            except Exception as err:  # a failed batch answers its jobs, never kills the server
                for job in batch.jobs:
                    job.send(err)
                del running[kind]
            batch.used += (time.perf_counter() - start) / batch.weight

    def _take(self, waiting: list[Job], kind: tuple) -> list[Job]:
        """Remove from `waiting` and return its jobs of this kind, oldest first, up to max_batch rows (one at least)."""
        taken, rows = [], 0
        for job in [j for j in waiting if self.kind(j) == kind]:
            if taken and rows + job.n > self.max_batch:
                break
            taken.append(job)
            rows += job.n
            waiting.remove(job)
        return taken

    def _steps(self, group: list[Job]) -> Generator:
        from selfevolve.models.sampler import sample_steps

        tok = self.lm.tok
        rows = [(job, k) for job in group for k in range(job.n)]

        def on_step(ids: torch.Tensor) -> None:
            for (job, k), token in zip(rows, ids.tolist(), strict=False):
                if job.finished[k] is not None:
                    continue
                if token == tok.eos_id:
                    self._finish(job, k, "stop")
                    continue
                job.ids[k].append(token)
                text = tok.decode(job.ids[k])
                if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                cut = cut_at_stop(text, job.stop)
                if len(cut) < len(text):
                    self._finish(job, k, "stop")
                elif len(job.ids[k]) >= job.max_tokens:
                    self._finish(job, k, "length")
                elif len(safe := held_back(cut, job.stop)) > len(job.texts[k]):  # may be a stop string's start
                    job.send((k, safe[len(job.texts[k]):]))
                    job.texts[k] = safe

        return sample_steps(self.lm.model, [job.prompt_ids for job, _ in rows], max(j.max_tokens for j in group),
                            stop_id=tok.eos_id, pad_id=tok.pad_id, temperature=group[0].temperature,
                            top_p=group[0].top_p, generator=self.lm.gen, on_step=on_step,
                            prefill_chunk=self.prefill_chunk)

    def _end(self, group: list[Job]) -> None:
        for job in group:
            for k in range(job.n):
                if job.finished[k] is None:
                    self._finish(job, k, "length")

    def _finish(self, job: Job, k: int, reason: str) -> None:
        """End row k: send any text still held back, and end the job when it was the last row."""
        text = cut_at_stop(self.lm.tok.decode(job.ids[k]), job.stop)
        if len(text) > len(job.texts[k]):
            job.send((k, text[len(job.texts[k]):]))
            job.texts[k] = text
        job.finished[k] = reason
        if all(r is not None for r in job.finished):
            job.send(FINISHED)


def held_back(text: str, stops: list[str]) -> str:
    """The text without its longest ending that begins some stop string (it may yet become one)."""
    for n in range(min(len(text), max((len(s) for s in stops), default=1) - 1), 0, -1):
        if any(s.startswith(text[-n:]) for s in stops):
            return text[:-n]
    return text


class Sampling(BaseModel):
    model: str
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=64)
    stop: str | list[str] | None = None
    stream: bool = False

class CompletionRequest(Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False

class Message(BaseModel):
    role: str
    content: str

class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def make_app(lm, model_name: str, max_batch: int = 64, prefill_chunk: int = 64) -> FastAPI:
    """The FastAPI application serving `lm` (a TransformerLM) as `model_name`."""
    app = FastAPI(title="selfevolve")
    batcher = Batcher(lm, max_batch, prefill_chunk)

    def error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"] if x != "body")
        return error(400, f"{where}: {first['msg']}" if where else first["msg"], where or None)

    @app.exception_handler(BadRequest)
    async def bad(_: Request, err: BadRequest) -> JSONResponse:
        return error(err.status, str(err), err.param, err.code)

    def check(req: Sampling) -> list[str]:
        if req.model != model_name:
            raise BadRequest(f"model {req.model!r} does not exist; this server has {model_name!r}", 404, "model",
                             "model_not_found")
        return [req.stop] if isinstance(req.stop, str) else list(req.stop or [])

    def encode(prompt: str, max_tokens: int) -> list[int]:
        try:
            ids = lm.tok.encode(prompt)
        except ValueError as err:
            raise BadRequest(str(err), param="prompt") from None
        if not ids:
            raise BadRequest("the prompt is empty", param="prompt")
        if too_long := lm.context_error(len(ids), max_tokens):
            raise BadRequest(too_long, param="max_tokens")
        return ids

    def start(ids: list[int], req: Sampling, stop: list[str], max_tokens: int) -> Job:
        job = Job(ids, req.n, max_tokens, req.temperature, req.top_p, stop, asyncio.get_running_loop())
        if max_tokens:
            batcher.submit(job)
        else:
            job.finished = ["length"] * job.n
            job.out.put_nowait(FINISHED)
        return job

    async def drain(job: Job):
        """Yield (row, new text) as it arrives, until the job is finished."""
        while True:
            item = await job.out.get()
            if item is FINISHED:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def usage(jobs: list[Job]) -> dict:
        prompt = sum(len(j.prompt_ids) for j in jobs)
        completion = sum(len(ids) for j in jobs for ids in j.ids)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def sse(obj: dict | str) -> str:
        return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n"

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": int(time.time()),
                                            "owned_by": "selfevolve"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        stop = check(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise BadRequest("prompt must not be an empty list", param="prompt")
        max_tokens = 16 if req.max_tokens is None else req.max_tokens
        if max_tokens == 0 and not req.echo:
            raise BadRequest("max_tokens = 0 needs echo = true", param="max_tokens")
        jobs = [start(encode(p, max_tokens), req, stop, max_tokens) for p in prompts]
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": model_name}

        if req.stream:
            async def events():
                for i, job in enumerate(jobs):
                    async for k, text in drain(job):
                        yield sse({**head, "choices": [{"index": i * req.n + k, "text": text, "logprobs": None,
                                                        "finish_reason": None}]})
                    for k, reason in enumerate(job.finished):
                        yield sse({**head, "choices": [{"index": i * req.n + k, "text": "", "logprobs": None,
                                                        "finish_reason": reason}]})
                yield sse("[DONE]")
            return StreamingResponse(events(), media_type="text/event-stream")

        choices = []
        for i, (prompt, job) in enumerate(zip(prompts, jobs, strict=True)):
            async for _ in drain(job):
                pass
            for k in range(req.n):
                text = (prompt if req.echo else "") + job.texts[k]
                logprobs = token_logprobs(lm, job.prompt_ids if req.echo else [], job.prompt_ids, job.ids[k],
                                          job.texts[k]) if req.logprobs is not None else None
                choices.append({"index": i * req.n + k, "text": text, "logprobs": logprobs,
                                "finish_reason": job.finished[k]})
        return {**head, "choices": choices, "usage": usage(jobs)}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        stop = check(req)
        prompt = lm.chat_prompt([m.model_dump() for m in req.messages])
        max_tokens = req.max_tokens or max(1, min(256, lm.max_len - len(lm.tok.encode(prompt))))
        job = start(encode(prompt, max_tokens), req, stop, max_tokens)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}

        if req.stream:
            async def events():
                chunk = {**head, "object": "chat.completion.chunk"}
                for k in range(req.n):
                    yield sse({**chunk, "choices": [{"index": k, "delta": {"role": "assistant", "content": ""},
                                                     "finish_reason": None}]})
                async for k, text in drain(job):
                    yield sse({**chunk, "choices": [{"index": k, "delta": {"content": text}, "finish_reason": None}]})
                for k, reason in enumerate(job.finished):
                    yield sse({**chunk, "choices": [{"index": k, "delta": {}, "finish_reason": reason}]})
                yield sse("[DONE]")
            return StreamingResponse(events(), media_type="text/event-stream")

        async for _ in drain(job):
            pass
        return {**head, "object": "chat.completion", "usage": usage([job]),
                "choices": [{"index": k, "message": {"role": "assistant", "content": job.texts[k]},
                             "finish_reason": job.finished[k]} for k in range(req.n)]}

    return app


@torch.no_grad()
def token_logprobs(lm, echoed: list[int], prompt: list[int], generated: list[int], text: str) -> dict:
    """OpenAI's legacy logprobs object for the echoed prompt tokens and the generated ones."""
    ids = prompt + generated
    logits = lm.model(torch.tensor([ids])).float().log_softmax(-1)[0]
    values = [None] + logits[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1).tolist()
    first = len(prompt) - len(echoed)
    tokens = [lm.tok.decode([i], stop_at_eos=False) for i in ids[first:]]
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": values[first:], "top_logprobs": None, "text_offset": offsets}


def serve(lm, model_name: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 64,
          prefill_chunk: int = 64) -> None:
    import uvicorn

    uvicorn.run(make_app(lm, model_name, max_batch, prefill_chunk), host=host, port=port, log_level="warning")
