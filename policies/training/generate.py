"""Write the labelled training examples of the shipped domains (medical, finance, legal) as JSONL.

    .venv/bin/python policies/training/generate.py      # rewrites policies/training/*.jsonl

Sentences come from templates in English, French, German, Spanish, Italian and Chinese, written the
way people describe their own or a client's case; slots are filled with domain terms and Faker names.
Each domain also gets hard negatives: the same vocabulary used generically ("diabetes is common",
"interest rates rose", "asylum law changed"), where nothing is about a person, so the prototypes learn
that the context makes a term private, not the term alone. The term lists are training data; the
detector never sees them (tests check it flags terms that were held out of training).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from faker import Faker

from policies.training.terms import DOMAINS, GENERIC, GENERIC_TEMPLATES

LOCALES = {"en": "en_US", "fr": "fr_FR", "de": "de_DE", "es": "es_ES", "it": "it_IT", "zh": "zh_CN"}
SLOT = re.compile(r"\{([A-Z_]+)\}")


def fill(template: str, terms: dict[str, list[str]], fake: Faker, rng: random.Random) -> dict[str, object]:
    """Fill a template's slots; labelled slots (upper-case labels) become spans, {NAME}/{DATE}/{N} do not."""
    text, spans, at = "", [], 0
    for match in SLOT.finditer(template):
        text += template[at : match.start()]
        slot = match.group(1)
        if slot == "NAME":
            value = fake.name()
        elif slot == "DATE":
            value = fake.date_between("-3y", "today").strftime(rng.choice(["%d/%m/%Y", "%Y-%m-%d"]))
        elif slot == "G":
            value = rng.choice(terms["G"])
        elif slot == "N":
            value = str(rng.randint(2, 60))
        else:
            value = rng.choice(terms[slot])
            spans.append({"start": len(text), "end": len(text) + len(value), "label": slot})
        text += value
        at = match.end()
    text += template[at:]
    return {"text": text, "spans": spans}


def generate(domain: str, count: int, seed: int = 0) -> list[dict[str, object]]:
    spec = DOMAINS[domain]
    rng = random.Random(seed)
    fakers = {lang: Faker(locale) for lang, locale in LOCALES.items()}
    for i, fake in enumerate(fakers.values()):
        fake.seed_instance(seed + i)
    records: list[dict[str, object]] = []
    langs = list(spec["templates"])
    weights = [3 if lang == "en" else 1 for lang in langs]
    while len(records) < count:
        lang = rng.choices(langs, weights)[0]
        kind = rng.random()
        if kind < 0.2:  # domain vocabulary with nobody's facts in it
            parts = [fill(rng.choice(GENERIC_TEMPLATES[lang]), {"G": GENERIC[domain][lang]}, fakers[lang], rng)
                     for _ in range(rng.randint(1, 3))]  # fmt: skip
            record: dict[str, object] = {"text": " ".join(str(p["text"]) for p in parts), "spans": []}
        else:
            negative = kind < 0.35
            pool = spec["negatives"][lang] if negative else spec["templates"][lang]
            record = dict(fill(rng.choice(pool), spec["terms"][lang], fakers[lang], rng))
        record["lang"] = lang
        record["id"] = f"{domain}-{len(records):04d}"
        records.append(record)
    return records


def main() -> None:
    here = Path(__file__).parent
    for domain in DOMAINS:
        records = generate(domain, 700)
        with (here / f"{domain}.jsonl").open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        spans = sum(len(r["spans"]) for r in records if isinstance(r["spans"], list))
        print(domain, len(records), spans)


if __name__ == "__main__":
    main()
