"""Running the real `selfevolve` command in a subprocess."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# torch threads of the tests and of the runs they start: `make test` runs one test process per core,
# each of one thread (tiny models keep a second thread of one process half idle)
TEST_THREADS = int(os.environ.get("SELFEVOLVE_TEST_THREADS", "2"))
THREADS = f"threads={TEST_THREADS}"

# A short length-gen run: labels up to 4 digits, one round of self-labelled 5-digit problems
# (about 50 s on 2 cores). With seed 0, round 0 is right on a third to nine tenths of the 5-digit
# problems, by CPU (tests/test_length_gen.py).
FAST = ["labelled_max_digits=4", "target_digits=5", "num_labelled=20000", "round0_steps=800", "round_steps=300",
        "num_unlabelled=1000", "eval_problems=100", "eval_extra_digits=1", "max_rounds=1", "advance_at=0",
        THREADS]

# a star run of a few seconds: a 1 x 32 model, one short iteration
QUICK_STAR = ["difficulty=3", "num_labelled=200", "n_embd=32", "n_layer=1", "round0_steps=20", "iterations=1",
              "problems_per_iteration=50", "samples_per_problem=2", "iteration_steps=10", "eval_problems=20",
              THREADS]
# a GP run of a second
QUICK_GP = ["generations=2", "pop_size=20"]

# A short GENOME run on a tiny base model with three experts trained in the run (about 25 s).
GENOME_SHORT = ["skills=reverse,upper,shift", "base_steps=100", "expert_steps=30", "pop_size=6", "generations=6",
                "dev_size=30", "test_size=30", "ensemble_k=2", THREADS]


def selfevolve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "selfevolve", *args]


class Preloaded:
    """The client of tests/preloaded.py: one interpreter with the heavy imports done, forked per command."""

    def __init__(self):
        self.server = None

    def run(self, args: list[str], cwd: Path | None, env: dict, timeout: float) -> subprocess.CompletedProcess:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("preloaded.py"))],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                           env={**os.environ, "COLUMNS": "200"})
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            out.touch()
            err.touch()
            request = {"args": args, "cwd": str(cwd or os.getcwd()), "env": env, "stdout": str(out),
                       "stderr": str(err)}
            data = json.dumps(request).encode() + b"\n"
            while data:
                data = data[os.write(self.server.stdin.fileno(), data):]
            pid = self.reply()
            if not select.select([self.server.stdout], [], [], timeout)[0]:
                os.kill(pid, signal.SIGKILL)
                self.reply()
                raise subprocess.TimeoutExpired(args, timeout)
            code = self.reply()
            return subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())

    def reply(self) -> int:
        """One line of the server's, read a byte at a time: nothing buffered here that select would miss."""
        line = b""
        while not line.endswith(b"\n"):
            byte = os.read(self.server.stdout.fileno(), 1)
            if not byte:
                raise RuntimeError("the preloaded interpreter died (run with SELFEVOLVE_TESTS_FRESH=1 to see why)")
            line += byte
        return int(line)


PRELOADED = Preloaded()


