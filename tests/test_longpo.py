"""LongPO: every answer sits in exactly one chunk, the short-to-long DPO loss by hand, and a tiny run."""

import numpy as np
import pytest
import torch
from helpers import THREADS, assert_clean_error, run_cli, sets, summary

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.tasks.long_lookup import LongLookupTask, short_prompt
from selfevolve.train.dpo import answer_logprobs, dpo_loss, dpo_step, reference_logprobs
from selfevolve.train.sft import Examples, SFTConfig, make_optimizer


def test_every_answer_sits_in_exactly_one_chunk_and_the_short_prompt_is_that_chunk():
    task = LongLookupTask()
    problems = task.sample(300, 14, np.random.default_rng(0)) + task.sample(300, 6, np.random.default_rng(1), True)
    for p in problems:
        document, _, question = p.prompt.partition("|")
        key = question.removesuffix("?>")
        chunks = document.split("/")
        holding = [i for i, c in enumerate(chunks) if f"{key}={p.answer}" in c.split(";")]
        assert holding == [p.fields["chunk"]] and document.count(f"{key}=") == 1
        assert short_prompt(p.prompt) == f"{chunks[holding[0]]}|{question}"
        assert len(p.prompt) + len(p.answer) + 1 <= task.max_seq_len and len(chunks) == p.difficulty
    assert max(len(p.prompt) for p in problems) > 440  # the longest documents reach about 450 characters
    with pytest.raises(ValueError, match="chunks per document"):
        task.sample(1, 15, np.random.default_rng(0))


def test_the_short_to_long_loss_reads_the_reference_on_the_short_prompt():
    tok, task = CharTokenizer(), LongLookupTask(max_chunks=3)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=task.max_seq_len,
                                          pos_encoding="rope"))
    torch.manual_seed(1)
    reference = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=32,
                                              max_seq_len=task.max_seq_len, pos_encoding="rope")).eval()
    problems = task.sample(4, 3, np.random.default_rng(2))
    long, short = [p.prompt for p in problems], [short_prompt(p.prompt) for p in problems]
    chosen, rejected = [p.answer for p in problems], ["123"] * 4
    good, bad = Examples.encode(tok, long, chosen), Examples.encode(tok, long, rejected)
    ref = (reference_logprobs(reference, Examples.encode(tok, short, chosen)),
           reference_logprobs(reference, Examples.encode(tok, short, rejected)))
    with torch.no_grad():  # by hand: the policy on the long prompt, the reference on the short one
        model.eval()
        pi_c, n_c = answer_logprobs(model, *good.batch(torch.arange(4)))
        pi_r, _ = answer_logprobs(model, *bad.batch(torch.arange(4)))
        r_c = torch.stack([answer_logprobs(reference, *Examples.encode(tok, [s], [c]).batch(torch.arange(1)))[0][0]
                           for s, c in zip(short, chosen, strict=True)])
    expected = (dpo_loss(pi_c, pi_r, r_c, ref[1], 0.5) - 1.0 * pi_c / n_c).mean()
    assert torch.allclose(ref[0], r_c, atol=1e-5)
    sft = SFTConfig(learning_rate=1e-9, warmup_steps=0)
    loss = dpo_step(model, make_optimizer(model, sft), good, bad, *ref, torch.arange(4), 1e-9, sft, 0.5, 1.0)
    assert loss == pytest.approx(float(expected), rel=1e-5)



@pytest.mark.parametrize("lora", [False, True])
def test_a_pair_reads_its_prompt_once_with_the_log_probabilities_and_gradients_of_reading_it_twice(lora):
    from selfevolve.models.lora import LoraSpec, add_lora
    from selfevolve.train.dpo import pair_logprobs

    tok, task = CharTokenizer(), LongLookupTask(max_chunks=6)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=task.max_seq_len,
                                          pos_encoding="rope"))
    if lora:
        model = add_lora(model, LoraSpec(r=4))
        for name, w in model.named_parameters():  # adapters that change the output (B starts at zero)
            if "lora_B" in name:
                torch.nn.init.normal_(w, std=0.1)
    problems = task.sample(6, 6, np.random.default_rng(3))
    long = [p.prompt for p in problems]
    good = Examples.encode(tok, long, [p.answer for p in problems])
    bad = Examples.encode(tok, long, ["7", "123", "45", "", "9999", "12"])
    index = torch.tensor([4, 0, 2, 5])
    params = [w for w in model.parameters() if w.requires_grad]

    def grads(loss):
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])

    read = []  # the tokens each pass embeds
    model.embed_tokens.register_forward_hook(lambda _m, inputs, _out: read.append(inputs[0].numel()))
    apart = (*answer_logprobs(model, *good.batch(index)), answer_logprobs(model, *bad.batch(index))[0])
    shared = pair_logprobs(model, good, bad, index)
    assert len(read) == 3 and read[2] < 0.6 * (read[0] + read[1])  # each document read once, not twice
    assert torch.equal(shared[1], apart[1])  # the same answer tokens
    for a, b in ((apart[0], shared[0]), (apart[2], shared[2])):
        assert torch.allclose(a, b, atol=1e-4)
    weigh = torch.arange(1.0, 5.0)  # a loss that weighs every pair and side differently
    expected = grads((weigh * apart[0] - weigh.flip(0) * apart[2]).sum())
    got = grads((weigh * shared[0] - weigh.flip(0) * shared[2]).sum())
    assert float((got - expected).norm() / expected.norm()) < 1e-5  # float rounding only
    # pairs whose two rows have different prompts are read apart, exactly as before
    other = Examples.encode(tok, long[1:] + long[:1], ["7", "123", "45", "", "9999", "12"])
    assert all(torch.equal(a, b) for a, b in zip(pair_logprobs(model, good, other, index),
                                                 (*answer_logprobs(model, *good.batch(index)),
                                                  answer_logprobs(model, *other.batch(index))[0]), strict=True))

