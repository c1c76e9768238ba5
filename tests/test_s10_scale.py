"""s10 without the square: :func:`s10_combinations.plan` (persons indexed, pairs counted, the cap
drawn lazily) against the brute force it replaced (every same-person candidate evaluated,
capped with :func:`s10_combinations.select`), on small random worlds: the same kept pairs in
the same order, the same counts, the pruned pairs counted per reason and the sample equal to
the first pruned pairs by name with their full reasons."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from agentskiller import io
from agentskiller.models.blueprint import Blueprint
from agentskiller.steps.cross import s10_combinations as s10

FIXTURE = Path(__file__).parent / "fixtures" / "cross" / "outputs"
PROBLEMS = ["blueprint missing", "server quarantined", "no single-domain tasks", "single-domain tasks failed"]


def _base() -> Blueprint:
    data = io.read_json(FIXTURE / "blueprints/DentalCareDesk.json")
    return Blueprint.model_validate({k: v for k, v in data.items() if k in Blueprint.model_fields})


def _world(seed: int, n: int) -> tuple[dict[str, str | None], dict[str, dict]]:
    """n domains over three persons (and one without a core), with every way to be pruned:
    members that are not feasible, thin members, a too-long tool name, a relationship named
    like another member's entity (a collision only in some pairs), and tied task counts."""
    rng = random.Random(seed)
    base = _base()
    rel = base.relationships[0]
    core_of: dict[str, str | None] = {}
    facts: dict[str, dict] = {}
    names = sorted({f"{rng.choice('ABCDEFG')}{rng.choice(['', 'x', 'Yz'])}{i}" for i in range(n)})
    for name in names:
        core = rng.choice(["Patient", "Patient", "Traveler", "Student", None])
        core_of[name] = core
        domain = name if rng.random() > 0.08 else name + "L" * 60  # long: no tool name fits
        peripheral = rng.sample(["Clinic", "Vault", "Ledger", "Dock"], rng.randint(0, 2))
        rels = [rel.model_copy(update={"name": "Booking"})]
        if rng.random() < 0.15:  # collides with any partner that has a Vault entity
            rels.append(rel.model_copy(update={"name": "Vault"}))
        bp = base.model_copy(
            update={
                "domain": domain,
                "core_entity": core or "Patient",
                "peripheral_entities": [e for e in peripheral if e not in {r.name for r in rels}],
                "relationships": rels,
            }
        )
        f = {"domain": name, "blueprint": bp, "problem": None, "problem_kind": None}
        f["valid_tasks"] = rng.randint(1, 6)
        f["interlockable"] = min(f["valid_tasks"], rng.choice([0, 1, 2, 2, 3, 3, 3, 4, 4]))
        if rng.random() < 0.15:
            kind = rng.choice(PROBLEMS)
            f.update(problem=f"{name}: {kind} (details)", problem_kind=f"member not feasible: {kind}")
            f["valid_tasks"] = f["interlockable"] = 0
            if kind == "blueprint missing":
                f["blueprint"] = None
        facts[name] = f
    return core_of, facts


def _brute(core_of, facts, min_tasks, max_pairs, enabled):
    """The s10 of before: every candidate built and evaluated, the cap applied to the list."""
    candidates = [
        (a, b) for a, b in itertools.combinations(sorted(core_of), 2) if core_of[a] and core_of[a] == core_of[b]
    ]
    feasible, pruned, kinds = [], [], Counter()
    for a, b in candidates:
        entry, reason = s10.evaluate_pair(facts[a], facts[b], min_tasks)
        entry["core_entity"] = entry["core_entity"] or core_of[a]
        if reason:
            pruned.append({**entry, "stage": "feasibility", "reason": reason})
            bad = next((f for f in (facts[a], facts[b]) if f["problem"]), None)
            if bad is not None:
                kinds[f"feasibility: {bad['problem_kind']}"] += 1
            elif "interlockable valid task" in reason:
                kinds[f"feasibility: {s10.KIND_THIN}"] += 1
            else:
                kinds[f"feasibility: {s10.KIND_NAMES}"] += 1
        else:
            feasible.append(entry)
    if enabled:
        kept, over = s10.select(feasible, max_pairs)
        cap = f"over the cap cross.max_pairs={max_pairs} (kept pairs of other persons first)"
    else:
        kept, over, cap = [], feasible, "cross.enabled is false"
    pruned += [{**e, "stage": "cap", "reason": cap} for e in over]
    if over:
        kinds[f"cap: {cap}"] += len(over)
    pruned.sort(key=lambda e: e["pair"])
    counts = {
        "domains": len(core_of),
        "candidates": len(candidates),
        "feasible": len(feasible),
        "kept": len(kept),
        "pruned": len(pruned),
    }
    return kept, counts, pruned, dict(sorted(kinds.items()))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("max_pairs", "enabled"), [(0, True), (3, True), (17, True), (10_000, True), (5, False)])
