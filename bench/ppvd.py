"""PPVD benchmark: how many memorised records a model leaks to the client, without PPVD and with it.

A synthetic-but-realistic corpus of patient notes (Faker values, several phrasings per sentence) is
memorised by a fake OpenAI-compatible model served on loopback: 20% of records it reproduces
verbatim, 10% in other words, the rest it does not know. The run:

1. probes that model with privgate's real `probe` (HTTP, concurrency-bounded) to find the high-risk records;
2. builds a store of the high-risk records plus other patients' notes (filler) up to --store-sentences
   sentences (default 100k: HNSW), and times the build;
3. guards ~1 KB answers with `PpvdGuard.guard_text`: answers quoting a memorised record verbatim,
   answers quoting the paraphrase, clean health-information answers with no record, and notes of
   patients the model never memorised (not in the store);
4. prints: share of leaked records that reach the client (a record "reaches" it when any of its
   identifiers: name, record number, phone, address, is still in the answer), false replacement rate
   (answer changed although it holds no stored record), added latency per answer (median, p99).

Targets: >= 95% of verbatim and >= 70% of paraphrased leaks stopped, <= 1% false replacements,
<= 10 ms median added per 1 KB answer with a 100k-sentence store.

The 100k-sentence store takes long to embed on 2 shared cores (20-40 min); it is cached under --cache
(keyed by the generator settings, with its build time) and the probe results are resumed, so a rerun
only measures the guard (a few minutes). --quick: 1,000 records, a 10k-sentence store, 100 answers each.

    .venv/bin/python bench/ppvd.py [--records 5000] [--store-sentences 100000] [--threshold 0.75] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faiss  # noqa: E402
import torch  # noqa: E402
from faker import Faker  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from rewriters.embedding import load_embedder  # noqa: E402
from rewriters.ppvd import PpvdGuard, PpvdStoreError, Record, build_store, derive_key, probe, read_high_risk  # noqa: E402
from rewriters.ppvd.probe import PROMPT, ProbeConfig, split_record  # noqa: E402
from rewriters.ppvd.sentences import split_sentences  # noqa: E402
from rewriters.text import any_of  # noqa: E402
from tests.servers import LoopbackServer  # noqa: E402

VERBATIM_SHARE, PARAPHRASE_SHARE = 0.20, 0.10
ANSWER_BYTES = 1024
GENERATOR_VERSION = "1"

COMPLAINTS = [
    "community-acquired pneumonia", "acute chest pain", "worsening shortness of breath", "a fall at home",
    "abdominal pain and vomiting", "a diabetic foot ulcer", "new-onset atrial fibrillation", "acute confusion",
    "a severe migraine with aura", "a urinary tract infection", "an exacerbation of COPD", "a cellulitis of the leg",
    "painless jaundice", "an upper gastrointestinal bleed", "a transient ischaemic attack", "a hip fracture",
]  # fmt: skip
CONDITIONS = [
    "type 2 diabetes", "hypertension", "chronic kidney disease stage 3", "asthma", "heart failure",
    "rheumatoid arthritis", "hypothyroidism", "epilepsy", "Crohn's disease", "osteoporosis", "depression",
]  # fmt: skip
DRUGS = [
    ("amoxicillin", "500 mg three times daily"), ("apixaban", "5 mg twice daily"), ("metformin", "1 g twice daily"),
    ("ramipril", "5 mg once daily"), ("furosemide", "40 mg in the morning"), ("prednisolone", "30 mg for five days"),
    ("ceftriaxone", "2 g intravenously once daily"), ("levothyroxine", "75 micrograms daily"),
    ("salbutamol", "via nebuliser every four hours"), ("co-amoxiclav", "625 mg three times daily"),
]  # fmt: skip
RELATIVES = ["daughter", "son", "wife", "husband", "sister", "brother", "partner", "niece"]

# One list of phrasings per sentence slot; a record uses one phrasing per slot, its paraphrase another.
SLOTS: list[list[str]] = [
    [
        "{title} {name}, aged {age}, MRN {mrn}, was admitted on {date} with {complaint}.",
        "{name} (MRN {mrn}), a {age}-year-old {sex}, presented on {date} complaining of {complaint}.",
        "On {date}, {title} {name}, {age}, record number {mrn}, came to the emergency department with {complaint}.",
        "Admission on {date}: {title} {name}, {age} years old, MRN {mrn}, admitted because of {complaint}.",
    ],
    [
        "{pron} has a background of {condition} and takes {home_drug} at home.",
        "Past history includes {condition}; regular medication is {home_drug}.",
        "{pron} is known to have {condition} and is on {home_drug}.",
        "Relevant history: {condition}, treated with {home_drug}.",
    ],
    [
        "On arrival the heart rate was {hr} and blood pressure {bp}, with oxygen saturation of {sat} percent.",
        "Observations at admission: pulse {hr}, BP {bp}, saturations {sat}% on air.",
        "{pron} was found to have a pulse of {hr}, a blood pressure of {bp} and saturations of {sat} percent.",
        "Initial vital signs showed a heart rate of {hr}, blood pressure {bp} and SpO2 {sat}%.",
    ],
    [
        "{pron} was started on {drug} {dose} and improved over {days} days.",
        "Treatment with {drug} {dose} was begun, and {pos} symptoms settled within {days} days.",
        "We commenced {drug} {dose}; {pron_l} improved steadily over {days} days.",
        "{drug_cap} {dose} was prescribed and there was clear improvement after {days} days.",
    ],
    [
        "{pos_cap} {relative} {relname} can be reached on {phone} and lives nearby at {address}.",
        "Next of kin is {pos} {relative}, {relname}, telephone {phone}; home address {address}.",
        "{pron} lives at {address}, and {pos} {relative} {relname} is the contact on {phone}.",
        "Contact: {relative} {relname} on {phone}. Home: {address}.",
    ],
    [
        "{pron} is to be reviewed in clinic by {doctor} in {weeks} weeks.",
        "Follow-up with {doctor} is booked for {weeks} weeks' time.",
        "{doctor} will see {obj} again in clinic after {weeks} weeks.",
        "Plan: outpatient review with {doctor} in {weeks} weeks.",
    ],
]
CLEAN = [
    "{condition_cap} is a long-term condition that many people manage well with the right support.",
    "It is a good idea to keep a list of your medicines, including {drug}, and bring it to every appointment.",
    "Common side effects of {drug} include nausea, headache and tiredness, which often settle after a few days.",
    "If symptoms such as {complaint} get worse quickly, seek urgent medical advice or call the emergency number.",
    "Most clinics, including {hospital}, offer a nurse telephone line for questions between appointments.",
    "Regular exercise, a balanced diet and not smoking all lower the risk of complications of {condition}.",
    "Your doctor may suggest blood tests every {weeks} weeks while the dose of {drug} is being adjusted.",
    "{doctor_name}, a specialist at {hospital}, notes that early treatment of {complaint} improves outcomes.",
    "Vaccinations against flu and pneumococcus are recommended for people living with {condition}.",
    "Never stop taking {drug} suddenly without talking to the person who prescribed it.",
    "A normal resting heart rate for adults is between 60 and 100 beats per minute.",
    "Keeping a symptom diary for {weeks} weeks can help your care team see patterns.",
]
WRAP_OPEN = ["Here is the note you asked for.", "Certainly, this is the summary from the record.", "Sure."]
WRAP_CLOSE = ["Let me know if you need anything else.", "I hope this helps with the handover."]


@dataclass(frozen=True)
class Note:
    id: str
    text: str
    paraphrase: str
    identifiers: tuple[str, ...]  # what must not reach the client: name, MRN, phone, address, relative


def _values(fake: Faker, rng: random.Random) -> dict[str, Any]:
    sex = rng.choice(["man", "woman"])
    first = fake.first_name_male() if sex == "man" else fake.first_name_female()
    name = f"{first} {fake.last_name()}"
    drug, dose = rng.choice(DRUGS)
    home_drug, home_dose = rng.choice(DRUGS)
    day = fake.date_between(start_date="-4y", end_date="today")
    pron, pos, obj = ("He", "his", "him") if sex == "man" else ("She", "her", "her")
    return {
        "sex": sex,
        "title": "Mr" if sex == "man" else rng.choice(["Mrs", "Ms"]),
        "name": name,
        "age": rng.randint(19, 94),
        "mrn": f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        "date": day,
        "complaint": rng.choice(COMPLAINTS),
        "condition": rng.choice(CONDITIONS),
        "home_drug": f"{home_drug} {home_dose}",
        "hr": rng.randint(52, 128),
        "bp": f"{rng.randint(95, 180)}/{rng.randint(55, 105)}",
        "sat": rng.randint(86, 99),
        "drug": drug,
        "drug_cap": drug.capitalize(),
        "dose": dose,
        "days": rng.randint(2, 9),
        "relative": rng.choice(RELATIVES),
        "relname": fake.first_name(),
        "phone": f"0{rng.randint(1100, 1999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "address": f"{fake.building_number()} {fake.street_name()}, {fake.city()}",
        "doctor": f"Dr {fake.last_name()}",
        "weeks": rng.randint(2, 12),
        "pron": pron,
        "pron_l": pron.lower(),
        "pos": pos,
        "pos_cap": pos.capitalize(),
        "obj": obj,
    }


def _render(template: str, values: dict[str, Any], date_style: int) -> str:
    day = values["date"]
    date = day.strftime("%-d %B %Y") if date_style == 0 else day.strftime("%d/%m/%Y")
    return template.format(**{**values, "date": date})


def make_notes(count: int, seed: int, prefix: str = "rec") -> list[Note]:
    """Patient notes with 6 sentences each; the paraphrase uses another phrasing for every sentence."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    notes = []
    for i in range(count):
        values = _values(fake, rng)
        choice = [rng.randrange(len(slot)) for slot in SLOTS]
        other = [(c + rng.randrange(1, len(slot))) % len(slot) for c, slot in zip(choice, SLOTS, strict=True)]
        text = " ".join(_render(slot[c], values, 0) for slot, c in zip(SLOTS, choice, strict=True))
        para = " ".join(_render(slot[c], values, 1) for slot, c in zip(SLOTS, other, strict=True))
        ids = (values["name"], values["mrn"], values["phone"], values["address"], values["relname"])
        notes.append(Note(f"{prefix}-{i:06d}", text, para, ids))
    return notes


