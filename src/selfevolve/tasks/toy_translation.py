"""Translation into generated toy languages, whose lexicon and rules come in the prompt.

    "dog=bopa big=muki see=tale cat=kiro|SOV AN pl=s past=ed|the big dog saw the cats>"
        direct       muki bopa kiros taleed
        templates    gloss: muki bopa taleed kiros; SOV: muki bopa kiros taleed => muki bopa kiros taleed
                     S: muki bopa; V: taleed; O: kiros; SOV => muki bopa kiros taleed

A language (numbered; its generator is seeded by the number) has a word for each of 24 concepts,
a word order (SVO ... OVS), the adjective before or after its noun (AN / NA), a plural and a past
suffix, and two idioms (an adjective-noun pair that is one word). The prompt gives every entry the
sentence needs and the rules, so a language never seen in training is solvable. Training draws
(`mixed=True`) come from the first `seen_languages` languages only; evaluation draws alternate a
seen language and an unseen one (numbered from 1,000,000), and `group` says which a problem is.
The answer is the text after the last "=>" (all of it when there is none); it is scored by chrF
(Popovic 2015, sacrebleu) and right when it matches exactly. The two templates are the
chain-of-thought styles of R1-T1's human translation strategies (gloss then reorder; parse into
parts then order).
"""

from __future__ import annotations

import dataclasses
import functools
import zlib

import numpy as np

from selfevolve.tasks.base import Problem

NOUNS = ("dog", "cat", "bird", "horse", "boy", "girl", "tree", "house", "river", "stone", "star", "ship")
VERBS = {"see": ("sees", "see", "saw"), "find": ("finds", "find", "found"), "eat": ("eats", "eat", "ate"),
         "like": ("likes", "like", "liked"), "follow": ("follows", "follow", "followed"),
         "carry": ("carries", "carry", "carried")}
VERBS_LIST = tuple(VERBS)
ADJECTIVES = ("big", "small", "red", "old", "quick", "green")
ORDERS = ("SVO", "SOV", "VSO", "VOS", "OSV", "OVS")
CONSONANTS, VOWELS = "ptkmnlsrbdg", "aeiou"
PLURALS, PASTS = ("s", "en", "i", "ta", "ro"), ("ed", "ka", "ri", "o", "un")
UNSEEN = 1_000_000  # unseen languages are numbered from here


@dataclasses.dataclass(frozen=True)
class Language:
    words: dict[str, str]  # concept -> word
    order: str
    adjective_first: bool
    plural: str
    past: str
    idioms: dict[tuple[str, str], str]  # (adjective, noun) -> one word

    @classmethod
    def number(cls, n: int) -> Language:
        rng = np.random.default_rng([n, 17])
        words: dict[str, str] = {}
        for concept in (*NOUNS, *VERBS, *ADJECTIVES, "idiom0", "idiom1"):
            while (w := "".join(CONSONANTS[rng.integers(11)] + VOWELS[rng.integers(5)]
                                for _ in range(2))) in words.values():
                pass
            words[concept] = w
        pairs = [(ADJECTIVES[rng.integers(6)], NOUNS[i]) for i in rng.permutation(len(NOUNS))[:2]]
        return cls({c: w for c, w in words.items() if not c.startswith("idiom")}, ORDERS[rng.integers(6)],
                   bool(rng.integers(2)), PLURALS[rng.integers(5)], PASTS[rng.integers(5)],
                   {pair: words[f"idiom{i}"] for i, pair in enumerate(pairs)})

    def noun_phrase(self, adjective: str | None, noun: str, plural: bool) -> tuple[list[str], list[str]]:
        """The phrase's words, and the lexicon entries it needs."""
        suffix = self.plural if plural else ""
        if (adjective, noun) in self.idioms:
            word = self.idioms[(adjective, noun)]
            return [word + suffix], [f"{adjective} {noun}={word}"]
        head = [self.words[noun] + suffix]
        if adjective is None:
            return head, [f"{noun}={self.words[noun]}"]
        adj = [self.words[adjective]]
        return (adj + head if self.adjective_first else head + adj), [f"{noun}={self.words[noun]}",
                                                                      f"{adjective}={self.words[adjective]}"]


def english(adjective: str | None, noun: str, plural: bool) -> str:
    return " ".join(["the", *([adjective] if adjective else []), noun + ("s" if plural else "")])


@functools.cache
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