def run_selfevolve(args: list[str], cwd: Path | None = None, timeout: float = 600, **env: str):
    """`python -m selfevolve ARGS` with its output captured: a fork of the preloaded interpreter, or with
    SELFEVOLVE_TESTS_FRESH=1 a fresh one."""
    env = {**os.environ, "COLUMNS": "200", **env}
    if os.environ.get("SELFEVOLVE_TESTS_FRESH") == "1":
        return subprocess.run(selfevolve_cmd(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                              env=env)
    return PRELOADED.run(list(args), cwd, env, timeout)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_selfevolve(list(args), cwd, timeout)


def sets(values: list[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for fragment in fragments:
        assert fragment in proc.stderr + proc.stdout


def without_times(obj):
    """The object without its times (every key ending in `seconds`), at any depth: what must match
    across runs."""
    if isinstance(obj, dict):
        return {k: without_times(v) for k, v in obj.items() if not k.endswith("seconds")}
    if isinstance(obj, list):
        return [without_times(v) for v in obj]
    return obj


def kill_9_after(args: list[str], written: str) -> None:
    """Run `selfevolve *args` until it has written a path ending with `written` (SUFFIX[@N]: the N-th
    time), where it kills itself with SIGKILL: a kill -9 at an exact place, with no timer to race."""
    proc = run_selfevolve(args, SELFEVOLVE_KILL_AFTER=written)
    assert proc.returncode == -signal.SIGKILL, f"not killed after writing {written}: {proc.stderr[-2000:]}"


def assert_resume_finishes_as(killed: Path, straight: Path) -> None:
    """`selfevolve resume KILLED` succeeds, and its summary equals the uninterrupted run's, times aside."""
    proc = run_cli("resume", str(killed))
    assert proc.returncode == 0, proc.stderr
    assert without_times(summary(killed)) == without_times(summary(straight))


def assert_refused_before_a_run(tmp_path: Path, recipe: str, message: str, *settings: str) -> None:
    """`selfevolve run RECIPE` with bad settings: one clear error (exit 2), and no run directory made."""
    out = tmp_path / "x"
    assert_clean_error(run_cli("run", recipe, "--out", str(out), *sets(list(settings))), message)
    assert not out.exists()


def save_tiny_llama(path, tie: bool = True, kv_heads: int = 2):
    """A random LlamaForCausalLM with grouped-query attention, saved with save_pretrained."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, max_position_embeddings=128, tie_word_embeddings=tie, rope_theta=500.0,
        pad_token_id=3, eos_token_id=2, bos_token_id=1)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)  # large enough that greedy tokens depend on every part of the network
    model.save_pretrained(path)
    return model.eval()


def save_word_level_llama(path, layers: int = 2, width: int = 64):
    """A random Llama with its own `tokenizers` WordLevel tokenizer (a word per digit or operator: 24
    ids, none where our character tokenizer has them, and fewer than its 97, so text encoded with the
    wrong tokenizer fails loudly), saved as a user would: save_pretrained for both."""
    import torch
    import transformers
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    words = ["<unk>", "<pad>", *"+-*/()=,>:", "</s>", *"0123456789", "?"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # "3", "+", "7" -> "3+7": no spaces between words
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                                  unk_token="<unk>")
    config = transformers.LlamaConfig(
        vocab_size=len(words), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True,
        pad_token_id=1, eos_token_id=12, bos_token_id=None)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(path)
    hf_tok.save_pretrained(path)
    return model.eval(), hf_tok


def save_bpe_llama(path, texts: list[str], vocab_size: int = 400, layers: int = 2, width: int = 64):
    """A random Llama with a byte-level BPE tokenizer trained on `texts` (GPT-2's pre-tokenizer, as
    SmolLM2 has: words and numbers become subword tokens, whitespace runs such as "\\n" their own),
    saved with save_pretrained."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>")
    config = transformers.LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        pad_token_id=hf_tok.pad_token_id, eos_token_id=hf_tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    hf_tok.save_pretrained(path)
    return hf_tok


def hf_greedy_texts(out, prompts: list[str], new_tokens: int) -> tuple[list[list[int]], list[str]]:
    """What a user gets with transformers alone: AutoTokenizer ids and greedy answers, one prompt at a time."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(out)
    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids, texts = [], []
    for prompt in prompts:
        x = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
        with torch.no_grad():
            y = model.generate(x, max_new_tokens=new_tokens, do_sample=False, eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id)[0, x.shape[1]:]
        ids.append(x[0].tolist())
        texts.append(tok.decode(y, skip_special_tokens=True))
    return ids, texts


def assert_phone_example_replays(run_dir: Path, variant: str) -> None:
    """The report shows the variant's example episode screen by screen, and its recorded actions, played
    again on a fresh phone, give the outcome the run recorded."""
    from selfevolve.agents.mobile_agent import ground
    from selfevolve.agents.phone import Phone
    from selfevolve.agents.screens import replay

    example = json.loads((run_dir / "episodes" / f"{variant}.json").read_text())
    env = Phone(example["difficulty"])
    assert replay(env, example["task_id"], example["actions"], lambda a: ground(env, a))[1] == example["success"]
    screens = sorted((run_dir / "plots").glob(f"example-{variant}-*.png"))
    pages = len(example["actions"]) + 1  # the report draws the first 12 screens and the last
    assert len(screens) == min(pages, 13) and (run_dir / "report.html").read_text().count('class="screen"') == len(
        screens)