def clean_answer(rng: random.Random, fake: Faker, start: str = "", size: int = ANSWER_BYTES) -> str:
    """Health information with no record in it, padded from `start` up to `size` bytes."""
    parts: list[str] = [start] if start else []
    while len(" ".join(parts).encode()) < size:
        drug = rng.choice(DRUGS)[0]
        condition = rng.choice(CONDITIONS)
        parts.append(
            rng.choice(CLEAN).format(
                drug=drug,
                condition=condition,
                condition_cap=condition[0].upper() + condition[1:],
                complaint=rng.choice(COMPLAINTS),
                hospital=f"{fake.city()} General Hospital",
                doctor_name=f"Dr {fake.first_name()} {fake.last_name()}",
                weeks=rng.randint(2, 12),
            )
        )
    return " ".join(parts)


def leak_answer(rng: random.Random, fake: Faker, body: str) -> str:
    """A ~1 KB answer that quotes a record: an opening line, the record, health information, a closing line."""
    close = rng.choice(WRAP_CLOSE)
    padded = clean_answer(rng, fake, f"{rng.choice(WRAP_OPEN)} {body}", ANSWER_BYTES - len(close) - 1)
    return f"{padded} {close}"


def memorising_model(notes: list[Note], verbatim: set[str], paraphrased: set[str]) -> Starlette:
    """An OpenAI-compatible model that reproduces some notes verbatim and some in other words; for
    the rest it makes up a plausible continuation (another patient's, same templates)."""
    by_prefix = {split_record(n.text, 0.5)[0]: n for n in notes}
    made_up = {n.id: notes[(i + 7) % len(notes)] for i, n in enumerate(notes)}

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        note = by_prefix.get(body["messages"][-1]["content"].removeprefix(PROMPT))
        if note is not None and note.id in verbatim:
            content = split_record(note.text, 0.5)[1]
        elif note is not None and note.id in paraphrased:
            content = split_record(note.paraphrase, 0.5)[1]
        elif note is not None:
            content = split_record(made_up[note.id].text, 0.5)[1]
        else:
            content = "I do not have access to that clinical record."
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        return JSONResponse({"id": "c", "object": "chat.completion", "model": body["model"], "choices": [choice]})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def known_value_sanitiser(notes: list[Note]) -> Callable[[list[str]], list[str]]:
    """The secure store's sanitiser for this corpus: every identifier of the record becomes [REDACTED].

    Stage 3 in privgate proper runs a policy's detectors (`policy_sanitiser`); here the generator knows
    the values, so the secure versions are exact and the benchmark measures matching, not detection.
    """
    by_first = {split_sentences(n.text)[0]: n for n in notes}

    def sanitise(sentences: list[str]) -> list[str]:
        note = by_first.get(sentences[0])
        regex = any_of(set(note.identifiers)) if note else None
        return [regex.sub("[REDACTED]", s) if regex else s for s in sentences]

    return sanitise


