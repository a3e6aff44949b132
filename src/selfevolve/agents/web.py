"""WebSim: generated web sites (a shop, a forum, an admin panel) whose pages are lists of elements with
ids, and parametric tasks whose difficulty a curriculum can move.

    obs, info = env.reset(task_id)      # the instruction and the site's home page
    env.step("click l-kitchen"); env.step("click next"); env.step("click p-12"); env.step("click add")

Actions: `click ID` (a link or a button), `type ID TEXT` (a field), `back`. Lists show `PAGE` rows
at a time with a `next` / `prev` link. The shop has categories, products (price, stock) and a cart;
the forum has threads, posts and a reply form; the admin panel has users (team, role, active) and
an edit form. Tasks: buy the cheapest product of a category (comparing prices across pages), reply
to a thread with a fact from another post, change the role of a user, deactivate every user of a
team (as many edits as the team has members). `difficulty` adds rows (distractors and pages to
look through: three categories share the products) and, for the team task, members. The task's
committing action (checkout, post, save) ends the episode when the task cannot get any further,
and a verifier reads the site's state.
Like PhoneSim, a scripted expert solves every task and starts again from the home page when an
agent wanders off, and task ids from HELD_OUT on also draw the held-out templates.
"""

from __future__ import annotations

import numpy as np

from selfevolve.agents.app_env import AppEnv, Widget
from selfevolve.agents.env import HELD_OUT

PAGE = 6
CATEGORIES = ["kitchen", "garden", "office", "toys", "sports", "books"]
THINGS = ["kettle", "lamp", "chair", "hose", "rake", "pen", "desk", "ball", "kite", "puzzle", "racket", "novel",
          "atlas", "stool", "shovel", "mug", "clock", "bat", "drum", "map"]
TOPICS = ["moving house", "best pizza", "bike repair", "garden pests", "job offers", "old cameras", "chess club",
          "rainy hikes", "quiet cafes", "used books", "night trains", "home brewing"]
USERS = ["ana", "ben", "carla", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lena", "milo", "nora",
         "omar", "pia", "quin", "rosa", "sami", "tess", "uma", "vik", "wren", "yara"]
TEAMS = ["red", "blue", "green", "gold"]
CITIES = ["lyon", "porto", "graz", "turku", "leeds", "gent", "bern", "cork"]
TEMPLATES = ("cheapest", "reply", "role")
HELD_OUT_TEMPLATES = ("team",)