def test_plan_agrees_with_the_brute_force(seed, max_pairs, enabled, monkeypatch):
    monkeypatch.setattr(s10, "PRUNED_SAMPLE", 25)
    core_of, facts = _world(seed, 60)
    kept, counts, pruned, kinds = _brute(core_of, facts, 2, max_pairs, enabled)
    got = s10.plan(core_of, facts, 2, max_pairs, enabled)
    assert got["pairs"] == kept  # the same pairs, in the cap's order, with the same entries
    assert got["counts"] == counts
    assert got["pruned"]["total"] == counts["pruned"] == sum(got["pruned"]["by_reason"].values())
    assert got["pruned"]["by_reason"] == kinds
    assert got["pruned"]["sample_limit"] == 25
    assert got["pruned"]["sample"] == pruned[:25]
    assert counts["candidates"] > 100 and counts["feasible"] > 10  # worlds big enough to mean something


def test_the_worlds_reach_every_kind_of_pruning():
    seen: Counter = Counter()
    for seed in range(6):
        core_of, facts = _world(seed, 60)
        seen.update(s10.plan(core_of, facts, 2, 3, True)["pruned"]["by_reason"])
    kinds = {k.split(": ", 1)[1] for k in seen}
    assert {s10.KIND_THIN, s10.KIND_NAMES} <= kinds
    assert {f"member not feasible: {p}" for p in PROBLEMS} <= kinds
    assert any(k.startswith("over the cap") for k in kinds)


def test_collisions_are_found_only_where_they_exist():
    base = _base()
    rel = base.relationships[0]
    a = base.model_copy(update={"domain": "A", "relationships": [rel.model_copy(update={"name": "Vault"})]})
    b = base.model_copy(update={"domain": "B", "peripheral_entities": ["Vault"]})
    c = base.model_copy(update={"domain": "C", "peripheral_entities": ["Dock"]})
    facts = {bp.domain: {"blueprint": bp} for bp in (a, b, c)}
    assert s10._collisions(["A", "B", "C"], facts) == {("A", "B")}
    assert s10.name_problems(a, b) and not s10.name_problems(a, c)


def test_many_domains_of_one_person_cap_early():
    """3,000 domains of one person (4.5 million candidates): the plan counts them without
    building them, keeps the cap and samples PRUNED_SAMPLE pairs."""
    base = _base()
    core_of = {f"D{i:04d}": "Patient" for i in range(3000)}
    facts = {
        d: {
            "domain": d,
            "blueprint": base.model_copy(update={"domain": d}),
            "problem": None,
            "problem_kind": None,
            "valid_tasks": 5,
            "interlockable": 2 + i % 3,
        }
        for i, d in enumerate(core_of)
    }
    got = s10.plan(core_of, facts, 2, 10, True)
    n = 3000 * 2999 // 2
    assert got["counts"] == {"domains": 3000, "candidates": n, "feasible": n, "kept": 10, "pruned": n - 10}
    # the best pairs: both members with 4 interlockable tasks (i % 3 == 2), by name
    assert [p["pair"] for p in got["pairs"][:2]] == ["D0002+D0005", "D0002+D0008"]
    assert len(got["pruned"]["sample"]) == s10.PRUNED_SAMPLE
    assert all(p["stage"] == "cap" for p in got["pruned"]["sample"])