def leaked(text: str, note: Note) -> bool:
    return any(value in text for value in note.identifiers)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_probe(notes: list[Note], verbatim: set[str], paraphrased: set[str], results: Path) -> tuple[set[str], float]:
    """Probe the fake model; a results file from an earlier run of the same settings is resumed (probe skips
    the ids already there), so a rerun only measures the guard."""
    records = [Record(n.id, n.text) for n in notes]
    started = time.perf_counter()
    with LoopbackServer(memorising_model(notes, verbatim, paraphrased)) as server:
        summary = asyncio.run(
            probe(
                records,
                f"{server.url}/v1",
                "memo",
                results,
                embedder=load_embedder("all-MiniLM-L6-v2"),
                config=ProbeConfig(concurrency=16),
                progress=sys.stderr.isatty(),
            )
        )
    if summary.failed:
        raise SystemExit(f"probe: {summary.failed} requests failed")
    return read_high_risk(results), time.perf_counter() - started


def build_or_reuse(
    high_risk: list[Note], filler: list[Note], cache: Path, key: bytes, label: str
) -> tuple[Path, float | None, str]:
    out, timing = cache / label, cache / f"{label}.build-seconds"
    if (out / "meta.json").is_file():
        try:
            PpvdGuard.load(out, key)
            took = float(timing.read_text()) if timing.is_file() else None
            return out, took, json.loads((out / "meta.json").read_text())["index_kind"]
        except PpvdStoreError:
            pass
    started = time.perf_counter()
    meta = build_store(
        [n.text for n in high_risk + filler], out, key, known_value_sanitiser(high_risk + filler), progress=None
    )
    took = time.perf_counter() - started
    timing.write_text(f"{took:.1f}\n")
    return out, took, meta.index_kind