class Web(AppEnv):
    name, actions = "web", "use: click ID | type ID TEXT | back"
    recover = "back"
    default_difficulty = 1

    @property
    def max_steps(self) -> int:
        return 20 + 10 * self.difficulty

    # -- the task ---------------------------------------------------------------------------------
    def new_task(self, rng: np.random.Generator) -> None:
        d = self.difficulty
        self.products = [{"name": f"{THINGS[int(rng.integers(len(THINGS)))]} {k}", "category": CATEGORIES[k % 3],
                          "price": int(rng.integers(5, 200))} for k in range(10 + 10 * d)]
        self.cart: list[int] = []
        self.orders: list[int] = []
        users = [str(u) for u in rng.permutation(USERS)[: 8 + 4 * d]]
        self.users = [{"name": u, "team": TEAMS[int(rng.integers(len(TEAMS)))], "role": "member", "active": True}
                      for u in users]
        topics = [str(t) for t in rng.permutation(TOPICS)[: 4 + 2 * d]]
        self.threads = [{"title": t, "posts": [(users[int(rng.integers(len(users)))],
                                                f"i live in {CITIES[int(rng.integers(len(CITIES)))]}")
                                               for _ in range(2 + d)]} for t in topics]
        templates = TEMPLATES + (HELD_OUT_TEMPLATES if self.task_id >= HELD_OUT else ())
        self.template = templates[int(rng.integers(len(templates)))]
        category = self.products[int(rng.integers(len(self.products)))]["category"]
        thread = int(rng.integers(len(self.threads)))
        user = int(rng.integers(len(self.users)))
        team = self.users[int(rng.integers(len(self.users)))]["team"]
        self.goal = {"category": category, "thread": thread, "user": user, "team": team}
        self.instruction = {
            "cheapest": f"buy the cheapest product in {category}",
            "reply": f"reply to the thread '{self.threads[thread]['title']}' with the city of its first poster",
            "role": f"make {self.users[user]['name']} an admin",
            "team": f"deactivate every user of the {team} team"}[self.template]
        self.page: tuple[str, ...] = ("home",)
        self.history: list[tuple[tuple[str, ...], int]] = []
        self.offset, self.fields = 0, {}
        self.plan, self.plan_pos = self.solution(), 0

    def cheapest(self) -> int:
        items = [k for k, p in enumerate(self.products) if p["category"] == self.goal["category"]]
        return min(items, key=lambda k: (self.products[k]["price"], k))

    def team_left(self) -> list[int]:
        return [k for k, u in enumerate(self.users) if u["team"] == self.goal["team"] and u["active"]]

    def at_home(self) -> bool:
        return self.page == ("home",)

    def check(self) -> bool:
        g = self.goal
        if self.template == "cheapest":
            price = self.products[self.cheapest()]["price"]
            return len(self.orders) == 1 and self.products[self.orders[0]]["price"] == price and \
                self.products[self.orders[0]]["category"] == g["category"]
        if self.template == "reply":
            thread = self.threads[g["thread"]]
            first = thread["posts"][0][1].removeprefix("i live in ")
            return len(thread["posts"]) == 3 + self.difficulty and thread["posts"][-1] == ("me", first)
        if self.template == "role":
            return [u["role"] for u in self.users] == ["admin" if k == g["user"] else "member"
                                                       for k in range(len(self.users))]
        return not self.team_left() and all(u["active"] for u in self.users if u["team"] != g["team"])

    # -- pages ------------------------------------------------------------------------------------
    def rows(self) -> list[Widget]:
        """The current page's list (paged), or [] for pages without one."""
        p = self.page
        if p[0] == "category":
            return [Widget(f"p-{k}", "link", f"{pr['name']}, {pr['price']} eur") for k, pr in enumerate(self.products)
                    if pr["category"] == p[1]]
        if p == ("forum",):
            return [Widget(f"t-{k}", "link", t["title"]) for k, t in enumerate(self.threads)]
        if p[0] == "thread":
            return [Widget(f"m-{i}", "text", f"{a}: {text}") for i, (a, text) in enumerate(self.threads[int(p[1])]
                                                                                             ["posts"])]
        if p == ("admin",):
            return [Widget(f"u-{k}", "link", f"{u['name']}, team {u['team']}, {u['role']}, "
                                              f"{'active' if u['active'] else 'inactive'}")
                    for k, u in enumerate(self.users)]
        return []

    def elements(self) -> list[Widget]:
        if self.page == ("home",):
            return [Widget(f"l-{c}", "link", c) for c in CATEGORIES] + [
                Widget("l-forum", "link", "forum"), Widget("l-admin", "link", "admin panel"),
                Widget("l-cart", "link", f"cart ({len(self.cart)})")]
        listed = self.rows()
        out = listed[self.offset:self.offset + PAGE]
        if self.offset > 0:
            out.append(Widget("prev", "link", "previous page"))
        if self.offset + PAGE < len(listed):
            out.append(Widget("next", "link", "next page"))
        p = self.page
        if p[0] == "product":
            pr = self.products[int(p[1])]
            out = [Widget("x-price", "text", f"{pr['name']}: {pr['price']} eur"),
                   Widget("add", "button", "add to cart")]
        elif p == ("cart",):
            out = [Widget(f"c-{i}", "text", self.products[k]["name"]) for i, k in enumerate(self.cart)] + [
                Widget("checkout", "button", "checkout"), Widget("empty", "button", "empty the cart")]
        elif p[0] == "thread":
            out += [Widget("f-reply", "field", self.fields.get("f-reply", "")),
                    Widget("post", "button", "post reply")]
        elif p[0] == "user":
            u = self.users[int(p[1])]
            out = [Widget("x-user", "text", f"{u['name']}, team {u['team']}"),
                   Widget("f-role", "field", self.fields.get("f-role", u["role"])),
                   Widget("f-active", "field", self.fields.get("f-active", "yes" if u["active"] else "no")),
                   Widget("save", "button", "save")]
        return out

    def observe(self) -> str:
        lines = [f"task: {self.instruction}", f"page: {' / '.join(self.page)}"]
        lines += [f"  [{e.id}] {e.kind}: {e.label}" for e in self.elements()]
        return "\n".join(lines)

    # -- actions ----------------------------------------------------------------------------------
    def _go(self, *page: str) -> tuple[str, float, bool]:
        self.history.append((self.page, self.offset))
        self.page, self.offset, self.fields = page, 0, {}
        return self.observe(), 0.0, False

    def apply(self, verb: str, args: list[str]) -> tuple[str, float, bool] | None:
        if verb == "back" and not args:
            self.page, self.offset = self.history.pop() if self.history else (("home",), 0)
            self.fields = {}
            return self.observe(), 0.0, False
        on_page = {e.id: e for e in self.elements()}
        if verb == "type" and len(args) >= 2 and args[0] in on_page and on_page[args[0]].kind == "field":
            self.fields[args[0]] = " ".join(args[1:])
            return self.observe(), 0.0, False
        if verb != "click" or len(args) != 1 or args[0] not in on_page or on_page[args[0]].kind not in ("link",
                                                                                                         "button"):
            return None
        return self._click(args[0])

    def _click(self, eid: str) -> tuple[str, float, bool]:
        p = self.page
        if eid in ("next", "prev"):
            self.offset += PAGE if eid == "next" else -PAGE
            return self.observe(), 0.0, False
        kind, _, key = eid.partition("-")
        pages = {"p": ("product", key), "t": ("thread", key), "u": ("user", key)}
        if kind in pages:
            return self._go(*pages[kind])
        if kind == "l":
            return self._go(*(("category", key) if key in CATEGORIES else (key,)))
        if eid == "add":
            self.cart.append(int(p[1]))
            return self._go("cart")
        if eid == "empty":
            self.cart = []
            return self.observe(), 0.0, False
        if eid == "checkout" and self.cart:
            self.orders, self.cart = list(self.cart), []
            return self.end()
        if eid == "post" and self.fields.get("f-reply"):
            self.threads[int(p[1])]["posts"].append(("me", self.fields["f-reply"]))
            return self.end()
        if eid == "save":
            u = self.users[int(p[1])]
            u["role"] = self.fields.get("f-role", u["role"])
            u["active"] = self.fields.get("f-active", "yes" if u["active"] else "no") != "no"
            if self.template != "team" or not self.team_left():
                return self.end()
            return self._go("admin")
        return f"nothing happens.\n{self.observe()}", 0.0, False

    # -- the scripted expert ------------------------------------------------------------------------
    def _reach(self, rows: list[str], target: str) -> list[str]:
        """Clicks `next` until the row with id `target` is on the page, then clicks it."""
        return ["click next"] * (rows.index(target) // PAGE) + [f"click {target}"]

    def solution(self) -> list[str]:
        """The actions that do the task from the home page."""
        g = self.goal
        if self.template == "cheapest":
            rows = [f"p-{k}" for k, p in enumerate(self.products) if p["category"] == g["category"]]
            return [f"click l-{g['category']}", *self._reach(rows, f"p-{self.cheapest()}"), "click add",
                    "click checkout"]
        if self.template == "reply":
            thread = self.threads[g["thread"]]
            city = thread["posts"][0][1].removeprefix("i live in ")
            return ["click l-forum", *self._reach([f"t-{k}" for k in range(len(self.threads))], f"t-{g['thread']}"),
                    f"type f-reply {city}", "click post"]
        users = [f"u-{k}" for k in range(len(self.users))]
        if self.template == "role":
            return ["click l-admin", *self._reach(users, f"u-{g['user']}"), "type f-role admin", "click save"]
        plan = ["click l-admin"]
        members = [k for k, u in enumerate(self.users) if u["team"] == g["team"]]
        for k in members:  # each save returns to the admin list's first page
            plan += [*self._reach(users, f"u-{k}"), "type f-active no", "click save"]
        return plan
