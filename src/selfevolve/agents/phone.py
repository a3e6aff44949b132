"""PhoneSim: a phone of generated apps whose screens are lists of named widgets, and tasks that carry
information from one app to another ("book a taxi to the address in Ana's last message").

    obs, info = env.reset(task_id)      # the instruction and the home screen
    env.step("open messages"); env.step("swipe down"); env.step("tap t-7"); env.step("home")
    env.step("open taxi"); env.step("type f-dest 12 oak street"); env.step("tap b-request")

Apps: messages (threads, a text field and send), contacts (name, phone, address; message them),
calendar (events with a date and a place), notes (new, save), taxi (destination, request) and shop
(search, item, cart, checkout). Lists show `PAGE` entries at a time (`swipe down` / `swipe up`);
a widget can be tapped only while it is on screen. `difficulty` adds people, events and products,
so lists get longer. The task's last action (send, request, save, checkout) ends the episode, and
the verifier reads the final state: reward 1 if it is what the instruction asked for. Task ids from
HELD_OUT on draw from every template, training ids only from the training ones, so two templates
(`HELD_OUT_TEMPLATES`) are never seen in training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.agents.app_env import AppEnv, Widget
from selfevolve.agents.env import DEV, HELD_OUT, state_keys, unseen_ids
from selfevolve.config import check_min, check_one_of
from selfevolve.tasks.base import SPLITS

PAGE = 5
APPS = ("messages", "contacts", "calendar", "notes", "taxi", "shop")
NAMES = ["ana", "ben", "carla", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lena", "milo", "nora",
         "omar", "pia", "quin", "rosa", "sami", "tess", "uma", "vik", "wren", "yara"]
STREETS = ["oak street", "elm road", "river lane", "hill avenue", "mill way", "park row", "bay road", "king street"]
PLACES = ["room 4", "the cafe", "the library", "hall b", "the park", "studio 2", "the lab", "gate 9"]
EVENTS = ["team sync", "dentist", "book club", "yoga", "review", "dinner", "flight", "lecture", "gym", "standup"]
PRODUCTS = ["lamp", "kettle", "scarf", "mug", "tent", "drill", "pillow", "camera", "backpack", "speaker", "clock",
            "blender", "helmet", "candle"]
TEMPLATES = ("taxi", "phone", "time", "buy")  # training templates
HELD_OUT_TEMPLATES = ("place", "forward")  # only in held-out tasks


class Phone(AppEnv):
    name, actions = "phone", "use: open APP | tap ID | type ID TEXT | swipe down | swipe up | back | home"
    recover = "home"
    default_difficulty = 1
    max_steps = 24

    # -- the task ---------------------------------------------------------------------------------
    def new_task(self, rng: np.random.Generator) -> None:
        d = self.difficulty
        names = [str(n) for n in rng.permutation(NAMES)[: 6 + 3 * d]]
        self.contacts = {n: {"phone": f"555-{int(rng.integers(1000, 10000))}",
                             "address": f"{int(rng.integers(1, 99))} {STREETS[int(rng.integers(len(STREETS)))]}"}
                         for n in names}
        self.threads = {n: [f"see you at {int(rng.integers(8, 20))}:{int(rng.integers(0, 4)) * 15:02d}",
                            f"i moved to {self.contacts[n]['address']}"][:: 1 if rng.random() < 0.5 else -1]
                        for n in rng.permutation(names)[: 4 + 2 * d]}
        titles = [str(t) for t in rng.permutation(EVENTS)[: 3 + 2 * d]]
        self.events = [{"title": t, "date": f"dec {int(rng.integers(1, 29))}", "place": PLACES[int(rng.integers(len(
            PLACES)))]} for t in titles]
        self.products = sorted(str(p) for p in rng.permutation(PRODUCTS)[: 6 + 2 * d])
        self.sent: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.taxi: str | None = None
        self.orders: list[str] = []
        self.cart: list[str] = []
        templates = TEMPLATES + (HELD_OUT_TEMPLATES if self.task_id >= HELD_OUT else ())
        self.template = templates[int(rng.integers(len(templates)))]
        fits = {"taxi": lambda n: self._address_in(self.last(n)), "time": lambda n: self._time_in(self.last(n)) != "\0"}
        firsts = [n for n in self.threads if fits.get(self.template, bool)(n)]  # whose last message the task reads
        if not firsts:  # each thread holds one time and one address: turning one round makes it fit
            firsts = [next(iter(self.threads))]
            self.threads[firsts[0]].reverse()
        a = firsts[int(rng.integers(len(firsts)))]
        others = [n for n in self.threads if n != a]
        b = others[int(rng.integers(len(others)))]
        self.goal = {"template": self.template, "a": a, "b": b,
                     "event": self.events[int(rng.integers(len(self.events)))]["title"],
                     "product": self.products[int(rng.integers(len(self.products)))]}
        self.instruction = {
            "taxi": f"book a taxi to the address in {a}'s last message",
            "phone": f"send {a} the phone number of {b}",
            "time": f"make a note of the time in {a}'s last message",
            "buy": f"buy a {self.goal['product']} in the shop",
            "place": f"text {a} the place of the {self.goal['event']} from your calendar",
            "forward": f"send {b} the last message you got from {a}"}[self.template]
        self.screen: tuple[str, ...] = ("home",)
        self.fields: dict[str, str] = {}
        self.offset = 0
        self.plan, self.plan_pos = self.solution(), 0

    def last(self, name: str) -> str:
        return self.threads[name][-1]

    def at_home(self) -> bool:
        return self.screen == ("home",)

    def check(self) -> bool:
        g, c = self.goal, self.contacts
        wanted = {"taxi": lambda: self.taxi == self._address_in(self.last(g["a"])),
                  "phone": lambda: (g["a"], c[g["b"]]["phone"]) in self.sent,
                  "time": lambda: any(self._time_in(self.last(g["a"])) in note for note in self.notes),
                  "buy": lambda: self.orders == [g["product"]],
                  "place": lambda: (g["a"], self._event(g["event"])["place"]) in self.sent,
                  "forward": lambda: (g["b"], self.last(g["a"])) in self.sent}
        return wanted[self.template]()

    @staticmethod
    def _address_in(text: str) -> str | None:
        return text.removeprefix("i moved to ") if text.startswith("i moved to ") else None

    @staticmethod
    def _time_in(text: str) -> str:
        return text.removeprefix("see you at ") if text.startswith("see you at ") else "\0"

    def _event(self, title: str) -> dict:
        return next(e for e in self.events if e["title"] == title)

    # -- screens ----------------------------------------------------------------------------------
    def entries(self) -> list[Widget]:
        """The current screen's list (paged), or [] for screens without one."""
        s = self.screen
        if s == ("messages",):
            return [Widget(f"t-{i}", "item", f"{n}: {self.last(n)}") for i, n in enumerate(self.threads)]
        if s == ("contacts",):
            return [Widget(f"c-{i}", "item", n) for i, n in enumerate(self.contacts)]
        if s == ("calendar",):
            return [Widget(f"e-{i}", "item", f"{e['title']}, {e['date']}") for i, e in enumerate(self.events)]
        if s == ("notes",):
            return [Widget(f"n-{i}", "text", note) for i, note in enumerate(self.notes)]
        if s == ("shop",) and "query" in self.fields:
            hits = [p for p in self.products if self.fields["query"] and self.fields["query"] in p]
            return [Widget(f"r-{self.products.index(p)}", "item", p) for p in hits]
        return []

    def widgets(self) -> list[Widget]:
        s, out = self.screen, []
        if s == ("home",):
            return [Widget(f"a-{app}", "button", app) for app in APPS]
        listed = self.entries()
        out += listed[self.offset:self.offset + PAGE]
        if s[0] == "messages" and len(s) == 2:
            out += [Widget(f"m-{i}", "text", f"{s[1]}: {m}") for i, m in enumerate(self.threads.get(s[1], []))]
            out += [Widget("f-text", "field", self.fields.get("f-text", "")), Widget("b-send", "button", "send")]
        elif s[0] == "contacts" and len(s) == 2:
            c = self.contacts[s[1]]
            out += [Widget("x-phone", "text", f"phone {c['phone']}"), Widget("x-address", "text", c["address"]),
                    Widget("b-message", "button", "message")]
        elif s[0] == "calendar" and len(s) == 2:
            e = self._event(s[1])
            out += [Widget("x-date", "text", e["date"]), Widget("x-place", "text", f"place {e['place']}")]
        elif s == ("notes",):
            out.append(Widget("b-new", "button", "new note"))
        elif s == ("notes", "new"):
            out += [Widget("f-note", "field", self.fields.get("f-note", "")), Widget("b-save", "button", "save")]
        elif s == ("taxi",):
            out += [Widget("f-dest", "field", self.fields.get("f-dest", "")), Widget("b-request", "button", "request")]
        elif s == ("shop",):
            out += [Widget("f-search", "field", self.fields.get("f-search", "")),
                    Widget("b-search", "button", "search"), Widget("b-cart", "button", f"cart ({len(self.cart)})")]
        elif s[0] == "shop" and s[1] == "item":
            out += [Widget("b-add", "button", f"add {s[2]} to cart"),
                    Widget("b-cart", "button", f"cart ({len(self.cart)})")]
        elif s == ("shop", "cart"):
            out += [Widget(f"k-{i}", "text", p) for i, p in enumerate(self.cart)]
            out.append(Widget("b-checkout", "button", "checkout"))
        return out

    def observe(self) -> str:
        listed = len(self.entries())
        more = (f"  (entries {self.offset + 1}-{min(listed, self.offset + PAGE)} of {listed}; swipe for more)"
                if listed > PAGE else "")
        lines = [f"task: {self.instruction}", f"screen: {' > '.join(self.screen)}{more}"]
        lines += [f"  [{w.id}] {w.kind}: {w.label}" for w in self.widgets()]
        return "\n".join(lines)

    # -- actions ----------------------------------------------------------------------------------
    def _go(self, *screen: str) -> tuple[str, float, bool]:
        self.screen, self.offset, self.fields = screen, 0, {}
        return self.observe(), 0.0, False

    def apply(self, verb: str, args: list[str]) -> tuple[str, float, bool] | None:
        if verb == "home" and not args:
            return self._go("home")
        if verb == "back" and not args:
            return self._go(*self.screen[:-1]) if len(self.screen) > 1 else self._go("home")
        if verb == "open" and len(args) == 1 and args[0] in APPS:
            return self._go(args[0])
        if verb == "swipe" and args in (["down"], ["up"]):
            top = max(0, len(self.entries()) - PAGE)
            self.offset = min(top, self.offset + PAGE) if args[0] == "down" else max(0, self.offset - PAGE)
            return self.observe(), 0.0, False
        on_screen = {w.id: w for w in self.widgets()}
        if verb == "type" and len(args) >= 2 and args[0] in on_screen and on_screen[args[0]].kind == "field":
            self.fields[args[0]] = " ".join(args[1:])
            return self.observe(), 0.0, False
        if verb != "tap" or len(args) != 1 or args[0] not in on_screen:
            return None
        return self._tap(on_screen[args[0]])

    def _tap(self, w: Widget) -> tuple[str, float, bool] | None:
        s, kind, _, index = self.screen, w.id[0], w.id[1], w.id[2:]
        if kind == "a":
            return self._go(w.id[2:])
        if kind == "t":
            return self._go("messages", list(self.threads)[int(index)])
        if kind == "c":
            return self._go("contacts", list(self.contacts)[int(index)])
        if kind == "e":
            return self._go("calendar", self.events[int(index)]["title"])
        if kind == "r":
            return self._go("shop", "item", self.products[int(index)])
        if w.id == "b-message":
            self.threads.setdefault(s[1], [])
            return self._go("messages", s[1])
        if w.id == "b-send" and self.fields.get("f-text"):
            self.sent.append((s[1], self.fields["f-text"]))
            return self.end()
        if w.id == "b-new":
            return self._go("notes", "new")
        if w.id == "b-save" and self.fields.get("f-note"):
            self.notes.append(self.fields["f-note"])
            return self.end()
        if w.id == "b-request" and self.fields.get("f-dest"):
            self.taxi = self.fields["f-dest"]
            return self.end()
        if w.id == "b-search":
            self.fields["query"], self.offset = self.fields.get("f-search", ""), 0
            return self.observe(), 0.0, False
        if w.id == "b-add":
            self.cart.append(s[2])
            return self.observe(), 0.0, False
        if w.id == "b-cart":
            return self._go("shop", "cart")
        if w.id == "b-checkout" and self.cart:
            self.orders, self.cart = list(self.cart), []
            return self.end()
        return f"nothing happens.\n{self.observe()}", 0.0, False

    # -- the scripted expert ------------------------------------------------------------------------
    def _reach(self, app: str, prefix: str, index: int) -> list[str]:
        return [f"open {app}"] + ["swipe down"] * (index // PAGE) + [f"tap {prefix}-{index}"]

    def solution(self) -> list[str]:
        """The actions that do the task from the home screen."""
        g, people, contacts = self.goal, list(self.threads), list(self.contacts)

        def message(to: str, text: str) -> list[str]:
            return ["home", *self._reach("contacts", "c", contacts.index(to)), "tap b-message", f"type f-text {text}",
                    "tap b-send"]

        read = self._reach("messages", "t", people.index(g["a"]))
        if g["template"] == "taxi":
            return read + ["home", "open taxi", f"type f-dest {self._address_in(self.last(g['a']))}", "tap b-request"]
        if g["template"] == "phone":
            phone = self.contacts[g["b"]]["phone"]
            return [*self._reach("contacts", "c", contacts.index(g["b"])), *message(g["a"], phone)]
        if g["template"] == "time":
            return read + ["home", "open notes", "tap b-new", f"type f-note {self._time_in(self.last(g['a']))}",
                           "tap b-save"]
        if g["template"] == "buy":
            p = g["product"]
            return ["open shop", f"type f-search {p}", "tap b-search", f"tap r-{self.products.index(p)}", "tap b-add",
                    "tap b-cart", "tap b-checkout"]
        if g["template"] == "place":
            titles = [e["title"] for e in self.events]
            return [*self._reach("calendar", "e", titles.index(g["event"])),
                    *message(g["a"], self._event(g["event"])["place"])]
        return read + message(g["b"], self.last(g["a"]))


@dataclass
class StreamConfig:
    """The config fields of a recipe whose agents learn from the expert on training tasks, then play a
    stream of held-out PhoneSim tasks (a mixin before the recipe's other config bases)."""

    difficulty: int = 1
    """PhoneSim difficulty (people, events and products: how long the lists are)."""
    demo_tasks: int = 1000
    """Training task ids with the expert's demonstration (ids 0 .. demo_tasks-1)."""
    tasks: int = 60
    """Held-out tasks in the stream every variant plays, in the same order."""
    eval_split: str = "test"
    """Where the stream comes from: test (what results report) or dev (for choosing settings)."""
    update_every: int = 10
    """Tasks played in lockstep between two memory updates."""

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()
        check_min(self, 1, "demo_tasks", "tasks", "update_every")
        check_min(self, 0, "difficulty")
        check_one_of(self, "eval_split", SPLITS)
        if self.demo_tasks >= HELD_OUT:
            raise ValueError(f"demo_tasks must stay below the held-out ids ({HELD_OUT})")

    def stream(self) -> tuple[list[int], int]:
        """The `tasks` dev or test task ids that the seed picks, none the same task as a demo task; and how
        many were skipped for being one."""
        env = Phone(self.difficulty)
        first = (DEV if self.eval_split == "dev" else HELD_OUT) + self.seed * 10_000  # type: ignore[attr-defined]
        return unseen_ids(env, state_keys(env, range(self.demo_tasks)), first, self.tasks)


def stream_record(variant: str, episodes: list, outcome: Callable[[list], dict], batches: list[dict], t0: float
                  ) -> dict:
    """A variant's record on the held-out stream: its outcome over every task, over the seen and over the
    held-out templates, its success by template and by batch, and its wall time since t0."""
    def over(keep: Callable[[str], bool]) -> dict:
        return outcome([e for e in episodes if keep(e.template)])

    return {"variant": variant, **outcome(episodes), "seen_templates": over(lambda t: t not in HELD_OUT_TEMPLATES),
            "held_out_templates": over(lambda t: t in HELD_OUT_TEMPLATES),
            "by_template": {t: over(lambda x, t=t: x == t)["success"] for t in sorted({e.template for e in episodes})},
            "batches": batches, "wall_seconds": time.perf_counter() - t0}


def plot_success_by_batch(summary: dict, plot_dir: Path, title: str) -> list[Path]:
    """Each variant's success per batch of the stream, its memories growing between batches."""
    from selfevolve.report import plot_lines

    xs = list(range(1, len(summary["variants"][0]["batches"]) + 1))
    series = {r["variant"]: [b["success"] for b in r["batches"]] for r in summary["variants"]}
    return [plot_lines(xs, series, title, "batch", "success rate", plot_dir / "success-by-batch.png")]