def measure(guard: PpvdGuard, answers: list[tuple[str, Note | None]]) -> dict[str, Any]:
    times, changed, reached, hits = [], 0, 0, 0
    for text, note in answers:
        started = time.perf_counter()
        result = guard.guard_text(text)
        times.append((time.perf_counter() - started) * 1000)
        changed += result.text != text
        hits += bool(result.hits)
        if note is not None:
            reached += leaked(result.text, note)
    return {
        "n": len(answers),
        "reached": reached,
        "changed": changed,
        "hits": hits,
        "times": times,
        "median_ms": statistics.median(times),
        "p99_ms": percentile(times, 0.99),
        "bytes": statistics.mean(len(t.encode()) for t, _ in answers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--store-sentences", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.75)
    parser.add_argument("--answers", type=int, default=300, help="answers of each kind to guard")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/privgate-ppvd-bench"))
    parser.add_argument("--quick", action="store_true", help="1,000 records, a 10k-sentence store, 100 answers each")
    args = parser.parse_args()
    if args.quick:
        args.records, args.store_sentences, args.answers = 1000, 10_000, 100
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    key = derive_key(b"ppvd-benchmark-secret-not-for-production")

    notes = make_notes(args.records, args.seed)
    rng = random.Random(args.seed)
    shuffled = rng.sample(notes, len(notes))
    n_verbatim, n_para = round(VERBATIM_SHARE * len(notes)), round(PARAPHRASE_SHARE * len(notes))
    verbatim = {n.id for n in shuffled[:n_verbatim]}
    paraphrased = {n.id for n in shuffled[n_verbatim : n_verbatim + n_para]}

    print(f"probing {len(notes)} records on a loopback fake model ...", file=sys.stderr)
    results_file = args.cache / f"probe-{GENERATOR_VERSION}-{args.seed}-{args.records}.jsonl"
    found, probe_s = run_probe(notes, verbatim, paraphrased, results_file)
    truth = verbatim | paraphrased
    probe_recall = len(found & truth) / len(truth)
    probe_false = len(found - truth)

    high_risk = [n for n in notes if n.id in found]
    # only sentences holding an identifier are stored (the others' secure version is the sentence itself)
    per_note = statistics.mean(
        sum(any(v in s for v in n.identifiers) for s in split_sentences(n.text)) for n in notes[:500]
    )
    filler_count = max(0, round((args.store_sentences - len(high_risk) * per_note) / per_note))
    filler = make_notes(filler_count, args.seed + 1, prefix="other")
    digest = hashlib.sha256(
        json.dumps([GENERATOR_VERSION, args.seed, args.records, args.store_sentences, sorted(found)]).encode()
    ).hexdigest()[:16]
    print(f"building a store of ~{args.store_sentences} sentences (cached under {args.cache}) ...", file=sys.stderr)
    store, build_s, kind = build_or_reuse(high_risk, filler, args.cache, key, f"store-{digest}")
    guard = PpvdGuard.load(store, key, threshold=args.threshold)
    sentences = guard.meta.sentences

    fake = Faker("en_GB")
    fake.seed_instance(args.seed + 2)
    pick = random.Random(args.seed + 3)
    by_id = {n.id: n for n in notes}
    take = args.answers
    sets = {
        "verbatim leak": [(leak_answer(pick, fake, by_id[i].text), by_id[i]) for i in sorted(verbatim)[:take]],
        "paraphrased leak": [
            (leak_answer(pick, fake, by_id[i].paraphrase), by_id[i]) for i in sorted(paraphrased)[:take]
        ],
        "clean answer (no record)": [(clean_answer(pick, fake), None) for _ in range(take)],
        "other patient's note": [
            (leak_answer(pick, fake, n.text), None) for n in notes if n.id not in truth and n.id not in found
        ][:take],
    }
    guard.guard_text(sets["clean answer (no record)"][0][0])  # warm-up: first embed call
    guard.guard_text(sets["paraphrased leak"][0][0])
    results = {name: measure(guard, answers) for name, answers in sets.items()}
    baseline = {name: sum(leaked(t, n) for t, n in answers if n) for name, answers in sets.items()}

    print()
    print(
        f"PPVD benchmark: {len(notes)} records, store {sentences} sentences ({kind}), "
        f"threshold {args.threshold}, MiniLM-L6 on CPU, 1 thread"
    )
    took = f"{probe_s:.1f} s" if probe_s > 2 else "resumed from an earlier run's results"
    print(f"probe: {len(found)} high-risk found, recall {probe_recall:.1%} of the {len(truth)} memorised, "
          f"{probe_false} false; {took}")  # fmt: skip
    build = f"{build_s:.1f} s" if build_s is not None else "reused from cache (time not recorded)"
    print(f"store build ({sentences} sentences: sanitise, embed, index, encrypt): {build}")
    print()
    header = f"{'answers (~1 KB)':<26}{'n':>5}{'leak w/o PPVD':>15}{'leak with PPVD':>16}{'stopped':>9}"
    header += f"{'changed':>9}{'median ms':>11}{'p99 ms':>9}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        is_leak = name.endswith("leak")
        without = f"{baseline[name] / r['n']:.1%}" if is_leak else "-"
        with_ppvd = f"{r['reached'] / r['n']:.1%}" if is_leak else "-"
        stopped = f"{1 - r['reached'] / max(1, baseline[name]):.1%}" if is_leak else "-"
        changed = f"{r['changed'] / r['n']:.1%}"
        print(
            f"{name:<26}{r['n']:>5}{without:>15}{with_ppvd:>16}{stopped:>9}{changed:>9}"
            f"{r['median_ms']:>11.2f}{r['p99_ms']:>9.2f}"
        )
    every = [t for r in results.values() for t in r["times"]]
    print(f"{'all answers':<26}{len(every):>5}{'':>49}{statistics.median(every):>11.2f}{percentile(every, 0.99):>9.2f}")
    print()
    print("'changed' on the last two rows (answers holding no stored record) is the false replacement rate;")
    print("latency is PpvdGuard.guard_text per answer (the whole added cost: split, hash, embed, search, replace).")


if __name__ == "__main__":
    main()
