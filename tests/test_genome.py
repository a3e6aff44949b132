"""GENOME: the ask / tell loop keeps its invariants, and a short real run (tiny base and experts
trained in the run) compares every candidate on a test split it reads exactly once."""

import importlib.util

import numpy as np
import pytest
import torch
from helpers import GENOME_SHORT, hf_greedy_texts, run_cli, sets, summary

from selfevolve.evolve.genome import Genome, GenomeConfig, GenomeState
from selfevolve.tasks.base import HeldOutSplit
from selfevolve.tasks.skills import skill_problems


def fitness_of(x):
    """A smooth landscape with its peak at 1 in every coordinate."""
    return -((x - 1) ** 2).mean(1)


@pytest.mark.parametrize("succession", [False, True])
def test_genome_keeps_its_elites_and_climbs(succession):
    experts = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    evo = Genome(GenomeConfig(pop_size=8, elites=2, succession=succession, selection="tournament"), experts,
                 fitness_of(experts))
    state = evo.init(seed=1)
    first = state.best_fitness
    for _ in range(15):
        rng_before = state.rng.clone()
        children, asked = evo.ask(state)
        assert children.shape == (6, 50)
        assert torch.equal(state.rng, rng_before) and state.parents is not asked.parents  # state left as it was
        everyone = torch.cat([state.population, children])
        best_before = state.best_fitness
        state = evo.tell(asked, children, fitness_of(children))
        # the two best of parents and children survive unchanged, every survivor is one of them
        assert torch.equal(state.population[:2], everyone[fitness_of(everyone).argsort(descending=True)[:2]])
        assert all((everyone == row).all(1).any() for row in state.population)
        assert torch.equal(state.fitness, fitness_of(state.population))
        assert state.best_fitness >= best_before and len(state.population) == 8
        assert (state.personal_fitness >= state.fitness).all()
    assert state.best_fitness > first
    assert torch.allclose(fitness_of(state.best[None])[0], torch.tensor(state.best_fitness))


def test_genome_state_round_trips_and_continues_identically():
    experts = torch.randn(3, 20, generator=torch.Generator().manual_seed(2))
    evo = Genome(GenomeConfig(pop_size=6, elites=1), experts, fitness_of(experts))
    children, state = evo.ask(evo.init(seed=3))
    state = evo.tell(state, children, fitness_of(children))
    copy = GenomeState.restore({k: v.clone() for k, v in state.tensors().items()}, dict(state.scalars()))
    assert torch.equal(evo.ask(copy)[0], evo.ask(state)[0])
    assert torch.equal(evo.ask(state)[0], evo.ask(state)[0])  # asking twice gives the same children


def test_the_test_split_allows_one_read():
    split = HeldOutSplit(skill_problems(("reverse",), 5, np.random.default_rng(0)))
    assert len(split.read()) == 5
    with pytest.raises(RuntimeError, match="already read"):
        split.read()