def final_answer(text: str) -> str:
    return text.rpartition("=>")[2].strip()


class ToyTranslationTask:
    name = "translation"
    max_answer_tokens = 112
    max_seq_len = 256  # prompts reach about 120 characters

    def __init__(self, templates: bool = False, seen_languages: int = 200) -> None:
        self.templates, self.seen_languages = templates, seen_languages

    def _phrase(self, rng: np.random.Generator, difficulty: int, language: Language) -> tuple[str | None, str, bool]:
        noun = NOUNS[rng.integers(len(NOUNS))]
        adjective = ADJECTIVES[rng.integers(6)] if difficulty >= 2 and rng.random() < 0.6 else None
        if difficulty >= 3 and rng.random() < 0.3:  # an idiom of the language
            adjective, noun = list(language.idioms)[rng.integers(2)]
        return adjective, noun, bool(rng.random() < 0.4)

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        """Sentences with adjectives from difficulty 2 and idioms from 3; mixed (training) draws easier ones
        too, in seen languages only; evaluation draws alternate seen and unseen languages."""
        if not 1 <= difficulty <= 3:
            raise ValueError(f"translation difficulty must be 1 (nouns), 2 (+ adjectives) or 3 (+ idioms), "
                             f"got {difficulty}")
        out = []
        for i in range(n):
            unseen = not mixed and i % 2 == 1
            number = int(rng.integers(self.seen_languages)) + (UNSEEN if unseen else 0)
            d = int(rng.integers(1, difficulty + 1)) if mixed else difficulty
            language = Language.number(number)
            out.append(self.make(language, number, self._phrase(rng, d, language), VERBS_LIST[rng.integers(6)],
                                 bool(rng.integers(2)), self._phrase(rng, d, language), d))
        return out

    def make(self, language: Language, number: int, subject: tuple, verb: str, past: bool, obj: tuple,
             difficulty: int) -> Problem:
        (s_words, s_entries), (o_words, o_entries) = language.noun_phrase(*subject), language.noun_phrase(*obj)
        verb_word = language.words[verb] + (language.past if past else "")
        entries = list(dict.fromkeys([*s_entries, f"{verb}={language.words[verb]}", *o_entries]))
        entries = [entries[i] for i in np.random.default_rng(number).permutation(len(entries))]
        form = VERBS[verb][2] if past else VERBS[verb][0 if not subject[2] else 1]
        sentence = f"{english(*subject)} {form} {english(*obj)}"
        position = "AN" if language.adjective_first else "NA"
        rules = f"{language.order} {position} pl={language.plural} past={language.past}"
        prompt = f"{' '.join(entries)}|{rules}|{sentence}>"
        parts = {"S": " ".join(s_words), "V": verb_word, "O": " ".join(o_words)}
        translation = " ".join(parts[k] for k in language.order)
        answer = translation
        if self.templates:
            if zlib.crc32(prompt.encode()) % 2:
                gloss = " ".join(parts[k] for k in "SVO")
                answer = f"gloss: {gloss}; {language.order}: {translation} => {translation}"
            else:
                answer = f"S: {parts['S']}; V: {parts['V']}; O: {parts['O']}; {language.order} => {translation}"
        group = "unseen" if number >= UNSEEN else "seen"
        return Problem(prompt, answer, difficulty, {"translation": translation, "language": number, "group": group})

    def score(self, problem: Problem, answer: str) -> float:
        """chrF of the final answer against the reference, in [0, 1]."""
        return _chrf().sentence_score(final_answer(answer), [problem.fields["translation"]]).score / 100

    def group(self, problem: Problem) -> str:
        return problem.fields["group"]

    def verify(self, problem: Problem, answer: str) -> bool:
        return final_answer(answer) == problem.fields["translation"]

    def well_formed(self, problem: Problem, answer: str) -> bool:
        """Templates: one of the two chain-of-thought forms, then the answer; direct: one line of words."""
        if not self.templates:
            return bool(answer.strip()) and "=>" not in answer and "\n" not in answer
        head, sep, tail = answer.partition(" => ")
        return bool(sep and tail.strip() and "=>" not in tail and (
            head.startswith("gloss: ") and head.count(";") == 1 or head.startswith("S: ") and head.count(";") == 3))

    def variants(self, problem: Problem) -> list[Problem]:
        return []

    def from_record(self, record: dict) -> Problem:
        raise ValueError("translation problems are generated (their language comes from its number); "
                         "files of them are not read")