def test_a_tiny_longpo_run_reports_long_and_short_context_accuracy(tmp_path):
    assert_clean_error(run_cli("run", "longpo", "--out", str(tmp_path / "x"), "--set", "objective=ppo"),
                       "objective must be one of longpo, dpo, sft, star")
    run = tmp_path / "run"
    tiny = ["preset=tiny", "n_layer=1", "n_embd=32", "num_labelled=100", "round0_steps=20", "iterations=1",
            "difficulty=4", "problems_per_iteration=40", "iteration_steps=5", "eval_problems=20", THREADS]
    proc = run_cli("run", "longpo", "--out", str(run), *sets(tiny))
    assert proc.returncode == 0, proc.stderr
    rounds = summary(run)["rounds"]
    assert all(0 <= r["short_pass1"] <= 1 for r in rounds) and "pairs" in rounds[1]
    assert set(rounds[1]["probe"]) == {"short_correct", "long_correct"}
    star = tmp_path / "star"  # plain self-training from the same round 0
    proc = run_cli("run", "longpo", "--out", str(star), *sets([*tiny, "objective=star", f"init_from={run}"]))
    assert proc.returncode == 0, proc.stderr
    assert summary(star)["rounds"][0]["pass1"] == rounds[0]["pass1"] and "pairs" not in summary(star)["rounds"][1]


@pytest.mark.parametrize("objective", ["longpo", "dpo", "sft"])
def test_every_objective_learns_from_the_same_pairs_and_raises_their_chosen_answers(objective):
    """The pairs whose two answers differ (and both stopped), for LongPO and for both baselines alike:
    SFT is on their chosen answers at the same steps, batch size and learning rate."""
    import copy

    from selfevolve.models.policy import Policy
    from selfevolve.progress import Progress
    from selfevolve.recipes.longpo import Config, learn_short_to_long
    from selfevolve.search.sampling import NO_STOP
    from selfevolve.selftrain import Step

    tok, task = CharTokenizer(), LongLookupTask(max_chunks=2)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=task.max_seq_len,
                                          pos_encoding="rope"))
    problems = task.sample(4, 2, np.random.default_rng(3))
    long_answers = ["12", problems[1].answer, NO_STOP, "999"]  # pairs: problems 0 and 3 only
    samples = {"prompt": [p.prompt for p in problems for _ in range(2)],
               "answer": [a for p, w in zip(problems, long_answers, strict=True) for a in (p.answer, w)]}
    cfg = Config(objective=objective, iteration_steps=15, dpo_learning_rate=3e-3, batch_size=2, threads=1)
    chosen = Examples.encode(tok, [problems[i].prompt for i in (0, 3)], [problems[i].answer for i in (0, 3)])
    nll = lambda: -float(reference_logprobs(model, chosen).sum())  # noqa: E731
    before = nll()
    step = Step(1, cfg, task, Policy(model, tok), make_optimizer(model, cfg.sft()), torch.Generator().manual_seed(0),
                Progress(enabled=False), None, [], chosen, [], copy.deepcopy(model).eval(), [])
    learned = learn_short_to_long(step, samples)
    assert learned.info == {"pairs": 2} and learned.tokens > 0
    assert nll() < before - 1.0  # the chosen answers of the two pairs became likelier on the long prompt


def test_a_pretrained_model_learns_short_questions_only_and_the_presets_are_overridable(tmp_path):
    from helpers import save_bpe_llama

    from selfevolve.config import build_config
    from selfevolve.models.hf import load
    from selfevolve.recipes.longpo import Config

    seed_set = LongLookupTask().sample(6, 3, np.random.default_rng(0))
    tiny = Config(model="tiny").round0_examples(CharTokenizer(), seed_set, np.random.default_rng(0))
    save_bpe_llama(tmp_path / "llama", [p.prompt + p.answer for p in seed_set])
    _, tok = load(str(tmp_path / "llama"))
    pretrained = Config(model=str(tmp_path / "llama")).round0_examples(tok, seed_set, np.random.default_rng(0))
    assert (len(tiny), len(pretrained)) == (12, 6)  # documents (next token) and questions; questions alone
    short = Examples.encode(tok, [short_prompt(p.prompt) for p in seed_set], [p.answer for p in seed_set])
    assert torch.equal(pretrained.ids, short.ids) and torch.equal(pretrained.prompt_lens, short.prompt_lens)
    default = build_config(Config, {})  # SmolLM2, one iteration: the setting of the measured claim
    assert (default.model, default.lora_r, default.round0_steps, default.iterations) == ("smollm2", 8, 30, 1)
    assert build_config(Config, {"preset": "smollm2", "iterations": "2"}) == build_config(Config, {"iterations": "2"})
    tiny = build_config(Config, {"preset": "tiny", "iterations": "2"})
    assert (tiny.model, tiny.lora_r, tiny.round0_steps, tiny.iterations) == ("tiny", 0, 1500, 2)