def test_short_genome_run_reads_test_once_reports_every_baseline_and_matches_on_ray(tmp_path, finished_run):
    run = finished_run("genome", GENOME_SHORT)
    s = summary(run)
    assert s["test_reads"] == 1
    assert set(s["test_accuracy"]) == {"expert:reverse", "expert:upper", "expert:shift", "best_expert",
                                       "uniform_merge", "ties_merge", "random_search", "genome_best", "genome_ensemble"}
    assert all(0 <= v <= 1 for v in s["test_accuracy"].values())
    dev = s["dev_accuracy"]
    # the best expert is chosen on dev, and evolution starts from the experts: never below it on dev
    assert dev["best_expert"] == max(dev[f"expert:{n}"] for n in ("reverse", "upper", "shift"))
    assert dev["genome_best"] >= dev["best_expert"]
    assert s["dev_accuracy_by_generation"] == sorted(s["dev_accuracy_by_generation"])
    assert s["evaluations"] == s["random_search_evaluations"] == 3 + 6 * (6 - 2)
    adapters = [run / "experts" / n for n in ("reverse", "upper", "shift")] + [run / "genome_best"]
    assert all((a / "adapter_config.json").is_file() and (a / "adapter_model.safetensors").is_file() for a in adapters)
    assert (run / "report.html").is_file() and (run / "plots" / "test_accuracy.png").is_file()

    # export: the best merge folded into the base model, read back by transformers alone
    from selfevolve.config import build_config
    from selfevolve.models.lora import load_adapter
    from selfevolve.models.sampler import generate
    from selfevolve.progress import Progress
    from selfevolve.recipes.genome import Config, base_model
    from selfevolve.store import RunStore
    from selfevolve.tasks.skills import skill_problems

    proc = run_cli("export", str(run), "--hf", str(tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    model, tok = base_model(build_config(Config, RunStore.open(run).config_values()), RunStore.open(run),
                            Progress(enabled=False))
    problems = skill_problems(("reverse", "upper"), 6, np.random.default_rng(3))
    out = generate(load_adapter(model, run / "genome_best").eval(), [tok.encode(p.prompt) for p in problems], 12,
                   stop_id=tok.eos_id, pad_id=tok.pad_id)
    ours = [tok.decode(out.tokens[i, : out.lengths[i]].tolist()) for i in range(len(problems))]
    ids, theirs = hf_greedy_texts(tmp_path / "hf", [p.prompt for p in problems], 12)
    assert ids == [tok.encode(p.prompt) for p in problems] and theirs == ours

    # the user's own peft adapters as the experts (here: two of this run's, on the same base model)
    adapters = ",".join(str(run / "experts" / n) for n in ("reverse", "upper"))
    mine = [*GENOME_SHORT, "generations=2", f"adapters={adapters}"]
    proc = run_cli("run", "genome", "--out", str(tmp_path / "mine"), *sets(mine))
    assert proc.returncode == 0, proc.stderr
    again = summary(tmp_path / "mine")
    assert again["experts"] == ["reverse", "upper"] and not (tmp_path / "mine" / "experts").exists()
    assert again["dev_accuracy"]["expert:reverse"] == dev["expert:reverse"]  # the same adapter, the same answers

    # fitness spread over Ray workers: the same run, number for number
    if importlib.util.find_spec("ray"):
        proc = run_cli("run", "genome", "--out", str(tmp_path / "ray"), *sets([*mine, "backend=ray", "workers=2"]))
        assert proc.returncode == 0, proc.stderr
        ray = summary(tmp_path / "ray")
        assert ray["test_accuracy"] == again["test_accuracy"] and ray["generations_log"] == again["generations_log"]
        assert len(ray["generations_log"]) == 3  # generation 0 (the experts) and two more


def test_a_merge_of_experts_is_that_merge_of_their_weight_updates(finished_run):
    """The experts share their frozen A, so only their B matrices are merged: the sum of two experts'
    vectors adds their weight updates (merging A too would double it, and every update with it)."""
    from selfevolve.config import build_config
    from selfevolve.progress import Progress
    from selfevolve.recipes.genome import Config, merge_space
    from selfevolve.store import RunStore

    store = RunStore.open(finished_run("genome", GENOME_SHORT))
    space = merge_space(build_config(Config, store.config_values()), store, Progress(enabled=False))
    assert all("lora_B" in name for name in space.fitness.flat.names)

    def update(vector):  # one adapted layer's weight update, scale x B A
        m = space.fitness.load(vector).layers[0].self_attn.q_proj
        return m.scaling["default"] * m.lora_B["default"].weight @ m.lora_A["default"].weight

    x, y = space.X[0], space.X[1]
    assert update(x).abs().max() > 1e-3 and update(y).abs().max() > 1e-3
    torch.testing.assert_close(update(x + y), update(x) + update(y))


def test_answers_are_kept_per_adapter_and_prompts_and_equal_a_fresh_evaluation(finished_run):
    """The final scoring asks again for adapters evolution evaluated: it gets the same answers without
    generating them again, and never another adapter's or another problem set's."""
    from selfevolve.config import build_config
    from selfevolve.evolve.adapters import AdapterEval
    from selfevolve.progress import Progress
    from selfevolve.recipes.genome import Config, merge_space
    from selfevolve.store import RunStore

    store = RunStore.open(finished_run("genome", GENOME_SHORT))
    space = merge_space(build_config(Config, store.config_values()), store, Progress(enabled=False))
    ev, X = space.fitness, space.X
    first = ev.answers(X[0])
    assert ev.answers(X[0].clone()) is first  # the same vector: kept, not generated again
    fresh = AdapterEval(ev.model, ev.tok, ev.flat, ev.problems)
    assert ev.answers(X[1]) != first and ev.answers(X[1]) == fresh.answers(X[1])
    assert fresh.answers(X[0]) == first
    other = skill_problems(("reverse",), 4, np.random.default_rng(9))
    assert ev.answers(X[0], other) == AdapterEval(ev.model, ev.tok, ev.flat, other).answers(X[0])
    assert len(ev.answers(X[0], other)) == 4 and len(ev.known) == 3


def test_shared_adapter_weights_are_held_and_identical_adapters_refused():
    from selfevolve.errors import ConfigError
    from selfevolve.evolve.adapters import split_shared

    a = {"q.lora_A": torch.ones(2, 3), "q.lora_B": torch.zeros(3, 2)}
    b = {"q.lora_A": torch.ones(2, 3), "q.lora_B": torch.ones(3, 2)}
    shared, rest = split_shared({"a": a, "b": b})
    assert list(shared) == ["q.lora_A"]
    assert {n: list(w) for n, w in rest.items()} == {"a": ["q.lora_B"], "b": ["q.lora_B"]}
    assert torch.equal(rest["b"]["q.lora_B"], b["q.lora_B"])
    with pytest.raises(ConfigError, match="identical"):
        split_shared({"a": a, "c": dict(a)})


def assert_greedy_writing(model, pool, rows: int = 3) -> None:
    """The pool's first rows continue their prompts with the model's greedy tokens, one full forward per token."""
    for i in range(rows):
        seq = pool.ids[i, : pool.prompt_lens[i]].tolist()
        with torch.no_grad():
            for _ in range(int(pool.lens[i] - pool.prompt_lens[i])):
                seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
        assert seq == pool.ids[i, : pool.lens[i]].tolist()


def test_experts_of_a_pretrained_base_replay_what_it_writes_after_the_other_skills(smollm2):
    from selfevolve.evolve.experts import own_writing
    from selfevolve.models.hf import load
    from selfevolve.models.lora import LoraSpec, add_lora
    from selfevolve.tasks.skills import skill_problems

    base, tok = load(str(smollm2))
    model = add_lora(base.eval(), LoraSpec(r=4, alpha=8), seed=0).eval()
    problems = skill_problems(("copy", "upper", "double"), 30, np.random.default_rng(0))
    pool = own_writing(model, tok, problems)("copy")
    tags = {tok.decode(row[:n].tolist()).split(":")[0] for row, n in zip(pool.ids, pool.prompt_lens, strict=True)}
    assert len(pool) == 20 and tags == {"upper", "double"}  # never the expert's own skill
    assert_greedy_writing(model, pool)  # adapter B = 0: the base's own
    longest = max(len(tok.encode(p.answer)) for p in problems)  # a doubled word, in SmolLM2's tokens
    written = pool.lens - pool.prompt_lens
    stopped = [tok.eos_id in row[n:m].tolist() for row, n, m in zip(pool.ids, pool.prompt_lens, pool.lens, strict=True)]
    assert all(s or w > longest + 1 for s, w in zip(stopped, written.tolist(), strict=True))  # cut only past any answer
    assert not all(stopped)


def test_solved_examples_as_chat_turns_let_the_pretrained_base_do_a_skill_it_was_not_taught(smollm2):
    """shots=3: each problem follows three solved problems of its skill as chat turns in SmolLM2's template;
    the words and answers asked are those of shots=0, and the untrained base now capitalises most words."""
    from selfevolve.config import build_config
    from selfevolve.evolve.experts import problems
    from selfevolve.models.hf import load
    from selfevolve.recipes.genome import Config
    from selfevolve.search.sampling import answer

    base, tok = load(str(smollm2))
    cfg = {"model": str(smollm2), "skills": ("title", "upper")}
    bare, shown = (problems(build_config(Config, {**cfg, "shots": k}), tok, ("title",), 20, 7) for k in (0, 3))
    assert [p.answer for p in bare] == [p.answer for p in shown]
    for p in shown:
        assert p.prompt.count("<|im_start|>assistant") == 4 and p.prompt.count("title: ") == 4
        assert p.prompt.endswith(f"title: {p.fields['word']}<|im_end|>\n<|im_start|>assistant\n")

    def accuracy(ps):
        return np.mean([a.strip() == p.answer for a, p in zip(answer(base.eval(), tok, ps)[0], ps, strict=True)])

    assert accuracy(bare) == 0 and accuracy(shown) >= 0.5


def test_bad_genome_config_gets_one_clear_error(tmp_path):
    from helpers import assert_clean_error

    assert_clean_error(run_cli("run", "genome", "--out", str(tmp_path / "a"), "--set", "skills=reverse,fly"),
                       "fly")
    assert_clean_error(run_cli("run", "genome", "--out", str(tmp_path / "b"), "--set", "dev_size=500"),
                       "at most 200")
    assert_clean_error(run_cli("run", "genome", "--out", str(tmp_path / "c"), "--set", "shots=1"), "pretrained")
    assert_clean_error(run_cli("run", "genome", "--out", str(tmp_path / "d"), "--set", "base_share=0"), "base_share")


def test_a_broad_tiny_base_learns_the_experts_skills_at_base_share_and_every_other_skill_besides():
    from collections import Counter

    from selfevolve.config import build_config
    from selfevolve.evolve.experts import base_mixture
    from selfevolve.recipes.genome import Config
    from selfevolve.tasks.skills import SKILLS

    even = Counter(p.fields["skill"] for p in base_mixture(build_config(Config, {})))
    assert set(even) == {"copy", "reverse", "upper", "shift", "rotate", "swap"}
    assert max(even.values()) - min(even.values()) <= 1
    cfg = build_config(Config, {"base_share": 0.2, "target": ("reverse", "sort")})
    broad = [p.fields["skill"] for p in base_mixture(cfg)]
    own = {"reverse", "upper", "shift", "rotate", "swap", "sort"}
    assert len(broad) == 20_000 and sum(s in own for s in broad) == 4_000 and set(broad) == set(SKILLS)
    assert sum(s in own for s in broad[:1000]) in range(150, 250)  # shuffled in, not a block


@pytest.mark.parametrize("own", [False, True])
def test_tiny_experts_replay_the_base_s_mixture_or_its_own_writing(own):
    """The tiny base's experts replay its training mixture (every skill, gold answers), or with
    replay_own_writing what the base itself writes after the other skills' prompts."""
    from selfevolve.config import build_config
    from selfevolve.evolve.experts import base_mixture, replay
    from selfevolve.models.policy import load_policy
    from selfevolve.recipes.genome import Config

    cfg = build_config(Config, {"skills": ("reverse", "upper", "shift"), "replay_own_writing": own})
    base = load_policy("tiny", 0, 32, 2, 2, 32)  # untrained: its own writing is not the gold answer
    pool = replay(cfg, base.model.eval(), base.tok)("reverse")
    prompts = [base.tok.decode(row[:n].tolist()) for row, n in zip(pool.ids, pool.prompt_lens, strict=True)]
    if not own:
        mixture = base_mixture(cfg)
        assert prompts == [p.prompt for p in mixture] and "reverse" in {p.split(":")[0] for p in prompts}
        return
    assert {p.split(":")[0] for p in prompts} == {"upper", "shift"}  # never the expert's own skill
    assert_greedy_writing(base.model, pool)
